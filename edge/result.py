"""The screening result of one ECG (schema ``cardiacnets.screening/2``): every output format is a view of this dict.

From the screening graph's raw outputs and the bundle's trust artefacts (:mod:`cardiacnets.trust`) it builds what a
clinician reads: calibrated disease probabilities with a decision (``flagged``, ``clear`` or ``indeterminate`` when
the probability lies in the threshold's uncertainty band), phenotypes that obey their identities with conformal
intervals, the out-of-distribution check in plain words, signal QC, and the identity of the model (name, version,
digest, trained on synthetic data or not). The schema is documented in ``docs/screening-output.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiacnets.bundle import Bundle
from cardiacnets.errors import BundleError
from cardiacnets.targets import DISEASE_NAMES, DISEASES, KEY_PHENOTYPES, SUBTYPES, phenotypes, reference_range
from cardiacnets.trust import TrustModel, decide
from cardiacnets.trust.phenotypes import derivation_table, reconcile_phenotypes

RESULT_SCHEMA = "cardiacnets.screening/2"
SYNTHETIC_NOTE = (
    "This model was trained on SYNTHETIC data only; its outputs are a software demonstration, not a clinical result."
)
NO_TRUST_NOTE = (
    "This model bundle carries no calibration or out-of-distribution data: its probabilities are uncalibrated, its"
    " phenotypes have no intervals, and nothing checks whether this ECG resembles its training data."
)
QC_NOTE = "Signal QC failed: the results below are not reliable (see qc.findings)."
PACED_NOTE = (
    "Pacemaker spikes were found: the model was never trained on paced ECGs, so this screening is not reliable."
)

__all__ = ["NO_TRUST_NOTE", "RESULT_SCHEMA", "SYNTHETIC_NOTE", "build_result", "ood_note"]


def ood_note(distribution: dict[str, Any]) -> str:
    """The plain-words warning for an out-of-distribution ECG."""
    why = "; ".join(distribution.get("reasons") or [])
    return (
        "This ECG is unlike the ECGs this model was trained on (out-of-distribution score"
        f" {distribution['score']:.2f}, threshold {distribution['threshold']:.2f})"
        + (f": {why}" if why else "")
        + ". Its results should not be relied on."
    )


def _thresholds(bundle: Bundle, trust: TrustModel | None, disease: str, operating_point: str | None) -> dict[str, Any]:
    # a reduced lead set's trust artefacts carry its own thresholds; the manifest's are the 12-lead model's
    entry = ((trust.thresholds if trust is not None and trust.thresholds is not None else bundle.thresholds)
             .get(disease) or {})  # fmt: skip
    point = operating_point or str(entry.get("default", "youden"))
    value = entry.get(point)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"bundle {bundle.root} has no {point!r} threshold for {disease}")
    if trust is not None and entry.get("scale") != "calibrated":
        raise BundleError(
            f"bundle {bundle.root}: {disease} thresholds are not on the calibrated scale of its trust data"
        )
    band = (entry.get("band") or {}).get(point) if trust is not None else None
    return {"point": point, "value": float(value), "band": [float(band[0]), float(band[1])] if band else None}


def build_result(
    bundle: Bundle,
    trust: TrustModel | None,
    prepared: Any,
    outputs: dict[str, np.ndarray],
    *,
    operating_point: str | None = None,
    include_phi: bool = False,
    execution_provider: str | None = None,
) -> dict[str, Any]:
    """The ``cardiacnets.screening/2`` result for one ECG.

    ``prepared`` is its :class:`~cardiacnets.edge.screen.PreparedEcg`, ``outputs`` its row of the screening graph's
    outputs, ``trust`` the bundle's trust artefacts (None: uncalibrated, no intervals, no out-of-distribution check),
    ``execution_provider`` the onnxruntime provider the screening graph actually ran on.
    """
    lead_set = getattr(prepared, "lead_set", None) or "12"
    trust = trust.for_lead_set(lead_set) if trust is not None else None
    diseases = _disease_results(bundle, trust, outputs, operating_point)
    all_phenotypes, key = _phenotype_results(trust, prepared, outputs)
    distribution = None
    if trust is not None:
        views = {name: np.asarray(v)[None] for name, v in prepared.signal_views.items()}
        distribution = trust.distribution(np.asarray(outputs["embedding"])[None], views)[0].as_dict()
    qc_reliable = bool(prepared.qc.get("reliable", False))
    in_distribution = distribution is None or distribution["in_distribution"]
    measurements = dict(getattr(prepared, "measurements", None) or {})
    paced = bool(measurements.get("paced"))
    training = bundle.manifest["training_data"]
    result: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "path": prepared.path,
        "reliable": qc_reliable and in_distribution and not paced,
        "qc": prepared.qc,
        "distribution": distribution,
        "diseases": diseases,
        "subtype": {
            "shown": diseases["CM"]["flagged"],
            "probabilities": {s: round(float(outputs["subtype_prob"][i]), 4) for i, s in enumerate(SUBTYPES)},
        },
        "key_phenotypes": key,
        "phenotypes": all_phenotypes,
        "record": prepared.record_info,
        "measurements": measurements or None,
        "cart_measurements": getattr(prepared, "cart_measurements", None),
        "lead_set": lead_set,
        "covariates_used": {
            name: (float(v) if m else None)
            for name, v, m in zip(
                ("sex", "age", "heart_rate"), prepared.covariates, prepared.covariate_mask, strict=True
            )
        },
        "preprocess": {
            k: prepared.preprocess.get(k)
            for k in ("version", "resampled", "cropped", "padded", "heart_rate", "heart_rate_source")
        },
        "model": {
            **bundle.identity,
            "training_data": training.get("description"),
            "calibrated": trust is not None,
            "interval_coverage": None if trust is None else trust.coverage,
            "execution_provider": execution_provider,
        },  # fmt: skip
    }
    _add_notes(result, trust, distribution, qc_reliable)
    if include_phi:
        result["patient"] = prepared.phi
    return result


def _disease_results(
    bundle: Bundle, trust: TrustModel | None, outputs: dict[str, np.ndarray], operating_point: str | None
) -> dict[str, Any]:
    """Per disease: calibrated probability, threshold and band at the operating point, and the decision."""
    raw = np.asarray(outputs["disease_prob"], dtype=np.float64)
    calibrated = trust.calibrate(raw[None])[0] if trust is not None else raw
    diseases = {}
    for i, disease in enumerate(DISEASES):
        threshold = _thresholds(bundle, trust, disease, operating_point)
        probability = float(calibrated[i])
        decision = decide(probability, threshold["value"], threshold["band"])
        diseases[disease] = {
            "name": DISEASE_NAMES[disease],
            "probability": round(probability, 4),
            "probability_uncalibrated": round(float(raw[i]), 4),
            "threshold": round(threshold["value"], 4),
            "band": [round(v, 4) for v in threshold["band"]] if threshold["band"] else None,
            "operating_point": threshold["point"],
            "decision": decision,
            "flagged": decision == "flagged",
        }
    return diseases


def _phenotype_results(
    trust: TrustModel | None, prepared: Any, outputs: dict[str, np.ndarray]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(all 82, key phenotypes)``: values that obey the identities, intervals, units, derived flags, and for the key
    ones the sex-specific reference range."""
    heart_rate = prepared.heart_rate
    if trust is not None:
        values, lower, upper = (a[0] for a in trust.phenotypes(np.asarray(outputs["phenotypes"])[None], heart_rate))
        derived = set(trust.spec["phenotypes"]["derived"])
    else:
        values, lower, upper = reconcile_phenotypes(outputs["phenotypes"], heart_rate), None, None
        derived = set(derivation_table({}))
    sex = prepared.record_info.get("sex")
    all_phenotypes, key = {}, {}
    for p in phenotypes():
        value = float(values[p.index])
        interval = None if lower is None else [round(float(lower[p.index]), 3), round(float(upper[p.index]), 3)]
        all_phenotypes[p.short] = {"value": round(value, 3), "interval": interval, "unit": p.unit,
                                   "derived": p.short in derived}  # fmt: skip
        if p.short in KEY_PHENOTYPES:
            low_high = reference_range(p.short, sex)
            key[p.short] = {
                "value": round(value, 2),
                "unit": p.unit,
                "interval": None if interval is None else [round(v, 2) for v in interval],
                "reference_range": list(low_high) if low_high else None,
                "out_of_range": bool(low_high and not (low_high[0] <= value <= low_high[1])),
            }
    return all_phenotypes, key


def _add_notes(
    result: dict[str, Any], trust: TrustModel | None, distribution: dict[str, Any] | None, qc_reliable: bool
) -> None:
    """The plain-words notes: synthetic model, no trust data, out of distribution, failed QC."""
    if result["model"]["trained_on_synthetic"]:
        result["note"] = SYNTHETIC_NOTE
    if trust is None:
        result["note_trust"] = NO_TRUST_NOTE
    if distribution is not None and not distribution["in_distribution"]:
        result["note_ood"] = ood_note(distribution)
    if not qc_reliable:
        result["note_qc"] = QC_NOTE
    if (result.get("measurements") or {}).get("paced"):
        result["note_paced"] = PACED_NOTE
