"""Signal quality control before screening (DESIGN section 4, "Signal QC").

:func:`run_qc` looks at a ``(12, n)`` mV record at ``fs`` Hz and returns a :class:`QcResult`: ``reliable`` is False
as soon as one finding has severity ``"fail"``; every finding names its check (``code``), the lead when it concerns
one, and a message for the clinician. A record that fails QC is still reported with the reasons, never silently
scored. Thresholds are fields of :class:`QcThresholds` (documented there).

Checks: sampling rate, duration and padding, missing and flat leads, clipping (runs at the lead's extreme value),
baseline wander, mains interference (Welch PSD), implausible amplitude (unit and scale errors), LA/RA electrode
reversal.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

from cardiacnets.errors import QcError
from cardiacnets.record import LEADS

logger = logging.getLogger(__name__)

__all__ = ["QcFinding", "QcResult", "QcThresholds", "lead_peak_to_peak", "median_beat", "run_qc"]


@dataclass(frozen=True)
class QcFinding:
    """One QC observation. ``severity`` is ``"fail"`` (record unreliable) or ``"warn"``."""

    code: str
    severity: str
    lead: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QcResult:
    """Outcome of :func:`run_qc`: ``reliable`` is False when any finding has severity ``"fail"``."""

    reliable: bool
    findings: list[QcFinding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "reliable": self.reliable,
            "findings": [f.to_dict() for f in self.findings],
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class QcThresholds:
    """QC limits, with the reasoning.

    Attributes:
        fs_min_fail, fs_max_fail: below 100 Hz the QRS (energy to ~40 Hz, notches above) is not resolved; above 10 kHz
            no resting-ECG device samples (a wrong unit for the rate is likelier). Hz.
        fs_warn: under 250 Hz the AHA minimum bandwidth (150 Hz) is lost: warn. Hz.
        min_duration_s: under 8 s the 10-s model input would be more than 20 % zero padding: fail. Under 10 s: warn.
        flat_window_s, flat_pp_mV, flat_fraction: a lead is flat when more than ``flat_fraction`` of its
            ``flat_window_s`` windows (each holds a QRS at any heart rate over 30/min) span less than ``flat_pp_mV``.
        clip_run_s: a run of at least this long (40 ms; longer than any R-wave summit stays on one sample value) at
            the lead's own maximum or minimum is clipping/saturation.
        wander_warn_mV, wander_fail_mV: peak-to-peak of the < 0.5 Hz component (respiration, electrode drift). Over
            2 mV the wander is excessive (preprocessing removes it, but it signals poor electrode contact); over 5 mV
            the electrode has lost contact.
        calibration_max_s: a plateau at exactly +-1 mV no longer than this is a calibration pulse (warn), not
            clipping.
        mains_warn_db, mains_fail_db: power within +-1 Hz of 50 or 60 Hz relative to the 0.5-40 Hz ECG band.
            A clean ECG is below -30 dB there; -20 dB is visible interference; at -6 dB the mains hum carries a
            quarter of the ECG's power.
        amp_high_fail_mV, amp_high_warn_mV: record amplitude = median over leads of the robust lead peak-to-peak
            (median over 2-s windows). Normal adults: 0.5-2 mV; marked LVH rarely lifts the median lead above 3 mV.
            Over 4 mV is a scale error (e.g. the 5x integer-uV-as-5-uV bug, or uV read as mV).
        amp_lead_fail_mV: no single lead of a real surface ECG spans 15 mV.
        amp_low_fail_mV, amp_low_warn_mV: a median lead under 0.1 mV is a scale error (mV read as V, 1000x); under
            0.3 mV is low voltage or a smaller scale error (warn).
    """

    fs_min_fail: float = 100.0
    fs_max_fail: float = 10_000.0
    fs_warn: float = 250.0
    min_duration_s: float = 8.0
    target_duration_s: float = 10.0
    flat_window_s: float = 2.0
    flat_pp_mV: float = 0.02
    flat_fraction: float = 0.5
    clip_run_s: float = 0.04
    wander_warn_mV: float = 2.0
    wander_fail_mV: float = 5.0
    calibration_max_s: float = 0.5
    mains_warn_db: float = -20.0
    mains_fail_db: float = -6.0
    amp_high_fail_mV: float = 4.0
    amp_high_warn_mV: float = 3.0
    amp_lead_fail_mV: float = 15.0
    amp_low_fail_mV: float = 0.1
    amp_low_warn_mV: float = 0.3


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


def run_qc(
    signal: np.ndarray, fs: float, meta: dict[str, Any] | None = None, thresholds: QcThresholds | None = None
) -> QcResult:
    """Quality-control a 12-lead ECG ``(12, n)`` in mV at ``fs`` Hz (canonical lead order).

    ``meta`` may carry ``missing_leads`` (leads the file did not hold, zero-filled by the reader). Returns a
    :class:`QcResult`; raises :class:`QcError` only when the input cannot be examined at all (wrong shape).
    """
    th = thresholds or QcThresholds()
    meta = meta or {}
    x = np.asarray(signal)
    if x.ndim != 2 or x.shape[0] != len(LEADS) or x.shape[1] == 0:
        raise QcError(f"QC needs a (12, n) signal with n > 0, got shape {x.shape}")
    if not np.isfinite(fs) or fs <= 0:
        raise QcError(f"QC needs a positive sampling rate, got {fs!r}")
    x = x.astype(np.float64, copy=False)  # read only from here on
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    fs = float(fs)
    # (12, n) 0.5-Hz high-pass and the baseline under it, shared by the wander, amplitude and median-beat checks.
    hp, baseline = _baseline_split(x, fs)
    n = x.shape[1]
    duration = n / fs
    findings: list[QcFinding] = []
    metrics: dict[str, Any] = {"fs": fs, "duration_s": round(duration, 3)}

    def add(code: str, severity: str, lead: str | None, message: str) -> None:
        findings.append(QcFinding(code, severity, lead, message))

    # Sampling rate.
    if fs < th.fs_min_fail or fs > th.fs_max_fail:
        add("sampling_rate", "fail", None, f"sampling rate {fs:g} Hz is implausible for an ECG (needs 100-10000 Hz)")
    elif fs < th.fs_warn:
        add("sampling_rate_low", "warn", None, f"low sampling rate {fs:g} Hz: QRS detail above {fs / 2:g} Hz is lost")

    # Duration and padding.
    if duration < th.min_duration_s:
        add("short_duration", "fail", None, f"only {duration:.2f} s recorded; at least {th.min_duration_s:g} s needed")
    elif duration < th.target_duration_s - 0.5 / fs:
        add("short_duration", "warn", None, f"{duration:.2f} s recorded, under the standard {th.target_duration_s:g} s")
    if duration < th.target_duration_s - 0.5 / fs:
        pad = th.target_duration_s - duration
        add("padding_needed", "warn", None, f"{pad:.2f} s of zero padding needed to reach {th.target_duration_s:g} s")

    if findings and any(f.code == "sampling_rate" for f in findings) and fs < 20:
        return QcResult(reliable=False, findings=findings, metrics=metrics)

    # Missing and flat leads.
    missing = [lead for lead in meta.get("missing_leads") or [] if lead in LEADS]
    for lead in missing:
        add("missing_lead", "fail", lead, f"lead {lead} is not in the file (zero-filled)")
    highs, lows = x.max(axis=-1), x.min(axis=-1)  # (12,) mV
    win = _windows(x, int(round(th.flat_window_s * fs)))
    flat_share = np.mean((win.max(axis=-1) - win.min(axis=-1)) < th.flat_pp_mV, axis=-1)
    flat = [lead for lead, share in zip(LEADS, flat_share, strict=True) if share > th.flat_fraction]
    varying = [lead for row, lead in enumerate(LEADS) if lead not in missing and highs[row] > lows[row]]
    if varying and set(varying) <= set(flat):
        # Every lead that moves at all is "flat" in mV: a scale error (e.g. volts read as mV), reported by the
        # amplitude check below rather than as twelve dead leads.
        flat = [lead for lead in flat if lead not in varying]
    for lead in flat:
        if lead not in missing:
            add("flat_lead", "fail", lead, f"lead {lead} is flat (no signal over {th.flat_pp_mV * 1000:g} uV)")
    live_leads = [lead not in flat and lead not in missing for lead in LEADS]  # Python bools: looped over below
    live = np.array(live_leads)
    metrics["flat_leads"] = flat

    # Clipping / saturation: long runs at the lead's own extreme value.
    min_run = max(3, int(round(th.clip_run_s * fs)))
    tols = 1e-6 * np.maximum(highs - lows, 1e-9)
    high_runs = _runs_at(x >= (highs - tols)[:, None], min_run)  # (12,) samples
    low_runs = _runs_at(x <= (lows + tols)[:, None], min_run)
    for row, lead in enumerate(LEADS):
        if not live_leads[row]:
            continue
        for extreme, name, run in ((highs[row], "maximum", high_runs[row]), (lows[row], "minimum", low_runs[row])):
            if run >= min_run and abs(abs(extreme) - 1.0) <= 0.02 and run <= th.calibration_max_s * fs:
                # A 1-mV plateau of at most half a second is the standard calibration pulse, not saturation.
                add(
                    "calibration_pulse",
                    "warn",
                    lead,
                    f"lead {lead} holds a {run / fs * 1000:.0f}-ms 1-mV calibration pulse (kept in the signal)",
                )
                break
            if run >= min_run:
                add(
                    "clipping",
                    "fail",
                    lead,
                    f"lead {lead} sits at its {name} ({extreme:.3f} mV) for {run / fs * 1000:.0f} ms: saturated or"
                    " clipped",
                )
                break

    # Baseline wander: peak-to-peak of the < 0.5 Hz component.
    if n >= 16:
        low_win = baseline[:, int(min(n // 10, fs)) : n - int(min(n // 10, fs))] if n > 20 else baseline
        wander = (np.ptp(low_win, axis=-1) if low_win.shape[-1] else np.zeros(12)).tolist()
        metrics["wander_mV"] = {lead: round(w, 3) for lead, w in zip(LEADS, wander, strict=True)}
        for row, lead in enumerate(LEADS):
            if live_leads[row] and wander[row] > th.wander_warn_mV:
                severity = "fail" if wander[row] > th.wander_fail_mV else "warn"
                add(
                    "baseline_wander",
                    severity,
                    lead,
                    f"lead {lead}: baseline wanders over {wander[row]:.2f} mV (< 0.5 Hz)",
                )

    # Mains interference (Welch PSD; needs the mains frequency below Nyquist).
    nperseg = int(min(n, round(2 * fs)))
    if nperseg >= 16:
        freqs, psd = _welch(x, fs, nperseg)
        df = freqs[1] - freqs[0]
        ecg_band = psd[:, (freqs >= 0.5) & (freqs <= 40.0)].sum(axis=-1) * df
        ratios: dict[str, float] = {}
        for mains in (50.0, 60.0):
            if mains + 1.0 >= fs / 2:
                continue
            band = psd[:, (freqs >= mains - 1.0) & (freqs <= mains + 1.0)].sum(axis=-1) * df
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio_db = (10 * np.log10(np.where(ecg_band > 0, band / ecg_band, 0.0) + 1e-30)).tolist()
            for row, lead in enumerate(LEADS):
                if not live_leads[row]:
                    continue
                ratios[f"{lead}@{mains:g}"] = round(ratio_db[row], 1)
                if ratio_db[row] > th.mains_warn_db:
                    severity = "fail" if ratio_db[row] > th.mains_fail_db else "warn"
                    add(
                        "mains_noise",
                        severity,
                        lead,
                        f"lead {lead}: {mains:g} Hz mains interference at {ratio_db[row]:.1f} dB of the ECG band",
                    )
        metrics["mains_db_max"] = max(ratios.values()) if ratios else None

    # Amplitude: unit and scale errors.
    pp = lead_peak_to_peak(x, fs, highpassed=hp)
    pp_list = pp.tolist()
    metrics["peak_to_peak_mV"] = {lead: round(v, 3) for lead, v in zip(LEADS, pp_list, strict=True)}
    if live.any():
        record_pp = float(np.median(pp[live]))
        metrics["median_peak_to_peak_mV"] = round(record_pp, 3)
        if record_pp > th.amp_high_fail_mV:
            add(
                "amplitude_high",
                "fail",
                None,
                f"median lead amplitude {record_pp:.2f} mV is implausibly high for an ECG: wrong units or scale"
                " (e.g. uV read as mV, or a gain error)?",
            )
        elif record_pp > th.amp_high_warn_mV:
            add("amplitude_high", "warn", None, f"median lead amplitude {record_pp:.2f} mV is unusually high")
        elif record_pp < th.amp_low_fail_mV:
            add(
                "amplitude_low",
                "fail",
                None,
                f"median lead amplitude {record_pp * 1000:.1f} uV is implausibly low for an ECG: wrong units or scale?",
            )
        elif record_pp < th.amp_low_warn_mV:
            add("amplitude_low", "warn", None, f"median lead amplitude {record_pp:.2f} mV: low voltage or scale error")
        for row, lead in enumerate(LEADS):
            if live_leads[row] and pp_list[row] > th.amp_lead_fail_mV:
                add("amplitude_high", "fail", lead, f"lead {lead} spans {pp_list[row]:.1f} mV, beyond any surface ECG")

    # LA/RA reversal on the median beat.
    i_row, avr_row = LEADS.index("I"), LEADS.index("aVR")
    if live[i_row] and live[avr_row]:
        beat = median_beat(x, fs, highpassed=hp, leads=(i_row, avr_row))
        if beat is not None:
            (qrs_i, qrs_avr), (p_i, _) = _wave_polarity(beat[0], beat[1], fs)  # rows: I, aVR
            metrics["qrs_polarity_I_mV"] = round(float(qrs_i), 3)
            metrics["qrs_polarity_aVR_mV"] = round(float(qrs_avr), 3)
            metrics["p_polarity_I_mV"] = round(float(p_i), 3)
            # Heuristic: with the arm electrodes swapped lead I is inverted (negative P and QRS) and aVR becomes the
            # old aVL (positive). Only dextrocardia gives the same picture, so the message names both.
            if qrs_i < 0 and p_i < 0 and qrs_avr > 0:
                add(
                    "la_ra_reversal",
                    "fail",
                    "I",
                    "lead I has negative P and QRS while aVR is positive: arm electrodes (LA/RA) likely swapped"
                    " (or dextrocardia)",
                )

    reliable = not any(f.severity == "fail" for f in findings)
    if not reliable:
        logger.info("QC failed: %s", sorted({f.code for f in findings if f.severity == "fail"}))
    return QcResult(reliable=reliable, findings=findings, metrics=metrics)


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
