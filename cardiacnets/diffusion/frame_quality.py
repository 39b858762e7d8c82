"""Does a generated cine show a heart? A per-frame check with the segmentations that measure the real cines.

A frame has a heart when the blood-pool segmentation of its view finds the chambers with the sizes and shapes real
cines have (features computed on the segmentation of :mod:`cardiacnets.diffusion.evaluate` for the short axis and of
:mod:`cardiacnets.diffusion.measure_la` for the 4-chamber view):

* short axis: the LV pool's area (fraction of the frame), its compactness (1 for a disc) and the share of the bright
  class in the three largest pools (the myocardial ring is not used: its segmentation misses it in some real frames),
  and the intensity step across the LV pool's boundary;
* 4-chamber: the LV and LA pools' areas, the LV's length / width (a bullet, longer than wide) and fill of its
  bounding box, the LA's fill, the gap between LV base and LA, the share of the bright class in the four largest
  pools, and the intensity step across the LV pool's boundary.

Noise ("blobs" from a denoiser that has not learnt the anatomy) gives scattered bright classes and irregular pools,
so it fails one of the ranges. The ranges (:data:`HEART_RANGES`) were set from the real synthetic cines at the CPU
recipe's resolution (SA 40 x 40, LA 48 x 48; 8 of 50 frames), :func:`feature_ranges` over the 1,536-subject demo
cohort's validation and test splits (442 subjects, 3,536 frames per view), against frames the default bundle's frame
decoders draw from random latents: 3,535 of the 3,536 real short-axis frames and 3,526 of the 3,536 real 4-chamber
frames pass; 1 and 3 of 1,024 decoded-noise frames do. The edge step's floor (0.5; real frames >= 0.84) leaves room
for the autoencoder's blur of generated frames. Smooth random fields with blobs a fifth of the frame wide can still
pass a frame now and then: the check is for noise, not a proof of anatomy. A frame is judged by ratios only, not by
pixel counts or intensity scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cardiacnets.diffusion.evaluate import compactness, otsu_thresholds, segment_sa_frame
from cardiacnets.diffusion.measure_la import segment_la_frame
from cardiacnets.errors import InputError

#: Feature -> (low, high) of a frame with a heart, per view (module docstring; :func:`feature_ranges`).
HEART_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "sa": {
        "lv_fraction": (0.015, 0.25),
        "lv_compactness": (0.61, 1.0),
        "pool_share": (0.58, 1.0),
        "edge_step": (0.5, 2.0),
    },
    "la": {
        "lv_fraction": (0.03, 0.25),
        "la_fraction": (0.015, 0.20),
        "lv_elongation": (0.9, 3.6),
        "lv_fill": (0.27, 0.9),
        "la_fill": (0.35, 1.0),
        "gap": (-1.5, 2.0),
        "pool_share": (0.72, 1.0),
        "edge_step": (0.5, 2.0),
    },
}


def _edge_step(frame: np.ndarray, pool: np.ndarray) -> float:
    """Intensity step across a pool's boundary (its rim minus the ring just outside) over the Otsu contrast between
    the bright and mid classes: about 1 for the sharp walls of a real cine, well below for a smooth blob."""
    if not pool.any():
        return 0.0
    t_low, t_high = otsu_thresholds(ndimage.gaussian_filter(frame, 0.5), classes=3)
    rim = pool & ~ndimage.binary_erosion(pool)
    outside = ndimage.binary_dilation(pool) & ~pool
    if not outside.any() or t_high <= t_low:
        return 0.0
    return float((frame[rim].mean() - frame[outside].mean()) / (t_high - t_low))


def _sa_features(frame: np.ndarray) -> dict[str, float]:
    seg = segment_sa_frame(frame)
    _, t_high = otsu_thresholds(ndimage.gaussian_filter(frame, 0.5), classes=3)
    bright = frame > t_high
    labels, n = ndimage.label(bright)
    areas = np.sort(ndimage.sum_labels(bright, labels, index=np.arange(1, n + 1)))[::-1] if n else np.zeros(1)
    return {
        "lv_fraction": float(seg.lv.sum()) / frame.size,
        "lv_compactness": compactness(seg.lv),
        "pool_share": float(areas[:3].sum() / max(1.0, areas.sum())),
        "edge_step": _edge_step(frame, seg.lv),
    }


def _la_features(frame: np.ndarray) -> dict[str, float]:
    seg = segment_la_frame(frame)
    lv_area, la_area = float(seg.lv.sum()), float(seg.la.sum())
    return {
        "lv_fraction": lv_area / frame.size,
        "la_fraction": la_area / frame.size,
        "lv_elongation": seg.lv_length / seg.lv_width if seg.lv_width else 0.0,
        # a half ellipse fills pi/4 of its bounding box (length x width), a full ellipse pi/4 too
        "lv_fill": lv_area / (seg.lv_length * seg.lv_width) if seg.lv_width else 0.0,
        "la_fill": la_area / (seg.la_length * seg.la_width) if seg.la_width else 0.0,
        "gap": seg.gap if seg.found else math.inf,
        "pool_share": seg.pool_share,
        "edge_step": _edge_step(frame, seg.lv),
    }


_FEATURES: dict[str, Callable[[np.ndarray], dict[str, float]]] = {"sa": _sa_features, "la": _la_features}


def frame_features(frame: np.ndarray, view: str) -> dict[str, float]:
    """The features :data:`HEART_RANGES` judges, of one frame ``(H, W)`` of ``view`` (``"sa"`` or ``"la"``)."""
    if view not in _FEATURES:
        raise InputError(f"unknown cine view {view!r}; known: {', '.join(sorted(_FEATURES))}")
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2:
        raise InputError(f"a frame must be (H, W); got shape {frame.shape}")
    if not np.isfinite(frame).all():
        raise InputError("frame contains NaN or infinite values")
    return _FEATURES[view](frame)


def frame_failure(frame: np.ndarray, view: str) -> str | None:
    """``None`` when the frame shows a heart, else the first feature outside its range (``"lv_fraction 0.61 not in
    0.04-0.30"``)."""
    features = frame_features(frame, view)
    for name, (low, high) in HEART_RANGES[view].items():
        value = features[name]
        if not low <= value <= high:
            return f"{name} {value:.2f} not in {low:.2f}-{high:.2f}"
    return None


@dataclass
class CineQuality:
    """Per-frame heart check of one cine: ``failures[i]`` is None for a frame with a heart, else why not."""

    view: str
    failures: list[str | None] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.failures)

    @property
    def frames_with_heart(self) -> int:
        return sum(f is None for f in self.failures)

    @property
    def ok(self) -> bool:
        """Every frame shows a heart."""
        return self.n_frames > 0 and self.frames_with_heart == self.n_frames

    def reason(self) -> str | None:
        """One line saying why the cine fails (None when it passes)."""
        if self.ok:
            return None
        first = next(i for i, f in enumerate(self.failures) if f is not None)
        return (f"no heart found in {self.n_frames - self.frames_with_heart} of {self.n_frames} frames"
                f" (frame {first + 1}: {self.failures[first]})")  # fmt: skip


def cine_quality(cine: np.ndarray, view: str) -> CineQuality:
    """Check every frame of a cine ``(F, H, W)`` (any intensity range; bright blood) of ``view``."""
    cine = np.asarray(cine)
    if cine.ndim != 3 or cine.shape[0] < 1:
        raise InputError(f"a cine must be (frames, H, W); got shape {cine.shape}")
    return CineQuality(view, [frame_failure(frame, view) for frame in cine])


def fraction_with_heart(cines: np.ndarray, view: str) -> float:
    """Share of all frames of ``cines`` ``(N, F, H, W)`` that show a heart."""
    cines = np.asarray(cines)
    if cines.ndim != 4 or cines.shape[0] < 1:
        raise InputError(f"cines must be (N, frames, H, W); got shape {cines.shape}")
    checks = [cine_quality(c, view) for c in cines]
    return float(sum(q.frames_with_heart for q in checks) / sum(q.n_frames for q in checks))


def feature_ranges(cines: np.ndarray, view: str, quantile: float = 0.0) -> dict[str, tuple[float, float]]:
    """Observed ``(low, high)`` of each feature over all frames of ``cines`` ``(N, F, H, W)`` (``quantile`` trims
    each tail): how :data:`HEART_RANGES` was derived from real cines."""
    rows = [frame_features(frame, view) for cine in np.asarray(cines) for frame in cine]
    ranges = {}
    for name in rows[0]:
        low, high = np.quantile([row[name] for row in rows], [quantile, 1.0 - quantile])
        ranges[name] = (float(low), float(high))
    return ranges
