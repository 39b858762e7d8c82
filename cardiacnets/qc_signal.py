"""The signal measurements behind signal QC (:mod:`cardiacnets.qc`), pure numpy on ``(leads, n)`` mV records: the
zero-phase 0.5-Hz Butterworth high-pass (cached per rate) and its cheaper block-rate baseline split, a Welch PSD,
non-overlapping windows, run lengths, the robust per-lead peak-to-peak amplitude, the median beat, the signed QRS
and P deflections of a median beat, and the device's calibration pulse at a record's start or end. Each fast path
states the scipy or numpy call it reproduces (tests/test_qc.py holds them to it)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps


@functools.lru_cache(maxsize=32)
def _highpass_sos(fs: float, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order Butterworth high-pass ``(sos (1, 6), steady-state initial conditions zi (1, 2))``."""
    sos = sps.butter(2, cutoff, btype="highpass", fs=fs, output="sos")
    return sos, sps.sosfilt_zi(sos)  # (scipy's Cython sosfilt needs writable arrays, so these stay writable)


def _highpass(x: np.ndarray, fs: float, cutoff: float = 0.5) -> np.ndarray:
    """Zero-phase 0.5-Hz high-pass of ``(leads, n)`` mV along time: ``scipy.signal.sosfiltfilt(sos, x, axis=-1,
    padlen=min(n - 1, 3 fs))`` step for step (odd extension, forward and backward passes started in steady state),
    with the filter and its initial conditions cached per rate. float64, same shape."""
    if x.shape[-1] < 16 or cutoff >= fs / 2:
        return x - np.median(x, axis=-1, keepdims=True)
    x = np.asarray(x, dtype=np.float64)
    pad = min(x.shape[-1] - 1, int(3 * fs))
    y = _filtfilt_steady(_odd_extend(x, pad), fs, cutoff)
    return y[..., pad : y.shape[-1] - pad] if pad > 0 else y


def _odd_extend(x: np.ndarray, pad: int) -> np.ndarray:
    """``(leads, n)`` -> ``(leads, n + 2 pad)``: scipy.signal's odd extension (point reflection about each end)."""
    if pad <= 0:
        return x
    head = 2 * x[..., :1] - x[..., pad:0:-1]
    tail = 2 * x[..., -1:] - x[..., -2 : -(pad + 2) : -1]
    return np.concatenate((head, x, tail), axis=-1)


def _filtfilt_steady(ext: np.ndarray, fs: float, cutoff: float) -> np.ndarray:
    """The forward and backward Butterworth high-pass passes of sosfiltfilt over an already extended signal, each
    started in the steady state of its first sample. Same shape."""
    sos, zi = _highpass_sos(float(fs), float(cutoff))
    zi = zi.reshape(zi.shape[0], *([1] * (ext.ndim - 1)), 2)  # (sections, 1, ..., 2)
    y, _ = sps.sosfilt(sos, ext, axis=-1, zi=zi * ext[..., :1])
    y, _ = sps.sosfilt(sos, y[..., ::-1], axis=-1, zi=zi * y[..., -1:])
    return y[..., ::-1]


def _baseline_split(x: np.ndarray, fs: float, cutoff: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(high, low)``: :func:`_highpass` of ``(leads, n)`` mV and its complement ``x - high`` (the baseline), float64,
    for a fraction of the cost.

    The complement of the zero-phase Butterworth high-pass is a low-pass falling as ``1 / (1 + (f / 0.5 Hz)^4)``
    (1e-5 at 10 Hz), so it can run at about 50 Hz: the odd extension is built at the full rate exactly as
    :func:`_highpass` builds it (the edge transients depend on the first and last samples), averaged over blocks of
    ``fs // 50`` samples (a box filter with nulls on the multiples of the block rate, 50-Hz mains included), filtered
    at the block rate, and the baseline is interpolated back linearly between block centres. On real ECGs it matches
    the full-rate filter to about 1 uV, under any ECG's quantisation step (tests/test_qc.py). Rates under 100 Hz and
    records under 4 s (where the edge transients dominate and the saving is small) use the full-rate filter."""
    n = x.shape[-1]
    block = int(fs // 50)
    if block < 2 or n < 4 * fs or cutoff >= fs / 2:
        high = _highpass(x, fs, cutoff)
        return high, x - high
    pad = min(n - 1, int(3 * fs))
    ext = _odd_extend(np.asarray(x, dtype=np.float64), pad)
    m = ext.shape[-1] // block
    # Block means (a matrix product: numpy's mean over a short last axis is several times slower).
    means = ext[..., : m * block].reshape(ext.shape[:-1] + (m, block)) @ np.full(block, 1.0 / block)  # (leads, m)
    centres = means - _filtfilt_steady(means, fs / block, cutoff)  # the baseline at the block centres
    # Linear interpolation block by block: sample j of block k lies s_j = (j - (block - 1) / 2) / block blocks from
    # centre k, so it is centres[k] + s_j * (centres[k + 1] - centres[k]) after the centre and
    # centres[k] + s_j * (centres[k] - centres[k - 1]) before it (the outermost differences extrapolate).
    first, last = pad // block, -(-(pad + n) // block)  # the blocks that hold samples pad .. pad + n - 1
    step = np.diff(centres, axis=-1)  # (leads, m - 1)
    ahead = step[..., min(first, m - 2) : last][..., : last - first]
    behind = step[..., max(first - 1, 0) : last - 1]
    if first == 0:
        behind = np.concatenate((step[..., :1], behind), axis=-1)
    if ahead.shape[-1] < last - first:
        ahead = np.concatenate((ahead, step[..., -1:]), axis=-1)
    after, before = _interpolation_offsets(block)
    low = centres[..., first:last, None] + ahead[..., None] * after + behind[..., None] * before  # (leads, k, block)
    low = low.reshape(low.shape[:-2] + (-1,))[..., pad - first * block : pad - first * block + n]
    return x - low, low


@functools.lru_cache(maxsize=32)
def _interpolation_offsets(block: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of a block's samples from its centre in block units, split into the part after the centre (``>= 0``,
    0 before it) and the part before it (``<= 0``): two ``(block,)`` arrays."""
    offsets = (np.arange(block) - (block - 1) / 2) / block
    after, before = np.maximum(offsets, 0.0), np.minimum(offsets, 0.0)
    after.setflags(write=False)  # shared through the cache
    before.setflags(write=False)
    return after, before


@functools.lru_cache(maxsize=32)
def _hann(length: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", length)``)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    window.setflags(write=False)  # shared through the cache
    return window


def _welch(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD of ``(leads, n)`` mV along time, as ``scipy.signal.welch(x, fs=fs, nperseg=nperseg, axis=-1)``
    (periodic Hann window, half overlap, constant detrend, one-sided density, mean over segments): ``(freqs (f,) Hz,
    psd (leads, f) mV^2/Hz)``, f = nperseg // 2 + 1."""
    window = _hann(nperseg)
    step = nperseg - nperseg // 2
    segments = np.lib.stride_tricks.sliding_window_view(x, nperseg, axis=-1)[..., ::step, :]  # (leads, k, nperseg)
    segments = segments - segments.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(segments * window, axis=-1)  # (leads, k, f)
    psd = (spectrum.real**2 + spectrum.imag**2).mean(axis=-2) / (fs * np.sum(window**2))
    psd[..., 1 : psd.shape[-1] - (1 - nperseg % 2)] *= 2  # one-sided: fold the negative frequencies (not DC/Nyquist)
    return np.fft.rfftfreq(nperseg, 1.0 / fs), psd


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    """``(leads, n)`` -> ``(leads, n_windows, length)`` non-overlapping (at least one, the whole lead if short)."""
    n = x.shape[-1]
    length = max(1, min(length, n))
    count = n // length
    return x[..., : count * length].reshape(x.shape[:-1] + (count, length))


def lead_peak_to_peak(
    signal: np.ndarray, fs: float, window_s: float = 2.0, *, highpassed: np.ndarray | None = None
) -> np.ndarray:
    """Robust peak-to-peak amplitude of each lead of ``(leads, n)`` mV -> ``(leads,)`` mV.

    Baseline wander is removed (0.5 Hz high-pass), the lead is cut into ``window_s`` windows (each holds at least one
    beat) and the median of the windows' max - min is returned, so one artefact does not dominate. ``highpassed`` is
    that high-pass when the caller already has it."""
    hp = _highpass(np.asarray(signal, dtype=np.float64), fs) if highpassed is None else highpassed
    win = _windows(hp, int(round(window_s * fs)))
    return np.median(win.max(axis=-1) - win.min(axis=-1), axis=-1)


def median_beat(
    signal: np.ndarray, fs: float, *, highpassed: np.ndarray | None = None, leads: Sequence[int] | None = None
) -> tuple[np.ndarray, int] | None:
    """Median beat of ``(leads, n)`` mV: ``((leads, m) mV, index of the QRS fiducial)`` or None without beats.

    QRS fiducials are peaks of the summed (per-lead normalised) squared slope (50-ms smoothed) at least 0.33 s
    apart and above 30 % of a typical beat's peak; beats are cut from 0.3 s before to 0.4 s after and the
    sample-wise median is taken. ``highpassed``: the 0.5-Hz high-pass of ``signal`` when the caller already has it.
    ``leads``: the rows whose median beat is wanted (all by default; every lead still helps find the beats).
    """
    hp = _highpass(np.asarray(signal, dtype=np.float64), fs) if highpassed is None else highpassed
    slope = np.diff(hp, axis=-1) ** 2
    # Each lead is normalised by its own 99th percentile so one noisy lead cannot drown the others' QRS complexes.
    scale = _upper_percentile(slope, 99.0)[:, None]
    energy = np.sum(slope / np.where(scale > 0, scale, 1.0), axis=0)
    width = max(1, int(round(0.05 * fs)))
    energy = np.convolve(energy, np.ones(width) / width, mode="same")
    candidates, props = sps.find_peaks(energy, distance=max(1, int(0.33 * fs)), height=0.0)
    if candidates.size < 3:
        return None
    # Reference height: the median of the k largest candidates, k = beats expected at 40/min, so that a few
    # artefacts larger than any QRS do not raise the bar above the real beats.
    expected = max(3, int(energy.size / fs / 1.5))
    reference = np.median(np.sort(props["peak_heights"])[-expected:])
    if reference <= 0:
        return None
    peaks = candidates[props["peak_heights"] >= 0.3 * reference]
    before, after = int(round(0.3 * fs)), int(round(0.4 * fs))
    peaks = peaks[(peaks >= before) & (peaks + after <= hp.shape[-1])]
    if peaks.size < 3:
        return None
    index = peaks[:, None] + np.arange(-before, after)  # (beats, m) sample indices
    rows = hp if leads is None else hp[list(leads)]
    return _median_of_few(rows[:, index]), before  # rows[:, index]: (leads, beats, m)


def _upper_percentile(x: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(x, q, axis=-1)`` (linear interpolation), bit for bit, for ``(rows, n)`` and q near 100.

    Only the top ``n - floor((n - 1) q / 100)`` values of a row matter. The same number of largest block maxima (of
    four times as many blocks) bounds them from below, so one cheap partition of the block maxima and one of the few
    values above that bound replace numpy's partition of the whole row. ``(rows,)``, units of ``x``."""
    rows, n = x.shape
    virtual = (n - 1) * (q / 100)
    lo = int(np.floor(virtual))
    gamma = virtual - lo
    step = min(lo + 1, n - 1) - lo  # 1, or 0 at q = 100
    need = n - lo  # the top `need` values hold the order statistics lo and lo + step
    n_blocks = 4 * need
    if n < 2 * n_blocks:
        return np.percentile(x, q, axis=-1)
    size = n // n_blocks
    maxima = x[:, : n_blocks * size].reshape(rows, n_blocks, size).max(axis=-1)  # (rows, n_blocks)
    # At least `need` values reach the need-th largest block maximum, so every one of the top `need` values does.
    bound = np.partition(maxima, n_blocks - need, axis=-1)[:, n_blocks - need]
    out = np.empty(rows)
    for row in range(rows):
        top = x[row][x[row] >= bound[row]]
        first = top.size - need
        ordered = np.partition(top, [first, first + step])
        low, high = ordered[first], ordered[first + step]
        diff = high - low
        # numpy's _lerp, including its switch to interpolating from the upper value when gamma >= 0.5.
        out[row] = high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma
    return out


def _median_of_few(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=1)``, bit for bit, for a short axis 1 (beats): one sort over that axis is several times
    faster than numpy's partition per output element. ``(a, k, b)`` -> ``(a, b)``."""
    ordered = np.sort(values, axis=1)
    middle = values.shape[1] // 2
    if values.shape[1] % 2:
        return ordered[:, middle]
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2


def _wave_polarity(beat: np.ndarray, fiducial: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed QRS and P deflections of each lead of a median beat ``(leads, m)`` mV -> two ``(leads,)`` mV arrays."""

    last = beat.shape[-1] - 1

    def at(seconds: float) -> int:
        return min(max(fiducial + round(seconds * fs), 0), last)

    baseline = beat[:, at(-0.10) : at(-0.06) + 1].mean(axis=-1)  # PR segment
    qrs = beat[:, at(-0.06) : at(0.06) + 1] - baseline[:, None]
    qrs_polarity = qrs.max(axis=-1) + qrs.min(axis=-1)  # R minus |Q/S|: sign of the dominant deflection
    p_wave = beat[:, at(-0.26) : at(-0.10) + 1] - baseline[:, None]
    idx = np.argmax(np.abs(p_wave), axis=-1)
    p_polarity = p_wave[np.arange(p_wave.shape[0]), idx]
    return qrs_polarity, p_polarity


def _runs_at(mask: np.ndarray, min_run: int) -> np.ndarray:
    """:func:`_longest_runs` of the rows of ``mask`` that hold at least ``min_run`` True values; 0 for the others (no
    run there can reach ``min_run``). An ECG touches its extreme at a handful of samples, so this usually skips the
    run-length pass altogether."""
    out = np.zeros(mask.shape[0], dtype=np.int64)
    rows = np.flatnonzero(np.count_nonzero(mask, axis=-1) >= min_run)
    if rows.size:
        out[rows] = _longest_runs(mask[rows])
    return out


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Length of the longest run of True in each row of a ``(rows, n)`` boolean array -> ``(rows,)`` int."""
    rows, n = mask.shape
    padded = np.zeros((rows, n + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=-1)  # +1 where a run starts, -1 one past where it ends
    start_rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # row-major order: the k-th end closes the k-th start
    longest = np.zeros(rows, dtype=np.int64)
    np.maximum.at(longest, start_rows, ends - starts)
    return longest


@dataclass(frozen=True)
class CalibrationPulse:
    """A calibration pulse at one edge of a record, in sample indices of the record.

    ``top``: ``[start, stop)`` of the flat top; ``span``: ``[start, stop)`` of the samples to leave out of the signal
    checks (the pulse with its flat shoulders, through to the record's edge); ``rows``: the leads that carry it;
    ``height_mV``: the median step from the shoulders to the top over those leads.
    """

    edge: str
    top: tuple[int, int]
    span: tuple[int, int]
    rows: tuple[int, ...]
    height_mV: float


def find_calibration_pulses(
    x: np.ndarray,
    fs: float,
    *,
    min_s: float,
    max_s: float,
    min_leads: int,
    height_mV: float = 1.0,
    edge_s: float = 2.0,
    tol_mV: float = 0.001,
) -> list[CalibrationPulse]:
    """Calibration pulses of a ``(leads, n)`` mV record: a flat top ``min_s``-``max_s`` s long, ``height_mV`` (+-20 %)
    above the samples on both sides of it (or on its inner side when it touches the record's edge), within ``edge_s``
    s (at most a quarter of the record) of the start or the end, at the same samples (+-1) in at least ``min_leads``
    leads. "Flat" is sample-to-sample steps of at most ``tol_mV`` and a peak-to-peak under ``4 tol_mV``: a pulse is
    drawn digitally, constant to well under one least significant bit of any cart, where an isoelectric ECG segment
    moves by a bit every few samples. Returns at most one pulse per edge, start first."""
    n = x.shape[-1]
    width = min(int(round(edge_s * fs)), n // 4)
    min_len, max_len = max(3, int(round(min_s * fs))), max(3, int(round(max_s * fs)))
    if width < min_len + 4:
        return []
    pulses = []
    for edge in ("start", "end"):
        offset = 0 if edge == "start" else n - width
        window = x[:, offset : offset + width]
        candidates = _pulse_tops(window, edge, min_len, max_len, tol_mV, height_mV)
        found = _common_pulse(candidates, edge, width, min_leads)
        if found is None:
            continue
        (a, b), (s0, s1), rows, height = found
        span = (0, offset + s1) if edge == "start" else (offset + s0, n)
        pulses.append(CalibrationPulse(edge, (offset + a, offset + b), span, rows, height))
    return pulses


def _pulse_tops(
    window: np.ndarray, edge: str, min_len: int, max_len: int, tol_mV: float, height_mV: float
) -> list[tuple[int, int, int, int, int, float]]:
    """Flat runs of an edge window ``(leads, width)`` mV that could be a pulse top, as ``(row, start, stop,
    shoulder_start, shoulder_stop, step_mV)``: ``min_len``-``max_len`` samples long, rising ``height_mV`` (+-20 %)
    from the samples on both sides (one transition sample allowed), or from the inner side when the run touches the
    record's edge; the step is the smaller rise. Shoulders are the flat runs right before and after the top (the
    pulse's baseline segments). Runs are found for all leads at once; only the few that pass are looked at alone."""
    rows, width = window.shape
    padded = np.zeros((rows, width + 1), dtype=np.int8)
    padded[:, 1:-1] = np.abs(np.diff(window, axis=-1)) <= tol_mV  # sample i and i + 1 level
    marks = np.diff(padded, axis=-1)  # +1 where a flat run starts, -1 at its last sample
    run_rows, starts = np.nonzero(marks == 1)
    _, lasts = np.nonzero(marks == -1)  # row-major: the k-th last sample closes the k-th start
    stops = lasts + 1  # runs are [start, stop)
    level = window[run_rows, starts]
    before, after = np.where(starts >= 2, starts - 2, starts - 1), np.where(stops + 1 < width, stops + 1, stops)
    rise_in = np.where(before >= 0, level - window[run_rows, np.clip(before, 0, width - 1)], np.nan)
    rise_out = np.where(after < width, level - window[run_rows, np.clip(after, 0, width - 1)], np.nan)
    with np.errstate(invalid="ignore"):
        fits_in = (rise_in >= 0.8 * height_mV) & (rise_in <= 1.2 * height_mV)
        fits_out = (rise_out >= 0.8 * height_mV) & (rise_out <= 1.2 * height_mV)
    at_edge = starts == 0 if edge == "start" else stops == width
    lengths = stops - starts
    keep = (lengths >= min_len) & (lengths <= max_len) & (fits_in & fits_out | at_edge & (fits_in | fits_out))
    tops = []
    for k in np.flatnonzero(keep).tolist():
        row, a, b = int(run_rows[k]), int(starts[k]), int(stops[k])
        if np.ptp(window[row, a:b]) > 4 * tol_mV:
            continue
        shoulder_before = k > 0 and run_rows[k - 1] == row and stops[k - 1] >= a - 1 and lengths[k - 1] <= max_len
        shoulder_after = k + 1 < len(starts) and run_rows[k + 1] == row and starts[k + 1] <= b + 1
        s0 = int(starts[k - 1]) if shoulder_before else max(a - 1, 0)
        s1 = int(stops[k + 1]) if shoulder_after and lengths[k + 1] <= max_len else min(b + 1, width)
        tops.append((row, a, b, s0, s1, float(np.nanmin([rise_in[k], rise_out[k]]))))
    return tops


def _common_pulse(
    tops: list[tuple[int, int, int, int, int, float]], edge: str, width: int, min_leads: int
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, ...], float] | None:
    """The pulse top shared (+-1 sample) by the most leads among :func:`_pulse_tops`' ``(row, start, stop,
    shoulder_start, shoulder_stop, step_mV)``: ``((start, stop), (span_start, span_stop), rows, median step)`` or None
    when fewer than ``min_leads`` leads share one. Ties go to the top nearest the edge."""
    best: tuple[int, int, list[tuple[int, int, int, int, int, float]]] | None = None
    for _, a, b, *_rest in tops:
        support = [c for c in tops if abs(c[1] - a) <= 1 and abs(c[2] - b) <= 1]
        rows = {c[0] for c in support}
        distance = a if edge == "start" else width - b
        if best is None or (len(rows), -distance) > (len({c[0] for c in best[2]}), -best[0]):
            best = (distance, a, support)
    if best is None:
        return None
    support = best[2]
    rows = tuple(sorted({c[0] for c in support}))
    if len(rows) < min_leads:
        return None
    top = (min(c[1] for c in support), max(c[2] for c in support))
    span = (min(c[3] for c in support), max(c[4] for c in support))
    return top, span, rows, float(np.median([c[5] for c in support]))
