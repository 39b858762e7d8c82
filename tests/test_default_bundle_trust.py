"""The shipped default bundle keeps the trust promises.

Batch-independent graphs, `cnscreen FILE` equal to its batch row, phenotypes that obey their identities,
out-of-distribution flags on real ECGs and not on synthetic test ECGs, conformal coverage near nominal. Every number
here is measured on the bundle as shipped."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardiacnets.bundle import default_bundle_path, load_bundle
from cardiacnets.edge.batch import enumerate_inputs, result_row, run_batch
from cardiacnets.edge.screen import Screener
from cardiacnets.errors import CardiacNetsError
from cardiacnets.trust.phenotypes import CHAMBERS

BUNDLE = default_bundle_path()


@cache
def _session(rel: str):  # noqa: ANN202 - onnxruntime's type
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(BUNDLE / rel), options, providers=["CPUExecutionProvider"])


def _graphs() -> list[tuple[str, dict]]:
    """Every ONNX graph the bundle ships (each model and each precision variant)."""
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    out = []
    for spec in manifest["models"].values():
        out.append((spec["file"], spec))
        for variant in (spec.get("variants") or {}).values():
            out.append((variant["file"], spec))
    return out


def _feeds(spec: dict, batch: int, rng: np.random.Generator, loudness: np.ndarray) -> dict[str, np.ndarray]:
    """Random inputs for a graph from its manifest tensor specs; ``loudness`` (batch,) scales each row's float input."""
    feeds = {}
    for entry in spec["inputs"]:
        shape = [batch if d == "batch" else d for d in entry["shape"]]
        if entry["dtype"] == "float32":
            x = rng.normal(0.0, 0.4, size=shape).astype(np.float32)
            if entry["name"] == "covariates":
                x = np.stack([rng.integers(0, 2, batch), rng.uniform(30, 85, batch), rng.uniform(45, 110, batch)], 1)
            elif entry["name"] == "covariate_mask":
                x = (rng.uniform(size=shape) > 0.25).astype(np.float32)
            else:
                x = x * loudness.reshape((-1,) + (1,) * (x.ndim - 1))
                if entry["name"] == "ecg":
                    x = np.clip(x, -1.0, 1.0)  # the screening input is min-max scaled
            feeds[entry["name"]] = x.astype(np.float32)
        elif entry["dtype"] == "int64":
            feeds[entry["name"]] = rng.integers(0, 1000, size=shape).astype(np.int64)
        elif entry["dtype"] == "bool":
            feeds[entry["name"]] = rng.uniform(size=shape) > 0.5
        else:
            raise AssertionError(f"no test inputs for dtype {entry['dtype']}")
    return feeds


@pytest.mark.parametrize("rel, spec", _graphs(), ids=[rel for rel, _ in _graphs()])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), louder=st.floats(0.2, 5.0))
def test_every_shipped_graph_is_batch_independent(rel: str, spec: dict, size: int, seed: int, louder: float) -> None:
    """A record's outputs do not depend on what shares its batch (louder or quieter partners, any batch size)."""
    rng = np.random.default_rng(seed)
    loudness = np.r_[1.0, rng.uniform(min(1.0, louder), max(1.0, louder), size)]
    feeds = _feeds(spec, size + 1, rng, loudness)
    session = _session(rel)
    together = session.run(None, feeds)
    alone = session.run(None, {k: v[:1] for k, v in feeds.items()})
    for got, ref, out in zip(together, alone, spec["outputs"], strict=True):
        np.testing.assert_allclose(got[:1], ref, rtol=1e-5, atol=1e-4, err_msg=f"{rel}: {out['name']}")


def test_the_default_screening_graph_is_fp32_and_every_variant_batch_independent() -> None:
    manifest = load_bundle(BUNDLE).manifest
    screening = manifest["models"]["screening"]
    assert screening["default_variant"] == "fp32"
    assert manifest["trust"]["file"] == "trust.json" and manifest["bundle_format_version"] >= 2


def _corpus_inputs(conformance_dir: Path) -> list[str]:
    return [i.path for i in enumerate_inputs(conformance_dir) if "_groundtruth" not in Path(i.path).parts]


@pytest.fixture(scope="module")
def corpus_results(conformance_dir: Path) -> dict[str, dict]:
    screener = Screener(BUNDLE, device="cpu")
    results = {}
    for path in _corpus_inputs(conformance_dir):
        try:
            results[path] = screener.screen_file(path)[0]
        except CardiacNetsError:
            continue
    assert len(results) >= 20, "the conformance corpus should hold at least 20 readable ECGs"
    return results


def test_screen_file_equals_its_batch_row_for_every_corpus_file(
    corpus_results: dict[str, dict], conformance_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rows.jsonl"
    run_batch(conformance_dir, out, bundle=BUNDLE, workers=2, batch_size=4, progress=False)
    rows = {row["path"]: row for row in map(json.loads, out.read_text().splitlines())}
    for path, result in corpus_results.items():
        expected = json.loads(json.dumps(result_row(result, False)))
        assert rows[path] == expected, path


def _check_identities(phenotypes: dict, heart_rate: float, tolerance: float = 0.5) -> None:
    def value(name: str) -> float:
        return phenotypes[name]["value"]

    for c in CHAMBERS:
        assert abs(value(c.stroke) - (value(c.large) - value(c.small))) <= tolerance, c.name
        if value(c.large) > 0:
            assert abs(value(c.fraction) - 100 * value(c.stroke) / value(c.large)) <= tolerance, c.name
        assert 0 <= value(c.small) <= value(c.large) and 0 <= value(c.fraction) <= 100
    assert abs(value("LVCO") - value("LVSV") * heart_rate / 1000) <= tolerance
    for name, entry in phenotypes.items():
        low, high = entry["interval"]
        assert low <= entry["value"] <= high, name


def test_phenotype_identities_hold_on_real_ecgs(corpus_results: dict[str, dict]) -> None:
    for path, result in corpus_results.items():
        try:
            _check_identities(result["phenotypes"], result["covariates_used"]["heart_rate"])
            _check_identities({k: v for k, v in result["key_phenotypes"].items()} | result["phenotypes"],
                              result["covariates_used"]["heart_rate"])  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{path}: {exc}") from None


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 1.0), hr=st.floats(35.0, 190.0))
def test_phenotype_identities_hold_on_random_inputs(seed: int, scale: float, hr: float) -> None:
    from cardiacnets.edge.screen import PreparedEcg

    screener = _screener()
    rng = np.random.default_rng(seed)
    ecg = np.clip(rng.normal(0, scale, (1, 12, 5000)), -1, 1).astype(np.float32)
    covariates = np.array([[rng.integers(0, 2), rng.uniform(20, 90), hr]], np.float32)
    mask = np.ones((1, 3), np.float32)
    outputs = {k: v[0] for k, v in screener.infer(ecg, covariates, mask).items()}
    window = rng.normal(0, scale, (12, 5000))
    from cardiacnets.trust.ood import signal_views

    prepared = PreparedEcg(path="random", ecg=ecg[0], covariates=covariates[0], covariate_mask=mask[0],
                           qc={"reliable": True, "findings": []}, preprocess={}, record_info={},
                           signal_views=signal_views(window, hr))  # fmt: skip
    result = screener.result(prepared, outputs)
    _check_identities(result["phenotypes"], hr)


@lru_cache(maxsize=1)
def _screener() -> Screener:
    return Screener(BUNDLE, device="cpu")


def test_real_ecgs_are_flagged_out_of_distribution(corpus_results: dict[str, dict]) -> None:
    """The default bundle learned from synthetic ECGs only: at least 95 % of the real corpus must be flagged."""
    flagged = {path: not r["distribution"]["in_distribution"] for path, r in corpus_results.items()}
    assert np.mean(list(flagged.values())) >= 0.95, [p for p, f in flagged.items() if not f]
    example = next(r for r in corpus_results.values() if not r["distribution"]["in_distribution"])
    assert example["reliable"] is False and "unlike the ECGs this model was trained on" in example["note_ood"]
    assert example["distribution"]["reasons"]


@pytest.fixture(scope="module")
def synthetic_test_split():  # noqa: ANN201
    """400 subjects of the test split of the cohort the trust data was fitted on (none used for fitting)."""
    from cardiacnets.export.trust_fit import score_split

    manifest = load_bundle(BUNDLE).manifest
    fitted_on = manifest["trust"]["fitted_on"]["calibration"]
    n_subjects = int(fitted_on.split(" of ")[1].split(" subjects")[0])
    return score_split(BUNDLE / manifest["models"]["screening"]["file"], "synthetic", "test",
                       preprocess=manifest["preprocess"], n_subjects=n_subjects, seed=0, max_items=400)  # fmt: skip


def test_synthetic_test_ecgs_are_rarely_flagged(synthetic_test_split) -> None:  # noqa: ANN001
    trust = _screener().trust
    checks = trust.distribution(synthetic_test_split.outputs["embedding"], synthetic_test_split.signal)
    assert np.mean([not c.in_distribution for c in checks]) <= 0.05


def test_conformal_coverage_is_near_nominal_on_the_test_split(synthetic_test_split) -> None:  # noqa: ANN001
    from cardiacnets.trust.conformal import interval_coverage

    trust = _screener().trust
    _, lower, upper = trust.phenotypes(synthetic_test_split.outputs["phenotypes"], synthetic_test_split.heart_rate)
    coverage = interval_coverage(synthetic_test_split.phenotypes, lower, upper)
    assert abs(np.nanmean(coverage) - trust.coverage) <= 0.03, np.nanmean(coverage)


def test_calibration_lowers_the_expected_calibration_error(synthetic_test_split) -> None:  # noqa: ANN001
    from cardiacnets.metrics import expected_calibration_error

    trust = _screener().trust
    raw = synthetic_test_split.outputs["disease_prob"]
    calibrated = trust.calibrate(raw)
    for k, disease in enumerate(trust.diseases):
        y = synthetic_test_split.labels[:, k]
        before = expected_calibration_error(y, raw[:, k])
        after = expected_calibration_error(y, calibrated[:, k])
        assert after < before, disease
