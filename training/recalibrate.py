"""Light recalibration of a screening model's disease probabilities at a new site (``cntrain recalibrate``).

A model moved to another hospital usually keeps its ranking (AUROC) better than its probabilities: prevalence, cart and
population shift the scores. A small labelled sample of the new site refits one Platt map per disease
(:func:`cardiacnets.trust.calibration.fit_platt`, two parameters: stable on ~100 subjects, monotone so the ranking and
AUROC are unchanged), in the format of ``trust.json``'s ``calibration`` section. Calibration is summarised by the
expected calibration error (10 uniform bins; the mean) and the calibration slope (1 ideal, < 1 over-confident; the
median) over the diseases that have at least 5 cases and 5 controls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from cardiacnets.metrics import expected_calibration_error
from cardiacnets.targets import DISEASES
from cardiacnets.trust.calibration import apply_calibrator, calibration_slope, fit_platt

logger = logging.getLogger(__name__)

__all__ = ["MIN_CLASS", "apply_site_calibration", "calibration_summary", "fit_site_calibration"]

#: Cases and controls a disease needs in a sample to be recalibrated or scored for calibration.
MIN_CLASS = 5


def _known(labels: np.ndarray, prob: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    y = labels[:, k]
    keep = np.isfinite(y)
    y, p = y[keep].astype(np.float64), prob[keep, k].astype(np.float64)
    if y.sum() < MIN_CLASS or (1 - y).sum() < MIN_CLASS:
        return None
    return y, p


def fit_site_calibration(labels: np.ndarray, prob: np.ndarray) -> dict[str, dict[str, Any]]:
    """Platt maps ``{disease: {"method": "platt", "a", "b", "n"}}`` fitted on a labelled sample: ``labels`` ``(n, 5)``
    0/1/NaN, ``prob`` ``(n, 5)`` the probabilities to recalibrate. A disease with fewer than :data:`MIN_CLASS` cases
    or controls keeps the identity map (``"method": "identity"``)."""
    out: dict[str, dict[str, Any]] = {}
    for k, disease in enumerate(DISEASES):
        pair = _known(labels, prob, k)
        if pair is None:
            logger.warning("too few %s cases or controls to recalibrate; keeping its probabilities", disease)
            out[disease] = {"method": "identity", "n": 0}
            continue
        out[disease] = {**fit_platt(*pair), "n": int(pair[0].size)}
    return out


def apply_site_calibration(calibrators: Mapping[str, Mapping[str, Any]], prob: np.ndarray) -> np.ndarray:
    """``prob`` ``(n, 5)`` through each disease's map of :func:`fit_site_calibration`."""
    return np.stack([apply_calibrator(calibrators[d], prob[:, k]) for k, d in enumerate(DISEASES)], axis=1)


def calibration_summary(labels: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    """``{"ece", "slope"}`` over the scorable diseases (the mean ECE; the median slope: a disease whose probabilities
    barely vary can have a slope of any size and sign, which would swamp a mean), and ``per_disease``
    ``{disease: {"ece", "slope"}}`` (None where a disease has too few cases or controls)."""
    per: dict[str, Any] = {}
    for k, disease in enumerate(DISEASES):
        pair = _known(labels, prob, k)
        if pair is None:
            per[disease] = None
            continue
        y, p = pair
        per[disease] = {"ece": expected_calibration_error(y, np.clip(p, 0.0, 1.0)), "slope": calibration_slope(y, p)}
    scored = [v for v in per.values() if v is not None]
    if not scored:
        return {"ece": None, "slope": None, "per_disease": per}
    ece, slope = float(np.mean([v["ece"] for v in scored])), float(np.median([v["slope"] for v in scored]))
    return {"ece": ece, "slope": slope, "per_disease": per}
