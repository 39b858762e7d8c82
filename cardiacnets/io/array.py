"""Plain-array ECG files: NPY, NPZ and CSV, in the layouts documented here.

The sampling rate is never guessed: every layout must state it, and a file that does not is refused.

NPY (``.npy``)
    One numeric 2-D array of 12 standard leads in canonical order ``I, II, III, aVR, aVL, aVF, V1..V6``, shaped
    ``(12, n)`` or ``(n, 12)`` (an ``(12, 12)`` array is read leads-first), in mV. An NPY file carries no sampling
    rate, so it must come from the caller (``read(..., fs=500)``) or from a JSON sidecar next to the file,
    ``<name>.json`` holding ``{"fs": 500}`` and optionally ``"leads"`` (names, file order) and ``"units"``
    (``"mV"``/``"uV"``). Using the sidecar is recorded in ``meta["warnings"]``.

NPZ (``.npz``)
    Keys: ``signal`` (required; 2-D numeric, ``(n_leads, n)`` or ``(n, n_leads)``), ``fs`` (required unless passed by
    the caller; scalar Hz), ``leads`` (optional; array of lead names in file order, e.g. ``np.array(["I", "II",
    "V1"])``; without it the 12 canonical leads in order are assumed), ``units`` (optional; ``"mV"`` default or
    ``"uV"``). Object (pickled) arrays are refused.

CSV (``.csv``, comma, semicolon or tab separated)
    Optional comment lines starting with ``#``: ``# fs=500`` (Hz) and ``# units=mV`` or ``# units=uV`` (default mV).
    A header row of lead names; an optional first column ``time`` (seconds). Then one row per sample. The rate comes
    from ``# fs=`` or from the (uniform) time column; when both are present they must agree within 1 %. Empty cells
    are missing samples (NaN, flagged). A single lead needs no separator: a header ``I`` then one value per row.

Single-lead CSV with a key-value header (a wearable's export; the Apple Watch ECG app's "Export as CSV" writes it)
    ``key,value`` lines (values may be quoted and hold commas: ``Device,"Watch7,12"``), then one voltage per line.
    Recognised by a ``Sample Rate,512 hertz`` line (``Hz`` too, any case). ``Lead,Lead I`` names the lead (lead I if
    absent), ``Unit,µV`` the unit (uV if absent, with a warning); ``Recorded Date`` is the acquisition time, ``Device``
    the device, ``Classification`` the device's rhythm statement (the cart-measurement ``rhythm``); ``Name`` and
    ``Date of Birth`` are kept only under ``meta["phi"]``. Samples written with a decimal comma (``-265,868``, the
    device's locale) are read as decimals. Unknown keys are ignored.

Safety: ``np.load(..., allow_pickle=False)``; array headers are checked before any data is decoded (declared shape x
item size against the bytes present, and against :data:`MAX_ARRAY_BYTES`), and NPZ members' uncompressed sizes and
compression ratios are checked before decompression (zip bombs -> :class:`FileTooLargeError`).
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CorruptFileError, FileTooLargeError, UnsupportedFormatError
from cardiacnets.io._units import millivolts_per_unit
from cardiacnets.record import LEADS, EcgRecord, assemble_record, canonical_lead_name

logger = logging.getLogger(__name__)

#: Largest decoded array accepted (bytes): a 10-minute, 12-lead, 1 kHz float64 ECG is ~58 MB.
MAX_ARRAY_BYTES = 256 * 1024 * 1024
#: Largest compression ratio accepted for an NPZ member (ECG int/float data compresses ~2-10x).
MAX_COMPRESSION_RATIO = 200


def _units_factor(units: Any, where: str) -> float:
    factor = millivolts_per_unit(units)
    if factor is None:
        raise CorruptFileError(f"{where}: unknown units {units!r} (use mV or uV)")
    return factor


def _check_fs(fs: Any, where: str) -> float:
    try:
        value = float(np.asarray(fs).reshape(-1)[0]) if np.asarray(fs).size == 1 else float("nan")
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or not 0 < value <= 1e5:
        raise CorruptFileError(f"{where}: implausible sampling rate {fs!r}")
    return value


def _npy_header(stream: io.BytesIO, where: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise CorruptFileError(f"{where}: unsupported NPY version {version}")
    except CorruptFileError:
        raise
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise CorruptFileError(f"{where}: malformed NPY header ({exc})") from exc
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _checked_array(raw: bytes, where: str) -> np.ndarray:
    """Load one NPY payload after checking its declared shape and dtype against the bytes present."""
    stream = io.BytesIO(raw)
    shape, dtype = _npy_header(stream, where)
    if dtype.hasobject or dtype.kind not in "biufUS":  # text kinds: lead names and units
        raise UnsupportedFormatError(f"{where}: array dtype {dtype} is refused (numeric or text arrays only)")
    n_items = int(np.prod(shape, dtype=np.float64)) if shape else 1
    n_bytes = n_items * dtype.itemsize
    if n_bytes > MAX_ARRAY_BYTES:
        raise FileTooLargeError(f"{where}: array {shape} of {dtype} needs {n_bytes} bytes (limit {MAX_ARRAY_BYTES})")
    if n_bytes > len(raw) - stream.tell():
        raise CorruptFileError(f"{where}: array declares shape {shape} but the file holds only part of it (truncated)")
    stream.seek(0)
    try:
        return np.load(stream, allow_pickle=False)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: cannot load array ({exc})") from exc


def _orient(signal: np.ndarray, n_leads: int, where: str) -> np.ndarray:
    """Return ``(n_leads, n)`` from ``(n_leads, n)`` or ``(n, n_leads)``."""
    if signal.ndim != 2:
        raise CorruptFileError(f"{where}: signal must be 2-D (leads x samples), got shape {signal.shape}")
    if signal.shape[0] == n_leads:
        return signal
    if signal.shape[1] == n_leads:
        return signal.T
    raise CorruptFileError(f"{where}: signal shape {signal.shape} has no axis of {n_leads} leads")


def _leads_list(leads: Any, where: str) -> list[str]:
    names = [str(x).strip() for x in np.asarray(leads).reshape(-1)]
    if not names or len(set(names)) != len(names):
        raise CorruptFileError(f"{where}: lead names must be non-empty and distinct, got {names}")
    return names


def _build(
    signal: np.ndarray, leads: Sequence[str], fs: float, factor: float, fmt: str, path: Path, warnings: list[str]
) -> EcgRecord:
    signal = np.asarray(signal)
    if signal.dtype.kind not in "biuf":
        raise CorruptFileError(f"{path}: signal array dtype {signal.dtype} is not numeric")
    oriented = _orient(signal, len(leads), f"{path}")
    if oriented.shape[1] == 0:
        raise CorruptFileError(f"{path}: the array holds no samples")
    values = oriented.astype(np.float64) * factor
    channels = {name: values[k] for k, name in enumerate(leads)}
    return assemble_record(channels, fs, source_format=fmt, path=str(path), meta={"warnings": warnings})


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        if side.stat().st_size > 1 << 20:
            raise CorruptFileError(f"{side}: sidecar too large")
        content = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{side}: unreadable JSON sidecar ({exc})") from exc
    if not isinstance(content, dict):
        raise CorruptFileError(f"{side}: sidecar must hold a JSON object")
    return content


def _read_npy(path: Path, data: bytes, fs: float | None, leads: Sequence[str] | None, units: str | None) -> EcgRecord:
    warnings: list[str] = []
    signal = _checked_array(data, str(path))
    side = _sidecar(path) if fs is None or leads is None or units is None else {}
    if fs is None:
        if "fs" not in side:
            raise CorruptFileError(
                f"{path}: an NPY file carries no sampling rate; pass fs, add a sidecar {path.with_suffix('.json').name}"
                ' with {"fs": ...}, or save an NPZ with an "fs" entry'
            )
        warnings.append(f"sampling rate {side['fs']} Hz taken from sidecar {path.with_suffix('.json').name}")
        fs = side["fs"]
    names = _leads_list(leads if leads is not None else side.get("leads", LEADS), str(path))
    factor = _units_factor(units if units is not None else side.get("units", "mV"), str(path))
    return _build(signal, names, _check_fs(fs, str(path)), factor, "NPY", path, warnings)


def _read_npz(path: Path, data: bytes, fs: float | None, leads: Sequence[str] | None, units: str | None) -> EcgRecord:
    where = str(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CorruptFileError(f"{where}: not a readable NPZ (zip) archive ({exc})") from exc
    if len(infos) > 64:
        raise CorruptFileError(f"{where}: NPZ holds {len(infos)} members; expected a handful")
    total = 0
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        total += info.file_size
        if info.file_size > MAX_ARRAY_BYTES or total > MAX_ARRAY_BYTES:
            raise FileTooLargeError(f"{where}: NPZ member {info.filename} expands beyond {MAX_ARRAY_BYTES} bytes")
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise FileTooLargeError(f"{where}: NPZ member {info.filename} has a zip-bomb compression ratio")
        members[info.filename.removesuffix(".npy")] = info

    def load(key: str) -> np.ndarray:
        info = members[key]
        try:
            with archive.open(info) as handle:
                raw = handle.read(MAX_ARRAY_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise CorruptFileError(f"{where}: NPZ member {key!r} is corrupt ({exc})") from exc
        if len(raw) > MAX_ARRAY_BYTES:
            raise FileTooLargeError(f"{where}: NPZ member {key!r} expands beyond {MAX_ARRAY_BYTES} bytes")
        return _checked_array(raw, f"{where} [{key}]")

    if "signal" not in members:
        raise CorruptFileError(f"{where}: NPZ has no 'signal' array (keys: {sorted(members)})")
    signal = load("signal")
    if fs is None:
        if "fs" not in members:
            raise CorruptFileError(f"{where}: NPZ has no 'fs' entry (sampling rate in Hz) and none was passed")
        fs = load("fs")
    names = _leads_list(leads if leads is not None else (load("leads") if "leads" in members else LEADS), where)
    if units is None:
        units = str(load("units").reshape(-1)[0]) if "units" in members else "mV"
    return _build(signal, names, _check_fs(fs, where), _units_factor(units, where), "NPZ", path, [])


#: A header value stating the sampling rate (``512 hertz``, ``500 Hz``): it marks a key-value single-lead export.
_KV_RATE = re.compile(r"^([0-9]+(?:[.,][0-9]+)?)\s*(?:hertz|hz)$", re.IGNORECASE)
#: One voltage on its own line, with a decimal point or a decimal comma; quoted, or with one trailing separator, as
#: a spreadsheet that re-saved the export writes it.
_KV_SAMPLE = re.compile(r'^"?([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?)"?[,;\t]?$')


def _key_value_header(lines: list[str]) -> tuple[dict[str, str], int] | None:
    """``(header key (lower case) -> value, index of the first sample line)`` of a key-value single-lead export, or
    None when ``lines`` are not one (no ``key,<n> hertz`` line before the first line that is one number)."""
    import csv

    header: dict[str, str] = {}
    for k, line in enumerate(lines[:200]):
        stripped = line.strip()
        if not stripped:
            continue
        if _KV_SAMPLE.match(stripped):
            has_rate = any(_KV_RATE.match(value) for value in header.values())
            return (header, k) if has_rate else None
        cells = next(csv.reader([stripped], skipinitialspace=True), [])
        if cells and cells[0].strip():
            header.setdefault(cells[0].strip().lower(), ",".join(c.strip() for c in cells[1:]).strip())
    return None


def _read_key_value_csv(
    path: Path, lines: list[str], header: dict[str, str], first: int, fs: float | None, units: str | None
) -> EcgRecord:
    """The single-lead layout with a key-value header (module docstring). Keys may be in the device's language: the
    rate, lead and unit are recognised by their values; the patient's name and birth date only by the English keys
    (kept under ``meta["phi"]``; other keys are dropped)."""
    from cardiacnets.io.cart_measurements import complete, rhythm_from_statements

    where = str(path)
    samples = [line.strip() for line in lines[first:] if line.strip()]
    values = np.empty(len(samples))
    for k, cell in enumerate(samples):
        number = _KV_SAMPLE.match(cell)
        if number is None:
            raise CorruptFileError(f"{where}: sample line {k + 1} ({cell[:20]!r}) is not one number")
        values[k] = float(number.group(1).replace(",", "."))
    if values.size < 2:
        raise CorruptFileError(f"{where}: the export holds fewer than 2 samples after its header")
    warnings: list[str] = []
    stated = next(m for v in header.values() if (m := _KV_RATE.match(v)))
    rate = _check_fs(float(stated.group(1).replace(",", ".")), where)
    if fs is not None and abs(_check_fs(fs, where) - rate) > 0.01 * rate:
        raise CorruptFileError(f"{where}: the export states {rate:g} Hz but fs={fs} was passed")
    named = header.get("lead")
    leads = [lead for v in ([named] if named else header.values()) if (lead := canonical_lead_name(v))]
    if named and not leads:
        raise CorruptFileError(f"{where}: lead {named!r} is not one of the 12 standard leads")
    if not leads:
        warnings.append("the export names no lead; read as lead I")
    unit = units if units is not None else header.get("unit")
    if unit is None:
        unit = next((v for v in header.values() if millivolts_per_unit(v) is not None), None)
    if unit is None:
        warnings.append("the export states no unit; assumed uV")
    factor = _units_factor(unit or "uV", where)
    phi_keys = (("name", "name"), ("birth_date", "date of birth"))
    phi = {key: header[field] for key, field in phi_keys if header.get(field)}
    rhythm, paced = rhythm_from_statements([header["classification"]] if header.get("classification") else [])
    meta = {
        "warnings": warnings,
        "device": header.get("device") or None,
        "acquired": header.get("recorded date") or None,
        "phi": phi,
        "cart_measurements": complete({"rhythm": rhythm, "paced": paced}),
    }
    channels = {(leads[0] if leads else "I"): values * factor}
    return assemble_record(channels, rate, source_format="CSV", path=where, meta=meta)


def _read_csv(path: Path, data: bytes, fs: float | None, units: str | None) -> EcgRecord:
    where = str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    all_lines = text.splitlines()
    key_value = _key_value_header(all_lines)
    if key_value is not None:
        return _read_key_value_csv(path, all_lines, *key_value, fs, units)
    declared: dict[str, str] = {}
    rows: list[str] = []
    for line in all_lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            for key, value in re.findall(r"(\w+)\s*=\s*([^\s,;]+)", stripped):
                declared[key.lower()] = value
            continue
        rows.append(stripped)
    if len(rows) < 2:
        raise CorruptFileError(f"{where}: CSV needs a header row and at least one sample row")
    header_row = rows[0]
    delimiter: str | None = max((",", ";", "\t"), key=header_row.count)
    if header_row.count(delimiter) == 0:  # type: ignore[arg-type]
        if canonical_lead_name(header_row.strip().strip('"')) is None:
            raise CorruptFileError(
                f"{where}: CSV header row has no comma, semicolon or tab separator (a single column needs a lead"
                " name such as 'I' as its header)"
            )
        delimiter = None  # one lead: one value per row, which may carry a decimal comma
    header = [
        h.strip().strip('"').strip("'") for h in ([header_row] if delimiter is None else header_row.split(delimiter))
    ]
    n_cols = len(header)
    values = np.full((len(rows) - 1, n_cols), np.nan)
    for r, row in enumerate(rows[1:]):
        cells = [row.replace(",", ".")] if delimiter is None else row.split(delimiter)
        if len(cells) != n_cols:
            raise CorruptFileError(f"{where}: CSV row {r + 2} has {len(cells)} fields, the header {n_cols}")
        for c, cell in enumerate(cells):
            cell = cell.strip().strip('"')
            if cell:
                try:
                    values[r, c] = float(cell)
                except ValueError as exc:
                    raise CorruptFileError(
                        f"{where}: CSV row {r + 2}, column {header[c]!r}: {cell!r} is not a number"
                    ) from exc
    warnings: list[str] = []
    has_time = header[0].lower() in {"time", "t", "time_s", "time (s)", "seconds"}
    rate_sources: list[float] = []
    if "fs" in declared:
        rate_sources.append(_check_fs(declared["fs"], where))
    if fs is not None:
        rate_sources.append(_check_fs(fs, where))
    if has_time:
        t = values[:, 0]
        if len(t) < 2 or not np.all(np.isfinite(t)):
            raise CorruptFileError(f"{where}: CSV time column is incomplete")
        dt = np.diff(t)
        step = float(np.median(dt))
        if step <= 0 or np.max(np.abs(dt - step)) > 0.01 * step + 1e-9:
            raise CorruptFileError(f"{where}: CSV time column is not uniformly increasing")
        time_fs = 1.0 / step
        if rate_sources and abs(time_fs - rate_sources[0]) > 0.01 * rate_sources[0]:
            raise CorruptFileError(f"{where}: CSV time column gives {time_fs:.3f} Hz but fs={rate_sources[0]} declared")
        rate_sources.append(time_fs)
        values = values[:, 1:]
        header = header[1:]
    if not rate_sources:
        raise CorruptFileError(f"{where}: CSV states no sampling rate: add a '# fs=500' line or a 'time' column (s)")
    factor = _units_factor(units if units is not None else declared.get("units", "mV"), where)
    names = [canonical_lead_name(h) or h for h in header] if delimiter is None else header
    return _build(values.T, _leads_list(names, where), rate_sources[0], factor, "CSV", path, warnings)


def read(
    path: Path,
    data: bytes,
    *,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str | None = None,
) -> EcgRecord:
    """Read an NPY, NPZ or CSV ECG (layouts in the module docstring) into an :class:`EcgRecord` (mV, ``(12, n)``).

    ``fs`` (Hz), ``leads`` (names in file order) and ``units`` override what the file or its sidecar says.
    """
    if data.startswith(b"\x93NUMPY"):
        return _read_npy(path, data, fs, leads, units)
    if data.startswith(b"PK\x03\x04"):
        return _read_npz(path, data, fs, leads, units)
    if leads is not None:
        raise UnsupportedFormatError(f"{path}: CSV lead names come from its header row; leads cannot be passed")
    return _read_csv(path, data, fs, units)
