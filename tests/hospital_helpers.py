"""Reading our hospital outputs back with the standards' libraries (fhir.resources, highdicom), for round-trip tests,
and the external validators of the hospital tier (HL7's R4 JSON schema, HAPI, dciodvfy, dsrdump)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from cardiacnets.edge.hospital import codes
from cardiacnets.edge.hospital.dicom_sr import PRIVATE_SCHEME
from cardiacnets.targets import DISEASES, phenotypes

REPO = Path(__file__).resolve().parents[1]
_PHENOTYPE_BY_CODE = {codes.phenotype_code(p.short): p.short for p in phenotypes()}
_PHENOTYPE_BY_CODE.update({loinc: short for short, (loinc, _) in codes.PHENOTYPE_LOINC.items()})
_MEASUREMENT_BY_LOINC = {loinc: key for key, (loinc, *_rest) in codes.MEASUREMENT_LOINC.items()}


def fhir_values(text: str) -> dict[str, Any]:
    """Disease risks, phenotypes and measurements of a Bundle, parsed back with ``fhir.resources``."""
    from fhir.resources.R4B.bundle import Bundle

    out: dict[str, Any] = {"diseases": {}, "phenotypes": {}, "measurements": {}, "types": []}
    for entry in Bundle.model_validate_json(text).entry:
        resource = entry.resource
        kind = resource.get_resource_type()
        out["types"].append(kind)
        if kind == "RiskAssessment":
            prediction = resource.prediction[0]
            disease = next(c.code for c in prediction.outcome.coding if c.system == codes.CODE_SYSTEM_URL)
            ext = {e.url.rsplit("/", 1)[1]: e for e in prediction.extension}
            band = ext.get("indeterminate-band")
            out["diseases"][disease] = {
                "probability": float(prediction.probabilityDecimal),
                "decision": prediction.qualitativeRisk.coding[0].code,
                "threshold": float(ext["decision-threshold"].valueDecimal),
                "band": [float(band.valueRange.low.value), float(band.valueRange.high.value)] if band else None,
                "probability_uncalibrated": float(ext["probability-uncalibrated"].valueDecimal),
            }
        elif kind == "Observation":
            _observation_values(resource, out)
    return out


def _observation_values(resource: Any, out: dict[str, Any]) -> None:
    code_values = [c.code for c in resource.code.coding]
    short = next((_PHENOTYPE_BY_CODE[c] for c in code_values if c in _PHENOTYPE_BY_CODE), None)
    if short is not None:
        interval = None
        for component in resource.component or []:
            if component.code.coding[0].code == "conformal-interval":
                interval = [float(component.valueRange.low.value), float(component.valueRange.high.value)]
        out["phenotypes"][short] = {"value": float(resource.valueQuantity.value), "interval": interval,
                                    "unit": resource.valueQuantity.code}  # fmt: skip
        return
    key = next((_MEASUREMENT_BY_LOINC[c] for c in code_values if c in _MEASUREMENT_BY_LOINC), None)
    if key == "rhythm":
        out["measurements"][key] = resource.valueCodeableConcept.text
    elif key is not None:
        out["measurements"][key] = float(resource.valueQuantity.value)
    elif code_values == ["paced"]:
        out["measurements"]["paced"] = bool(resource.valueBoolean)


def sr_values(path: Path) -> dict[str, Any]:
    """Disease findings, phenotypes and measurements of our SR, read back with highdicom."""
    import highdicom as hd

    sr = hd.sr.srread(path)
    out: dict[str, Any] = {"diseases": {}, "phenotypes": {}, "measurements": {}, "sr": sr}
    snomed = {code: disease for disease, (code, _) in codes.DISEASE_SNOMED.items()}
    measurement_names = {
        "Heart rate": "heart_rate_bpm", "PR interval global": "pr_ms", "QRS duration global": "qrs_ms",
        "QT interval global": "qt_ms", "QTc global using Bazett formula": "qtc_bazett_ms",
        "QTc global using Fredericia formula": "qtc_fridericia_ms", "P Axis": "p_axis_deg", "QRS axis": "qrs_axis_deg",
        "T axis": "t_axis_deg",
    }  # fmt: skip
    for container in sr.content[0].ContentSequence:  # the TID 3700 root's children
        name = container.name.meaning
        children = list(getattr(container, "ContentSequence", []) or [])
        if name == "ECG Global Measurements":
            for item in children:
                out["measurements"][measurement_names[item.name.meaning]] = float(item.value)
        elif container.name.value == "ecg-phenotypes":
            for item in children:
                props = {c.name.value: c for c in getattr(item, "ContentSequence", []) or []}
                interval = [float(props["interval-low"].value), float(props["interval-high"].value)] if (
                    "interval-low" in props) else None  # fmt: skip
                out["phenotypes"][_PHENOTYPE_BY_CODE[item.name.value]] = {"value": float(item.value),
                                                                          "interval": interval}  # fmt: skip
        elif name == "Summary":
            for item in children:
                if item.name.meaning == "Finding" and item.value.value in snomed:
                    props = {c.name.value: c for c in item.ContentSequence}
                    band = [float(props["band-low"].value), float(props["band-high"].value)] if (
                        "band-low" in props) else None  # fmt: skip
                    out["diseases"][snomed[item.value.value]] = {
                        "probability": float(props["122157"].value),  # (122157, DCM, "Probability")
                        "threshold": float(props["decision-threshold"].value),
                        "decision": props["screening-decision"].value.value,
                        "band": band,
                    }
    assert set(out["diseases"]) <= set(DISEASES)
    return out


# --- validators ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def r4_schema_path() -> Path | None:
    """HL7's FHIR R4 JSON schema (fetched by scripts/fhir_validator.sh), or None when it cannot be had."""
    run = subprocess.run(["bash", str(REPO / "scripts/fhir_validator.sh"), "schema"], capture_output=True, text=True)
    return Path(run.stdout.strip()) if run.returncode == 0 and run.stdout.strip() else None


@lru_cache(maxsize=1)
def _schema_validators() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = json.loads(r4_schema_path().read_text())
    return schema, {}


def schema_errors(resource: dict[str, Any], where: str = "") -> list[str]:
    """Errors of a resource against HL7's R4 JSON schema. The schema's ``ResourceList`` is a ``oneOf`` over every
    resource type, fixed by ``resourceType``; the Bundle's entries and contained resources are validated against
    their own type (the one alternative that can match) instead, which is the same check and 500 times faster."""
    import jsonschema

    schema, validators = _schema_validators()
    resource = copy.deepcopy(resource)
    where = where or resource.get("resourceType", "?")
    errors: list[str] = []
    for i, contained in enumerate(resource.pop("contained", None) or []):
        errors += schema_errors(contained, f"{where}.contained[{i}]")
    for i, entry in enumerate(resource.get("entry") or [] if resource.get("resourceType") == "Bundle" else []):
        if "resource" in entry:
            errors += schema_errors(entry.pop("resource"), f"{where}.entry[{i}].resource")
    kind = resource.get("resourceType")
    if kind not in schema["definitions"]:
        return errors + [f"{where}: unknown resourceType {kind!r}"]
    if kind not in validators:
        validators[kind] = jsonschema.Draft6Validator(
            {"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]}
        )
    for error in validators[kind].iter_errors(resource):
        errors.append(f"{where}.{'.'.join(map(str, error.absolute_path))}: {error.message[:300]}")
    return errors


def hapi_validate(files: list[Path], definitions: Path) -> tuple[int, list[str]]:
    """``(exit code, message lines)`` of the HAPI R4 validator (exit 3: not available)."""
    run = subprocess.run(["bash", str(REPO / "scripts/fhir_validator.sh"), "hapi", "--definitions", str(definitions),
                          *map(str, files)], capture_output=True, text=True)  # fmt: skip
    return run.returncode, [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def dicom_tools_available() -> bool:
    return shutil.which("dciodvfy") is not None and shutil.which("dsrdump") is not None


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` that dciodvfy reports for a DICOM file."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    lines = (run.stdout + run.stderr).splitlines()
    return [x for x in lines if re.match(r"^(Error|Abort)", x)], [x for x in lines if x.startswith("Warning")]


def invalid_source_values(source: Path) -> set[str]:
    """Values that dciodvfy calls invalid in a source DICOM file itself (a SR that joins its study must copy them)."""
    errors, _ = dciodvfy(source)
    return {m.group(1) for e in errors if (m := re.search(r"Value invalid for this VR .* = <([^>]*)>", e))}


def private_scheme_warning(line: str) -> bool:
    return f"<{PRIVATE_SCHEME}>" in line


#: Shorter identifiers (``ukbb_scrubbed.xml`` has patient ID ``1``) cannot be told from the numbers of any output.
MIN_SCANNED_LENGTH = 3


def phi_found(text: str | bytes, phi: dict[str, Any]) -> list[str]:
    """The file's patient name and ID wherever they stand as themselves in an output (an ID of digits inside a longer
    number, ``9999`` in ``0.9999``, is not one); values shorter than :data:`MIN_SCANNED_LENGTH` are not scanned."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    found = []
    for key in ("patient_id", "name"):
        value = str(phi.get(key) or "").strip()
        if len(value) >= MIN_SCANNED_LENGTH and re.search(rf"(?<![0-9A-Za-z.]){re.escape(value)}(?![0-9A-Za-z])", text):
            found.append(f"{key}={value}")
    return found
