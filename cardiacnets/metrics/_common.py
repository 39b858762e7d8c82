"""What every statistics family of :mod:`cardiacnets.metrics` shares: the input checks (numeric, finite, 0/1
labels, class indices, equal lengths, both classes present, confidence levels, counts), the random-generator and
bootstrap-size rules, the chunked stratified resampler and percentile interval both AUROC families use, the JSON
helpers, and the result types common to several families (:class:`Estimate`, :class:`Proportion`,
:class:`ComparisonResult`). Nothing here is a metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cardiacnets.errors import InputError

# Bootstrap work is done in chunks of at most this many (replicate x subject) cells, to bound memory.
_MAX_BOOTSTRAP_CELLS = 4_000_000
_MIN_BOOTSTRAP = 100


# ----------------------------------------------------------------------------------------------------------------------
# Result types


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_ci(ci: tuple[float, float] | None) -> list[float | None] | None:
    if ci is None or not all(math.isfinite(float(v)) for v in ci):
        return None
    return [float(ci[0]), float(ci[1])]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval ``ci = (low, high)``.

    ``value`` is NaN (and ``ci`` ``(nan, nan)``) when the quantity is undefined, e.g. a PPV with no predicted positives.
    """

    value: float
    ci: tuple[float, float]
    confidence: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        """``{"value": float | None, "ci": [low, high] | None}``, strict-JSON-ready."""
        return {"value": _json_float(self.value), "ci": _json_ci(self.ci)}


@dataclass(frozen=True)
class Proportion(Estimate):
    """A proportion ``count / total`` with its Wilson score interval."""

    count: int
    total: int


@dataclass(frozen=True)
class ComparisonResult:
    """A two-sided comparison of model A with model B on one quantity (AUC, sensitivity, correlation ...).

    ``difference`` is ``estimate_a - estimate_b``; ``ci`` is its interval when the method provides one. ``statistic``
    is the test statistic (z, chi-square or the smaller discordant count for exact McNemar; NaN for the bootstrap).
    """

    method: str
    estimate_a: float
    estimate_b: float
    difference: float
    statistic: float
    p_value: float
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    details: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "a": _json_float(self.estimate_a),
            "b": _json_float(self.estimate_b),
            "difference": {"value": _json_float(self.difference), "ci": _json_ci(self.ci)},
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            **{key: _json_float(value) for key, value in self.details.items()},
        }


# ----------------------------------------------------------------------------------------------------------------------
# Input checks


def _check_confidence(confidence: float) -> float:
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not (0.0 < value < 1.0):
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    return value


def _z_critical(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _as_float_array(values: ArrayLike, name: str, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric") from None
    if arr.ndim not in ndim:
        expected = " or ".join(f"{d}-D" for d in ndim)
        raise InputError(f"{name} must be {expected}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{name} contains {int(bad.sum())} NaN or infinite value(s)")
    return arr


def _as_binary(values: ArrayLike, name: str = "y_true") -> np.ndarray:
    arr = _as_float_array(values, name)
    bad = (arr != 0.0) & (arr != 1.0)
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(arr[bad])[:5])
        raise InputError(f"{name} must hold only 0/1 (or False/True); found {shown}")
    return arr == 1.0


def _as_class_labels(values: ArrayLike, n_classes: int, name: str = "y_true") -> np.ndarray:
    arr = _as_float_array(values, name)
    if np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() >= n_classes:
        raise InputError(
            f"{name} must hold integer class indices in [0, {n_classes}); found values {np.unique(arr)[:8]}"
        )
    return arr.astype(np.int64)


def _check_same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise InputError(f"inputs differ in length: {shown}")
    return next(iter(lengths.values()))


def _require_both_classes(y: np.ndarray, minimum: int = 1, what: str = "this metric") -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < minimum or n_neg < minimum:
        raise InputError(
            f"{what} needs at least {minimum} positive and {minimum} negative subject(s); "
            f"got {n_pos} positive and {n_neg} negative"
        )
    return n_pos, n_neg


def _resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng).__name__}")


def _check_n_bootstrap(n_bootstrap: int) -> int:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < _MIN_BOOTSTRAP:
        raise InputError(f"n_bootstrap must be an integer >= {_MIN_BOOTSTRAP}, got {n_bootstrap!r}")
    return int(n_bootstrap)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or float(value) != round(float(value)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------------------------------------
# Resampling shared by the AUROC and one-vs-rest bootstraps


def _stratified_resamples(
    strata: Sequence[np.ndarray], n_bootstrap: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Yield chunks ``(c, n)`` of subject indices, each row a bootstrap resample drawn within each stratum.

    Columns are ordered stratum by stratum, so the labels of a resample are the concatenated stratum labels.
    """
    n = sum(len(s) for s in strata)
    chunk = max(1, _MAX_BOOTSTRAP_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        c = min(chunk, n_bootstrap - start)
        yield np.concatenate([s[rng.integers(0, len(s), size=(c, len(s)))] for s in strata], axis=1)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
