"""External validation (issue 22): recalibration, the out-of-distribution fit, DeLong pairs, site cohorts, the report
writer, the command line, and a whole run with untrained tiny arms (ECG and CMR input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cardiacnets.metrics import expected_calibration_error
from cardiacnets.targets import DISEASES
from cardiacnets.training.cli import app
from cardiacnets.training.external import ExternalConfig, delong_pairs, run_external, site_cohort
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
    assert 0.6 < summary["slope"] < 1.6  # the true probabilities: slope near 1
    # one disease whose probabilities barely vary has a wild slope; the summary (the median) stays put
    flat = truth.copy()
    flat[:, 0] = 0.5 + 1e-4 * (labels[:, 0] - 0.5) * np.random.default_rng(0).random(len(flat))
    wild = calibration_summary(labels, flat)
    assert abs(wild["per_disease"]["CAD"]["slope"]) > 20
    assert 0.6 < wild["slope"] < 1.6


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


def test_site_cohort_gives_the_cmr_arm_the_same_subjects_cines() -> None:
    ecg, raw = site_cohort("community", 0, 4, 7, "balanced", "full")
    cmr, raw_cmr = site_cohort("community", 0, 4, 7, "balanced", "full", "cmr")
    sa, la = cmr.x
    assert sa.shape == (4, 50, 80, 80) and la.shape == (4, 50, 96, 96) and sa.dtype == np.uint8
    assert sa.max() > 100 and sa.min() < 20  # a cine: bright blood pool on a dark background
    np.testing.assert_array_equal(cmr.labels, ecg.labels)
    np.testing.assert_array_equal(cmr.phenotypes, ecg.phenotypes)
    np.testing.assert_array_equal(raw_cmr, raw)  # the same subjects: the ECGs do not depend on rendering the cines


def _tiny_run(root: Path, name: str, input: str, lead_sets: list[str] | None) -> str:
    import torch

    from cardiacnets.models.registry import create_model, save_pretrained

    torch.manual_seed(len(name))
    if input == "cmr":
        model = create_model("screening-cmr-tiny")
    else:
        model = create_model("screening-ecg-tiny", ecg={"embed_dim": 24, "depth": 1, "num_heads": 2})
    meta = {"stage": "finetune", "input": input, "ecg_preprocess": "full", "init": {"init": "random"}}
    if lead_sets:
        meta["lead_sets"] = lead_sets
    save_pretrained(model, root / name / "best", metadata=meta)
    return str(root / name)


def test_a_whole_external_run_with_ecg_and_cmr_arms(tmp_path: Path) -> None:
    runs = {
        "aligned": _tiny_run(tmp_path, "aligned", "ecg", ["12", "I"]),
        "ecg_only": _tiny_run(tmp_path, "ecg_only", "ecg", ["12", "I"]),
        "cmr": _tiny_run(tmp_path, "cmr", "cmr", None),
    }
    sizes = {"n_test": 24, "n_recalibration": 20, "n_reference": 30, "n_ood_calibration": 30, "n_bootstrap": 100}
    unmasked = _tiny_run(tmp_path, "unmasked", "ecg", None)
    cfg = ExternalConfig(runs=runs, out=str(tmp_path / "out"), sites=["default", "community"], lead_sets=["12", "I"],
                         unmasked=unmasked, **sizes)  # fmt: skip
    payload = run_external(cfg, command="cntrain external (test)")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["sites"].keys() == {"default", "community"}
    for site in saved["sites"].values():
        assert site.keys() == {"aligned", "ecg_only", "cmr"}
        assert site["cmr"]["ood_flag_rate"]["value"] is None  # the check is the ECG model's
        assert 0.0 <= site["aligned"]["ood_flag_rate"]["value"] <= 1.0
        assert site["cmr"]["mean_r"]["n_targets"] > 40
    # the CMR reference stands unchanged in every lead set's table; the ECG arms are scored per lead set
    for ls in ("12", "I"):
        assert saved["lead_sets"][ls]["cmr"]["uses_ecg"] is False
        assert saved["lead_sets"][ls]["cmr"]["auc"] == saved["sites"]["default"]["cmr"]["auc"]
    assert "delong_vs_12" in saved["lead_sets"]["I"]["aligned"]
    assert saved["lead_sets"]["I"]["aligned"]["auc"] != saved["lead_sets"]["12"]["aligned"]["auc"]
    assert set(saved["delong_aligned_vs_cmr"]["sites"]) == {"default", "community"}
    assert payload["sites"]["community"]["cmr"]["auc"] == saved["sites"]["community"]["cmr"]["auc"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "AUROC difference aligned - CMR-based" in text and "does not use the ECG" in text
    assert "In short: the advantage holds at" in text
    # what masking costs at 12 leads: the aligned arm's 12-lead AUROCs against the unmasked run's, same subjects
    cost = saved["masking_cost"]
    assert cost["auc"]["masked"] == saved["lead_sets"]["12"]["aligned"]["auc"]
    assert cost["auc"]["unmasked"] != cost["auc"]["masked"] and set(cost["delong_masked_vs_unmasked"]) == set(DISEASES)
    assert "What lead masking costs at 12 leads" in text


def test_a_cmr_model_in_an_ecg_arm_is_refused(tmp_path: Path) -> None:
    from cardiacnets.errors import ConfigError

    runs = {"aligned": _tiny_run(tmp_path, "cmr", "cmr", None)}
    with pytest.raises(ConfigError, match="CMR-input model"):
        run_external(ExternalConfig(runs=runs, out=str(tmp_path / "out"), sites=["default"]))


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
    # identical arms: no advantage; the verdict counts the sites compared
    assert "- site default: mean AUROC 0.700 vs 0.700 (+0.000)" in text and "**Does not hold.**" in text
    assert "the advantage holds at 0 of 2 sites" in text
    assert (tmp_path / "fig_sites_auc.png").stat().st_size > 0 and (tmp_path / "fig_lead_sets_auc.png").is_file()
    json.dumps(_payload())  # the payload is plain JSON


def test_cli_rejects_a_malformed_run() -> None:
    result = CliRunner().invoke(app, ["external", "--run", "aligned"])
    assert result.exit_code == 2 and "ARM=DIR" in result.output
    result = CliRunner().invoke(app, ["recalibrate", "--run", "x", "--site", "mars"])
    assert result.exit_code == 1 and "unknown site" in result.output


def test_the_advantage_needs_a_significant_disease_and_none_worse() -> None:
    from cardiacnets.training.external_report import _advantage

    def arm(auc: float, r: float) -> dict:
        return {"auc": {d: {"value": auc, "ci": [auc - 0.1, auc + 0.1]} for d in DISEASES},
                "mean_r": {"value": r, "ci": [r - 0.05, r + 0.05]}}  # fmt: skip

    arms = {"aligned": arm(0.70, 0.3), "ecg_only": arm(0.69, 0.2)}
    noise = {d: {"p": 0.5, "difference": 0.01, "ci": [-0.05, 0.07]} for d in DISEASES}
    assert _advantage("x", arms, noise)[1] is False  # ahead, but within noise
    clear = {**noise, "CM": {"p": 0.001, "difference": 0.1, "ci": [0.05, 0.15]}}
    assert _advantage("x", arms, clear)[1] is True
    mixed = {**clear, "HF": {"p": 0.01, "difference": -0.08, "ci": [-0.14, -0.02]}}
    line, holds = _advantage("x", arms, mixed)
    assert holds is False and "worse for 1 (HF)" in line
