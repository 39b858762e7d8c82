"""Named model sizes (data, not code) and ``config.json`` + ``model.safetensors`` persistence.

``create_model("ecg-vit-tiny")`` builds any registered entry; ``save_pretrained(model, dir, metadata=...)`` writes
``config.json`` (model type, strict config, free-form metadata such as the preprocessing config and label names) and
``model.safetensors``; ``from_pretrained(dir)`` rebuilds the model, rejecting unknown config keys. Where a saved
model is expected, a training run directory stands for its ``best/`` (:func:`pretrained_dir`).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cardiacnets.config import config_from_dict, config_to_dict, deep_merge
from cardiacnets.errors import CheckpointError, ConfigError
from cardiacnets.models.alignment import AlignmentModel
from cardiacnets.models.cmr_mim import CmrSslModel
from cardiacnets.models.cmr_swin import CmrSwin
from cardiacnets.models.ecg_vit import EcgViT
from cardiacnets.models.screening import ScreeningModel

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

MODEL_TYPES: dict[str, type[nn.Module]] = {
    cls.model_type: cls  # type: ignore[attr-defined]
    for cls in (EcgViT, CmrSwin, CmrSslModel, AlignmentModel, ScreeningModel)
}

_ECG = {
    "tiny": {"embed_dim": 192, "depth": 4, "num_heads": 3},  # CPU; the size export-notes.md measured
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "large": {"embed_dim": 1024, "depth": 24, "num_heads": 16},  # the paper's ViT-Large, ~303 M parameters
}
_SWIN = {
    "tiny": {"embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4], "window_size": 7},  # CPU
    "small": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7},  # Swin-T
    "base": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "window_size": 7},  # paper
}


def _views(swin: dict[str, Any]) -> dict[str, Any]:
    return {"sa": {**swin, "image_size": 80}, "la": {**swin, "image_size": 96}}


REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"ecg-vit-{size}": ("ecg_vit", cfg) for size, cfg in _ECG.items()},
    **{f"cmr-swin-{size}": ("cmr_swin", cfg) for size, cfg in _SWIN.items()},
    **{f"cmr-ssl-{size}": ("cmr_ssl", _views(cfg)) for size, cfg in _SWIN.items()},
    "alignment-tiny": ("alignment", {"ecg": _ECG["tiny"], **_views(_SWIN["tiny"])}),
    "alignment-base": ("alignment", {"ecg": _ECG["base"], **_views(_SWIN["base"])}),
    "alignment-large": ("alignment", {"ecg": _ECG["large"], **_views(_SWIN["base"])}),  # paper
    # Mean pooling makes the exact class-activation saliency of ScreeningModel.token_contributions available.
    **{
        f"screening-ecg-{size}": ("screening", {"input": "ecg", "ecg": {**cfg, "pool": "mean"}})
        for size, cfg in _ECG.items()
    },
    **{f"screening-cmr-{size}": ("screening", {"input": "cmr", **_views(cfg)}) for size, cfg in _SWIN.items()},
}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(REGISTRY)


def model_config(name: str, **overrides: Any) -> Any:
    """Config dataclass of registered ``name`` with ``overrides`` (nested dicts merge) applied."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    model_type, base = REGISTRY[name]
    cls = MODEL_TYPES[model_type]
    return config_from_dict(cls.config_class, deep_merge(base, overrides), where=name)  # type: ignore[attr-defined]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build registered model ``name`` (randomly initialised), e.g. ``create_model("ecg-vit-tiny")``."""
    model_type = REGISTRY[name][0] if name in REGISTRY else None
    config = model_config(name, **overrides)
    return MODEL_TYPES[model_type](config)  # type: ignore[index]


#: Model types whose modules need an optional extra (diffusers, ``[cine]``): imported on first use, so that importing
#: the registry stays light.
LAZY_MODEL_TYPES: dict[str, tuple[str, str]] = {
    "ecg2cmr_denoiser": ("cardiacnets.diffusion.unet", "EcgConditionedUNet3D"),
    "frame_autoencoder": ("cardiacnets.diffusion.vae", "FrameAutoencoder"),
}


def model_class(model_type: Any) -> type[nn.Module]:
    """The module class of a registered model type (importing a lazily registered one on first use)."""
    if model_type not in MODEL_TYPES and model_type in LAZY_MODEL_TYPES:
        module, name = LAZY_MODEL_TYPES[model_type]
        MODEL_TYPES[model_type] = getattr(importlib.import_module(module), name)
    if model_type not in MODEL_TYPES:
        known = sorted({*MODEL_TYPES, *LAZY_MODEL_TYPES})
        raise ConfigError(f"unknown model_type {model_type!r}; known: {known}")
    return MODEL_TYPES[model_type]


def build_model(model_type: str, config: dict[str, Any]) -> nn.Module:
    """Build a model from its type name and plain config dict (strict)."""
    cls = model_class(model_type)
    return cls(config_from_dict(cls.config_class, config, where=model_type))  # type: ignore[attr-defined]


def _half_if_exact(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as float16 when every value survives the round trip exactly, else unchanged."""
    if tensor.dtype != torch.float32:
        return tensor
    half = tensor.half()
    return half if torch.equal(half.float(), tensor) else tensor


def save_pretrained(
    model: nn.Module, directory: str | Path, metadata: dict[str, Any] | None = None, *, fp16_exact: bool = False
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` under ``directory`` (created); returns the directory.

    ``metadata`` (JSON-serialisable: preprocessing config, label names, training summary...) is stored beside the
    config and returned by :func:`read_pretrained_metadata`. Files are written to temporaries and renamed.
    ``fp16_exact`` stores each float32 tensor whose values are all exactly float16 values as float16 (weights that
    came from FP16 storage: half the file, and :func:`from_pretrained` restores the same float32 values).
    """
    from safetensors.torch import save_file

    model_type = getattr(model, "model_type", None)
    if model_type is None:
        raise ConfigError(f"{type(model).__name__} is not a registered model type")
    model_class(model_type)  # raises for an unknown type; imports a lazily registered one
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "config": config_to_dict(model.config),  # type: ignore[attr-defined]
        "metadata": metadata or {},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fp16_exact:
        state = {k: _half_if_exact(v) for k, v in state.items()}
    tmp_weights = directory / "model.safetensors.tmp"
    save_file(state, str(tmp_weights), metadata={"format": "pt"})
    os.replace(tmp_weights, directory / "model.safetensors")
    tmp_config = directory / "config.json.tmp"
    tmp_config.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_config, directory / "config.json")
    return directory


def pretrained_dir(path: str | Path) -> Path:
    """The saved-model directory ``path`` stands for: ``path`` itself when it holds a ``config.json``, else the
    ``best/`` of a training run directory when that holds one, else ``path`` unchanged (so errors name it)."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "best" / "config.json").is_file():
        return path / "best"
    return path


def _read_config_json(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: not a saved model directory")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    unknown = sorted(set(payload) - {"format_version", "model_type", "config", "metadata"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported (this toolkit reads <= 1)")
    return payload


def read_pretrained_metadata(directory: str | Path) -> dict[str, Any]:
    """The ``metadata`` stored by :func:`save_pretrained` (``directory`` may be a training run: its ``best/``)."""
    return dict(_read_config_json(pretrained_dir(directory)).get("metadata") or {})


def from_pretrained(directory: str | Path) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained` (strict config and strict state dict), in eval mode.

    ``directory`` is a saved-model directory or a training run directory, which loads its ``best/``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = pretrained_dir(directory)
    payload = _read_config_json(directory)
    model = build_model(payload.get("model_type"), payload.get("config") or {})
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} cannot be read: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not match its config.json: {exc}") from None
    return model.eval()


__all__ = [
    "REGISTRY",
    "build_model",
    "create_model",
    "from_pretrained",
    "list_models",
    "model_config",
    "pretrained_dir",
    "read_pretrained_metadata",
    "save_pretrained",
]
