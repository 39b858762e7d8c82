"""External validation (issue 22): recalibration, the out-of-distribution fit, DeLong pairs, site cohorts, the report
writer and the command line. The full ``cntrain external`` run is exercised by the committed report's command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cardiacnets.metrics import expected_calibration_error
from cardiacnets.targets import DISEASES
from cardiacnets.training.cli import app
from cardiacnets.training.external import delong_pairs, site_cohort
from cardiacnets.training.external_report import write_external_report
from cardiacnets.training.recalibrate import apply_site_calibration, calibration_summary, fit_site_calibration
from cardiacnets.trust.ood import fit_ood, ood_scores


def _shifted_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (n, 5), true probabilities, and over-confident shifted model probabilities."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0.0, 1.5, size=(n, 5))
    truth = 1 / (1 + np.exp(-logit))
    labels = (rng.random((n, 5)) < truth).astype(np.float32)
    model = 1 / (1 + np.exp(-(2.5 * logit + 1.0)))  # over-confident and shifted: slope 0.4, intercept off
    return labels, truth, model


def test_platt_recalibration_repairs_a_shifted_site() -> None:
    labels, _, model = _shifted_cohort(400, 0)
    maps = fit_site_calibration(labels[:200], model[:200])
    after = apply_site_calibration(maps, model[200:])
    before_s, after_s = calibration_summary(labels[200:], model[200:]), calibration_summary(labels[200:], after)
    assert before_s["slope"] < 0.6 and 0.7 < after_s["slope"] < 1.4
    assert after_s["ece"] < 0.5 * before_s["ece"]
    assert all(maps[d]["method"] == "platt" for d in DISEASES)
    # Monotone maps: the ranking (and so AUROC) is unchanged.
    assert (np.argsort(after[:, 0], kind="stable") == np.argsort(model[200:, 0], kind="stable")).all()


def test_too_few_cases_keep_the_probabilities() -> None:
    labels, _, model = _shifted_cohort(60, 1)
    labels[:, 1] = 0
    labels[:3, 1] = 1
    maps = fit_site_calibration(labels, model)
    assert maps["PH"]["method"] == "identity"
    np.testing.assert_allclose(apply_site_calibration(maps, model)[:, 1], model[:, 1])
    assert calibration_summary(labels, model)["per_disease"]["PH"] is None


def test_calibration_summary_ece_matches_the_metric() -> None:
    labels, truth, _ = _shifted_cohort(300, 2)
    summary = calibration_summary(labels, truth)
    expected = np.mean([expected_calibration_error(labels[:, k], truth[:, k]) for k in range(5)])
    assert summary["ece"] == pytest.approx(expected)


def test_delong_pairs_of_identical_models_and_of_a_better_one() -> None:
    labels, truth, model = _shifted_cohort(300, 3)
    same = delong_pairs(labels, model, model)
    assert all(v["difference"] == 0 for v in same.values())
    noise = np.random.default_rng(0).random(truth.shape)
    better = delong_pairs(labels, truth, noise)
    assert all(v["difference"] > 0.1 and v["p"] < 0.01 for v in better.values())


def test_ood_fit_flags_shifted_rows_and_keeps_alpha_in_distribution() -> None:
    rng = np.random.default_rng(0)

    def rows(n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
        base = {"embedding": rng.normal(size=(n, 16)), "morphology": rng.normal(size=(n, 20)),
                "spectrum": rng.normal(size=(n, 12)), "statistics": rng.normal(size=(n, 33))}  # fmt: skip
        base["spectrum"] = base["spectrum"] + shift
        return base

    ood = fit_ood(rows(400), rows(400), alpha=0.05)
    inside = float((ood_scores(ood, rows(2000)) > ood["threshold"]).mean())
    shifted = float((ood_scores(ood, rows(500, shift=3.0)) > ood["threshold"]).mean())
    assert 0.01 < inside < 0.12 and shifted > 0.9


def test_site_cohort_is_model_ready() -> None:
    cohort, raw = site_cohort("community", 0, 6, 7, "balanced", "full")
    assert cohort.x.shape == (6, 12, 5000) and raw.shape == (6, 12, 5000)
    assert np.abs(cohort.x).max() <= 1.0 + 1e-6 and cohort.synthetic
    assert "community" in cohort.description and cohort.covariate_mask.all()


def _payload() -> dict:
    auc = {d: {"value": 0.7, "ci": [0.6, 0.8]} for d in DISEASES}
    arm = {"auc": auc, "mean_r": {"value": 0.3, "ci": [0.2, 0.4]}, "ece": 0.1, "ece_recalibrated": 0.05,
           "calibration_slope": 0.8, "calibration_slope_recalibrated": 1.0,
           "ood_flag_rate": {"value": 0.02, "ci": [0.01, 0.05]}}  # fmt: skip
    pair = {d: {"p": 0.04, "difference": 0.05, "ci": [0.0, 0.1]} for d in DISEASES}
    return {
        "train_site": "default",
        "sites": {"default": {"aligned": arm, "ecg_only": arm}, "community": {"aligned": arm, "ecg_only": arm}},
        "lead_sets": {
            "12": {"aligned": {"auc": auc, "mean_r": arm["mean_r"]}},
            "I": {"aligned": {"auc": auc, "mean_r": arm["mean_r"], "delong_vs_12": pair}},
        },  # fmt: skip
        "delong_aligned_vs_ecg_only": {"sites": {"default": pair}, "lead_sets": {}},
        "site_descriptions": {"default": "d", "community": "c"},
        "runs": {"aligned": {"dir": "runs/a", "init": {"init": "default"}, "lead_sets": ["12", "I"]}},
        "config": {
            "n_test": 10,
            "mode": "balanced",
            "seed": 7,
            "n_recalibration": 5,
            "n_reference": 20,
            "n_ood_calibration": 20,
            "alpha": 0.02,
            "n_bootstrap": 100,
        },  # fmt: skip
        "command": "cntrain external --run aligned=runs/a",
        "wall_s": 60.0,
    }


def test_report_has_every_table_and_figure(tmp_path: Path) -> None:
    write_external_report(_payload(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "SYNTHETIC" in text and "cntrain external --run aligned=runs/a" in text
    assert "| community | aligned (CardiacNets) | 0.700 (0.600-0.800)" in text
    assert "0.100 / 0.050" in text and "+0.050 (p=0.04)" in text
    assert "| single lead I | aligned (CardiacNets) |" in text
    assert (tmp_path / "fig_sites_auc.png").stat().st_size > 0 and (tmp_path / "fig_lead_sets_auc.png").is_file()
    json.dumps(_payload())  # the payload is plain JSON


def test_cli_rejects_a_malformed_run() -> None:
    result = CliRunner().invoke(app, ["external", "--run", "aligned"])
    assert result.exit_code == 2 and "ARM=DIR" in result.output
    result = CliRunner().invoke(app, ["recalibrate", "--run", "x", "--site", "mars"])
    assert result.exit_code == 1 and "unknown site" in result.output
