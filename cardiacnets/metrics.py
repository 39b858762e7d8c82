"""Statistics of the CardiacNets paper (Ding et al., section "Quantitative assessment and statistical analysis").

The paper reports AUC, accuracy, sensitivity, specificity, PPV and NPV with Wilson score intervals, Pearson r with
bootstrap intervals, DeLong tests between AUCs, z-tests for the other metrics, and one-vs-rest evaluation of the
3-class cardiomyopathy subtype task. This module implements those, the paired tests a fair comparison of two models on
the same subjects needs (DeLong for correlated AUCs, McNemar for sensitivity/specificity, Steiger and a paired bootstrap
for correlations), threshold selection on a validation split and calibration.

Conventions shared by every function:

- ``y_true`` for binary tasks is a 1-D array of 0/1 (or booleans), 1 = disease present. ``y_score`` is a 1-D array of
  the same length; higher means more likely positive. A subject is called positive when ``y_score >= threshold``.
- Multiclass labels are integers in ``[0, C)``; multiclass scores are ``(n, C)``.
- Regression targets and predictions are ``(n,)`` or ``(n, k)`` (k targets, e.g. the 82 phenotypes), one row per
  subject.
- ``confidence`` is the two-sided coverage of every interval (0.95 by default).
- Randomness only comes from ``rng``: a :class:`numpy.random.Generator`, an integer seed, or ``None`` (seed 0, so that
  reports are reproducible by default).
- Invalid input (NaN, length mismatch, one-class labels where a metric is undefined, labels that are not 0/1) raises
  :class:`~cardiacnets.errors.InputError` with a message naming the problem.
- Results are small frozen dataclasses whose ``as_dict()`` is JSON-ready (``{"value", "ci"}``; NaN becomes ``None``).

Only numpy and scipy are used here: the module is imported by the torch-free screening install.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "BinaryCounts",
    "BinaryReport",
    "ComparisonResult",
    "Estimate",
    "MulticlassReport",
    "MultiTargetCorrelation",
    "Proportion",
    "ReliabilityCurve",
    "auroc",
    "auroc_ci",
    "binary_counts",
    "binary_report",
    "brier_score",
    "compare_sensitivity_specificity",
    "confusion_matrix",
    "delong_covariance",
    "delong_test",
    "delong_test_unpaired",
    "dependent_correlation_z",
    "expected_calibration_error",
    "independent_correlations_test",
    "mcnemar_test",
    "mean_pearson_r",
    "multiclass_report",
    "normalise_rows",
    "one_vs_rest_auroc",
    "paired_bootstrap_correlation_difference",
    "pearson_ci",
    "pearson_r",
    "proportion",
    "reliability_curve",
    "select_thresholds",
    "steiger_test",
    "summarise_binary",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
    "two_proportion_ztest",
    "wilson_interval",
    "youden_threshold",
]

# Bootstrap work is done in chunks of at most this many (replicate x subject) cells, to bound memory.
_MAX_BOOTSTRAP_CELLS = 4_000_000
_MIN_BOOTSTRAP = 100
# McNemar: the exact binomial test is used when there are fewer discordant pairs than this (a common rule of thumb).
MCNEMAR_EXACT_BELOW = 25


# ----------------------------------------------------------------------------------------------------------------------
# Result types


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_ci(ci: tuple[float, float] | None) -> list[float | None] | None:
    if ci is None or not all(math.isfinite(float(v)) for v in ci):
        return None
    return [float(ci[0]), float(ci[1])]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval ``ci = (low, high)``.

    ``value`` is NaN (and ``ci`` ``(nan, nan)``) when the quantity is undefined, e.g. a PPV with no predicted positives.
    """

    value: float
    ci: tuple[float, float]
    confidence: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        """``{"value": float | None, "ci": [low, high] | None}``, strict-JSON-ready."""
        return {"value": _json_float(self.value), "ci": _json_ci(self.ci)}


@dataclass(frozen=True)
class Proportion(Estimate):
    """A proportion ``count / total`` with its Wilson score interval."""

    count: int
    total: int


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


@dataclass(frozen=True)
class ComparisonResult:
    """A two-sided comparison of model A with model B on one quantity (AUC, sensitivity, correlation ...).

    ``difference`` is ``estimate_a - estimate_b``; ``ci`` is its interval when the method provides one. ``statistic``
    is the test statistic (z, chi-square or the smaller discordant count for exact McNemar; NaN for the bootstrap).
    """

    method: str
    estimate_a: float
    estimate_b: float
    difference: float
    statistic: float
    p_value: float
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    details: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "a": _json_float(self.estimate_a),
            "b": _json_float(self.estimate_b),
            "difference": {"value": _json_float(self.difference), "ci": _json_ci(self.ci)},
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            **{key: _json_float(value) for key, value in self.details.items()},
        }


@dataclass(frozen=True)
class MultiTargetCorrelation:
    """Pearson r per target and their mean, with intervals from one bootstrap over subjects.

    ``per_target_r`` is ``(k,)`` and ``per_target_ci`` is ``(k, 2)``; ``mean`` is the mean r over the k targets.
    """

    mean: Estimate
    per_target_r: np.ndarray
    per_target_ci: np.ndarray
    target_names: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        per_target = {
            name: {"value": _json_float(r), "ci": _json_ci((lo, hi))}
            for name, r, (lo, hi) in zip(self.target_names, self.per_target_r, self.per_target_ci, strict=True)
        }
        return {**self.mean.as_dict(), "per_target": per_target}


@dataclass(frozen=True)
class MulticlassReport:
    """Evaluation of a C-class classifier whose predicted class is the arg-max score.

    ``confusion`` is ``(C, C)`` counts with rows = true class and columns = predicted class; ``confusion_normalised``
    divides each row by its total (NaN for a class with no subjects). ``auc`` holds the one-vs-rest AUC per class
    (DeLong interval), ``macro_auc`` their unweighted mean (stratified bootstrap interval).
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    confusion_normalised: np.ndarray
    accuracy: Proportion
    auc: dict[str, Estimate]
    macro_auc: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "confusion": self.confusion.astype(int).tolist(),
            "confusion_normalised": [[_json_float(v) for v in row] for row in self.confusion_normalised],
            "accuracy": self.accuracy.as_dict(),
            "auc": {name: est.as_dict() for name, est in self.auc.items()},
            "macro_auc": self.macro_auc.as_dict(),
        }


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


# ----------------------------------------------------------------------------------------------------------------------
# Input checks


def _check_confidence(confidence: float) -> float:
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not (0.0 < value < 1.0):
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    return value


def _z_critical(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _as_float_array(values: ArrayLike, name: str, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric") from None
    if arr.ndim not in ndim:
        expected = " or ".join(f"{d}-D" for d in ndim)
        raise InputError(f"{name} must be {expected}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{name} contains {int(bad.sum())} NaN or infinite value(s)")
    return arr


def _as_binary(values: ArrayLike, name: str = "y_true") -> np.ndarray:
    arr = _as_float_array(values, name)
    bad = (arr != 0.0) & (arr != 1.0)
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(arr[bad])[:5])
        raise InputError(f"{name} must hold only 0/1 (or False/True); found {shown}")
    return arr == 1.0


def _as_class_labels(values: ArrayLike, n_classes: int, name: str = "y_true") -> np.ndarray:
    arr = _as_float_array(values, name)
    if np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() >= n_classes:
        raise InputError(
            f"{name} must hold integer class indices in [0, {n_classes}); found values {np.unique(arr)[:8]}"
        )
    return arr.astype(np.int64)


def _check_same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise InputError(f"inputs differ in length: {shown}")
    return next(iter(lengths.values()))


def _require_both_classes(y: np.ndarray, minimum: int = 1, what: str = "this metric") -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < minimum or n_neg < minimum:
        raise InputError(
            f"{what} needs at least {minimum} positive and {minimum} negative subject(s); "
            f"got {n_pos} positive and {n_neg} negative"
        )
    return n_pos, n_neg


def _resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng).__name__}")


def _check_n_bootstrap(n_bootstrap: int) -> int:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < _MIN_BOOTSTRAP:
        raise InputError(f"n_bootstrap must be an integer >= {_MIN_BOOTSTRAP}, got {n_bootstrap!r}")
    return int(n_bootstrap)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or float(value) != round(float(value)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


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


def two_proportion_ztest(
    count_a: int, total_a: int, count_b: int, total_b: int, confidence: float = 0.95
) -> ComparisonResult:
    """Two-sided z-test for two proportions from independent samples (pooled variance), as the paper uses for
    metrics other than AUC when the two groups are different subjects. The interval is the unpooled Wald interval of
    the difference. For two models on the same subjects use :func:`mcnemar_test` instead.
    """
    count_a, total_a = _check_count(count_a, "count_a"), _check_count(total_a, "total_a")
    count_b, total_b = _check_count(count_b, "count_b"), _check_count(total_b, "total_b")
    confidence = _check_confidence(confidence)
    if total_a == 0 or total_b == 0 or count_a > total_a or count_b > total_b:
        raise InputError(f"invalid proportions {count_a}/{total_a} and {count_b}/{total_b}")
    p_a, p_b = count_a / total_a, count_b / total_b
    pooled = (count_a + count_b) / (total_a + total_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    diff = p_a - p_b
    if se_pooled == 0.0:
        z, p_value = 0.0, 1.0
    else:
        z = diff / se_pooled
        p_value = float(2.0 * stats.norm.sf(abs(z)))
    se_wald = math.sqrt(p_a * (1 - p_a) / total_a + p_b * (1 - p_b) / total_b)
    half = _z_critical(confidence) * se_wald
    return ComparisonResult("two-proportion z-test", p_a, p_b, diff, z, p_value, (diff - half, diff + half), confidence)


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


def _stratified_resamples(
    strata: Sequence[np.ndarray], n_bootstrap: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Yield chunks ``(c, n)`` of subject indices, each row a bootstrap resample drawn within each stratum.

    Columns are ordered stratum by stratum, so the labels of a resample are the concatenated stratum labels.
    """
    n = sum(len(s) for s in strata)
    chunk = max(1, _MAX_BOOTSTRAP_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        c = min(chunk, n_bootstrap - start)
        yield np.concatenate([s[rng.integers(0, len(s), size=(c, len(s)))] for s in strata], axis=1)


def _bootstrap_auc(y: np.ndarray, score: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    strata = [np.flatnonzero(y), np.flatnonzero(~y)]
    positive = np.concatenate([np.ones(len(strata[0]), bool), np.zeros(len(strata[1]), bool)])
    return np.concatenate([_auc_rows(score[idx], positive) for idx in _stratified_resamples(strata, n_bootstrap, rng)])


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


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
# Pearson correlation, bootstrap intervals and comparisons


def _as_targets(values: ArrayLike, name: str) -> np.ndarray:
    arr = _as_float_array(values, name, ndim=(1, 2))
    return arr[:, None] if arr.ndim == 1 else arr


def _check_regression_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = _as_targets(y_true, "y_true")
    p = _as_targets(y_pred, "y_pred")
    if t.shape != p.shape:
        raise InputError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if t.shape[0] < 4:
        raise InputError(f"a correlation interval needs at least 4 subjects, got {t.shape[0]}")
    for arr, name in ((t, "y_true"), (p, "y_pred")):
        constant = np.flatnonzero(np.ptp(arr, axis=0) == 0)
        if constant.size:
            raise InputError(f"{name} is constant in target column(s) {constant[:10].tolist()}: correlation undefined")
    return t, p


def _standardise(a: np.ndarray) -> np.ndarray:
    centred = a - a.mean(axis=0)
    return centred / np.sqrt(np.mean(centred * centred, axis=0))


def _weighted_pearson(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair for each row of ``weights`` ``(c, n)`` (bootstrap counts / n); ``(c, k)``.

    ``x`` and ``y`` are standardised ``(n, k)``, which keeps the one-pass moment formulas accurate.
    """
    mx, my = weights @ x, weights @ y
    cxy = weights @ (x * y) - mx * my
    vx = weights @ (x * x) - mx * mx
    vy = weights @ (y * y) - my * my
    degenerate = (vx <= 1e-12) | (vy <= 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cxy / np.sqrt(vx * vy)
    r[degenerate] = np.nan
    return np.clip(r, -1.0, 1.0)


def _bootstrap_count_weights(n: int, n_bootstrap: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield chunks ``(c, n)`` of resampling weights (how often each subject is drawn, divided by n).

    Resample b draws the subject indices ``rng.integers(0, n, size=(c, n))[b]`` of its chunk; chunks hold at most
    ``_MAX_BOOTSTRAP_CELLS`` cells, so a small problem is one chunk equal to ``rng.integers(0, n, (n_bootstrap, n))``.
    """
    chunk = max(1, _MAX_BOOTSTRAP_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        c = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(c, n))
        flat = (idx + n * np.arange(c)[:, None]).ravel()
        yield np.bincount(flat, minlength=c * n).reshape(c, n) / n


def _jackknife_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-subject-out Pearson r ``(n, k)`` from standardised ``x``, ``y`` ``(n, k)`` in O(n k)."""
    n = x.shape[0]
    m = n - 1
    mx = (x.sum(axis=0) - x) / m
    my = (y.sum(axis=0) - y) / m
    cxy = ((x * y).sum(axis=0) - x * y) / m - mx * my
    vx = ((x * x).sum(axis=0) - x * x) / m - mx * mx
    vy = ((y * y).sum(axis=0) - y * y) / m - my * my
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(cxy / np.sqrt(vx * vy), -1.0, 1.0)


def _bca_interval(theta: float, boot: np.ndarray, jack: np.ndarray, confidence: float) -> tuple[float, float]:
    """Bias-corrected and accelerated interval (Efron 1987; as in Efron & Tibshirani 1993, ch. 14)."""
    n_boot = boot.size
    below = (np.sum(boot < theta) + 0.5 * np.sum(boot == theta)) / n_boot
    below = min(max(below, 0.5 / n_boot), 1.0 - 0.5 / n_boot)  # keep z0 finite when every replicate is on one side
    z0 = stats.norm.ppf(below)
    d = jack.mean() - jack
    denom = 6.0 * float(np.sum(d * d)) ** 1.5
    accel = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    alpha = (1.0 - confidence) / 2.0
    z_alpha = stats.norm.ppf([alpha, 1.0 - alpha])
    adjusted = stats.norm.cdf(z0 + (z0 + z_alpha) / (1.0 - accel * (z0 + z_alpha)))
    low, high = np.quantile(boot, adjusted)
    return float(low), float(high)


def _bootstrap_interval(
    theta: float, boot: np.ndarray, jack: np.ndarray | None, confidence: float, method: str
) -> tuple[float, float]:
    if method == "percentile":
        return _percentile_interval(boot, confidence)
    assert jack is not None
    return _bca_interval(theta, boot, jack, confidence)


def _check_bootstrap_method(method: str) -> str:
    if method not in ("bca", "percentile"):
        raise InputError(f"unknown bootstrap interval method {method!r}; use 'bca' or 'percentile'")
    return method


def _drop_invalid_replicates(boot: np.ndarray, what: str) -> np.ndarray:
    """Drop resamples where a correlation is undefined (a resample of identical subjects); ``boot`` ``(B, ...)``."""
    valid = np.all(np.isfinite(boot.reshape(boot.shape[0], -1)), axis=1)
    n_bad = int((~valid).sum())
    if n_bad:
        logger.debug("%s: dropped %d of %d bootstrap resamples with an undefined correlation", what, n_bad, valid.size)
    if valid.sum() < max(_MIN_BOOTSTRAP // 2, valid.size // 2):
        raise InputError(f"{what}: too few bootstrap resamples with a defined correlation ({int(valid.sum())})")
    return boot[valid]


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation of ``x`` and ``y`` ``(n,)``; InputError when either is constant."""
    a = _as_float_array(x, "x")
    b = _as_float_array(y, "y")
    _check_same_length(x=a, y=b)
    if a.size < 2:
        raise InputError("a correlation needs at least 2 subjects")
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    if denom == 0.0:
        raise InputError("x or y is constant: correlation undefined")
    return float(np.clip(float(a @ b) / denom, -1.0, 1.0))


def pearson_ci(
    x: ArrayLike,
    y: ArrayLike,
    confidence: float = 0.95,
    method: str = "bca",
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Pearson r of ``x`` and ``y`` ``(n,)`` with an interval.

    ``method``: ``"bca"`` (bias-corrected accelerated bootstrap, jackknife acceleration), ``"percentile"`` (percentile
    bootstrap) or ``"fisher"`` (``tanh(atanh(r) +/- z / sqrt(n - 3))``, no resampling). Subjects are resampled as
    (x, y) pairs.
    """
    confidence = _check_confidence(confidence)
    xs, ys = _check_regression_pair(x, y)
    if xs.shape[1] != 1:
        raise InputError("pearson_ci takes 1-D x and y; use mean_pearson_r for several targets")
    r = pearson_r(xs[:, 0], ys[:, 0])
    n = xs.shape[0]
    if method == "fisher":
        if abs(r) == 1.0:
            return Estimate(r, (r, r), confidence, "fisher-z")
        half = _z_critical(confidence) / math.sqrt(n - 3)
        z = math.atanh(r)
        return Estimate(r, (math.tanh(z - half), math.tanh(z + half)), confidence, "fisher-z")
    result = mean_pearson_r(xs, ys, confidence=confidence, method=method, n_bootstrap=n_bootstrap, rng=rng)
    return Estimate(r, result.mean.ci, confidence, result.mean.method)


def _bootstrap_r(
    t: np.ndarray, p: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:  # (B, k) before dropping
    ts, ps = _standardise(t), _standardise(p)
    return np.concatenate([_weighted_pearson(w, ts, ps) for w in _bootstrap_count_weights(len(t), n_bootstrap, rng)])


def mean_pearson_r(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    confidence: float = 0.95,
    method: str = "bca",
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int | None = None,
    target_names: Sequence[str] | None = None,
) -> MultiTargetCorrelation:
    """Pearson r per target and the mean r over targets (the paper's summary over 82 phenotypes), with intervals.

    ``y_true`` and ``y_pred`` are ``(n, k)`` (or ``(n,)``), one row per subject. One bootstrap over subjects is drawn
    and every resample takes the same subjects for all k targets (joint resampling), so the mean's interval reflects
    the correlation between targets. ``method`` is ``"bca"`` or ``"percentile"``; the per-target intervals use the
    same resamples and method. Resamples where some correlation is undefined (possible only for tiny n) are dropped.
    """
    confidence = _check_confidence(confidence)
    method = _check_bootstrap_method(method)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    t, p = _check_regression_pair(y_true, y_pred)
    k = t.shape[1]
    names = tuple(target_names) if target_names is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise InputError(f"target_names has {len(names)} names for {k} targets")
    ts, ps = _standardise(t), _standardise(p)
    r = np.clip(np.mean(ts * ps, axis=0), -1.0, 1.0)  # (k,)
    boot = _drop_invalid_replicates(_bootstrap_r(t, p, n_bootstrap, _resolve_rng(rng)), "mean_pearson_r")  # (B, k)
    jack = _jackknife_pearson(ts, ps) if method == "bca" else None  # (n, k)
    mean_r = float(r.mean())
    mean_ci = _bootstrap_interval(
        mean_r, boot.mean(axis=1), None if jack is None else jack.mean(axis=1), confidence, method
    )
    per_target_ci = np.array(
        [
            _bootstrap_interval(float(r[j]), boot[:, j], None if jack is None else jack[:, j], confidence, method)
            for j in range(k)
        ]
    )
    label = f"bootstrap-{method}"
    return MultiTargetCorrelation(Estimate(mean_r, mean_ci, confidence, label), r, per_target_ci, names)


def paired_bootstrap_correlation_difference(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    confidence: float = 0.95,
    method: str = "percentile",
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> ComparisonResult:
    """Paired bootstrap for the difference in (mean) Pearson r of two models on the same subjects.

    ``y_true``, ``pred_a`` and ``pred_b`` are ``(n,)`` or ``(n, k)``; with k targets the compared quantity is the mean
    r over targets. Each resample takes the same subjects for both models and all targets. The two-sided p-value is
    ``2 * min(P*(d <= 0), P*(d >= 0))`` over the resampled differences d (with a +1 correction so it is never 0),
    capped at 1.
    """
    confidence = _check_confidence(confidence)
    method = _check_bootstrap_method(method)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    t, a = _check_regression_pair(y_true, pred_a)
    _, b = _check_regression_pair(y_true, pred_b)
    ts, as_, bs = _standardise(t), _standardise(a), _standardise(b)
    r_a = float(np.clip(np.mean(ts * as_, axis=0), -1, 1).mean())
    r_b = float(np.clip(np.mean(ts * bs, axis=0), -1, 1).mean())
    diff = r_a - r_b
    boots = []
    for w in _bootstrap_count_weights(len(t), n_bootstrap, _resolve_rng(rng)):
        boots.append(_weighted_pearson(w, ts, as_).mean(axis=1) - _weighted_pearson(w, ts, bs).mean(axis=1))
    boot = _drop_invalid_replicates(np.concatenate(boots)[:, None], "paired_bootstrap_correlation_difference")[:, 0]
    jack = None
    if method == "bca":
        jack = _jackknife_pearson(ts, as_).mean(axis=1) - _jackknife_pearson(ts, bs).mean(axis=1)
    ci = _bootstrap_interval(diff, boot, jack, confidence, method)
    n_boot = boot.size
    tail = min(np.sum(boot <= 0.0), np.sum(boot >= 0.0))
    p_value = float(min(1.0, 2.0 * (tail + 1) / (n_boot + 1)))
    return ComparisonResult(
        f"paired-bootstrap-{method}", r_a, r_b, diff, math.nan, p_value, ci, confidence, {"n_bootstrap": float(n_boot)}
    )


def dependent_correlation_z(r_ya: float, r_yb: float, r_ab: float, n: int, method: str = "steiger1980") -> float:
    """z statistic comparing two dependent correlations that share variable y (r(y, a) vs r(y, b), same subjects).

    ``method="steiger1980"``: Steiger (1980) eq. 15, Fisher-z difference with the Pearson-Filon covariance evaluated at
    the pooled r = (r_ya + r_yb) / 2. ``method="meng1992"``: Meng, Rosenthal & Rubin (1992). Both are N(0, 1) under
    H0: rho_ya = rho_yb.
    """
    for name, value in (("r_ya", r_ya), ("r_yb", r_yb), ("r_ab", r_ab)):
        if not (-1.0 <= float(value) <= 1.0):
            raise InputError(f"{name} must be in [-1, 1], got {value!r}")
    if abs(r_ya) >= 1.0 or abs(r_yb) >= 1.0:
        raise InputError("dependent correlation test undefined when r(y, a) or r(y, b) is +/-1")
    n = _check_count(n, "n")
    if n <= 3:
        raise InputError(f"dependent correlation test needs n > 3, got {n}")
    z_diff = math.atanh(r_ya) - math.atanh(r_yb)
    if method == "steiger1980":
        r_bar = (r_ya + r_yb) / 2.0
        rb2 = r_bar * r_bar
        psi = r_ab * (1.0 - 2.0 * rb2) - 0.5 * rb2 * (1.0 - 2.0 * rb2 - r_ab * r_ab)
        s = psi / (1.0 - rb2) ** 2
        var_factor = 2.0 - 2.0 * s
    elif method == "meng1992":
        rm2 = (r_ya * r_ya + r_yb * r_yb) / 2.0
        f = min(1.0, (1.0 - r_ab) / (2.0 * (1.0 - rm2)))
        h = (1.0 - f * rm2) / (1.0 - rm2)
        var_factor = 2.0 * (1.0 - r_ab) * h
    else:
        raise InputError(f"unknown dependent-correlation method {method!r}; use 'steiger1980' or 'meng1992'")
    if var_factor <= 0.0:
        if z_diff == 0.0:
            return 0.0
        return math.copysign(math.inf, z_diff)
    return z_diff * math.sqrt((n - 3) / var_factor)


def steiger_test(
    y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, method: str = "steiger1980"
) -> ComparisonResult:
    """Test r(y_true, pred_a) = r(y_true, pred_b) for two models' predictions ``(n,)`` on the same subjects.

    See :func:`dependent_correlation_z` for the methods. ``details["r_ab"]`` is the correlation between the models.
    """
    y = _as_float_array(y_true, "y_true")
    a = _as_float_array(pred_a, "pred_a")
    b = _as_float_array(pred_b, "pred_b")
    n = _check_same_length(y_true=y, pred_a=a, pred_b=b)
    r_ya, r_yb, r_ab = pearson_r(y, a), pearson_r(y, b), pearson_r(a, b)
    z = dependent_correlation_z(r_ya, r_yb, r_ab, n, method)
    p_value = float(2.0 * stats.norm.sf(abs(z)))
    return ComparisonResult(method, r_ya, r_yb, r_ya - r_yb, z, p_value, None, 0.95, {"r_ab": r_ab, "n": float(n)})


def independent_correlations_test(r_a: float, n_a: int, r_b: float, n_b: int) -> ComparisonResult:
    """Two-sided Fisher-z test for correlations from independent samples: z = (atanh r_a - atanh r_b) /
    sqrt(1/(n_a - 3) + 1/(n_b - 3))."""
    n_a, n_b = _check_count(n_a, "n_a"), _check_count(n_b, "n_b")
    if n_a <= 3 or n_b <= 3:
        raise InputError(f"Fisher-z test needs n > 3 in both samples, got {n_a} and {n_b}")
    if not (-1.0 < r_a < 1.0 and -1.0 < r_b < 1.0):
        raise InputError(f"correlations must be in (-1, 1), got {r_a!r} and {r_b!r}")
    z = (math.atanh(r_a) - math.atanh(r_b)) / math.sqrt(1.0 / (n_a - 3) + 1.0 / (n_b - 3))
    return ComparisonResult("fisher-z-independent", r_a, r_b, r_a - r_b, z, float(2.0 * stats.norm.sf(abs(z))))


# ----------------------------------------------------------------------------------------------------------------------
# Paired binary outcomes: McNemar


def mcnemar_test(
    outcome_a: ArrayLike, outcome_b: ArrayLike, exact: bool | None = None, correction: bool = True
) -> ComparisonResult:
    """McNemar's test for paired binary outcomes ``(n,)`` of two models on the same subjects.

    Only discordant pairs count: b = A yes / B no, c = A no / B yes. ``exact=None`` uses the exact two-sided binomial
    test when b + c < ``MCNEMAR_EXACT_BELOW`` and the chi-square test otherwise; the continuity correction
    (|b - c| - 1)^2 / (b + c) is applied when b != c (as R's ``mcnemar.test``). ``estimate_a``/``estimate_b`` are the
    proportions of "yes" for each model.
    """
    a = _as_binary(outcome_a, "outcome_a")
    b = _as_binary(outcome_b, "outcome_b")
    n = _check_same_length(outcome_a=a, outcome_b=b)
    n_ab = int(np.sum(a & ~b))
    n_ba = int(np.sum(~a & b))
    discordant = n_ab + n_ba
    use_exact = discordant < MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    if discordant == 0:
        statistic, p_value, name = 0.0, 1.0, "mcnemar-exact" if use_exact else "mcnemar-chi2"
    elif use_exact:
        statistic = float(min(n_ab, n_ba))
        p_value = float(min(1.0, 2.0 * stats.binom.cdf(min(n_ab, n_ba), discordant, 0.5)))
        name = "mcnemar-exact"
    else:
        corr = 1.0 if (correction and n_ab != n_ba) else 0.0
        statistic = (abs(n_ab - n_ba) - corr) ** 2 / discordant
        p_value = float(stats.chi2.sf(statistic, 1))
        name = "mcnemar-chi2"
    p_a, p_b = float(a.mean()), float(b.mean())
    details = {"a_only": float(n_ab), "b_only": float(n_ba), "n": float(n)}
    return ComparisonResult(name, p_a, p_b, p_a - p_b, statistic, p_value, None, 0.95, details)


def compare_sensitivity_specificity(
    y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, exact: bool | None = None
) -> dict[str, ComparisonResult]:
    """McNemar tests of sensitivity (on the positives) and specificity (on the negatives) of two models' binary
    predictions ``(n,)`` on the same subjects. Returns ``{"sensitivity": ..., "specificity": ...}``."""
    y = _as_binary(y_true, "y_true")
    a = _as_binary(pred_a, "pred_a")
    b = _as_binary(pred_b, "pred_b")
    _check_same_length(y_true=y, pred_a=a, pred_b=b)
    _require_both_classes(y, 1, "comparing sensitivity and specificity")
    return {
        "sensitivity": mcnemar_test(a[y], b[y], exact=exact),
        "specificity": mcnemar_test(~a[~y], ~b[~y], exact=exact),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Multiclass


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts ``(C, C)``, int64: entry [i, j] = subjects of true class i predicted as class j."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise InputError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    t = _as_class_labels(y_true, n_classes, "y_true")
    p = _as_class_labels(y_pred, n_classes, "y_pred")
    _check_same_length(y_true=t, y_pred=p)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def normalise_rows(matrix: ArrayLike) -> np.ndarray:
    """Divide each row of a confusion matrix ``(C, C)`` by its total; rows with no subjects become NaN."""
    m = _as_float_array(matrix, "matrix", ndim=(2,))
    totals = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, m / np.where(totals > 0, totals, 1.0), np.nan)


def _check_multiclass(y_true: ArrayLike, y_score: ArrayLike, class_names: Sequence[str] | None):
    scores = _as_float_array(y_score, "y_score", ndim=(2,))
    n_classes = scores.shape[1]
    if n_classes < 2:
        raise InputError(f"y_score must have at least 2 columns (classes), got {n_classes}")
    labels = _as_class_labels(y_true, n_classes, "y_true")
    _check_same_length(y_true=labels, y_score=scores)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(n_classes))
    if len(names) != n_classes:
        raise InputError(f"class_names has {len(names)} names for {n_classes} score columns")
    return labels, scores, names


def one_vs_rest_auroc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    class_names: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> tuple[dict[str, Estimate], Estimate]:
    """One-vs-rest AUROC per class (DeLong interval) and their macro average (bootstrap interval).

    ``y_true`` ``(n,)`` integer classes in [0, C); ``y_score`` ``(n, C)``, column c scoring class c. The macro
    average's interval is the percentile interval of resamples stratified by true class (each resample keeps the class
    counts). Every class needs at least 2 members and 2 non-members.
    """
    confidence = _check_confidence(confidence)
    labels, scores, names = _check_multiclass(y_true, y_score, class_names)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    per_class: dict[str, Estimate] = {}
    for c, name in enumerate(names):
        member = labels == c
        if member.sum() < 2 or (~member).sum() < 2:
            raise InputError(
                f"class {name!r} has {int(member.sum())} subject(s); one-vs-rest AUC needs >= 2 in and out"
            )
        per_class[name] = auroc_ci(member, scores[:, c], confidence, "delong")
    macro = float(np.mean([est.value for est in per_class.values()]))
    strata = [np.flatnonzero(labels == c) for c in range(len(names))]
    ordered_labels = labels[np.concatenate(strata)]
    boot = []
    for idx in _stratified_resamples(strata, n_bootstrap, _resolve_rng(rng)):
        per = [_auc_rows(scores[idx, c], ordered_labels == c) for c in range(len(names))]
        boot.append(np.mean(per, axis=0))
    ci = _percentile_interval(np.concatenate(boot), confidence)
    return per_class, Estimate(macro, ci, confidence, "bootstrap-percentile-stratified")


def multiclass_report(
    y_true: ArrayLike,
    y_score: ArrayLike,
    class_names: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> MulticlassReport:
    """Confusion matrix (arg-max prediction), accuracy with Wilson interval, and one-vs-rest AUCs for ``y_score``
    ``(n, C)`` against integer classes ``y_true`` ``(n,)`` (e.g. the RCM/DCM/HCM subtype task)."""
    labels, scores, names = _check_multiclass(y_true, y_score, class_names)
    predicted = np.argmax(scores, axis=1)
    counts = confusion_matrix(labels, predicted, len(names))
    per_class, macro = one_vs_rest_auroc(labels, scores, names, confidence, n_bootstrap, rng)
    return MulticlassReport(
        class_names=names,
        confusion=counts,
        confusion_normalised=normalise_rows(counts),
        accuracy=proportion(int(np.trace(counts)), int(counts.sum()), confidence),
        auc=per_class,
        macro_auc=macro,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Thresholds chosen on a validation split


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


# ----------------------------------------------------------------------------------------------------------------------
# Calibration


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
