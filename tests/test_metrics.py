"""cardiacnets.metrics against independent references: scikit-learn, statsmodels, scipy, slow textbook
implementations written here, and simulations of null distributions and coverage."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from cardiacnets import metrics as M
from cardiacnets.errors import CardiacNetsError, InputError

# ----------------------------------------------------------------------------------------------------------------------
# Helpers: simulated data and slow reference implementations


def binormal(rng: np.random.Generator, n_pos: int, n_neg: int, separation: float = 1.0):
    """Labels and scores with N(separation, 1) positives and N(0, 1) negatives: AUC = Phi(separation / sqrt(2))."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, y * separation + rng.normal(size=n_pos + n_neg)


def delong_slow(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, DeLong & Clarke-Pearson (1988) structural components from the kernel psi, O(m n), with explicit sums."""
    scores = np.atleast_2d(scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    k, m, n = scores.shape[0], pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (k, m, n)
    auc = psi.mean(axis=(1, 2))
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10[r, s] = sum((v10[r, i] - auc[r]) * (v10[s, i] - auc[s]) for i in range(m)) / (m - 1)
            s01[r, s] = sum((v01[r, j] - auc[r]) * (v01[s, j] - auc[s]) for j in range(n)) / (n - 1)
    return auc, s10 / m + s01 / n


def batched_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


# ----------------------------------------------------------------------------------------------------------------------
# Proportions and binary reports


@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_wilson_matches_statsmodels(confidence: float) -> None:
    for total in (1, 7, 40, 313):
        for count in sorted({0, 1, total // 3, total // 2, total - 1, total}):
            expected = proportion_confint(count, total, alpha=1 - confidence, method="wilson")
            np.testing.assert_allclose(M.wilson_interval(count, total, confidence), expected, rtol=0, atol=1e-12)


def test_binary_report_matches_sklearn_and_wilson() -> None:
    rng = np.random.default_rng(0)
    y, score = binormal(rng, 120, 380, 1.2)
    report = M.binary_report(y, score, threshold=0.6)
    tn, fp, fn, tp = sk_confusion_matrix(y, score >= 0.6).ravel()
    assert report.counts.as_dict() == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    expected = {
        "accuracy": (tp + tn, len(y)),
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
    }
    for name, (count, total) in expected.items():
        est = getattr(report, name)
        assert (est.count, est.total) == (count, total)
        assert est.value == pytest.approx(count / total)
        np.testing.assert_allclose(est.ci, proportion_confint(count, total, method="wilson"), atol=1e-12)
    # A subject scored exactly at the threshold is called positive.
    assert M.binary_report([1, 0], [0.5, 0.2], 0.5).counts.tp == 1


def test_undefined_proportions_are_nan_and_json_none() -> None:
    report = M.binary_report([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], threshold=0.9)  # nobody called positive
    assert math.isnan(report.ppv.value) and report.ppv.total == 0
    assert report.as_dict()["ppv"] == {"value": None, "ci": None}
    assert report.npv.value == pytest.approx(0.5)


def test_two_proportion_ztest_matches_statsmodels() -> None:
    z, p = proportions_ztest([45, 30], [100, 90])
    result = M.two_proportion_ztest(45, 100, 30, 90)
    assert result.statistic == pytest.approx(z, abs=1e-12)
    assert result.p_value == pytest.approx(p, abs=1e-12)
    assert result.difference == pytest.approx(0.45 - 30 / 90)


# ----------------------------------------------------------------------------------------------------------------------
# AUROC and DeLong


def test_auroc_matches_sklearn_with_and_without_ties() -> None:
    rng = np.random.default_rng(1)
    y, score = binormal(rng, 70, 130, 0.8)
    assert M.auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    tied = np.round(score)  # heavy ties
    assert M.auroc(y, tied) == pytest.approx(roc_auc_score(y, tied), abs=1e-12)
    assert M.auroc(y.astype(bool), -score) == pytest.approx(1 - roc_auc_score(y, score), abs=1e-12)


def test_delong_covariance_matches_slow_structural_components() -> None:
    rng = np.random.default_rng(2)
    y, base = binormal(rng, 40, 55, 1.0)
    score_a = np.round(base + 0.3 * rng.normal(size=y.size), 1)  # ties within and across classes
    score_b = np.round(0.5 * base + rng.normal(size=y.size), 1)
    score_c = rng.integers(0, 5, size=y.size).astype(float)
    scores = np.stack([score_a, score_b, score_c])
    auc, cov = M.delong_covariance(y, scores)
    auc_ref, cov_ref = delong_slow(y, scores)
    np.testing.assert_allclose(auc, auc_ref, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, atol=1e-12)

    result = M.delong_test(y, score_a, score_b)
    var = cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1]
    z_ref = (auc_ref[0] - auc_ref[1]) / math.sqrt(var)
    assert result.statistic == pytest.approx(z_ref, rel=1e-10)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z_ref)), rel=1e-9)
    half = 1.959963984540054 * math.sqrt(var)
    np.testing.assert_allclose(result.ci, (z_ref * math.sqrt(var) - half, z_ref * math.sqrt(var) + half), atol=1e-12)

    ci = M.auroc_ci(y, score_a).ci
    se = math.sqrt(cov_ref[0, 0])
    np.testing.assert_allclose(ci, (auc_ref[0] - 1.959963984540054 * se, auc_ref[0] + 1.959963984540054 * se))


def test_delong_unpaired_uses_sum_of_variances() -> None:
    rng = np.random.default_rng(3)
    y_a, s_a = binormal(rng, 30, 50, 1.0)
    y_b, s_b = binormal(rng, 45, 35, 0.4)
    result = M.delong_test_unpaired(y_a, s_a, y_b, s_b)
    auc_a, cov_a = delong_slow(y_a, s_a)
    auc_b, cov_b = delong_slow(y_b, s_b)
    assert result.statistic == pytest.approx((auc_a[0] - auc_b[0]) / math.sqrt(cov_a[0, 0] + cov_b[0, 0]), rel=1e-10)


def test_delong_interval_coverage_on_binormal_model() -> None:
    rng = np.random.default_rng(4)
    true_auc = stats.norm.cdf(1.0 / math.sqrt(2.0))
    covered = []
    for _ in range(600):
        y, score = binormal(rng, 80, 120, 1.0)
        low, high = M.auroc_ci(y, score).ci
        covered.append(low <= true_auc <= high)
    assert 0.925 <= np.mean(covered) <= 0.975


def test_delong_test_is_calibrated_under_null_and_powerful_otherwise() -> None:
    rng = np.random.default_rng(5)
    p_null, p_alt = [], []
    for _ in range(600):
        y, _ = binormal(rng, 60, 90, 0.0)
        shared = rng.normal(size=y.size)
        noise_a = 0.7 * shared + 0.71 * rng.normal(size=y.size)  # the two models' errors correlate (rho ~ 0.5)
        noise_b = 0.7 * shared + 0.71 * rng.normal(size=y.size)
        p_null.append(M.delong_test(y, y + noise_a, y + noise_b).p_value)
        p_alt.append(M.delong_test(y, 1.6 * y + noise_a, y + noise_b).p_value)
    p_null = np.array(p_null)
    assert 0.03 <= np.mean(p_null < 0.05) <= 0.07
    assert stats.kstest(p_null, "uniform").pvalue > 0.01
    assert np.mean(np.array(p_alt) < 0.05) > 0.8


def test_identical_models_give_p_one() -> None:
    rng = np.random.default_rng(6)
    y, score = binormal(rng, 20, 20)
    result = M.delong_test(y, score, score)
    assert result.difference == 0.0 and result.p_value == 1.0


def test_bootstrap_auc_replicates_equal_sklearn_on_the_same_stratified_resamples() -> None:
    rng = np.random.default_rng(7)
    y, score = binormal(rng, 40, 60, 0.9)
    est = M.auroc_ci(y, score, method="bootstrap", n_bootstrap=200, rng=np.random.default_rng(11))
    # The documented resampling: positives then negatives, each resampled within its class, one chunk here.
    draw = np.random.default_rng(11)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    idx = np.concatenate([pos[draw.integers(0, 40, (200, 40))], neg[draw.integers(0, 60, (200, 60))]], axis=1)
    replicates = [roc_auc_score(y[row], score[row]) for row in idx]
    np.testing.assert_allclose(est.ci, np.quantile(replicates, [0.025, 0.975]), atol=1e-12)
    assert est.value == pytest.approx(roc_auc_score(y, score))


def test_bootstrap_and_delong_auc_intervals_agree_for_large_n() -> None:
    rng = np.random.default_rng(8)
    y, score = binormal(rng, 500, 700, 1.0)
    delong = M.auroc_ci(y, score)
    boot = M.auroc_ci(y, score, method="bootstrap", n_bootstrap=1000, rng=rng)
    np.testing.assert_allclose(boot.ci, delong.ci, atol=0.01)


# ----------------------------------------------------------------------------------------------------------------------
# Pearson r and its intervals


def correlated_pair(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=n)


def test_pearson_and_fisher_interval_match_scipy() -> None:
    rng = np.random.default_rng(9)
    x, y = correlated_pair(rng, 80, 0.4)
    ref = stats.pearsonr(x, y)
    assert M.pearson_r(x, y) == pytest.approx(ref.statistic, abs=1e-12)
    fisher = M.pearson_ci(x, y, method="fisher")
    np.testing.assert_allclose(fisher.ci, tuple(ref.confidence_interval(0.95)), atol=1e-12)


@pytest.mark.parametrize(("method", "scipy_method"), [("bca", "BCa"), ("percentile", "percentile")])
def test_bootstrap_pearson_interval_matches_scipy_bootstrap(method: str, scipy_method: str) -> None:
    rng = np.random.default_rng(10)
    x, y = correlated_pair(rng, 40, 0.85)  # small n, high r: a skewed bootstrap distribution where BCa matters
    ours = M.pearson_ci(x, y, method=method, n_bootstrap=20000, rng=1)
    ref = stats.bootstrap(
        (x, y),
        lambda a, b, axis=-1: batched_corr(a, b),
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method=scipy_method,
        rng=np.random.default_rng(2),
    ).confidence_interval
    np.testing.assert_allclose(ours.ci, (ref.low, ref.high), atol=0.006)


def test_bca_matches_textbook_formulas_on_the_same_resamples() -> None:
    """Efron & Tibshirani (1993) eqs. 14.9-14.15 written out: z0 from the bootstrap distribution, acceleration from a
    leave-one-out loop, on heavy-tailed data where the acceleration is far from 0."""
    rng = np.random.default_rng(27)
    x = rng.lognormal(size=30)
    y = x + rng.lognormal(size=30)
    n, n_boot = x.size, 4000
    ours = M.pearson_ci(x, y, method="bca", n_bootstrap=n_boot, rng=np.random.default_rng(5))
    theta = stats.pearsonr(x, y).statistic
    idx = np.random.default_rng(5).integers(0, n, size=(n_boot, n))  # the documented resampling (one chunk)
    boot = batched_corr(x[idx], y[idx])
    z0 = stats.norm.ppf(np.mean(boot < theta))
    jack = np.array([stats.pearsonr(np.delete(x, i), np.delete(y, i)).statistic for i in range(n)])
    d = jack.mean() - jack
    accel = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    assert abs(accel) > 0.02
    z = stats.norm.ppf([0.025, 0.975])
    levels = stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    np.testing.assert_allclose(ours.ci, np.quantile(boot, levels), atol=1e-10)


def test_bootstrap_pearson_coverage_and_shrinkage() -> None:
    rng = np.random.default_rng(12)
    covered = []
    for _ in range(250):
        x, y = correlated_pair(rng, 100, 0.5)
        low, high = M.pearson_ci(x, y, method="percentile", n_bootstrap=200, rng=rng).ci
        covered.append(low <= 0.5 <= high)
    assert 0.90 <= np.mean(covered) <= 0.985

    # Large n: width near the asymptotic 2 z (1 - rho^2) / sqrt(n); containment is the coverage check above.
    x, y = correlated_pair(rng, 5000, 0.6)
    est = M.pearson_ci(x, y, n_bootstrap=500, rng=rng)
    assert est.ci[0] < est.value < est.ci[1]
    assert est.ci[1] - est.ci[0] == pytest.approx(2 * 1.96 * (1 - 0.36) / math.sqrt(5000), rel=0.15)
    widths = []
    for n in (200, 2000):
        low, high = M.pearson_ci(*correlated_pair(rng, n, 0.6), n_bootstrap=500, rng=rng).ci
        widths.append(high - low)
    assert 2.3 < widths[0] / widths[1] < 4.5  # about sqrt(10)


def test_mean_pearson_resamples_subjects_jointly_for_all_targets() -> None:
    rng = np.random.default_rng(13)
    n, k = 50, 6
    truth = rng.normal(size=(n, k))
    pred = truth * np.linspace(0.2, 0.9, k) + rng.normal(size=(n, k))
    result = M.mean_pearson_r(truth, pred, method="percentile", n_bootstrap=200, rng=np.random.default_rng(3))
    per_target = [stats.pearsonr(truth[:, j], pred[:, j]).statistic for j in range(k)]
    np.testing.assert_allclose(result.per_target_r, per_target, atol=1e-12)
    assert result.mean.value == pytest.approx(np.mean(per_target), abs=1e-12)
    # The documented resampling, reproduced with plain indexing: the same subject rows for every target.
    idx = np.random.default_rng(3).integers(0, n, size=(200, n))
    boot = np.array([[stats.pearsonr(truth[row, j], pred[row, j]).statistic for j in range(k)] for row in idx])
    np.testing.assert_allclose(result.mean.ci, np.quantile(boot.mean(axis=1), [0.025, 0.975]), atol=1e-10)
    np.testing.assert_allclose(result.per_target_ci, np.quantile(boot, [0.025, 0.975], axis=0).T, atol=1e-10)
    payload = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert set(payload) == {"value", "ci", "per_target"} and len(payload["per_target"]) == k


def test_mean_pearson_interval_covers_truth_for_82_targets() -> None:
    rng = np.random.default_rng(14)
    n, k = 1500, 82
    rho = np.linspace(0.1, 0.8, k)
    truth = rng.normal(size=(n, k))
    shared = rng.normal(size=(n, 1))  # errors shared across phenotypes, as for one subject's imperfect ECG
    noise = 0.6 * shared + 0.8 * rng.normal(size=(n, k))
    pred = rho * truth + np.sqrt(1 - rho**2) * noise
    result = M.mean_pearson_r(truth, pred, n_bootstrap=400, rng=rng)
    assert result.mean.ci[0] <= rho.mean() <= result.mean.ci[1]
    assert result.mean.ci[1] - result.mean.ci[0] < 0.03


# ----------------------------------------------------------------------------------------------------------------------
# Comparing correlations


def simulate_three(rng: np.random.Generator, reps: int, n: int, r_ya: float, r_yb: float, r_ab: float) -> np.ndarray:
    cov = np.array([[1, r_ya, r_yb], [r_ya, 1, r_ab], [r_yb, r_ab, 1]])
    return rng.multivariate_normal(np.zeros(3), cov, size=(reps, n))  # (reps, n, 3)


@pytest.mark.parametrize("method", ["steiger1980", "meng1992"])
def test_dependent_correlation_z_is_standard_normal_under_null(method: str) -> None:
    rng = np.random.default_rng(15)
    n = 120
    data = simulate_three(rng, 3000, n, 0.5, 0.5, 0.7)
    y, a, b = data[..., 0], data[..., 1], data[..., 2]
    r_ya, r_yb, r_ab = batched_corr(y, a), batched_corr(y, b), batched_corr(a, b)
    z = np.array([M.dependent_correlation_z(*r, n, method) for r in zip(r_ya, r_yb, r_ab, strict=True)])
    assert 0.94 < z.std() < 1.06  # ignoring the shared variable would give about 0.65
    p = 2 * stats.norm.sf(np.abs(z))
    assert 0.035 <= np.mean(p < 0.05) <= 0.065
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_steiger_test_detects_a_better_model_and_is_antisymmetric() -> None:
    rng = np.random.default_rng(16)
    y, a, b = simulate_three(rng, 1, 600, 0.6, 0.4, 0.5)[0].T  # expected z about 5
    result = M.steiger_test(y, a, b)
    assert result.p_value < 0.01 and result.statistic > 0
    swapped = M.steiger_test(y, b, a)
    assert swapped.statistic == pytest.approx(-result.statistic)
    assert result.estimate_a == pytest.approx(stats.pearsonr(y, a).statistic)
    assert M.steiger_test(y, a, a).p_value == 1.0
    meng = M.steiger_test(y, a, b, method="meng1992")
    assert meng.statistic == pytest.approx(result.statistic, rel=0.05)


def test_paired_bootstrap_correlation_difference() -> None:
    rng = np.random.default_rng(17)
    y, a, b = simulate_three(rng, 1, 600, 0.6, 0.4, 0.5)[0].T
    result = M.paired_bootstrap_correlation_difference(y, a, b, rng=rng)
    assert result.difference == pytest.approx(stats.pearsonr(y, a).statistic - stats.pearsonr(y, b).statistic)
    assert result.ci[0] > 0 and result.p_value < 0.01
    same = M.paired_bootstrap_correlation_difference(y, a, a, n_bootstrap=200, rng=rng)
    assert same.difference == 0.0 and same.p_value == 1.0
    # Null calibration: same true correlation, correlated models; pairing keeps the test near its nominal size.
    rejections = []
    for sample in simulate_three(rng, 250, 150, 0.5, 0.5, 0.7):
        res = M.paired_bootstrap_correlation_difference(*sample.T, n_bootstrap=300, rng=rng)
        rejections.append(res.p_value < 0.05)
    assert 0.02 <= np.mean(rejections) <= 0.10


def test_independent_correlations_test_null_calibration() -> None:
    rng = np.random.default_rng(18)
    first = simulate_three(rng, 2000, 60, 0.5, 0.0, 0.0)
    second = simulate_three(rng, 2000, 90, 0.5, 0.0, 0.0)
    r1 = batched_corr(first[..., 0], first[..., 1])
    r2 = batched_corr(second[..., 0], second[..., 1])
    p = np.array([M.independent_correlations_test(a, 60, b, 90).p_value for a, b in zip(r1, r2, strict=True)])
    assert 0.035 <= np.mean(p < 0.05) <= 0.065


# ----------------------------------------------------------------------------------------------------------------------
# McNemar


def test_mcnemar_matches_statsmodels_exact_and_chi2() -> None:
    rng = np.random.default_rng(19)
    for n_ab, n_ba, exact in [(3, 9, True), (0, 5, True), (7, 7, True), (30, 14, False), (12, 40, False)]:
        concordant_yes, concordant_no = 20, 25
        a = np.r_[np.ones(concordant_yes), np.ones(n_ab), np.zeros(n_ba), np.zeros(concordant_no)].astype(int)
        b = np.r_[np.ones(concordant_yes), np.zeros(n_ab), np.ones(n_ba), np.zeros(concordant_no)].astype(int)
        order = rng.permutation(a.size)
        ours = M.mcnemar_test(a[order], b[order])
        ref = sm_mcnemar([[concordant_yes, n_ab], [n_ba, concordant_no]], exact=exact, correction=True)
        assert ours.method == ("mcnemar-exact" if exact else "mcnemar-chi2")
        assert ours.statistic == pytest.approx(ref.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
        assert ours.details["a_only"] == n_ab and ours.details["b_only"] == n_ba


def test_compare_sensitivity_specificity_tests_positives_and_negatives_separately() -> None:
    rng = np.random.default_rng(20)
    y = rng.integers(0, 2, 600)
    pred_a = np.where(y == 1, rng.random(600) < 0.9, rng.random(600) < 0.2).astype(int)  # sensitive
    pred_b = np.where(y == 1, rng.random(600) < 0.6, rng.random(600) < 0.21).astype(int)
    result = M.compare_sensitivity_specificity(y, pred_a, pred_b)
    sens = result["sensitivity"]
    assert sens.estimate_a == pytest.approx(pred_a[y == 1].mean())
    assert sens.p_value < 1e-6
    pos = y == 1
    table = [
        [np.sum(pred_a[pos] & pred_b[pos]), np.sum(pred_a[pos] & ~pred_b[pos] & 1)],
        [np.sum(~pred_a[pos] & 1 & pred_b[pos]), np.sum((1 - pred_a[pos]) & (1 - pred_b[pos]))],
    ]
    assert sens.p_value == pytest.approx(sm_mcnemar(table, exact=False, correction=True).pvalue, rel=1e-9)
    spec = result["specificity"]
    assert spec.estimate_a == pytest.approx(1 - pred_a[y == 0].mean())
    assert spec.p_value > 0.05


# ----------------------------------------------------------------------------------------------------------------------
# Multiclass


def test_multiclass_report_matches_sklearn() -> None:
    rng = np.random.default_rng(21)
    n, names = 450, ("RCM", "DCM", "HCM")
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = M.multiclass_report(labels, probs, names, n_bootstrap=300, rng=1)
    predicted = probs.argmax(axis=1)
    np.testing.assert_array_equal(report.confusion, sk_confusion_matrix(labels, predicted, labels=[0, 1, 2]))
    np.testing.assert_allclose(
        report.confusion_normalised, sk_confusion_matrix(labels, predicted, labels=[0, 1, 2], normalize="true")
    )
    for c, name in enumerate(names):
        assert report.auc[name].value == pytest.approx(roc_auc_score(labels == c, probs[:, c]), abs=1e-12)
    macro = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert report.macro_auc.value == pytest.approx(macro, abs=1e-12)
    assert report.macro_auc.ci[0] < macro < report.macro_auc.ci[1]
    accuracy = np.mean(predicted == labels)
    assert report.accuracy.value == pytest.approx(accuracy)
    np.testing.assert_allclose(report.accuracy.ci, proportion_confint(int(accuracy * n), n, method="wilson"))
    json.dumps(report.as_dict(), allow_nan=False)


def test_normalise_rows_marks_empty_class() -> None:
    matrix = M.confusion_matrix([0, 0, 1], [0, 1, 1], n_classes=3)
    normalised = M.normalise_rows(matrix)
    np.testing.assert_allclose(normalised[:2], [[0.5, 0.5, 0], [0, 1, 0]])
    assert np.all(np.isnan(normalised[2]))


# ----------------------------------------------------------------------------------------------------------------------
# Thresholds


def brute_force_points(y: np.ndarray, score: np.ndarray) -> list[tuple[float, float, float]]:
    candidates = list(np.unique(score)) + [score.max() + 1.0]
    points = []
    for t in candidates:
        pred = score >= t
        points.append((float(t), float(np.mean(pred[y == 1])), float(np.mean(~pred[y == 0]))))
    return points


def test_thresholds_match_brute_force() -> None:
    rng = np.random.default_rng(22)
    y, score = binormal(rng, 90, 210, 1.1)
    score = np.round(score, 1)  # ties
    points = brute_force_points(y, score)

    youden = M.youden_threshold(y, score)
    assert isinstance(youden, float)
    j = {t: se + sp - 1 for t, se, sp in points}
    best = max(j.values())
    assert j[youden] == pytest.approx(best)
    assert youden == max(t for t, v in j.items() if abs(v - best) < 1e-12)

    high_spec = M.threshold_for_specificity(y, score, 0.9)
    feasible = [(t, se, sp) for t, se, sp in points if sp >= 0.9]
    best_sens = max(se for _, se, _ in feasible)
    report = M.binary_report(y, score, high_spec)
    assert report.specificity.value >= 0.9
    assert report.sensitivity.value == pytest.approx(best_sens)
    assert report.specificity.value == pytest.approx(max(sp for _, se, sp in feasible if se == best_sens))

    high_sens = M.threshold_for_sensitivity(y, score, 0.95)
    feasible = [(t, se, sp) for t, se, sp in points if se >= 0.95]
    report = M.binary_report(y, score, high_sens)
    assert report.sensitivity.value >= 0.95
    assert report.specificity.value == pytest.approx(max(sp for _, _, sp in feasible))

    stored = M.select_thresholds(y, score, 0.9)
    assert stored == {"youden": youden, "high_specificity": high_spec, "min_specificity": 0.9}
    json.dumps(stored, allow_nan=False)


def test_specificity_one_is_reachable() -> None:
    y, score = np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.1, 0.2])
    t = M.threshold_for_specificity(y, score, 1.0)
    assert M.binary_report(y, score, t).specificity.value == 1.0


# ----------------------------------------------------------------------------------------------------------------------
# Calibration


def test_reliability_curve_matches_sklearn_uniform_bins() -> None:
    rng = np.random.default_rng(23)
    prob = rng.beta(0.7, 2.0, size=3000)
    y = (rng.random(3000) < prob**1.3).astype(int)
    curve = M.reliability_curve(y, prob, n_bins=10)
    ref_true, ref_pred = calibration_curve(y, prob, n_bins=10, strategy="uniform")
    filled = curve.counts > 0
    np.testing.assert_allclose(curve.observed_frequency[filled], ref_true, atol=1e-12)
    np.testing.assert_allclose(curve.mean_predicted[filled], ref_pred, atol=1e-12)
    assert curve.counts.sum() == 3000


def test_quantile_bins_hold_equal_counts() -> None:
    rng = np.random.default_rng(24)
    prob = rng.random(1000) ** 3
    curve = M.reliability_curve(rng.integers(0, 2, 1000), prob, n_bins=8, strategy="quantile")
    assert curve.counts.size == 8 and curve.counts.max() - curve.counts.min() <= 2


def test_ece_small_for_calibrated_large_for_miscalibrated() -> None:
    rng = np.random.default_rng(25)
    prob = rng.random(200_000)
    calibrated = (rng.random(prob.size) < prob).astype(int)
    overconfident = (rng.random(prob.size) < 0.5 + 0.5 * (prob - 0.5)).astype(int)  # truth is half as extreme
    assert M.expected_calibration_error(calibrated, prob) < 0.01
    ece = M.expected_calibration_error(overconfident, prob)
    assert ece == pytest.approx(0.125, abs=0.01)  # E|p - (0.25 + 0.5 p)| over p ~ U(0, 1)
    # Against an explicit loop over bins.
    bins = np.minimum((prob * 10).astype(int), 9)
    manual = sum(np.mean(bins == b) * abs(overconfident[bins == b].mean() - prob[bins == b].mean()) for b in range(10))
    assert ece == pytest.approx(manual, abs=1e-12)
    assert M.brier_score(calibrated, prob) == pytest.approx(brier_score_loss(calibrated, prob), abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# Report convenience and input errors


def test_summarise_binary_is_strict_json_and_consistent() -> None:
    rng = np.random.default_rng(26)
    y, score = binormal(rng, 60, 140, 1.0)
    summary = M.summarise_binary(y, score, threshold=0.5)
    text = json.dumps(summary, allow_nan=False)
    payload = json.loads(text)
    assert payload["auc"]["value"] == pytest.approx(roc_auc_score(y, score))
    assert payload["n_positive"] == 60 and payload["n_negative"] == 140
    for name in ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv"):
        low, high = payload[name]["ci"]
        assert low <= payload[name]["value"] <= high


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: M.auroc([1, 1, 1], [0.1, 0.2, 0.3]), "negative"),
        (lambda: M.auroc([1, 0, 1], [0.1, np.nan, 0.3]), "NaN"),
        (lambda: M.auroc([1, 0, 1], [0.1, 0.3]), "length"),
        (lambda: M.auroc([1, 0, 2], [0.1, 0.2, 0.3]), "0/1"),
        (lambda: M.auroc(["a", "b"], [0.1, 0.2]), "numeric"),
        (lambda: M.delong_test([1, 0, 0, 1], [1, 2, 3, 4], [1, 2, 3]), "length"),
        (lambda: M.delong_covariance([1, 0, 0], [0.3, 0.2, 0.1]), "at least 2"),
        (lambda: M.wilson_interval(0, 0), "total = 0"),
        (lambda: M.wilson_interval(5, 4), "exceeds"),
        (lambda: M.binary_report([1, 0], [0.2, 0.1], 0.5, confidence=1.5), "confidence"),
        (lambda: M.pearson_r([1, 1, 1, 1], [1, 2, 3, 4]), "constant"),
        (lambda: M.mean_pearson_r(np.ones((10, 2)), np.ones((10, 3))), "shape"),
        (lambda: M.pearson_ci([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], method="jackknife"), "method"),
        (lambda: M.pearson_ci([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], n_bootstrap=10), "n_bootstrap"),
        (lambda: M.pearson_ci([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], rng="seed"), "rng"),
        (lambda: M.reliability_curve([1, 0], [0.5, 1.5]), "probabilities"),
        (lambda: M.one_vs_rest_auroc([0, 1, 3], np.ones((3, 3))), "class indices"),
        (lambda: M.one_vs_rest_auroc([0, 1, 1, 1, 1], np.eye(5)[:, :2]), "needs >= 2"),
        (lambda: M.threshold_for_specificity([1, 0], [0.2, 0.1], 1.2), "min_specificity"),
        (lambda: M.dependent_correlation_z(0.5, 1.0, 0.2, 50), "undefined"),
        (lambda: M.summarise_binary([0, 0, 0], [0.2, 0.1, 0.3], 0.5), "positive"),
    ],
)
def test_bad_input_raises_typed_error(call, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        call()
    assert isinstance(info.value, CardiacNetsError)


def test_comparison_results_are_strict_json() -> None:
    rng = np.random.default_rng(28)
    y, score = binormal(rng, 30, 30)
    x, z = correlated_pair(rng, 60, 0.5)
    results = [
        M.delong_test(y, score, score + rng.normal(size=60)),
        M.paired_bootstrap_correlation_difference(x, z, z + rng.normal(size=60), n_bootstrap=200, rng=rng),
        M.mcnemar_test(y, score > 0.5),
    ]
    for result in results:
        payload = json.loads(json.dumps(result.as_dict(), allow_nan=False))
        assert 0.0 <= payload["p_value"] <= 1.0
    assert json.loads(json.dumps(results[1].as_dict(), allow_nan=False))["statistic"] is None


def test_metrics_import_needs_neither_torch_nor_sklearn() -> None:
    code = "import sys, cardiacnets.metrics; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
