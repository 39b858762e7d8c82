"""Scoring of fine-tuned screening models' predictions: which heads each fine-tuning task uses (:class:`TaskSpec`),
the point metrics that select a checkpoint (:func:`quick_scores`), the operating points stored with it
(:func:`thresholds_from_predictions`) and the full statistics report of one split (:func:`evaluate_predictions`:
AUROC with DeLong intervals, metrics at the stored thresholds with Wilson intervals, calibration, subtype confusion and
one-vs-rest AUROC, phenotype mean r with a subject bootstrap). Pure numpy on the prediction dictionary a fine-tuning
run produces; no torch.

A prediction dictionary ``pred`` holds, for n rows: ``disease_prob`` ``(n, 5)`` probabilities in [0, 1],
``subtype_prob`` ``(n, 3)``, ``phenotypes`` ``(n, 82)`` original units, the targets ``labels`` ``(n, 5)`` 0/1/NaN,
``subtype`` ``(n,)`` class index or -1, ``phenotypes_true`` ``(n, 82)`` NaN where missing, and ``rows`` ``(n,)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.metrics.calibration import brier_score, expected_calibration_error, reliability_curve
from cardiacnets.metrics.correlation import mean_pearson_r
from cardiacnets.metrics.discrimination import auroc, auroc_ci, binary_report, proportion
from cardiacnets.metrics.multiclass import confusion_matrix
from cardiacnets.metrics.thresholds import select_thresholds
from cardiacnets.targets import DISEASES, SUBTYPES, phenotype_names

logger = logging.getLogger(__name__)

BINARY_TASKS: dict[str, int] = {name.lower(): k for k, name in enumerate(DISEASES)}


@dataclass(frozen=True)
class TaskSpec:
    """The heads a fine-tuning task trains and is scored on.

    ``diseases``: indices into :data:`~cardiacnets.targets.DISEASES` of its binary heads (the one disease of ``cad`` ..
    ``hf``, all five for ``all``, none for ``subtype`` / ``phenotypes``). ``subtype`` / ``phenotypes``: whether the
    cardiomyopathy-subtype and phenotype heads are used.
    """

    name: str
    diseases: tuple[int, ...]
    subtype: bool = False
    phenotypes: bool = False

    @property
    def is_binary(self) -> bool:
        """A single-disease screening task (``cad`` .. ``hf``)."""
        return self.name in BINARY_TASKS


TASK_SPECS: dict[str, TaskSpec] = {
    **{name: TaskSpec(name, (k,)) for name, k in BINARY_TASKS.items()},
    "subtype": TaskSpec("subtype", (), subtype=True),
    "phenotypes": TaskSpec("phenotypes", (), phenotypes=True),
    "all": TaskSpec("all", tuple(range(len(DISEASES))), subtype=True, phenotypes=True),
}
TASKS: tuple[str, ...] = tuple(TASK_SPECS)


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of a task name (``cad``, ``ph``, ``pc``, ``cm``, ``hf``, ``subtype``, ``phenotypes``,
    ``all``)."""
    try:
        return TASK_SPECS[task]
    except KeyError:
        raise InputError(f"unknown fine-tuning task {task!r}; use one of {', '.join(TASKS)}") from None


def balanced_eval_rows(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """All positives of 0/1 ``y`` and as many negatives drawn without replacement (the 1:1 evaluation option)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(neg) > len(pos) > 0:
        neg = np.random.default_rng(seed).choice(neg, size=len(pos), replace=False)
    return np.sort(np.concatenate([pos, neg]))


def _binary_target(pred: dict[str, Any], k: int, balanced: bool) -> tuple[np.ndarray, np.ndarray] | None:
    y = pred["labels"][:, k]
    keep = np.flatnonzero(np.isfinite(y))
    yk, pk = y[keep].astype(np.int64), pred["disease_prob"][keep, k].astype(np.float64)
    if balanced:
        sel = balanced_eval_rows(yk)
        yk, pk = yk[sel], pk[sel]
    if yk.sum() < 1 or (1 - yk).sum() < 1:
        return None
    return yk, pk


def _phenotype_matrix(true: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complete-case rows and the targets that vary there (a constant target has no correlation)."""
    rows = np.isfinite(true).all(axis=1)
    t, p = true[rows].astype(np.float64), predicted[rows].astype(np.float64)
    cols = (t.std(axis=0) > 0) & (p.std(axis=0) > 0) if len(t) > 2 else np.zeros(true.shape[1], bool)
    return t[:, cols], p[:, cols], cols


def mean_r_point(true: np.ndarray, predicted: np.ndarray) -> float:
    """Mean Pearson r over the phenotypes with a defined correlation (NaN when none); ``true`` and ``predicted`` are
    ``(n, k)``, rows with a missing true value are left out.

    Not :func:`~cardiacnets.metrics.mean_pearson_r`: that one rejects NaN, constant targets and n < 4 instead of
    skipping them, runs a bootstrap, and clips each r to [-1, 1], which changes the last bit when a prediction is exact.
    """
    t, p, _ = _phenotype_matrix(true, predicted)
    if t.shape[1] == 0:
        return float("nan")
    ts = (t - t.mean(0)) / t.std(0)
    ps = (p - p.mean(0)) / p.std(0)
    return float(np.mean(np.mean(ts * ps, axis=0)))


def quick_scores(pred: dict[str, Any], task: str, balanced: bool = False) -> dict[str, float]:
    """Point metrics for model selection: per-disease AUROC, subtype macro one-vs-rest AUROC and accuracy, mean r."""
    spec = task_spec(task)
    scores: dict[str, float] = {}
    for k in spec.diseases:
        target = _binary_target(pred, k, balanced)
        scores[f"val_auroc_{DISEASES[k]}"] = auroc(*target) if target else float("nan")
    if spec.subtype:
        has = pred["subtype"] >= 0
        y, p = pred["subtype"][has], pred["subtype_prob"][has]
        aucs = [auroc(y == c, p[:, c]) for c in range(len(SUBTYPES)) if 0 < (y == c).sum() < len(y)]
        scores["val_subtype_macro_auroc"] = float(np.mean(aucs)) if aucs else float("nan")
        scores["val_subtype_accuracy"] = float(np.mean(p.argmax(1) == y)) if len(y) else float("nan")
    if spec.phenotypes:
        scores["val_mean_r"] = mean_r_point(pred["phenotypes_true"], pred["phenotypes"])
    return scores


def thresholds_from_predictions(pred: dict[str, Any], task: str, min_specificity: float) -> dict[str, Any]:
    """``{disease: {"youden", "high_specificity", "default": "youden", "min_specificity"}}`` for the task's diseases
    whose validation labels have both classes."""
    out: dict[str, Any] = {}
    for k in task_spec(task).diseases:
        name = DISEASES[k]
        target = _binary_target(pred, k, False)
        if target is None:
            logger.warning("no threshold for %s: the validation split lacks cases or controls", name)
            continue
        chosen = select_thresholds(*target, min_specificity=min_specificity)
        out[name] = {
            "youden": float(chosen["youden"]),
            "high_specificity": float(chosen["high_specificity"]),
            "default": "youden",
            "min_specificity": float(min_specificity),
        }
    return out


def _disease_statistics(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float] | None) -> dict[str, Any]:
    """One disease: AUROC, metrics at the stored operating points and calibration, for labels ``y`` ``(n,)`` 0/1 and
    probabilities ``p`` ``(n,)``."""
    entry: dict[str, Any] = {"n": int(len(y)), "n_positive": int(y.sum()), "prevalence": float(y.mean())}
    entry["auc"] = (
        auroc_ci(y, p).as_dict() if min(y.sum(), len(y) - y.sum()) >= 2 else {"value": auroc(y, p), "ci": None}
    )
    for point in ("youden", "high_specificity"):
        t = (thresholds or {}).get(point)
        if t is not None:
            entry[point] = binary_report(y, p, float(t)).as_dict()
    entry["calibration"] = {
        "ece": expected_calibration_error(y, p),
        "brier": brier_score(y, p),
        "reliability": reliability_curve(y, p, n_bins=10).as_dict(),
        "note": "binary tasks train on a 1:1 case-control sample, so probabilities are calibrated to 50 % "
        "prevalence, not to this split's",
    }
    return entry


def _subtype_statistics(pred: dict[str, Any]) -> dict[str, Any]:
    """Subtype confusion (arg-max), accuracy with its Wilson interval and one-vs-rest AUROC per subtype."""
    has = pred["subtype"] >= 0
    y, p = pred["subtype"][has], pred["subtype_prob"][has].astype(np.float64)
    sub: dict[str, Any] = {"n": int(has.sum())}
    if has.sum():
        counts = confusion_matrix(y, p.argmax(1), len(SUBTYPES))
        sub["class_names"] = list(SUBTYPES)
        sub["confusion"] = counts.tolist()
        sub["accuracy"] = proportion(int(np.trace(counts)), int(counts.sum())).as_dict()
        sub["auc"] = {}
        for c, name in enumerate(SUBTYPES):
            member = y == c
            if member.sum() >= 2 and (~member).sum() >= 2:
                sub["auc"][name] = auroc_ci(member, p[:, c]).as_dict()
            else:
                sub["auc"][name] = {"value": None, "ci": None}
    return sub


def _phenotype_statistics(pred: dict[str, Any], n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Mean and per-phenotype Pearson r on complete-case rows with a percentile subject-bootstrap interval."""
    t, pp, cols = _phenotype_matrix(pred["phenotypes_true"], pred["phenotypes"])
    if t.shape[1] and len(t) >= 4:
        names = [n for n, keep in zip(phenotype_names(), cols, strict=True) if keep]
        corr = mean_pearson_r(t, pp, method="percentile", n_bootstrap=n_bootstrap, rng=seed, target_names=names)
        return {"n": int(len(t)), "n_targets": int(t.shape[1]), **corr.as_dict()}
    return {"value": None, "ci": None, "reason": "too few complete-case subjects"}


def evaluate_predictions(
    pred: dict[str, Any],
    task: str,
    thresholds: dict[str, Any],
    *,
    balanced: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Full statistics of one split's predictions (strict-JSON-ready): per disease AUROC (DeLong interval), metrics at
    each stored threshold (Wilson intervals), reliability curve and ECE; subtype confusion, accuracy and one-vs-rest
    AUROC; phenotype mean r with a subject bootstrap interval. Undefined quantities are reported as ``None`` with the
    reason."""
    spec = task_spec(task)
    report: dict[str, Any] = {"n": int(len(pred["rows"])), "balanced": balanced, "diseases": {}}
    for k in spec.diseases:
        name = DISEASES[k]
        target = _binary_target(pred, k, balanced)
        if target is None:
            report["diseases"][name] = {"auc": None, "reason": "the split lacks cases or controls"}
            continue
        report["diseases"][name] = _disease_statistics(*target, thresholds.get(name))
    if spec.subtype:
        report["subtype"] = _subtype_statistics(pred)
    if spec.phenotypes:
        report["phenotypes"] = _phenotype_statistics(pred, n_bootstrap, seed)
    return report


__all__ = [
    "BINARY_TASKS",
    "TASKS",
    "TASK_SPECS",
    "TaskSpec",
    "balanced_eval_rows",
    "evaluate_predictions",
    "mean_r_point",
    "quick_scores",
    "task_spec",
    "thresholds_from_predictions",
]
