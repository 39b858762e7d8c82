"""The report every converter run writes beside its dataset: ``conversion_report.json`` and ``conversion_report.md``.

What a researcher needs to trust a converted dataset without reading the logs: how many subjects were converted and
into which splits, how many were skipped and why (with one example message per reason, identifiers masked), how many
labels are known, positive and unknown per disease, and the assumptions the converter made that could not be checked
against the real data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.files import atomic_write_text
from cardiacnets.labels import LABEL_NAMES

__all__ = ["REPORT_NAME", "label_counts", "write_report"]

REPORT_NAME = "conversion_report"


def label_counts(labels: np.ndarray) -> dict[str, dict[str, int]]:
    """Per disease: subjects with the label known (0 or 1), positive, and unknown (NaN), from ``(n, 5)`` labels."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, len(LABEL_NAMES))
    known = np.isfinite(labels)
    return {name: {"known": int(known[:, k].sum()), "positive": int((labels[:, k] == 1).sum()),
                   "unknown": int((~known[:, k]).sum())} for k, name in enumerate(LABEL_NAMES)}  # fmt: skip


def write_report(
    out_dir: str | os.PathLike[str],
    manifest: Mapping[str, Any],
    skipped: Mapping[str, int],
    assumptions: Sequence[str],
    *,
    title: str,
    label_flags: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Write the report of a finished conversion into ``out_dir`` and return it.

    ``label_flags`` counts the subjects by the reason their labels are unknown (``no_imaging_date``,
    ``no_linked_stay``, ...)."""
    from cardiacnets.datasets import open_dataset

    out = Path(out_dir)
    source = dict(manifest.get("source") or {})
    report: dict[str, Any] = {
        "title": title,
        "converted": int(manifest.get("n_subjects") or 0),
        "splits": manifest.get("split_counts"),
        "skipped": dict(skipped),
        "skip_examples": source.get("skip_examples", {}),
        "label_flags": dict(label_flags or {}),
        "assumptions": list(assumptions),
        "source": {k: v for k, v in source.items() if k not in ("skipped", "skip_examples")},
    }
    if "labels" in (manifest.get("modalities") or []) and report["converted"]:
        report["labels"] = label_counts(open_dataset(out, "all", verify=False).labels_array())
    atomic_write_text(out / f"{REPORT_NAME}.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(out / f"{REPORT_NAME}.md", _markdown(report))
    return report


def _markdown(report: Mapping[str, Any]) -> str:
    lines = [f"# {report['title']}", "", f"Converted: {report['converted']} subjects; splits: {report['splits']}.", ""]
    skipped = report["skipped"]
    lines += ["## Skipped", ""]
    if skipped:
        lines += ["| reason | subjects | example |", "|---|---|---|"]
        lines += [f"| {reason} | {count} | {report['skip_examples'].get(reason, '')} |"
                  for reason, count in sorted(skipped.items())]  # fmt: skip
    else:
        lines.append("None.")
    if "labels" in report:
        lines += ["", "## Labels", "", "| disease | known | positive | unknown |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {c['known']} | {c['positive']} | {c['unknown']} |" for name, c in report["labels"].items()
        ]
    if report["label_flags"]:
        reasons = ", ".join(f"{flag} ({count})" for flag, count in sorted(report["label_flags"].items()))
        lines += ["", f"Labels unknown because: {reasons}."]
    lines += ["", "## Assumptions (not checkable without the data)", ""]
    lines += [f"- {a}" for a in report["assumptions"]] or ["- none"]
    return "\n".join(lines) + "\n"
