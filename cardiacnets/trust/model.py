"""The fitted trust artefacts of a bundle (``trust.json``) and their application to screening outputs.

:class:`TrustModel` holds, for one screening graph: the disease calibrators, the operating thresholds in calibrated
probability with their uncertainty bands, the phenotype primary pairs and conformal half-widths, and the
out-of-distribution models with their threshold. ``cardiacnets.export`` fits it (``fit_trust``), the bundle stores it
as ``trust.json`` (covered by the bundle digest), and the edge applies it to every ECG (:meth:`TrustModel.assess`).
Loading is strict: an unknown schema or a missing key is a :class:`~cardiacnets.errors.BundleError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import BundleError
from cardiacnets.trust.calibration import apply_calibrator
from cardiacnets.trust.conformal import prediction_intervals
from cardiacnets.trust.ood import SIGNAL_VIEWS, VIEWS, explain, view_distance
from cardiacnets.trust.phenotypes import reconcile_phenotypes

TRUST_SCHEMA = "cardiacnets.trust/1"
TRUST_FILE = "trust.json"
DECISIONS = ("flagged", "clear", "indeterminate")
#: What an out-of-range view means, in plain words.
VIEW_WORDS = {
    "embedding": "the model's encoder sees it unlike any training ECG",
    "morphology": "its beat shapes (P, QRS, T) are unlike those of the training ECGs",
    "spectrum": "its frequency content (cart filters, noise, mains, spikes) is unlike that of the training ECGs",
    "statistics": "its amplitudes, rate, axis or noise lie outside those of the training ECGs",
}
OPERATING_POINTS = ("youden", "high_specificity")


@dataclass(frozen=True)
class DistributionCheck:
    """The out-of-distribution result of one ECG."""

    in_distribution: bool
    score: float  # the largest view distance, each over its validation 99th percentile
    threshold: float
    views: dict[str, float]  # per view (``cardiacnets.trust.ood.VIEWS``)
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"in_distribution": self.in_distribution, "score": round(self.score, 4),
                "threshold": round(self.threshold, 4), "views": {k: round(v, 4) for k, v in self.views.items()},
                "reasons": list(self.reasons)}  # fmt: skip


def decide(probability: float, threshold: float, band: Sequence[float] | None) -> str:
    """``indeterminate`` when ``probability`` lies inside ``band`` (the threshold's uncertainty band), else
    ``flagged`` at or above ``threshold``, ``clear`` below."""
    if band is not None and band[0] <= probability <= band[1]:
        return "indeterminate"
    return "flagged" if probability >= threshold else "clear"


class TrustModel:
    """Trust artefacts of a screening graph, applied to batches of its outputs."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if spec.get("schema") != TRUST_SCHEMA:
            raise BundleError(f"trust data has schema {spec.get('schema')!r}; this toolkit reads {TRUST_SCHEMA!r}")
        try:
            self.spec = dict(spec)
            self.diseases: list[str] = list(spec["diseases"])
            self.calibrators: dict[str, Any] = dict(spec["calibration"])
            pheno = spec["phenotypes"]
            self.primary_pairs: dict[str, str] = dict(pheno["primary_pairs"])
            self.coverage = float(pheno["coverage"])
            self.half_widths = np.asarray(pheno["half_widths"], dtype=np.float64)
            self.low = np.asarray([-np.inf if v is None else v for v in pheno["low"]], dtype=np.float64)
            self.high = np.asarray([np.inf if v is None else v for v in pheno["high"]], dtype=np.float64)
            ood = spec["ood"]
            self.ood_views = {name: (ood["views"][name]["model"], float(ood["views"][name]["scale"])) for name in VIEWS}
            self.ood_threshold = float(ood["threshold"])
            # a reduced lead set's artefacts carry their own operating thresholds (the manifest's are the 12-lead's)
            self.thresholds: dict[str, Any] | None = dict(spec["thresholds"]) if "thresholds" in spec else None
            shared = {"schema": spec["schema"], "diseases": self.diseases}
            self.lead_sets = {
                str(name): TrustModel({**sub, **shared}) for name, sub in (spec.get("lead_sets") or {}).items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"trust data is malformed ({type(exc).__name__}: {exc})") from None
        if self.half_widths.shape != (82,) or set(self.calibrators) != set(self.diseases):
            raise BundleError(
                "trust data does not match the screening graph (82 phenotypes, one calibrator per disease)"
            )

    def for_lead_set(self, name: str | None) -> TrustModel | None:
        """The artefacts of the model given lead set ``name`` (``"12"`` or None: these); None when none were
        fitted for that set."""
        return self if name in (None, "12") else self.lead_sets.get(str(name))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustModel:
        try:
            return cls(json.loads(Path(path).read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: unreadable trust data ({exc})") from None

    def calibrate(self, disease_prob: np.ndarray) -> np.ndarray:
        """``(B, 5)`` calibrated probabilities for the graph's raw ``disease_prob``."""
        raw = np.asarray(disease_prob, dtype=np.float64)
        return np.stack([apply_calibrator(self.calibrators[d], raw[..., k]) for k, d in enumerate(self.diseases)], -1)

    def phenotypes(self, values: np.ndarray, heart_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(reconciled, lower, upper)``, each ``(B, 82)``: identities enforced, then conformal intervals."""
        reconciled = reconcile_phenotypes(values, heart_rate, self.primary_pairs)
        lower, upper = prediction_intervals(reconciled, self.half_widths, self.low, self.high)
        return reconciled, lower, upper

    def distribution(self, embedding: np.ndarray, signal: Mapping[str, np.ndarray]) -> list[DistributionCheck]:
        """One :class:`DistributionCheck` per row of ``embedding`` ``(B, D)`` and of each signal view in ``signal``
        (``{"morphology", "spectrum", "statistics"}``, ``(B, ...)`` as :func:`~cardiacnets.trust.ood.signal_views`
        gives for one ECG)."""
        rows = {"embedding": np.asarray(embedding), **{name: np.asarray(signal[name]) for name in SIGNAL_VIEWS}}
        scores = {name: view_distance(model, rows[name]) / scale for name, (model, scale) in self.ood_views.items()}
        total = np.max(np.stack(list(scores.values())), axis=0)
        checks = []
        for i in range(total.shape[0]):
            inside = bool(total[i] <= self.ood_threshold)
            views = {name: float(values[i]) for name, values in scores.items()}
            reasons: tuple[str, ...] = ()
            if not inside:
                outside = [VIEW_WORDS[name] for name in VIEWS if views[name] > self.ood_threshold]
                reasons = (*outside, *explain(self.ood_views["statistics"][0], rows["statistics"][i]))
            checks.append(DistributionCheck(inside, float(total[i]), self.ood_threshold, views, reasons))
        return checks

    def summary(self) -> dict[str, Any]:
        """What the manifest repeats of this file (for ``cnexport verify`` and the docs)."""
        return {key: self.spec[key] for key in ("schema", "fitted_on", "report") if key in self.spec}
