"""Datasets for the training stages: the cohort's items turned into model inputs.

The cohort comes from :func:`cardiacnets.datasets.open_dataset` (``source="synthetic"`` or a converted dataset
directory). :class:`StageDataset` converts each item: the ECG through the shared preprocessing
(:func:`cardiacnets.preprocess.preprocess_ecg`, ``ecg_preprocess="full"``) or through channel-wise min-max scaling to
[-1, 1] only (``"minmax"``, what the paper applies before diffusion training; cheaper on CPU), and the cines from
[0, 1] to Normalize(0.5, 0.5), i.e. [-1, 1], as the paper does for both views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cardiacnets.errors import ConfigError, DatasetError
from cardiacnets.training.config import DataConfig

logger = logging.getLogger(__name__)

ECG_FS = 500.0  # Hz; the cohort contract stores 10 s at 500 Hz


def open_split(data: DataConfig, split: str, modalities: list[str] | None = None) -> Dataset:
    """The cohort's ``split`` (``train`` / ``val`` / ``test``) as a map-style dataset of item dicts."""
    try:
        from cardiacnets.datasets import open_dataset
    except ImportError as exc:
        raise DatasetError(f"cardiacnets.datasets.open_dataset is not available ({exc})") from None
    return open_dataset(data.source, split, n_subjects=data.n_subjects, seed=data.seed, modalities=modalities)


def minmax_scale(ecg: np.ndarray) -> np.ndarray:
    """Channel-wise min-max scaling of ``(12, n)`` to [-1, 1] (flat leads map to 0)."""
    lo = ecg.min(axis=-1, keepdims=True)
    hi = ecg.max(axis=-1, keepdims=True)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (2.0 * (ecg - lo) / span - 1.0).astype(np.float32)


def ecg_transform(kind: str, preprocess_config: Any = None) -> Callable[[np.ndarray], np.ndarray]:
    """ECG transform ``(12, 5000)`` mV -> ``(12, 5000)`` float32 in [-1, 1]."""
    if kind == "minmax":
        return minmax_scale
    if kind == "full":
        try:
            from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg
        except ImportError as exc:
            raise ConfigError(
                f"ecg_preprocess=full needs cardiacnets.preprocess ({exc}); use --set task.ecg_preprocess=minmax"
            ) from None
        config = preprocess_config if preprocess_config is not None else PreprocessConfig()
        return lambda signal: np.asarray(preprocess_ecg(signal, ECG_FS, config), dtype=np.float32)
    raise ConfigError(f"unknown ecg_preprocess {kind!r}; use 'full' or 'minmax'")


def preprocess_config_dict(kind: str) -> dict[str, Any]:
    """JSON description of the ECG preprocessing, stored with the best model."""
    if kind != "full":
        return {"kind": kind}
    try:
        import dataclasses

        from cardiacnets.preprocess import PreprocessConfig

        return {"kind": "full", "config": dataclasses.asdict(PreprocessConfig())}
    except (ImportError, TypeError):
        return {"kind": "full"}


def augment_ecg_batch(
    ecg: torch.Tensor,
    *,
    min_crop_fraction: float = 0.5,
    p_time_flip: float = 0.5,
    p_sign_flip: float = 0.5,
) -> torch.Tensor:
    """The paper's ECG training augmentation on a batch ``(B, 12, n)``: per sample a random crop keeping a fraction
    ``U(min_crop_fraction, 1)`` of the samples (all leads together) linearly resized back to ``n``, TimeFlip and
    SignFlip with their probabilities, then channel-wise min-max scaling to [-1, 1]. Randomness comes from torch's
    global generator, so the training loop's RNG checkpointing makes resumed runs identical. Mirrors
    :func:`cardiacnets.augment.augment_ecg` (numpy, per record) for batches already on the training device."""
    if ecg.ndim != 3:
        raise ConfigError(f"augment_ecg_batch expects (B, leads, samples), got shape {tuple(ecg.shape)}")
    if not 0 < min_crop_fraction <= 1:
        raise ConfigError(f"min_crop_fraction must be in (0, 1], got {min_crop_fraction!r}")
    b, _, n = ecg.shape
    device = ecg.device
    fractions = min_crop_fraction + (1.0 - min_crop_fraction) * torch.rand(b, dtype=torch.float64)
    keep = torch.clamp(torch.round(fractions * n), 2, n)
    start = torch.floor(torch.rand(b, dtype=torch.float64) * (n - keep + 1))
    # positions (B, n): linspace(start, start + keep - 1, n) per sample, then linear interpolation between neighbours
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)  # float64: whole-sample positions stay exact
    positions = (start[:, None] + ramp[None, :] * (keep[:, None] - 1)).to(device)
    left = positions.floor().long().clamp(0, n - 1)
    right = (left + 1).clamp(max=n - 1)
    frac = (positions - left).to(ecg.dtype)[:, None, :]
    lead_index = lambda idx: idx[:, None, :].expand(-1, ecg.shape[1], -1)  # noqa: E731
    x = torch.gather(ecg, 2, lead_index(left)) * (1 - frac) + torch.gather(ecg, 2, lead_index(right)) * frac
    flip_time = (torch.rand(b) < p_time_flip).to(device)
    x = torch.where(flip_time[:, None, None], x.flip(-1), x)
    sign = torch.where(torch.rand(b) < p_sign_flip, -1.0, 1.0).to(device=device, dtype=x.dtype)
    x = x * sign[:, None, None]
    lo = x.amin(dim=-1, keepdim=True)
    hi = x.amax(dim=-1, keepdim=True)
    span = torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))
    return 2.0 * (x - lo) / span - 1.0


def mask_leads_batch(ecg: torch.Tensor, probabilities: dict[str, float]) -> torch.Tensor:
    """Lead masking for training on reduced lead sets: each ECG of the batch ``(B, 12, n)`` keeps only the leads of a
    set drawn from ``probabilities`` (lead-set name -> weight, :data:`cardiacnets.leadsets.LEAD_SETS`), the other
    leads zeroed. Randomness from torch's global generator, as :func:`augment_ecg_batch` (resumable runs)."""
    from cardiacnets.leadsets import lead_set_mask

    if ecg.ndim != 3 or ecg.shape[1] != 12:
        raise ConfigError(f"mask_leads_batch expects (B, 12, samples), got shape {tuple(ecg.shape)}")
    names = list(probabilities)
    weights = torch.tensor([float(probabilities[k]) for k in names], dtype=torch.float64)
    if not names or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"lead-set probabilities must be non-negative and not all zero, got {probabilities}")
    table = torch.from_numpy(np.stack([lead_set_mask(k) for k in names])).to(device=ecg.device, dtype=ecg.dtype)
    choice = torch.multinomial(weights, ecg.shape[0], replacement=True).to(ecg.device)
    return ecg * table[choice][:, :, None]


class StageDataset(Dataset):
    """Wraps a cohort dataset; items hold only what a stage needs, as float32 tensors.

    Output keys (each only when asked): ``ecg`` ``(12, 5000)`` in [-1, 1]; ``cine_sa`` ``(50, 80, 80)`` and
    ``cine_la`` ``(50, 96, 96)`` in [-1, 1]; ``phenotypes`` ``(82,)``; always ``index``.
    """

    def __init__(
        self,
        base: Dataset,
        *,
        ecg: Callable[[np.ndarray], np.ndarray] | None = None,
        cines: bool = False,
        phenotypes: bool = False,
        cache: bool = False,
    ) -> None:
        self.base, self.ecg, self.cines, self.phenotypes = base, ecg, cines, phenotypes
        self._cache: dict[int, dict[str, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        out = self._convert(i)
        if self._cache is not None:
            self._cache[i] = out
        return out

    def _convert(self, i: int) -> dict[str, torch.Tensor]:
        item = self.base[i]
        out: dict[str, torch.Tensor] = {"index": torch.tensor(i)}
        try:
            if self.ecg is not None:
                out["ecg"] = torch.from_numpy(np.ascontiguousarray(self.ecg(np.asarray(item["ecg"], np.float32))))
            if self.cines:
                for key in ("cine_sa", "cine_la"):
                    cine = torch.as_tensor(np.asarray(item[key], np.float32))
                    out[key] = (cine - 0.5) / 0.5  # Normalize(mean 0.5, std 0.5)
            if self.phenotypes:
                out["phenotypes"] = torch.as_tensor(np.asarray(item["phenotypes"], np.float32))
        except KeyError as exc:
            raise DatasetError(f"dataset item {i} has no {exc} field") from None
        return out


__all__ = [
    "StageDataset",
    "augment_ecg_batch",
    "ecg_transform",
    "mask_leads_batch",
    "minmax_scale",
    "open_split",
    "preprocess_config_dict",
]
