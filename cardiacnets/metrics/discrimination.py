"""How well a binary score separates cases from controls: proportions with Wilson score intervals, the 2x2 table
and the report at one threshold (accuracy, sensitivity, specificity, PPV, NPV), AUROC with DeLong (1988) or stratified
bootstrap intervals (the fast midrank algorithm of Sun & Xu 2014), DeLong tests for two AUCs (paired and unpaired) and
:func:`summarise_binary`, everything the report prints for one binary task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import (
    ComparisonResult,
    Estimate,
    Proportion,
    _as_binary,
    _as_float_array,
    _check_confidence,
    _check_count,
    _check_n_bootstrap,
    _check_same_length,
    _json_float,
    _percentile_interval,
    _require_both_classes,
    _resolve_rng,
    _stratified_resamples,
    _z_critical,
)


@dataclass(frozen=True)
class BinaryCounts:
    """The 2x2 confusion table of a binary classifier at one threshold."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n_positive(self) -> int:
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        return self.tn + self.fp

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def as_dict(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}


@dataclass(frozen=True)
class BinaryReport:
    """Accuracy, sensitivity, specificity, PPV and NPV at ``threshold``, each with a Wilson interval."""

    threshold: float
    counts: BinaryCounts
    accuracy: Proportion
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"threshold": _json_float(self.threshold), "counts": self.counts.as_dict()}
        for name in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
            out[name] = getattr(self, name).as_dict()
        return out


# ----------------------------------------------------------------------------------------------------------------------
# Proportions and binary classification at a threshold


def wilson_interval(count: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) for the proportion ``count / total``.

    Returns ``(low, high)`` within [0, 1]. Raises :class:`InputError` when ``total`` is 0.
    """
    count = _check_count(count, "count")
    total = _check_count(total, "total")
    confidence = _check_confidence(confidence)
    if total == 0:
        raise InputError("the Wilson interval is undefined for total = 0")
    if count > total:
        raise InputError(f"count ({count}) exceeds total ({total})")
    z = _z_critical(confidence)
    p = count / total
    z2n = z * z / total
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total)) / (1.0 + z2n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(count: int, total: int, confidence: float = 0.95) -> Proportion:
    """``count / total`` with its Wilson interval; value and interval are NaN when ``total`` is 0 (undefined)."""
    count = _check_count(count, "count")
    total = _check_count(total, "total")
    confidence = _check_confidence(confidence)
    if total == 0:
        return Proportion(math.nan, (math.nan, math.nan), confidence, "wilson", count, total)
    return Proportion(count / total, wilson_interval(count, total, confidence), confidence, "wilson", count, total)


def binary_counts(y_true: ArrayLike, y_pred: ArrayLike) -> BinaryCounts:
    """The 2x2 table of binary predictions ``y_pred`` (0/1, ``(n,)``) against ``y_true`` (0/1, ``(n,)``)."""
    y = _as_binary(y_true, "y_true")
    pred = _as_binary(y_pred, "y_pred")
    _check_same_length(y_true=y, y_pred=pred)
    return BinaryCounts(
        tp=int(np.sum(y & pred)), fp=int(np.sum(~y & pred)), tn=int(np.sum(~y & ~pred)), fn=int(np.sum(y & ~pred))
    )


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise InputError(f"threshold must be finite, got {threshold!r}")
    return value


def binary_report(y_true: ArrayLike, y_score: ArrayLike, threshold: float, confidence: float = 0.95) -> BinaryReport:
    """Accuracy, sensitivity, specificity, PPV, NPV at ``threshold`` (positive when ``y_score >= threshold``).

    ``y_true`` and ``y_score`` are ``(n,)``. Each metric is a :class:`Proportion` with its count, total and Wilson
    interval. A metric whose denominator is 0 (sensitivity with no positives, PPV with no predicted positives) is NaN,
    not an error: evaluating a case-only series is legitimate.
    """
    y = _as_binary(y_true, "y_true")
    score = _as_float_array(y_score, "y_score")
    _check_same_length(y_true=y, y_score=score)
    threshold = _check_threshold(threshold)
    confidence = _check_confidence(confidence)
    pred = score >= threshold
    counts = binary_counts(y, pred)
    tp, fp, tn, fn = counts.tp, counts.fp, counts.tn, counts.fn
    return BinaryReport(
        threshold=threshold,
        counts=counts,
        accuracy=proportion(tp + tn, counts.n, confidence),
        sensitivity=proportion(tp, tp + fn, confidence),
        specificity=proportion(tn, tn + fp, confidence),
        ppv=proportion(tp, tp + fp, confidence),
        npv=proportion(tn, tn + fn, confidence),
    )


# ----------------------------------------------------------------------------------------------------------------------
# AUROC: DeLong (1988) variance with the fast midrank algorithm of Sun & Xu (2014)


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sun & Xu (2014) midrank computation for ``scores`` ``(k, n)`` of k classifiers on the same subjects.

    Returns the AUCs ``(k,)`` and DeLong's structural components ``V10`` ``(k, m)`` (for each positive, the fraction
    of negatives scored lower, ties counting 1/2) and ``V01`` ``(k, n_neg)`` (for each negative, the fraction of
    positives scored higher).
    """
    pos = scores[:, y]
    neg = scores[:, ~y]
    m, n_neg = pos.shape[1], neg.shape[1]
    rank_pos = stats.rankdata(pos, axis=1)
    rank_neg = stats.rankdata(neg, axis=1)
    rank_all = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    auc = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n_neg
    v10 = (rank_all[:, :m] - rank_pos) / n_neg
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    return auc, v10, v01


def _delong_from_components(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    m, n_neg = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return s10 / m + s01 / n_neg


def auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (the Mann-Whitney probability that a positive outscores a negative; ties count 1/2).

    ``y_true`` 0/1 ``(n,)`` with both classes present, ``y_score`` ``(n,)``.
    """
    y = _as_binary(y_true, "y_true")
    score = _as_float_array(y_score, "y_score")
    _check_same_length(y_true=y, y_score=score)
    _require_both_classes(y, 1, "AUROC")
    return float(_placements(y, score[None, :])[0][0])


def delong_covariance(y_true: ArrayLike, y_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and their DeLong covariance matrix ``(k, k)`` for k score vectors on the same subjects.

    ``y_scores`` is ``(k, n)`` (or ``(n,)`` for one classifier). Needs at least 2 positives and 2 negatives.
    """
    y = _as_binary(y_true, "y_true")
    scores = _as_float_array(y_scores, "y_scores", ndim=(1, 2))
    scores = np.atleast_2d(scores)
    _check_same_length(y_true=y, y_scores=scores.T)
    _require_both_classes(y, 2, "the DeLong variance")
    auc, v10, v01 = _placements(y, scores)
    return auc, _delong_from_components(v10, v01)


def _auc_rows(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` ``(c, n)`` for the fixed labels ``positive`` ``(n,)``."""
    m = int(positive.sum())
    n_neg = positive.size - m
    ranks = stats.rankdata(scores, axis=1)
    return (ranks[:, positive].sum(axis=1) - m * (m + 1) / 2.0) / (m * n_neg)


def _bootstrap_auc(y: np.ndarray, score: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    strata = [np.flatnonzero(y), np.flatnonzero(~y)]
    positive = np.concatenate([np.ones(len(strata[0]), bool), np.zeros(len(strata[1]), bool)])
    return np.concatenate([_auc_rows(score[idx], positive) for idx in _stratified_resamples(strata, n_bootstrap, rng)])


def auroc_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    confidence: float = 0.95,
    method: str = "delong",
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """AUROC with a confidence interval.

    ``method="delong"``: AUC +/- z * DeLong standard error, clipped to [0, 1] (as pROC does).
    ``method="bootstrap"``: percentile interval of ``n_bootstrap`` resamples stratified by class (positives and
    negatives resampled separately, so every resample has both classes; pROC's default).
    """
    confidence = _check_confidence(confidence)
    if method == "delong":
        auc, cov = delong_covariance(y_true, y_score)
        se = math.sqrt(max(float(cov[0, 0]), 0.0))
        half = _z_critical(confidence) * se
        value = float(auc[0])
        return Estimate(value, (max(0.0, value - half), min(1.0, value + half)), confidence, "delong")
    if method == "bootstrap":
        y = _as_binary(y_true, "y_true")
        score = _as_float_array(y_score, "y_score")
        _check_same_length(y_true=y, y_score=score)
        _require_both_classes(y, 1, "AUROC")
        boot = _bootstrap_auc(y, score, _check_n_bootstrap(n_bootstrap), _resolve_rng(rng))
        value = float(_placements(y, score[None, :])[0][0])
        return Estimate(value, _percentile_interval(boot, confidence), confidence, "bootstrap-percentile")
    raise InputError(f"unknown AUROC interval method {method!r}; use 'delong' or 'bootstrap'")


def _z_test(diff: float, var: float) -> tuple[float, float]:
    """z and two-sided p for a difference with variance ``var``; a zero-variance zero difference gives p = 1."""
    if var <= 1e-15 * max(1.0, abs(diff)):
        if diff == 0.0:
            return 0.0, 1.0
        return math.copysign(math.inf, diff), 0.0
    z = diff / math.sqrt(var)
    return z, float(2.0 * stats.norm.sf(abs(z)))


def delong_test(
    y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike, confidence: float = 0.95
) -> ComparisonResult:
    """DeLong, DeLong & Clarke-Pearson (1988) test for two correlated AUCs (two models scored on the same subjects).

    ``y_true`` ``(n,)`` 0/1, ``score_a`` and ``score_b`` ``(n,)``. Returns the AUCs, their difference (A - B) with a
    DeLong interval, z and the two-sided p-value. ``details`` carries the standard errors and covariance.
    """
    confidence = _check_confidence(confidence)
    a = _as_float_array(score_a, "score_a")
    b = _as_float_array(score_b, "score_b")
    _check_same_length(score_a=a, score_b=b)
    auc, cov = delong_covariance(y_true, np.stack([a, b]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    z, p_value = _z_test(diff, var)
    half = _z_critical(confidence) * math.sqrt(max(var, 0.0))
    details = {
        "se_a": math.sqrt(max(cov[0, 0], 0.0)),
        "se_b": math.sqrt(max(cov[1, 1], 0.0)),
        "covariance": float(cov[0, 1]),
        "se_difference": math.sqrt(max(var, 0.0)),
    }
    return ComparisonResult(
        "delong-paired", float(auc[0]), float(auc[1]), diff, z, p_value, (diff - half, diff + half), confidence, details
    )


def delong_test_unpaired(
    y_true_a: ArrayLike, score_a: ArrayLike, y_true_b: ArrayLike, score_b: ArrayLike, confidence: float = 0.95
) -> ComparisonResult:
    """Compare two AUCs measured on independent samples: z = (A - B) / sqrt(var_A + var_B), DeLong variances."""
    confidence = _check_confidence(confidence)
    auc_a, cov_a = delong_covariance(y_true_a, score_a)
    auc_b, cov_b = delong_covariance(y_true_b, score_b)
    diff = float(auc_a[0] - auc_b[0])
    var = float(cov_a[0, 0] + cov_b[0, 0])
    z, p_value = _z_test(diff, var)
    half = _z_critical(confidence) * math.sqrt(var)
    details = {"se_a": math.sqrt(cov_a[0, 0]), "se_b": math.sqrt(cov_b[0, 0])}
    return ComparisonResult(
        "delong-unpaired",
        float(auc_a[0]),
        float(auc_b[0]),
        diff,
        z,
        p_value,
        (diff - half, diff + half),
        confidence,
        details,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Report convenience


def summarise_binary(
    y_true: ArrayLike,
    y_score: ArrayLike,
    threshold: float,
    confidence: float = 0.95,
    auc_method: str = "delong",
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """Everything the report prints for one binary task, strict-JSON-ready.

    Returns ``{"n", "n_positive", "n_negative", "threshold", "counts": {"tp", "fp", "tn", "fn"}, "auc": {"value",
    "ci"}, "accuracy": {...}, "sensitivity": {...}, "specificity": {...}, "ppv": {...}, "npv": {...}}`` where each
    metric is ``{"value": float | None, "ci": [low, high] | None}`` (None when undefined). Needs both classes.
    """
    report = binary_report(y_true, y_score, threshold, confidence)
    auc = auroc_ci(y_true, y_score, confidence, auc_method, n_bootstrap, rng)
    return {
        "n": report.counts.n,
        "n_positive": report.counts.n_positive,
        "n_negative": report.counts.n_negative,
        "confidence": confidence,
        **report.as_dict(),
        "auc": auc.as_dict(),
    }
