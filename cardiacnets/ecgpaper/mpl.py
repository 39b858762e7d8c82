"""The laid-out ECG page drawn with matplotlib (PNG, PDF), in millimetres on the figure's page."""

from __future__ import annotations

import io

import numpy as np

from cardiacnets.ecgpaper.layout import EcgPage

MM_PER_INCH = 25.4


def draw_grid(ax, x0: float, y0: float, width: float, height: float) -> None:  # noqa: ANN001 - matplotlib Axes
    """Minor (1 mm) and major (5 mm) grid over the box at ``(x0, y0)`` (y down)."""
    from matplotlib.collections import LineCollection

    for step, colour, lw in ((1.0, "#f6c6c6", 0.25), (5.0, "#e89a9a", 0.6)):
        xs = x0 + np.arange(0, width + 1e-9, step)
        ys = y0 + np.arange(0, height + 1e-9, step)
        segments = [((x, y0), (x, y0 + height)) for x in xs] + [((x0, y), (x0 + width, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=lw, zorder=0))


def draw_page(ax, page: EcgPage, *, x0: float = 0.0, y0: float = 0.0) -> None:  # noqa: ANN001 - matplotlib Axes
    """Draw ``page`` with its top-left corner at ``(x0, y0)`` mm on an axes whose y axis points down."""
    from matplotlib.patches import Rectangle

    draw_grid(ax, x0, y0, page.width, page.height)
    for strip in page.evidence:
        ax.add_patch(Rectangle((x0 + strip.x0, y0 + strip.y), strip.x1 - strip.x0, 2.5, lw=0, zorder=1,
                               color="#2563eb", alpha=0.15 + 0.7 * strip.strength))  # fmt: skip
    for pulse in page.pulses:
        ax.plot(x0 + pulse[0], y0 + pulse[1], color="black", lw=0.6, zorder=3)
    for trace in page.traces:
        ax.plot(x0 + trace.x, y0 + trace.y, color="black", lw=0.5, zorder=3, solid_joinstyle="round")
        ax.text(x0 + trace.box[0] + 1, y0 + trace.box[1] + 5, trace.lead, fontsize=7, zorder=4)
    for x in page.column_starts[1:]:
        ax.plot([x0 + x, x0 + x], [y0, y0 + page.grid_rows_mm], color="black", lw=0.4, zorder=3)


def page_axes(fig, left: float, top: float, width: float, height: float, page_w: float, page_h: float):  # noqa: ANN001, ANN201
    """Axes covering ``width`` x ``height`` mm at ``(left, top)`` mm of a ``page_w`` x ``page_h`` mm figure, with
    equal mm units and y pointing down; nothing drawn outside."""
    ax = fig.add_axes((left / page_w, 1 - (top + height) / page_h, width / page_w, height / page_h))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def ecg_figure(page: EcgPage, *, title: str | None = None, dpi: int = 110):  # noqa: ANN201 - matplotlib Figure
    """A figure holding only the ECG page (at true scale at its nominal size), with an optional title line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    margin, head = 3.0, (8.0 if title else 0.0)
    fig_w, fig_h = page.width + 2 * margin, page.height + head + 2 * margin + 4
    fig = plt.figure(figsize=(fig_w / MM_PER_INCH, fig_h / MM_PER_INCH), dpi=dpi)
    ax = page_axes(fig, margin, margin + head, page.width, page.height + 4, fig_w, fig_h)
    draw_page(ax, page)
    ax.text(page.width - 1, page.height + 3, page.gain_note, fontsize=6, color="#555555", ha="right")
    if title:
        fig.text(0.5, 1 - (margin + 5) / fig_h, title, fontsize=9, ha="center")
    return fig


def figure_bytes(fig, fmt: str = "png") -> bytes:  # noqa: ANN001
    """The figure encoded as ``fmt`` (png, pdf, svg); the figure is closed afterwards."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    return buffer.getvalue()
