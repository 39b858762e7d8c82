"""Calibration of predicted probabilities in [0, 1] against 0/1 outcomes: the binned reliability curve (uniform
or quantile bins), the expected calibration error (Naeini et al. 2015) and the Brier score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import _as_binary, _as_float_array, _check_same_length, _json_float


@dataclass(frozen=True)
class ReliabilityCurve:
    """Binned calibration of predicted probabilities.

    ``bin_edges`` is ``(B + 1,)``; ``mean_predicted``, ``observed_frequency`` and ``counts`` are ``(B,)``. Empty bins
    have count 0 and NaN means. Bin ``b`` holds probabilities in ``[edge_b, edge_{b+1})``; the last bin is closed.
    """

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed_frequency: np.ndarray
    counts: np.ndarray
    strategy: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "bin_edges": [float(v) for v in self.bin_edges],
            "mean_predicted": [_json_float(v) for v in self.mean_predicted],
            "observed_frequency": [_json_float(v) for v in self.observed_frequency],
            "counts": [int(v) for v in self.counts],
        }


def _probabilities(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(y_true, "y_true")
    prob = _as_float_array(y_prob, "y_prob")
    _check_same_length(y_true=y, y_prob=prob)
    if prob.min() < 0.0 or prob.max() > 1.0:
        raise InputError(f"y_prob must be probabilities in [0, 1]; found range [{prob.min():g}, {prob.max():g}]")
    return y, prob


def reliability_curve(
    y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10, strategy: str = "uniform"
) -> ReliabilityCurve:
    """Reliability curve of predicted probabilities ``y_prob`` ``(n,)`` in [0, 1] against 0/1 outcomes.

    ``strategy="uniform"``: ``n_bins`` equal-width bins on [0, 1]. ``strategy="quantile"``: edges at the quantiles of
    ``y_prob`` so bins hold about equal numbers of subjects (duplicate edges are merged, so there may be fewer bins).
    """
    y, prob = _probabilities(y_true, y_prob)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1)))
        if edges.size == 1:
            edges = np.r_[edges, edges]
    else:
        raise InputError(f"unknown binning strategy {strategy!r}; use 'uniform' or 'quantile'")
    n_out = edges.size - 1
    bins = np.searchsorted(edges[1:-1], prob, side="right")
    counts = np.bincount(bins, minlength=n_out)
    sum_prob = np.bincount(bins, weights=prob, minlength=n_out)
    sum_true = np.bincount(bins, weights=y.astype(np.float64), minlength=n_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(counts > 0, sum_prob / np.maximum(counts, 1), np.nan)
        observed = np.where(counts > 0, sum_true / np.maximum(counts, 1), np.nan)
    return ReliabilityCurve(edges, mean_pred, observed, counts, strategy)


def expected_calibration_error(
    y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """ECE = sum over bins of (n_b / n) * |observed frequency_b - mean predicted probability_b| (Naeini et al. 2015)."""
    curve = reliability_curve(y_true, y_prob, n_bins, strategy)
    filled = curve.counts > 0
    weights = curve.counts[filled] / curve.counts.sum()
    return float(np.sum(weights * np.abs(curve.observed_frequency[filled] - curve.mean_predicted[filled])))


def brier_score(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared difference between probabilities ``(n,)`` and 0/1 outcomes."""
    y, prob = _probabilities(y_true, y_prob)
    return float(np.mean((prob - y) ** 2))
