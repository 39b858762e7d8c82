"""Rhythm: pacemaker spikes, RR irregularity, P-wave presence and the rhythm statement.

- Pacemaker spikes are very narrow, high-slew deflections. On the raw signal (no filtering, which would smear them),
  the spike score of a sample is its largest distance, over the independent leads, from the mean of its neighbours
  4 ms away; a spike is a local maximum of that score over both 0.5 mV and 4 x the score's 98th percentile (which the
  QRS slopes set). The record is paced when spikes precede (10-400 ms) at least half of the QRS complexes. Below
  500 Hz a 0.5-2 ms spike is not reliably sampled: spikes are then reported as not detectable and ``paced`` False.
- RR irregularity: the median absolute successive RR difference relative to the median RR. Atrial fibrillation's
  "irregularly irregular" RR gives about 0.15-0.25; sinus rhythm, whose RR changes slowly with respiration, under
  0.05; a single ectopic beat moves only two of the successive differences, not their median.
- A P wave is present when the median beat shows one (its peak spatial amplitude over 0.04 mV) and it recurs: the
  P window of at least 80 % of the beats correlates (r >= 0.5) with that of the other beats, and the median P
  window stands out from the beat-to-beat scatter (norm ratio >= 1). Fibrillatory waves are not locked to the QRS:
  in simulated atrial fibrillation the ratio stays under 1.4 (95th percentile), in sinus rhythm over 1.5 (5th).
"""

from __future__ import annotations

import numpy as np

from cardiacnets.measure.beats import INDEPENDENT_LEADS

#: Lowest sampling rate at which pacemaker spikes are looked for (Hz).
MIN_SPIKE_FS = 500.0
SPIKE_MIN_MV = 0.5
_SPIKE_QRS_FACTOR = 4.0
IRREGULAR_THRESHOLD = 0.08
P_MIN_MV = 0.04
P_MIN_CORRELATION = 0.5
P_MIN_FRACTION = 0.8
P_MIN_SNR = 1.0


def pacemaker_spikes(signal: np.ndarray, fs: float) -> np.ndarray | None:
    """Sample indices of pacemaker spikes in a raw ``(12, n)`` mV signal; None when ``fs`` < 500 Hz (a 0.5-2 ms
    spike is not reliably sampled there)."""
    if fs < MIN_SPIKE_FS:
        return None
    x = np.asarray(signal, dtype=np.float64)[list(INDEPENDENT_LEADS)]
    m = max(1, int(round(0.004 * fs)))
    score = np.zeros(x.shape[1])
    score[m:-m] = np.max(np.abs(x[:, m:-m] - 0.5 * (x[:, : -2 * m] + x[:, 2 * m :])), axis=0)
    threshold = max(SPIKE_MIN_MV, _SPIKE_QRS_FACTOR * float(np.percentile(score, 98.0)))
    above = np.flatnonzero(score >= threshold)
    if above.size == 0:
        return above
    # One spike per group of samples closer than 20 ms: the group's highest score.
    groups = np.split(above, np.flatnonzero(np.diff(above) > int(0.02 * fs)) + 1)
    return np.array([g[np.argmax(score[g])] for g in groups], dtype=np.int64)


def blank_spikes(signal: np.ndarray, spikes: np.ndarray, fs: float) -> np.ndarray:
    """``signal`` ``(leads, n)`` with each spike's +-4 ms replaced by a straight line between its ends (as carts
    blank pace pulses), so that the spikes do not pass for QRS onsets. A new array; same units."""
    out = np.array(signal, dtype=np.float64, copy=True)
    half = max(1, int(round(0.004 * fs)))
    n = out.shape[-1]
    for spike in spikes:
        a, b = max(0, int(spike) - half), min(n - 1, int(spike) + half)
        if b - a < 2:
            continue
        ramp = np.linspace(0.0, 1.0, b - a + 1)[None, :]
        out[:, a : b + 1] = out[:, a : a + 1] + (out[:, b : b + 1] - out[:, a : a + 1]) * ramp
    return out


def is_paced(spikes: np.ndarray | None, qrs: np.ndarray, fs: float) -> bool:
    """True when spikes precede (by 10-400 ms) at least half of the QRS fiducials ``qrs`` (and at least two)."""
    if spikes is None or spikes.size == 0 or qrs.size == 0:
        return False
    lag = qrs[:, None] - spikes[None, :]  # (beats, spikes) samples
    preceded = ((lag >= 0.01 * fs) & (lag <= 0.4 * fs)).any(axis=1)
    return bool(preceded.sum() >= max(2, int(np.ceil(0.5 * qrs.size))))


def rr_irregularity(rr_s: np.ndarray) -> float | None:
    """Median absolute successive RR difference over the median RR (dimensionless); None under 3 RR intervals."""
    if rr_s.size < 3:
        return None
    return float(np.median(np.abs(np.diff(rr_s))) / np.median(rr_s))


def _detrend(x: np.ndarray) -> np.ndarray:
    """``x`` ``(..., w)`` minus its least-squares line along the last axis."""
    t = np.linspace(-1.0, 1.0, x.shape[-1])
    centred = x - x.mean(axis=-1, keepdims=True)
    slope = (centred @ t) / max(float(t @ t), 1e-12)
    return centred - slope[..., None] * t


def p_wave_consistency(p_windows: np.ndarray) -> tuple[float, float]:
    """How consistently a P wave recurs in the P windows ``(beats, leads, w)`` of the beats (each lead's level and
    slope removed first: offsets and the tail of the previous T wave repeat in every beat without any P wave).

    Returns ``(fraction, snr)``: the fraction of beats whose window correlates (r >= 0.5) with the mean window of
    the other beats (leave-one-out, so that no beat is compared with itself), and the norm of the median window over
    the median norm of the beats' deviations from it. ``(0, 0)`` under 2 beats.
    """
    n_beats = p_windows.shape[0]
    if n_beats < 2:
        return 0.0, 0.0
    beats = _detrend(p_windows).reshape(n_beats, -1)
    others = (beats.sum(axis=0, keepdims=True) - beats) / (n_beats - 1)
    denom = np.linalg.norm(beats, axis=1) * np.linalg.norm(others, axis=1)
    corr = np.sum(beats * others, axis=1) / np.where(denom > 0, denom, np.inf)
    median = np.median(beats, axis=0)
    scatter = float(np.median(np.linalg.norm(beats - median, axis=1)))
    snr = float(np.linalg.norm(median)) / scatter if scatter > 0 else float("inf")
    return float(np.mean(corr >= P_MIN_CORRELATION)), snr


def classify_rhythm(heart_rate: float | None, irregularity: float | None, p_present: bool, paced: bool) -> str | None:
    """The rhythm statement: ``paced``; ``atrial fibrillation`` (irregular RR, no P wave); ``sinus``, ``sinus
    bradycardia`` (< 60/min) or ``sinus tachycardia`` (> 100/min) when regular with a recurring P wave; else
    ``other``. None without a heart rate."""
    if paced:
        return "paced"
    if heart_rate is None:
        return None
    irregular = irregularity is not None and irregularity > IRREGULAR_THRESHOLD
    if irregular and not p_present:
        return "atrial fibrillation"
    if p_present and not irregular:
        if heart_rate < 60.0:
            return "sinus bradycardia"
        if heart_rate > 100.0:
            return "sinus tachycardia"
        return "sinus"
    return "other"
