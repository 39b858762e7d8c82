"""``cnscreen inspect``: library report, CliRunner and a real subprocess; patient identifiers only on request."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardiacnets.inspect import format_inspection, inspect_file
from tests.conftest import REPO

CNSCREEN = REPO / ".venv" / "bin" / "cnscreen"
NAME_LAST, NAME_FIRST, PATIENT_ID = "Quixotewright", "Zebulon", "ZX98765431"

_DEMOGRAPHICS = f"""<RestingECG>
   <PatientDemographics>
      <PatientID>{PATIENT_ID}</PatientID>
      <PatientAge>57</PatientAge>
      <AgeUnits>YEARS</AgeUnits>
      <DateofBirth>02-13-1967</DateofBirth>
      <Gender>FEMALE</Gender>
      <PatientLastName>{NAME_LAST}</PatientLastName>
      <PatientFirstName>{NAME_FIRST}</PatientFirstName>
   </PatientDemographics>"""


@pytest.fixture()
def muse_with_phi(conformance_dir: Path, tmp_path: Path) -> Path:
    """A real MUSE file (braveheart example1, demographics stripped upstream) with a patient block put back."""
    text = (conformance_dir / "ge_muse_xml/braveheart/example1.xml").read_text(encoding="latin-1")
    assert text.count("<RestingECG>") == 1
    path = tmp_path / "patient ecg.xml"
    path.write_text(text.replace("<RestingECG>", _DEMOGRAPHICS), encoding="latin-1")
    return path


def _assert_no_phi(text: str) -> None:
    for secret in (NAME_LAST, NAME_FIRST, PATIENT_ID, "1967"):
        assert secret not in text


def test_inspect_file_report(muse_with_phi: Path) -> None:
    report = inspect_file(muse_with_phi)
    assert report["format"] == "ge_muse_xml"
    assert report["sampling_rate_hz"] == 500.0 and report["n_samples"] == 5000 and report["duration_s"] == 10.0
    assert report["stored_leads"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert report["derived_leads"] == ["III", "aVR", "aVL", "aVF"] and report["missing_leads"] == []
    assert report["median_beat"]["present"] is True
    assert report["qc"]["reliable"] is True
    assert report["sex"] == "F" and report["age"] == 57
    assert "phi" not in report
    _assert_no_phi(json.dumps(report) + format_inspection(report))
    with_phi = inspect_file(muse_with_phi, include_phi=True)
    assert with_phi["phi"]["patient_id"] == PATIENT_ID
    assert NAME_LAST in json.dumps(with_phi) and NAME_LAST in format_inspection(with_phi)


def test_cli_runner_json_and_summary(muse_with_phi: Path) -> None:
    from cardiacnets.edge.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(muse_with_phi), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "ge_muse_xml" and report["qc"]["reliable"] is True
    _assert_no_phi(result.output)
    summary = runner.invoke(app, ["inspect", str(muse_with_phi)])
    assert summary.exit_code == 0 and "derived leads   III, aVR, aVL, aVF" in summary.stdout
    _assert_no_phi(summary.output)
    shown = runner.invoke(app, ["inspect", str(muse_with_phi), "--include-phi"])
    assert shown.exit_code == 0 and PATIENT_ID in shown.stdout and NAME_LAST in shown.stdout


def test_cli_runner_bad_file_is_one_line_error(tmp_path: Path) -> None:
    from cardiacnets.edge.cli import app

    bad = tmp_path / "notes.xml"
    bad.write_text("<html><body>not an ECG</body></html>")
    result = CliRunner().invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 3  # the input could not be read
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
    assert "error:" in result.output and "html" in result.output


@pytest.mark.skipif(not CNSCREEN.exists(), reason="needs the installed cnscreen entry point in .venv")
def test_real_subprocess(muse_with_phi: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CNSCREEN), "inspect", *args], capture_output=True, text=True, timeout=120)

    plain = run(str(muse_with_phi), "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["n_samples"] == 5000
    _assert_no_phi(plain.stdout + plain.stderr)

    shown = run(str(muse_with_phi), "--include-phi")
    assert shown.returncode == 0 and NAME_LAST in shown.stdout and PATIENT_ID in shown.stdout

    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(muse_with_phi.read_bytes()[:3000])
    for bad in (truncated, tmp_path / "missing.xml", tmp_path):
        result = run(str(bad))
        assert result.returncode == 3, (bad, result.stdout, result.stderr)  # the input could not be read
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
        assert result.stderr.startswith("cnscreen: error:") and result.stdout == ""
        _assert_no_phi(result.stderr)
