"""Slow per-lead reference of :func:`cardiacnets.preprocess.preprocess_ecg`, straight from the library calls.

One record and one lead at a time: ``scipy.signal.resample_poly``, ``statsmodels.tsa.seasonal.seasonal_decompose``
(its own trend, not a re-implementation), ``pywt.wavedec``/``pywt.threshold``/``pywt.waverec`` and
``scipy.signal.savgol_filter``. ``tests/test_preprocess.py`` asserts the vectorised path equals this to 1e-5 and
``benchmarks/bench_preprocess.py`` times both. The heart rate (hence the seasonal period) is an input here: estimating
it is not what this reference proves.
"""

from __future__ import annotations

import numpy as np
import pywt
from scipy import signal as sps
from statsmodels.tsa.seasonal import seasonal_decompose

from cardiacnets.preprocess import PreprocessConfig, period_from_heart_rate, rational_ratio


def reference_lead(lead: np.ndarray, period: int, config: PreprocessConfig) -> np.ndarray:
    """Baseline, wavelet and Savitzky-Golay steps on one lead ``(n,)`` mV at ``config.target_fs`` (float64, mV)."""
    x = np.asarray(lead, dtype=np.float64)
    n = x.size
    if config.baseline == "seasonal":
        trend = seasonal_decompose(x, model="additive", period=period, extrapolate_trend=period - 1).trend
        x = x - trend
    coeffs = pywt.wavedec(x, config.wavelet, level=config.wavelet_level)
    sigma = np.median(np.abs(coeffs[-1])) / 0.6745
    lam = sigma * np.sqrt(2.0 * np.log(n))
    coeffs = [coeffs[0]] + [pywt.threshold(c, lam, mode=config.threshold_mode) for c in coeffs[1:]]
    x = pywt.waverec(coeffs, config.wavelet)[:n]
    return sps.savgol_filter(x, config.savgol_window, config.savgol_order)


def reference_preprocess_record(
    signal: np.ndarray, fs: float, heart_rate: float, config: PreprocessConfig | None = None
) -> np.ndarray:
    """One record ``(12, n)`` mV at ``fs`` Hz -> ``(12, target_samples)`` float32, one lead at a time."""
    config = config or PreprocessConfig()
    up, down = rational_ratio(fs, config.target_fs)
    n_out = config.target_samples
    rows = []
    for lead in np.asarray(signal, dtype=np.float64):
        x = lead if up == down else sps.resample_poly(lead, up, down)
        if x.size > n_out:
            start = (x.size - n_out) // 2
            x = x[start : start + n_out]
        hr = float(np.clip(heart_rate, config.hr_min, config.hr_max))
        x = reference_lead(x, period_from_heart_rate(hr, config.target_fs, x.size), config)
        lo, hi = x.min(), x.max()
        low, high = config.scale_range
        x = np.zeros_like(x) if hi == lo else low + (high - low) * (x - lo) / (hi - lo)
        if x.size < n_out:
            before = (n_out - x.size) // 2
            x = np.concatenate([np.zeros(before), x, np.zeros(n_out - x.size - before)])
        rows.append(x)
    return np.stack(rows).astype(np.float32)
