"""EDF / EDF+ reader for ECG recordings (samples decoded by ``edfio`` after the header is checked here).

EDF header (all ASCII): 256 bytes of record fields (version ``"0"``, patient, recording, start date/time, header size,
reserved (``"EDF+C"``/``"EDF+D"`` for EDF+), number of data records, data-record duration in s, number of signals ns),
then ns x 256 bytes of per-signal fields (label, transducer, physical dimension, physical min/max, digital min/max,
prefiltering, samples per data record). Data records follow: int16 little-endian, each signal's block in turn.

Physical value = (digital - digital_min) x (physical_max - physical_min) / (digital_max - digital_min) + physical_min,
exactly as the header says (a digital 0 is not necessarily 0 in physical units: the corpus file maps 0 to +15.259 uV),
in the signal's physical dimension (uV/mV/V, converted to mV). A data record may hold a single sample. The EDF+
annotation signal and non-voltage signals are ignored. Labels such as ``"ECG I"``, ``"EKG V1"`` or ``"II"`` are
matched to the standard leads.

Before edfio touches the data the header is validated: field syntax, header size = 256 x (ns + 1), signal count,
samples per record, and that the declared number of data records fits in the file (a truncated file is a
:class:`CorruptFileError`; a file longer than declared gets a warning).
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import re
import warnings as warnings_module
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CardiacNetsError, CorruptFileError, UnsupportedFormatError
from cardiacnets.io._units import channel_factor
from cardiacnets.record import EcgRecord, assemble_record, canonical_lead_name

logger = logging.getLogger(__name__)

_MAX_SIGNALS = 512
_ANNOTATION_LABEL = "EDF Annotations"


def _field(data: bytes, start: int, width: int) -> str:
    return data[start : start + width].decode("latin-1").strip()


def _int_field(data: bytes, start: int, width: int, what: str, where: str) -> int:
    text = _field(data, start, width)
    try:
        return int(text)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: EDF header field {what} is not an integer ({text!r})") from exc


def _float_field(data: bytes, start: int, width: int, what: str, where: str) -> float:
    text = _field(data, start, width)
    try:
        value = float(text)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: EDF header field {what} is not a number ({text!r})") from exc
    if not np.isfinite(value):
        raise CorruptFileError(f"{where}: EDF header field {what} is not finite ({text!r})")
    return value


def _check_header(data: bytes, where: str, warnings: list[str]) -> tuple[int, list[str], list[int], float]:
    """Validate the EDF header; return (number of data records, labels, samples per record, record duration s)."""
    if len(data) < 256:
        raise CorruptFileError(f"{where}: EDF header truncated ({len(data)} of 256 bytes)")
    if data[:8] != b"0       ":
        raise UnsupportedFormatError(f"{where}: not an EDF file (version field {data[:8]!r}; BDF is not supported)")
    header_bytes = _int_field(data, 184, 8, "header size", where)
    ns = _int_field(data, 252, 4, "number of signals", where)
    if not 0 < ns <= _MAX_SIGNALS:
        raise CorruptFileError(f"{where}: implausible EDF signal count {ns}")
    if header_bytes != 256 * (ns + 1):
        raise CorruptFileError(f"{where}: EDF header size {header_bytes} does not match {ns} signals")
    if len(data) < header_bytes:
        raise CorruptFileError(f"{where}: EDF signal headers truncated ({len(data)} of {header_bytes} bytes)")
    n_records = _int_field(data, 236, 8, "number of data records", where)
    duration = _float_field(data, 244, 8, "data record duration", where)
    reserved = _field(data, 192, 44)
    if reserved.startswith("EDF+D"):
        warnings.append("EDF+D (discontinuous) file: data records are read as if contiguous")

    labels = [_field(data, 256 + 16 * i, 16) for i in range(ns)]
    spr_start = 256 + ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    samples_per_record = [
        _int_field(data, spr_start + 8 * i, 8, f"samples per record of signal {i + 1}", where) for i in range(ns)
    ]
    if any(n <= 0 for n in samples_per_record):
        raise CorruptFileError(f"{where}: EDF signal with a non-positive sample count per data record")
    record_bytes = 2 * sum(samples_per_record)
    available = len(data) - header_bytes
    if n_records == -1:
        n_records = available // record_bytes
        warnings.append(f"EDF header left the number of data records unset; {n_records} found in the file")
    if n_records <= 0:
        raise CorruptFileError(f"{where}: EDF file declares {n_records} data records")
    if n_records * record_bytes > available:
        raise CorruptFileError(
            f"{where}: EDF file truncated: {n_records} data records of {record_bytes} bytes declared,"
            f" {available} bytes present"
        )
    if n_records * record_bytes < available:
        warnings.append(f"EDF file holds {available - n_records * record_bytes} bytes after the last data record")
    if duration <= 0:
        raise CorruptFileError(f"{where}: EDF data record duration {duration} s gives no sampling rate")
    return n_records, labels, samples_per_record, duration


def _lead_label(label: str) -> str:
    """``"ECG I"``/``"EKG-V1"`` -> ``"I"``/``"V1"`` when the rest is a standard lead; other labels unchanged."""
    stripped = re.sub(r"^(ECG|EKG)[\s_-]*", "", label.strip(), flags=re.IGNORECASE)
    return stripped if canonical_lead_name(stripped) else label


def _meta(edf: Any, warnings: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"phi": {}, "filters": {}}
    try:
        start = _dt.datetime.combine(edf.startdate, edf.starttime)
        meta["acquired"] = start.isoformat()
    except Exception:  # noqa: BLE001 - EDF allows anonymised/invalid start dates; not fatal
        pass
    try:
        patient = edf.patient
        meta["sex"] = {"M": "M", "F": "F"}.get(str(patient.sex).upper())
        if patient.code and patient.code != "X":
            meta["phi"]["patient_id"] = patient.code
        if patient.name and patient.name != "X":
            meta["phi"]["name"] = patient.name
        birth = patient.birthdate
        if birth is not None:
            meta["phi"]["birth_date"] = birth.isoformat()
    except Exception:  # noqa: BLE001 - plain EDF: free-text patient field
        text = str(getattr(edf, "local_patient_identification", "") or "").strip()
        if text:
            meta["phi"]["patient"] = text
    try:
        equipment = edf.recording.equipment_code
        meta["device"] = equipment if equipment and equipment != "X" else None
    except Exception:  # noqa: BLE001 - plain EDF: free-text recording field
        meta["device"] = None
    return meta


def read(path: Path, data: bytes) -> EcgRecord:
    """Read an EDF/EDF+ file into an :class:`EcgRecord` (``signal`` ``(12, n)`` in mV)."""
    import edfio

    where = str(path)
    warnings: list[str] = []
    n_records, labels, samples_per_record, duration = _check_header(data, where, warnings)
    header_bytes = 256 * (len(labels) + 1)
    declared_end = header_bytes + n_records * 2 * sum(samples_per_record)
    try:
        with warnings_module.catch_warnings():
            warnings_module.simplefilter(
                "ignore"
            )  # edfio "updates" the header from the file size; we follow the header
            edf = edfio.read_edf(io.BytesIO(data[:declared_end]))
            signals = list(edf.signals)
    except CardiacNetsError:
        raise
    except Exception as exc:  # noqa: BLE001 - edfio raises ValueError & co. on malformed headers
        raise CorruptFileError(f"{where}: malformed EDF ({type(exc).__name__}: {exc})") from exc

    candidates: list[tuple[str, float, Any]] = []
    for signal in signals:
        label = str(signal.label).strip()
        if label == _ANNOTATION_LABEL:
            continue
        unit = str(signal.physical_dimension or "").strip()
        factor = channel_factor(unit, f"EDF signal {label!r}", "has no physical dimension", warnings)
        if factor is None:
            continue
        candidates.append((label, factor, signal))
    lead_rates = [float(s.sampling_frequency) for label, _, s in candidates if canonical_lead_name(_lead_label(label))]
    if not lead_rates:
        raise CorruptFileError(f"{where}: no standard ECG lead among EDF signals {labels}")
    fs, _ = Counter(lead_rates).most_common(1)[0]
    channels: dict[str, np.ndarray] = {}
    for label, factor, signal in candidates:
        if float(signal.sampling_frequency) != fs:
            warnings.append(f"EDF signal {label!r} at {signal.sampling_frequency} Hz (not {fs} Hz); ignored")
            continue
        try:
            values = np.asarray(signal.data, dtype=np.float64) * factor
        except Exception as exc:  # noqa: BLE001 - edfio decodes lazily
            raise CorruptFileError(f"{where}: EDF signal {label!r} cannot be decoded ({exc})") from exc
        name = _lead_label(label)
        channels[name if name not in channels else f"{name} #{len(channels) + 1}"] = values
    meta = _meta(edf, warnings)
    meta["edf_plus"] = _field(data, 192, 44).startswith("EDF+")
    meta["data_record_duration_s"] = duration
    meta["warnings"] = warnings
    return assemble_record(channels, fs, source_format="EDF", path=where, meta=meta)
