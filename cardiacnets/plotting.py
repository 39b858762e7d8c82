"""The 12-lead ECG on standard paper, with an optional saliency overlay.

Standard print layout: 25 mm/s, 10 mm/mV, a 1-mm minor and 5-mm major grid; four columns of 2.5 s (I/II/III, aVR/aVL/
aVF, V1-V3, V4-V6), each lead showing its own 2.5-s window, and a 10-s lead II rhythm strip below. Drawing is in
millimetres so the figure prints at true scale at its nominal size.
"""

from __future__ import annotations

import io

import numpy as np

from cardiacnets.record import LEADS

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_MM_PER_INCH = 25.4


def _grid(ax, width: float, height: float) -> None:  # noqa: ANN001 - matplotlib Axes
    from matplotlib.collections import LineCollection

    for step, colour, lw in ((1.0, "#f6c6c6", 0.3), (5.0, "#e89a9a", 0.7)):
        xs = np.arange(0, width + 1e-9, step)
        ys = np.arange(0, height + 1e-9, step)
        segments = [((x, 0), (x, height)) for x in xs] + [((0, y), (width, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=lw, zorder=0))


def plot_ecg_paper(
    signal_mv: np.ndarray,
    fs: float,
    *,
    saliency: np.ndarray | None = None,
    title: str | None = None,
    dpi: int = 110,
):  # noqa: ANN201 - returns a matplotlib Figure
    """Draw ``signal_mv`` (12, n) mV at ``fs`` Hz on ECG paper; ``saliency`` (12, m) >= 0 over the first 10 s, drawn
    as a shaded band behind each lead (values scaled to the maximum). Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    signal_mv = np.asarray(signal_mv, dtype=np.float64)
    n_show = int(min(signal_mv.shape[1], round(10.0 * fs)))
    t = np.arange(n_show) / fs
    width = 10.0 * MM_PER_S
    height = ROW_MM * 4 + 5.0
    fig = plt.figure(figsize=(width / _MM_PER_INCH * 1.02, (height + (8 if title else 0)) / _MM_PER_INCH), dpi=dpi)
    ax = fig.add_axes((0.01, 0.0, 0.98, height / (height + (8 if title else 0))))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    _grid(ax, width, height)
    sal = None
    if saliency is not None:
        sal = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
        sal = sal / sal.max() if sal.max() > 0 else sal

    def draw(lead: str, t0: float, t1: float, baseline: float, label_x: float) -> None:
        row = LEADS.index(lead)
        sel = (t >= t0) & (t < t1)
        x = t[sel] * MM_PER_S
        ax.plot(x, baseline + signal_mv[row, :n_show][sel] * MM_PER_MV, color="black", lw=0.6, zorder=3)
        ax.text(label_x + 1, baseline + 7, lead, fontsize=7, zorder=4)
        if sal is not None:
            m = sal.shape[1]
            edges = np.linspace(0, 10.0, m + 1)
            for k in range(m):
                lo, hi = max(edges[k], t0), min(edges[k + 1], t1)
                if hi > lo and sal[row, k] > 0.05:
                    ax.axvspan(
                        lo * MM_PER_S,
                        hi * MM_PER_S,
                        ymin=(baseline - ROW_MM / 2) / height,
                        ymax=(baseline + ROW_MM / 2) / height,
                        color="#3b82f6",
                        alpha=0.45 * sal[row, k],
                        lw=0,
                        zorder=1,
                    )

    for r, row_leads in enumerate(LAYOUT):
        baseline = height - ROW_MM * (r + 0.5) - 2
        for c, lead in enumerate(row_leads):
            draw(lead, 2.5 * c, 2.5 * (c + 1), baseline, 2.5 * c * MM_PER_S)
    draw("II", 0.0, 10.0, ROW_MM * 0.5 + 1, 0.0)
    ax.text(width - 60, 1.5, "25 mm/s   10 mm/mV", fontsize=6, color="#555555", zorder=4)
    if title:
        fig.suptitle(title, fontsize=9, y=0.99)
    return fig


def figure_png(fig) -> bytes:  # noqa: ANN001
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
