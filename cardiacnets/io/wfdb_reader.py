"""WFDB record reader (PhysioNet format: ``.hea`` header + ``.dat``/other signal files, or WFDB-MAT ``.mat``).

The path given may be the header or any of the record's signal files; the header (same stem, ``.hea``) is read first
and checked here before :func:`wfdb.rdrecord` touches anything: single-segment records only, signal file names that
stay inside the record's directory, supported storage formats, and declared sample counts that the signal files can
actually hold (an absurd count is a :class:`CorruptFileError`, never a huge allocation). Reading is local only
(``pn_dir=None``): no network.

Physical value = (digital - baseline) / gain in the signal's units (mV, uV or V; converted to mV). Samples that hold
WFDB's "missing" value become NaN in wfdb and are counted in a warning (then zeroed by ``assemble_record``). Lead names
are matched case-insensitively (``i``, ``AVR``, ``avf``); non-ECG channels (Frank ``vx/vy/vz``, respiration) are
ignored.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cardiacnets.errors import CardiacNetsError, CorruptFileError, FileTooLargeError, UnsupportedFormatError
from cardiacnets.io._units import millivolts_per_unit
from cardiacnets.record import EcgRecord, assemble_record

logger = logging.getLogger(__name__)

#: bytes per sample of each WFDB storage format the reader accepts (FLAC formats 508/516/524 are not accepted).
_BYTES_PER_SAMPLE = {
    "8": 1.0,
    "16": 2.0,
    "24": 3.0,
    "32": 4.0,
    "61": 2.0,
    "80": 1.0,
    "160": 2.0,
    "212": 1.5,
    "310": 4.0 / 3.0,
    "311": 4.0 / 3.0,
}
_MAX_HEADER_BYTES = 1 << 20
_MAX_SIGNALS = 256

_RECORD_LINE = re.compile(
    r"^(?P<name>[\w.-]+)(?:/(?P<nseg>\d+))?\s+(?P<nsig>\d+)"
    r"(?:\s+(?P<fs>[\d.eE+-]+)(?:/[\d.eE+-]+)?(?:\([\d.eE+-]+\))?(?:\s+(?P<siglen>\d+))?)?"
)
_SIGNAL_LINE = re.compile(r"^(?P<file>\S+)\s+(?P<fmt>\d+)(?:x\d+)?(?::\d+)?(?:\+(?P<offset>\d+))?")


def _header_path(path: Path) -> Path:
    if path.suffix.lower() == ".hea":
        return path
    header = path.with_suffix(".hea")
    if not header.is_file():
        raise CorruptFileError(f"{path}: WFDB signal file without its header {header.name}")
    return header


def _check_header(header: Path, max_bytes: int) -> tuple[str, list[str], list[str]]:
    """Validate the header against the signal files on disk; return the record name, the header's comment lines and
    its record and signal lines."""
    where = str(header)
    try:
        size = header.stat().st_size
        if size > _MAX_HEADER_BYTES:
            raise FileTooLargeError(f"{where}: WFDB header of {size} bytes is implausibly large")
        text = header.read_bytes().decode("latin-1")
    except OSError as exc:
        raise CorruptFileError(f"{where}: cannot read the WFDB header ({exc.strerror or exc})") from exc
    lines = [line.strip() for line in text.splitlines()]
    comments = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
    body = [line for line in lines if line and not line.startswith("#")]
    if not body:
        raise CorruptFileError(f"{where}: WFDB header has no record line")
    match = _RECORD_LINE.match(body[0])
    if not match:
        raise CorruptFileError(f"{where}: malformed WFDB record line {body[0][:80]!r}")
    if match.group("nseg"):
        raise UnsupportedFormatError(f"{where}: multi-segment WFDB records are not supported")
    n_sig = int(match.group("nsig"))
    if not 0 < n_sig <= _MAX_SIGNALS:
        raise CorruptFileError(f"{where}: implausible WFDB signal count {n_sig}")
    fs_text = match.group("fs")
    try:
        fs = float(fs_text) if fs_text else 250.0
    except ValueError as exc:
        raise CorruptFileError(f"{where}: malformed WFDB sampling frequency {fs_text!r}") from exc
    if not np.isfinite(fs) or fs <= 0 or fs > 1e6:
        raise CorruptFileError(f"{where}: implausible WFDB sampling frequency {fs_text}")
    if len(body) - 1 < n_sig:
        raise CorruptFileError(f"{where}: WFDB header declares {n_sig} signals but describes {len(body) - 1}")
    siglen = int(match.group("siglen")) if match.group("siglen") else None

    per_file: dict[str, list[tuple[str, int]]] = {}
    for line in body[1 : 1 + n_sig]:
        sig = _SIGNAL_LINE.match(line)
        if not sig:
            raise CorruptFileError(f"{where}: malformed WFDB signal line {line[:80]!r}")
        fname, fmt = sig.group("file"), sig.group("fmt")
        if fname == "-" or fname == "~":
            raise UnsupportedFormatError(f"{where}: WFDB signals on standard input / null file are not supported")
        if "/" in fname or "\\" in fname or fname in {".", ".."}:
            raise CorruptFileError(f"{where}: WFDB signal file {fname!r} points outside the record's directory")
        if fmt not in _BYTES_PER_SAMPLE:
            raise UnsupportedFormatError(f"{where}: WFDB storage format {fmt} is not supported")
        per_file.setdefault(fname, []).append((fmt, int(sig.group("offset") or 0)))
    for fname, signals in per_file.items():
        data_path = header.parent / fname
        if not data_path.is_file():
            raise CorruptFileError(f"{where}: WFDB signal file {fname} is missing")
        size = data_path.stat().st_size
        if size > max_bytes:
            raise FileTooLargeError(f"{data_path}: {size} bytes is over the {max_bytes}-byte limit")
        offset = signals[0][1]
        bytes_per_frame = sum(_BYTES_PER_SAMPLE[fmt] for fmt, _ in signals)
        if siglen is not None:
            needed = offset + int(np.ceil(siglen * bytes_per_frame))
            if needed > size:
                raise CorruptFileError(
                    f"{where}: WFDB header declares {siglen} samples, which need {needed} bytes in {fname},"
                    f" but the file holds {size} bytes (truncated file or corrupt header)"
                )
        elif size <= offset:
            raise CorruptFileError(f"{where}: WFDB signal file {fname} holds no samples")
    if siglen == 0:
        raise CorruptFileError(f"{where}: WFDB header declares 0 samples")
    return header.stem, comments, body


# The common case read without wfdb (whose header parser costs milliseconds per file, and whose import pulls in
# pandas): signal files of 16-bit samples (format 16), every field of every signal line written out, calibrated
# gains. Anything else goes through wfdb.rdrecord. tests/test_edge_screen.py checks both paths agree exactly.
_SIMPLE_RECORD = re.compile(
    r"^(?P<name>[\w-]+)[ \t]+(?P<nsig>\d+)[ \t]+(?P<fs>\d+(?:\.\d+)?)[ \t]+(?P<siglen>\d+)"
    r"(?:[ \t]+(?P<time>\d{1,2}:\d{2}:\d{2})(?:[ \t]+(?P<date>\d{2}/\d{2}/\d{4}))?)?$"
)
_SIMPLE_SIGNAL = re.compile(
    r"^(?P<file>[\w-]+\.[\w]+)[ \t]+16(?:\+(?P<offset>\d+))?[ \t]+(?P<gain>\d+(?:\.\d+)?)"
    r"(?:\((?P<baseline>-?\d+)\))?(?:/(?P<units>\w+))?"
    r"[ \t]+\d+[ \t]+(?P<adc_zero>-?\d+)[ \t]+-?\d+[ \t]+-?\d+[ \t]+\d+[ \t]+(?P<name>[^\t]*)$"
)
_FMT16_MISSING = -32768  # WFDB's "no sample" value in format 16


def _read_simple(header: Path, body: list[str]) -> SimpleNamespace | None:
    """The fields :func:`read` uses of ``wfdb.rdrecord(..., physical=True, return_res=64)`` for a simple record, or
    None when the record is not simple. ``p_signal`` ``(samples, signals)`` float64 in each signal's units, NaN where
    the file holds the missing-sample value, exactly as wfdb computes it."""
    record = _SIMPLE_RECORD.match(body[0])
    if not record:
        return None
    n_sig, siglen = int(record.group("nsig")), int(record.group("siglen"))
    signals = [_SIMPLE_SIGNAL.match(line) for line in body[1 : 1 + n_sig]]
    if siglen == 0 or not all(signals):
        return None
    files: dict[str, list[int]] = {}  # signal file -> indices of its signals, in the order they are interleaved
    for index, match in enumerate(signals):
        files.setdefault(match.group("file"), []).append(index)
    if any(len({signals[i].group("offset") for i in indices}) != 1 for indices in files.values()):
        return None
    gains = [float(m.group("gain")) for m in signals]
    if any(g == 0 for g in gains):
        return None  # wfdb substitutes its default gain; leave that rule to wfdb
    base_time = base_date = None
    try:
        if record.group("time"):
            base_time = datetime.strptime(record.group("time"), "%H:%M:%S").time()
        if record.group("date"):
            base_date = datetime.strptime(record.group("date"), "%d/%m/%Y").date()
    except ValueError:
        return None
    digital = np.empty((siglen, n_sig), dtype=np.int16)
    for name, indices in files.items():
        with (header.parent / name).open("rb") as handle:
            handle.seek(int(signals[indices[0]].group("offset") or 0))
            raw = handle.read(2 * len(indices) * siglen)
        if len(raw) != 2 * len(indices) * siglen:
            return None
        digital[:, indices] = np.frombuffer(raw, dtype="<i2").reshape(siglen, len(indices))
    baselines = [int(m.group("baseline") if m.group("baseline") is not None else m.group("adc_zero")) for m in signals]
    p_signal = digital.astype(np.float64)
    np.subtract(p_signal, np.asarray(baselines, dtype=np.int64), p_signal)
    np.divide(p_signal, np.asarray(gains), p_signal)
    p_signal[digital == _FMT16_MISSING] = np.nan
    return SimpleNamespace(
        p_signal=p_signal,
        sig_name=[m.group("name") for m in signals],
        units=[m.group("units") or "mV" for m in signals],
        adc_gain=gains,
        fs=float(record.group("fs")),
        base_date=base_date,
        base_time=base_time,
    )


def _comment_meta(comments: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    text = " ".join(comments)
    age = re.search(r"\bage\W{0,3}\s*(\d{1,3}(?:\.\d+)?)", text, flags=re.IGNORECASE)
    if age and float(age.group(1)) < 130:
        meta["age"] = float(age.group(1)) if "." in age.group(1) else int(age.group(1))
    sex = re.search(r"\b(?:sex|gender)\W{0,3}\s*([A-Za-z]+)", text, flags=re.IGNORECASE)
    if sex:
        meta["sex"] = {"m": "M", "male": "M", "f": "F", "female": "F"}.get(sex.group(1).lower())
    return meta


def read(path: Path, data: bytes) -> EcgRecord:
    """Read a WFDB record into an :class:`EcgRecord` (``signal`` ``(12, n)`` in mV)."""
    from cardiacnets.io import MAX_FILE_BYTES

    header = _header_path(path)
    record_name, comments, body = _check_header(header, MAX_FILE_BYTES)
    where = str(header)
    try:
        record = _read_simple(header, body)
        if record is None:
            import wfdb

            record = wfdb.rdrecord(str(header.parent / record_name), physical=True, return_res=64)
    except CardiacNetsError:
        raise
    except MemoryError as exc:
        raise FileTooLargeError(f"{where}: WFDB record too large to read") from exc
    except Exception as exc:  # noqa: BLE001 - wfdb raises ValueError/IndexError/struct errors on malformed records
        raise CorruptFileError(f"{where}: malformed WFDB record ({type(exc).__name__}: {exc})") from exc
    signal = record.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] == 0:
        raise CorruptFileError(f"{where}: WFDB record holds no samples")
    warnings: list[str] = []
    channels: dict[str, np.ndarray] = {}
    for k, raw_name in enumerate(record.sig_name or []):
        name = str(raw_name).strip() if raw_name else f"signal {k + 1}"
        unit = str((record.units[k] if record.units and k < len(record.units) else "mV") or "mV")
        factor = millivolts_per_unit(unit)
        gain = record.adc_gain[k] if record.adc_gain and k < len(record.adc_gain) else None
        if gain == 0:
            warnings.append(f"WFDB signal {name!r} is uncalibrated (gain 0); read with WFDB's default gain")
        if factor is None:
            warnings.append(f"WFDB signal {name!r} in unit {unit!r} is not an ECG voltage; ignored")
            continue
        values = signal[:, k] * factor
        missing = int(np.isnan(values).sum())
        if missing:
            warnings.append(f"WFDB signal {name!r}: {missing} samples hold WFDB's missing-sample value (NaN)")
        key = name if name not in channels else f"{name} #{k + 1}"
        channels[key] = values
    meta: dict[str, Any] = {"phi": {"comments": comments} if comments else {}, "warnings": warnings}
    meta.update(_comment_meta(comments))
    if record.base_date is not None:
        stamp = record.base_date.isoformat()
        if record.base_time is not None:
            stamp += "T" + record.base_time.isoformat()
        meta["acquired"] = stamp
    meta["units"] = list(record.units or [])
    return assemble_record(channels, float(record.fs), source_format="WFDB", path=str(path), meta=meta)
