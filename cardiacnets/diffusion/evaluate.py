"""Faithfulness of generated cines (CardiacNets Fig. 4b/4c): phenotypes measured from images, real vs generated.

The same image measurement runs on real and generated short-axis cines, so its biases cancel in the comparison:

* each frame is split into three intensity classes (3-class Otsu): dark (air, lung), mid (myocardium, tissue),
  bright (blood pools, bSSFP contrast);
* the bright connected components are the blood pools: the LV is the most compact large one (a disc), the RV the
  other large one (a crescent);
* the LV myocardium is the mid-class ring around the LV pool (within ``ring_factor`` LV radii).

Proxies (pixel units; only correlations are reported): volume = area ** 1.5 (sphere-equivalent), EDV = max and ESV =
min over the cycle, EF = (EDV - ESV) / EDV, LVM = myocardial ring area at end diastole (one mid-ventricular slice;
kept free of LV size so the LVM correlation is not LVEDV's in disguise).

The 4-chamber long-axis view is measured by :mod:`cardiacnets.diffusion.measure_la` (LV and LA areas, area-length
volumes, LV long-axis length); :func:`measure_cines` measures either view. The study functions
(:func:`faithfulness_study`) compare generated-vs-real Pearson r, with paired bootstrap intervals, against two
controls: the same model conditioned on a shuffled ECG, and unconditional samples. Image similarity is SSIM (Gaussian
window, Wang et al. 2004) and PSNR against the real cine. Measurement functions need only numpy/scipy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage, stats

from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)

#: Measured phenotype proxies, and the canonical phenotype each one stands for.
PHENOTYPES: tuple[str, ...] = ("LVEDV", "LVESV", "LVEF", "LVM", "RVEDV", "RVESV", "RVEF")


# ------------------------------------------------------------------------------------------------ segmentation
def otsu_thresholds(image: np.ndarray, classes: int = 3, bins: int = 64) -> tuple[float, ...]:
    """Multi-level Otsu thresholds (2 or 3 classes) of the intensities of ``image``, by exhaustive search."""
    values = np.asarray(image, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-8:
        return (lo,) * (classes - 1)
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2.0
    cum_p = np.concatenate([[0.0], np.cumsum(p)])
    cum_m = np.concatenate([[0.0], np.cumsum(p * centers)])

    def between(a: int, b: int) -> float:  # weight * mean^2 of bins [a, b)
        w = cum_p[b] - cum_p[a]
        return 0.0 if w <= 0 else (cum_m[b] - cum_m[a]) ** 2 / w

    if classes == 2:
        best = max(range(1, bins), key=lambda k: between(0, k) + between(k, bins))
        return (float(edges[best]),)
    if classes != 3:
        raise InputError(f"classes must be 2 or 3; got {classes}")
    best_score, best_pair = -1.0, (1, 2)
    for k1 in range(1, bins - 1):
        left = between(0, k1)
        for k2 in range(k1 + 1, bins):
            score = left + between(k1, k2) + between(k2, bins)
            if score > best_score:
                best_score, best_pair = score, (k1, k2)
    return float(edges[best_pair[0]]), float(edges[best_pair[1]])


def compactness(mask: np.ndarray) -> float:
    """Area / area of the disc through the farthest pixel from the centroid (1 for a disc, small for a crescent)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0.0
    r_max = np.sqrt((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2).max() + 0.5
    return float(len(ys) / (math.pi * r_max**2))


@dataclass
class FrameSegmentation:
    """Masks of one short-axis frame ``(H, W)`` bool."""

    lv: np.ndarray
    rv: np.ndarray
    myo: np.ndarray


def segment_sa_frame(frame: np.ndarray, min_area: int = 12, ring_factor: float = 0.8) -> FrameSegmentation:
    """Segment LV pool, RV pool and LV myocardium of one short-axis frame.

    Args:
        frame: ``(H, W)`` intensities (any range; bright blood).
        min_area: smallest blood-pool component kept, in pixels.
        ring_factor: the myocardium is searched within ``ring_factor * r_LV + 2`` pixels of the LV pool.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2:
        raise InputError(f"a frame must be (H, W); got shape {frame.shape}")
    empty = np.zeros(frame.shape, dtype=bool)
    t_low, t_high = otsu_thresholds(ndimage.gaussian_filter(frame, 0.5), classes=3)
    bright = frame > t_high
    labels, n = ndimage.label(bright)
    if n == 0:
        return FrameSegmentation(empty, empty.copy(), empty.copy())
    areas = ndimage.sum_labels(bright, labels, index=np.arange(1, n + 1))
    candidates = [i + 1 for i in np.argsort(areas)[::-1][:3] if areas[i] >= min_area]
    if not candidates:
        return FrameSegmentation(empty, empty.copy(), empty.copy())
    # LV: among the two largest pools, the more compact (disc vs crescent)
    top = candidates[:2]
    lv_label = max(top, key=lambda k: compactness(labels == k))
    lv = ndimage.binary_fill_holes(labels == lv_label)
    rv_labels = [k for k in top if k != lv_label]
    rv = ndimage.binary_fill_holes(labels == rv_labels[0]) if rv_labels else empty.copy()
    r_lv = math.sqrt(lv.sum() / math.pi)
    reach = int(math.ceil(ring_factor * r_lv + 2))
    dist = ndimage.distance_transform_edt(~lv)
    mid = (frame > t_low) & ~bright
    ring = mid & (dist <= reach) & ~lv & ~rv
    # keep only tissue connected to the LV boundary
    ring_labels, n_ring = ndimage.label(ring | lv)
    lv_component = ring_labels[lv][0] if lv.any() else 0
    myo = (ring_labels == lv_component) & ring if n_ring else empty.copy()
    return FrameSegmentation(lv, rv, myo)


def measure_sa_cine(cine: np.ndarray) -> dict[str, float]:
    """Phenotype proxies of one short-axis cine ``(F, H, W)`` (see the module docstring for definitions).

    Returns:
        ``{"LVEDV", "LVESV", "LVEF", "LVM", "RVEDV", "RVESV", "RVEF"}`` plus per-frame areas
        ``"lv_area"``/``"rv_area"``/``"myo_area"`` (lists, pixels).
    """
    cine = np.asarray(cine, dtype=np.float64)
    if cine.ndim != 3 or cine.shape[0] < 1:
        raise InputError(f"a cine must be (frames, H, W); got shape {cine.shape}")
    if not np.isfinite(cine).all():
        raise InputError("cine contains NaN or infinite values")
    segs = [segment_sa_frame(frame) for frame in cine]
    lv_area = np.array([s.lv.sum() for s in segs], dtype=np.float64)
    rv_area = np.array([s.rv.sum() for s in segs], dtype=np.float64)
    myo_area = np.array([s.myo.sum() for s in segs], dtype=np.float64)
    lv_vol, rv_vol = lv_area**1.5, rv_area**1.5
    ed = int(np.argmax(lv_area))

    def ef(vol: np.ndarray) -> float:
        return float((vol.max() - vol.min()) / vol.max()) if vol.max() > 0 else float("nan")

    return {
        "LVEDV": float(lv_vol.max()),
        "LVESV": float(lv_vol.min()),
        "LVEF": ef(lv_vol),
        "LVM": float(myo_area[ed]),
        "RVEDV": float(rv_vol.max()),
        "RVESV": float(rv_vol.min()),
        "RVEF": ef(rv_vol),
        "lv_area": lv_area.tolist(),
        "rv_area": rv_area.tolist(),
        "myo_area": myo_area.tolist(),
    }


def view_phenotypes(view: str) -> tuple[str, ...]:
    """The phenotype proxies measured on cines of ``view``: :data:`PHENOTYPES` for the short axis, the 4-chamber
    view's :data:`~cardiacnets.diffusion.measure_la.LA_PHENOTYPES`."""
    from cardiacnets.diffusion.measure_la import LA_PHENOTYPES

    known = {"sa": PHENOTYPES, "la": LA_PHENOTYPES}
    if view not in known:
        raise InputError(f"unknown cine view {view!r}; known: {', '.join(sorted(known))}")
    return known[view]


def measure_cines(cines: np.ndarray, view: str = "sa") -> dict[str, np.ndarray]:
    """Measure a batch ``(B, F, H, W)`` of ``view`` cines; returns phenotype name -> ``(B,)`` array."""
    from cardiacnets.diffusion.measure_la import measure_la_cine

    names = view_phenotypes(view)
    measure = measure_sa_cine if view == "sa" else measure_la_cine
    rows = [measure(c) for c in np.asarray(cines)]
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in names}


# ------------------------------------------------------------------------------------------- image similarity
def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean SSIM of two images or frame stacks ``(..., H, W)`` with a Gaussian window (per frame, then averaged)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise InputError(f"ssim needs two arrays of the same (..., H, W) shape; got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    sig = [0.0] * (a.ndim - 2) + [sigma, sigma]

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sig, truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shape arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"psnr needs two arrays of the same shape; got {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


# ----------------------------------------------------------------------------------------------- statistics
def _resampled_r(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pearson r of ``x`` and ``y`` on each bootstrap resample ``idx (resamples, n)`` -> ``(resamples,)``; NaN where a
    resample is constant."""
    xs, ys = x[idx], y[idx]
    xs = xs - xs.mean(axis=1, keepdims=True)
    ys = ys - ys.mean(axis=1, keepdims=True)
    denom = np.sqrt((xs**2).sum(axis=1) * (ys**2).sum(axis=1))
    return np.where(denom > 0, (xs * ys).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)


def pearson_with_ci(
    x: np.ndarray, y: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Pearson r of paired samples with a percentile bootstrap interval (resampling subjects).

    Returns ``{"value": r, "ci": [low, high]}``; NaN when a side is constant.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"value": float("nan"), "ci": [float("nan"), float("nan")], "n": int(len(x))}
    r = float(stats.pearsonr(x, y)[0])
    rng = np.random.default_rng(seed)
    boot = _resampled_r(x, y, rng.integers(0, len(x), size=(n_resamples, len(x))))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(boot, [alpha, 1.0 - alpha])
    return {"value": r, "ci": [float(low), float(high)], "n": int(len(x))}


def paired_r_difference(
    a: np.ndarray, b: np.ndarray, real: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """``r(a, real) - r(b, real)`` with a paired percentile bootstrap interval (the same subjects resampled for both).

    The test that a condition beats a control: an interval above 0 means ``a`` tracks ``real`` better than ``b``
    does on these subjects. Returns ``{"value", "ci", "n"}``; NaN when any side is constant.
    """
    a, b, real = (np.asarray(v, dtype=np.float64) for v in (a, b, real))
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(real)
    a, b, real = a[ok], b[ok], real[ok]
    nan = {"value": float("nan"), "ci": [float("nan"), float("nan")], "n": int(len(a))}
    if len(a) < 3 or min(np.std(a), np.std(b), np.std(real)) == 0:
        return nan
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_resamples, len(a)))
    value = float(stats.pearsonr(a, real)[0] - stats.pearsonr(b, real)[0])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(_resampled_r(a, real, idx) - _resampled_r(b, real, idx), [alpha, 1.0 - alpha])
    return {"value": value, "ci": [float(low), float(high)], "n": int(len(a))}


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (n >= 2): the shuffled-ECG control."""
    if n < 2:
        raise InputError("the shuffled-ECG control needs at least 2 subjects")
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


# ---------------------------------------------------------------------------------------------------- study
@dataclass
class StudySettings:
    """Sampling settings of a faithfulness study."""

    guidance_scale: float = 3.0
    seed: int = 0
    batch_size: int = 4
    n_bootstrap: int = 1000
    samplers: tuple[tuple[str, str, int], ...] = (("dpm20", "dpm", 20), ("ddim100", "ddim", 100))


def faithfulness_study(pipeline: Any, ecgs: np.ndarray, real_cines: np.ndarray, settings: StudySettings) -> dict:
    """Generated-vs-real phenotype correlation against controls, image similarity and speed per sampler.

    Args:
        pipeline: an :class:`~cardiacnets.diffusion.pipeline.EcgToCmrPipeline` of either view; its view chooses the
            measurement (:func:`view_phenotypes`).
        ecgs: ``(N, 12, 5000)`` preprocessed test ECGs.
        real_cines: ``(N, F, H, W)`` the same subjects' real cines, at the pipeline's frames and resolution.
        settings: sampling and bootstrap settings; the first sampler runs the three conditions.

    Returns:
        ``{"conditional"|"shuffled_ecg"|"unconditional"|"autoencoder": {phenotype: {"value", "ci", "n"}},
        "conditional_minus": {"shuffled_ecg"|"unconditional": {phenotype: paired difference}}, "ssim"|"psnr"|
        "seconds_per_cine": {sampler name: float}, "settings": ..., "n_subjects": N}``. ``autoencoder`` is the
        ceiling: the real cines passed through the pipeline's autoencoder (encode, decode) and measured; a generated
        cine cannot track the real one better than its own autoencoder does. ``conditional_minus`` holds
        :func:`paired_r_difference` of the conditional samples against each control. SSIM/PSNR compare the
        conditional samples with the real cines. ``frames_with_heart`` holds, per condition, the share of frames
        that show a heart (:func:`~cardiacnets.diffusion.frame_quality.fraction_with_heart`).
    """
    from cardiacnets.diffusion.frame_quality import fraction_with_heart

    ecgs = np.asarray(ecgs, dtype=np.float32)
    real_cines = np.asarray(real_cines, dtype=np.float32)
    n = len(ecgs)
    if len(real_cines) != n:
        raise InputError(f"{n} ECGs but {len(real_cines)} real cines")
    expected = (pipeline.config.num_frames, pipeline.config.height, pipeline.config.width)
    if tuple(real_cines.shape[1:]) != expected:
        raise InputError(f"real cines are {real_cines.shape[1:]}; the pipeline generates {expected}")
    perm = derangement(n, np.random.default_rng(settings.seed))
    view = getattr(pipeline.config, "view", "sa")
    names = view_phenotypes(view)
    real_ph = measure_cines(real_cines, view)
    heart: dict[str, float] = {"real": fraction_with_heart(real_cines, view)}

    results: dict[str, Any] = {"n_subjects": n, "settings": asdict(settings)}
    per_sampler: dict[str, dict[str, float]] = {}
    first_name, first_sampler, first_steps = settings.samplers[0]
    conditions = {"conditional": ecgs, "shuffled_ecg": ecgs[perm], "unconditional": None}
    measured: dict[str, dict[str, np.ndarray]] = {}
    for condition, cond_ecgs in conditions.items():
        cines, seconds = _generate(pipeline, cond_ecgs, n, first_sampler, first_steps, settings)
        measured[condition] = measure_cines(cines, view)
        heart[condition] = fraction_with_heart(cines, view)
        if condition == "conditional":
            per_sampler[first_name] = _similarity(cines, real_cines, seconds)
    round_trip = _autoencoder_round_trip(pipeline, real_cines, settings.batch_size)
    measured["autoencoder"] = measure_cines(round_trip, view)
    heart["autoencoder"] = fraction_with_heart(round_trip, view)
    results["frames_with_heart"] = heart
    for condition, gen_ph in measured.items():
        results[condition] = {
            name: pearson_with_ci(gen_ph[name], real_ph[name], settings.n_bootstrap, seed=settings.seed)
            for name in names
        }
        logger.info("faithfulness %s: LVEDV r=%.3f", condition, results[condition]["LVEDV"]["value"])
    results["conditional_minus"] = {
        control: {
            name: paired_r_difference(
                measured["conditional"][name],
                measured[control][name],
                real_ph[name],
                settings.n_bootstrap,
                seed=settings.seed,
            )
            for name in names
        }
        for control in ("shuffled_ecg", "unconditional")
    }
    for name, sampler, steps in settings.samplers[1:]:
        cines, seconds = _generate(pipeline, ecgs, n, sampler, steps, settings)
        per_sampler[name] = _similarity(cines, real_cines, seconds)
    for metric in ("ssim", "psnr", "seconds_per_cine"):
        results[metric] = {name: values[metric] for name, values in per_sampler.items()}
    return results


def _generate(
    pipeline: Any, condition_ecgs: np.ndarray | None, n: int, sampler: str, steps: int, settings: StudySettings
) -> tuple[np.ndarray, float]:
    """``n`` cines conditioned on ``condition_ecgs`` (None: unconditional) in batches, seeded per batch; the cines and
    the seconds per cine."""
    out, seconds = [], 0.0
    for start in range(0, n, settings.batch_size):
        stop = min(n, start + settings.batch_size)
        batch = None if condition_ecgs is None else condition_ecgs[start:stop]
        cines, per = pipeline.timed_call(
            batch,
            batch_size=None if batch is not None else stop - start,
            num_inference_steps=steps,
            scheduler=sampler,
            guidance_scale=settings.guidance_scale,
            seed=settings.seed + start,
        )
        out.append(cines)
        seconds += per * (stop - start)
    return np.concatenate(out), seconds / n


def _autoencoder_round_trip(pipeline: Any, cines: np.ndarray, batch_size: int) -> np.ndarray:
    """Real cines ``(N, F, H, W)`` encoded and decoded by the pipeline's autoencoder (posterior means)."""
    import torch

    from cardiacnets.diffusion.vae import decode_latents, encode_cine

    out = []
    with torch.no_grad():
        for start in range(0, len(cines), batch_size):
            batch = torch.from_numpy(cines[start : start + batch_size])
            out.append(decode_latents(pipeline.vae, encode_cine(pipeline.vae, batch)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _similarity(generated: np.ndarray, real: np.ndarray, seconds: float) -> dict[str, float]:
    return {
        "ssim": float(np.mean([ssim(g, r) for g, r in zip(generated, real, strict=True)])),
        "psnr": float(np.mean([psnr(g, r) for g, r in zip(generated, real, strict=True)])),
        "seconds_per_cine": float(seconds),
    }
