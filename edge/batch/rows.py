"""The rows of a batch output (``docs/screening-output.md``): the column list, the row of a screening result, the
row of an input that could not be screened, and the three statuses a row can have."""

from __future__ import annotations

import re
from typing import Any

from cardiacnets.measure import MEASUREMENT_KEYS
from cardiacnets.targets import DISEASES, SUBTYPES, phenotype_names

STATUS_OK, STATUS_QC, STATUS_ERROR = "ok", "qc_failed", "error"


def column_name(name: str) -> str:
    """A column name without spaces or punctuation (``LAV max`` -> ``LAV_max``), for tools that need identifiers."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def output_columns(include_phi: bool) -> list[str]:
    cols = ["path", "status", "reason", "reliable", "in_distribution", "ood_score", "qc_findings", "format",
            "sampling_rate_hz", "duration_s", "lead_set"]  # fmt: skip
    cols += list(MEASUREMENT_KEYS)
    cols += [f"p_{d}" for d in DISEASES] + [f"decision_{d}" for d in DISEASES] + [f"p_{s}" for s in SUBTYPES]
    for name in map(column_name, phenotype_names()):
        cols += [f"pheno_{name}", f"pheno_{name}_low", f"pheno_{name}_high"]
    cols += ["bundle_name", "bundle_version", "bundle_digest", "preprocess_version", "execution_provider"]
    if include_phi:
        cols += ["patient_id", "patient_name", "birth_date"]
    return cols


def result_row(result: dict[str, Any], include_phi: bool) -> dict[str, Any]:
    """The batch row of a screening result (``docs/screening-output.md``)."""
    qc = result.get("qc", {})
    fails = [f["message"] for f in qc.get("findings", []) if f.get("severity") == "fail"]
    distribution = result.get("distribution")
    row: dict[str, Any] = {
        "path": result["path"],
        "status": STATUS_OK if qc.get("reliable") else STATUS_QC,
        "reason": "; ".join(fails),
        "reliable": result["reliable"],
        "in_distribution": None if distribution is None else distribution["in_distribution"],
        "ood_score": None if distribution is None else distribution["score"],
        "qc_findings": "; ".join(
            f"{f.get('code')}{'@' + f['lead'] if f.get('lead') else ''}" for f in qc.get("findings", [])
        ),
        "format": result["record"].get("format"),
        "sampling_rate_hz": result["record"].get("sampling_rate_hz"),
        "duration_s": result["record"].get("duration_s"),
        "lead_set": result.get("lead_set"),
    }
    measured = result.get("measurements") or {}
    row.update({key: measured.get(key) for key in MEASUREMENT_KEYS})
    for d in DISEASES:
        row[f"p_{d}"] = result["diseases"][d]["probability"]
        row[f"decision_{d}"] = result["diseases"][d]["decision"]
    for s in SUBTYPES:
        row[f"p_{s}"] = result["subtype"]["probabilities"][s]
    for name, entry in result["phenotypes"].items():
        name = column_name(name)
        interval = entry["interval"] or (None, None)
        row[f"pheno_{name}"], row[f"pheno_{name}_low"], row[f"pheno_{name}_high"] = entry["value"], *interval
    row.update(_model_columns(result["model"]), preprocess_version=result["preprocess"].get("version"),
               execution_provider=result["model"].get("execution_provider"))  # fmt: skip
    if include_phi:
        phi = result.get("patient") or {}
        row.update(patient_id=phi.get("patient_id"), patient_name=phi.get("name"), birth_date=phi.get("birth_date"))
    return row


def _model_columns(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundle_name": model.get("name"),
        "bundle_version": model.get("version"),
        "bundle_digest": model.get("digest"),
    }


def error_row(key: str, reason: str, job: dict[str, Any]) -> dict[str, Any]:
    """The row of an input that could not be screened; ``job`` holds the run's model and preprocessing columns."""
    return {"path": key, "status": STATUS_ERROR, "reason": reason.replace("\n", " "), **job}
