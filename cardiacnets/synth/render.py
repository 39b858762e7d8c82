"""Cine CMR rendering: mid-ventricular short axis ``(50, 80, 80)`` and 4-chamber ``(50, 96, 96)``, float32 in [0, 1].

Shapes are drawn as signed distances (negative inside, mm) and turned into partial-volume fractions
``clip(0.5 - d / pixel, 0, 1)``, which anti-aliases every edge. Layers are painted from the outside in with bSSFP-like
relative intensities (blood 1.0, fat 0.8, effusion 0.9, myocardium 0.3, pericardium 0.12; domain-notes 4.3), then a
smooth multiplicative coil bias field, Rician noise and per-sequence scaling to [0, 1]. Pose jitter (rotation,
translation) is applied to the pixel grid, so it costs nothing. Everything is vectorised over subjects and frames;
the short-axis contours go through a 3-harmonic Fourier series so that drawing them is one batched matmul.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cardiacnets.synth._random import SubjectRandom

SA_SIZE = 80
LA_SIZE = 96
PIXEL_MM = 1.8
_HARMONICS = 3

I_BLOOD, I_MYO, I_FAT, I_EFFUSION, I_PERICARDIUM = 1.0, 0.3, 0.8, 0.9, 0.12


def _frac(d: np.ndarray, offset: float | np.ndarray = 0.0) -> np.ndarray:
    """Partial-volume occupancy of a shape with signed distance ``d`` (mm) shifted outwards by ``offset`` mm."""
    out = (offset - d) * (1.0 / PIXEL_MM) + 0.5
    return np.clip(out, 0.0, 1.0, out=out)


def _paint(img: np.ndarray, frac: np.ndarray, intensity: float | np.ndarray) -> None:
    """img <- img + frac * (intensity - img), in place."""
    tmp = np.subtract(intensity, img)
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
        x.reshape(n, 1, -1).astype(np.float32),
        y.reshape(n, 1, -1).astype(np.float32),
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


def _rician_scale(rnd: SubjectRandom, img: np.ndarray, view: str) -> np.ndarray:
    """Add Rician noise (σ 2-5 % of blood) and scale each sequence to [0, 1]. ``img`` ``(n, F, HW)``."""
    n, f, hw = img.shape
    sigma = (0.02 + 0.03 * rnd.uniform(f"{view}_sigma")).astype(np.float32)[:, None, None]
    noise = rnd.bank_windows(f"{view}_noise", 2 * f * hw).reshape(n, 2, f, hw)
    real = img + sigma * noise[:, 0]
    imag = sigma * noise[:, 1]
    out = np.sqrt(real * real + imag * imag)
    out /= out.reshape(n, -1).max(axis=1)[:, None, None]
    return out


def _ellipse_distance(x: np.ndarray, y: np.ndarray, cx, cy, a, b) -> np.ndarray:  # noqa: ANN001
    """Approximate signed distance (mm) to an axis-aligned ellipse: the radial gap to the boundary along the ray
    from its centre. Exact for circles, within a few percent for the mild eccentricities drawn here."""
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


def render_short_axis(geom: Mapping[str, np.ndarray], subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> dict:
    """Mid-ventricular short-axis cine.

    Returns ``cine`` float32 ``(n, 50, 80, 80)`` in [0, 1] (frame 0 = ED; RV on the image left, anterior up) and
    ``lv_center`` ``(n, 2)`` (row, col) pixel position of the LV centre.
    """
    endo = geom["endo_radius"].astype(np.float32)  # (n, F, A)
    wall = geom["wall_thickness"].astype(np.float32)
    n, n_frames, n_angles = endo.shape
    theta = geom["theta"]
    x, y, origin = _grid(rnd, SA_SIZE, "sa", 20.0, 4.0)
    rho = np.sqrt(x * x + y * y)  # (n, 1, HW)
    ang = np.arctan2(-x, y)  # counter-clockwise from anterior towards the septum
    basis = [np.ones_like(ang)]
    for k in range(1, _HARMONICS + 1):
        basis += [np.cos(k * ang), np.sin(k * ang)]
    basis = np.concatenate(basis, axis=1).astype(np.float32)  # (n, 7, HW)
    proj = [np.full(n_angles, 1.0 / n_angles)]
    for k in range(1, _HARMONICS + 1):
        proj += [2.0 / n_angles * np.cos(k * theta), 2.0 / n_angles * np.sin(k * theta)]
    proj = np.stack(proj, axis=1).astype(np.float32)  # (A, 7)
    r_endo = np.matmul(endo @ proj, basis)  # (n, F, HW)
    r_epi = np.matmul((endo + wall) @ proj, basis)

    d_epi = rho - r_epi
    d_endo = rho - r_endo
    epi_mean = (endo + wall).mean(axis=2)  # (n, F)
    # RV: an ellipse left of the LV whose area follows the RV volume; the septum is the LV wall.
    rv_len = 0.85 * geom["lv_length"][:, :1]
    rv_area = geom["rv_volume"] * 1000.0 / (0.65 * rv_len)  # (n, F) mm²
    b_rv = 1.15 * epi_mean
    a_rv = np.clip(0.45 * rv_area / (np.pi * b_rv), 5.0, None)
    cx_rv = -(epi_mean + 0.2 * a_rv)
    cy_rv = np.full_like(cx_rv, -3.0)
    f32 = lambda v: v.astype(np.float32)[:, :, None]  # noqa: E731
    d_rv = _ellipse_distance(x, y, f32(cx_rv), f32(cy_rv), f32(a_rv), f32(b_rv))
    rv_wall = np.where(subj["ph"], 3.5 + 4.0 * subj["ph_severity"], 3.5).astype(np.float32)[:, None, None]
    d_heart = np.minimum(d_epi, d_rv - rv_wall)
    eff = subj["pc_effusion_mm"].astype(np.float32)[:, None, None]
    peri = subj["pc_thickening_mm"].astype(np.float32)[:, None, None]

    img = np.broadcast_to(_background(rnd, x, y, "sa", (62.0, 50.0)), d_epi.shape).copy()
    _paint(img, _frac(d_heart, eff + peri + 3.0), I_FAT)
    _paint(img, _frac(d_heart, eff + peri), I_PERICARDIUM)
    _paint(img, _frac(d_heart, eff), I_EFFUSION)
    _paint(img, _frac(d_rv, rv_wall), I_MYO)
    _paint(img, _frac(d_rv), I_BLOOD)
    _paint(img, _frac(d_epi), I_MYO)
    _paint(img, _frac(d_endo), I_BLOOD)
    # Papillary muscles: two dark blobs against the anterolateral and inferolateral wall (inside the blood pool,
    # which the UK Biobank contours include).
    endo_mean = endo.mean(axis=2)
    for angle_deg, name in ((290.0, "pm_al"), (220.0, "pm_pm")):
        a = np.deg2rad(angle_deg + 10.0 * rnd.normal(name))
        rad = 0.72 * endo_mean
        px_ = (-np.sin(a))[:, None] * rad
        py_ = np.cos(a)[:, None] * rad
        size = (2.2 + 1.2 * (1.0 - endo_mean / endo_mean[:, :1])) * np.exp(0.15 * rnd.normal(name + "_s"))[:, None]
        dist2 = (x - f32(px_)) ** 2 + (y - f32(py_)) ** 2
        blob = np.exp(-dist2 / f32(2.0 * size**2))
        blob *= 0.65
        img *= 1.0 - blob
    img *= _bias(rnd, x, y, "sa")
    cine = _rician_scale(rnd, img, "sa").reshape(n, n_frames, SA_SIZE, SA_SIZE)
    return {"cine": cine, "lv_center": origin}


def render_four_chamber(geom: Mapping[str, np.ndarray], subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> dict:
    """4-chamber long-axis cine ``(n, 50, 96, 96)`` float32 in [0, 1]: apex up, RV on the image left, atria below.
    The atrioventricular plane moves towards the fixed apex by MAPSE · s(t)."""
    n = rnd.n
    x, y, _ = _grid(rnd, LA_SIZE, "la", 12.0, 4.0)
    f32 = lambda v: np.asarray(v, dtype=np.float32)[:, :, None]  # noqa: E731
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
    d_lv = np.maximum(_ellipse_distance(x, y, f32(x_lv), f32(base_y), f32(r_b), f32(length)), f32(base_y) - y)
    epi_cx = x_lv + (t_lat - t_sep) / 2.0
    epi_a = r_b + (t_lat + t_sep) / 2.0
    d_lv_epi = np.maximum(
        _ellipse_distance(x, y, f32(epi_cx), f32(base_y), f32(epi_a), f32(length + t_apex)), f32(base_y - 2.0) - y
    )
    # RV: shorter half ellipse left of the septum, width from the RV volume.
    rv_len = 0.8 * length
    w_rv = np.sqrt(geom["rv_volume"] * 1000.0 / (2.2 * np.pi * rv_len))
    x_rv = x_lv - r_b - t_sep - w_rv + 2.0
    rv_base = base_y - 4.0 + 0.3 * mapse * s
    d_rv = np.maximum(_ellipse_distance(x, y, f32(x_rv), f32(rv_base), f32(w_rv), f32(rv_len)), f32(rv_base) - y)
    rv_wall = np.where(subj["ph"], 3.5 + 4.0 * subj["ph_severity"], 3.5).astype(np.float32)[:, None, None]
    # Atria below the AV plane, sized by area-length inversion of their volume curves.
    la_len, ra_len = geom["la_len"], geom["ra_len"]
    w_la = geom["la_area"] / (np.pi * la_len / 2.0)
    w_ra = geom["ra_area"] / (np.pi * ra_len / 2.0)
    d_la = _ellipse_distance(x, y, f32(x_lv - 2.0), f32(base_y - la_len / 2.0 - 1.0), f32(w_la), f32(la_len / 2.0))
    d_ra = _ellipse_distance(x, y, f32(x_rv + 2.0), f32(rv_base - ra_len / 2.0 - 1.0), f32(w_ra), f32(ra_len / 2.0))

    d_heart = np.minimum(d_lv_epi, d_rv - rv_wall)
    eff = subj["pc_effusion_mm"].astype(np.float32)[:, None, None]
    peri = subj["pc_thickening_mm"].astype(np.float32)[:, None, None]
    img = np.broadcast_to(_background(rnd, x, y, "la", (80.0, 75.0)), d_lv.shape).copy()
    d_atria = np.minimum(d_la, d_ra)
    _paint(img, _frac(np.minimum(d_heart, d_atria - 2.0), eff + peri + 3.0), I_FAT)
    _paint(img, _frac(d_heart, eff + peri), I_PERICARDIUM)
    _paint(img, _frac(d_heart, eff), I_EFFUSION)
    _paint(img, _frac(d_atria, 2.0), I_MYO)
    _paint(img, _frac(d_atria), I_BLOOD)
    _paint(img, _frac(d_rv, rv_wall), I_MYO)
    _paint(img, _frac(d_rv), I_BLOOD)
    _paint(img, _frac(d_lv_epi), I_MYO)
    _paint(img, _frac(d_lv), I_BLOOD)
    img *= _bias(rnd, x, y, "la")
    cine = _rician_scale(rnd, img, "la").reshape(n, s.shape[1], LA_SIZE, LA_SIZE)
    return {"cine": cine}
