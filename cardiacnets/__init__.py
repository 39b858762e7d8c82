"""CardiacNets: ECG screening with an encoder aligned to cardiac MRI (Ding et al., CardiacNets).

The library: readers, preprocessing, signal QC, phenotype/label definitions, the synthetic cohort, models, metrics and
the bundle format. It never imports :mod:`cardiacnets.training`, :mod:`cardiacnets.export` or :mod:`cardiacnets.edge`.
"""

from __future__ import annotations

__version__ = "0.1.0"
