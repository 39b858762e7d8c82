"""Readable terminal summary of a screening result (rich renderables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_DECISION_STYLE = {"flagged": ("FLAGGED", "bold red"), "clear": ("clear", "green"),
                   "indeterminate": ("indeterminate", "bold yellow")}  # fmt: skip


def render_result(result: dict[str, Any]) -> Group:
    """Model identity, warnings (synthetic model, out of distribution, QC), diseases with thresholds and decisions,
    subtype when cardiomyopathy is flagged, key phenotypes with intervals and ranges, QC findings."""
    parts = [*_header(result), _disease_table(result)]
    subtype = result.get("subtype", {})
    if subtype.get("shown"):
        table = Table(title="Cardiomyopathy subtype", title_justify="left", show_edge=False)
        table.add_column("subtype")
        table.add_column("probability", justify="right")
        for name, p in sorted(subtype["probabilities"].items(), key=lambda kv: -kv[1]):
            table.add_row(name, f"{p:.3f}")
        parts.append(table)
    parts.append(_phenotype_table(result))
    parts.append(_qc_table(result))
    for warning in result.get("record", {}).get("warnings") or []:
        parts.append(Text(f"note: {warning}", style="dim"))
    return Group(*parts)


def _header(result: dict[str, Any]) -> list[Any]:
    record, model = result.get("record", {}), result.get("model", {})
    header = Text(f"{result.get('path')}  ", style="bold")
    header.append(f"{record.get('format')}  {record.get('sampling_rate_hz')} Hz  {record.get('duration_s')} s")
    if result.get("lead_set"):
        header.append(f"  lead set {result['lead_set']}")
    parts: list[Any] = [header]
    parts.append(
        Text(
            f"model {model.get('name')} {model.get('version')} (digest {str(model.get('digest'))[:12]})"
            + ("  trained on synthetic data" if model.get("trained_on_synthetic") else ""),
            style="dim",
        )
    )
    if result.get("note"):
        parts.append(Panel(Text(result["note"], style="bold yellow"), border_style="yellow"))
    if result.get("note_ood"):
        parts.append(Panel(Text(result["note_ood"], style="bold red"), border_style="red", title="out of distribution"))
    if result.get("note_trust"):
        parts.append(Text(result["note_trust"], style="yellow"))
    if result.get("note_paced"):
        parts.append(Text(result["note_paced"], style="bold red"))
    measured = result.get("measurements")
    if measured:
        parts.append(Text(measurement_line(measured), style="bold"))
    if not result.get("qc", {}).get("reliable", True):
        parts.append(Text("Signal QC FAILED: the results are not reliable.", style="bold red"))
    return parts


def _disease_table(result: dict[str, Any]) -> Table:
    points = sorted({d["operating_point"] for d in result["diseases"].values()})
    scale = "calibrated probabilities" if result.get("model", {}).get("calibrated") else "uncalibrated probabilities"
    risks = Table(title=f"Screening ({scale}; {', '.join(points)} thresholds)", title_justify="left", show_edge=False)
    for column in ("condition", "probability", "threshold (band)", "result"):
        risks.add_column(column, justify="right" if column == "probability" else "left")
    for code, d in result["diseases"].items():
        label, style = _DECISION_STYLE[d["decision"]]
        band = d.get("band")
        risks.add_row(
            f"{d['name']} ({code})",
            f"{d['probability']:.3f}",
            f"{d['threshold']:.3f}" + (f" ({band[0]:.3f}-{band[1]:.3f})" if band else ""),
            Text(label, style=style),
        )
    return risks


def _phenotype_table(result: dict[str, Any]) -> Table:
    pheno = Table(title="Key CMR phenotypes (estimated from the ECG)", title_justify="left", show_edge=False)
    coverage = result.get("model", {}).get("interval_coverage")
    interval_title = f"{coverage:.0%} interval" if coverage else "interval"
    for column in ("phenotype", "value", interval_title, "unit", "reference", ""):
        pheno.add_column(column, justify="right" if column in ("value",) else "left")
    for name, p in result.get("key_phenotypes", {}).items():
        ref = p.get("reference_range")
        interval = p.get("interval")
        mark = Text("out of range", style="bold red") if p.get("out_of_range") else Text("")
        pheno.add_row(name, f"{p['value']:.1f}", f"{interval[0]:.1f}-{interval[1]:.1f}" if interval else "-",
                      p["unit"], f"{ref[0]:g}-{ref[1]:g}" if ref else "-", mark)  # fmt: skip
    return pheno


def _qc_table(result: dict[str, Any]) -> Any:
    findings = result.get("qc", {}).get("findings") or []
    if not findings:
        return Text("Signal QC: no findings", style="green")
    qc_table = Table(title="Signal QC", title_justify="left", show_edge=False)
    qc_table.add_column("severity")
    qc_table.add_column("lead")
    qc_table.add_column("finding")
    for f in findings:
        style = "red" if f.get("severity") == "fail" else "yellow"
        qc_table.add_row(Text(str(f.get("severity")), style=style), str(f.get("lead") or "-"), str(f.get("message")))
    return qc_table


def _value(value: Any, unit: str) -> str:
    return "-" if value is None else f"{value:g} {unit}" if isinstance(value, (int, float)) else str(value)


def measurement_line(measured: dict[str, Any]) -> str:
    """One line: rhythm, heart rate, PR, QRS, QT/QTc, axes (``-`` where not measurable)."""
    rhythm = str(measured.get("rhythm") or "rhythm not measurable") + (" (paced)" if measured.get("paced") else "")
    return (
        f"{rhythm}, {_value(measured.get('heart_rate_bpm'), 'bpm')}; PR {_value(measured.get('pr_ms'), 'ms')}, "
        f"QRS {_value(measured.get('qrs_ms'), 'ms')}, QT {_value(measured.get('qt_ms'), 'ms')}, QTc "
        f"{_value(measured.get('qtc_bazett_ms'), 'ms')} (Bazett) / {_value(measured.get('qtc_fridericia_ms'), 'ms')}"
        f" (Fridericia); axes P {_value(measured.get('p_axis_deg'), 'deg')}, QRS "
        f"{_value(measured.get('qrs_axis_deg'), 'deg')}, T {_value(measured.get('t_axis_deg'), 'deg')}"
    )
