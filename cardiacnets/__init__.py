"""CardiacNets: ECG screening with an encoder aligned to cardiac MRI (Ding et al., CardiacNets).

The library: readers, preprocessing, signal QC, phenotype/label definitions, the synthetic cohort, models, metrics and
the bundle format. It never imports :mod:`cardiacnets.training`, :mod:`cardiacnets.export` or :mod:`cardiacnets.edge`.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Lazy exports: importing ``cardiacnets`` must not import torch/diffusers (the edge screening path is torch-free).
_LAZY_EXPORTS = {
    "EcgToCmrPipeline": "cardiacnets.diffusion.pipeline",
    "save_cine": "cardiacnets.diffusion.io",
}


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 module attribute hook
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cardiacnets' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
