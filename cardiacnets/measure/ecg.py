"""``measure_ecg``: heart rate, global intervals, QTc, frontal axes, rhythm and pacing of one 12-lead ECG.

Steps: QRS detection over leads and RR intervals (heart rate = 60 / mean RR); pacemaker spikes on the raw signal;
the median beat of the dominant morphology; global delineation of that beat (P onset, QRS onset and offset, T end);
intervals, QTc and axes from the fiducials; the rhythm from RR irregularity, P-wave presence and pacing.
"""

from __future__ import annotations

import logging

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.measure.beats import (
    INDEPENDENT_LEADS,
    MedianBeat,
    active_span,
    bandpass,
    detect_qrs,
    dominant_median_beat,
    spurious_beats,
)
from cardiacnets.measure.delineate import Fiducials, axes, delineate
from cardiacnets.measure.rhythm import (
    MIN_SPIKE_FS,
    P_MIN_FRACTION,
    P_MIN_MV,
    P_MIN_SNR,
    blank_spikes,
    classify_rhythm,
    is_paced,
    p_wave_consistency,
    pacemaker_spikes,
    rr_irregularity,
)
from cardiacnets.measure.schema import Measurements, qtc_bazett, qtc_fridericia
from cardiacnets.record import LEADS

logger = logging.getLogger(__name__)

_MIN_SECONDS = 2.0


def _check(signal: np.ndarray, fs: float) -> np.ndarray:
    x = np.asarray(signal)
    if x.ndim != 2 or x.shape[0] != len(LEADS):
        raise InputError(f"signal must be shaped (12, samples) in the order {', '.join(LEADS)}, got {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"signal must be numeric, got dtype {x.dtype}")
    if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not np.isfinite(fs) or fs <= 0:
        raise InputError(f"sampling rate must be a positive number of Hz, got {fs!r}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("signal holds NaN or infinite values")
    return x


def _p_present(x: np.ndarray, fs: float, beat: MedianBeat, fid: Fiducials) -> bool:
    """The median beat shows a P wave and it recurs in the beats (see :mod:`~cardiacnets.measure.rhythm`)."""
    if fid.p_onset is None or fid.p_offset is None:
        return False
    start = int(round(fid.p_onset * fs / 1000.0))
    stop = int(round(fid.p_offset * fs / 1000.0))
    if stop - start < 3:
        return False
    low = bandpass(beat.beat[list(INDEPENDENT_LEADS)], fs, None, 25.0)
    qrs_onset = int(round(fid.qrs_onset * fs / 1000.0))
    level = low[:, max(0, qrs_onset - int(0.02 * fs)) : max(1, qrs_onset - int(0.01 * fs))].mean(axis=1)
    median_p = low[:, start:stop]
    if float(np.max(np.linalg.norm(median_p - level[:, None], axis=0))) < P_MIN_MV:
        return False
    signal_low = bandpass(bandpass(x[list(INDEPENDENT_LEADS)], fs, 0.5, None), fs, None, 25.0)
    offsets = beat.aligned[beat.dominant] - beat.fiducial
    inside = (offsets + start >= 0) & (offsets + stop <= x.shape[1])
    index = offsets[inside, None] + np.arange(start, stop)[None, :]  # (beats, w)
    windows = signal_low[:, index].transpose(1, 0, 2)  # (beats, 8, w)
    fraction, snr = p_wave_consistency(windows)
    return fraction >= P_MIN_FRACTION and snr >= P_MIN_SNR


def _intervals(fid: Fiducials, rr_s: float, p_present: bool) -> dict[str, float | None]:
    qt = fid.t_end - fid.qrs_onset if fid.t_end is not None else None
    return {
        "pr_ms": fid.qrs_onset - fid.p_onset if p_present and fid.p_onset is not None else None,
        "qrs_ms": fid.qrs_offset - fid.qrs_onset,
        "qt_ms": qt,
        "qtc_bazett_ms": qtc_bazett(qt, rr_s),
        "qtc_fridericia_ms": qtc_fridericia(qt, rr_s),
    }


def _from_file_median(median_beat: np.ndarray, median_fs: float, paced: bool, notes: list[str]) -> Measurements:
    """QRS, QT and the QRS/T axes from the file's own median beat, when the rhythm strip yields no beats."""
    beat = np.asarray(median_beat, dtype=np.float64)
    if beat.shape[0] != len(LEADS) or beat.shape[-1] < 0.4 * median_fs or not np.all(np.isfinite(beat)):
        return Measurements(paced=paced, notes=tuple(notes))
    beat = beat - np.median(beat, axis=1, keepdims=True)
    velocity = np.abs(np.diff(bandpass(beat[list(INDEPENDENT_LEADS)], median_fs, None, 40.0), axis=1)).sum(axis=0)
    fid = delineate(beat, median_fs, int(np.argmax(velocity)), 1000.0)
    _, qrs_axis, t_axis = axes(beat, median_fs, fid)
    notes.append("no beats found in the rhythm: QRS, QT and axes from the file's median beat")
    return Measurements(
        qrs_ms=fid.qrs_offset - fid.qrs_onset,
        qt_ms=fid.t_end - fid.qrs_onset if fid.t_end is not None else None,
        qrs_axis_deg=qrs_axis,
        t_axis_deg=t_axis if fid.t_end is not None else None,
        paced=paced,
        notes=tuple(notes),
    )


def measure_ecg(
    signal: np.ndarray,
    fs: float,
    *,
    median_beat: np.ndarray | None = None,
    median_fs: float | None = None,
) -> Measurements:
    """Measure a 12-lead ECG.

    Args:
        signal: ``(12, n)`` mV in the order of :data:`~cardiacnets.record.LEADS`, at least 2 s.
        fs: sampling rate, Hz.
        median_beat: the file's own representative beat ``(12, m)`` mV, when it stores one. The intervals come from
            the median beat formed here (the same filtering and alignment for every vendor; cart medians are padded,
            filtered and aligned differently); the file's beat is delineated only when the rhythm yields fewer than
            two QRS complexes.
        median_fs: sampling rate of ``median_beat``, Hz.

    Returns:
        :class:`~cardiacnets.measure.schema.Measurements`; fields are None where not measurable (fewer than two
        beats: everything but QRS, QT and axes; no recurring P wave: PR and the P axis; no T end: QT and QTc).
        ``notes`` says what limited the measurement.

    Raises:
        InputError: a signal not shaped ``(12, n)``, non-finite values, or a bad ``fs``.
    """
    x = _check(signal, fs)
    fs = float(fs)
    notes: list[str] = []
    start, stop = active_span(x, fs)
    if stop - start < x.shape[1]:
        skipped = (x.shape[1] - stop + start) / fs
        notes.append(f"{skipped:.2f} s of flat signal at the edges (a calibration pulse) not measured")
        x = x[:, start:stop]
    spikes = pacemaker_spikes(x, fs)
    if spikes is None:
        notes.append(f"pacemaker spikes not detectable at {fs:g} Hz (needs >= {MIN_SPIKE_FS:g} Hz)")
    elif spikes.size:
        x = blank_spikes(x, spikes, fs)
    peaks = detect_qrs(x, fs) if x.shape[1] >= _MIN_SECONDS * fs else np.zeros(0, dtype=np.int64)
    paced = is_paced(spikes, peaks, fs)
    if peaks.size < 2:
        notes.append(f"fewer than two QRS complexes in {x.shape[1] / fs:.1f} s")
        if median_beat is not None and median_fs:
            return _from_file_median(median_beat, float(median_fs), paced, notes)
        return Measurements(paced=paced, notes=tuple(notes))
    beat = dominant_median_beat(x, fs, peaks)
    spurious = spurious_beats(beat.aligned, beat.dominant)
    if spurious.any():
        notes.append(f"{int(spurious.sum())} QRS-like artefact(s) between normal beats ignored")
    rr_s = np.diff(beat.aligned[~spurious]) / fs
    heart_rate = 60.0 / float(np.mean(rr_s))
    fid = delineate(beat.beat, fs, beat.fiducial, 1000.0 * float(np.median(rr_s)))
    p_present = _p_present(x, fs, beat, fid)
    p_axis, qrs_axis, t_axis = axes(beat.beat, fs, fid)
    rhythm = classify_rhythm(heart_rate, rr_irregularity(rr_s), p_present, paced)
    logger.debug("%d beats (%d dominant), rhythm %s", peaks.size, beat.n_beats, rhythm)
    return Measurements(
        heart_rate_bpm=heart_rate,
        **_intervals(fid, 60.0 / heart_rate, p_present),
        p_axis_deg=p_axis if p_present else None,
        qrs_axis_deg=qrs_axis,
        t_axis_deg=t_axis if fid.t_end is not None else None,
        rhythm=rhythm,
        paced=paced,
        notes=tuple(notes),
    )
