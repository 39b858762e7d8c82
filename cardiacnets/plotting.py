"""The 12-lead ECG on standard paper as a matplotlib figure, with an optional saliency overlay.

A convenience over :mod:`cardiacnets.ecgpaper` (which lays the page out once for SVG, PNG and PDF): 25 mm/s,
10 mm/mV (less, and said so, when traces would leave their rows), three rows of four 2.5-s columns and a 10-s lead II
rhythm strip, a calibration pulse at the start of each row. The figure prints at true scale at its nominal size.
"""

from __future__ import annotations

import numpy as np

from cardiacnets.ecgpaper.layout import layout_page
from cardiacnets.ecgpaper.mpl import ecg_figure, figure_bytes


def plot_ecg_paper(
    signal_mv: np.ndarray,
    fs: float,
    *,
    saliency: np.ndarray | None = None,
    title: str | None = None,
    start_s: float = 0.0,
    dpi: int = 110,
):  # noqa: ANN201 - returns a matplotlib Figure
    """Draw the 10 s of ``signal_mv`` (12, n) mV at ``fs`` Hz from ``start_s`` on ECG paper; ``saliency`` (12, m) >= 0
    over that window is drawn as evidence strips under each lead. Returns the matplotlib figure."""
    page = layout_page(signal_mv, fs, start_s=start_s, saliency=saliency)
    return ecg_figure(page, title=title, dpi=dpi)


def figure_png(fig) -> bytes:  # noqa: ANN001
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    return figure_bytes(fig, "png")
