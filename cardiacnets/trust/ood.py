"""Out-of-distribution check: is this ECG like the ECGs the bundle's model was trained on?

Four views of one ECG, each scored by a distance to the training data:

* ``embedding`` (what the model sees): the screening graph's pooled encoder embedding;
* ``morphology``: the median beat of every lead (R-peak aligned, -250 to +400 ms, 100 Hz, mV), the shapes of P, QRS
  and T that a generator or another population draws differently;
* ``spectrum``: each lead's relative power spectrum, 0.5-100 Hz in 4-Hz bands (cart filters, sampling rate, mains,
  noise, pacing spikes);
* ``statistics``: :data:`SIGNAL_FEATURES`, scalar measures a clinician can name (amplitudes per lead, heart rate,
  frontal QRS axis, a QRS-width proxy, spectral band shares, mains peaks, spikes, noise), which also serve to say in
  plain words why an ECG was flagged (:func:`explain`).

The first three are scored by a Mahalanobis distance under a probabilistic-PCA fit of the training data (Tipping &
Bishop 1999; the feature-space Gaussian of Lee et al. 2018): the leading components that explain most of the variance
keep their own variances, the rest share one residual variance, so the residual of a shape the training data never
showed counts fully. ``statistics`` uses a shrunk Mahalanobis distance after robust standardisation. Every signal view
is computed on the raw 10-s, 500-Hz window the model's input is cut from, before any cleaning.

Each distance is divided by its validation split's 99th percentile and an ECG's score is the largest of the four; it
is out of distribution above the threshold, the validation split's ``1 - alpha`` quantile of that score (``alpha``
0.02 by default). Pure numpy and scipy; fitted by ``cardiacnets.export`` when a bundle is built, applied by the edge to
every ECG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cardiacnets.errors import InputError

__all__ = [
    "FEATURE_WORDS",
    "SIGNAL_FEATURES",
    "SIGNAL_VIEWS",
    "VIEWS",
    "explain",
    "fit_ood",
    "fit_ppca",
    "fit_robust_mahalanobis",
    "lead_spectra",
    "median_beat",
    "ood_scores",
    "ppca_distance",
    "robust_mahalanobis_distance",
    "signal_features",
    "signal_views",
    "spectrum_profile",
]

#: The views an ECG is scored in; all but the embedding come from the raw signal (:func:`signal_views`).
VIEWS: tuple[str, ...] = ("embedding", "morphology", "spectrum", "statistics")
SIGNAL_VIEWS: tuple[str, ...] = ("morphology", "spectrum", "statistics")
#: Median-beat window around the R peak (samples at 500 Hz) and its decimation to 100 Hz.
_BEAT_BEFORE, _BEAT_AFTER, _BEAT_STEP = 125, 200, 5

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500.0
_BANDS = ((0.0, 0.67), (0.67, 5.0), (5.0, 15.0), (15.0, 40.0), (40.0, 100.0), (100.0, 250.0))
SIGNAL_FEATURES: tuple[str, ...] = (
    *(f"amplitude_{lead}" for lead in LEADS),
    "heart_rate",
    "qrs_axis_cos",
    "qrs_axis_sin",
    "qrs_width_proxy",
    *(f"band_{lo:g}_{hi:g}_hz" for lo, hi in _BANDS),
    "mains_50_hz",
    "mains_60_hz",
    "spikes",
    "hf_noise",
)
#: Plain words for each feature, for the explanation shown to a clinician.
FEATURE_WORDS: dict[str, str] = {
    **{f"amplitude_{lead}": f"lead {lead} amplitude" for lead in LEADS},
    "heart_rate": "heart rate",
    "qrs_axis_cos": "QRS axis",
    "qrs_axis_sin": "QRS axis",
    "qrs_width_proxy": "QRS width",
    "band_0_0.67_hz": "baseline wander",
    "band_0.67_5_hz": "low-frequency content",
    "band_5_15_hz": "mid-frequency content",
    "band_15_40_hz": "high-frequency content",
    "band_40_100_hz": "content above 40 Hz (cart filter)",
    "band_100_250_hz": "content above 100 Hz (cart filter, sampling rate)",
    "mains_50_hz": "50 Hz mains interference",
    "mains_60_hz": "60 Hz mains interference",
    "spikes": "sharp spikes (pacing or artefact)",
    "hf_noise": "high-frequency noise",
}
_LOG_FLOOR = 1e-6
_WELCH = 1000  # samples per Welch segment (2 s at 500 Hz)


def _segments(x: np.ndarray, length: int, step: int) -> np.ndarray:
    """``(..., S, length)`` overlapping segments of the last axis (a view)."""
    n = x.shape[-1]
    if n < length:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (length - n,), x.dtype)], axis=-1)
        n = length
    count = 1 + (n - length) // step
    return np.lib.stride_tricks.sliding_window_view(x, length, axis=-1)[..., ::step, :][..., :count, :]


def lead_spectra(window: np.ndarray) -> np.ndarray:
    """Welch power spectrum of each lead: ``(..., 12, 501)`` for ``(..., 12, n)`` mV at 500 Hz, 2-s Hann segments at
    half overlap, each segment's mean removed (short records: one zero-padded segment); frequencies
    ``np.fft.rfftfreq(1000, 1 / 500)`` (0.5-Hz bins)."""
    x = np.asarray(window, dtype=np.float64)
    segments = _segments(x, _WELCH, _WELCH // 2)  # (..., 12, S, 1000)
    segments = segments - segments.mean(axis=-1, keepdims=True)
    return (np.abs(np.fft.rfft(segments * np.hanning(_WELCH), axis=-1)) ** 2).mean(axis=-2)


def signal_features(
    window: np.ndarray, heart_rate: np.ndarray | float, spectra: np.ndarray | None = None
) -> np.ndarray:
    """Signal features ``(..., F)`` of ``window`` ``(..., 12, n)`` in mV at 500 Hz (the raw crop the model's input
    comes from) and ``heart_rate`` in beats/min (per record or one number). Order: :data:`SIGNAL_FEATURES`.
    ``spectra``: the window's :func:`lead_spectra`, when already computed."""
    x = np.asarray(window, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] != 12 or x.shape[-1] < 16:
        raise InputError(f"signal features need (..., 12, n >= 16) at 500 Hz, got {x.shape}")
    low, middle, high = np.percentile(x, [0.5, 50.0, 99.5], axis=-1)  # (..., 12) each
    amplitude = np.log(np.maximum(high - low, 1e-3))
    hr = np.broadcast_to(np.asarray(heart_rate, dtype=np.float64), x.shape[:-2])
    net = high + low - 2.0 * middle  # signed dominant deflection about the median level
    angle = np.arctan2(net[..., 5], net[..., 0])  # leads I and aVF
    dx = np.diff(x, axis=-1)
    velocity = np.sqrt(np.sum(dx**2, axis=-2))  # (..., n-1) spatial velocity, mV per sample
    top = np.percentile(velocity, [99.0, 99.5], axis=-1)
    fast = velocity > 0.3 * top[1][..., None]
    qrs_ms = np.mean(fast, axis=-1) * 60000.0 / np.clip(hr, 20.0, 300.0)
    spikes = np.log(np.max(velocity, axis=-1) / np.maximum(top[0], 1e-6))  # pacing spikes: far above the QRS slope
    curvature = np.sqrt(np.sum(np.diff(dx, axis=-1) ** 2, axis=-2))
    noise = np.median(curvature, axis=-1)  # high-frequency noise: most samples are not in a QRS
    psd = (lead_spectra(x) if spectra is None else spectra).mean(axis=-2)  # (..., 501), mean over leads
    freqs = np.fft.rfftfreq(_WELCH, 1.0 / FS)
    total = np.maximum(psd.sum(axis=-1), 1e-20)
    bands = [np.log10(psd[..., (freqs >= lo) & ((freqs < hi) if hi < 250 else (freqs <= hi))].sum(-1) / total + 1e-8)
             for lo, hi in _BANDS]  # fmt: skip

    def peak(f0: float) -> np.ndarray:
        inside = psd[..., np.abs(freqs - f0) <= 1.0].mean(-1)
        around = psd[..., (np.abs(freqs - f0) >= 2.0) & (np.abs(freqs - f0) <= 6.0)].mean(-1)
        return np.log10((inside + 1e-12) / (around + 1e-12))

    columns = [
        *np.moveaxis(amplitude, -1, 0),
        np.log(np.clip(hr, 20.0, 300.0)),
        np.cos(angle),
        np.sin(angle),
        np.log(np.maximum(qrs_ms, 1.0)),
        *bands,
        peak(50.0),
        peak(60.0),
        spikes,
        np.log(np.maximum(noise, _LOG_FLOOR)),
    ]
    return np.stack(columns, axis=-1)


def median_beat(window: np.ndarray, heart_rate: float) -> np.ndarray:
    """The median beat of every lead, flattened: ``(12 * 65,)`` mV, R-peak aligned from -250 to +400 ms at 100 Hz,
    each lead's level at -250 ms set to 0. R peaks are the maxima of the smoothed spatial velocity at least 0.6 of a
    beat apart; an ECG without a detectable beat gives zeros (which no training ECG resembles)."""
    from scipy.signal import find_peaks

    x = np.asarray(window, dtype=np.float64)
    x = x - np.median(x, axis=-1, keepdims=True)
    velocity = np.sqrt(np.sum(np.diff(x, axis=-1) ** 2, axis=0))
    velocity = np.convolve(velocity, np.full(20, 1.0 / 20.0), mode="same")  # 40 ms
    top = float(np.percentile(velocity, 99.0)) if velocity.size else 0.0
    distance = max(100, int(0.6 * FS * 60.0 / float(np.clip(heart_rate, 20.0, 300.0))))
    peaks = find_peaks(velocity, distance=distance, height=0.3 * top)[0] if top > 0 else np.zeros(0, int)
    peaks = peaks[(peaks >= _BEAT_BEFORE) & (peaks < x.shape[-1] - _BEAT_AFTER)]
    width = (_BEAT_BEFORE + _BEAT_AFTER) // _BEAT_STEP
    if peaks.size == 0:
        return np.zeros(12 * width)
    beats = np.stack([x[:, p - _BEAT_BEFORE : p + _BEAT_AFTER] for p in peaks])  # (beats, 12, 325)
    beat = np.median(beats, axis=0)
    beat = beat - beat[:, :10].mean(axis=-1, keepdims=True)
    return beat[:, ::_BEAT_STEP].ravel()


def spectrum_profile(window: np.ndarray, spectra: np.ndarray | None = None) -> np.ndarray:
    """Each lead's share of power in 4-Hz bands from 0.5 to 100 Hz, log10: ``(12 * 25,)`` for one ``(12, n)`` window
    (``spectra``: its :func:`lead_spectra`, when already computed)."""
    power = lead_spectra(window) if spectra is None else np.asarray(spectra)
    freqs = np.fft.rfftfreq(_WELCH, 1.0 / FS)
    power = power / np.maximum(power.sum(axis=-1, keepdims=True), 1e-20)
    keep = (freqs >= 0.5) & (freqs <= 100.0)  # 200 bins of 0.5 Hz
    bands = power[..., keep].reshape(*power.shape[:-1], -1, 8).sum(axis=-1)
    return np.log10(bands + 1e-10).reshape(*power.shape[:-2], -1)


def signal_views(window: np.ndarray, heart_rate: float) -> dict[str, np.ndarray]:
    """The signal views of one ECG: ``window`` ``(12, n)`` mV at 500 Hz (the raw crop of the model input) and the heart
    rate given to the model -> ``{"morphology", "spectrum", "statistics"}`` 1-D arrays."""
    spectra = lead_spectra(window)
    return {
        "morphology": median_beat(window, heart_rate),
        "spectrum": spectrum_profile(window, spectra),
        "statistics": signal_features(window, heart_rate, spectra),
    }


# ------------------------------------------------------------------------------------------------------ fitting
def encode_array(array: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: ``{"dtype", "shape", "base64"}`` (exact and compact)."""
    import base64

    data = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "float32", "shape": list(data.shape), "base64": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(entry: Any) -> np.ndarray:
    """Inverse of :func:`encode_array`; plain lists are accepted too."""
    import base64

    if isinstance(entry, Mapping):
        if entry.get("dtype") != "float32":
            raise InputError(f"unsupported array dtype {entry.get('dtype')!r}")
        raw = base64.b64decode(entry["base64"], validate=True)
        return np.frombuffer(raw, dtype="<f4").reshape(entry["shape"]).astype(np.float64)
    return np.asarray(entry, dtype=np.float64)


def fit_ppca(data: np.ndarray, *, variance: float = 0.99, max_components: int = 128) -> dict[str, Any]:
    """Probabilistic PCA of training rows ``(n, D)``: the fewest components (at most ``max_components`` and n/8)
    that explain ``variance`` of the total, and one residual variance for the remaining directions."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 16 or not np.isfinite(x).all():
        raise InputError(f"need at least 16 finite training rows (n, D), got {x.shape}")
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eig = s**2 / (x.shape[0] - 1)
    share = np.cumsum(eig) / max(eig.sum(), 1e-300)
    k = int(min(np.searchsorted(share, variance) + 1, max_components, x.shape[0] // 8, x.shape[1] - 1))
    k = max(k, 1)
    residual = float(max(eig[k:].sum() / max(x.shape[1] - k, 1), 1e-12 * max(eig[0], 1e-300)))
    return {"kind": "ppca", "mean": encode_array(mean), "components": encode_array(vt[:k]),
            "variances": encode_array(np.maximum(eig[:k], residual)), "residual_variance": residual}  # fmt: skip


def ppca_distance(model: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
    """PPCA Mahalanobis distance squared of ``(..., D)`` rows, divided by D (about 1 for training rows)."""
    x = np.asarray(rows, dtype=np.float64) - decode_array(model["mean"])
    z = x @ decode_array(model["components"]).T
    residual = np.maximum(np.sum(x**2, axis=-1) - np.sum(z**2, axis=-1), 0.0)
    d2 = np.sum(z**2 / decode_array(model["variances"]), axis=-1) + residual / float(model["residual_variance"])
    return d2 / x.shape[-1]


def fit_robust_mahalanobis(features: np.ndarray, *, shrinkage: float = 0.1) -> dict[str, Any]:
    """Robust centre and scale per feature (median, 1.4826 x MAD) and a shrunk precision matrix of the standardised
    training features ``(n, F)`` (the ``statistics`` view)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 16 or not np.isfinite(x).all():
        raise InputError(f"need at least 16 finite training feature rows (n, F), got {x.shape}")
    centre = np.median(x, 0)
    scale = 1.4826 * np.median(np.abs(x - centre), 0)
    scale = np.where(scale > 1e-6, scale, np.maximum(x.std(0), 1e-3))
    z = (x - centre) / scale
    covariance = np.cov(z, rowvar=False)
    shrunk = (1 - shrinkage) * covariance + shrinkage * np.diag(np.diag(covariance))
    return {"kind": "robust_mahalanobis", "features": list(SIGNAL_FEATURES), "centre": encode_array(centre),
            "scale": encode_array(scale), "precision": encode_array(np.linalg.pinv(shrunk))}  # fmt: skip


def _standardise(model: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    return (np.asarray(features, dtype=np.float64) - decode_array(model["centre"])) / decode_array(model["scale"])


def robust_mahalanobis_distance(model: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """Mahalanobis distance squared of ``(..., F)`` features, divided by F (about 1 for training data)."""
    if list(model["features"]) != list(SIGNAL_FEATURES):
        raise InputError("the bundle's signal statistics were fitted on other features; re-fit its trust data")
    z = _standardise(model, features)
    d2 = np.einsum("...i,ij,...j->...", z, decode_array(model["precision"]), z)
    return np.maximum(d2, 0.0) / z.shape[-1]


def view_distance(model: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
    """Distance of ``rows`` under a view's fitted model, whatever its kind."""
    kind = model.get("kind")
    if kind == "ppca":
        return ppca_distance(model, rows)
    if kind == "robust_mahalanobis":
        return robust_mahalanobis_distance(model, rows)
    raise InputError(f"unknown out-of-distribution model kind {kind!r}")


def fit_ood(
    reference: Mapping[str, np.ndarray], calibration: Mapping[str, np.ndarray], alpha: float = 0.02
) -> dict[str, Any]:
    """The out-of-distribution check fitted on training rows: ``reference`` and ``calibration`` map each of
    :data:`VIEWS` to ``(n, D)`` rows (the embedding and :func:`signal_views` of the training and validation splits).
    Each view's distance is scaled by its calibration 99th percentile; the threshold is the calibration split's
    ``1 - alpha`` quantile of the largest scaled distance. Returns ``{"alpha", "threshold", "views"}`` (``trust.json``'s
    ``ood`` section)."""
    if not 0.0 < alpha < 0.5:
        raise InputError(f"the out-of-distribution rate alpha must be in (0, 0.5), got {alpha!r}")
    views, scores = {}, []
    for name in VIEWS:
        model = fit_robust_mahalanobis(reference[name]) if name == "statistics" else fit_ppca(reference[name])
        distance = view_distance(model, calibration[name])
        scale = float(np.quantile(distance, 0.99))
        views[name] = {"model": model, "scale": scale}
        scores.append(distance / scale)
    score = np.sort(np.max(np.stack(scores), axis=0))
    rank = int(np.ceil((score.size + 1) * (1.0 - alpha)))
    return {"alpha": alpha, "threshold": float(score[min(rank, score.size) - 1]), "views": views}


def ood_scores(ood: Mapping[str, Any], rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """Out-of-distribution score ``(n,)`` of rows (each of :data:`VIEWS` -> ``(n, D)``) under a fitted :func:`fit_ood`:
    the largest scaled view distance; above ``ood["threshold"]`` is out of distribution."""
    per_view = [view_distance(v["model"], rows[name]) / float(v["scale"]) for name, v in ood["views"].items()]
    return np.max(np.stack(per_view), axis=0)


def explain(model: Mapping[str, Any], features: np.ndarray, count: int = 3, minimum_z: float = 4.0) -> list[str]:
    """Plain words for the (at most ``count``) statistics of one ECG that lie furthest from the training data, each at
    least ``minimum_z`` robust standard deviations away (e.g. ``"60 Hz mains interference: higher than in the
    training data"``)."""
    z = _standardise(model, features)
    out: list[str] = []
    for j in np.argsort(-np.abs(z)):
        if abs(z[j]) < minimum_z or len(out) >= count:
            break
        words = FEATURE_WORDS[SIGNAL_FEATURES[j]]
        if words not in (o.split(":")[0] for o in out):
            out.append(f"{words}: {'higher' if z[j] > 0 else 'lower'} than in the training data")
    return out
