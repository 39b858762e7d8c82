"""The laid-out ECG page as an SVG document in millimetres (prints at true scale; scales on screen).

Structure, for renderers and tests alike: one ``<g class="lead" data-lead=... data-row=...>`` per trace holding its
``<rect class="box">`` (the space it may use) and its ``<path class="trace">``; calibration pulses are
``<path class="pulse">``; evidence strips are ``<rect class="evidence">`` under the traces.
"""

from __future__ import annotations

import html

import numpy as np

from cardiacnets.ecgpaper.layout import EcgPage

_GRID = (
    "<defs><pattern id='cn-minor' width='1' height='1' patternUnits='userSpaceOnUse'>"
    "<path d='M1 0H0V1' fill='none' stroke='#f6c6c6' stroke-width='0.1'/></pattern>"
    "<pattern id='cn-major' width='5' height='5' patternUnits='userSpaceOnUse'>"
    "<rect width='5' height='5' fill='url(#cn-minor)'/>"
    "<path d='M5 0H0V5' fill='none' stroke='#e89a9a' stroke-width='0.2'/></pattern></defs>"
)


def _path(x: np.ndarray, y: np.ndarray) -> str:
    """SVG path data for a polyline, 0.01-mm precision."""
    if len(x) == 0:
        return ""
    points = [f"{a:.2f} {b:.2f}" for a, b in zip(x, y, strict=True)]
    return "M" + "L".join(points)


def page_svg(page: EcgPage, *, title: str = "12-lead ECG") -> str:
    """An ``<svg>`` element (inline in HTML or saved as a file) of ``page``."""
    w, h = page.width, page.height
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='ecg-paper' viewBox='0 0 {w:g} {h:g}' "
        f"width='{w:g}mm' height='{h:g}mm' role='img' aria-label='{html.escape(title)}'>",
        _GRID,
        f"<rect width='{w:g}' height='{h:g}' fill='#fff'/><rect width='{w:g}' height='{h:g}' fill='url(#cn-major)'/>",
    ]
    for strip in page.evidence:
        parts.append(
            f"<rect class='evidence' data-lead='{strip.lead}' x='{strip.x0:.2f}' y='{strip.y:.2f}' "
            f"width='{strip.x1 - strip.x0:.2f}' height='2.5' fill='#2563eb' "
            f"fill-opacity='{0.15 + 0.7 * strip.strength:.2f}'/>"
        )
    for pulse in page.pulses:
        path = _path(pulse[0], pulse[1])
        parts.append(f"<path class='pulse' d='{path}' fill='none' stroke='#000' stroke-width='0.3'/>")
    for trace in page.traces:
        x, y, bw, bh = trace.box
        parts.append(
            f"<g class='lead' data-lead='{trace.lead}' data-row='{trace.row}' "
            f"data-clipped='{str(trace.clipped).lower()}'>"
            f"<rect class='box' x='{x:.2f}' y='{y:.2f}' width='{bw:.2f}' height='{bh:.2f}' fill='none'/>"
            f"<path class='trace' d='{_path(trace.x, trace.y)}' fill='none' stroke='#000' stroke-width='0.3' "
            "stroke-linejoin='round'/>"
            f"<text x='{x + 1:.2f}' y='{y + 5:.2f}' font-size='3.2' font-family='sans-serif'>{trace.lead}</text></g>"
        )
    for x in page.column_starts[1:]:  # short marks where the 3x4 columns change lead
        parts.append(f"<path class='divider' d='M{x:.2f} 0V{page.grid_rows_mm:.2f}' stroke='#000' stroke-width='0.2'/>")
    parts.append("</svg>")
    return "".join(parts)
