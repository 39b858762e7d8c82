"""The in-memory ECG record every reader returns, and the lead bookkeeping shared by all readers.

Contract (docs/architecture.md, "Data contracts"): ``signal`` is float32 ``(12, n)`` in millivolts, leads in the
canonical order ``I, II, III, aVR, aVL, aVF, V1..V6``, sampled at ``fs`` Hz. Readers hand their channels to
:func:`assemble_record`, which maps lead names, derives missing limb leads, reorders, and records what it did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cardiacnets.errors import CorruptFileError

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_DERIVED: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")

# Keys of ``meta`` that identify a patient. They are kept under ``meta["phi"]`` so that one key can be dropped.
PHI_KEYS: tuple[str, ...] = ("patient_id", "name", "birth_date")

_LEAD_ALIASES = {name.lower(): name for name in LEADS}
_LEAD_ALIASES.update({"avr": "aVR", "avl": "aVL", "avf": "aVF", "-avr": "-aVR"})


def canonical_lead_name(raw: str) -> str | None:
    """Map a lead label as vendors write it (``"Lead II"``, ``"avf"``, ``"MDC_ECG_LEAD_V1"``, ``"Lead I (Einthoven)"``)
    to its canonical name, or ``None`` when it is not one of the 12 standard leads."""
    text = raw.strip()
    text = re.sub(r"\(.*?\)", "", text)  # DICOM code meanings: "Lead I (Einthoven)"
    text = re.sub(r"^(MDC_ECG_LEAD_|LEAD[\s_-]*)", "", text.strip(), flags=re.IGNORECASE)
    text = text.strip().replace(" ", "")
    return _LEAD_ALIASES.get(text.lower())


@dataclass
class EcgRecord:
    """A 12-lead ECG in canonical form.

    Attributes:
        signal: float32 ``(12, n)`` in mV, canonical lead order.
        fs: sampling rate in Hz.
        meta: what the file said about itself. Keys used by every reader: ``format``, ``path``, ``device``,
            ``acquired`` (ISO 8601 text or None), ``age``, ``sex`` (``"M"``/``"F"``/None), ``heart_rate``,
            ``filters`` (dict), ``stored_leads``, ``derived_leads``, ``missing_leads``, ``warnings`` (list of text),
            ``integrity`` (where the reader checks: the file's contradictions, a list of ``{"code", "detail",
            "resolved", "resolution"}`` that signal QC fails the record on unless resolved; docs/qc.md), and ``phi``
            (patient identifiers; never logged, printed only on request).
        median_beat: float32 ``(12, m)`` in mV, the file's representative beat when it stores one.
        median_fs: sampling rate of ``median_beat`` in Hz.
    """

    signal: np.ndarray
    fs: float
    meta: dict[str, Any] = field(default_factory=dict)
    median_beat: np.ndarray | None = None
    median_fs: float | None = None

    leads: tuple[str, ...] = LEADS

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def warnings(self) -> list[str]:
        return self.meta.setdefault("warnings", [])

    def without_phi(self) -> dict[str, Any]:
        """``meta`` with the patient identifiers removed (for logs and default outputs)."""
        return {k: v for k, v in self.meta.items() if k != "phi"}


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """Einthoven and Goldberger: III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2."""
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }


def _stack_leads(
    channels: Mapping[str, np.ndarray], what: str, warnings: list[str]
) -> tuple[np.ndarray, list[str], list[str], list[str], list[str]]:
    mapped: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    for raw_name, values in channels.items():
        name = canonical_lead_name(raw_name)
        if name is None:
            ignored.append(raw_name)
            continue
        if name in mapped:
            warnings.append(f"{what}: lead {name} stored twice; kept the first copy")
            continue
        mapped[name] = np.asarray(values, dtype=np.float64)
    if not mapped:
        raise CorruptFileError(f"{what}: no standard ECG lead found among channels {sorted(channels)}")
    lengths = {v.shape[-1] for v in mapped.values()}
    if len(lengths) > 1:
        shortest = min(lengths)
        warnings.append(f"{what}: leads have different lengths {sorted(lengths)}; truncated to {shortest}")
        mapped = {k: v[..., :shortest] for k, v in mapped.items()}
    n = next(iter(mapped.values())).shape[-1]
    stored = [lead for lead in LEADS if lead in mapped]
    derived: list[str] = []
    if "I" in mapped and "II" in mapped:
        for name, values in derive_limb_leads(mapped["I"], mapped["II"]).items():
            if name not in mapped:
                mapped[name] = values
                derived.append(name)
    missing = [lead for lead in LEADS if lead not in mapped]
    out = np.zeros((len(LEADS), n), dtype=np.float32)
    for row, lead in enumerate(LEADS):
        if lead in mapped:
            out[row] = mapped[lead]
    return out, stored, derived, missing, ignored


def assemble_record(
    channels: Mapping[str, np.ndarray],
    fs: float,
    *,
    source_format: str,
    path: str | None,
    meta: Mapping[str, Any] | None = None,
    median_channels: Mapping[str, np.ndarray] | None = None,
    median_fs: float | None = None,
) -> EcgRecord:
    """Build an :class:`EcgRecord` from named channels already scaled to mV.

    Leads are matched by name, never by position. III, aVR, aVL and aVF are derived from I and II when the file does
    not store them; leads that are neither stored nor derivable are zero-filled and listed in ``missing_leads`` (signal
    QC flags them). Channels that are not standard leads (Frank XYZ, respiration) are listed in ``ignored_channels``.
    """
    if not np.isfinite(fs) or fs <= 0:
        raise CorruptFileError(f"{source_format}: implausible sampling rate {fs!r} Hz")
    full_meta: dict[str, Any] = {
        "format": source_format,
        "path": path,
        "device": None,
        "acquired": None,
        "age": None,
        "sex": None,
        "heart_rate": None,
        "filters": {},
        "phi": {},
    }
    full_meta.update(meta or {})
    warnings: list[str] = list(full_meta.get("warnings", []))
    signal, stored, derived, missing, ignored = _stack_leads(channels, source_format, warnings)
    if signal.shape[1] == 0:
        raise CorruptFileError(f"{source_format}: the file holds no samples")
    if not np.all(np.isfinite(signal)):
        bad = int((~np.isfinite(signal)).sum())
        warnings.append(f"{bad} non-finite samples (NaN/inf) replaced by 0")
        signal = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    if derived:
        warnings.append(f"leads {', '.join(derived)} derived from I and II")
    if missing:
        warnings.append(f"leads {', '.join(missing)} are missing and zero-filled")
    full_meta.update(
        stored_leads=stored, derived_leads=derived, missing_leads=missing, ignored_channels=ignored, warnings=warnings
    )
    median = None
    if median_channels:
        median_warnings: list[str] = []
        median, *_ = _stack_leads(median_channels, f"{source_format} median beat", median_warnings)
        warnings.extend(median_warnings)
    return EcgRecord(signal=signal, fs=float(fs), meta=full_meta, median_beat=median, median_fs=median_fs)
