"""``cnscreen FILE --report x.pdf``: the screening as one printable A4 landscape page.

The ECG is drawn at true scale (25 mm/s, 10 mm/mV or the reduced gain the page states) so that calipers work on the
print: the same layout as the HTML report's SVG (:mod:`cardiacnets.ecgpaper`). Above it, the header (file name only
unless ``include_phi``, acquisition, age/sex, rhythm and intervals); below it, the screening decisions, the key
phenotypes and the warnings that decide how far to trust them.
"""

from __future__ import annotations

import textwrap
from typing import Any

from cardiacnets.ecgpaper.mpl import MM_PER_INCH, draw_page, figure_bytes, page_axes
from cardiacnets.edge.report import header_facts, report_page, window_note

PAGE_W, PAGE_H = 297.0, 210.0  # A4 landscape, mm
_MARGIN = 10.0


def _warnings(result: dict[str, Any]) -> list[str]:
    lines = []
    if not result["qc"].get("reliable", True):
        lines.append("SIGNAL QUALITY CONTROL FAILED: the results are not reliable.")
    for key in ("note_paced", "note_ood", "note", "note_trust"):
        if result.get(key):
            lines.append(str(result[key]))
    return lines


def _results_lines(result: dict[str, Any]) -> list[str]:
    diseases = [
        f"{d['name']} ({code}) {d['probability']:.2f} " + (d["decision"].upper() if d["flagged"] else d["decision"])
        for code, d in result["diseases"].items()
    ]
    phenotypes = [
        f"{name} {p['value']:.0f} {p['unit']}" + (" (out of range)" if p.get("out_of_range") else "")
        for name, p in result["key_phenotypes"].items()
    ]
    scale = "calibrated" if result["model"].get("calibrated") else "uncalibrated"
    return [
        f"Screening ({scale} probabilities): " + "; ".join(diseases),
        "CMR phenotypes from the ECG: " + "; ".join(phenotypes),
    ]


def render_pdf(result: dict[str, Any], prepared: Any, *, signal: str = "raw", include_phi: bool = False) -> bytes:
    """The one-page PDF as bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    page, saliency_note = report_page(result, prepared, signal)
    fig = plt.figure(figsize=(PAGE_W / MM_PER_INCH, PAGE_H / MM_PER_INCH))
    canvas = page_axes(fig, 0, 0, PAGE_W, PAGE_H, PAGE_W, PAGE_H)
    model = result["model"]
    title = f"CardiacNets ECG screening  |  model {model.get('name')} {model.get('version')}"
    if model.get("trained_on_synthetic"):
        title += "  |  trained on SYNTHETIC data: not for clinical use"
    canvas.text(_MARGIN, _MARGIN, title, fontsize=10, weight="bold", va="top")
    facts = header_facts(result, include_phi=include_phi)
    per_column = -(-len(facts) // 4)
    for i, (label, value) in enumerate(facts):
        x = _MARGIN + (i // per_column) * 70
        y = _MARGIN + 7 + (i % per_column) * 4
        canvas.text(x, y, f"{label}: {textwrap.shorten(value, 48)}", fontsize=7, va="top")
    top = _MARGIN + 9 + per_column * 4
    left = (PAGE_W - page.width) / 2
    draw_page(canvas, page, x0=left, y0=top)
    y = top + page.height + 4
    note = window_note(result, page, signal) + f" Blue strips: model evidence ({saliency_note})."
    for line in textwrap.wrap(note, 190) + _results_lines(result) + _warnings(result):
        for part in textwrap.wrap(line, 175):
            canvas.text(_MARGIN, y, part, fontsize=7, va="top")
            y += 3.6
    canvas.text(_MARGIN, PAGE_H - _MARGIN + 3, "Screening aid only: probabilities and phenotype estimates come from a "
                "model; they are not a diagnosis.", fontsize=6, color="#555555")  # fmt: skip
    return figure_bytes(fig, "pdf")
