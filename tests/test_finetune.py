"""cntrain finetune: training-subset selection, two-step smoke runs of every task kind, thresholds, reload parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cardiacnets.metrics.screening import BINARY_TASKS, thresholds_from_predictions
from cardiacnets.models.registry import from_pretrained, read_pretrained_metadata
from cardiacnets.preprocess import PreprocessConfig
from cardiacnets.training.cli import app
from cardiacnets.training.config import resolve_config
from cardiacnets.training.tasks.finetune import predict_rows, run_finetune
from cardiacnets.training.tasks.finetune_cohort import load_cohort_split, select_training_rows, task_strata

SETS = ["data.n_subjects=64", "task.ecg_preprocess=minmax", "task.max_epochs=null", "train.batch_size=4"]


def _cfg(tmp_path, task: str, *extra: str):  # noqa: ANN001, ANN202
    return resolve_config(
        "finetune",
        flags={"out": str(tmp_path / task), "train.max_steps": 2, "train.progress": False},
        sets=[*SETS, f"task.task={task}", *extra],
    )


def test_training_rows_are_stratified_subject_level_and_case_control() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    labels = (rng.random((n, 5)) < 0.1).astype(np.float32)
    subtype = np.full(n, -1)
    groups = np.repeat(np.arange(n // 2), 2).astype(str)  # two rows per subject
    strata = task_strata("cm", labels, subtype)
    eligible = np.arange(n)
    full = select_training_rows("cm", strata, groups, eligible, fraction=1.0, seed=0, case_control=True)
    y = labels[full, BINARY_TASKS["cm"]]
    assert y.sum() == (1 - y).sum()  # 1:1
    assert y.sum() == labels[:, 3].sum()  # every case kept
    tenth = select_training_rows("cm", strata, groups, eligible, fraction=0.1, seed=0, case_control=False)
    assert abs(len(tenth) - 200) <= 4  # 10 % of rows (whole subjects)
    assert abs(labels[tenth, 3].mean() - labels[:, 3].mean()) < 0.02  # stratified: prevalence kept
    kept = set(groups[tenth])
    assert all(set(np.flatnonzero(np.isin(groups, [g]))) <= set(tenth) for g in list(kept)[:20])  # whole subjects
    again = select_training_rows("cm", strata, groups, eligible, fraction=0.1, seed=0, case_control=False)
    other = select_training_rows("cm", strata, groups, eligible, fraction=0.1, seed=1, case_control=False)
    np.testing.assert_array_equal(tenth, again)
    assert not np.array_equal(tenth, other)


@pytest.mark.parametrize("task", ["cm", "subtype", "phenotypes", "all"])
def test_two_step_smoke_each_task_kind(tmp_path, task: str) -> None:  # noqa: ANN001
    result = run_finetune(_cfg(tmp_path, task), eval_splits=("val",))
    assert result.train.step == 2 and result.train.best_step == 2
    evaluation = json.loads((tmp_path / task / "evaluation.json").read_text())
    assert evaluation["task"] == task and "val" in evaluation["splits"]
    split = evaluation["splits"]["val"]
    if task in ("cm", "all"):
        assert "CM" in split["diseases"]
    if task in ("phenotypes", "all"):
        assert "phenotypes" in split
    if task in ("subtype", "all"):
        assert split["subtype"]["n"] >= 1


def test_max_steps_cap_bounds_an_epoch_schedule(tmp_path) -> None:  # noqa: ANN001
    # 4 epochs of the 64-subject cohort's case-control rows would be far more than 3 steps; the cap wins
    cfg = _cfg(tmp_path, "cm", "task.max_epochs=4", "task.max_steps_cap=3", "task.warmup_epochs=1")
    result = run_finetune(cfg, eval_splits=("val",))
    assert result.train.step == 3
    assert cfg.train.warmup_steps <= 1  # warm-up never exceeds half of the capped run


@pytest.fixture
def one_torch_thread():  # noqa: ANN201
    """Evaluation during training and prediction after reloading must see bit-identical arithmetic; with several
    intra-op threads the reduction order (and so the last float bit) can differ between the two calls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_thresholds_stored_and_reload_predicts_identically(tmp_path, one_torch_thread) -> None:  # noqa: ANN001
    cfg = _cfg(tmp_path, "all", "task.synthetic_mode=balanced")
    result = run_finetune(cfg, eval_splits=("val",))
    best = tmp_path / "all" / "best"
    meta = read_pretrained_metadata(best)
    assert meta["preprocess"] == {"kind": "minmax"}  # minmax runs say so; full runs store PreprocessConfig
    thresholds = meta["thresholds"]
    assert thresholds, "a balanced validation split has cases and controls: thresholds must be chosen"
    for entry in thresholds.values():
        assert entry["default"] == "youden"
        assert 0.0 <= entry["youden"] <= 1.0 and 0.0 <= entry["high_specificity"] <= 1.0
    assert result.evaluation["thresholds"] == thresholds
    # The stored operating points are the ones the saved model's own validation predictions give (the threshold
    # rules themselves are checked against brute force in tests/test_metrics.py).
    val = result.predictions["val"]
    recomputed = thresholds_from_predictions(val, "all", 0.9)
    assert {d: v["youden"] for d, v in recomputed.items()} == {d: v["youden"] for d, v in thresholds.items()}
    assert {d: v["high_specificity"] for d, v in recomputed.items()} == {
        d: v["high_specificity"] for d, v in thresholds.items()
    }
    # Reload: identical predictions.
    model = from_pretrained(best)
    cohort = load_cohort_split(cfg.data, "val", input="ecg", ecg_preprocess="minmax", synthetic_mode="balanced")
    again = predict_rows(model, cohort, val["rows"])
    for key in ("disease_prob", "subtype_prob", "phenotypes"):
        np.testing.assert_array_equal(again[key], val[key])
    assert torch.all(model.phenotype_std != 1.0)  # the training scaler travels with the weights


def test_full_preprocess_metadata_is_the_preprocess_config(tmp_path) -> None:  # noqa: ANN001
    from cardiacnets.training.tasks.finetune import FinetuneTask

    cfg = _cfg(tmp_path, "cad", "task.ecg_preprocess=full", "data.n_subjects=24")
    meta = FinetuneTask(cfg).best_metadata()
    assert meta["preprocess"] == PreprocessConfig().to_dict()
    assert meta["training_data"]["synthetic"] is True


def test_cli_finetune_smoke(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "cli"
    args = ["finetune", "--task", "cad", "--init", "random", "--label-fraction", "1.0", "--max-steps", "2"]
    args += ["--out", str(out), "--n-subjects", "64", "--batch-size", "4"]
    args += ["--set", "task.ecg_preprocess=minmax", "--set", "train.progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["step"] == 2 and (out / "best" / "config.json").is_file()
    assert (out / "evaluation.json").is_file()


def test_cli_finetune_rejects_unknown_task(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, ["finetune", "--task", "afib", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown task" in str(result.exception) + result.output


def test_cmr_input_upper_bound_smoke(tmp_path) -> None:  # noqa: ANN001
    """The CMR-based arm: SA + LA towers on the cines, initialised from an alignment run's CMR towers."""
    from cardiacnets.models.registry import create_model, save_pretrained

    aligned = create_model("alignment-tiny")
    save_pretrained(aligned, tmp_path / "align" / "best")
    cfg = _cfg(tmp_path, "phenotypes", "task.input=cmr", f"task.init={tmp_path / 'align'}", "data.n_subjects=32")
    cfg.train.max_steps = 1
    result = run_finetune(cfg, eval_splits=("val",))
    model = from_pretrained(tmp_path / "phenotypes" / "best")
    assert model.config.input == "cmr" and result.train.step == 1
    assert "phenotypes" in result.evaluation["splits"]["val"]
