"""The measurement vocabulary shared by the delineator and the readers of cart measurements: the keys, the rhythm
statements and the :class:`Measurements` record. Dependency-free (no scipy), so readers can import it cheaply."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: The keys of :meth:`Measurements.as_dict`, of ``meta["cart_measurements"]`` and of the ``measurements`` JSON block.
MEASUREMENT_KEYS: tuple[str, ...] = (
    "heart_rate_bpm",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_bazett_ms",
    "qtc_fridericia_ms",
    "p_axis_deg",
    "qrs_axis_deg",
    "t_axis_deg",
    "rhythm",
    "paced",
)

#: Rhythm statements, in the words the toolkit prints. ``"other"`` means measured but not classified.
RHYTHMS: tuple[str, ...] = (
    "sinus",
    "sinus bradycardia",
    "sinus tachycardia",
    "atrial fibrillation",
    "paced",
    "other",
)


@dataclass(frozen=True)
class Measurements:
    """Global rhythm and interval measurements of one 12-lead ECG.

    Attributes:
        heart_rate_bpm: ventricular rate, beats/min (60 / mean RR).
        pr_ms: PR interval, global P onset to global QRS onset, ms.
        qrs_ms: QRS duration, global QRS onset to global QRS offset, ms.
        qt_ms: QT interval, global QRS onset to global T end, ms.
        qtc_bazett_ms: QT / sqrt(RR in s), ms.
        qtc_fridericia_ms: QT / cbrt(RR in s), ms.
        p_axis_deg, qrs_axis_deg, t_axis_deg: frontal-plane axes, degrees in (-180, 180] (0 = lead I, +90 = aVF).
        rhythm: one of :data:`RHYTHMS`.
        paced: pacemaker spikes found before the QRS complexes.
        notes: what limited the measurement (e.g. spikes not detectable at the sampling rate); not in
            :meth:`as_dict`.

    Every field is None where it could not be measured (no P wave: no PR and no P axis; paced rhythm: no PR).
    """

    heart_rate_bpm: float | None = None
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    p_axis_deg: float | None = None
    qrs_axis_deg: float | None = None
    t_axis_deg: float | None = None
    rhythm: str | None = None
    paced: bool | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rhythm is not None and self.rhythm not in RHYTHMS:
            raise ValueError(f"rhythm {self.rhythm!r} is not one of {', '.join(RHYTHMS)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with exactly :data:`MEASUREMENT_KEYS`; numbers rounded (1 bpm/ms/degree), None kept."""
        out = asdict(self)
        del out["notes"]
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value) if math.isfinite(value) else None
        return out


def qtc_bazett(qt_ms: float | None, rr_s: float | None) -> float | None:
    """Bazett's correction QT / sqrt(RR), ms (None when either is unknown)."""
    if qt_ms is None or rr_s is None or rr_s <= 0:
        return None
    return qt_ms / math.sqrt(rr_s)


def qtc_fridericia(qt_ms: float | None, rr_s: float | None) -> float | None:
    """Fridericia's correction QT / cbrt(RR), ms (None when either is unknown)."""
    if qt_ms is None or rr_s is None or rr_s <= 0:
        return None
    return qt_ms / rr_s ** (1.0 / 3.0)
