"""Probability calibration of the screening outputs, fitted on a validation split and applied at the edge.

Two maps from a raw disease probability to a calibrated one, both monotone non-decreasing so that a threshold keeps
its meaning:

* **Platt scaling** (Platt 1999; as in Guo et al. 2017's temperature/Platt family): ``sigmoid(a * logit(p) + b)``,
  two parameters fitted by Newton's method on the log-loss. Stable on small validation splits.
* **Isotonic regression** (Zadrozny & Elkan 2002): the pool-adjacent-violators fit, stored as knots and applied by
  linear interpolation (so it is continuous and never produces a probability outside the fitted range).

:func:`fit_calibrator` fits both and keeps the one with the lower cross-validated log-loss on the split; the result is a
plain dict (``{"method", ...parameters}``) that lives in the bundle's ``trust.json``. :func:`calibration_slope` is the
slope of a logistic recalibration of outcomes on ``logit(p)`` (1 = well calibrated, < 1 = over-confident).

Pure numpy: the edge applies these without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cardiacnets.errors import InputError

__all__ = ["apply_calibrator", "calibration_slope", "fit_calibrator", "fit_isotonic", "fit_platt"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iterations: int = 100) -> tuple[float, float]:
    """``(slope, intercept)`` of a 1-D logistic regression of 0/1 ``y`` on ``x`` by Newton's method (tiny ridge)."""
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - y) + l2 * np.array([w[0], 0.0])
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 0.0]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape or y.size == 0:
        raise InputError(f"calibration needs labels and probabilities of one length, got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("calibration labels must be 0 or 1")
    if y.min() == y.max():
        raise InputError("calibration needs both classes in the split")
    if not np.isfinite(p).all():
        raise InputError("calibration probabilities must be finite")
    return y, p


def fit_platt(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, Any]:
    """Platt scaling on ``logit(p)``: ``{"method": "platt", "a", "b"}``."""
    y, p = _check(y_true, y_prob)
    a, b = _logistic_fit(_logit(p), y)
    return {"method": "platt", "a": a, "b": b}


def _pav(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing sequence closest to ``y`` in weighted least squares."""
    values, sizes, counts = [], [], []
    for value, weight in zip(y, weights, strict=True):
        values.append(value)
        sizes.append(weight)
        counts.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            total = sizes[-2] + sizes[-1]
            merged = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / total
            count = counts[-2] + counts[-1]
            del values[-1], sizes[-1], counts[-1]
            values[-1], sizes[-1], counts[-1] = merged, total, count
    return np.repeat(values, counts)


def fit_isotonic(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, Any]:
    """Isotonic regression as knots: ``{"method": "isotonic", "x": [...], "y": [...]}`` (applied by interpolation)."""
    y, p = _check(y_true, y_prob)
    order = np.argsort(p, kind="stable")
    xs, ys = p[order], y[order]
    unique, start = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ys, start)
    weights = np.diff(np.append(start, xs.size)).astype(np.float64)
    fitted = _pav(sums / weights, weights)
    # Keep the ends of each flat run: interpolation between them reproduces the step function's ramps.
    keep = np.ones(unique.size, dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return {"method": "isotonic", "x": unique[keep].tolist(), "y": np.clip(fitted[keep], 0.0, 1.0).tolist()}


def apply_calibrator(calibrator: Mapping[str, Any] | None, y_prob: np.ndarray) -> np.ndarray:
    """Calibrated probabilities for raw ``y_prob`` (any shape); ``None`` returns them unchanged (as float64)."""
    p = np.asarray(y_prob, dtype=np.float64)
    if calibrator is None:
        return p
    method = calibrator.get("method")
    if method == "platt":
        return _sigmoid(float(calibrator["a"]) * _logit(p) + float(calibrator["b"]))
    if method == "isotonic":
        return np.interp(p, np.asarray(calibrator["x"], np.float64), np.asarray(calibrator["y"], np.float64))
    if method == "identity":
        return p
    raise InputError(f"unknown calibration method {method!r}")


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def fit_calibrator(
    y_true: np.ndarray, y_prob: np.ndarray, *, folds: int = 5, rng: np.random.Generator | int | None = 0
) -> dict[str, Any]:
    """Platt or isotonic, whichever has the lower ``folds``-fold cross-validated log-loss on this split, refitted on
    all of it. The returned dict also records both cross-validated log-losses (``cv_log_loss``)."""
    y, p = _check(y_true, y_prob)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    fold = generator.permutation(y.size) % max(2, folds)
    losses = {"platt": [], "isotonic": []}
    for k in range(max(2, folds)):
        train, held = fold != k, fold == k
        if y[train].min() == y[train].max() or not held.any():
            continue
        for name, fit in (("platt", fit_platt), ("isotonic", fit_isotonic)):
            losses[name].append(_log_loss(y[held], apply_calibrator(fit(y[train], p[train]), p[held])) * held.sum())
    cv = {name: float(np.sum(v) / y.size) if v else float("inf") for name, v in losses.items()}
    best = min(cv, key=lambda name: (cv[name], name != "platt"))  # ties favour the two-parameter map
    fitted = fit_platt(y, p) if best == "platt" else fit_isotonic(y, p)
    fitted["cv_log_loss"] = cv
    return fitted


def calibration_slope(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Slope of the logistic regression of outcomes on ``logit(p)`` (Cox 1958): 1 ideal, < 1 over-confident."""
    y, p = _check(y_true, y_prob)
    return _logistic_fit(_logit(p), y, l2=0.0)[0]
