"""Split-conformal prediction intervals for the 82 phenotypes (Vovk et al. 2005; Lei et al. 2018).

For each phenotype, the absolute residuals ``|y - y_hat|`` on a calibration split give ``q``, their
``ceil((n + 1) * coverage) / n`` empirical quantile; the interval of a new estimate is ``[y_hat - q, y_hat + q]``.
When the calibration and test ECGs are exchangeable, the interval holds the true value with probability at least
``coverage`` (marginally, over subjects); it says nothing about ECGs unlike the calibration data, which is what the
out-of-distribution check is for. Intervals are clipped to a phenotype's physical range (volumes, masses, areas and
thicknesses >= 0; ejection fractions in [0, 100]), which cannot lower coverage.

Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cardiacnets.errors import InputError

__all__ = ["conformal_quantiles", "interval_coverage", "physical_limits", "prediction_intervals"]

_NON_NEGATIVE_UNITS = {"mL", "g", "mm", "mm2", "L/min"}


def conformal_quantiles(truth: np.ndarray, predicted: np.ndarray, coverage: float = 0.9) -> np.ndarray:
    """``(k,)`` half-widths from a calibration split: ``truth`` and ``predicted`` are ``(n, k)``; NaN truths (unknown
    phenotypes) are left out per column. A column with too few values for ``coverage`` gets ``inf``."""
    if not 0.0 < coverage < 1.0:
        raise InputError(f"coverage must be in (0, 1), got {coverage!r}")
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if truth.shape != predicted.shape or truth.ndim != 2:
        raise InputError(f"truth and predictions must both be (n, k), got {truth.shape} and {predicted.shape}")
    out = np.empty(truth.shape[1])
    for j in range(truth.shape[1]):
        residuals = np.abs(truth[:, j] - predicted[:, j])
        residuals = np.sort(residuals[np.isfinite(residuals)])
        n = residuals.size
        rank = math.ceil((n + 1) * coverage)
        out[j] = residuals[rank - 1] if 0 < rank <= n else np.inf
    return out


def physical_limits(units: Sequence[str], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` bounds per phenotype from its unit and name (ejection fractions are percentages in [0, 100])."""
    low = np.array([0.0 if unit in _NON_NEGATIVE_UNITS else -np.inf for unit in units])
    high = np.full(len(units), np.inf)
    for j, name in enumerate(names):
        if name.endswith("EF"):
            low[j], high[j] = 0.0, 100.0
    return low, high


def prediction_intervals(
    predicted: np.ndarray, half_widths: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` arrays shaped like ``predicted`` (``(..., k)``), clipped to ``[low, high]`` when given."""
    predicted = np.asarray(predicted, dtype=np.float64)
    lower, upper = predicted - half_widths, predicted + half_widths
    if low is not None:
        lower, upper = np.maximum(lower, low), np.maximum(upper, low)
    if high is not None:
        lower, upper = np.minimum(lower, high), np.minimum(upper, high)
    return lower, upper


def interval_coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``(k,)`` fraction of finite truths inside ``[lower, upper]`` per column."""
    truth = np.asarray(truth, dtype=np.float64)
    inside = (truth >= lower) & (truth <= upper)
    known = np.isfinite(truth)
    return np.where(known.sum(0) > 0, (inside & known).sum(0) / np.maximum(known.sum(0), 1), np.nan)
