"""Training augmentations of ECGs (paper, "Data processing and augmentation"): crop-resize, TimeFlip and SignFlip,
then the channel-wise min-max scaling of the model input. Pure numpy functions on ``(..., n)`` arrays; randomness only
through an explicit ``np.random.Generator``. The versioned cleaning itself lives in :mod:`cardiacnets.preprocess`.
"""

from __future__ import annotations

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.preprocess import minmax_scale

__all__ = ["augment_ecg", "crop_resize", "sign_flip", "time_flip"]


def crop_resize(signal: np.ndarray, rng: np.random.Generator, min_fraction: float = 0.5) -> np.ndarray:
    """Random crop of ``(..., n)`` keeping a fraction ``U(min_fraction, 1)`` of the samples at a random start, linearly
    interpolated back to ``n`` samples (one crop for all leads, so the leads stay synchronous)."""
    x = np.asarray(signal, dtype=np.float64)
    if not 0 < min_fraction <= 1:
        raise InputError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    n = x.shape[-1]
    keep = max(2, int(round(n * rng.uniform(min_fraction, 1.0))))
    keep = min(keep, n)
    start = int(rng.integers(0, n - keep + 1))
    positions = np.linspace(start, start + keep - 1, n)
    left = np.clip(np.floor(positions).astype(np.int64), 0, n - 1)
    right = np.clip(left + 1, 0, n - 1)
    frac = positions - left
    return x[..., left] * (1.0 - frac) + x[..., right] * frac


def time_flip(signal: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """TimeFlip: reverse ``(..., n)`` along time with probability ``p``."""
    x = np.asarray(signal)
    return x[..., ::-1].copy() if rng.random() < p else x.copy()


def sign_flip(signal: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """SignFlip: negate ``(..., n)`` with probability ``p``."""
    x = np.asarray(signal)
    return -x if rng.random() < p else x.copy()


def augment_ecg(
    signal: np.ndarray,
    rng: np.random.Generator,
    *,
    min_crop_fraction: float = 0.5,
    p_time_flip: float = 0.5,
    p_sign_flip: float = 0.5,
    scale_range: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """Training augmentation of a preprocessed ``(12, n)`` ECG (paper): crop-resize, TimeFlip, SignFlip, then
    channel-wise min-max scaling to ``scale_range``. Returns float32 ``(12, n)``; randomness only from ``rng``."""
    x = crop_resize(signal, rng, min_crop_fraction)
    x = time_flip(x, rng, p_time_flip)
    x = sign_flip(x, rng, p_sign_flip)
    return minmax_scale(x, *scale_range).astype(np.float32)
