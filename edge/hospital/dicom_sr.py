"""A screening result as a DICOM Comprehensive SR document (``cnscreen FILE --dicom-sr``; ``docs/hospital-systems.md``).

The content tree follows TID 3700 (ECG Report) where it fits: language, observation context (the model as the device
observer), the source waveform (DICOM input), ECG global measurements (TID 3713: intervals, QTc, axes, heart rate,
with UCUM units), a qualitative analysis (rhythm, pacing), and a summary (TID 3719) holding each screened disease as a
finding (SNOMED CT) with its calibrated probability, threshold, band and decision, the out-of-distribution check and
signal QC; the 82 phenotypes are measurements with units and their conformal interval. Codes no standard provides are
the project's (:mod:`.codes`), under the private coding scheme :data:`PRIVATE_SCHEME`, declared in the header.

A DICOM ECG input: the SR joins its study (its Study Instance UID, date, time and ID) and references the source
instance; patient attributes are copied only with ``include_phi`` (else empty: type 2). Any other input: a new study,
anonymous patient attributes unless ``include_phi``. Built with ``highdicom``.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from typing import Any

from cardiacnets.edge.hospital import codes as project
from cardiacnets.measure.schema import MEASUREMENT_KEYS
from cardiacnets.targets import DISEASES, phenotypes

__all__ = ["PRIVATE_SCHEME", "dicom_sr", "valid_uid", "write_dicom_sr"]

PRIVATE_SCHEME = "99CNETS"
_TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
_SERIES_NUMBER = 9901  # far from the series numbers carts give

#: ``measurements`` key -> pydicom code dictionary entry (scheme, keyword) and UCUM unit.
_MEASUREMENT_CODES: dict[str, tuple[str, str, str]] = {
    "heart_rate_bpm": ("LN", "HeartRate", "/min"),
    "pr_ms": ("MDC", "PRIntervalGlobal", "ms"),
    "qrs_ms": ("MDC", "QRSDurationGlobal", "ms"),
    "qt_ms": ("MDC", "QTIntervalGlobal", "ms"),
    "qtc_bazett_ms": ("MDC", "QtcGlobalUsingBazettFormula", "ms"),
    "qtc_fridericia_ms": ("MDC", "QtcGlobalUsingFredericiaFormula", "ms"),
    "p_axis_deg": ("MDC", "PAxis", "deg"),
    "qrs_axis_deg": ("MDC", "QRSAxis", "deg"),
    "t_axis_deg": ("MDC", "TAxis", "deg"),
}
_RHYTHM_MDC = {
    "sinus": "SinusRhythm",
    "sinus bradycardia": "SinusBradycardia",
    "sinus tachycardia": "SinusTachycardia",
    "atrial fibrillation": "AtrialFibrillationRhythm",
}


def _standard(scheme: str, keyword: str) -> Any:
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    return CodedConcept.from_code(getattr(getattr(codes, scheme), keyword))


def _private(code: str) -> Any:
    from highdicom.sr import CodedConcept

    project.coding(code)  # refuses a code missing from the declared CodeSystem
    return CodedConcept(code, PRIVATE_SCHEME, project.concepts()[code])


def _unit(ucum: str, meaning: str | None = None) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(ucum, "UCUM", meaning or ucum)


def _num(name: Any, value: float, ucum: str, relationship: str = "CONTAINS", meaning: str | None = None) -> Any:
    from highdicom.sr import NumContentItem

    return NumContentItem(name=name, value=float(value), unit=_unit(ucum, meaning), relationship_type=relationship)


def _code(name: Any, value: Any, relationship: str = "CONTAINS") -> Any:
    from highdicom.sr import CodeContentItem

    return CodeContentItem(name=name, value=value, relationship_type=relationship)


def _text(name: Any, value: str, relationship: str = "CONTAINS") -> Any:
    from highdicom.sr import TextContentItem

    return TextContentItem(name=name, value=value[:1024], relationship_type=relationship)


def _container(name: Any, items: list[Any], template: str | None = None) -> Any:
    from highdicom.sr import ContainerContentItem

    container = ContainerContentItem(name=name, template_id=template, relationship_type="CONTAINS")
    container.ContentSequence = items
    return container


def _measurements(result: dict[str, Any]) -> list[Any]:
    """TID 3713 ECG Global Measurements and the rhythm/pacing statements (qualitative analysis)."""
    from highdicom.sr import CodedConcept

    measured = result.get("measurements") or {}
    numbers = [_num(_standard(scheme, keyword), measured[key], ucum)
               for key, (scheme, keyword, ucum) in _MEASUREMENT_CODES.items()
               if key in MEASUREMENT_KEYS and measured.get(key) is not None]  # fmt: skip
    items = [_container(_standard("DCM", "ECGGlobalMeasurements"), numbers, "3713")] if numbers else []
    statements = []
    rhythm = measured.get("rhythm")
    if rhythm is not None:
        keyword = _RHYTHM_MDC.get(str(rhythm))
        value = _standard("MDC", keyword) if keyword else _private(f"rhythm-{project.code_for(str(rhythm))}")
        statements.append(_code(CodedConcept("8884-9", "LN", "Heart rate rhythm"), value))
    if measured.get("paced") is not None:
        yes_no = _standard("SCT", "Yes") if measured["paced"] else _standard("SCT", "No")
        statements.append(_code(_private("paced"), yes_no))
    if statements:
        items.append(_container(_standard("DCM", "QualitativeAnalysis"), statements))
    return items


def _phenotypes(result: dict[str, Any]) -> list[Any]:
    """The 82 phenotypes as measurements with UCUM units, their conformal interval and how they were obtained."""
    from highdicom.sr import CodedConcept

    items = []
    for p in phenotypes():
        entry = (result.get("phenotypes") or {}).get(p.short)
        if entry is None or entry.get("value") is None:
            continue
        ucum = project.UCUM_UNITS[p.unit]
        loinc = project.PHENOTYPE_LOINC.get(p.short)
        name = CodedConcept(loinc[0], "LN", loinc[1]) if loinc else _private(project.phenotype_code(p.short))
        item = _num(name, entry["value"], ucum, meaning=p.unit)
        children = [_code(_standard("DCM", "Derivation"),
                          _private("model-derived" if entry.get("derived") else "model-estimate"),
                          "HAS CONCEPT MOD")]  # fmt: skip
        if entry.get("interval"):
            low, high = entry["interval"]
            children += [_num(_private("interval-low"), low, ucum, "HAS PROPERTIES", p.unit),
                         _num(_private("interval-high"), high, ucum, "HAS PROPERTIES", p.unit)]  # fmt: skip
        item.ContentSequence = children
        items.append(item)
    return [_container(_private("ecg-phenotypes"), items)] if items else []


def _finding(result: dict[str, Any], disease: str) -> Any:
    """One screened disease: a finding (SNOMED CT) with probability, threshold, band, operating point, decision."""
    from highdicom.sr import CodedConcept

    entry = result["diseases"][disease]
    snomed, name = project.DISEASE_SNOMED[disease]
    finding = _code(_standard("DCM", "Finding"), CodedConcept(snomed, "SCT", name))
    properties = [
        _num(_standard("DCM", "Probability"), entry["probability"], "1", "HAS PROPERTIES", "no units"),
        _num(_private("decision-threshold"), entry["threshold"], "1", "HAS PROPERTIES", "no units"),
        _code(
            _private("operating-point"), _private(project.code_for(entry["operating_point"]).lower()), "HAS PROPERTIES"
        ),  # fmt: skip
        _code(_private("screening-decision"), _private(entry["decision"]), "HAS PROPERTIES"),
    ]
    if entry.get("band"):
        low, high = entry["band"]
        properties[2:2] = [
            _num(_private("band-low"), low, "1", "HAS PROPERTIES", "no units"),
            _num(_private("band-high"), high, "1", "HAS PROPERTIES", "no units"),
        ]
    finding.ContentSequence = properties
    return finding


def _summary(result: dict[str, Any]) -> Any:
    """TID 3719-like summary: the findings, the out-of-distribution check, signal QC and the plain-words notes."""
    items = [_finding(result, d) for d in DISEASES]
    distribution = result.get("distribution")
    if distribution:
        ood = _code(
            _private("ood-check"),
            _private("in-distribution" if distribution["in_distribution"] else "out-of-distribution"),
        )
        ood.ContentSequence = [_num(_private("ood-score"), distribution["score"], "1", "HAS PROPERTIES", "no units"),
                               _num(_private("ood-threshold"), distribution["threshold"], "1", "HAS PROPERTIES",
                                    "no units")]  # fmt: skip
        items.append(ood)
    qc = result.get("qc") or {}
    items.append(_code(_private("signal-qc"), _private("qc-pass" if qc.get("reliable") else "qc-fail")))
    for finding in qc.get("findings") or []:
        lead = f"@{finding['lead']}" if finding.get("lead") else ""
        items.append(_text(_standard("DCM", "Comment"), f"QC {finding.get('severity')}: {finding.get('code')}{lead}:"
                           f" {finding.get('message')}"))  # fmt: skip
    for key in ("note", "note_trust", "note_ood", "note_qc"):
        if result.get(key):
            items.append(_text(_standard("DCM", "Comment"), str(result[key])))
    return _container(_standard("DCM", "Summary"), items, "3719")


def valid_uid(uid: str) -> bool:
    """Whether ``uid`` obeys the UI rules (PS3.5 9.1). A source instance whose UID does not is listed in the header's
    evidence as it is, but not referenced from the content tree, where DICOM toolkits refuse to read such an item."""
    return len(uid) <= 64 and re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*", uid) is not None


def _device_uid(digest: str) -> str:
    """A stable UID for the model bundle (2.25 form from its digest): the same bundle is the same device observer."""
    return "2.25." + str(int(hashlib.sha256(digest.encode()).hexdigest()[:32], 16))


def _content(result: dict[str, Any], source: dict[str, Any] | None) -> Any:
    """The TID 3700 root container."""
    from highdicom.sr import (
        CodedConcept,
        CompositeContentItem,
        ContainerContentItem,
        DeviceObserverIdentifyingAttributes,
        LanguageOfContentItemAndDescendants,
        ObservationContext,
        ObserverContext,
    )
    from highdicom.sr.templates import DEFAULT_LANGUAGE
    from pydicom.sr.codedict import codes

    model = result.get("model") or {}
    device = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=_device_uid(str(model.get("digest"))), name=str(model.get("name"))[:64],
            manufacturer_name="CardiacNets toolkit", model_name=str(model.get("version"))[:64]),
    )  # fmt: skip
    items: list[Any] = list(LanguageOfContentItemAndDescendants(DEFAULT_LANGUAGE))
    items += list(ObservationContext(observer_device_context=device))
    items += [_text(_standard("DCM", "AlgorithmName"), str(model.get("name"))),
              _text(_standard("DCM", "AlgorithmVersion"), str(model.get("version"))),
              _text(_private("model-digest"), str(model.get("digest")))]  # fmt: skip
    if source and valid_uid(source["sop_instance_uid"]):
        # COMPOSITE rather than WAVEFORM: highdicom 0.28 cannot read WAVEFORM items back; both are references.
        items.append(CompositeContentItem(name=_standard("DCM", "SourceOfMeasurement"),
                                          referenced_sop_class_uid=source["sop_class_uid"],
                                          referenced_sop_instance_uid=source["sop_instance_uid"],
                                          relationship_type="CONTAINS"))  # fmt: skip
    items += _measurements(result) + _phenotypes(result) + [_summary(result)]
    root = ContainerContentItem(name=CodedConcept("28010-7", "LN", "ECG Report"), template_id="3700")
    root.ContentSequence = items
    return root


def _dicom_date(iso: Any) -> tuple[str, str]:
    """``(DA, TM)`` from an ISO acquisition time (empty when unknown)."""
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?", str(iso or ""))
    if not match:
        return "", ""
    y, m, d, hh, mm, ss = match.groups()
    return f"{y}{m}{d}", (f"{hh}{mm}{ss or '00'}" if hh else "")


def _evidence(result: dict[str, Any], source: dict[str, Any] | None, include_phi: bool) -> Any:
    """The dataset highdicom takes patient and study attributes from: the source ECG's identity (DICOM input), or a
    new study; patient identifiers only with ``include_phi``."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    record = result.get("record") or {}
    patient = (result.get("patient") or {}) if include_phi else {}
    date, time = _dicom_date(record.get("acquired"))
    ds = Dataset()
    if source:
        ds.SOPClassUID, ds.SOPInstanceUID = source["sop_class_uid"], source["sop_instance_uid"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = source["study_instance_uid"], source["series_instance_uid"]
        ds.StudyDate, ds.StudyTime = source.get("study_date") or date, source.get("study_time") or time
        ds.StudyID = source.get("study_id") or ""
    else:
        ds.SOPClassUID, ds.SOPInstanceUID = _TWELVE_LEAD_ECG, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.StudyDate, ds.StudyTime, ds.StudyID = date, time, ""
    ds.PatientID = str(patient.get("patient_id") or "")[:64]
    ds.PatientName = str(patient.get("name") or "")[:64]
    birth = re.sub(r"\D", "", str(patient.get("birth_date") or ""))
    ds.PatientBirthDate = birth if len(birth) == 8 else ""
    ds.PatientSex = {"M": "M", "F": "F"}.get(str(record.get("sex") or "").upper()[:1], "")
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    return ds


def dicom_sr(result: dict[str, Any], *, include_phi: bool = False) -> Any:
    """The Comprehensive SR (a ``highdicom.sr.ComprehensiveSR``, a pydicom Dataset) of a screening result.

    ``result["record"]["dicom"]`` (set by the DICOM reader) makes it join the source's study and reference the source
    instance; ``include_phi`` copies ``result["patient"]`` into the patient attributes.
    """
    source = (result.get("record") or {}).get("dicom")
    source = (
        source
        if source
        and all(
            source.get(k) for k in ("sop_instance_uid", "study_instance_uid", "series_instance_uid", "sop_class_uid")
        )
        else None
    )
    model = result.get("model") or {}
    with warnings.catch_warnings():
        # pydicom warns about source UIDs that break the UI rules (copied as they are: they name the source's study)
        warnings.simplefilter("ignore", UserWarning)
        return _build(result, source, include_phi, model)


def _build(result: dict[str, Any], source: dict[str, Any] | None, include_phi: bool, model: dict[str, Any]) -> Any:
    from highdicom.coding_schemes import CodingSchemeIdentificationItem
    from highdicom.sr import ComprehensiveSR
    from pydicom.uid import generate_uid

    scheme = CodingSchemeIdentificationItem(designator=PRIVATE_SCHEME, name="CardiacNets screening codes",
                                            responsible_organization="CardiacNets toolkit")  # fmt: skip
    sr = ComprehensiveSR(
        evidence=[_evidence(result, source, include_phi)],
        content=_content(result, source),
        series_instance_uid=generate_uid(),
        series_number=_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="CardiacNets toolkit",
        is_complete=True,
        is_final=bool(result.get("reliable")),
        series_description="CardiacNets ECG screening",
        manufacturer_model_name=str(model.get("name"))[:64],
        software_versions=str(model.get("version"))[:64],
        coding_schemes=[scheme],
    )
    if not source:  # the new study has no instance to point to: drop highdicom's reference to its stand-in
        for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
            if keyword in sr:
                delattr(sr, keyword)
    return sr


def write_dicom_sr(result: dict[str, Any], path: Any, *, include_phi: bool = False) -> None:
    """Write :func:`dicom_sr` of ``result`` to ``path`` (DICOM Part 10 file)."""
    sr = dicom_sr(result, include_phi=include_phi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # as in dicom_sr: source UIDs are written as they are
        sr.save_as(path, enforce_file_format=True)
