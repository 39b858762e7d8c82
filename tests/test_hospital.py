"""FHIR R4 Bundles and DICOM SR documents of screening results (``cnscreen --fhir / --dicom-sr``, ``batch --format
fhir``): what is written reads back, with the standards' own libraries, as the same values; the DICOM input's study is
joined; patient identifiers appear only with ``--include-phi``. The external validators run in the hospital tier
(``tests/test_hospital_validation.py``, ``CNS_HOSPITAL=1``)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

from cardiacnets.edge.cli import app
from cardiacnets.edge.hospital import codes
from cardiacnets.edge.hospital.dicom_sr import dicom_sr, write_dicom_sr
from cardiacnets.edge.hospital.fhir import fhir_bundle, fhir_effective, fhir_json
from cardiacnets.edge.screen import Screener
from cardiacnets.io import read_ecg
from cardiacnets.measure import measure_ecg
from tests.hospital_helpers import fhir_values, phi_found, sr_values

DICOM_INPUT = "dicom_ecg/Example.dcm"
XML_INPUT = "philips_sierra_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml"


@pytest.fixture(scope="module")
def screened(conformance_dir: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``{relpath: (result with PHI, the file's PHI)}``, measurements included (the reader's ECG, measured)."""
    screener = Screener(device="cpu")
    out = {}
    for relpath in (DICOM_INPUT, XML_INPUT):
        path = conformance_dir / relpath
        result, _ = screener.screen_file(path, include_phi=True)
        record = read_ecg(path)
        result.setdefault("measurements", measure_ecg(record.signal, record.fs).as_dict())
        out[relpath] = (result, dict(record.meta.get("phi") or {}))
    return out


def _without_phi(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "patient"}


def _assert_same_values(back: dict[str, Any], result: dict[str, Any]) -> None:
    for disease, entry in result["diseases"].items():
        for key in ("probability", "threshold", "band", "decision"):
            assert back["diseases"][disease][key] == entry[key], (disease, key)
    assert set(back["phenotypes"]) == set(result["phenotypes"])
    for short, entry in result["phenotypes"].items():
        assert back["phenotypes"][short]["value"] == entry["value"], short
        assert back["phenotypes"][short]["interval"] == entry["interval"], short
    numbers = {k: v for k, v in result["measurements"].items() if v is not None and k not in ("rhythm", "paced")}
    assert numbers, "the test ECG should have measurable intervals"
    for key, value in numbers.items():
        assert back["measurements"][key] == pytest.approx(value), key


def test_fhir_bundle_reads_back_as_the_results_values(screened: dict) -> None:
    result, _ = screened[XML_INPUT]
    back = fhir_values(fhir_json(fhir_bundle(_without_phi(result))))
    _assert_same_values(back, result)
    assert back["measurements"].get("rhythm") == result["measurements"]["rhythm"]
    assert back["types"].count("RiskAssessment") == 5 and back["types"].count("DiagnosticReport") == 1
    assert {"Device", "Provenance"} <= set(back["types"]) and "Patient" not in back["types"]


def test_fhir_subject_is_anonymous_and_contained_without_phi(screened: dict) -> None:
    result, phi = screened[XML_INPUT]
    bundle = json.loads(fhir_json(fhir_bundle(result, include_phi=False)))
    text = json.dumps(bundle)
    assert phi and phi_found(text, phi) == []
    assert phi_found(fhir_json(fhir_bundle(result, include_phi=True)), phi) != []  # the scan can fail
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if "subject" in resource:
            assert resource["subject"] == {"reference": "#subject"}
            (patient,) = resource["contained"]
            assert set(patient) == {"resourceType", "id", "gender"}


def test_fhir_transaction_with_phi_posts_entries_and_creates_the_patient_once(screened: dict) -> None:
    result, phi = screened[XML_INPUT]
    bundle = json.loads(fhir_json(fhir_bundle(result, include_phi=True, transaction=True)))
    assert bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
    patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1
    assert patients[0]["resource"]["identifier"][0]["value"] == phi["patient_id"]
    assert patients[0]["request"]["ifNoneExist"] == f"identifier={phi['patient_id']}"
    subjects = {e["resource"]["subject"]["reference"] for e in bundle["entry"] if "subject" in e["resource"]}
    assert subjects == {patients[0]["fullUrl"]}


def test_every_project_code_and_extension_is_declared(screened: dict) -> None:
    result, _ = screened[DICOM_INPUT]
    text = fhir_json(fhir_bundle(result))
    declared = {c.code for c in codes.code_system().concept}
    used = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("system") == codes.CODE_SYSTEM_URL:
                used.add(node["code"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))
    assert used and used <= declared
    urls = {d.url for d in codes.extension_definitions()}
    assert set(re.findall(r'"url":"([^"]+/StructureDefinition/[^"]+)"', text)) <= urls


def test_fhir_times_carry_a_zone_or_only_a_date() -> None:
    assert fhir_effective("2002-11-22T09:10:00") == "2002-11-22"
    assert fhir_effective("2002-11-22T09:10:00+01:00") == "2002-11-22T09:10:00+01:00"
    assert fhir_effective(None) is None and fhir_effective("unknown") is None


def test_sr_reads_back_as_the_results_values_and_joins_the_source_study(
    screened: dict, conformance_dir: Path, tmp_path: Path
) -> None:
    result, phi = screened[DICOM_INPUT]
    path = tmp_path / "sr.dcm"
    write_dicom_sr(_without_phi(result), path)
    back = sr_values(path)
    _assert_same_values(back, result)
    source = pydicom.dcmread(conformance_dir / DICOM_INPUT, stop_before_pixels=True)
    sr = back["sr"]
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.SeriesInstanceUID != source.SeriesInstanceUID
    referenced = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert referenced.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sr.PatientID == "" and str(sr.PatientName) == "" and sr.PatientSex == source.PatientSex
    assert phi_found(path.read_bytes(), phi) == []
    with_phi = dicom_sr(result, include_phi=True)
    assert with_phi.PatientID == phi["patient_id"] == source.PatientID
    assert with_phi.StudyInstanceUID == source.StudyInstanceUID


def test_sr_of_a_non_dicom_input_opens_a_new_study(screened: dict) -> None:
    result, _ = screened[XML_INPUT]
    first, second = dicom_sr(_without_phi(result)), dicom_sr(_without_phi(result))
    assert first.StudyInstanceUID != second.StudyInstanceUID  # a new study each time, not a made-up shared one
    assert "CurrentRequestedProcedureEvidenceSequence" not in first  # no instance exists to reference
    assert first.PatientID == "" and first.StudyDate == result["record"]["acquired"][:10].replace("-", "")


def test_cli_writes_fhir_and_sr_and_refuses_a_lone_transaction_flag(conformance_dir: Path, tmp_path: Path) -> None:
    fhir, sr = tmp_path / "r.fhir.json", tmp_path / "r.dcm"
    args = ["screen", str(conformance_dir / DICOM_INPUT), "--fhir", str(fhir), "--fhir-transaction",
            "--dicom-sr", str(sr), "--json", "--device", "cpu"]  # fmt: skip
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert json.loads(fhir.read_text())["type"] == "transaction"
    assert pydicom.dcmread(sr).SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    lone = CliRunner().invoke(app, ["screen", str(conformance_dir / DICOM_INPUT), "--fhir-transaction"])
    assert lone.exit_code == 2


def test_batch_fhir_ndjson_has_one_resource_per_input_and_resumes(conformance_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "archive"
    source.mkdir()
    for relpath in (DICOM_INPUT, XML_INPUT):
        (source / Path(relpath).name).write_bytes((conformance_dir / relpath).read_bytes())
    (source / "broken.dcm").write_bytes(b"DICM" + b"\0" * 200)
    out = tmp_path / "results.ndjson"
    args = ["batch", str(source), "--out", str(out), "--format", "fhir", "--quiet", "--workers", "1", "--device", "cpu"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 3, first.output  # the broken file is an error line
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = sorted(line["resourceType"] for line in lines)
    assert kinds == ["Bundle", "Bundle", "OperationOutcome"]
    assert {line["id"] for line in lines} == {hashlib.sha256(str(p).encode()).hexdigest() for p in source.iterdir()}
    text = out.read_text()
    for relpath in (DICOM_INPUT, XML_INPUT):
        assert phi_found(text, read_ecg(conformance_dir / relpath).meta["phi"]) == []
    assert "3191723" not in text and "broken.dcm" not in text  # file names (which may hold IDs) stay out too
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 3 and out.read_text() == text  # resumed: nothing screened twice
