"""Cine resampling to a denoiser's frame count and resolution (the CPU recipe trains on fewer frames)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cardiacnets.errors import InputError


def frame_indices(total: int, num_frames: int) -> np.ndarray:
    """Evenly spaced frame indices over one cycle, frame 0 (end diastole) first: ``(num_frames,)`` int."""
    if not 1 <= num_frames <= total:
        raise InputError(f"cannot take {num_frames} frames from a cine of {total}")
    return np.floor(np.arange(num_frames) * total / num_frames).astype(np.int64)


def resample_cine(cine: torch.Tensor | np.ndarray, num_frames: int, height: int, width: int) -> torch.Tensor:
    """Subsample frames evenly and resize frames bilinearly.

    Args:
        cine: ``(B, F0, H0, W0)`` in [0, 1].

    Returns:
        ``(B, num_frames, height, width)`` float32 in [0, 1].
    """
    x = torch.as_tensor(cine, dtype=torch.float32)
    if x.ndim != 4:
        raise InputError(f"cine batch must be (B, F, H, W); got shape {tuple(x.shape)}")
    x = x[:, torch.from_numpy(frame_indices(x.shape[1], num_frames))]
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return x
