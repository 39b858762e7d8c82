"""The terminology of the hospital outputs, declared once: LOINC codes for the ECG measurements and the phenotypes that
have one, UCUM units, SNOMED CT codes of the screened diseases, DICOM (DCM/MDC/LN) codes for the SR, and the project's
own CodeSystem and FHIR extension definitions for everything no standard terminology names.

The project's canonical base is an example domain (:data:`CANONICAL_BASE`): :func:`code_system` and
:func:`extension_definitions` build the conformance resources a validator (or a hospital's terminology server) loads to
check our codes and extensions; ``docs/hospital-systems.md`` lists them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cardiacnets.targets import DISEASE_NAMES, DISEASES, SUBTYPE_NAMES, SUBTYPES, phenotypes

CANONICAL_BASE = "https://cardiacnets.example.org/fhir"
CODE_SYSTEM_URL = f"{CANONICAL_BASE}/CodeSystem/cardiacnets"
MODEL_DIGEST_SYSTEM = f"{CANONICAL_BASE}/NamingSystem/model-bundle-digest"
INPUT_KEY_SYSTEM = f"{CANONICAL_BASE}/NamingSystem/batch-input-sha256"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DIAGNOSTIC_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
PROVENANCE_AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

#: LOINC code of the whole study (DiagnosticReport.code; the SR's document title is TID 3700's).
LOINC_EKG_STUDY = ("11524-6", "EKG study")

#: ``measurements`` key -> (LOINC code, LOINC name, UCUM code, unit as shown). ``rhythm`` and ``paced`` are coded.
MEASUREMENT_LOINC: dict[str, tuple[str, str, str | None, str | None]] = {
    "heart_rate_bpm": ("8867-4", "Heart rate", "/min", "beats/minute"),
    "pr_ms": ("8625-6", "P-R Interval", "ms", "ms"),
    "qrs_ms": ("8633-0", "QRS duration", "ms", "ms"),
    "qt_ms": ("8634-8", "Q-T interval", "ms", "ms"),
    "qtc_bazett_ms": ("76635-2", "Q-T interval corrected based on Bazett formula", "ms", "ms"),
    "qtc_fridericia_ms": ("76634-5", "Q-T interval corrected based on Fridericia formula", "ms", "ms"),
    "p_axis_deg": ("8626-4", "P wave axis", "deg", "degrees"),
    "qrs_axis_deg": ("8632-2", "QRS axis", "deg", "degrees"),
    "t_axis_deg": ("8638-9", "T wave axis", "deg", "degrees"),
    "rhythm": ("8884-9", "Heart rate rhythm", None, None),
}

#: Phenotypes with a method-free LOINC code (the others have only the project's code).
PHENOTYPE_LOINC: dict[str, tuple[str, str]] = {
    "LVEF": ("10230-1", "Left ventricular Ejection fraction"),
    "LVEDV": ("8821-1", "Left ventricular Diastolic volume"),
    "LVESV": ("8823-7", "Left ventricular Systolic volume"),
}

#: Phenotype units (``cardiacnets/data/phenotypes_82.csv``) -> UCUM codes.
UCUM_UNITS: dict[str, str] = {
    "mL": "mL",
    "%": "%",
    "L/min": "L/min",
    "g": "g",
    "mm": "mm",
    "mm2": "mm2",
    "10^-3 mmHg^-1": "10*-3/mm[Hg]",
}

#: SNOMED CT disorders for the screened diseases (RiskAssessment.prediction.outcome, SR findings).
DISEASE_SNOMED: dict[str, tuple[str, str]] = {
    "CAD": ("53741008", "Coronary arteriosclerosis"),
    "PH": ("70995007", "Pulmonary hypertension"),
    "PC": ("3238004", "Pericarditis"),
    "CM": ("85898001", "Cardiomyopathy"),
    "HF": ("84114007", "Heart failure"),
}

#: The project's extensions: name -> (value type, element they extend, definition).
EXTENSIONS: dict[str, tuple[str, str, str]] = {
    "decision-threshold": (
        "decimal",
        "RiskAssessment.prediction",
        "Threshold on the calibrated probability above which the disease is flagged, at the operating point used.",
    ),
    "indeterminate-band": (
        "Range",
        "RiskAssessment.prediction",
        "Uncertainty band of the threshold (bootstrap of the validation split): a probability inside it is"
        " indeterminate.",
    ),
    "operating-point": ("Coding", "RiskAssessment.prediction", "Operating point the threshold was chosen for."),
    "probability-uncalibrated": (
        "decimal",
        "RiskAssessment.prediction",
        "The screening model's own probability before calibration.",
    ),
}


def extension_url(name: str) -> str:
    if name not in EXTENSIONS:
        raise KeyError(f"unknown extension {name!r}; known: {', '.join(EXTENSIONS)}")
    return f"{CANONICAL_BASE}/StructureDefinition/{name}"


def code_for(text: str) -> str:
    """The project's code for a name with spaces or punctuation (``LAV max`` -> ``LAV-max``)."""
    return "-".join("".join(c if c.isalnum() else " " for c in text).split())


def phenotype_code(short: str) -> str:
    return "pheno-" + code_for(short)


@lru_cache(maxsize=1)
def concepts() -> dict[str, str]:
    """Every code of the project's CodeSystem -> its display (at most 64 characters: DICOM Code Meaning)."""
    table = {
        "ecg-screening": "CardiacNets ECG screening",
        "screening-model": "CardiacNets screening model bundle",
        "model-estimate": "Estimated from the ECG by the screening model",
        "model-derived": "Computed from other estimates by their defining identity",
        "model-digest": "Model bundle digest (SHA-256)",
        "conformal-interval": "Split-conformal prediction interval",
        "interval-low": "Lower limit of the conformal interval",
        "interval-high": "Upper limit of the conformal interval",
        "ecg-phenotypes": "CMR phenotypes estimated from the ECG",
        "screening-decision": "Screening decision",
        "decision-threshold": "Decision threshold on the calibrated probability",
        "band-low": "Lower limit of the threshold's uncertainty band",
        "band-high": "Upper limit of the threshold's uncertainty band",
        "operating-point": "Operating point",
        "flagged": "Flagged: calibrated probability above the threshold",
        "clear": "Clear: calibrated probability below the threshold",
        "indeterminate": "Indeterminate: probability inside the threshold's band",
        "youden": "Youden operating point (max sensitivity + specificity)",
        "high-specificity": "High-specificity operating point (specificity >= 0.9)",
        "ood-check": "Out-of-distribution check against the training data",
        "in-distribution": "ECG resembles the model's training data",
        "out-of-distribution": "ECG is unlike the model's training data",
        "ood-score": "Out-of-distribution score (largest view score)",
        "ood-threshold": "Out-of-distribution threshold",
        "signal-qc": "ECG signal quality control",
        "qc-pass": "Signal QC passed",
        "qc-fail": "Signal QC failed: results not reliable",
        "paced": "Pacemaker spikes detected before the QRS complexes",
        "subtype-probabilities": "Cardiomyopathy subtype probabilities (given cardiomyopathy)",
    }
    for view in ("embedding", "morphology", "spectrum", "statistics"):
        table[f"ood-view-{view}"] = f"Out-of-distribution score of the {view} view"
    for rhythm in ("sinus", "sinus bradycardia", "sinus tachycardia", "atrial fibrillation", "paced", "other"):
        table[f"rhythm-{code_for(rhythm)}"] = f"Rhythm: {rhythm}"
    table.update({d: DISEASE_NAMES[d].capitalize() for d in DISEASES})
    table.update({s: SUBTYPE_NAMES[s].capitalize() for s in SUBTYPES})
    table.update({phenotype_code(p.short): f"{p.name}, ECG estimate" for p in phenotypes()})
    too_long = [code for code, display in table.items() if len(display) > 64]
    if too_long:  # DICOM Code Meaning is LO (64 characters); the SR uses the same displays
        raise RuntimeError(f"displays longer than 64 characters: {too_long}")
    return table


def coding(code: str) -> dict[str, str]:
    """A Coding of the project's CodeSystem; unknown codes are a programming error, refused here."""
    if code not in concepts():
        raise KeyError(f"{code!r} is not in the project's CodeSystem")
    return {"system": CODE_SYSTEM_URL, "code": code, "display": concepts()[code]}


def code_system() -> Any:
    """The project's FHIR CodeSystem (complete content), for validators and terminology servers."""
    from fhir.resources.R4B.codesystem import CodeSystem

    return CodeSystem(
        id="cardiacnets",
        url=CODE_SYSTEM_URL,
        version="1",
        name="CardiacNetsCodes",
        title="CardiacNets screening codes",
        status="active",
        experimental=True,
        publisher="CardiacNets toolkit",
        description="Codes of the CardiacNets ECG screening outputs that no standard terminology provides.",
        caseSensitive=True,
        content="complete",
        concept=[{"code": code, "display": display} for code, display in concepts().items()],
    )


def extension_definitions() -> list[Any]:
    """StructureDefinitions of the project's extensions (differential only; validators generate the snapshot)."""
    from fhir.resources.R4B.structuredefinition import StructureDefinition

    definitions = []
    for name, (value_type, context, definition) in EXTENSIONS.items():
        url = extension_url(name)
        definitions.append(
            StructureDefinition(
                id=name,
                url=url,
                version="1",
                name="".join(part.capitalize() for part in name.split("-")),
                title=name.replace("-", " ").capitalize(),
                status="active",
                experimental=True,
                description=definition,
                fhirVersion="4.0.1",
                kind="complex-type",
                abstract=False,
                context=[{"type": "element", "expression": context}],
                type="Extension",
                baseDefinition="http://hl7.org/fhir/StructureDefinition/Extension",
                derivation="constraint",
                differential={
                    "element": [
                        {
                            "id": "Extension",
                            "path": "Extension",
                            "short": definition[:60],
                            "definition": definition,
                            "max": "1",
                        },  # fmt: skip
                        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                        {
                            "id": "Extension.value[x]",
                            "path": "Extension.value[x]",
                            "min": 1,
                            "type": [{"code": value_type}],
                        },  # fmt: skip
                    ]
                },
            )
        )
    return definitions
