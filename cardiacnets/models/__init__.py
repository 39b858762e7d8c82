"""CardiacNets models: ECG ViT, CMR Swin (+ masked image modelling), ECG-CMR alignment, and the size registry."""

from __future__ import annotations

from cardiacnets.models.registry import (
    create_model,
    from_pretrained,
    list_models,
    model_config,
    read_pretrained_metadata,
    save_pretrained,
)

__all__ = [
    "create_model",
    "from_pretrained",
    "list_models",
    "model_config",
    "read_pretrained_metadata",
    "save_pretrained",
]
