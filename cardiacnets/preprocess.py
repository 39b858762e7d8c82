"""ECG preprocessing: one versioned path shared by training, evaluation and the edge (docs/architecture.md).

Paper, "Data processing and augmentation": baseline drift removed by seasonal decomposition, wavelet denoising with
``db6`` and soft thresholding, Savitzky-Golay smoothing, then channel-wise min-max scaling to [-1, 1]; training adds
crop-resize, TimeFlip and SignFlip (:mod:`cardiacnets.augment`). The paper leaves the wavelet level, threshold rule
and filter window open; the values chosen here are fields of :class:`PreprocessConfig`, which travels with every
checkpoint and bundle.

Every function is pure numpy on arrays shaped ``(..., leads, samples)`` in millivolts and is vectorised over leads
AND records: a batch ``(B, 12, n)`` goes through in one call. ``tests/reference_preprocess.py`` holds a slow per-lead
implementation built on ``statsmodels.tsa.seasonal.seasonal_decompose``, ``pywt`` and ``scipy`` that the tests and
``benchmarks/bench_preprocess.py`` compare against (equal to 1e-5). :func:`clean_ecg` is the cleaning alone (steps 1,
3-5 on the whole record, in mV: the denoised ECG that ``cnscreen denoise`` writes).

Pipeline of :func:`preprocess_ecg` (``(..., 12, n)`` mV at ``fs`` Hz -> ``(..., 12, 5000)`` float32 in [-1, 1]):

1. :func:`resample_to` 500 Hz (polyphase, exact rational ratio).
2. centre crop to 5000 samples when longer (filtering only what is kept).
3. :func:`remove_baseline_seasonal`: subtract the seasonal-decomposition trend, a centred moving average over one
   beat (period = fs * 60 / HR samples).
4. :func:`wavelet_denoise`: db6, level 4, universal threshold with a MAD noise estimate, soft.
5. :func:`savgol_smooth`: window 11 samples (22 ms), order 3.
6. :func:`minmax_scale` channel-wise to [-1, 1] (a flat channel becomes 0).
7. centre zero-padding to 5000 samples when shorter (after scaling, so the padding sits at the neutral 0 and does not
   move the min-max range).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pywt

from cardiacnets.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "PREPROCESS_VERSION",
    "PreprocessConfig",
    "center_crop_or_pad",
    "clean_ecg",
    "clean_record",
    "estimate_heart_rate",
    "minmax_scale",
    "period_from_heart_rate",
    "preprocess_ecg",
    "preprocess_record",
    "rational_ratio",
    "remove_baseline_seasonal",
    "reported_heart_rate",
    "resample_to",
    "savgol_smooth",
    "wavelet_denoise",
]

PREPROCESS_VERSION = "cardiacnets-ecg-preprocess/1"


@dataclass(frozen=True)
class PreprocessConfig:
    """Every parameter of :func:`preprocess_ecg`, stored inside checkpoints and bundles.

    Attributes:
        version: identifies the algorithm; change it whenever the output for the same input changes.
        target_fs: output sampling rate in Hz. 500 Hz is the rate of the UK Biobank resting ECGs the paper trains on.
        target_samples: output length (10 s at 500 Hz, the standard resting-ECG strip).
        baseline: ``"seasonal"`` (paper) or ``"none"``.
        hr_min, hr_max: clamp (beats/min) for the heart rate that sets the seasonal period; 40-180 covers resting ECGs,
            and the period stays at most 1.5 s so a 10-s strip holds the two full cycles decomposition needs.
        default_hr: used when the signal carries no detectable rhythm (flat record), beats/min.
        wavelet: ``"db6"`` (paper).
        wavelet_level: 4. At 500 Hz the detail bands are D1 125-250, D2 62-125, D3 31-62, D4 16-31 Hz; thresholding
            D1-D4 attacks EMG and mains noise while the approximation below ~16 Hz (P and T waves, the bulk of QRS
            energy) is left untouched. Large QRS coefficients in D3/D4 survive soft thresholding (shrunk by lambda).
        threshold_rule: ``"universal"``: lambda = sigma * sqrt(2 ln n) (Donoho-Johnstone VisuShrink), one per lead.
        noise_estimator: ``"mad"``: sigma = median(|D1|) / 0.6745, from the finest detail band, robust to QRS.
        threshold_mode: ``"soft"`` (paper).
        savgol_window: 11 samples = 22 ms at 500 Hz; with order 3 the -3 dB point is 49 Hz (-12 dB at 100 Hz), so
            QRS content (mostly < 40 Hz) passes and residual high-frequency noise is smoothed. (15 samples would put
            the -3 dB point at 36 Hz and blunt R peaks.) Must be odd and > savgol_order.
        savgol_order: 3 (cubic keeps QRS peak heights better than a quadratic at this window).
        scale_range: channel-wise min-max target range (paper: [-1, 1]).
    """

    version: str = PREPROCESS_VERSION
    target_fs: float = 500.0
    target_samples: int = 5000
    baseline: str = "seasonal"
    hr_min: float = 40.0
    hr_max: float = 180.0
    default_hr: float = 75.0
    wavelet: str = "db6"
    wavelet_level: int = 4
    threshold_rule: str = "universal"
    noise_estimator: str = "mad"
    threshold_mode: str = "soft"
    savgol_window: int = 11
    savgol_order: int = 3
    scale_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if isinstance(self.scale_range, list):
            object.__setattr__(self, "scale_range", tuple(self.scale_range))
        checks = [
            (self.target_fs > 0, f"target_fs must be > 0, got {self.target_fs!r}"),
            (self.target_samples > 0, f"target_samples must be > 0, got {self.target_samples!r}"),
            (self.baseline in ("seasonal", "none"), f"baseline must be 'seasonal' or 'none', got {self.baseline!r}"),
            (0 < self.hr_min < self.hr_max, f"need 0 < hr_min < hr_max, got {self.hr_min!r}, {self.hr_max!r}"),
            (self.hr_min <= self.default_hr <= self.hr_max, f"default_hr {self.default_hr!r} outside hr_min..hr_max"),
            (self.wavelet in pywt.wavelist(kind="discrete"), f"unknown discrete wavelet {self.wavelet!r}"),
            (self.wavelet_level >= 1, f"wavelet_level must be >= 1, got {self.wavelet_level!r}"),
            (self.threshold_rule == "universal", f"threshold_rule must be 'universal', got {self.threshold_rule!r}"),
            (self.noise_estimator == "mad", f"noise_estimator must be 'mad', got {self.noise_estimator!r}"),
            (
                self.threshold_mode in ("soft", "hard"),
                f"threshold_mode must be 'soft'/'hard', got {self.threshold_mode!r}",
            ),
            (
                self.savgol_window % 2 == 1 and self.savgol_window > self.savgol_order >= 0,
                f"savgol_window must be odd and > savgol_order, got {self.savgol_window!r}/{self.savgol_order!r}",
            ),
            (
                len(self.scale_range) == 2 and self.scale_range[0] < self.scale_range[1],
                f"scale_range must be (low, high) with low < high, got {self.scale_range!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"PreprocessConfig: {message}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``scale_range`` as a list)."""
        out = dataclasses.asdict(self)
        out["scale_range"] = list(self.scale_range)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Strict inverse of :meth:`to_dict`: an unknown key or a wrong type raises :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"PreprocessConfig: expected a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"PreprocessConfig: unknown key(s) {unknown}; known keys are {sorted(fields)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls, key, None) if key != "scale_range" else (0.0, 0.0)
            if key == "scale_range":
                if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
                    raise ConfigError(f"PreprocessConfig: scale_range must be two numbers, got {value!r}")
                value = tuple(float(v) for v in value)
            elif isinstance(default, str):
                if not isinstance(value, str):
                    raise ConfigError(f"PreprocessConfig: {key} must be text, got {value!r}")
            elif isinstance(default, int) and not isinstance(default, bool):
                if not (isinstance(value, int) and not isinstance(value, bool)):
                    raise ConfigError(f"PreprocessConfig: {key} must be an integer, got {value!r}")
            elif isinstance(default, float):
                if not _is_number(value):
                    raise ConfigError(f"PreprocessConfig: {key} must be a number, got {value!r}")
                value = float(value)
            kwargs[key] = value
        return cls(**kwargs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _as_signal(signal: np.ndarray, what: str = "signal") -> np.ndarray:
    array = np.asarray(signal)
    if array.ndim < 2:
        raise InputError(f"{what} must be shaped (..., leads, samples), got shape {array.shape}")
    if array.shape[-1] == 0:
        raise InputError(f"{what} has no samples (shape {array.shape})")
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{what} must be numeric, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _check_fs(fs: float) -> float:
    if not _is_number(fs) or fs <= 0:
        raise InputError(f"sampling rate must be a positive number of Hz, got {fs!r}")
    return float(fs)


# --------------------------------------------------------------------------------------------------- resampling


def rational_ratio(fs: float, target_fs: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` with ``up / down`` the closest fraction to ``target_fs / fs`` (denominator <= 1000)."""
    return _rational_ratio(_check_fs(fs), _check_fs(target_fs), max_denominator)


@functools.lru_cache(maxsize=64)
def _rational_ratio(fs: float, target_fs: float, max_denominator: int) -> tuple[int, int]:
    ratio = Fraction(target_fs / fs).limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


def resample_to(signal: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Resample ``(..., samples)`` from ``fs`` to ``target_fs`` Hz along the last axis (units unchanged).

    Polyphase FIR resampling (``scipy.signal.resample_poly``, Kaiser window) by the rational ratio of
    :func:`rational_ratio`; its anti-aliasing low-pass protects the 0.05-150 Hz diagnostic band. Returns float64
    ``(..., ceil(samples * up / down))``; the input itself (as float64) when the rates already agree.
    """
    array = _as_signal(signal) if np.ndim(signal) >= 2 else np.asarray(signal, dtype=np.float64)
    up, down = rational_ratio(fs, target_fs)
    if up == down:
        return array
    from scipy import signal as sps  # only when resampling: importing scipy.signal takes ~0.5 s

    return sps.resample_poly(array, up, down, axis=-1)


def center_crop_or_pad(signal: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Centre-crop or centre-zero-pad ``(..., samples)`` to ``(..., n)``. Returns ``(signal, padded)``.

    Cropping keeps the middle (the start and end of a strip carry filter transients and electrode settling);
    padding puts the extra zeros half before, half after (one more after when odd).
    """
    array = np.asarray(signal)
    if n <= 0:
        raise InputError(f"target length must be > 0, got {n}")
    length = array.shape[-1]
    if length >= n:
        start = (length - n) // 2
        return array[..., start : start + n], False
    before = (n - length) // 2
    widths = [(0, 0)] * (array.ndim - 1) + [(before, n - length - before)]
    return np.pad(array, widths, mode="constant", constant_values=0), True


# ------------------------------------------------------------------------------------------ baseline (seasonal)


def estimate_heart_rate(signal: np.ndarray, fs: float, hr_min: float = 40.0, hr_max: float = 180.0) -> np.ndarray:
    """Heart rate in beats/min of each record of ``(..., leads, samples)`` (mV at ``fs`` Hz) -> ``(...)``.

    The QRS energy envelope (squared first difference summed over leads, 50-ms moving average) is autocorrelated
    (FFT, biased estimator, so the first period outscores its multiples) and the strongest lag between 60/hr_max and
    60/hr_min seconds gives the beat period; the result therefore lies in [hr_min, hr_max]. Records without any
    rhythm energy (all flat) return NaN.
    """
    array = _as_signal(signal)
    fs = _check_fs(fs)
    energy = np.sum(np.diff(array, axis=-1) ** 2, axis=-2)  # (..., n-1)
    width = max(1, int(round(0.05 * fs)))
    energy = _box_filter_same(energy, width)
    energy = energy - energy.mean(axis=-1, keepdims=True)
    n = energy.shape[-1]
    # Any FFT length >= 2n - 1 gives the same linear autocorrelation; a 5-smooth one is several times faster than 2n
    # (2 * 4999 for a 10-s strip has a large prime factor).
    n_fft = _fast_fft_length(2 * n - 1)
    spectrum = np.fft.rfft(energy, n=n_fft, axis=-1)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft, axis=-1)[..., :n]
    lo = max(1, int(math.floor(fs * 60.0 / hr_max)))
    hi = min(n - 1, int(math.ceil(fs * 60.0 / hr_min)))
    if hi <= lo:
        return np.full(energy.shape[:-1], np.nan)
    lag = lo + np.argmax(acf[..., lo : hi + 1], axis=-1)
    hr = np.clip(60.0 * fs / lag, hr_min, hr_max)
    flat = acf[..., 0] <= 1e-12 * max(1.0, float(np.max(np.abs(acf[..., 0])) if acf.size else 1.0))
    return np.where(flat, np.nan, hr)


def _box_filter_same(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``width`` samples along the last axis, zero outside, centred like ``np.convolve(...,
    mode="same")``: output ``i`` averages ``x[i - width // 2 : i + (width - 1) // 2 + 1]``. Same shape and units."""
    n = x.shape[-1]
    csum = np.zeros(x.shape[:-1] + (n + width,))  # (..., n + width): csum[j] = sum of x[:j - width // 2]
    np.cumsum(x, axis=-1, out=csum[..., width // 2 + 1 : width // 2 + 1 + n])
    csum[..., width // 2 + 1 + n :] = csum[..., width // 2 + n : width // 2 + 1 + n]
    return (csum[..., width:] - csum[..., :n]) / width


@functools.lru_cache(maxsize=64)
def _fast_fft_length(minimum: int) -> int:
    """Smallest 2^a 3^b 5^c >= ``minimum``."""
    best = 1 << max(0, (minimum - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35 << max(0, (-(-minimum // power35) - 1).bit_length())
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def period_from_heart_rate(heart_rate: float, fs: float, n_samples: int | None = None) -> int:
    """Seasonal period in samples for one beat: ``round(fs * 60 / HR)``, at least 2, and at most ``n // 2`` so the
    record holds the two full cycles seasonal decomposition requires."""
    period = max(2, int(round(_check_fs(fs) * 60.0 / float(heart_rate))))
    if n_samples is not None:
        period = max(2, min(period, n_samples // 2))
    return period


def _moving_average_trend(x: np.ndarray, period: int) -> np.ndarray:
    """statsmodels' two-sided trend filter along the last axis: NaN where the window does not fit."""
    n = x.shape[-1]
    csum = np.zeros(x.shape[:-1] + (n + 1,))  # (..., n+1): csum[j] = sum of x[:j]
    np.cumsum(x, axis=-1, out=csum[..., 1:])
    trend = np.full(x.shape, np.nan)
    if period % 2:
        h = (period - 1) // 2  # trend[t] for t in [h, n - h): (csum[t + h + 1] - csum[t - h]) / period
        trend[..., h : n - h] = (csum[..., 2 * h + 1 : n + 1] - csum[..., : n - 2 * h]) / period
    else:
        # Even period: weights [0.5, 1, ..., 1, 0.5] / period over period + 1 samples; t in [h, n - h).
        h = period // 2
        inner = csum[..., 2 * h : n] - csum[..., 1 : n - 2 * h + 1]
        trend[..., h : n - h] = (inner + 0.5 * (x[..., : n - 2 * h] + x[..., 2 * h :])) / period
    return trend


def _linear_fit(y: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of ``y[..., start:stop]`` against the sample index (per row)."""
    idx = np.arange(start, stop, dtype=np.float64)
    seg = y[..., start:stop]
    i_mean = idx.mean()
    y_mean = seg.mean(axis=-1)
    slope = ((idx - i_mean) * (seg - y_mean[..., None])).sum(axis=-1) / ((idx - i_mean) ** 2).sum()
    return slope, y_mean - slope * i_mean


def seasonal_trend(signal: np.ndarray, period: int) -> np.ndarray:
    """Trend of ``statsmodels.tsa.seasonal.seasonal_decompose(x, model="additive", period=period,
    extrapolate_trend=period - 1)`` for every row of ``(..., samples)`` at once (same units).

    The centred moving average over one period (half weights at both ends when the period is even) is computed from a
    cumulative sum; the ``period // 2`` samples at each end where the window does not fit are extrapolated by a
    least-squares line through the ``period`` nearest defined trend values, exactly as statsmodels does (including its
    choice of fitting the back end on ``[back - period, back)``).
    """
    x = np.asarray(signal, dtype=np.float64)
    n = x.shape[-1]
    if period < 2 or n < 2 * period:
        raise InputError(f"seasonal decomposition needs period >= 2 and 2 full cycles: period {period}, {n} samples")
    trend = _moving_average_trend(x, period)
    front = period // 2
    back = n - 1 - front
    npoints = period
    front_last = min(front + npoints, back)
    back_first = max(front, back - npoints)
    slope, intercept = _linear_fit(trend, front, front_last)
    trend[..., :front] = np.arange(front) * slope[..., None] + intercept[..., None]
    slope, intercept = _linear_fit(trend, back_first, back)
    trend[..., back + 1 :] = np.arange(back + 1, n) * slope[..., None] + intercept[..., None]
    return trend


def remove_baseline_seasonal(signal: np.ndarray, periods: int | np.ndarray) -> np.ndarray:
    """Remove baseline drift: ``signal - trend`` of an additive seasonal decomposition with one beat per period.

    ``signal`` is ``(..., leads, samples)`` in mV; ``periods`` is one period in samples (an int for all records) or
    an integer array shaped like the record axes ``(...)``. Records sharing a period are processed together in one
    vectorised call. Returns float64 of the input's shape, mV.
    """
    x = _as_signal(signal)
    periods_arr = np.broadcast_to(np.asarray(periods, dtype=np.int64), x.shape[:-2])
    out = np.empty_like(x)
    flat_x = x.reshape((-1,) + x.shape[-2:])
    flat_out = out.reshape(flat_x.shape)
    flat_periods = periods_arr.reshape(-1)
    for period in np.unique(flat_periods):
        if period == flat_periods[0] and np.all(flat_periods == period):  # one period for all: no gather copies
            np.subtract(flat_x, seasonal_trend(flat_x, int(period)), out=flat_out)
            break
        rows = np.flatnonzero(flat_periods == period)
        flat_out[rows] = flat_x[rows] - seasonal_trend(flat_x[rows], int(period))
    return out


# ---------------------------------------------------------------------------------------- denoising, smoothing


def wavelet_denoise(
    signal: np.ndarray, wavelet: str = "db6", level: int = 4, mode: str = "soft", axis: int = -1
) -> np.ndarray:
    """Wavelet shrinkage of every row of ``signal`` along ``axis`` (units unchanged, float64, same shape).

    ``pywt.wavedec`` (symmetric extension) to ``level``; each row's noise sigma is the MAD of its finest detail band
    (``median(|D1|) / 0.6745``), the universal threshold ``sigma * sqrt(2 ln n)`` is applied (``mode`` soft or hard) to
    every detail band, the approximation is kept, and ``pywt.waverec`` rebuilds the row (trimmed to its length).
    """
    x = np.moveaxis(np.asarray(signal, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    coeffs = pywt.wavedec(x, wavelet, level=level, axis=-1)
    sigma = np.median(np.abs(coeffs[-1]), axis=-1, keepdims=True) / 0.6745
    lam = sigma * np.sqrt(2.0 * np.log(n))
    shrunk = [coeffs[0]]
    for detail in coeffs[1:]:
        if mode == "soft":  # sign(d) * max(|d| - lam, 0), in two passes instead of four
            shrunk.append(detail - np.clip(detail, -lam, lam))
        elif mode == "hard":
            shrunk.append(np.where(np.abs(detail) > lam, detail, 0.0))
        else:
            raise InputError(f"wavelet threshold mode must be 'soft' or 'hard', got {mode!r}")
    out = pywt.waverec(shrunk, wavelet, axis=-1)[..., :n]
    return np.moveaxis(out, -1, axis)


def savgol_smooth(signal: np.ndarray, window: int = 11, order: int = 3, axis: int = -1) -> np.ndarray:
    """Savitzky-Golay smoothing along ``axis``, as ``scipy.signal.savgol_filter(x, window, order, mode="interp")``
    computes it (equal to rounding); units unchanged, float64. The filter's operators are cached per (window, order).

    Rows shorter than ``window`` are returned unchanged (the filter is undefined there)."""
    x = np.moveaxis(np.asarray(signal, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    if n < window:
        return np.moveaxis(x, -1, axis)
    from scipy import ndimage  # loaded with scipy.signal, which the screening path imports anyway

    coeffs, front, back = _savgol_operators(window, order)
    half = window // 2
    # Interior: the least-squares polynomial's centre value, a fixed FIR (scipy's savgol_coeffs), in one C pass.
    out = ndimage.correlate1d(x, coeffs, axis=-1, mode="constant")
    # Edges (mode "interp"): the polynomial fitted to the first/last window, evaluated at the edge samples.
    out[..., :half] = x[..., :window] @ front.T
    out[..., n - half :] = x[..., n - window :] @ back.T
    return np.moveaxis(out, -1, axis)


@functools.lru_cache(maxsize=16)
def _savgol_operators(window: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear operators of a Savitzky-Golay filter in ``mode="interp"``: the ``(window,)`` FIR taps for the centre of
    a window, and the ``(window // 2, window)`` maps from the first and the last ``window`` samples to the smoothed
    first and last ``window // 2`` samples."""
    positions = np.arange(window, dtype=np.float64)
    vander = np.vander(positions - window // 2, order + 1, increasing=True)  # (window, order + 1)
    hat = vander @ np.linalg.pinv(vander)  # (window, window): samples -> fitted polynomial at every position
    half = window // 2
    operators = hat[half].copy(), hat[:half].copy(), hat[window - half :].copy()
    for operator in operators:
        operator.setflags(write=False)  # shared through the cache
    return operators


def minmax_scale(signal: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Channel-wise min-max scaling of ``(..., samples)`` to ``[low, high]`` (unitless, float64).

    Each row is mapped linearly so that its minimum is ``low`` and its maximum ``high``; a flat row (max == min, e.g.
    a missing lead) becomes 0 rather than a division by zero."""
    x = np.asarray(signal, dtype=np.float64)
    lo = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - lo
    flat = span <= 0
    scaled = low + (high - low) * (x - lo) / np.where(flat, 1.0, span)
    return np.where(flat, 0.0, scaled)


# ------------------------------------------------------------------------------------------------- pipeline


def _heart_rates(
    x: np.ndarray, fs: float, config: PreprocessConfig, heart_rate: float | np.ndarray | None
) -> np.ndarray:
    records_shape = x.shape[:-2]
    if heart_rate is None:
        hr = estimate_heart_rate(x, fs, config.hr_min, config.hr_max)
    else:
        hr = np.broadcast_to(np.asarray(heart_rate, dtype=np.float64), records_shape).copy()
        unknown = ~np.isfinite(hr)
        if unknown.any():  # NaN entries: estimate those records' rates
            hr[unknown] = estimate_heart_rate(x[unknown], fs, config.hr_min, config.hr_max)
    hr = np.where(np.isfinite(hr) & (hr > 0), hr, config.default_hr)
    return np.clip(hr, config.hr_min, config.hr_max)


def _clean_at_target_rate(
    x: np.ndarray, config: PreprocessConfig, heart_rate: float | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 3-5 (baseline, wavelet, Savitzky-Golay) on ``(..., 12, m)`` mV at ``config.target_fs``: the one cleaning
    that :func:`preprocess_ecg` and :func:`clean_ecg` share. Returns ``(float64 mV, heart rates, periods)``."""
    hr = _heart_rates(x, config.target_fs, config, heart_rate)
    periods = np.array(
        [period_from_heart_rate(h, config.target_fs, x.shape[-1]) for h in np.ravel(hr)], dtype=np.int64
    ).reshape(np.shape(hr))
    if config.baseline == "seasonal":
        if x.shape[-1] < 4:
            raise InputError(f"record too short for baseline removal: {x.shape[-1]} samples at {config.target_fs} Hz")
        x = remove_baseline_seasonal(x, periods)
    if x.shape[-1] >= 2 * pywt.Wavelet(config.wavelet).dec_len:
        x = wavelet_denoise(x, config.wavelet, config.wavelet_level, config.threshold_mode)
    return savgol_smooth(x, config.savgol_window, config.savgol_order), hr, periods


def preprocess_ecg(
    signal: np.ndarray,
    fs: float,
    config: PreprocessConfig | None = None,
    heart_rate: float | np.ndarray | None = None,
    *,
    return_info: bool = False,
    keep_window: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Preprocess ECGs ``(..., 12, n)`` in mV at ``fs`` Hz into ``(..., 12, target_samples)`` float32 in [-1, 1].

    Steps and parameters: see the module docstring and :class:`PreprocessConfig`. ``heart_rate`` (beats/min, a number
    or an array over the record axes; NaN entries are estimated) sets the seasonal period; when None it is estimated per
    record by
    :func:`estimate_heart_rate`. Either way it is clamped to ``[hr_min, hr_max]``. With ``return_info`` also returns
    ``{"resampled", "cropped", "padded", "heart_rate", "period"}`` (per-record values as lists); with ``keep_window``
    the info also holds ``"window"``: the resampled, centre-cropped signal in mV before any cleaning (``(..., 12, m)``,
    m <= target_samples), the raw counterpart of the model input that the out-of-distribution check reads.
    """
    config = config or PreprocessConfig()
    x = _as_signal(signal)
    fs = _check_fs(fs)
    up, down = rational_ratio(fs, config.target_fs)
    resampled = up != down
    x = resample_to(x, fs, config.target_fs)  # (..., 12, m)
    length = x.shape[-1]
    cropped = length > config.target_samples
    x, _ = center_crop_or_pad(x, config.target_samples) if cropped else (x, False)
    window = x if keep_window else None
    x, hr, periods = _clean_at_target_rate(x, config, heart_rate)
    x = minmax_scale(x, *config.scale_range)
    x, padded = center_crop_or_pad(x, config.target_samples)
    out = x.astype(np.float32)
    if not return_info:
        return out
    info = {
        "resampled": bool(resampled),
        "cropped": bool(cropped),
        "padded": bool(padded),
        "n_samples_resampled": int(length),
        "heart_rate": np.asarray(hr).tolist(),
        "period": np.asarray(periods).tolist(),
    }
    if keep_window:
        info["window"] = np.asarray(window, dtype=np.float32)
    return out, info


def preprocess_record(
    record: Any, config: PreprocessConfig | None = None, *, keep_window: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """Preprocess one :class:`~cardiacnets.record.EcgRecord` -> ``((12, target_samples) float32, info)``.

    Uses the heart rate the file reports (``meta["heart_rate"]``) when it is a plausible number, else estimates it.
    ``info`` holds ``resampled``/``cropped``/``padded`` flags, the original rate and length, the heart rate and period
    used, and the preprocessing config version (and with ``keep_window`` the raw window, see :func:`preprocess_ecg`).
    """
    config = config or PreprocessConfig()
    heart_rate = reported_heart_rate(record, config)
    out, info = preprocess_ecg(record.signal, record.fs, config, heart_rate, return_info=True, keep_window=keep_window)
    info.update(
        heart_rate=float(info["heart_rate"]),
        period=int(info["period"]),
        heart_rate_source="file" if heart_rate is not None else "estimated",
        fs_in=float(record.fs),
        n_samples_in=int(record.signal.shape[-1]),
        version=config.version,
    )
    return out, info


def reported_heart_rate(record: Any, config: PreprocessConfig) -> float | None:
    """The heart rate the record's file reports (beats/min) if it is a number in ``[hr_min, hr_max]``, else None."""
    reported = (record.meta or {}).get("heart_rate")
    return float(reported) if _is_number(reported) and config.hr_min <= reported <= config.hr_max else None


def clean_ecg(signal: np.ndarray, fs: float, config: PreprocessConfig | None = None,
              heart_rate: float | np.ndarray | None = None, *, out_fs: float | None = None) -> np.ndarray:  # fmt: skip
    """The model's versioned cleaning of the whole record, kept in mV: ``(..., 12, n)`` mV at ``fs`` Hz -> ``(..., 12,
    m)`` float64 mV at ``out_fs`` Hz (default ``fs``; ``m = ceil(n * out_fs / fs)``), leads in the input's order: steps
    1 and 3-5 of :func:`preprocess_ecg` (no crop, scaling or padding; cleaned at ``target_fs``, where the filters are
    defined), then resampled to ``out_fs``. Inside the model's centre window the values differ slightly from the model
    input's, whose heart rate, wavelet threshold and filter edges come from that window alone."""
    config = config or PreprocessConfig()
    x, fs = _as_signal(signal), _check_fs(fs)
    out_fs = fs if out_fs is None else _check_fs(out_fs)
    up, down = rational_ratio(fs, out_fs)
    n_out = -(-x.shape[-1] * up // down)  # ceil: resample_to's length for fs -> out_fs directly
    cleaned, _, _ = _clean_at_target_rate(resample_to(x, fs, config.target_fs), config, heart_rate)
    out = resample_to(cleaned, config.target_fs, out_fs)[..., :n_out]  # the round trip's ceil may add one sample
    # ... or, where rational_ratio approximates a rate ratio, leave it one short
    return np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, n_out - out.shape[-1])], mode="edge")


def clean_record(record: Any, config: PreprocessConfig | None = None, *, out_fs: float | None = None) -> np.ndarray:
    """:func:`clean_ecg` of an :class:`~cardiacnets.record.EcgRecord` with its file's heart rate (as
    :func:`preprocess_record` uses it): ``(12, m)`` float64 mV at ``out_fs`` (default the record's rate)."""
    config = config or PreprocessConfig()
    return clean_ecg(record.signal, record.fs, config, reported_heart_rate(record, config), out_fs=out_fs)
