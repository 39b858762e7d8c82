"""Tests comparing two models' binary outcomes: McNemar's test for paired outcomes on the same subjects (exact
binomial or chi-square), the sensitivity and specificity comparison built on it, and the pooled two-proportion z-test
for proportions from independent samples.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import (
    ComparisonResult,
    _as_binary,
    _check_confidence,
    _check_count,
    _check_same_length,
    _require_both_classes,
    _z_critical,
)

# McNemar: the exact binomial test is used when there are fewer discordant pairs than this (a common rule of thumb).
MCNEMAR_EXACT_BELOW = 25


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
