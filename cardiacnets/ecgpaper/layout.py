"""Where every trace of a standard 12-lead printout goes, in millimetres on the paper (no drawing here).

Standard layout: 25 mm/s, 10 mm/mV, a 1-mm minor and 5-mm major grid; three rows of four 2.5-s columns (I/II/III,
aVR/aVL/aVF, V1-V3, V4-V6), each lead showing its own quarter of the window, and a 10-s lead II rhythm strip below.
Each row starts with a 1-mV calibration pulse drawn at the page's gain. When a trace at 10 mm/mV would leave its row
(tall QRS complexes), the gain drops to 5 or 2.5 mm/mV for the whole page and the page says so. A trace is clipped to
its row's box rather than drawn over its neighbours; the layout reports whether it had to clip.

The window is the stretch of the record that the model saw: ``start_s`` (seconds from the record's first sample; <0
when the model's input was zero-padded) to ``start_s + 10``. Saliency (``(12, m)`` >= 0 over the model's window, m
equal bins) maps onto the same time axis, so evidence lines up with the beats it came from.

The paper's y axis points down (as SVG does): y = 0 is the top of the ECG area.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cardiacnets.record import LEADS

MM_PER_S = 25.0
STANDARD_GAIN = 10.0  # mm/mV
GAINS = (10.0, 5.0, 2.5)  # tried in order
ROW_MM = 30.0
ROWS = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"
WINDOW_S = 10.0
PULSE_MM = 10.0  # left margin of each row holding the calibration pulse (2 mm lead-in, 5 mm = 0.2 s pulse)
SALIENCY_MM = 2.5  # evidence strip at the bottom of each lead's box
EVIDENCE_MIN = 0.25  # bins under a quarter of the strongest are left blank, so the strips point somewhere
_HEADROOM_MM = 1.0


@dataclass(frozen=True)
class Trace:
    """One lead's polyline inside its box. ``x``/``y`` in mm on the paper (NaN breaks the line)."""

    lead: str
    row: int
    box: tuple[float, float, float, float]  # x, y, width, height
    x: np.ndarray
    y: np.ndarray
    clipped: bool
    t0: float  # seconds from the window start
    t1: float


@dataclass(frozen=True)
class Evidence:
    """A saliency bin drawn as a strip under a trace: ``x0..x1`` mm at the bottom of ``box``, strength 0..1."""

    lead: str
    x0: float
    x1: float
    y: float
    strength: float


@dataclass(frozen=True)
class EcgPage:
    """Everything a renderer needs: paper size, gain, traces, calibration pulses, evidence strips."""

    width: float
    height: float
    gain: float  # mm/mV
    start_s: float
    traces: list[Trace]
    pulses: list[np.ndarray]  # (2, k) x/y polylines
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def gain_note(self) -> str:
        if self.gain == STANDARD_GAIN:
            return "25 mm/s, 10 mm/mV"
        return f"25 mm/s, {self.gain:g} mm/mV (reduced from 10 mm/mV so that the traces stay in their rows)"

    @property
    def column_starts(self) -> list[float]:
        """x (mm) where each column of the 3x4 grid starts."""
        return sorted({t.box[0] for t in self.traces if t.row < len(ROWS)})

    @property
    def grid_rows_mm(self) -> float:
        """Height of the 3x4 grid above the rhythm strip."""
        return ROW_MM * len(ROWS)

    @property
    def any_clipped(self) -> bool:
        return any(trace.clipped for trace in self.traces)


def _segment(signal: np.ndarray, fs: float, start_s: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (s from the window start) and values of ``signal`` between window times ``t0`` and ``t1``."""
    first = max(int(np.ceil((start_s + t0) * fs)), 0)
    last = min(int(np.ceil((start_s + t1) * fs)), signal.shape[-1])
    if last <= first:
        return np.zeros(0), np.zeros(0)
    index = np.arange(first, last)
    return index / fs - start_s, signal[index]


def _decimate(t: np.ndarray, v: np.ndarray, per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's minimum and maximum (in order) when there are more than ``per_mm`` x 10 samples per mm."""
    bucket = int(len(t) / max((t[-1] - t[0]) * MM_PER_S * per_mm, 1)) if len(t) > 1 else 1
    if bucket < 3:
        return t, v
    n = len(v) // bucket * bucket
    tb, vb = t[:n].reshape(-1, bucket), v[:n].reshape(-1, bucket)
    lo, hi = vb.argmin(axis=1), vb.argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    rows = np.arange(len(vb))
    tt = np.stack([tb[rows, first], tb[rows, second]], axis=1).ravel()
    vv = np.stack([vb[rows, first], vb[rows, second]], axis=1).ravel()
    return np.concatenate([tt, t[n:]]), np.concatenate([vv, v[n:]])


def _extent(signal: np.ndarray, fs: float, start_s: float) -> float:
    """Largest robust excursion (mV) of any printed lead from its own median, over the window."""
    worst = 0.0
    for lead in LEADS:
        _, v = _segment(signal[LEADS.index(lead)], fs, start_s, 0.0, WINDOW_S)
        if len(v):
            centred = np.abs(v - np.median(v))
            worst = max(worst, float(np.percentile(centred, 99.5)))
    return worst


def choose_gain(signal: np.ndarray, fs: float, start_s: float) -> float:
    """10 mm/mV unless a trace would leave its row; then 5, then 2.5."""
    extent = _extent(signal, fs, start_s)
    for gain in GAINS:
        if extent * gain <= ROW_MM / 2 - _HEADROOM_MM:
            return gain
    return GAINS[-1]


def _trace(
    signal: np.ndarray, fs: float, start_s: float, lead: str, row: int, t0: float, t1: float, gain: float
) -> Trace:
    box = (PULSE_MM + t0 * MM_PER_S, row * ROW_MM, (t1 - t0) * MM_PER_S, ROW_MM)
    baseline_y = box[1] + ROW_MM / 2
    t, v = _segment(signal[LEADS.index(lead)], fs, start_s, t0, t1)
    if len(v):
        v = v - np.median(v)
        t, v = _decimate(t, v, per_mm=10.0)
    y = baseline_y - v * gain
    top, bottom = box[1] + 0.5, box[1] + box[3] - 0.5
    clipped = bool(len(y) and (y.min() < top or y.max() > bottom))
    return Trace(lead, row, box, PULSE_MM + t * MM_PER_S, np.clip(y, top, bottom), clipped, t0, t1)


def _pulse(row: int, gain: float) -> np.ndarray:
    """A 1-mV, 0.2-s calibration pulse at the start of ``row``."""
    base = row * ROW_MM + ROW_MM / 2
    top = base - gain
    xs = [0.0, 2.0, 2.0, 7.0, 7.0, PULSE_MM]
    ys = [base, base, top, top, base, base]
    return np.array([xs, ys])


def _evidence(saliency: np.ndarray, traces: list[Trace]) -> list[Evidence]:
    sal = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    peak = sal.max() if sal.size else 0.0
    if peak <= 0:
        return []
    sal = sal / peak
    edges = np.linspace(0.0, WINDOW_S, sal.shape[1] + 1)
    strips = []
    for trace in traces:
        row = LEADS.index(trace.lead)
        x, y, _, h = trace.box
        for k in range(sal.shape[1]):
            lo, hi = max(edges[k], trace.t0), min(edges[k + 1], trace.t1)
            if hi > lo and sal[row, k] >= EVIDENCE_MIN:
                x0 = PULSE_MM + lo * MM_PER_S
                strips.append(Evidence(trace.lead, x0, PULSE_MM + hi * MM_PER_S, y + h - SALIENCY_MM, sal[row, k]))
    return strips


def layout_page(
    signal_mv: np.ndarray, fs: float, *, start_s: float = 0.0, saliency: np.ndarray | None = None,
    gain: float | None = None,
) -> EcgPage:  # fmt: skip
    """Lay out ``signal_mv`` (12, n) mV at ``fs`` Hz: the 10-s window from ``start_s`` on standard paper."""
    signal = np.asarray(signal_mv, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise ValueError(f"expected (12, n) millivolts, got {signal.shape}")
    gain = gain or choose_gain(signal, fs, start_s)
    quarter = WINDOW_S / 4
    traces = [
        _trace(signal, fs, start_s, lead, r, c * quarter, (c + 1) * quarter, gain)
        for r, row_leads in enumerate(ROWS)
        for c, lead in enumerate(row_leads)
    ]
    traces.append(_trace(signal, fs, start_s, RHYTHM_LEAD, len(ROWS), 0.0, WINDOW_S, gain))
    pulses = [_pulse(r, gain) for r in range(len(ROWS) + 1)]
    evidence = _evidence(saliency, traces) if saliency is not None else []
    width = PULSE_MM + WINDOW_S * MM_PER_S
    return EcgPage(width, ROW_MM * (len(ROWS) + 1), gain, float(start_s), traces, pulses, evidence)
