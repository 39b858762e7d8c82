"""Global delineation of a 12-lead median beat: P onset and offset, QRS onset and offset, T end; frontal axes.

Global, as carts define the intervals: one set of fiducials for all leads (the earliest onset and the latest
offset any lead shows), found on spatial curves of the independent leads I, II, V1-V6 (III, aVR, aVL and aVF are
combinations of I and II):

- spatial velocity ``SV(t) = sqrt(sum_l (dx_l/dt)^2)`` (mV/ms, 40-Hz low-passed beat): QRS onset is where SV,
  walking back from the QRS's peak velocity, stays below 3 % of the way from the PR segment's noise to that peak
  for 8 ms; QRS offset the same forward at 8 %. A dip followed within 40 ms by renewed QRS-sized velocity (a notch,
  the plateau of a bundle-branch block) does not end the walk.
- T end (25-Hz low-passed beat): the T peak is the largest spatial distance from the PR-segment level after the ST
  segment; after the T wave's steepest descent, T end is where SV has fallen to 20 % of its value there. (The
  tangent method ends T 15-30 ms before the carts on the corpus; the velocity threshold agrees with them.)
- P wave: between the previous beat's T end and the QRS, the P peak is the largest spatial distance from the
  straight line joining the TP and PR levels; P onset and offset are where SV falls below 20 % of the P wave's own
  peak velocity.

The beat is first resampled to 1 kHz so that every fiducial has 1-ms resolution at any sampling rate. Axes come
from net areas in leads I and aVF over the P, QRS and T (QRS offset to T end) windows:
``atan2(2 aVF / sqrt(3), I)``, because aVF measures sqrt(3)/2 of the vertical component in Einthoven's triangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cardiacnets.measure.beats import INDEPENDENT_LEADS, bandpass
from cardiacnets.preprocess import resample_to

DELINEATION_FS = 1000.0
# Thresholds, as fractions between the beat's own isoelectric noise and its peak. One set for every record: chosen on
# the conformance corpus's cart measurements and checked on simulated ECGs (docs/intervals.md), never per file.
ONSET_FRACTION = 0.03  # QRS onset: spatial velocity under 3 % of the QRS peak velocity
OFFSET_FRACTION = 0.08  # QRS offset: under 8 % (the ST segment has its own slope)
P_FRACTION = 0.2  # P onset/offset: under 20 % of the P wave's peak velocity
T_FRACTION = 0.2  # T end: velocity down to 20 % of its value at the T wave's steepest descent
RUN_MS = 8.0  # a crossing counts when it lasts this long
T_SEARCH_MS = 700.0  # T end is looked for up to this long after QRS onset (and within 92 % of the RR)
_LEAD_I, _LEAD_AVF = 0, 5


@dataclass(frozen=True)
class Fiducials:
    """Global fiducials of a median beat, in ms from the beat's start (None where not found)."""

    p_onset: float | None
    p_offset: float | None
    qrs_onset: float
    qrs_offset: float
    t_end: float | None


def _spatial_velocity(x: np.ndarray, fs: float, smooth_ms: float) -> np.ndarray:
    """``(n,)`` mV/ms: magnitude of the first difference over +-``smooth_ms`` of the independent leads."""
    k = max(1, int(round(smooth_ms * fs / 1000.0)))
    padded = np.pad(x, ((0, 0), (k, k)), mode="edge")
    derivative = (padded[:, 2 * k :] - padded[:, : -2 * k]) / (2 * k * 1000.0 / fs)
    return np.sqrt(np.sum(derivative**2, axis=0))


def _first_run_below(values: np.ndarray, threshold: float, start: int, step: int, run: int, stop: int) -> int | None:
    """Walking from ``start`` by ``step`` (+1/-1) towards ``stop``: the first index that begins ``run`` consecutive
    samples below ``threshold``; None when the walk ends first."""
    count = 0
    for i in range(start, stop, step):
        if values[i] < threshold:
            count += 1
            if count >= run:
                return i - step * (run - 1)
        else:
            count = 0
    return None


def _isoelectric_noise(sv: np.ndarray, peak: int, ms: float) -> float:
    """Spatial velocity of the quietest 40 ms in the 250 ms before the QRS peak (the PR segment's noise)."""
    pre = sv[max(0, peak - int(250 * ms)) : max(1, peak - int(60 * ms))]
    width = max(1, int(40 * ms))
    if pre.size <= width:
        return 0.0
    return float(np.min(np.convolve(pre, np.ones(width) / width, mode="valid")))


def _walk_out(sv: np.ndarray, start: int, step: int, threshold: float, strong: float, limit: int, ms: float) -> int:
    """From ``start`` (inside the QRS) walk by ``step`` to the first lasting drop of ``sv`` below ``threshold``; a
    drop followed within 40 ms by renewed QRS activity (``sv`` >= ``strong``: a notch, a slurred plateau) does not
    end the QRS. Returns ``limit`` when the walk reaches it."""
    run = max(1, int(RUN_MS * ms))
    reach = max(1, int(40 * ms))
    position = start
    while True:
        found = _first_run_below(sv, threshold, position, step, run, limit)
        if found is None:
            return limit
        if step > 0:
            again = np.flatnonzero(sv[found : found + reach] >= strong)
            if again.size == 0:
                return found
            position = found + int(again[0])
        else:
            first = max(0, found - reach)
            again = np.flatnonzero(sv[first:found] >= strong)
            if again.size == 0:
                return found
            position = first + int(again[-1])


def _qrs_bounds(sv: np.ndarray, fiducial: int, fs: float) -> tuple[int, int]:
    """QRS onset and offset (samples) from the spatial velocity ``sv`` around ``fiducial``."""
    ms = fs / 1000.0
    lo, hi = max(0, fiducial - int(80 * ms)), min(sv.size, fiducial + int(80 * ms))
    peak = lo + int(np.argmax(sv[lo:hi]))
    noise = _isoelectric_noise(sv, peak, ms)
    height = sv[peak] - noise
    strong = noise + 0.25 * height
    earliest, latest = max(0, peak - int(150 * ms)), min(sv.size - 1, peak + int(200 * ms))
    onset = _walk_out(sv, peak, -1, noise + ONSET_FRACTION * height, strong, earliest, ms)
    offset = _walk_out(sv, peak, 1, noise + OFFSET_FRACTION * height, strong, min(latest, onset + int(240 * ms)), ms)
    return onset, offset


def _p_wave(low: np.ndarray, qrs_onset: int, fs: float, rr_ms: float, qt_ms: float | None) -> tuple[int, int] | None:
    """P onset and offset (samples) on the 25-Hz low-passed independent leads ``low`` ``(8, m)``, searched between
    the previous beat's T end (``qt_ms`` after its QRS onset, ``rr_ms`` earlier) and the QRS. The P peak is the
    largest spatial distance from the straight line joining the levels at the window's two ends (TP and PR
    segments), away from those ends; onset and offset are where the spatial velocity falls below ``P_FRACTION`` of
    the P wave's own peak velocity. None when the window is too short or the peak sits at its edge."""
    ms = fs / 1000.0
    earliest = min(400.0, 0.6 * rr_ms)
    if qt_ms is not None:
        earliest = min(earliest, rr_ms - qt_ms - 20.0)
    start = max(0, qrs_onset - int(earliest * ms))
    end = qrs_onset - int(15 * ms)
    if end - start < 60 * ms:
        return None
    segment = low[:, start:end]
    ramp = np.linspace(0.0, 1.0, segment.shape[1])[None, :]
    line = segment[:, :1] + (segment[:, -1:] - segment[:, :1]) * ramp
    magnitude = np.linalg.norm(segment - line, axis=0)
    peak = int(np.argmax(magnitude))
    if peak < 10 * ms or peak > magnitude.size - 10 * ms:
        return None
    peak += start
    sv = _spatial_velocity(low, fs, 4.0)
    sv_peak = float(sv[max(start, peak - int(80 * ms)) : peak + 1].max())
    baseline = float(np.percentile(sv[start:end], 10))
    threshold = baseline + P_FRACTION * (sv_peak - baseline)
    run = max(1, int(RUN_MS * ms))
    onset = _first_run_below(sv, threshold, peak - int(10 * ms), -1, run, start)
    offset = _first_run_below(sv, threshold, peak + int(10 * ms), 1, run, end)
    if onset is None:
        return None
    return onset, (offset if offset is not None else end)


def _t_end(x: np.ndarray, qrs_onset: int, qrs_offset: int, fs: float, rr_ms: float) -> int | None:
    """T end (samples) of the low-passed independent leads ``x`` ``(8, m)``: the T peak is the largest spatial
    distance from the isoelectric level after the ST segment; after the T wave's steepest descent, T end is the first
    sample where the spatial velocity has fallen to ``T_FRACTION`` of its value there. None when the search window
    (60 ms after the QRS to 700 ms after its onset, within 92 % of the RR) is too short or holds no descending T."""
    ms = fs / 1000.0
    reference = x[:, max(0, qrs_onset - int(25 * ms)) : max(1, qrs_onset - int(5 * ms))].mean(axis=1, keepdims=True)
    start = qrs_offset + int(60 * ms)
    stop = min(x.shape[1], qrs_onset + int(min(T_SEARCH_MS, 0.92 * rr_ms) * ms))
    if stop - start < 80 * ms:
        return None
    magnitude = np.linalg.norm(x[:, start:stop] - reference, axis=0)
    peak = int(np.argmax(magnitude))
    if peak >= magnitude.size - 3:
        return None
    box = np.ones(max(1, int(10 * ms))) / max(1, int(10 * ms))
    slope = np.convolve(np.gradient(magnitude), box, mode="same")
    steepest = peak + int(np.argmin(slope[peak:]))
    if slope[steepest] >= 0:
        return None
    velocity = np.convolve(_spatial_velocity(x[:, start:stop], fs, 8.0), box, mode="same")
    below = np.flatnonzero(velocity[steepest:] <= T_FRACTION * velocity[steepest])
    return start + steepest + (int(below[0]) if below.size else velocity.size - 1 - steepest)


def delineate(beat: np.ndarray, fs: float, fiducial: int, rr_ms: float) -> Fiducials:
    """Global fiducials of a median beat ``(12, m)`` mV at ``fs`` Hz whose QRS fiducial is at sample ``fiducial``;
    ``rr_ms`` bounds the P and T searches."""
    x = resample_to(beat[list(INDEPENDENT_LEADS)], fs, DELINEATION_FS)
    fid = int(round(fiducial * DELINEATION_FS / fs))
    smooth = bandpass(x, DELINEATION_FS, None, 40.0)
    sv = _spatial_velocity(smooth, DELINEATION_FS, 4.0)
    qrs_onset, qrs_offset = _qrs_bounds(sv, fid, DELINEATION_FS)
    low = bandpass(x, DELINEATION_FS, None, 25.0)
    t_end = _t_end(low, qrs_onset, qrs_offset, DELINEATION_FS, rr_ms)
    qt_ms = (t_end - qrs_onset) * 1000.0 / DELINEATION_FS if t_end is not None else None
    p = _p_wave(low, qrs_onset, DELINEATION_FS, rr_ms, qt_ms)
    to_ms = 1000.0 / DELINEATION_FS
    return Fiducials(
        p_onset=p[0] * to_ms if p else None,
        p_offset=p[1] * to_ms if p else None,
        qrs_onset=qrs_onset * to_ms,
        qrs_offset=qrs_offset * to_ms,
        t_end=t_end * to_ms if t_end is not None else None,
    )


def _net_area(beat: np.ndarray, fs: float, start_ms: float, end_ms: float, baseline_ms: float) -> np.ndarray:
    """Net area (mV ms) of each lead of ``beat`` over [start, end) ms, relative to its level at ``baseline_ms``."""
    i0, i1 = int(round(start_ms * fs / 1000.0)), int(round(end_ms * fs / 1000.0))
    b0 = int(round(baseline_ms * fs / 1000.0))
    level = beat[:, max(0, b0 - int(0.01 * fs)) : b0 + 1].mean(axis=1)
    if i1 <= i0:
        return np.zeros(beat.shape[0])
    return (beat[:, i0:i1] - level[:, None]).sum(axis=1) * 1000.0 / fs


def frontal_axis(area_i: float, area_avf: float) -> float | None:
    """Frontal-plane axis in degrees, (-180, 180], from lead I and aVF quantities; None when both are ~0."""
    if math.hypot(area_i, area_avf) < 1e-9:
        return None
    angle = math.degrees(math.atan2(2.0 * area_avf / math.sqrt(3.0), area_i))
    return 180.0 if angle <= -180.0 else angle


def axes(beat: np.ndarray, fs: float, fid: Fiducials) -> tuple[float | None, float | None, float | None]:
    """P, QRS and T frontal axes (degrees) of a median beat ``(12, m)`` mV from net areas in I and aVF."""
    baseline = fid.qrs_onset - 15.0
    results: list[float | None] = []
    windows = [
        (fid.p_onset, fid.p_offset, fid.p_onset),
        (fid.qrs_onset, fid.qrs_offset, baseline),
        (fid.qrs_offset, fid.t_end, baseline),
    ]
    for start, end, base in windows:
        if start is None or end is None or base is None:
            results.append(None)
            continue
        area = _net_area(beat, fs, start, end, base)
        results.append(frontal_axis(float(area[_LEAD_I]), float(area[_LEAD_AVF])))
    return results[0], results[1], results[2]
