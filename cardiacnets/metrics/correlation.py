"""Pearson correlation for the regression targets (the 82 phenotypes): r, its bootstrap (BCa or percentile) and
Fisher-z intervals, the mean r over several targets with one joint subject bootstrap, the paired bootstrap difference
of two models' (mean) r, Steiger (1980) / Meng, Rosenthal & Rubin (1992) tests for dependent correlations and the
Fisher-z test for correlations from independent samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import (
    _MAX_BOOTSTRAP_CELLS,
    _MIN_BOOTSTRAP,
    ComparisonResult,
    Estimate,
    _as_float_array,
    _check_confidence,
    _check_count,
    _check_n_bootstrap,
    _check_same_length,
    _json_ci,
    _json_float,
    _percentile_interval,
    _resolve_rng,
    _z_critical,
)

logger = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------------------------------------------------
# Input checks and bootstrap machinery


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


# ----------------------------------------------------------------------------------------------------------------------
# Correlations and their intervals


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


# ----------------------------------------------------------------------------------------------------------------------
# Comparing correlations


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
