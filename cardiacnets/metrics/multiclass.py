"""Evaluation of a C-class classifier (the RCM / DCM / HCM subtype task): the confusion matrix and its row
normalisation, one-vs-rest AUROC per class with DeLong intervals and their macro average with a class-stratified
bootstrap interval, and :func:`multiclass_report` bringing them together with the arg-max accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cardiacnets.errors import InputError
from cardiacnets.metrics._common import (
    Estimate,
    Proportion,
    _as_class_labels,
    _as_float_array,
    _check_confidence,
    _check_n_bootstrap,
    _check_same_length,
    _json_float,
    _percentile_interval,
    _resolve_rng,
    _stratified_resamples,
)
from cardiacnets.metrics.discrimination import _auc_rows, auroc_ci, proportion


@dataclass(frozen=True)
class MulticlassReport:
    """Evaluation of a C-class classifier whose predicted class is the arg-max score.

    ``confusion`` is ``(C, C)`` counts with rows = true class and columns = predicted class; ``confusion_normalised``
    divides each row by its total (NaN for a class with no subjects). ``auc`` holds the one-vs-rest AUC per class
    (DeLong interval), ``macro_auc`` their unweighted mean (stratified bootstrap interval).
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    confusion_normalised: np.ndarray
    accuracy: Proportion
    auc: dict[str, Estimate]
    macro_auc: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "confusion": self.confusion.astype(int).tolist(),
            "confusion_normalised": [[_json_float(v) for v in row] for row in self.confusion_normalised],
            "accuracy": self.accuracy.as_dict(),
            "auc": {name: est.as_dict() for name, est in self.auc.items()},
            "macro_auc": self.macro_auc.as_dict(),
        }


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts ``(C, C)``, int64: entry [i, j] = subjects of true class i predicted as class j."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise InputError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    t = _as_class_labels(y_true, n_classes, "y_true")
    p = _as_class_labels(y_pred, n_classes, "y_pred")
    _check_same_length(y_true=t, y_pred=p)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def normalise_rows(matrix: ArrayLike) -> np.ndarray:
    """Divide each row of a confusion matrix ``(C, C)`` by its total; rows with no subjects become NaN."""
    m = _as_float_array(matrix, "matrix", ndim=(2,))
    totals = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, m / np.where(totals > 0, totals, 1.0), np.nan)


def _check_multiclass(y_true: ArrayLike, y_score: ArrayLike, class_names: Sequence[str] | None):
    scores = _as_float_array(y_score, "y_score", ndim=(2,))
    n_classes = scores.shape[1]
    if n_classes < 2:
        raise InputError(f"y_score must have at least 2 columns (classes), got {n_classes}")
    labels = _as_class_labels(y_true, n_classes, "y_true")
    _check_same_length(y_true=labels, y_score=scores)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(n_classes))
    if len(names) != n_classes:
        raise InputError(f"class_names has {len(names)} names for {n_classes} score columns")
    return labels, scores, names


def one_vs_rest_auroc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    class_names: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> tuple[dict[str, Estimate], Estimate]:
    """One-vs-rest AUROC per class (DeLong interval) and their macro average (bootstrap interval).

    ``y_true`` ``(n,)`` integer classes in [0, C); ``y_score`` ``(n, C)``, column c scoring class c. The macro
    average's interval is the percentile interval of resamples stratified by true class (each resample keeps the class
    counts). Every class needs at least 2 members and 2 non-members.
    """
    confidence = _check_confidence(confidence)
    labels, scores, names = _check_multiclass(y_true, y_score, class_names)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    per_class: dict[str, Estimate] = {}
    for c, name in enumerate(names):
        member = labels == c
        if member.sum() < 2 or (~member).sum() < 2:
            raise InputError(
                f"class {name!r} has {int(member.sum())} subject(s); one-vs-rest AUC needs >= 2 in and out"
            )
        per_class[name] = auroc_ci(member, scores[:, c], confidence, "delong")
    macro = float(np.mean([est.value for est in per_class.values()]))
    strata = [np.flatnonzero(labels == c) for c in range(len(names))]
    ordered_labels = labels[np.concatenate(strata)]
    boot = []
    for idx in _stratified_resamples(strata, n_bootstrap, _resolve_rng(rng)):
        per = [_auc_rows(scores[idx, c], ordered_labels == c) for c in range(len(names))]
        boot.append(np.mean(per, axis=0))
    ci = _percentile_interval(np.concatenate(boot), confidence)
    return per_class, Estimate(macro, ci, confidence, "bootstrap-percentile-stratified")


def multiclass_report(
    y_true: ArrayLike,
    y_score: ArrayLike,
    class_names: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> MulticlassReport:
    """Confusion matrix (arg-max prediction), accuracy with Wilson interval, and one-vs-rest AUCs for ``y_score``
    ``(n, C)`` against integer classes ``y_true`` ``(n,)`` (e.g. the RCM/DCM/HCM subtype task)."""
    labels, scores, names = _check_multiclass(y_true, y_score, class_names)
    predicted = np.argmax(scores, axis=1)
    counts = confusion_matrix(labels, predicted, len(names))
    per_class, macro = one_vs_rest_auroc(labels, scores, names, confidence, n_bootstrap, rng)
    return MulticlassReport(
        class_names=names,
        confusion=counts,
        confusion_normalised=normalise_rows(counts),
        accuracy=proportion(int(np.trace(counts)), int(counts.sum()), confidence),
        auc=per_class,
        macro_auc=macro,
    )
