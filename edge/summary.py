"""Readable terminal summary of a screening result (rich renderables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def render_result(result: dict[str, Any]) -> Group:
    """Diseases with thresholds, subtype when cardiomyopathy is flagged, key phenotypes with ranges, QC, notes."""
    parts: list[Any] = []
    record = result.get("record", {})
    header = Text(f"{result.get('path')}  ", style="bold")
    header.append(f"{record.get('format')}  {record.get('sampling_rate_hz')} Hz  {record.get('duration_s')} s")
    parts.append(header)
    if result.get("note"):
        parts.append(Panel(Text(result["note"], style="bold yellow"), border_style="yellow"))
    if not result.get("reliable", True):
        parts.append(Text("Signal QC FAILED: scores are not reliable.", style="bold red"))

    risks = Table(title="Screening", title_justify="left", show_edge=False)
    for column in ("condition", "probability", "threshold", "result"):
        risks.add_column(column, justify="right" if column in ("probability", "threshold") else "left")
    for code, d in result["diseases"].items():
        flag = Text("FLAGGED", style="bold red") if d["flagged"] else Text("below threshold", style="green")
        risks.add_row(
            f"{d['name']} ({code})", f"{d['probability']:.3f}", f"{d['threshold']:.3f} ({d['operating_point']})", flag
        )
    parts.append(risks)

    subtype = result.get("subtype", {})
    if subtype.get("shown"):
        table = Table(title="Cardiomyopathy subtype", title_justify="left", show_edge=False)
        table.add_column("subtype")
        table.add_column("probability", justify="right")
        for name, p in sorted(subtype["probabilities"].items(), key=lambda kv: -kv[1]):
            table.add_row(name, f"{p:.3f}")
        parts.append(table)

    pheno = Table(title="Key CMR phenotypes (estimated from the ECG)", title_justify="left", show_edge=False)
    for column in ("phenotype", "value", "unit", "reference", ""):
        pheno.add_column(column, justify="right" if column in ("value",) else "left")
    for name, p in result.get("key_phenotypes", {}).items():
        ref = p.get("reference_range")
        mark = Text("out of range", style="bold red") if p.get("out_of_range") else Text("")
        pheno.add_row(name, f"{p['value']:.1f}", p["unit"], f"{ref[0]:g}-{ref[1]:g}" if ref else "-", mark)
    parts.append(pheno)

    qc = result.get("qc", {})
    findings = qc.get("findings") or []
    if findings:
        qc_table = Table(title="Signal QC", title_justify="left", show_edge=False)
        qc_table.add_column("severity")
        qc_table.add_column("lead")
        qc_table.add_column("finding")
        for f in findings:
            style = "red" if f.get("severity") == "fail" else "yellow"
            qc_table.add_row(
                Text(str(f.get("severity")), style=style), str(f.get("lead") or "-"), str(f.get("message"))
            )
        parts.append(qc_table)
    else:
        parts.append(Text("Signal QC: no findings", style="green"))
    for warning in record.get("warnings") or []:
        parts.append(Text(f"note: {warning}", style="dim"))
    return Group(*parts)
