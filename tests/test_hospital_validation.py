"""Hospital tier (``CNS_HOSPITAL=1``; ``.ci/run`` sets it): every readable file of the conformance corpus is screened
and written as FHIR (a collection without patient identifiers, a transaction with them) and as DICOM SR, and the
standards' validators judge the outputs: HL7's FHIR R4 JSON schema, HAPI FHIR's R4 validator where Maven can provide
it, dciodvfy (dicom3tools) and dsrdump (DCMTK). Patient names and IDs must not appear without ``--include-phi``.

``CNS_HOSPITAL_REPORT=FILE`` writes the errors and warnings per file as JSON. How to run: ``docs/hospital-systems.md``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest

from cardiacnets.edge.hospital import codes
from cardiacnets.edge.hospital.dicom_sr import valid_uid, write_dicom_sr
from cardiacnets.edge.hospital.fhir import fhir_bundle, fhir_json
from cardiacnets.edge.screen import Screener
from cardiacnets.errors import CardiacNetsError
from cardiacnets.io import read_ecg
from cardiacnets.measure import measure_ecg
from tests.hospital_helpers import (
    dciodvfy,
    dicom_tools_available,
    hapi_validate,
    invalid_source_values,
    phi_found,
    private_scheme_warning,
    r4_schema_path,
    schema_errors,
)

pytestmark = pytest.mark.skipif(os.environ.get("CNS_HOSPITAL") != "1", reason="hospital tier: set CNS_HOSPITAL=1")


def _name(relpath: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", relpath)


@pytest.fixture(scope="module")
def corpus_outputs(conformance_dir: Path, conformance_expected: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per readable corpus file: its result, PHI and the paths of the FHIR and SR outputs (with and without PHI)."""
    out_dir = tmp_path_factory.mktemp("hospital")
    screener = Screener(device="cpu")
    files: dict[str, Any] = {}
    unreadable: dict[str, str] = {}
    for relpath in sorted(conformance_expected["files"]):
        path = conformance_dir / relpath
        try:
            result, _ = screener.screen_file(path, include_phi=True)
            record = read_ecg(path)
        except CardiacNetsError as exc:
            unreadable[relpath] = str(exc)
            continue
        result.setdefault("measurements", measure_ecg(record.signal, record.fs).as_dict())
        anonymous = {k: v for k, v in result.items() if k != "patient"}
        stem = out_dir / _name(relpath)
        entry = {"result": result, "phi": dict(record.meta.get("phi") or {}), "source": path,
                 "fhir": stem.with_suffix(".fhir.json"), "fhir_phi": stem.with_suffix(".phi.fhir.json"),
                 "sr": stem.with_suffix(".sr.dcm"), "sr_phi": None}  # fmt: skip
        entry["fhir"].write_text(fhir_json(fhir_bundle(anonymous)))
        entry["fhir_phi"].write_text(fhir_json(fhir_bundle(result, include_phi=True, transaction=True)))
        write_dicom_sr(anonymous, entry["sr"])
        if (result["record"].get("dicom") or relpath.startswith("philips_sierra_xml/3191723")) and entry["phi"]:
            entry["sr_phi"] = stem.with_suffix(".phi.sr.dcm")
            write_dicom_sr(result, entry["sr_phi"], include_phi=True)
        files[relpath] = entry
    definitions = out_dir / "definitions"
    definitions.mkdir()
    for resource in [codes.code_system(), *codes.extension_definitions()]:
        (definitions / f"{resource.get_resource_type()}-{resource.id}.json").write_text(resource.model_dump_json())
    report: dict[str, Any] = {"unreadable": unreadable, "files": {r: {} for r in files}}
    yield {"files": files, "definitions": definitions, "report": report}
    if os.environ.get("CNS_HOSPITAL_REPORT"):
        Path(os.environ["CNS_HOSPITAL_REPORT"]).write_text(json.dumps(report, indent=1, default=str))


def test_every_readable_corpus_file_is_covered(corpus_outputs: dict, conformance_expected: dict) -> None:
    covered = set(corpus_outputs["files"])
    assert len(covered) >= len(conformance_expected["files"]) - len(corpus_outputs["report"]["unreadable"])
    assert len(covered) >= 20, f"only {len(covered)} corpus files were screened: {corpus_outputs['report']}"


def test_fhir_outputs_pass_hl7_r4_json_schema(corpus_outputs: dict) -> None:
    if r4_schema_path() is None:
        pytest.skip("HL7's R4 JSON schema could not be fetched (scripts/fhir_validator.sh schema)")
    failures = {}
    for relpath, entry in corpus_outputs["files"].items():
        errors = []
        for key in ("fhir", "fhir_phi"):
            errors += schema_errors(json.loads(entry[key].read_text()))
        corpus_outputs["report"]["files"][relpath]["fhir_schema_errors"] = len(errors)
        if errors:
            failures[relpath] = errors[:5]
    assert failures == {}
    broken = json.loads(next(iter(corpus_outputs["files"].values()))["fhir"].read_text())
    broken["entry"][0]["resource"]["status"] = "done"  # the check can fail: a code outside its required value set
    broken["entry"][1]["resource"]["valueQuantity"] = {"value": "72"}
    assert len(schema_errors(broken)) >= 2


def test_fhir_outputs_pass_the_hapi_r4_validator(corpus_outputs: dict) -> None:
    files = [entry[key] for entry in corpus_outputs["files"].values() for key in ("fhir", "fhir_phi")]
    code, lines = hapi_validate(files, corpus_outputs["definitions"])
    if code == 3:
        pytest.skip("HAPI FHIR validator unavailable here: " + " ".join(lines)[:300])
    errors = [line for line in lines if "\terror\t" in line or "\tfatal\t" in line]
    for relpath, entry in corpus_outputs["files"].items():
        mine = [line for line in lines if line.startswith((str(entry["fhir"]), str(entry["fhir_phi"])))]
        corpus_outputs["report"]["files"][relpath]["hapi_errors"] = sum(line in errors for line in mine)
        corpus_outputs["report"]["files"][relpath]["hapi_warnings"] = sum("\twarning\t" in line for line in mine)
    assert code == 0 and errors == []


def test_dicom_sr_outputs_pass_dciodvfy_and_dsrdump(corpus_outputs: dict) -> None:
    import subprocess

    if not dicom_tools_available():
        pytest.skip("dciodvfy (dicom3tools) and dsrdump (dcmtk) are not installed: CNS_INSTALL_HOSPITAL=1 install.sh")
    failures = {}
    for relpath, entry in corpus_outputs["files"].items():
        # Values copied from the source to join its study: where the source itself breaks a VR rule, so does the copy.
        inherited = invalid_source_values(entry["source"]) if entry["result"]["record"].get("dicom") else set()
        report = corpus_outputs["report"]["files"][relpath]
        for key in ("sr", "sr_phi"):
            if entry[key] is None:
                continue
            errors, warnings = dciodvfy(entry[key])
            own = [e for e in errors if not any(f"<{v}>" in e for v in inherited) and "invalid data values" not in e]
            if len(own) < len(errors):
                assert inherited, errors
            report[f"{key}_dciodvfy_errors"] = len(own)
            report[f"{key}_dciodvfy_errors_inherited_from_source"] = len(errors) - len(own)
            report[f"{key}_dciodvfy_warnings"] = sorted({w for w in warnings if not private_scheme_warning(w)})
            report[f"{key}_dciodvfy_private_scheme_warnings"] = sum(map(private_scheme_warning, warnings))
            dump = subprocess.run(["dsrdump", str(entry[key])], capture_output=True, text=True)
            report[f"{key}_dsrdump_warnings"] = [line for line in dump.stderr.splitlines() if line.startswith("W:")]
            if own or dump.returncode != 0 or '"ECG Report"' not in dump.stdout or "Probability" not in dump.stdout:
                failures[f"{relpath} {key}"] = own[:5] + [dump.stderr[:300]]
    assert failures == {}


def test_dciodvfy_reports_a_broken_sr(corpus_outputs: dict, tmp_path: Path) -> None:
    if not dicom_tools_available():
        pytest.skip("dciodvfy is not installed")
    entry = next(iter(corpus_outputs["files"].values()))
    ds = pydicom.dcmread(entry["sr"])
    del ds.ContentSequence  # a Comprehensive SR without content
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    assert dciodvfy(broken)[0]


def test_outputs_without_include_phi_hold_no_patient_name_or_id(corpus_outputs: dict) -> None:
    leaks, controls = {}, 0
    for relpath, entry in corpus_outputs["files"].items():
        if not entry["phi"]:
            continue
        found = phi_found(entry["fhir"].read_text(), entry["phi"]) + phi_found(entry["sr"].read_bytes(), entry["phi"])
        if found:
            leaks[relpath] = found
        controls += bool(phi_found(entry["fhir_phi"].read_text(), entry["phi"]))  # the scan finds them when asked
    assert leaks == {}
    assert controls >= 10  # the scan finds the identifiers in the outputs made with --include-phi


def test_dicom_inputs_share_the_source_study(corpus_outputs: dict) -> None:
    dicom = {r: e for r, e in corpus_outputs["files"].items() if e["result"]["record"].get("dicom")}
    assert len(dicom) == 2
    checked_content = 0
    for entry in dicom.values():
        source = pydicom.dcmread(entry["source"], stop_before_pixels=True)
        for key in ("sr", "sr_phi"):
            sr = pydicom.dcmread(entry[key])
            assert sr.StudyInstanceUID == source.StudyInstanceUID
            evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
            assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert pydicom.dcmread(entry["sr_phi"]).PatientID == source.PatientID
        content = pydicom.dcmread(entry["sr"]).ContentSequence
        references = [
            i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in content if i.ValueType == "COMPOSITE"
        ]
        # referenced from the content too, unless the source's UID breaks the UI rules (then DCMTK cannot read it)
        assert references == ([source.SOPInstanceUID] if valid_uid(source.SOPInstanceUID) else [])
        checked_content += valid_uid(source.SOPInstanceUID)
    assert checked_content == 1  # waveform_ecg.dcm; Example.dcm's UIDs have empty components
