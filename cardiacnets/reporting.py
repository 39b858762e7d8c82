"""Formatting shared by every report CardiacNets writes: numbers for Markdown and terminals, values for strict JSON.

This module owns how an estimate with a confidence interval reads in a report (:func:`format_estimate`: ``0.812
(0.774-0.845)``, ``n/a`` when undefined), how a scalar reads in a terminal summary (:func:`format_value`), and how
results become strict JSON: :func:`json_ready` turns numpy scalars and arrays, tuples and nested containers into
plain Python values with NaN/inf as ``null`` (strict JSON has no NaN), and :func:`json_default` is the ``default=``
hook of :func:`json.dumps` for numpy values. Pure functions of numpy and the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["format_estimate", "format_value", "json_default", "json_ready", "report_opening"]


def format_estimate(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``{"value": v, "ci": [lo, hi]}`` -> ``"v (lo-hi)"`` with ``digits`` decimals; ``"v"`` without an interval.

    ``"n/a"`` when the estimate, or its value, is missing or not finite (an undefined correlation, an empty split).
    """
    if not estimate or estimate.get("value") is None or not math.isfinite(estimate["value"]):
        return "n/a"
    text = f"{estimate['value']:.{digits}f}"
    ci = estimate.get("ci")
    return f"{text} ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})" if ci else text


def report_opening(title: str, synthetic: bool, setting: str, synthetic_note: str, command: str) -> list[str]:
    """The opening lines of a Markdown evaluation report: the title (``on the SYNTHETIC cohort`` appended when the
    cohort is synthetic), the setting paragraph (followed by ``synthetic_note`` when synthetic) and the command line.

    One place decides how a synthetic result is labelled, so that no report can forget it.
    """
    return [
        f"# {title}" + (" on the SYNTHETIC cohort" if synthetic else ""),
        "",
        setting + (f" {synthetic_note}" if synthetic else ""),
        "",
        command,
        "",
    ]


def format_value(value: Any, unit: str = "") -> str:
    """A scalar for a terminal summary: ``-`` when missing or empty, floats in ``%g``, then the unit if any."""
    if value is None or value == "" or value == []:
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip()


def json_ready(value: Any) -> Any:
    """Nested containers, tuples, numpy scalars and arrays -> plain JSON values; NaN/inf become ``None``.

    Mapping keys become strings (as :func:`json.dumps` writes them), so the result survives ``allow_nan=False``.
    """
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as Python values, anything else a
    ``TypeError`` (so a stray object fails instead of being written as its ``repr``)."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
