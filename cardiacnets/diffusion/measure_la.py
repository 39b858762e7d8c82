"""Phenotypes of 4-chamber long-axis cines, measured from images (the long-axis half of the ECG2CMR faithfulness study).

The same measurement runs on real and generated cines, so its biases cancel in the comparison. The synthetic
4-chamber view has the apex up, the RV on the image left and the atria below the atrioventricular plane (bSSFP:
bright blood, mid-grey myocardium). Per frame:

* the bright intensity class (3-class Otsu, as for the short axis) holds the four blood pools; the thin walls between
  them are one or two pixels wide at the CPU recipe's 48 x 48 and partial volume lifts them into the bright class,
  so the pools are split by removing valley pixels (darker than both neighbours one or two steps away), eroding by
  one pixel, labelling, and giving every bright pixel back to its nearest seed;
* the LV is the right-hand one of the two largest seeds above the heart's centre; its long axis is the principal axis
  of its pixels, oriented from the apex (top) to the mitral plane (bottom);
* the LA is the largest bright region beyond the LV's base along that axis and within the LV's width across it (the
  septal line separates it from the RA, with which it often merges at this resolution).

Proxies (pixel units; only correlations are reported): area-length volume ``8 A^2 / (3 pi L)`` (the single-plane
formula of clinical 4-chamber reports) with ``L`` the pool's extent along the LV long axis; LVEDV = max and LVESV =
min over the cycle, LVEF, LV end-diastolic area and long-axis length, LA maximum and minimum volume and maximum area.
Measurement functions need only numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cardiacnets.diffusion.evaluate import otsu_thresholds
from cardiacnets.errors import InputError

#: Measured long-axis phenotype proxies (see the module docstring).
LA_PHENOTYPES: tuple[str, ...] = ("LVEDV", "LVESV", "LVEF", "LVEDA", "LVL", "LAV_max", "LAV_min", "LAA_max")

_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass
class LongAxisSegmentation:
    """Pools of one 4-chamber frame: masks ``(H, W)`` bool; lengths along the LV long axis and widths across it in
    pixels (0 if absent); ``gap``: pixels between the LV base and the LA along the axis; ``pool_share``: the share of
    the bright class in the four largest pools (a heart's blood is in its chambers, noise is scattered)."""

    lv: np.ndarray
    la: np.ndarray
    lv_length: float = 0.0
    la_length: float = 0.0
    lv_width: float = 0.0
    la_width: float = 0.0
    gap: float = 0.0
    pool_share: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.lv.any() and self.la.any())


def _empty(shape: tuple[int, ...]) -> LongAxisSegmentation:
    return LongAxisSegmentation(np.zeros(shape, bool), np.zeros(shape, bool))


def _valleys(frame: np.ndarray, depth: float) -> np.ndarray:
    """Pixels darker by more than ``depth`` than both pixels one or two steps away along a row, column or diagonal:
    the one- or two-pixel walls between pools, which partial volume can lift into the bright class."""
    p = np.pad(frame, 2, mode="edge")
    h, w = frame.shape
    out = np.zeros(frame.shape, bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for k in (1, 2):
            a = p[2 + k * dr : 2 + k * dr + h, 2 + k * dc : 2 + k * dc + w]
            b = p[2 - k * dr : 2 - k * dr + h, 2 - k * dc : 2 - k * dc + w]
            out |= frame < np.minimum(a, b) - depth
    return out


def _pools(frame: np.ndarray, min_area: int) -> tuple[np.ndarray, list[int]]:
    """Bright pools split at their thin walls: a label image ``(H, W)`` and the labels of pools >= ``min_area``
    pixels, largest first."""
    smooth = ndimage.gaussian_filter(frame, 0.5)
    t_low, t_high = otsu_thresholds(smooth, classes=3)
    bright = frame > t_high
    seeds, n = ndimage.label(ndimage.binary_erosion(bright & ~_valleys(smooth, 0.3 * (t_high - t_low)), _CROSS), _CROSS)
    if n == 0:
        return np.zeros(frame.shape, int), []
    # every bright pixel joins its nearest seed (a one-pixel erosion undone per pool)
    _, nearest = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = np.where(bright, seeds[tuple(nearest)], 0)
    areas = ndimage.sum_labels(bright, labels, index=np.arange(1, n + 1))
    keep = [int(i + 1) for i in np.argsort(areas)[::-1] if areas[i] >= min_area]
    return labels, keep


def _axis(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid ``(2,)`` (row, col), unit long axis pointing down the image, unit short axis of a mask's pixels."""
    pts = np.argwhere(mask).astype(np.float64)
    centre = pts.mean(axis=0)
    cov = np.cov((pts - centre).T) if len(pts) > 2 else np.eye(2)
    _, vecs = np.linalg.eigh(cov)
    long_axis = vecs[:, -1] if vecs[0, -1] >= 0 else -vecs[:, -1]  # apex (top) -> base (bottom)
    return centre, long_axis, np.array([-long_axis[1], long_axis[0]])


def segment_la_frame(frame: np.ndarray, min_area_fraction: float = 0.004) -> LongAxisSegmentation:
    """Segment the LV and LA blood pools of one 4-chamber frame ``(H, W)`` (any intensity range; bright blood).

    Args:
        frame: ``(H, W)`` intensities.
        min_area_fraction: smallest pool kept, as a fraction of the frame's pixels.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2:
        raise InputError(f"a frame must be (H, W); got shape {frame.shape}")
    min_area = max(4, int(round(min_area_fraction * frame.size)))
    labels, keep = _pools(frame, min_area)
    if len(keep) < 2:
        return _empty(frame.shape)
    pool_share = float(np.isin(labels, keep[:4]).sum() / max(1, (labels > 0).sum()))
    heart_row = np.argwhere(labels > 0)[:, 0].mean()
    centres = {k: np.argwhere(labels == k).mean(axis=0) for k in keep[:4]}
    upper = [k for k in keep[:4] if centres[k][0] < heart_row][:2]
    if not upper:
        return _empty(frame.shape)
    lv_label = max(upper, key=lambda k: centres[k][1])  # the LV is right of the RV (the image's right)
    lv = ndimage.binary_fill_holes(labels == lv_label)
    centre, long_axis, short_axis = _axis(lv)
    grid = np.indices(frame.shape).reshape(2, -1).T - centre  # (H * W, 2) pixel offsets from the LV centre
    along, across = (grid @ long_axis).reshape(frame.shape), (grid @ short_axis).reshape(frame.shape)
    lv_along, lv_across = along[lv], across[lv]
    lv_length = float(lv_along.max() - lv_along.min() + 1.0)
    lv_width = float(lv_across.max() - lv_across.min() + 1.0)
    lv_only = LongAxisSegmentation(lv, np.zeros(frame.shape, bool), lv_length, lv_width=lv_width,
                                   pool_share=pool_share)  # fmt: skip
    below = (labels > 0) & (labels != lv_label) & (along > lv_along.max())
    below &= (across >= lv_across.min() - 0.5) & (across <= lv_across.max() + 0.5)
    parts, n = ndimage.label(below, _CROSS)
    if n == 0:
        return lv_only
    sizes = ndimage.sum_labels(below, parts, index=np.arange(1, n + 1))
    la = parts == int(np.argmax(sizes) + 1)
    if la.sum() < min_area:
        return lv_only
    la_along, la_across = along[la], across[la]
    return LongAxisSegmentation(
        lv, la, lv_length, float(la_along.max() - la_along.min() + 1.0), lv_width,
        float(la_across.max() - la_across.min() + 1.0), float(la_along.min() - lv_along.max() - 1.0), pool_share,
    )  # fmt: skip


def area_length_volume(area: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Single-plane area-length volume ``8 A^2 / (3 pi L)`` (pixel units); 0 where the length is 0."""
    area, length = np.asarray(area, dtype=np.float64), np.asarray(length, dtype=np.float64)
    return np.where(length > 0, 8.0 * area**2 / (3.0 * math.pi * np.where(length > 0, length, 1.0)), 0.0)


def measure_la_cine(cine: np.ndarray) -> dict[str, float | list[float]]:
    """Phenotype proxies of one 4-chamber cine ``(F, H, W)`` (see the module docstring for definitions).

    Returns:
        :data:`LA_PHENOTYPES` plus per-frame ``"lv_area"``, ``"lv_length"``, ``"la_area"``, ``"la_length"`` (lists,
        pixels).
    """
    cine = np.asarray(cine, dtype=np.float64)
    if cine.ndim != 3 or cine.shape[0] < 1:
        raise InputError(f"a cine must be (frames, H, W); got shape {cine.shape}")
    if not np.isfinite(cine).all():
        raise InputError("cine contains NaN or infinite values")
    segs = [segment_la_frame(frame) for frame in cine]
    lv_area = np.array([s.lv.sum() for s in segs], dtype=np.float64)
    la_area = np.array([s.la.sum() for s in segs], dtype=np.float64)
    lv_length = np.array([s.lv_length for s in segs])
    la_length = np.array([s.la_length for s in segs])
    lv_vol, la_vol = area_length_volume(lv_area, lv_length), area_length_volume(la_area, la_length)
    ed = int(np.argmax(lv_vol))
    return {
        "LVEDV": float(lv_vol.max()),
        "LVESV": float(lv_vol.min()),
        "LVEF": float((lv_vol.max() - lv_vol.min()) / lv_vol.max()) if lv_vol.max() > 0 else float("nan"),
        "LVEDA": float(lv_area[ed]),
        "LVL": float(lv_length[ed]),
        "LAV_max": float(la_vol.max()),
        "LAV_min": float(la_vol.min()),
        "LAA_max": float(la_area.max()),
        "lv_area": lv_area.tolist(),
        "lv_length": lv_length.tolist(),
        "la_area": la_area.tolist(),
        "la_length": la_length.tolist(),
    }
