"""Operating points chosen on a validation split: Youden's J, the highest-sensitivity threshold at a minimum
specificity, the highest-specificity threshold at a minimum sensitivity, and :func:`select_thresholds`, the pair
stored with a screening model. A subject is positive when ``score >= threshold``; every threshold is an observed
score (or one just above the maximum).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import _as_binary, _as_float_array, _check_same_length, _require_both_classes


def _operating_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (descending) with their true- and false-positive counts under ``score >= threshold``.

    The candidates are every distinct score plus one just above the maximum (nobody positive).
    """
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(yy)[last_of_group]
    fps = last_of_group + 1 - tps
    top = np.nextafter(s[0], np.inf)
    return np.r_[top, s[last_of_group]], np.r_[0, tps], np.r_[0, fps]


def _threshold_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    y = _as_binary(y_true, "y_true")
    score = _as_float_array(y_score, "y_score")
    _check_same_length(y_true=y, y_score=score)
    n_pos, n_neg = _require_both_classes(y, 1, "threshold selection")
    thresholds, tps, fps = _operating_points(y, score)
    return thresholds, tps, fps, n_pos, n_neg


def _check_target_rate(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < value <= 1.0):
        raise InputError(f"{name} must be in (0, 1], got {value!r}")
    return value


def youden_threshold(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 on a validation set (positive when
    ``score >= threshold``). The threshold is one of the observed scores; among ties the highest is returned."""
    thresholds, tps, fps, n_pos, n_neg = _threshold_inputs(y_true, y_score)
    j = tps / n_pos - fps / n_neg
    return float(thresholds[int(np.argmax(j))])


def threshold_for_specificity(y_true: ArrayLike, y_score: ArrayLike, min_specificity: float = 0.9) -> float:
    """The high-specificity operating point: the threshold with the highest sensitivity among those whose
    specificity on this (validation) set is at least ``min_specificity``; among equally sensitive ones, the highest
    specificity. Always exists: a threshold above every score has specificity 1."""
    target = _check_target_rate(min_specificity, "min_specificity")
    thresholds, tps, fps, _, n_neg = _threshold_inputs(y_true, y_score)
    valid = (1.0 - fps / n_neg) >= target - 1e-12
    best_tp = tps[valid].max()
    return float(thresholds[np.flatnonzero(valid & (tps == best_tp))[0]])  # first = highest threshold = fewest FPs


def threshold_for_sensitivity(y_true: ArrayLike, y_score: ArrayLike, min_sensitivity: float = 0.9) -> float:
    """The threshold with the highest specificity among those whose sensitivity is at least ``min_sensitivity``;
    among equally specific ones, the highest sensitivity."""
    target = _check_target_rate(min_sensitivity, "min_sensitivity")
    thresholds, tps, fps, n_pos, _ = _threshold_inputs(y_true, y_score)
    valid = (tps / n_pos) >= target - 1e-12
    best_fp = fps[valid].min()
    return float(thresholds[np.flatnonzero(valid & (fps == best_fp))[-1]])  # last = lowest threshold = most TPs


def select_thresholds(y_true: ArrayLike, y_score: ArrayLike, min_specificity: float = 0.9) -> dict[str, float]:
    """The operating points stored with a screening model: ``{"youden": t, "high_specificity": t,
    "min_specificity": min_specificity}``, all plain floats, chosen on the validation split."""
    return {
        "youden": youden_threshold(y_true, y_score),
        "high_specificity": threshold_for_specificity(y_true, y_score, min_specificity),
        "min_specificity": float(min_specificity),
    }
