"""Trust building blocks: calibration, conformal intervals, phenotype identities, out-of-distribution scoring."""

from __future__ import annotations

import numpy as np
import pytest

from cardiacnets.errors import InputError
from cardiacnets.metrics import expected_calibration_error
from cardiacnets.targets import phenotype_index
from cardiacnets.trust import decide
from cardiacnets.trust.calibration import (
    apply_calibrator,
    calibration_slope,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
)
from cardiacnets.trust.conformal import conformal_quantiles, interval_coverage, prediction_intervals
from cardiacnets.trust.ood import (
    SIGNAL_FEATURES,
    decode_array,
    encode_array,
    fit_ppca,
    fit_robust_mahalanobis,
    median_beat,
    ppca_distance,
    robust_mahalanobis_distance,
    signal_features,
    signal_views,
    spectrum_profile,
)
from cardiacnets.trust.phenotypes import (
    CHAMBERS,
    choose_primary_pairs,
    derivation_table,
    identity_violations,
    reconcile_phenotypes,
)
from tests.synthetic_ecg import synthetic_ecg


def _overconfident(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from true probabilities, and a model that is sharper than the truth (logit x 3)."""
    true_logit = rng.normal(0.0, 1.2, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return y, 1 / (1 + np.exp(-3.0 * true_logit - 0.8))


def test_platt_scaling_repairs_an_overconfident_model_on_held_out_data() -> None:
    rng = np.random.default_rng(0)
    y_fit, p_fit = _overconfident(4000, rng)
    y_test, p_test = _overconfident(4000, rng)
    calibrator = fit_platt(y_fit, p_fit)
    assert calibrator["a"] == pytest.approx(1 / 3, abs=0.05)  # undoes the x3 sharpening
    before = expected_calibration_error(y_test, p_test)
    after = expected_calibration_error(y_test, apply_calibrator(calibrator, p_test))
    assert before > 0.1 and after < 0.03
    assert calibration_slope(y_test, p_test) == pytest.approx(1 / 3, abs=0.05)
    assert calibration_slope(y_test, apply_calibrator(calibrator, p_test)) == pytest.approx(1.0, abs=0.1)


def test_isotonic_is_monotone_and_calibrated_in_sample() -> None:
    rng = np.random.default_rng(1)
    y, p = _overconfident(3000, rng)
    calibrator = fit_isotonic(y, p)
    grid = np.linspace(0, 1, 501)
    mapped = apply_calibrator(calibrator, grid)
    assert np.all(np.diff(mapped) >= -1e-12) and mapped.min() >= 0 and mapped.max() <= 1
    assert expected_calibration_error(y, apply_calibrator(calibrator, p)) < 0.02


def test_fit_calibrator_picks_by_cross_validated_log_loss_and_checks_input() -> None:
    rng = np.random.default_rng(2)
    y, p = _overconfident(600, rng)
    fitted = fit_calibrator(y, p, rng=0)
    assert fitted["method"] in ("platt", "isotonic")
    losses = fitted["cv_log_loss"]
    assert losses[fitted["method"]] == min(losses.values())
    with pytest.raises(InputError, match="both classes"):
        fit_calibrator(np.zeros(10), np.linspace(0, 1, 10))
    with pytest.raises(InputError, match="0 or 1"):
        fit_platt(np.full(10, 2.0), np.linspace(0, 1, 10))


def test_decision_is_indeterminate_inside_the_band_only() -> None:
    assert decide(0.31, 0.3, [0.25, 0.35]) == "indeterminate"
    assert decide(0.25, 0.3, [0.25, 0.35]) == "indeterminate"
    assert decide(0.36, 0.3, [0.25, 0.35]) == "flagged"
    assert decide(0.2, 0.3, [0.25, 0.35]) == "clear"
    assert decide(0.3, 0.3, None) == "flagged"


def test_split_conformal_coverage_holds_on_exchangeable_data() -> None:
    rng = np.random.default_rng(3)
    n, k = 2000, 6
    scale = np.array([1.0, 2.0, 5.0, 0.5, 10.0, 3.0])
    truth = rng.normal(size=(2 * n, k)) * 10
    predicted = truth + rng.standard_t(4, size=(2 * n, k)) * scale  # heavy-tailed errors
    half = conformal_quantiles(truth[:n], predicted[:n], coverage=0.9)
    lower, upper = prediction_intervals(predicted[n:], half)
    coverage = interval_coverage(truth[n:], lower, upper)
    assert np.all(np.abs(coverage - 0.9) < 0.025), coverage
    # Clipping to physical limits never lowers coverage when the truth obeys them.
    lo, hi = prediction_intervals(predicted[n:], half, low=np.full(k, -40.0), high=np.full(k, 40.0))
    inside = np.abs(truth[n:]) <= 40
    assert np.all(((truth[n:] >= lo) & (truth[n:] <= hi)) | ~inside | ~((truth[n:] >= lower) & (truth[n:] <= upper)))
    with pytest.raises(InputError):
        conformal_quantiles(truth, predicted, coverage=1.5)


def _random_phenotypes(n: int, rng: np.random.Generator) -> np.ndarray:
    values = rng.uniform(5, 200, size=(n, 82))
    for c in CHAMBERS:  # raw head outputs that contradict each other, some impossible (ESV > EDV, EF > 100)
        values[:, phenotype_index(c.small)] = rng.uniform(0, 250, n)
        values[:, phenotype_index(c.fraction)] = rng.uniform(-10, 120, n)
    return values


@pytest.mark.parametrize("pair", ["small", "stroke", "fraction"])
def test_reconciled_phenotypes_obey_every_identity(pair: str) -> None:
    rng = np.random.default_rng(4)
    raw = _random_phenotypes(500, rng)
    hr = rng.uniform(40, 150, 500)
    assert max(identity_violations(raw, hr).values()) > 10  # the raw vector is inconsistent
    out = reconcile_phenotypes(raw, hr, {c.name: pair for c in CHAMBERS})
    assert max(identity_violations(out, hr).values()) < 1e-9
    for c in CHAMBERS:
        large, small = out[:, phenotype_index(c.large)], out[:, phenotype_index(c.small)]
        ef = out[:, phenotype_index(c.fraction)]
        assert np.all(small >= 0) and np.all(small <= large) and np.all((ef >= 0) & (ef <= 100))
        np.testing.assert_array_equal(
            out[:, phenotype_index(c.large)], np.clip(raw[:, phenotype_index(c.large)], 0, None)
        )
        kept = {"small": c.small, "stroke": c.stroke, "fraction": c.fraction}[pair]
        bound = {"small": (0, large), "stroke": (0, large), "fraction": (0, 100)}[pair]
        np.testing.assert_allclose(out[:, phenotype_index(kept)],
                                   np.clip(raw[:, phenotype_index(kept)], *bound))  # fmt: skip
    untouched = [phenotype_index(n) for n in ("LVM", "AAo max area", "WT_Global", "Ell_Global")]
    np.testing.assert_array_equal(out[:, untouched], raw[:, untouched])
    co = reconcile_phenotypes(raw, None)[:, phenotype_index("LVCO")]
    assert np.isnan(co).all()  # no heart rate: cardiac output is unknown rather than inconsistent
    assert set(derivation_table({c.name: pair for c in CHAMBERS})) >= {"LVCO"}


def test_primary_pairs_follow_the_better_predicted_quantity() -> None:
    rng = np.random.default_rng(5)
    truth = _random_phenotypes(800, rng)
    hr = rng.uniform(50, 100, 800)
    truth = reconcile_phenotypes(truth, hr, {c.name: "small" for c in CHAMBERS})
    predicted = truth + rng.normal(0, 1, truth.shape)
    lv = CHAMBERS[0]
    predicted[:, phenotype_index(lv.small)] += rng.normal(0, 60, 800)  # LVESV badly predicted, LVEF well
    predicted[:, phenotype_index(lv.stroke)] += rng.normal(0, 60, 800)
    assert choose_primary_pairs(predicted, truth, hr)["LV"] == "fraction"


def _ecg_window(rng: np.random.Generator, **kwargs: float) -> np.ndarray:
    return synthetic_ecg(fs=500.0, duration_s=10.0, rng=rng, **kwargs).astype(np.float64)


def test_signal_views_shapes_and_what_they_measure() -> None:
    rng = np.random.default_rng(6)
    window = _ecg_window(rng)
    views = signal_views(window, 70.0)
    assert views["statistics"].shape == (len(SIGNAL_FEATURES),)
    assert views["morphology"].shape == (12 * 65,) and views["spectrum"].shape == (12 * 25,)
    t = np.arange(5000) / 500.0
    hum = window + 0.2 * np.sin(2 * np.pi * 60.0 * t)
    base = signal_features(window, 70.0)
    humming = signal_features(hum, 70.0)
    j60, j50 = SIGNAL_FEATURES.index("mains_60_hz"), SIGNAL_FEATURES.index("mains_50_hz")
    assert humming[j60] - base[j60] > 1.0 and abs(humming[j50] - base[j50]) < 0.5
    j = SIGNAL_FEATURES.index("amplitude_I")
    assert signal_features(window * 2, 70.0)[j] - base[j] == pytest.approx(np.log(2), abs=1e-6)
    assert np.all(median_beat(np.zeros((12, 5000)), 70.0) == 0)  # no beat: zeros, far from any training beat
    assert np.isfinite(spectrum_profile(np.zeros((12, 5000)))).all()


def test_ppca_and_robust_distances_separate_shifted_data_and_round_trip_as_json() -> None:
    rng = np.random.default_rng(7)
    basis = rng.normal(size=(5, 40))
    train = rng.normal(size=(600, 5)) @ basis + 0.05 * rng.normal(size=(600, 40))
    held = rng.normal(size=(300, 5)) @ basis + 0.05 * rng.normal(size=(300, 40))
    shifted = held + 0.5 * rng.normal(size=(300, 40))  # off the training subspace
    model = fit_ppca(train, variance=0.99)
    d_held, d_shift = ppca_distance(model, held), ppca_distance(model, shifted)
    assert np.median(d_held) < 2 and np.mean(d_shift > np.quantile(d_held, 0.99)) > 0.95
    array = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(decode_array(encode_array(array)), array)
    stats = rng.normal(size=(400, len(SIGNAL_FEATURES)))
    robust = fit_robust_mahalanobis(stats)
    assert np.median(robust_mahalanobis_distance(robust, stats)) < 1.5
    assert robust_mahalanobis_distance(robust, stats[:1] + 10).item() > 50
