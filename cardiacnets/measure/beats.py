"""Beats: band-pass filters, multi-lead QRS detection, RR intervals and the median (representative) beat.

The QRS detector is Pan-Tompkins in spirit, over leads: each independent lead (I, II, V1-V6) is band-passed
5-25 Hz, differentiated and squared; the per-lead energies, each normalised by its own 99th percentile so that one
noisy lead cannot drown the others, are summed and smoothed (80 ms). Peaks at least 200 ms apart above a fraction
of a typical beat's peak are QRS complexes; long gaps are searched again at a lower threshold.

The median beat is formed from the dominant morphology only (beats whose QRS correlates with the median QRS), each
beat aligned to that median QRS by cross-correlation, so premature ventricular beats and artefacts do not blur it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

#: Rows of the independent leads I, II, V1..V6 in the canonical order (III, aVR, aVL, aVF are combinations of I and
#: II: counting them would weight the frontal plane twice in every spatial measure).
INDEPENDENT_LEADS: tuple[int, ...] = (0, 1, 6, 7, 8, 9, 10, 11)

_MIN_RR_S = 0.2  # 300 beats/min
_PRE_S = 0.55  # median-beat window before the QRS fiducial (PR up to ~400 ms)
_POST_S = 0.85  # and after it (QT up to ~700 ms)
_MAX_LAG_S = 0.04  # beats are aligned within +-40 ms of their detected fiducial (wide QRS: the energy peak wanders)


def bandpass(x: np.ndarray, fs: float, low_hz: float | None, high_hz: float | None, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``(..., samples)`` along the last axis (same units). ``low_hz`` or
    ``high_hz`` None: high- or low-pass only; a cut-off at or above 0.45 ``fs`` is dropped."""
    nyquist_safe = 0.45 * fs
    if high_hz is not None and high_hz >= nyquist_safe:
        high_hz = None
    if low_hz is None and high_hz is None:
        return np.asarray(x, dtype=np.float64)
    if low_hz is None:
        sos = sps.butter(order, high_hz, btype="lowpass", fs=fs, output="sos")
    elif high_hz is None:
        sos = sps.butter(order, low_hz, btype="highpass", fs=fs, output="sos")
    else:
        sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    x = np.asarray(x, dtype=np.float64)
    pad = min(x.shape[-1] - 1, int(3 * fs))
    return sps.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=max(pad, 0))


def qrs_energy(signal: np.ndarray, fs: float) -> np.ndarray:
    """Summed, per-lead normalised squared slope of the 5-25 Hz band of the independent leads, 80-ms smoothed:
    ``(n,)``, dimensionless."""
    band = bandpass(signal[list(INDEPENDENT_LEADS)], fs, 5.0, 25.0)
    slope = np.gradient(band, axis=-1) ** 2
    scale = np.percentile(slope, 99.0, axis=-1)[:, None]
    energy = np.sum(slope / np.where(scale > 0, scale, 1.0), axis=0)
    width = max(1, int(round(0.08 * fs)))
    energy = np.convolve(energy, np.ones(width) / width, mode="same")
    # Leads of pure noise add a floor of about 1 each: measure beats from the floor, not from 0.
    return energy - np.median(energy)


def detect_qrs(signal: np.ndarray, fs: float) -> np.ndarray:
    """QRS fiducials (sample indices, ascending) of a ``(12, n)`` mV signal at ``fs`` Hz; empty when none."""
    energy = qrs_energy(signal, fs)
    distance = max(1, int(_MIN_RR_S * fs))
    candidates, props = sps.find_peaks(energy, distance=distance, height=0.0)
    if candidates.size == 0:
        return candidates
    heights = props["peak_heights"]
    # A typical beat: the median of the k largest candidates, k = beats expected at 40/min, so that a few artefacts
    # larger than any QRS do not raise the bar above the real beats.
    expected = max(2, int(energy.size / fs / 1.5))
    reference = float(np.median(np.sort(heights)[-expected:]))
    if reference <= 0:
        return candidates[:0]
    peaks = candidates[heights >= 0.3 * reference]
    if peaks.size >= 3:
        peaks = _search_back(peaks, candidates, heights, reference, fs)
    return peaks


def _search_back(
    peaks: np.ndarray, candidates: np.ndarray, heights: np.ndarray, reference: float, fs: float
) -> np.ndarray:
    """Add the largest lower candidate (>= 12 % of the reference) inside RR gaps over 1.6 x the median RR."""
    rr = np.diff(peaks)
    typical = np.median(rr)
    added = []
    for start, gap in zip(peaks[:-1], rr, strict=True):
        if gap <= 1.6 * typical:
            continue
        inside = (candidates > start + 0.36 * typical) & (candidates < start + gap - 0.36 * typical)
        inside &= heights >= 0.12 * reference
        if inside.any():
            added.append(candidates[inside][np.argmax(heights[inside])])
    return np.sort(np.concatenate([peaks, np.asarray(added, dtype=peaks.dtype)])) if added else peaks


@dataclass(frozen=True)
class MedianBeat:
    """A representative beat.

    Attributes:
        beat: float64 ``(12, m)`` mV, 0.5-Hz high-passed, sampled at ``fs``.
        fs: Hz.
        fiducial: index of the QRS fiducial in ``beat``.
        n_beats: beats that went into it.
        dominant: boolean per detected QRS, True for the beats of the dominant morphology.
        aligned: the QRS fiducials (samples in the record) after alignment to the dominant QRS (unchanged for the
            other beats): sample ``aligned[k] - fiducial + j`` of the record lines up with sample ``j`` of ``beat``.
    """

    beat: np.ndarray
    fs: float
    fiducial: int
    n_beats: int
    dominant: np.ndarray
    aligned: np.ndarray


def _windows(x: np.ndarray, centres: np.ndarray, before: int, after: int) -> np.ndarray:
    """``(leads, beats, before + after)`` windows of ``x`` around ``centres``, NaN outside the record."""
    padded = np.pad(x, ((0, 0), (before, after)), constant_values=np.nan)
    index = centres[:, None] + np.arange(before + after)[None, :]  # into padded: centre - before + before
    return padded[:, index]


def _align(qrs: np.ndarray, template: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Lag (samples) of each beat's QRS ``(beats, leads, w)`` that best matches ``template`` ``(leads, w)``, and the
    correlation at that lag."""
    n_beats, _, width = qrs.shape
    core = slice(max_lag, width - max_lag)
    reference = template[:, core].ravel()
    reference = reference - reference.mean()
    best_lag = np.zeros(n_beats, dtype=int)
    best_corr = np.full(n_beats, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        shifted = qrs[:, :, max_lag + lag : width - max_lag + lag].reshape(n_beats, -1)
        shifted = shifted - shifted.mean(axis=1, keepdims=True)
        denom = np.linalg.norm(shifted, axis=1) * np.linalg.norm(reference)
        corr = shifted @ reference / np.where(denom > 0, denom, np.inf)
        better = corr > best_corr
        best_lag[better], best_corr[better] = lag, corr[better]
    return best_lag, best_corr


def dominant_median_beat(signal: np.ndarray, fs: float, peaks: np.ndarray, min_correlation: float = 0.9) -> MedianBeat:
    """Median beat of the dominant morphology from a ``(12, n)`` mV signal and its QRS fiducials ``peaks``.

    Beats are cut from 0.55 s before to 0.85 s after the fiducial of the 0.5-Hz high-passed signal, their QRS
    (+-60 ms) aligned to the median QRS (+-40 ms), and the sample-wise median taken over the beats whose aligned QRS
    correlates >= ``min_correlation`` with it (all beats when fewer than half pass). ``peaks`` must not be empty.
    """
    x = bandpass(signal, fs, 0.5, None)
    before, after = int(round(_PRE_S * fs)), int(round(_POST_S * fs))
    max_lag = max(1, int(round(_MAX_LAG_S * fs)))
    half = int(round(0.06 * fs)) + max_lag
    independent = x[list(INDEPENDENT_LEADS)]
    qrs = np.nan_to_num(_windows(independent, peaks, half, half + 1)).transpose(1, 0, 2)  # (beats, 8, w)
    template = np.median(qrs, axis=0)
    lags, corr = _align(qrs, template, max_lag)
    dominant = corr >= min_correlation
    if dominant.sum() < max(1, peaks.size // 2):
        dominant = np.ones(peaks.size, dtype=bool)
    # Second pass: align to the median of the dominant beats, now that outliers are out of the template.
    template = np.median(qrs[dominant] if dominant.sum() > 1 else qrs, axis=0)
    lags, corr = _align(qrs, template, max_lag)
    aligned = np.where(dominant, peaks + lags, peaks)
    windows = _windows(x, aligned[dominant], before, after)  # (12, beats, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns at the record's edges
        beat = np.nan_to_num(np.nanmedian(windows, axis=1))
    return MedianBeat(
        beat=beat,
        fs=float(fs),
        fiducial=before,
        n_beats=int(dominant.sum()),
        dominant=dominant,
        aligned=aligned,
    )


def active_span(signal: np.ndarray, fs: float) -> tuple[int, int]:
    """``(start, stop)`` samples of ``signal`` ``(12, n)`` without the flat stretches a cart appends or prepends: a
    calibration pulse (flat, a step, flat) or zero padding, where every lead is exactly constant for >= 40 ms and the
    edge beyond is >= 90 % such flat samples."""
    moving = np.any(np.diff(signal, axis=-1) != 0, axis=0)  # (n-1,)
    flat = ~moving
    run = max(2, int(0.04 * fs))
    # Flat samples that belong to a run of at least `run` flat samples.
    starts = np.flatnonzero(np.diff(np.concatenate([[0], flat.astype(np.int8), [0]])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([[0], flat.astype(np.int8), [0]])) == -1)
    long_runs = [(a, b) for a, b in zip(starts, ends, strict=True) if b - a >= run]
    n = signal.shape[-1]
    start, stop = 0, n
    for a, _ in long_runs:
        if flat[a:].mean() >= 0.9:
            stop = a + 1
            break
    for _, b in reversed(long_runs):
        if b <= stop and flat[:b].mean() >= 0.9:
            start = b
            break
    return start, stop


def spurious_beats(aligned: np.ndarray, dominant: np.ndarray) -> np.ndarray:
    """Boolean per beat: True for a detection that is not of the dominant morphology and merely splits a normal RR
    interval (its neighbours are one usual RR apart, within 15 %): an artefact, not a beat. A premature ventricular
    beat is followed by a compensatory pause (its neighbours are about two RR apart) and is kept."""
    spurious = np.zeros(aligned.size, dtype=bool)
    if aligned.size < 4 or dominant.all():
        return spurious
    typical = (
        float(np.median(np.diff(aligned[dominant]))) if dominant.sum() >= 2 else float(np.median(np.diff(aligned)))
    )
    for k in np.flatnonzero(~dominant):
        if 0 < k < aligned.size - 1 and abs(aligned[k + 1] - aligned[k - 1] - typical) <= 0.15 * typical:
            spurious[k] = True
    return spurious
