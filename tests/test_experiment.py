"""cntrain experiment: a micro run writes results.json in the published shape, report.md and the figures."""

from __future__ import annotations

import json
import math

import pytest

from cardiacnets.errors import ConfigError
from cardiacnets.models.registry import save_pretrained
from cardiacnets.targets import DISEASES
from cardiacnets.training.experiment import fraction_key, resolve_experiment_config, run_experiment


def _alignment_dir(tmp_path):  # noqa: ANN001, ANN202
    """A random tiny alignment model saved as an alignment run (best/), standing in for a pretraining run."""
    from cardiacnets.models.registry import create_model

    save_pretrained(create_model("alignment-tiny"), tmp_path / "align" / "best", metadata={"stage": "align"})
    return tmp_path / "align"


def test_micro_experiment_writes_results_in_the_published_shape(tmp_path) -> None:  # noqa: ANN001
    align = _alignment_dir(tmp_path)
    cfg = resolve_experiment_config(
        flags={"out": str(tmp_path / "exp"), "align": str(align), "arms": ["aligned", "ecg_only"]},
        sets=[
            "data.n_subjects=64",
            "finetune.max_steps=1",
            "finetune.batch_size=4",
            "finetune.ecg_preprocess=minmax",
            "n_bootstrap=100",
        ],
    )
    run_experiment(cfg, command="cntrain experiment (test)")
    out = tmp_path / "exp"
    payload = json.loads((out / "results.json").read_text())
    results = payload["results"]
    assert set(results) == {"aligned", "ecg_only"}
    for arm in results:
        assert set(results[arm]) == {"0.01", "0.1", "1.0"}
        for entry in results[arm].values():
            assert set(entry) == {"auc", "mean_r", "subtype_accuracy"}
            assert set(entry["auc"]) == set(DISEASES)
            for est in [*entry["auc"].values(), entry["mean_r"], entry["subtype_accuracy"]]:
                assert {"value", "ci"} <= set(est)
                if est["value"] is not None:
                    assert math.isfinite(est["value"]) and est["ci"][0] <= est["value"] <= est["ci"][1]
            assert entry["mean_r"]["value"] is not None  # phenotypes are always available on the synthetic cohort
    assert set(payload["delong_p"]) == {"0.01", "0.1", "1.0"}
    for by_disease in payload["delong_p"].values():
        assert set(by_disease) == set(DISEASES)
        assert all(p is None or 0.0 <= p <= 1.0 for p in by_disease.values())
    assert payload["cohort"]["synthetic"] is True
    report = (out / "report.md").read_text()
    assert "synthetic cohort" in report and "not patient data" in report and "DeLong" in report
    for name in (
        "fig2a_auc.png",
        "fig2c_label_efficiency.png",
        "fig3_subtype_confusion.png",
        "extfig1_convergence.png",
    ):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    # A second call reuses the finished runs instead of training again.
    mtime = (out / "runs" / "aligned-1.0" / "evaluation.json").stat().st_mtime
    run_experiment(cfg, command="again")
    assert (out / "runs" / "aligned-1.0" / "evaluation.json").stat().st_mtime == mtime
    again = json.loads((out / "results.json").read_text())
    assert again["runs_reused"] == 6 and again["training_wall_s"] == payload["wall_s"]  # the training time is kept
    assert "6 fine-tuning runs reused" in (out / "report.md").read_text()


def test_a_synthetic_dataset_directory_is_labelled_synthetic(tmp_path) -> None:  # noqa: ANN001
    from cardiacnets.training.experiment import _describe_cohort

    (tmp_path / "manifest.json").write_text(
        json.dumps({"n_subjects": 96, "source": {"kind": "synthetic", "seed": 7, "mode": "balanced"}})
    )
    cfg = resolve_experiment_config(sets=[f"data.source={tmp_path}"])
    description, synthetic = _describe_cohort(cfg)
    assert synthetic and "synthetic cohort" in description and "seed 7" in description and "96 subjects" in description
    (tmp_path / "manifest.json").write_text(json.dumps({"n_subjects": 96, "source": {"kind": "ukb"}}))
    assert _describe_cohort(cfg)[1] is False


def test_experiment_config_is_strict() -> None:
    with pytest.raises(ConfigError, match="unknown arm"):
        resolve_experiment_config(flags={"arms": ["aligned", "ecg"]})
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_experiment_config(sets=["finetune.epochs=3"])
    assert fraction_key(1) == "1.0" and fraction_key(0.01) == "0.01"
