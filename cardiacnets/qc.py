"""Signal quality control before screening (docs/architecture.md; README, "Screening").

:func:`run_qc` looks at a ``(12, n)`` mV record at ``fs`` Hz and returns a :class:`QcResult`: ``reliable`` is False
as soon as one finding has severity ``"fail"``; every finding names its check (``code``), the lead when it concerns
one, and a message for the clinician. A record that fails QC is still reported with the reasons, never silently
scored. Thresholds are fields of :class:`QcThresholds` (documented there).

Checks: the file's own integrity (CRC failures and sampling-rate contradictions the reader found, from
``meta["integrity"]``), sampling rate, duration and padding, missing and flat leads, the calibration pulse (one
finding; its samples are left out of every signal check), clipping (runs at the lead's extreme value), duplicated
leads, baseline wander, mains interference (Welch PSD, each lead once at the stronger of 50 and 60 Hz), implausible
amplitude (unit and scale errors), LA/RA electrode reversal. Each is one function over a context computed once per
record (:class:`_QcContext`), run in report order from one registry; the signal measurements they use live in
:mod:`cardiacnets.qc_signal`. docs/qc.md lists every finding.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cardiacnets import qc_signal
from cardiacnets.errors import QcError
from cardiacnets.qc_signal import _runs_at, _wave_polarity, _welch, _windows, lead_peak_to_peak, median_beat
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
        calibration_max_s, calibration_min_leads: a flat top ``clip_run_s``-``calibration_max_s`` long, 1 mV
            (+-20 %) above the samples beside it, within 2 s of the record's start or end, at the same samples in at
            least ``calibration_min_leads`` leads is the device's 1-mV calibration pulse (Philips carts end every
            record with one): one finding, and its samples are left out of every signal check (it is not the
            patient's signal, and on an offset baseline its flat segments would read as clipping).
        mains_warn_db, mains_fail_db: power within +-1 Hz of 50 or 60 Hz relative to the 0.5-40 Hz ECG band, per
            lead at the stronger of the two. A clean ECG is below -30 dB there; -20 dB is visible interference; at
            -6 dB the mains hum carries a quarter of the ECG's power.
        duplicate_corr, duplicate_amp_tol: two independently recorded leads (not two limb leads other than I and
            II: III, aVR, aVL and aVF are combinations of I and II by construction) whose 0.5-Hz high-passed
            signals correlate above ``duplicate_corr`` with standard deviations within ``duplicate_amp_tol`` of each
            other are copies (monitor and defibrillator exports fill missing chest leads so); no two electrodes on
            a body record the same signal to 0.1 %. One copy warns; two or more (three leads alike, or two pairs)
            fail.
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
    calibration_min_leads: int = 3
    mains_warn_db: float = -20.0
    mains_fail_db: float = -6.0
    amp_high_fail_mV: float = 4.0
    amp_high_warn_mV: float = 3.0
    amp_lead_fail_mV: float = 15.0
    amp_low_fail_mV: float = 0.1
    amp_low_warn_mV: float = 0.3
    duplicate_corr: float = 0.999
    duplicate_amp_tol: float = 0.02


@dataclass
class _QcContext:
    """What several checks share, computed once per record.

    ``x``: the samples the signal checks examine, ``(12, n)`` mV, float64, non-finite samples zeroed: the record less
    any calibration pulse at its start or end (``pulses``, found by
    :func:`~cardiacnets.qc_signal.find_calibration_pulses`); ``n_total``: the record's own length in samples; ``fs``
    in Hz; ``hp`` and ``baseline``: the 0.5-Hz high-pass of ``x`` and the baseline under it, both ``(12, n)`` mV. The
    lead states (extremes, missing, flat and live leads) are worked out when a check first asks for them, so a record
    too coarse to examine never pays for them.
    """

    x: np.ndarray
    fs: float
    meta: dict[str, Any]
    th: QcThresholds
    hp: np.ndarray
    baseline: np.ndarray
    n_total: int
    pulses: list[qc_signal.CalibrationPulse]

    @classmethod
    def build(cls, signal: np.ndarray, fs: float, meta: dict[str, Any] | None, th: QcThresholds) -> _QcContext:
        """Check that ``signal`` ``(12, n)`` mV at ``fs`` Hz can be examined at all (else :class:`QcError`), then
        split it into high-pass and baseline."""
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
        n_total = x.shape[1]
        pulses = qc_signal.find_calibration_pulses(
            x, fs, min_s=th.clip_run_s, max_s=th.calibration_max_s, min_leads=th.calibration_min_leads
        )
        first = max((p.span[1] for p in pulses if p.edge == "start"), default=0)
        stop = min((p.span[0] for p in pulses if p.edge == "end"), default=n_total)
        if first > 0 or stop < n_total:  # the pulse is the device's, not the patient's: no signal check looks at it
            x = np.ascontiguousarray(x[:, first:stop])
        # Looked up on the module at call time, so that tests can stand the full-rate filter in for this one.
        hp, baseline = qc_signal._baseline_split(x, fs)
        return cls(x=x, fs=fs, meta=meta, th=th, hp=hp, baseline=baseline, n_total=n_total, pulses=pulses)

    @property
    def n(self) -> int:
        """Samples per lead that the signal checks examine."""
        return self.x.shape[1]

    @property
    def duration(self) -> float:
        """Record length in s (calibration pulse included: the model input is cut from the whole record)."""
        return self.n_total / self.fs

    @functools.cached_property
    def highs(self) -> np.ndarray:
        """Each lead's maximum, ``(12,)`` mV."""
        return self.x.max(axis=-1)

    @functools.cached_property
    def lows(self) -> np.ndarray:
        """Each lead's minimum, ``(12,)`` mV."""
        return self.x.min(axis=-1)

    @functools.cached_property
    def missing(self) -> list[str]:
        """Leads the file did not hold (zero-filled by the reader), from ``meta["missing_leads"]``."""
        return [lead for lead in self.meta.get("missing_leads") or [] if lead in LEADS]

    @functools.cached_property
    def flat(self) -> list[str]:
        """Leads without signal: most of their windows span less than ``th.flat_pp_mV``."""
        th, missing = self.th, self.missing
        win = _windows(self.x, int(round(th.flat_window_s * self.fs)))
        flat_share = np.mean((win.max(axis=-1) - win.min(axis=-1)) < th.flat_pp_mV, axis=-1)
        flat = [lead for lead, share in zip(LEADS, flat_share, strict=True) if share > th.flat_fraction]
        varying = [lead for row, lead in enumerate(LEADS) if lead not in missing and self.highs[row] > self.lows[row]]
        if varying and set(varying) <= set(flat):
            # Every lead that moves at all is "flat" in mV: a scale error (e.g. volts read as mV), reported by the
            # amplitude check rather than as twelve dead leads.
            flat = [lead for lead in flat if lead not in varying]
        return flat

    @functools.cached_property
    def live_leads(self) -> list[bool]:
        """Per lead in canonical order: neither flat nor missing (Python bools: the checks loop over them)."""
        return [lead not in self.flat and lead not in self.missing for lead in LEADS]

    @functools.cached_property
    def live(self) -> np.ndarray:
        """:attr:`live_leads` as a ``(12,)`` boolean mask."""
        return np.array(self.live_leads)


# What a check returns: its findings, in report order, and the metrics it measured (in the order they are reported).
_Outcome = tuple[list[QcFinding], dict[str, Any]]


def _check_integrity(ctx: _QcContext) -> _Outcome:
    """The file's own contradictions, as the reader recorded them in ``meta["integrity"]`` (a list of ``{"code",
    "detail", "resolved", "resolution"}``): an unresolved one fails the record (the samples may not be what was
    recorded, or not at the rate stated), a resolved one is a warning that says how the reader resolved it."""
    findings = []
    for problem in ctx.meta.get("integrity") or []:
        if not isinstance(problem, dict):
            continue
        code = str(problem.get("code") or "integrity")
        detail = str(problem.get("detail") or code)
        if problem.get("resolved"):
            findings.append(QcFinding(code, "warn", None, f"{detail}; resolved: {problem.get('resolution')}"))
        else:
            message = f"{detail}; unresolved: the file contradicts itself, so its signal cannot be trusted"
            findings.append(QcFinding(code, "fail", None, message))
    return findings, {}


def _check_sampling_rate(ctx: _QcContext) -> _Outcome:
    fs, th = ctx.fs, ctx.th
    if fs < th.fs_min_fail or fs > th.fs_max_fail:
        message = f"sampling rate {fs:g} Hz is implausible for an ECG (needs 100-10000 Hz)"
        return [QcFinding("sampling_rate", "fail", None, message)], {}
    if fs < th.fs_warn:
        message = f"low sampling rate {fs:g} Hz: QRS detail above {fs / 2:g} Hz is lost"
        return [QcFinding("sampling_rate_low", "warn", None, message)], {}
    return [], {}


def _check_duration(ctx: _QcContext) -> _Outcome:
    """Too short a record, and the zero padding that brings it to the model's input length."""
    duration, fs, th = ctx.duration, ctx.fs, ctx.th
    findings = []
    if duration < th.min_duration_s:
        message = f"only {duration:.2f} s recorded; at least {th.min_duration_s:g} s needed"
        findings.append(QcFinding("short_duration", "fail", None, message))
    elif duration < th.target_duration_s - 0.5 / fs:
        message = f"{duration:.2f} s recorded, under the standard {th.target_duration_s:g} s"
        findings.append(QcFinding("short_duration", "warn", None, message))
    if duration < th.target_duration_s - 0.5 / fs:
        pad = th.target_duration_s - duration
        message = f"{pad:.2f} s of zero padding needed to reach {th.target_duration_s:g} s"
        findings.append(QcFinding("padding_needed", "warn", None, message))
    return findings, {}


def _check_missing_leads(ctx: _QcContext) -> _Outcome:
    findings = [
        QcFinding("missing_lead", "fail", lead, f"lead {lead} is not in the file (zero-filled)") for lead in ctx.missing
    ]
    return findings, {}


def _check_flat_leads(ctx: _QcContext) -> _Outcome:
    findings = [
        QcFinding("flat_lead", "fail", lead, f"lead {lead} is flat (no signal over {ctx.th.flat_pp_mV * 1000:g} uV)")
        for lead in ctx.flat
        if lead not in ctx.missing
    ]
    return findings, {"flat_leads": ctx.flat}


def _check_calibration_pulse(ctx: _QcContext) -> _Outcome:
    """One finding for the calibration pulse(s) :class:`_QcContext` found and left out of the signal checks."""
    if not ctx.pulses:
        return [], {}
    fs, places, where = ctx.fs, [], []
    for pulse in ctx.pulses:
        leads = [LEADS[row] for row in pulse.rows]
        named = f"all {len(LEADS)} leads" if len(leads) == len(LEADS) else f"leads {', '.join(leads)}"
        top_ms = (pulse.top[1] - pulse.top[0]) / fs * 1000
        places.append(
            f"a {pulse.height_mV:.2f}-mV, {top_ms:.0f}-ms pulse at the {pulse.edge} ({pulse.top[0] / fs:.2f}-"
            f"{pulse.top[1] / fs:.2f} s) in {named}"
        )
        where.append(
            {
                "edge": pulse.edge,
                "start_s": round(pulse.span[0] / fs, 3),
                "stop_s": round(pulse.span[1] / fs, 3),
                "leads": leads,
            }
        )
    left_out = sum(p.span[1] - p.span[0] for p in ctx.pulses) / fs
    message = (
        f"calibration pulse: {'; '.join(places)}; its {left_out:.2f} s are left out of the signal checks"
        " (the device's, not the patient's signal)"
    )
    return [QcFinding("calibration_pulse", "warn", None, message)], {"calibration_pulse": where}


def _check_clipping(ctx: _QcContext) -> _Outcome:
    """Clipping / saturation: long runs at the lead's own extreme value (a calibration pulse is already left out)."""
    x, fs, th = ctx.x, ctx.fs, ctx.th
    highs, lows = ctx.highs, ctx.lows
    min_run = max(3, int(round(th.clip_run_s * fs)))
    tols = 1e-6 * np.maximum(highs - lows, 1e-9)
    high_runs = _runs_at(x >= (highs - tols)[:, None], min_run)  # (12,) samples
    low_runs = _runs_at(x <= (lows + tols)[:, None], min_run)
    findings = []
    for row, lead in enumerate(LEADS):
        if not ctx.live_leads[row]:
            continue
        for extreme, name, run in ((highs[row], "maximum", high_runs[row]), (lows[row], "minimum", low_runs[row])):
            if run >= min_run:
                findings.append(
                    QcFinding(
                        "clipping",
                        "fail",
                        lead,
                        f"lead {lead} sits at its {name} ({extreme:.3f} mV) for {run / fs * 1000:.0f} ms: saturated or"
                        " clipped",
                    )
                )
                break
    return findings, {}


def _check_baseline_wander(ctx: _QcContext) -> _Outcome:
    """Peak-to-peak of the < 0.5 Hz component, away from the record's edges."""
    n, fs, th, baseline = ctx.n, ctx.fs, ctx.th, ctx.baseline
    if n < 16:
        return [], {}
    low_win = baseline[:, int(min(n // 10, fs)) : n - int(min(n // 10, fs))] if n > 20 else baseline
    wander = (np.ptp(low_win, axis=-1) if low_win.shape[-1] else np.zeros(12)).tolist()
    metrics = {"wander_mV": {lead: round(w, 3) for lead, w in zip(LEADS, wander, strict=True)}}
    findings = []
    for row, lead in enumerate(LEADS):
        if ctx.live_leads[row] and wander[row] > th.wander_warn_mV:
            severity = "fail" if wander[row] > th.wander_fail_mV else "warn"
            message = f"lead {lead}: baseline wanders over {wander[row]:.2f} mV (< 0.5 Hz)"
            findings.append(QcFinding("baseline_wander", severity, lead, message))
    return findings, metrics


def _check_mains(ctx: _QcContext) -> _Outcome:
    """Mains interference: power within +-1 Hz of 50 and of 60 Hz (Welch PSD) relative to the ECG band, where the mains
    frequency is below Nyquist. Each lead is judged once, at the stronger of the two; the leads over the limit are
    reported in one finding (named in ``lead`` when there is only one)."""
    x, n, fs, th = ctx.x, ctx.n, ctx.fs, ctx.th
    nperseg = int(min(n, round(2 * fs)))
    mains = [hz for hz in (50.0, 60.0) if hz + 1.0 < fs / 2]
    if nperseg < 16 or not mains:
        return [], {}
    freqs, psd = _welch(x, fs, nperseg)
    df = freqs[1] - freqs[0]
    ecg_band = psd[:, (freqs >= 0.5) & (freqs <= 40.0)].sum(axis=-1) * df
    bands = np.stack([psd[:, (freqs >= hz - 1.0) & (freqs <= hz + 1.0)].sum(axis=-1) * df for hz in mains])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_db = 10 * np.log10(np.where(ecg_band > 0, bands / ecg_band, 0.0) + 1e-30)  # (len(mains), 12)
    strongest = ratio_db.argmax(axis=0)  # (12,) index into mains
    flagged: dict[str, dict[str, float]] = {}
    for row, lead in enumerate(LEADS):
        db = float(ratio_db[strongest[row], row])
        if ctx.live_leads[row] and db > th.mains_warn_db:
            flagged[lead] = {"hz": mains[strongest[row]], "db": round(db, 1)}
    live_db = ratio_db[:, ctx.live]
    metrics: dict[str, Any] = {"mains_db_max": round(float(live_db.max()), 1) if live_db.size else None}
    if not flagged:
        return [], metrics
    metrics["mains_noise"] = flagged
    frequencies = sorted({v["hz"] for v in flagged.values()})
    if len(frequencies) == 1:
        parts = [f"{lead} ({v['db']:.1f} dB)" for lead, v in flagged.items()]
        what = f"{frequencies[0]:g} Hz mains interference in {', '.join(parts)}"
    else:
        parts = [f"{lead} at {v['hz']:g} Hz ({v['db']:.1f} dB)" for lead, v in flagged.items()]
        what = f"mains interference in {', '.join(parts)}"
    severity = "fail" if any(v["db"] > th.mains_fail_db for v in flagged.values()) else "warn"
    message = f"{what}, relative to the ECG band (warn over {th.mains_warn_db:g} dB, fail over {th.mains_fail_db:g} dB)"
    lead = next(iter(flagged)) if len(flagged) == 1 else None
    return [QcFinding("mains_noise", severity, lead, message)], metrics


def _independent_pairs() -> list[tuple[int, int]]:
    """Lead pairs recorded from different electrodes: every pair but two limb leads, except I with II (III, aVR, aVL
    and aVF are combinations of I and II by construction, so they resemble them for some heart axes)."""
    limb = {LEADS.index(name) for name in ("I", "II", "III", "aVR", "aVL", "aVF")}
    i, ii = LEADS.index("I"), LEADS.index("II")
    pairs = []
    for a in range(len(LEADS)):
        for b in range(a + 1, len(LEADS)):
            if not (a in limb and b in limb) or (a, b) == (i, ii):
                pairs.append((a, b))
    return pairs


def _check_duplicate_leads(ctx: _QcContext) -> _Outcome:
    """Copies among independently recorded leads: correlation above ``duplicate_corr`` with the same amplitude."""
    th, hp, live = ctx.th, ctx.hp, ctx.live_leads
    n = hp.shape[-1]
    mean = hp.mean(axis=-1)
    cov = (hp @ hp.T) / n - np.outer(mean, mean)  # (12, 12) mV^2, one matrix product instead of a copy per pair
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    groups: dict[int, set[int]] = {}
    lowest = 1.0
    for a, b in _independent_pairs():
        if not (live[a] and live[b]) or std[a] <= 0 or std[b] <= 0:
            continue
        if abs(std[a] / std[b] - 1.0) > th.duplicate_amp_tol:
            continue
        corr = float(cov[a, b] / (std[a] * std[b]))
        if corr > th.duplicate_corr:
            lowest = min(lowest, corr)
            merged = groups.get(a, {a}) | groups.get(b, {b})
            for row in merged:
                groups[row] = merged
    unique = {frozenset(g) for g in groups.values()}
    if not unique:
        return [], {}
    named = [[LEADS[row] for row in sorted(g)] for g in sorted(unique, key=min)]
    copies = sum(len(g) - 1 for g in unique)
    identical = all(np.array_equal(ctx.x[min(g)], ctx.x[row]) for g in unique for row in g)
    how = "hold identical samples" if identical else f"are nearly identical (correlation >= {lowest:.4f})"
    sets = "; ".join(", ".join(leads) for leads in named)
    message = (
        f"leads {sets} {how} with the same amplitude: copies, not independent recordings (an export that fills"
        " leads it did not record?)"
    )
    severity = "fail" if copies >= 2 else "warn"
    return [QcFinding("duplicate_leads", severity, None, message)], {"duplicate_leads": named}


def _check_amplitude(ctx: _QcContext) -> _Outcome:
    """Implausible amplitude: unit and scale errors, on the record (median live lead) and on each lead."""
    th, live = ctx.th, ctx.live
    pp = lead_peak_to_peak(ctx.x, ctx.fs, highpassed=ctx.hp)
    pp_list = pp.tolist()
    metrics: dict[str, Any] = {"peak_to_peak_mV": {lead: round(v, 3) for lead, v in zip(LEADS, pp_list, strict=True)}}
    if not live.any():
        return [], metrics
    record_pp = float(np.median(pp[live]))
    metrics["median_peak_to_peak_mV"] = round(record_pp, 3)
    findings = []
    if record_pp > th.amp_high_fail_mV:
        message = (
            f"median lead amplitude {record_pp:.2f} mV is implausibly high for an ECG: wrong units or scale"
            " (e.g. uV read as mV, or a gain error)?"
        )
        findings.append(QcFinding("amplitude_high", "fail", None, message))
    elif record_pp > th.amp_high_warn_mV:
        message = f"median lead amplitude {record_pp:.2f} mV is unusually high"
        findings.append(QcFinding("amplitude_high", "warn", None, message))
    elif record_pp < th.amp_low_fail_mV:
        message = (
            f"median lead amplitude {record_pp * 1000:.1f} uV is implausibly low for an ECG: wrong units or scale?"
        )
        findings.append(QcFinding("amplitude_low", "fail", None, message))
    elif record_pp < th.amp_low_warn_mV:
        message = f"median lead amplitude {record_pp:.2f} mV: low voltage or scale error"
        findings.append(QcFinding("amplitude_low", "warn", None, message))
    for row, lead in enumerate(LEADS):
        if ctx.live_leads[row] and pp_list[row] > th.amp_lead_fail_mV:
            message = f"lead {lead} spans {pp_list[row]:.1f} mV, beyond any surface ECG"
            findings.append(QcFinding("amplitude_high", "fail", lead, message))
    return findings, metrics


def _check_la_ra_reversal(ctx: _QcContext) -> _Outcome:
    """LA/RA electrode reversal, from the polarity of P and QRS in leads I and aVR of the median beat."""
    i_row, avr_row = LEADS.index("I"), LEADS.index("aVR")
    if not (ctx.live[i_row] and ctx.live[avr_row]):
        return [], {}
    beat = median_beat(ctx.x, ctx.fs, highpassed=ctx.hp, leads=(i_row, avr_row))
    if beat is None:
        return [], {}
    (qrs_i, qrs_avr), (p_i, _) = _wave_polarity(beat[0], beat[1], ctx.fs)  # rows: I, aVR
    metrics = {
        "qrs_polarity_I_mV": round(float(qrs_i), 3),
        "qrs_polarity_aVR_mV": round(float(qrs_avr), 3),
        "p_polarity_I_mV": round(float(p_i), 3),
    }
    # Heuristic: with the arm electrodes swapped lead I is inverted (negative P and QRS) and aVR becomes the old aVL
    # (positive). Only dextrocardia gives the same picture, so the message names both.
    if qrs_i < 0 and p_i < 0 and qrs_avr > 0:
        message = (
            "lead I has negative P and QRS while aVR is positive: arm electrodes (LA/RA) likely swapped"
            " (or dextrocardia)"
        )
        return [QcFinding("la_ra_reversal", "fail", "I", message)], metrics
    return [], metrics


# The registry: every check, in the order its findings and metrics are reported. A new check is one function and one
# line here. The record checks always run; the signal checks only when the sampling rate leaves a signal to examine.
_RECORD_CHECKS: tuple[Callable[[_QcContext], _Outcome], ...] = (
    _check_integrity,
    _check_sampling_rate,
    _check_duration,
)
_SIGNAL_CHECKS: tuple[Callable[[_QcContext], _Outcome], ...] = (
    _check_missing_leads,
    _check_flat_leads,
    _check_calibration_pulse,
    _check_clipping,
    _check_duplicate_leads,
    _check_baseline_wander,
    _check_mains,
    _check_amplitude,
    _check_la_ra_reversal,
)


def run_qc(
    signal: np.ndarray, fs: float, meta: dict[str, Any] | None = None, thresholds: QcThresholds | None = None
) -> QcResult:
    """Quality-control a 12-lead ECG ``(12, n)`` in mV at ``fs`` Hz (canonical lead order).

    ``meta`` may carry ``missing_leads`` (leads the file did not hold, zero-filled by the reader) and ``integrity``
    (the reader's list of the file's contradictions; an unresolved one fails the record). Returns a
    :class:`QcResult`; raises :class:`QcError` only when the input cannot be examined at all (wrong shape).
    """
    ctx = _QcContext.build(signal, fs, meta, thresholds or QcThresholds())
    findings: list[QcFinding] = []
    metrics: dict[str, Any] = {"fs": ctx.fs, "duration_s": round(ctx.duration, 3)}
    for check in _RECORD_CHECKS:
        found, measured = check(ctx)
        findings += found
        metrics.update(measured)
    if ctx.fs < 20 and any(f.code == "sampling_rate" for f in findings):
        return QcResult(reliable=False, findings=findings, metrics=metrics)  # too coarse to examine the signal
    for check in _SIGNAL_CHECKS:
        found, measured = check(ctx)
        findings += found
        metrics.update(measured)
    reliable = not any(f.severity == "fail" for f in findings)
    if not reliable:
        logger.info("QC failed: %s", sorted({f.code for f in findings if f.severity == "fail"}))
    return QcResult(reliable=reliable, findings=findings, metrics=metrics)
