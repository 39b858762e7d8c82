"""Cine CMR rendering: mid-ventricular short axis ``(50, 80, 80)`` and 4-chamber ``(50, 96, 96)``, float32 in [0, 1].

Shapes are drawn as signed distances (negative inside, mm) and turned into partial-volume fractions
``clip(0.5 - d / pixel, 0, 1)``, which anti-aliases every edge. Layers are painted from the outside in with bSSFP-like
relative intensities (blood 1.0, fat 0.8, effusion 0.9, myocardium 0.3, pericardium 0.12; domain-notes 4.3), then a
smooth multiplicative coil bias field, Rician noise and per-sequence scaling to [0, 1]. Pose jitter (rotation,
translation) is applied to the pixel grid, so it costs nothing. The short-axis contours go through a 3-harmonic Fourier
series so that drawing them is one matmul.

Speed (issue 3: ECG + both cines at >= 50 subjects / s / core): the static layers (pose grid, background, bias
field) are computed once per subject, not per frame. The moving layers are evaluated only on the pixels that some
layer can reach in some frame: a conservative region from each shape's bounding box over the cycle plus its outermost
layer offset. Outside it every partial-volume fraction is exactly 0, so those pixels are the static background
(bit-identical to painting the whole frame). Rician noise uses views of the Gaussian bank and runs in place on the
output, which the caller may preallocate (no copy or concatenation of the cines).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from cardiacnets.synth._random import SubjectRandom, noise_bank

SA_SIZE = 80
LA_SIZE = 96
PIXEL_MM = 1.8
_HARMONICS = 3

I_BLOOD, I_MYO, I_FAT, I_EFFUSION, I_PERICARDIUM = 1.0, 0.3, 0.8, 0.9, 0.12

#: A layer offset by ``o`` mm has a non-zero partial volume only where its signed distance is below ``o + 0.5 px``;
#: the extra 0.5 mm absorbs float32 rounding of the distances, so pixels beyond the region are exactly background.
_REACH_MM = 0.5 * PIXEL_MM + 0.5
#: A papillary blob 0.65 exp(-d² / 2 s²) is below half a float32 ulp of 1 beyond d = 6.1 s, so it changes nothing there.
_BLOB_REACH = 6.1
#: Moving layers are evaluated over blocks of frames of about this many pixel-frames (cache-sized temporaries).
_BLOCK_ELEMS = 120_000


def _paint_layer(
    img: np.ndarray, d: np.ndarray, offset: float | np.float32, intensity: float, scratch: tuple[np.ndarray, ...]
) -> None:
    """Paint one layer in place: ``img <- img + frac * (intensity - img)`` with the partial-volume occupancy
    ``frac = clip((offset - d) / pixel + 0.5, 0, 1)`` of a shape with signed distance ``d`` (mm) shifted outwards by
    ``offset`` mm. ``img``, ``d`` ``(F, P)``; ``scratch`` two float32 buffers shaped like ``img`` (no temporaries)."""
    frac, tmp = scratch
    np.subtract(offset, d, out=frac)
    frac *= 1.0 / PIXEL_MM
    frac += 0.5
    np.clip(frac, 0.0, 1.0, out=frac)
    np.subtract(intensity, img, out=tmp)
    tmp *= frac
    img += tmp


def _grid(rnd: SubjectRandom, size: int, view: str, max_rot_deg: float, max_shift_px: float) -> tuple[np.ndarray, ...]:
    """Heart-frame coordinates (mm) of every pixel after pose jitter: x, y each ``(n, 1, size*size)`` float32 (+x =
    patient left = image right, +y = image up), and the pixel position of the heart-frame origin ``(n, 2)``."""
    n = rnd.n
    rot = np.deg2rad(max_rot_deg) * np.clip(rnd.normal(f"{view}_rot") / 2.0, -1.0, 1.0)
    shift = max_shift_px * (2.0 * rnd.uniform(f"{view}_shift", 2) - 1.0)  # (n, 2) rows, cols
    c0 = (size - 1) / 2.0
    rows = np.arange(size, dtype=np.float64)
    cols = np.arange(size, dtype=np.float64)
    yy = (c0 + shift[:, 0, None, None] - rows[None, :, None]) * PIXEL_MM  # up positive
    xx = (cols[None, None, :] - c0 - shift[:, 1, None, None]) * PIXEL_MM
    cos_r, sin_r = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    x = cos_r * xx + sin_r * yy
    y = -sin_r * xx + cos_r * yy
    origin = np.stack([c0 + shift[:, 0], c0 + shift[:, 1]], axis=1)
    return (
        x.reshape(n, 1, size * size).astype(np.float32),
        y.reshape(n, 1, size * size).astype(np.float32),
        origin,
    )


def _background(rnd: SubjectRandom, x: np.ndarray, y: np.ndarray, view: str, body: tuple[float, float]) -> np.ndarray:
    """Static tissue background ``(n, 1, HW)``: chest wall/liver-like smooth texture inside a body outline, lung
    darkness outside it."""
    k = 4
    freq = (0.01 + 0.03 * rnd.uniform(f"{view}_bg_f", 2 * k)).astype(np.float32)  # cycles / mm
    phase = (2.0 * np.pi * rnd.uniform(f"{view}_bg_p", k)).astype(np.float32)
    amp = (0.06 * rnd.uniform(f"{view}_bg_a", k)).astype(np.float32)
    bg = np.full(x.shape, 0.33, dtype=np.float32)
    for j in range(k):  # k smooth waves, vectorised over subjects and pixels
        arg = 2.0 * np.pi * (freq[:, j, None, None] * x + freq[:, k + j, None, None] * y) + phase[:, j, None, None]
        bg += amp[:, j, None, None] * np.cos(arg)
    lung = ((x / body[0]) ** 2 + (y / body[1]) ** 2) > 1.0
    bg = np.where(lung, np.float32(0.05), bg)
    return bg


def _bias(rnd: SubjectRandom, x: np.ndarray, y: np.ndarray, view: str) -> np.ndarray:
    """Smooth multiplicative coil bias field ``(n, 1, HW)``, about ±20 %."""
    c = (rnd.uniform(f"{view}_bias", 5) * 2.0 - 1.0).astype(np.float32)
    xs, ys = x / 80.0, y / 80.0
    field = 1.0 + 0.15 * c[:, 0, None, None] * xs + 0.15 * c[:, 1, None, None] * ys
    field += 0.08 * c[:, 2, None, None] * xs * ys + 0.06 * c[:, 3, None, None] * (xs**2 - ys**2)
    return field.astype(np.float32)


def _noise_offsets(rnd: SubjectRandom, view: str, length: int) -> np.ndarray:
    """Start ``(n,)`` of each subject's Rician noise window in the Gaussian bank; the same draw as
    ``rnd.bank_windows(f"{view}_noise", length)``, but the caller reads the bank through views instead of copies."""
    bank_size = noise_bank().shape[0]
    if length >= bank_size:
        raise ValueError(f"noise window of {length} samples exceeds the bank")
    return (rnd.uniform(f"{view}_noise", 1)[:, 0] * (bank_size - length)).astype(np.int64)


def _rician_scale_(img: np.ndarray, sigma: np.float32, window: np.ndarray, scratch: np.ndarray) -> None:
    """In place: ``img`` ``(F, HW)`` <- ``|img + sigma (n_re + i n_im)|`` scaled to max 1 (Rician magnitude).

    ``window`` ``(2 F HW,)`` standard normals: the first half is the real, the second the imaginary channel;
    ``scratch`` a float32 buffer of at least ``_BLOCK_ELEMS`` or ``HW`` elements.
    """
    n_frames, hw = img.shape
    real = window[: n_frames * hw].reshape(n_frames, hw)
    imag = window[n_frames * hw : 2 * n_frames * hw].reshape(n_frames, hw)
    step = max(1, min(n_frames, scratch.size // hw))
    for f0 in range(0, n_frames, step):
        block = img[f0 : f0 + step]
        tmp = scratch[: block.size].reshape(block.shape)
        np.multiply(real[f0 : f0 + step], sigma, out=tmp)
        block += tmp
        block *= block
        np.multiply(imag[f0 : f0 + step], sigma, out=tmp)
        tmp *= tmp
        block += tmp
        np.sqrt(block, out=block)
    img /= img.max()


def _ellipse_distance(x: np.ndarray, y: np.ndarray, cx, cy, a, b) -> np.ndarray:  # noqa: ANN001
    """Approximate signed distance (mm) to an axis-aligned ellipse: the radial gap to the boundary along the ray
    from its centre. Exact for circles, within a few percent for the mild eccentricities drawn here.

    Outside the ellipse the gap is never below the Euclidean distance to the ellipse (the ray's boundary point is one
    of its points), hence never below the distance to its bounding box: ``_near_box`` relies on this.
    """
    dx = x - cx
    dy = y - cy
    rho = np.sqrt(dx * dx + dy * dy)
    dx *= 1.0 / a
    dy *= 1.0 / b
    dx *= dx
    dy *= dy
    dx += dy
    q = np.sqrt(dx, out=dx)
    q += 1e-6
    np.divide(rho, q, out=q)
    return np.subtract(rho, q, out=rho)


def _ellipse_box(cx: np.ndarray, cy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bounding box over the cycle ``(n, 4)`` (x_min, x_max, y_min, y_max; mm) of ellipses with per-frame centre
    and semi-axes ``(n, F)``."""
    a, b = np.abs(a), np.abs(b)
    return np.stack([(cx - a).min(1), (cx + a).max(1), (cy - b).min(1), (cy + b).max(1)], axis=1)


def _near_box(x: np.ndarray, y: np.ndarray, box: np.ndarray, reach: float) -> np.ndarray:
    """Boolean mask of the pixels ``x``, ``y`` (mm) closer than ``reach`` mm to the box (x_min, x_max, y_min, y_max)."""
    dx = np.maximum(np.maximum(box[0] - x, x - box[1]), 0.0)
    dy = np.maximum(np.maximum(box[2] - y, y - box[3]), 0.0)
    return dx * dx + dy * dy < reach * reach


def _frame_blocks(n_frames: int, n_pixels: int) -> list[slice]:
    """Slices of consecutive frames with about ``_BLOCK_ELEMS`` pixel-frames each."""
    step = max(1, min(n_frames, _BLOCK_ELEMS // max(n_pixels, 1)))
    return [slice(f0, min(f0 + step, n_frames)) for f0 in range(0, n_frames, step)]


def _row_runs(mask: np.ndarray, size: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Close a pixel region ``mask`` ``(size*size,)`` row by row (each row becomes one run from its first to its last
    pixel, a superset, so still conservative) and return its flat pixel indices ``(P,)`` in row-major order with the
    runs ``(row, first column, end column)``: the moving layers are then pasted with one slice copy per row."""
    m = mask.reshape(size, size)
    rows = np.flatnonzero(m.any(axis=1))
    first = m[rows].argmax(axis=1)
    end = size - m[rows, ::-1].argmax(axis=1)
    cols = np.arange(size)
    closed = np.zeros_like(m)
    closed[rows] = (cols >= first[:, None]) & (cols < end[:, None])
    return np.flatnonzero(closed), list(zip(rows.tolist(), first.tolist(), end.tolist(), strict=True))


def _finish_subject(
    frames: np.ndarray,
    static: np.ndarray,
    runs: list[tuple[int, int, int]],
    moving: np.ndarray,
    sigma: np.float32,
    window: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Assemble one subject's cine in place: ``frames`` ``(F, size, size)`` <- static background x bias
    ``(size, size)`` with the moving region ``moving`` ``(F, P)`` (already biased, row-major over ``runs``) pasted in,
    then Rician noise."""
    frames[:] = static
    start = 0
    for row, c0, c1 in runs:
        frames[:, row, c0:c1] = moving[:, start : start + c1 - c0]
        start += c1 - c0
    _rician_scale_(frames.reshape(frames.shape[0], -1), sigma, window, scratch)


def _output(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, got {out.dtype} {out.shape}")
    return out


def render_short_axis(
    geom: Mapping[str, np.ndarray],
    subj: Mapping[str, np.ndarray],
    rnd: SubjectRandom,
    out: np.ndarray | None = None,
) -> dict:
    """Mid-ventricular short-axis cine.

    Returns ``cine`` float32 ``(n, 50, 80, 80)`` in [0, 1] (frame 0 = ED; RV on the image left, anterior up; written
    into ``out`` when given) and ``lv_center`` ``(n, 2)`` (row, col) pixel position of the LV centre.
    """
    scene = _short_axis_scene(geom, subj, rnd)
    n, n_frames, hw = scene.n, scene.n_frames, SA_SIZE * SA_SIZE
    x, y = scene.x, scene.y
    offsets = _noise_offsets(rnd, "sa", 2 * n_frames * hw)
    bank = noise_bank()
    cine = _output(out, (n, n_frames, SA_SIZE, SA_SIZE))
    scratch = np.empty(max(_BLOCK_ELEMS, hw), dtype=np.float32)
    buffers = np.empty((2, max(_BLOCK_ELEMS, hw)), dtype=np.float32)
    for i in range(n):
        xi, yi = x[i, 0], y[i, 0]
        rho_all = np.sqrt(xi * xi + yi * yi)
        lv_reach = max(scene.r_epi_max[i] + scene.fat_reach[i], scene.blobs[0][3][i], scene.blobs[1][3][i])
        mask = (rho_all < lv_reach) | _near_box(xi, yi, scene.rv_box[i], scene.rv_wall[i] + scene.fat_reach[i])
        idx, runs = _row_runs(mask, SA_SIZE)
        moving = _short_axis_moving(scene, i, idx, xi[idx], yi[idx], rho_all[idx], buffers)
        window = bank[offsets[i] : offsets[i] + 2 * n_frames * hw]
        static = scene.static[i, 0].reshape(SA_SIZE, SA_SIZE)
        _finish_subject(cine[i], static, runs, moving, scene.sigma[i], window, scratch)
    return {"cine": cine, "lv_center": scene.origin}


def _short_axis_scene(geom: Mapping[str, np.ndarray], subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> Any:
    """Everything the short-axis frames are painted from: the pixel grid, the LV contours' Fourier coefficients, the
    RV ellipses, pericardium and papillary muscles, the static background, the noise level, and a conservative
    bound of the moving region."""
    endo = geom["endo_radius"].astype(np.float32)  # (n, F, A)
    wall = geom["wall_thickness"].astype(np.float32)
    n, n_frames, n_angles = endo.shape
    theta = geom["theta"]
    x, y, origin = _grid(rnd, SA_SIZE, "sa", 20.0, 4.0)
    proj = [np.full(n_angles, 1.0 / n_angles)]
    for k in range(1, _HARMONICS + 1):
        proj += [2.0 / n_angles * np.cos(k * theta), 2.0 / n_angles * np.sin(k * theta)]
    proj = np.stack(proj, axis=1).astype(np.float32)  # (A, 7)
    coef_endo = endo @ proj  # (n, F, 7) Fourier coefficients of the contours
    coef_epi = (endo + wall) @ proj

    epi_mean = (endo + wall).mean(axis=2)  # (n, F)
    # RV: an ellipse left of the LV whose area follows the RV volume; the septum is the LV wall.
    rv_len = 0.85 * geom["lv_length"][:, :1]
    rv_area = geom["rv_volume"] * 1000.0 / (0.65 * rv_len)  # (n, F) mm²
    b_rv = 1.15 * epi_mean
    a_rv = np.clip(0.45 * rv_area / (np.pi * b_rv), 5.0, None)
    cx_rv = -(epi_mean + 0.2 * a_rv)
    cy_rv = np.full_like(cx_rv, -3.0)
    eff = subj["pc_effusion_mm"].astype(np.float32)
    peri = subj["pc_thickening_mm"].astype(np.float32)
    static_bg = _background(rnd, x, y, "sa", (62.0, 50.0))  # (n, 1, HW)
    bias = _bias(rnd, x, y, "sa")
    # Papillary muscles: two dark blobs against the anterolateral and inferolateral wall (inside the blood pool,
    # which the UK Biobank contours include).
    endo_mean = endo.mean(axis=2)
    blobs = []
    for angle_deg, name in ((290.0, "pm_al"), (220.0, "pm_pm")):
        a = np.deg2rad(angle_deg + 10.0 * rnd.normal(name))
        rad = 0.72 * endo_mean
        px_ = (-np.sin(a))[:, None] * rad
        py_ = np.cos(a)[:, None] * rad
        size = (2.2 + 1.2 * (1.0 - endo_mean / endo_mean[:, :1])) * np.exp(0.15 * rnd.normal(name + "_s"))[:, None]
        reach = (rad + _BLOB_REACH * size).max(axis=1)  # (n,) mm from the LV centre
        blobs.append((px_.astype(np.float32), py_.astype(np.float32), (2.0 * size**2).astype(np.float32), reach))
    # Conservative region of the moving layers: the epicardial contour never exceeds c0 + sum_k |c_k|, the RV stays
    # in its bounding box; the outermost layer (fat) lies eff + peri + 3 mm outside the heart.
    harm = coef_epi[..., 1:].astype(np.float64).reshape(n, n_frames, _HARMONICS, 2)
    return SimpleNamespace(
        n=n, n_frames=n_frames, x=x, y=y, origin=origin, coef_endo=coef_endo, coef_epi=coef_epi,
        rv_params=[v.astype(np.float32) for v in (cx_rv, cy_rv, a_rv, b_rv)],  # (n, F) each
        rv_wall=np.where(subj["ph"], 3.5 + 4.0 * subj["ph_severity"], 3.5).astype(np.float32),  # (n,)
        eff=eff, peri=peri, static_bg=static_bg, bias=bias, static=static_bg * bias, blobs=blobs,
        sigma=(0.02 + 0.03 * rnd.uniform("sa_sigma")).astype(np.float32),
        r_epi_max=(coef_epi[..., 0] + np.sqrt((harm**2).sum(axis=3)).sum(axis=2)).max(axis=1),  # (n,)
        fat_reach=np.maximum(eff + peri + 3.0, 0.0) + _REACH_MM,
        rv_box=_ellipse_box(cx_rv, cy_rv, a_rv, b_rv),
    )  # fmt: skip


def _short_axis_moving(
    scene: Any, i: int, idx: np.ndarray, xc: np.ndarray, yc: np.ndarray, rho: np.ndarray, buffers: np.ndarray
) -> np.ndarray:
    """Subject ``i``'s moving pixels ``idx`` (at ``xc``, ``yc`` mm, ``rho`` from the LV centre) over the cycle:
    ``(F, P)`` float32 layers of fat, pericardium, effusion, RV and LV walls and blood, papillary muscles, times the
    coil bias."""
    ang = np.arctan2(-xc, yc)  # counter-clockwise from anterior towards the septum
    basis = [np.ones_like(ang)]
    for k in range(1, _HARMONICS + 1):
        basis += [np.cos(k * ang), np.sin(k * ang)]
    basis = np.stack(basis, axis=0).astype(np.float32)  # (7, P)
    bg_c, bias_c = scene.static_bg[i, 0, idx], scene.bias[i, 0, idx]
    eff, peri = scene.eff, scene.peri
    wall_i, off_fat, off_peri, eff_i = scene.rv_wall[i], eff[i] + peri[i] + 3.0, eff[i] + peri[i], eff[i]
    moving = np.empty((scene.n_frames, idx.size), dtype=np.float32)
    for fs in _frame_blocks(scene.n_frames, idx.size):
        d_epi = np.subtract(rho, scene.coef_epi[i, fs] @ basis)  # (f, P)
        d_endo = np.subtract(rho, scene.coef_endo[i, fs] @ basis)
        cx, cy, a_, b_ = (p[i, fs, None] for p in scene.rv_params)
        d_rv = _ellipse_distance(xc, yc, cx, cy, a_, b_)
        d_heart = np.minimum(d_epi, d_rv - wall_i)
        img = moving[fs]
        img[:] = bg_c
        scratch_f = (buffers[0][: img.size].reshape(img.shape), buffers[1][: img.size].reshape(img.shape))
        for dist, offset, intensity in (
            (d_heart, off_fat, I_FAT),
            (d_heart, off_peri, I_PERICARDIUM),
            (d_heart, eff_i, I_EFFUSION),
            (d_rv, wall_i, I_MYO),
            (d_rv, 0.0, I_BLOOD),
            (d_epi, 0.0, I_MYO),
            (d_endo, 0.0, I_BLOOD),
        ):
            _paint_layer(img, dist, offset, intensity, scratch_f)
        for px_, py_, two_s2, _ in scene.blobs:
            dx = xc - px_[i, fs, None]
            dy = yc - py_[i, fs, None]
            dx *= dx
            dy *= dy
            dx += dy
            blob = np.exp(np.divide(dx, -two_s2[i, fs, None], out=dx), out=dx)
            blob *= 0.65
            np.subtract(1.0, blob, out=blob)
            img *= blob
        img *= bias_c
    return moving


def render_four_chamber(
    geom: Mapping[str, np.ndarray],
    subj: Mapping[str, np.ndarray],
    rnd: SubjectRandom,
    out: np.ndarray | None = None,
) -> dict:
    """4-chamber long-axis cine ``(n, 50, 96, 96)`` float32 in [0, 1] (written into ``out`` when given): apex up,
    RV on the image left, atria below. The atrioventricular plane moves towards the fixed apex by MAPSE · s(t)."""
    scene = _four_chamber_scene(geom, subj, rnd)
    n, n_frames, hw = rnd.n, scene.n_frames, LA_SIZE * LA_SIZE
    offsets = _noise_offsets(rnd, "la", 2 * n_frames * hw)
    bank = noise_bank()
    cine = _output(out, (n, n_frames, LA_SIZE, LA_SIZE))
    scratch = np.empty(max(_BLOCK_ELEMS, hw), dtype=np.float32)
    buffers = np.empty((2, max(_BLOCK_ELEMS, hw)), dtype=np.float32)
    for i in range(n):
        xi, yi = scene.x[i, 0], scene.y[i, 0]
        mask = np.zeros(hw, dtype=bool)
        for name, box in scene.boxes.items():
            near = _near_box(xi, yi, box[i], scene.reach[name][i])
            if name in scene.plane_min:
                near &= yi > scene.plane_min[name][i] - scene.reach[name][i]
            mask |= near
        idx, runs = _row_runs(mask, LA_SIZE)
        moving = _four_chamber_moving(scene, i, idx, xi[idx], yi[idx], buffers)
        window = bank[offsets[i] : offsets[i] + 2 * n_frames * hw]
        static = scene.static[i, 0].reshape(LA_SIZE, LA_SIZE)
        _finish_subject(cine[i], static, runs, moving, scene.sigma[i], window, scratch)
    return {"cine": cine}


def _four_chamber_scene(geom: Mapping[str, np.ndarray], subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> Any:
    """Everything the 4-chamber frames are painted from: the pixel grid, half ellipses of the LV (endo- and
    epicardium), RV and atria with their base planes, the pericardium, the static background, the noise level, and a
    conservative bound of each shape's moving region."""
    n = rnd.n
    x, y, _ = _grid(rnd, LA_SIZE, "la", 12.0, 4.0)
    s = geom["s_curve"]  # (n, F)
    length = geom["lv_length"]  # (n, F)
    length_ed = length[:, :1]
    r_b = geom["endo_radius"].mean(axis=2)  # (n, F)
    wall = geom["wall_thickness"]
    t_lat = wall[:, :, 27:33].mean(axis=2)  # lateral (≈ 270-320°)
    t_sep = wall[:, :, 7:12].mean(axis=2)  # septal (≈ 70-120°)
    t_apex = geom["segment_wt"][:, 12:].mean(axis=1)[:, None] * np.ones_like(s)
    mapse = geom["mapse"][:, None]
    apex_y = 74.0
    base_y = apex_y - length_ed + mapse * s  # (n, F)
    x_lv = 0.6 * r_b[:, :1] + 4.0 + 0.0 * s
    # LV: half ellipse above the base plane; epicardium offset by septal / lateral / apical thickness.
    lv = (x_lv, base_y, r_b, length)
    lv_epi = (x_lv + (t_lat - t_sep) / 2.0, base_y, r_b + (t_lat + t_sep) / 2.0, length + t_apex)
    # RV: shorter half ellipse left of the septum, width from the RV volume.
    rv_len = 0.8 * length
    w_rv = np.sqrt(geom["rv_volume"] * 1000.0 / (2.2 * np.pi * rv_len))
    x_rv = x_lv - r_b - t_sep - w_rv + 2.0
    rv_base = base_y - 4.0 + 0.3 * mapse * s
    rv = (x_rv, rv_base, w_rv, rv_len)
    rv_wall = np.where(subj["ph"], 3.5 + 4.0 * subj["ph_severity"], 3.5).astype(np.float32)  # (n,)
    # Atria below the AV plane, sized by area-length inversion of their volume curves.
    la_len, ra_len = geom["la_len"], geom["ra_len"]
    w_la = geom["la_area"] / (np.pi * la_len / 2.0)
    w_ra = geom["ra_area"] / (np.pi * ra_len / 2.0)
    la = (x_lv - 2.0, base_y - la_len / 2.0 - 1.0, w_la, la_len / 2.0)
    ra = (x_rv + 2.0, rv_base - ra_len / 2.0 - 1.0, w_ra, ra_len / 2.0)
    shapes = {name: [np.asarray(v, dtype=np.float32) for v in p]
              for name, p in (("lv", lv), ("lv_epi", lv_epi), ("rv", rv), ("la", la), ("ra", ra))}  # fmt: skip
    eff = subj["pc_effusion_mm"].astype(np.float32)
    peri = subj["pc_thickening_mm"].astype(np.float32)
    static_bg = _background(rnd, x, y, "la", (80.0, 75.0))  # (n, 1, HW)
    bias = _bias(rnd, x, y, "la")
    # Conservative region of the moving layers: each shape's bounding box over the cycle, widened by its outermost
    # layer offset (fat: eff + peri + 3 mm outside the heart, 2 mm more outside the atria), cut by its base plane.
    fat_reach = np.maximum(eff + peri + 3.0, 0.0) + _REACH_MM  # (n,)
    return SimpleNamespace(
        n_frames=s.shape[1], x=x, y=y, shapes=shapes, rv_wall=rv_wall, eff=eff, peri=peri,
        planes={name: np.asarray(v, dtype=np.float32) for name, v in
                (("lv", base_y), ("lv_epi", base_y - 2.0), ("rv", rv_base))},  # (n, F) half-plane y levels
        static_bg=static_bg, bias=bias, static=static_bg * bias,
        sigma=(0.02 + 0.03 * rnd.uniform("la_sigma")).astype(np.float32),
        boxes={name: _ellipse_box(*p) for name, p in (("lv", lv), ("lv_epi", lv_epi), ("rv", rv), ("la", la),
                                                       ("ra", ra))},
        reach={"lv": np.full(n, _REACH_MM), "lv_epi": fat_reach, "rv": rv_wall + fat_reach, "la": 2.0 + fat_reach,
               "ra": 2.0 + fat_reach},
        plane_min={"lv": base_y.min(axis=1), "lv_epi": (base_y - 2.0).min(axis=1), "rv": rv_base.min(axis=1)},
    )  # fmt: skip


def _four_chamber_moving(
    scene: Any, i: int, idx: np.ndarray, xc: np.ndarray, yc: np.ndarray, buffers: np.ndarray
) -> np.ndarray:
    """Subject ``i``'s moving pixels ``idx`` (at ``xc``, ``yc`` mm) over the cycle: ``(F, P)`` float32 layers of fat,
    pericardium, effusion, atrial and ventricular walls and blood, times the coil bias."""
    bg_c, bias_c = scene.static_bg[i, 0, idx], scene.bias[i, 0, idx]
    eff, peri = scene.eff, scene.peri
    wall_i, off_fat, off_peri, eff_i = scene.rv_wall[i], eff[i] + peri[i] + 3.0, eff[i] + peri[i], eff[i]
    moving = np.empty((scene.n_frames, idx.size), dtype=np.float32)
    for fs in _frame_blocks(scene.n_frames, idx.size):
        d = {name: _ellipse_distance(xc, yc, *(p[i, fs, None] for p in par)) for name, par in scene.shapes.items()}
        for name, level in scene.planes.items():
            np.maximum(d[name], level[i, fs, None] - yc, out=d[name])
        d_heart = np.minimum(d["lv_epi"], d["rv"] - wall_i)
        d_atria = np.minimum(d["la"], d["ra"])
        img = moving[fs]
        img[:] = bg_c
        scratch_f = (buffers[0][: img.size].reshape(img.shape), buffers[1][: img.size].reshape(img.shape))
        for dist, offset, intensity in (
            (np.minimum(d_heart, d_atria - 2.0), off_fat, I_FAT),
            (d_heart, off_peri, I_PERICARDIUM),
            (d_heart, eff_i, I_EFFUSION),
            (d_atria, 2.0, I_MYO),
            (d_atria, 0.0, I_BLOOD),
            (d["rv"], wall_i, I_MYO),
            (d["rv"], 0.0, I_BLOOD),
            (d["lv_epi"], 0.0, I_MYO),
            (d["lv"], 0.0, I_BLOOD),
        ):
            _paint_layer(img, dist, offset, intensity, scratch_f)
        img *= bias_c
    return moving
