"""``cnscreen inspect``: what an ECG file holds, in a JSON-ready dict and a terminal summary.

Patient identifiers (``meta["phi"]``: patient id, name, birth date) are left out unless ``include_phi`` is asked for.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cardiacnets.io import read_ecg
from cardiacnets.qc import run_qc
from cardiacnets.record import LEADS
from cardiacnets.reporting import format_value, json_ready

logger = logging.getLogger(__name__)

__all__ = ["format_inspection", "inspect_file"]


def inspect_file(path: str | os.PathLike[str], include_phi: bool = False) -> dict[str, Any]:
    """Read ``path`` (any supported format, detected from content) and describe it.

    Returns a JSON-ready dict: ``file``, ``format``, ``device``, ``acquired``, ``sampling_rate_hz``, ``duration_s``,
    ``n_samples``, ``stored_leads``/``derived_leads``/``missing_leads``, ``ignored_channels``, ``median_beat``
    (``present``, ``n_samples``, ``sampling_rate_hz``), ``age``, ``sex``, ``heart_rate``, ``filters``, ``qc`` (see
    :meth:`cardiacnets.qc.QcResult.to_dict`), ``warnings``; ``phi`` only when ``include_phi``. Raises the reader's
    :class:`~cardiacnets.errors.CardiacNetsError` for unreadable files.
    """
    record = read_ecg(path)
    meta = record.meta
    qc = run_qc(record.signal, record.fs, meta)
    median = record.median_beat
    report: dict[str, Any] = {
        "file": str(path),
        "format": meta.get("format_id") or meta.get("format"),
        "device": meta.get("device"),
        "acquired": meta.get("acquired"),
        "sampling_rate_hz": record.fs,
        "duration_s": round(record.duration_s, 3),
        "n_samples": record.n_samples,
        "leads": list(LEADS),
        "stored_leads": list(meta.get("stored_leads") or []),
        "derived_leads": list(meta.get("derived_leads") or []),
        "missing_leads": list(meta.get("missing_leads") or []),
        "ignored_channels": list(meta.get("ignored_channels") or []),
        "median_beat": {
            "present": median is not None,
            "n_samples": int(median.shape[1]) if median is not None else None,
            "sampling_rate_hz": record.median_fs if median is not None else None,
        },
        "age": meta.get("age"),
        "sex": meta.get("sex"),
        "heart_rate": meta.get("heart_rate"),
        "filters": meta.get("filters") or {},
        "qc": qc.to_dict(),
        "warnings": list(meta.get("warnings") or []),
    }
    if include_phi:
        report["phi"] = dict(meta.get("phi") or {})
    return json_ready(report)


def format_inspection(report: dict[str, Any]) -> str:
    """Readable multi-line summary of :func:`inspect_file`'s report (plain text, no markup)."""
    median = report.get("median_beat") or {}
    filters = report.get("filters") or {}
    qc = report.get("qc") or {}
    lines = [
        f"file            {report.get('file')}",
        f"format          {format_value(report.get('format'))}",
        f"device          {format_value(report.get('device'))}",
        f"acquired        {format_value(report.get('acquired'))}",
        f"sampling rate   {format_value(report.get('sampling_rate_hz'), 'Hz')}",
        f"duration        {format_value(report.get('duration_s'), 's')} ({report.get('n_samples')} samples per lead)",
        f"stored leads    {', '.join(report.get('stored_leads') or []) or '-'}",
        f"derived leads   {', '.join(report.get('derived_leads') or []) or '-'}",
        f"missing leads   {', '.join(report.get('missing_leads') or []) or '-'}",
    ]
    if report.get("ignored_channels"):
        lines.append(f"other channels  {', '.join(report['ignored_channels'])}")
    if median.get("present"):
        rate = format_value(median.get("sampling_rate_hz"), "Hz")
        lines.append(f"median beat     yes ({median.get('n_samples')} samples at {rate})")
    else:
        lines.append("median beat     no")
    lines.append(f"age / sex       {format_value(report.get('age'))} / {format_value(report.get('sex'))}")
    lines.append(f"heart rate      {format_value(report.get('heart_rate'), 'bpm')}")
    if filters:
        lines.append("filters         " + ", ".join(f"{k}={format_value(v)}" for k, v in filters.items()))
    if "phi" in report:
        phi = report["phi"] or {}
        lines.append("patient         " + (", ".join(f"{k}={format_value(v)}" for k, v in phi.items()) or "-"))
    verdict = "reliable" if qc.get("reliable") else "NOT RELIABLE"
    lines.append(f"signal QC       {verdict}")
    for finding in qc.get("findings") or []:
        lines.append(f"  {finding['severity']:<4}  {finding['code']}: {finding['message']}")
    for warning in report.get("warnings") or []:
        lines.append(f"warning         {warning}")
    return "\n".join(lines)
