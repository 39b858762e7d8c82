"""A screening result as a FHIR R4 Bundle (``cnscreen FILE --fhir``; ``docs/hospital-systems.md``).

The Bundle (type ``collection``, or ``transaction`` for posting to a server) holds a DiagnosticReport for the
screening; one RiskAssessment per disease (calibrated probability, decision, threshold with its uncertainty band and
operating point, the out-of-distribution and QC Observations as its basis, the model as its performer); an
Observation per phenotype (UCUM units, the split-conformal interval as a ``Range`` component, the healthy reference
range of the key phenotypes as ``referenceRange``); an Observation per ECG measurement (LOINC); the
out-of-distribution check, the signal QC and, when shown, the cardiomyopathy subtype probabilities; a Device for the
model bundle (name, version, digest) and a Provenance. Resources are built with ``fhir.resources``.

Patient identifiers appear only with ``include_phi``: then a Patient entry (the file's patient ID as an identifier)
is the subject. Otherwise every resource holds a contained, anonymous Patient (sex only) as its subject.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from cardiacnets.edge.hospital import codes
from cardiacnets.edge.hospital.codes import coding
from cardiacnets.measure.schema import MEASUREMENT_KEYS
from cardiacnets.targets import DISEASES, SUBTYPES, phenotypes

__all__ = ["fhir_bundle", "fhir_json"]

_ANONYMOUS = "#subject"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def fhir_effective(acquired: Any) -> str | None:
    """A FHIR dateTime for the acquisition time. Files store local time without an offset; FHIR requires an offset
    whenever a time is given, so such a time is reduced to its date rather than given an invented zone."""
    if not isinstance(acquired, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", acquired):
        return None
    if re.search(r"T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$", acquired):
        return acquired
    return acquired[:10]


def _quantity(value: float, ucum: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or ucum, "system": codes.UCUM, "code": ucum}


def _concept(*codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": list(codings)}
    if text:
        out["text"] = text
    return out


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [_concept({"system": codes.OBSERVATION_CATEGORY, "code": code, "display": display})]


class _Assembler:
    """Collects the entries of one Bundle: each resource gets a ``urn:uuid`` full URL, the shared subject and the
    effective time, and is listed for the Provenance."""

    def __init__(self, result: dict[str, Any], include_phi: bool, uuid_factory: Callable[[], str]) -> None:
        self.result = result
        self.new_url = lambda: f"urn:uuid:{uuid_factory()}"
        self.entries: list[tuple[str, Any]] = []
        self.status = "final" if result.get("reliable") else "preliminary"
        self.effective = fhir_effective((result.get("record") or {}).get("acquired"))
        self.sex = {"M": "male", "F": "female"}.get(str((result.get("record") or {}).get("sex") or "").upper()[:1])
        self.patient = (result.get("patient") or {}) if include_phi else {}
        self.patient_url = self.new_url() if self.patient.get("patient_id") else None
        self.device_url = self.new_url()

    def subject(self) -> dict[str, Any]:
        """``{"subject": ..., "contained": [...]}`` for a resource: the Patient entry, or a contained anonymous one."""
        from fhir.resources.R4B.patient import Patient

        if self.patient_url:
            return {"subject": {"reference": self.patient_url}}
        anonymous = Patient(id=_ANONYMOUS[1:], gender=self.sex or "unknown")
        return {"subject": {"reference": _ANONYMOUS}, "contained": [anonymous]}

    def add(self, resource: Any, url: str | None = None) -> str:
        url = url or self.new_url()
        self.entries.append((url, resource))
        return url

    def observation(self, **fields: Any) -> str:
        from fhir.resources.R4B.observation import Observation

        extra = {"effectiveDateTime": self.effective} if self.effective else {}
        return self.add(Observation(status=self.status, device={"reference": self.device_url}, **self.subject(),
                                    **extra, **fields))  # fmt: skip


def fhir_bundle(
    result: dict[str, Any],
    *,
    include_phi: bool = False,
    transaction: bool = False,
    identifier: str | None = None,
    uuid_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Any:
    """The FHIR R4 Bundle of a screening result (a ``fhir.resources`` model; :func:`fhir_json` serialises it).

    ``include_phi``: a Patient entry from ``result["patient"]`` is the subject (only present in results made with
    ``include_phi``). ``transaction``: a transaction Bundle (POST entries; the Patient created only if no Patient
    has its identifier). ``identifier``: the Bundle's identifier value (``cnscreen batch`` gives the SHA-256 of the
    input's key, never the path, which may hold a name).
    """
    from fhir.resources.R4B.bundle import Bundle

    assembler = _Assembler(result, include_phi, uuid_factory)
    report_url = assembler.new_url()
    basis = [ref for ref in (_ood_observation(assembler), _qc_observation(assembler)) if ref]
    results = [*_measurement_observations(assembler), *_phenotype_observations(assembler), *basis]
    subtype = _subtype_observation(assembler)
    results += [subtype] if subtype else []
    for disease in DISEASES:
        _risk_assessment(assembler, disease, basis, report_url)
    assembler.add(_diagnostic_report(assembler, results), report_url)
    assembler.add(_device(result), assembler.device_url)
    targets = [url for url, _ in assembler.entries]
    assembler.add(_provenance(assembler, targets, include_phi))
    entries = [_entry(url, resource, transaction) for url, resource in assembler.entries]
    if assembler.patient_url:
        entries.append(_entry(assembler.patient_url, _patient(assembler), transaction))
    bundle = {"type": "transaction" if transaction else "collection", "entry": entries}
    if not transaction:
        bundle["timestamp"] = _now()
    if identifier:
        bundle["identifier"] = {"system": codes.INPUT_KEY_SYSTEM, "value": identifier}
    return Bundle(**bundle)


def fhir_json(bundle: Any, *, indent: int | None = None) -> str:
    """The Bundle as FHIR JSON (one line unless ``indent``)."""
    return bundle.model_dump_json(indent=indent)


def _entry(url: str, resource: Any, transaction: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": url, "resource": resource}
    if transaction:
        request = {"method": "POST", "url": resource.get_resource_type()}
        if resource.get_resource_type() == "Patient" and resource.identifier:
            request["ifNoneExist"] = f"identifier={resource.identifier[0].value}"
        entry["request"] = request
    return entry


def _measurement_observations(a: _Assembler) -> list[str]:
    """One Observation per measured ECG quantity (LOINC); the rhythm as a coded value, pacing as a boolean."""
    measured = a.result.get("measurements") or {}
    urls = []
    for key in MEASUREMENT_KEYS:
        value = measured.get(key)
        if value is None:
            continue
        if key == "paced":
            urls.append(a.observation(category=_category("procedure", "Procedure"),
                                      code=_concept(coding("paced")), valueBoolean=bool(value)))  # fmt: skip
            continue
        loinc, name, ucum, unit = codes.MEASUREMENT_LOINC[key]
        code = _concept({"system": codes.LOINC, "code": loinc, "display": name}, text=name)
        if key == "rhythm":
            rhythm = f"rhythm-{codes.code_for(str(value))}"
            value_field = {"valueCodeableConcept": _concept(coding(rhythm), text=str(value))}
        else:
            value_field = {"valueQuantity": _quantity(float(value), ucum or "1", unit)}
        category = ("vital-signs", "Vital Signs") if key == "heart_rate_bpm" else ("procedure", "Procedure")
        urls.append(a.observation(category=_category(*category), code=code, **value_field))
    return urls


def _phenotype_observations(a: _Assembler) -> list[str]:
    """One Observation per reported phenotype: value in UCUM, conformal interval, reference range of key ones."""
    coverage = (a.result.get("model") or {}).get("interval_coverage")
    key = a.result.get("key_phenotypes") or {}
    urls = []
    for p in phenotypes():
        entry = (a.result.get("phenotypes") or {}).get(p.short)
        if entry is None or entry.get("value") is None:
            continue
        ucum = codes.UCUM_UNITS[p.unit]
        loinc = codes.PHENOTYPE_LOINC.get(p.short)
        codings = [{"system": codes.LOINC, "code": loinc[0], "display": loinc[1]}] if loinc else []
        fields: dict[str, Any] = {
            "category": _category("imaging", "Imaging"),
            "code": _concept(*codings, coding(codes.phenotype_code(p.short)), text=p.name),
            "valueQuantity": _quantity(entry["value"], ucum, p.unit),
            "method": _concept(coding("model-derived" if entry.get("derived") else "model-estimate")),
        }
        if entry.get("interval"):
            low, high = entry["interval"]
            label = "Split-conformal prediction interval" + (f", {coverage:.0%} nominal coverage" if coverage else "")
            fields["component"] = [{"code": _concept(coding("conformal-interval"), text=label),
                                    "valueRange": {"low": _quantity(low, ucum, p.unit),
                                                   "high": _quantity(high, ucum, p.unit)}}]  # fmt: skip
        reference = (key.get(p.short) or {}).get("reference_range")
        if reference:
            low, high = reference
            fields["referenceRange"] = [{"low": _quantity(low, ucum, p.unit), "high": _quantity(high, ucum, p.unit),
                                         "text": "Healthy UK Biobank range for the recorded sex"}]  # fmt: skip
            flag = "L" if entry["value"] < low else "H" if entry["value"] > high else "N"
            names = {"L": "Low", "H": "High", "N": "Normal"}
            fields["interpretation"] = [_concept({"system": codes.INTERPRETATION, "code": flag,
                                                  "display": names[flag]})]  # fmt: skip
        urls.append(a.observation(**fields))
    return urls


def _ood_observation(a: _Assembler) -> str | None:
    distribution = a.result.get("distribution")
    if not distribution:
        return None
    verdict = "in-distribution" if distribution["in_distribution"] else "out-of-distribution"
    components = [
        {"code": _concept(coding("ood-score")), "valueQuantity": _quantity(distribution["score"], "1")},
        {"code": _concept(coding("ood-threshold")), "valueQuantity": _quantity(distribution["threshold"], "1")},
    ]
    for view, score in sorted((distribution.get("views") or {}).items()):
        if f"ood-view-{view}" in codes.concepts() and score is not None:
            components.append({"code": _concept(coding(f"ood-view-{view}")), "valueQuantity": _quantity(score, "1")})
    reasons = "; ".join(distribution.get("reasons") or [])
    extra = {"note": [{"text": reasons}]} if reasons else {}
    return a.observation(code=_concept(coding("ood-check")), valueCodeableConcept=_concept(coding(verdict)),
                         component=components, **extra)  # fmt: skip


def _qc_observation(a: _Assembler) -> str:
    qc = a.result.get("qc") or {}
    verdict = "qc-pass" if qc.get("reliable") else "qc-fail"
    findings = [f"{f.get('severity')}: {f.get('code')}{'@' + f['lead'] if f.get('lead') else ''}: {f.get('message')}"
                for f in qc.get("findings") or []]  # fmt: skip
    extra = {"note": [{"text": line} for line in findings]} if findings else {}
    return a.observation(code=_concept(coding("signal-qc")), valueCodeableConcept=_concept(coding(verdict)), **extra)


def _subtype_observation(a: _Assembler) -> str | None:
    subtype = a.result.get("subtype") or {}
    if not subtype.get("shown"):
        return None
    components = [{"code": _concept(coding(s)), "valueQuantity": _quantity(subtype["probabilities"][s], "1")}
                  for s in SUBTYPES]  # fmt: skip
    return a.observation(code=_concept(coding("subtype-probabilities")), component=components)


def _risk_assessment(a: _Assembler, disease: str, basis: list[str], report_url: str) -> str:
    """The RiskAssessment of one disease: calibrated probability, decision, threshold, band, operating point."""
    from fhir.resources.R4B.riskassessment import RiskAssessment

    entry = a.result["diseases"][disease]
    snomed, snomed_name = codes.DISEASE_SNOMED[disease]
    point = codes.code_for(entry["operating_point"]).lower()
    extensions = [
        {"url": codes.extension_url("decision-threshold"), "valueDecimal": entry["threshold"]},
        {"url": codes.extension_url("operating-point"), "valueCoding": coding(point)},
        {"url": codes.extension_url("probability-uncalibrated"), "valueDecimal": entry["probability_uncalibrated"]},
    ]
    if entry.get("band"):
        low, high = entry["band"]
        extensions.insert(1, {"url": codes.extension_url("indeterminate-band"),
                              "valueRange": {"low": _quantity(low, "1"), "high": _quantity(high, "1")}})  # fmt: skip
    band = f", indeterminate band {entry['band'][0]}-{entry['band'][1]}" if entry.get("band") else ""
    rationale = (f"Calibrated probability {entry['probability']} against threshold {entry['threshold']}"
                 f" ({entry['operating_point']} operating point{band}): {entry['decision']}.")  # fmt: skip
    model = a.result.get("model") or {}
    method_text = f"{model.get('name')} {model.get('version')} (bundle digest {model.get('digest')})"
    extra = {"occurrenceDateTime": a.effective} if a.effective else {}
    resource = RiskAssessment(
        status=a.status,
        code=_concept(coding("ecg-screening")),
        method=_concept(coding("screening-model"), text=method_text),
        performer={"reference": a.device_url},
        parent={"reference": report_url},
        basis=[{"reference": url} for url in basis],
        prediction=[
            {
                "outcome": _concept(
                    {"system": codes.SNOMED, "code": snomed, "display": snomed_name},
                    coding(disease),
                    text=entry["name"],
                ),
                "probabilityDecimal": entry["probability"],
                "qualitativeRisk": _concept(coding(entry["decision"])),
                "rationale": rationale,
                "extension": extensions,
            }
        ],  # fmt: skip
        **a.subject(),
        **extra,
    )
    return a.add(resource)


def _diagnostic_report(a: _Assembler, results: list[str]) -> Any:
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    flagged = [d for d in DISEASES if a.result["diseases"][d]["decision"] == "flagged"]
    lines = [f"{a.result['diseases'][d]['name']}: {a.result['diseases'][d]['decision']}"
             f" (p = {a.result['diseases'][d]['probability']})" for d in DISEASES]  # fmt: skip
    notes = [a.result[k] for k in ("note", "note_trust", "note_ood", "note_qc") if a.result.get(k)]
    extra: dict[str, Any] = {"effectiveDateTime": a.effective} if a.effective else {}
    encounter = a.patient.get("encounter_id")
    if encounter:
        extra["encounter"] = {"type": "Encounter", "identifier": {"value": str(encounter)}}
    if flagged:
        extra["conclusionCode"] = [_concept({"system": codes.SNOMED, "code": codes.DISEASE_SNOMED[d][0],
                                             "display": codes.DISEASE_SNOMED[d][1]}) for d in flagged]  # fmt: skip
    return DiagnosticReport(
        status=a.status,
        category=[_concept({"system": codes.DIAGNOSTIC_SECTION, "code": "EC", "display": "Electrocardiac"})],
        code=_concept(
            {"system": codes.LOINC, "code": codes.LOINC_EKG_STUDY[0], "display": codes.LOINC_EKG_STUDY[1]},
            coding("ecg-screening"),
            text="CardiacNets ECG screening",
        ),  # fmt: skip
        issued=_now(),
        result=[{"reference": url} for url in results],
        conclusion="\n".join(lines + notes),
        **a.subject(),
        **extra,
    )


def _device(result: dict[str, Any]) -> Any:
    from fhir.resources.R4B.device import Device

    model = result.get("model") or {}
    training = model.get("training_data") or ("synthetic data" if model.get("trained_on_synthetic") else None)
    note = [{"text": f"Trained on {training}."}] if training else []
    return Device(
        identifier=[{"system": codes.MODEL_DIGEST_SYSTEM, "value": str(model.get("digest"))}],
        status="active",
        manufacturer="CardiacNets toolkit",
        deviceName=[{"name": str(model.get("name")), "type": "model-name"}],
        type=_concept(coding("screening-model")),
        version=[{"value": str(model.get("version"))}],
        note=note or None,
    )


def _provenance(a: _Assembler, targets: list[str], include_phi: bool) -> Any:
    from fhir.resources.R4B.provenance import Provenance

    record = a.result.get("record") or {}
    source = a.result.get("path") if include_phi else None
    what = source or f"{record.get('format') or 'ECG'} recording"
    agent_type = {"system": codes.PROVENANCE_AGENT, "code": "performer", "display": "Performer"}
    return Provenance(
        target=[{"reference": url} for url in targets],
        recorded=_now(),
        agent=[{"type": _concept(agent_type), "who": {"reference": a.device_url}}],
        entity=[{"role": "source", "what": {"display": str(what)}}],
    )


def _patient(a: _Assembler) -> Any:
    from fhir.resources.R4B.patient import Patient

    fields: dict[str, Any] = {
        "identifier": [
            {
                "type": _concept({"system": codes.IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}),
                "value": str(a.patient["patient_id"]),
            }
        ],  # fmt: skip
        "gender": a.sex or "unknown",
    }
    if a.patient.get("name"):
        fields["name"] = [{"text": str(a.patient["name"])}]
    birth = str(a.patient.get("birth_date") or "")
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", birth):
        fields["birthDate"] = birth
    return Patient(**fields)
