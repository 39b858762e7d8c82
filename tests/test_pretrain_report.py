"""Pretraining report: retrieval and ridge probes do what they claim, and the report runs on a real align run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.training.pretrain_report import retrieval, ridge_probe
from tests.test_training import FAST, _invoke, cmr_run  # noqa: F401 - cmr_run is a fixture


def test_retrieval_hits_identity_and_misses_shuffled() -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(50, 16))
    assert retrieval(keys + 0.01 * rng.normal(size=keys.shape), [keys], 1).all()
    shuffled = retrieval(rng.permutation(keys), [keys], 1).mean()
    assert shuffled < 0.2  # about chance (1/50)
    # the key views' similarities are summed: two copies of one view rank exactly as the view alone
    query = keys + 0.5 * rng.normal(size=keys.shape)
    np.testing.assert_array_equal(retrieval(query, [keys, keys], 5), retrieval(query, [keys], 5))


def test_ridge_probe_recovers_a_linear_map_and_not_noise() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 20))
    w = rng.normal(size=(20, 5))
    y = x @ w + 0.1 * rng.normal(size=(400, 5))
    pred = ridge_probe(x[:300], y[:300], x[300:])
    r = [np.corrcoef(pred[:, j], y[300:, j])[0, 1] for j in range(5)]
    assert min(r) > 0.98
    noise_pred = ridge_probe(rng.normal(size=(300, 20)), y[:300], rng.normal(size=(100, 20)))
    assert np.mean([abs(np.corrcoef(noise_pred[:, j], y[300:, j])[0, 1]) for j in range(5)]) < 0.3


def test_report_on_a_tiny_align_run(cmr_run: Path, tmp_path: Path) -> None:  # noqa: F811
    align = tmp_path / "align"
    args = ["align", "--cmr", str(cmr_run), "--data", "synthetic", "--n-subjects", "40", "--model", "tiny"]
    _invoke([*args, "--max-steps", "2", "--batch-size", "4", "--out", str(align), *FAST])
    out = tmp_path / "report"
    summary = _invoke(
        ["pretrain-report", "--align", str(align), "--data", "synthetic", "--n-subjects", "40", "--out", str(out)]
    )
    results = json.loads((out / "results.json").read_text())
    assert results == {**results, **summary}
    for key in (
        "retrieval_top1",
        "retrieval_top5",
        "probe_mean_r_aligned",
        "probe_mean_r_random_init",
        "probe_mean_r_cmr",
    ):
        low, high = results[key]["ci"]
        assert low <= results[key]["value"] <= high, key
    assert results["retrieval_chance_top1"] == pytest.approx(1 / results["n_test"])
    assert results["synthetic"] is True and "SYNTHETIC" in (out / "report.md").read_text()
