"""Screening from reduced lead sets (issue 22): a bundle declares its lead sets, ``cnscreen`` picks the richest set the
file holds, zeroes the other leads in the model input, says which set it used, and a bundle without declared sets
screens as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.bundle import load_bundle, write_manifest
from cardiacnets.edge.batch.rows import output_columns, result_row
from cardiacnets.edge.screen import Screener
from cardiacnets.errors import BundleError
from cardiacnets.leadsets import LEAD_SETS
from cardiacnets.record import LEADS
from tests.edge_fixtures import make_tiny_bundle, reference_outputs
from tests.synthetic_ecg import synthetic_ecg

CNSCREEN = [sys.executable, "-c", "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"]
ALL_SETS = list(LEAD_SETS)


def _signal() -> np.ndarray:
    return synthetic_ecg(fs=500.0, duration_s=10.0, rng=np.random.default_rng(5))  # (12, 5000) mV


def write_limb_wfdb(directory: Path) -> Path:
    """A WFDB record of a 6-lead device: the limb leads only."""
    import wfdb

    limb = list(LEAD_SETS["limb6"])
    rows = [LEADS.index(lead) for lead in limb]
    wfdb.wrsamp("limb", fs=500, units=["mV"] * 6, sig_name=limb, p_signal=_signal()[rows].T, fmt=["16"] * 6,
                adc_gain=[1000.0] * 6, baseline=[0] * 6, write_dir=str(directory))  # fmt: skip
    return directory / "limb.hea"


def write_single_lead_csv(directory: Path) -> Path:
    """A single-lead wearable's export: lead I as CSV (time column and lead I; the CSV layout needs a delimiter)."""
    path = directory / "wearable.csv"
    lead_i = _signal()[0]
    rows = "\n".join(f"{k / 500:.3f},{v:.4f}" for k, v in enumerate(lead_i))
    path.write_text("# fs=500\n# units=mV\ntime,I\n" + rows + "\n")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {"sets": make_tiny_bundle(root / "sets", lead_sets=ALL_SETS), "plain": make_tiny_bundle(root / "plain")}


def test_bundle_declares_its_lead_sets(bundles: dict[str, Path], tmp_path: Path) -> None:
    assert load_bundle(bundles["sets"]).lead_sets == ALL_SETS
    assert load_bundle(bundles["plain"]).lead_sets is None
    bad = make_tiny_bundle(tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["lead_sets"] = ["12", "V1-only"]
    write_manifest(bad, {k: v for k, v in manifest.items() if k not in ("files", "digest")})
    with pytest.raises(BundleError, match="V1-only"):
        _ = load_bundle(bad).lead_sets


@pytest.mark.parametrize(
    ("writer", "expected", "used"),
    [(write_limb_wfdb, "limb6", set(LEAD_SETS["limb6"])), (write_single_lead_csv, "I", {"I"})],
)
def test_reduced_lead_files_are_screened_with_their_set(bundles, tmp_path, writer, expected, used) -> None:
    screener = Screener(bundles["sets"], device="cpu")
    result, prepared = screener.screen_file(writer(tmp_path))
    assert result["lead_set"] == expected and prepared.lead_set == expected
    unused = [i for i, lead in enumerate(LEADS) if lead not in used]
    assert np.all(prepared.ecg[unused] == 0) and np.abs(prepared.ecg[[LEADS.index(lead) for lead in used]]).max() > 0
    # The graph ran on the masked input: its outputs are those of the reference on the same (masked) array.
    ref = reference_outputs(prepared.ecg[None], prepared.covariates[None], prepared.covariate_mask[None])
    assert result["diseases"]["CAD"]["probability"] == pytest.approx(float(ref["disease_prob"][0, 0]), abs=1e-4)
    # Missing leads the model does not use are warnings, not failures.
    failing = [f["lead"] for f in result["qc"]["findings"] if f["severity"] == "fail" and f.get("lead")]
    assert not set(failing) - used
    assert any(f["code"] == "missing_lead" and f["severity"] == "warn" for f in result["qc"]["findings"])


def test_a_bundle_without_lead_sets_screens_as_before(bundles: dict[str, Path], tmp_path: Path) -> None:
    screener = Screener(bundles["plain"], device="cpu")
    result, prepared = screener.screen_file(write_limb_wfdb(tmp_path))
    assert result["lead_set"] == "12"
    assert result["qc"]["reliable"] is False  # zero-filled precordial leads fail QC, as they always did
    assert any(f["code"] == "missing_lead" and f["severity"] == "fail" for f in result["qc"]["findings"])


def test_lead_set_is_chosen_once_and_in_batch_rows(bundles: dict[str, Path], tmp_path: Path) -> None:
    screener = Screener(bundles["sets"], device="cpu")
    result, prepared = screener.screen_file(write_single_lead_csv(tmp_path))
    before = prepared.ecg.copy()
    screener.infer_prepared([prepared])  # a second pass neither re-masks nor re-labels
    np.testing.assert_array_equal(prepared.ecg, before)
    assert "lead_set" in output_columns(False) and result_row(result, False)["lead_set"] == "I"


def test_cnscreen_json_names_the_lead_set(bundles: dict[str, Path], tmp_path: Path) -> None:
    path = write_limb_wfdb(tmp_path)
    done = subprocess.run([*CNSCREEN, str(path), "--bundle", str(bundles["sets"]), "--json"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lead_set"] == "limb6"
    summary = subprocess.run([*CNSCREEN, str(path), "--bundle", str(bundles["sets"])], capture_output=True, text=True,
                             check=False, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    assert "lead set limb6" in summary.stdout and "screened with the 6 limb leads" in summary.stdout


def write_single_lead_wfdb(directory: Path) -> Path:
    """A single-lead WFDB record (lead I only), as a patch or wearable exports it."""
    import wfdb

    wfdb.wrsamp("lead1", fs=500, units=["mV"], sig_name=["I"], p_signal=_signal()[:1].T, fmt=["16"],
                adc_gain=[1000.0], baseline=[0], write_dir=str(directory))  # fmt: skip
    return directory / "lead1.hea"


def write_watch_export(directory: Path) -> Path:
    """Lead I as the Apple Watch ECG app exports it (key-value header, 512 Hz, one value in uV a line)."""
    from scipy.signal import resample

    lead_i = resample(_signal()[0], 5120) * 1000.0  # 10 s at 512 Hz, uV
    head = ["Name,Test Person", "Recorded Date,2026-05-30 16:32:18 -0700", "Classification,Sinus Rhythm",
            'Device,"Watch7,12"', "Sample Rate,512 hertz", "", "Lead,Lead I", "Unit,µV", ""]  # fmt: skip
    path = directory / "ecg_2026-05-30.csv"
    path.write_text("\n".join(head + [f"{v:.3f}" for v in lead_i]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("writer", "expected"), [(write_limb_wfdb, "limb6"), (write_single_lead_wfdb, "I"), (write_watch_export, "I")]
)
def test_the_default_bundle_screens_limb_and_single_lead_files(tmp_path: Path, writer, expected: str) -> None:  # noqa: ANN001
    """Issue 22's promise with the shipped bundle: a 6-lead and a single-lead file are screened, with the lead set
    named, calibrated with that set's own trust artefacts."""
    from cardiacnets.bundle import default_bundle_path

    bundle = load_bundle(default_bundle_path())
    assert set(bundle.lead_sets or []) >= {"12", "limb6", "I+II", "I"}
    done = subprocess.run([*CNSCREEN, str(writer(tmp_path)), "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["lead_set"] == expected and result["model"]["calibrated"] is True
    spec = json.loads((default_bundle_path() / "trust.json").read_text())["lead_sets"][expected]
    for disease, entry in result["diseases"].items():
        assert entry["threshold"] == round(spec["thresholds"][disease][entry["operating_point"]], 4)
    (tmp_path / "again").mkdir()
    summary = subprocess.run([*CNSCREEN, str(writer(tmp_path / "again"))], capture_output=True, text=True,
                             check=False, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    assert f"lead set {expected}" in summary.stdout
