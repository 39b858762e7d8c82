"""Philips SierraECG / PhilipsECG XML (root ``restingecgdata``), document versions 1.03, 1.04, 1.04.01 and later.

Layout (Philips "SierraECG XML" schema; reference reader: sixlettervariables/sierra-ecg-tools):

- ``dataacquisition/signalcharacteristics``: ``samplingrate``, ``resolution`` (1.04) or ``signalresolution`` (1.03)
  in uV per count, ``acquisitiontype`` (``STD-12``/``10-WIRE``), ``numberchannelsallocated``.
- ``waveforms/parsedwaveforms``: the rhythm, all leads one after another. Attributes: ``dataencoding``
  (``Base64`` or ``Plain`` whitespace-separated integers), ``durationperchannel`` (ms), and in 1.04
  ``numberofleads``, ``leadlabels``, ``samplespersecond``, ``resolution``, ``compression``; in 1.03
  ``compressflag``/``compressmethod``. Compression ``XLI`` = per-lead chunks of LZW (10-bit codes) over a
  second-difference delta code; XLI stores III, aVR, aVL, aVF as residuals, reconstructed here in integer counts:
  ``III = II - I - r``, ``aVR = -r - floor((I + II)/2)``, ``aVL = floor((I - III)/2) - r``,
  ``aVF = floor((II + III)/2) - r``. Uncompressed data holds the leads themselves (as in the reference reader).
- ``waveforms/repbeats``: representative beats (``samplespersec``, ``resolution``), one ``repbeat`` per lead, data in
  a ``waveform`` child (1.04) or in the element itself (1.03); samples past the beat are filled with 32767.

The XLI decoder is written here (not ``sierraecg.xli``) so that its output is bounded by the declared sample count: a
crafted LZW stream cannot expand without limit.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from datetime import date as date_type
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np

from cardiacnets.errors import CorruptFileError
from cardiacnets.io._numbers import parse_integers
from cardiacnets.io._xml import attr, child, children, descendant, finish_record, float_text, int_text, parse_xml, text
from cardiacnets.io.cart_measurements import philips_measurements
from cardiacnets.record import EcgRecord, canonical_lead_name

logger = logging.getLogger(__name__)

FORMAT = "philips_sierra_xml"
KNOWN_VERSIONS = ("1.03", "1.04", "1.04.01", "1.04.02")
_STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_REPBEAT_FILL = 32767
_LZW_BITS = 10


_CODE_WEIGHTS = 1 << np.arange(_LZW_BITS - 1, -1, -1)  # MSB first
_LITERALS = tuple(bytes((code,)) for code in range(256))


def _lzw_decode(chunk: bytes, max_bytes: int, what: str) -> bytearray:
    """Decode one XLI LZW stream (10-bit MSB-first codes, 256 literal codes, code 1023 ends the stream).

    The codes are cut from the bit stream with numpy (the bit arithmetic per code was half the decoding time); the
    dictionary walk itself is sequential."""
    max_code = (1 << _LZW_BITS) - 2
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8))
    n_codes = bits.size // _LZW_BITS
    codes = (bits[: n_codes * _LZW_BITS].reshape(n_codes, _LZW_BITS) @ _CODE_WEIGHTS).tolist()
    # The dictionary as a list (faster than a dict here), the output as parts joined once: together a quarter less
    # time than a dict and a growing bytearray.
    strings: list[bytes | None] = [*_LITERALS, *([None] * (max_code + 1 - 256))]
    next_code = 256
    previous: bytes | None = None
    parts: list[bytes] = []
    size = 0
    for code in codes:
        if code > max_code:
            break
        data = strings[code]
        if data is None:
            if previous is None:
                raise CorruptFileError(f"{what}: XLI stream starts with an undefined LZW code {code}")
            data = previous + previous[:1]
            strings[code] = data
        if previous is not None and next_code <= max_code:
            strings[next_code] = previous + data[:1]
            next_code += 1
        previous = data
        parts.append(data)
        size += len(data)
        if size > max_bytes:
            raise CorruptFileError(f"{what}: XLI lead expands beyond {max_bytes} bytes (declared size exceeded)")
    return bytearray(b"".join(parts))


def _xli_undelta(packed: bytearray, first: int) -> np.ndarray:
    """XLI byte planes -> int64 samples: high bytes then low bytes, then a second-difference delta code.

    The decoder's recurrence ``out[i] = 2 out[i-1] - out[i-2] - c[i]`` (``c[2] = first``, ``c[i] = delta[i-1] - 64``
    after that) makes the first differences ``out[i] - out[i-1] = (delta[1] - delta[0]) - (c[2] + ... + c[i])``, so
    the samples are two cumulative sums (exact in int64 for any lead the size checks admit)."""
    if len(packed) % 2:
        packed.append(0)
    n = len(packed) // 2
    planes = np.frombuffer(bytes(packed), dtype=np.uint8)
    deltas = ((planes[:n].astype(np.uint16) << 8) | planes[n:]).view(np.int16).astype(np.int64)
    out = deltas.copy()
    if n < 3:
        return out
    corrections = np.empty(n - 2, dtype=np.int64)  # c[2 .. n-1]
    corrections[0] = first
    corrections[1:] = deltas[2 : n - 1] - 64
    steps = (deltas[1] - deltas[0]) - np.cumsum(corrections)  # out[i] - out[i-1], i = 2 .. n-1
    out[2:] = deltas[1] + np.cumsum(steps)
    return out


def xli_decode(data: bytes, n_leads: int, n_samples: int | None, what: str) -> list[np.ndarray]:
    """Decode XLI-compressed ``parsedwaveforms`` bytes into ``n_leads`` int64 arrays of counts.

    Each lead is an 8-byte header (int32 LE chunk size, 2 reserved bytes, int16 LE first delta) and its LZW chunk.
    Leads past ``n_leads`` (devices may append 4 unused channels) are ignored.
    """
    max_bytes = 2 * (n_samples if n_samples else 1_000_000) + 4096
    leads: list[np.ndarray] = []
    offset = 0
    while offset < len(data) and len(leads) < n_leads:
        if offset + 8 > len(data):
            raise CorruptFileError(f"{what}: XLI data truncated in the header of lead {len(leads) + 1}")
        size = int.from_bytes(data[offset : offset + 4], "little", signed=True)
        first = int.from_bytes(data[offset + 6 : offset + 8], "little", signed=True)
        offset += 8
        if size < 0 or offset + size > len(data):
            raise CorruptFileError(
                f"{what}: XLI lead {len(leads) + 1} declares {size} bytes but {len(data) - offset} remain"
            )
        packed = _lzw_decode(data[offset : offset + size], max_bytes, what)
        offset += size
        leads.append(_xli_undelta(packed, first))
    if len(leads) < n_leads:
        raise CorruptFileError(f"{what}: XLI data holds {len(leads)} leads, {n_leads} declared")
    return leads


def reconstruct_limb_leads(leads: dict[str, np.ndarray]) -> None:
    """Turn XLI residuals of III, aVR, aVL, aVF back into leads (integer counts, in place)."""
    lead_i, lead_ii = leads["I"], leads["II"]
    lead_iii = lead_ii - lead_i - leads["III"]
    leads["III"] = lead_iii
    leads["aVR"] = -leads["aVR"] - np.floor_divide(lead_i + lead_ii, 2)
    leads["aVL"] = np.floor_divide(lead_i - lead_iii, 2) - leads["aVL"]
    leads["aVF"] = np.floor_divide(lead_ii + lead_iii, 2) - leads["aVF"]


def _decode_values(payload: str, encoding: str, what: str) -> tuple[np.ndarray | None, bytes | None]:
    """``Base64`` -> (None, bytes); ``Plain`` -> (int64 values, None)."""
    if encoding.lower() == "base64":
        try:
            return None, base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CorruptFileError(f"{what}: invalid base64 data ({exc})") from exc
    if encoding.lower() == "plain":
        try:
            return parse_integers(payload), None
        except ValueError as exc:
            raise CorruptFileError(f"{what}: non-integer sample in plain data ({exc})") from exc
    raise CorruptFileError(f"{what}: unsupported data encoding {encoding!r} (Base64 or Plain expected)")


def _lead_labels(parsed: Element, signal: Element | None, n_stored: int | None, warnings: list[str]) -> list[str]:
    labels_attr = attr(parsed, "leadlabels")
    declared = _first_number(attr(parsed, "numberofleads"))
    count = int(declared) if declared is not None and declared < 64 else None
    if labels_attr:
        labels = labels_attr.split()
        return labels[:count] if count else labels
    n_channels = count or int_text(signal, "numberchannelsallocated") or n_stored or 12
    acquisition = (text(signal, "acquisitiontype") or text(signal, "leadset") or "").upper()
    if acquisition not in ("STD-12", "10-WIRE"):
        warnings.append(
            f"no lead labels and acquisition type {acquisition or 'missing'}; assumed standard 12-lead order"
        )
    return [_STANDARD_12[i] if i < 12 else f"Channel {i + 1}" for i in range(n_channels)]


def _first_number(*values: str | float | None) -> float | None:
    for value in values:
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number) and number > 0:
            return number
    return None


def _declared_rates(parsed: Element, signal: Element | None) -> list[tuple[str, float]]:
    """The rhythm's sampling rates as the file states them, ``(field, Hz)``, the one read by default first."""
    rates = [("samplespersecond", attr(parsed, "samplespersecond")), ("samplingrate", text(signal, "samplingrate"))]
    found = [(name, _first_number(value)) for name, value in rates]
    return [(name, hz) for name, hz in found if hz is not None]


def _resolve_rate(
    rates: list[tuple[str, float]], duration_ms: float | None, n: int, warnings: list[str]
) -> tuple[float, dict[str, Any]]:
    """Two rates that disagree: the one that gives ``n`` samples per lead over ``durationperchannel`` (to one sample)
    is right. Returns the rate to read at and the ``meta["integrity"]`` entry (unresolved, at the first rate, when
    no duration is stated or not exactly one rate fits)."""
    detail = "the file states two sampling rates: " + ", ".join(f"{name} {hz:g} Hz" for name, hz in rates)
    problem: dict[str, Any] = {
        "code": "sampling_rate_conflict",
        "detail": detail,
        "resolved": False,
        "resolution": None,
    }
    if duration_ms:
        seconds = duration_ms / 1000.0
        fitting = {hz for _, hz in rates if abs(n - hz * seconds) <= 1.0}
        if len(fitting) == 1:
            fs = fitting.pop()
            problem["resolved"] = True
            problem["resolution"] = (
                f"{n} samples per lead over durationperchannel {duration_ms:g} ms is {n / seconds:g} Hz: read at"
                f" {fs:g} Hz"
            )
            warnings.append(f"{detail}; {problem['resolution']}")
            return fs, problem
    fs = rates[0][1]
    duration = f"durationperchannel {duration_ms:g} ms" if duration_ms else "no durationperchannel"
    warnings.append(f"{detail}; neither fits {n} samples per lead and {duration}: read at {rates[0][0]} {fs:g} Hz")
    return fs, problem


def _read_rhythm(
    root: Element, what: str, warnings: list[str]
) -> tuple[dict[str, np.ndarray], float, float, dict[str, Any]]:
    waveforms = child(root, "waveforms")
    parsed = child(waveforms, "parsedwaveforms") if waveforms is not None else None
    if parsed is None:
        parsed = descendant(root, "parsedwaveforms")
    if parsed is None or not (parsed.text or "").strip():
        raise CorruptFileError(f"{what}: no <parsedwaveforms> rhythm data")
    signal = descendant(root, "signalcharacteristics")
    rates = _declared_rates(parsed, signal)
    if not rates:
        raise CorruptFileError(f"{what}: no sampling rate (samplespersecond / samplingrate)")
    fs = rates[0][1]
    conflict = len({hz for _, hz in rates}) > 1
    resolution = _first_number(attr(parsed, "resolution"), text(signal, "resolution"), text(signal, "signalresolution"))
    if resolution is None:
        resolution = 5.0
        warnings.append("no resolution field; assumed 5 uV per count (the Philips default)")
    duration_ms = _first_number(attr(parsed, "durationperchannel"))
    # With two rates in the file, the data (not one of the rates) decide the sample count.
    n_declared = int(round(duration_ms * fs / 1000.0)) if duration_ms and not conflict else None
    labels = _lead_labels(parsed, signal, None, warnings)

    encoding = attr(parsed, "dataencoding") or "Base64"
    compressed = (attr(parsed, "compressflag") or "").lower() == "true"
    method = attr(parsed, "compression") or attr(parsed, "compressmethod") or ("XLI" if compressed else "Uncompressed")
    if method.lower() in ("", "none", "uncompressed") or (attr(parsed, "compressflag") or "").lower() == "false":
        method = "Uncompressed"
    values, raw = _decode_values(parsed.text or "", encoding, what)
    if method.upper() == "XLI":
        if raw is None:
            raise CorruptFileError(f"{what}: XLI compression needs Base64 data, found {encoding}")
        decoded = xli_decode(raw, len(labels), n_declared, what)
    elif method == "Uncompressed":
        if raw is not None:
            if len(raw) % 2:
                warnings.append("odd number of waveform bytes; the last byte ignored")
                raw = raw[:-1]
            values = np.frombuffer(raw, dtype="<i2").astype(np.int64)
        if values is None:
            raise CorruptFileError(f"{what}: no waveform samples")
        per_lead = n_declared if n_declared else len(values) // len(labels)
        needed = per_lead * len(labels)
        if per_lead <= 0 or len(values) < needed:
            raise CorruptFileError(
                f"{what}: waveform holds {len(values)} samples, {len(labels)} leads x {per_lead} declared"
            )
        if len(values) > needed:
            warnings.append(f"waveform holds {len(values) - needed} samples more than declared; ignored")
        decoded = [values[i * per_lead : (i + 1) * per_lead] for i in range(len(labels))]
    else:
        raise CorruptFileError(f"{what}: unsupported waveform compression {method!r}")

    leads = {label: np.asarray(samples, dtype=np.int64) for label, samples in zip(labels, decoded, strict=True)}
    lengths = {len(v) for v in leads.values()}
    integrity = []
    if conflict:
        fs, problem = _resolve_rate(rates, duration_ms, min(lengths), warnings)
        integrity.append(problem)
    if n_declared and lengths != {n_declared}:
        warnings.append(f"decoded {sorted(lengths)} samples per lead, durationperchannel gives {n_declared}")
    if method.upper() == "XLI":
        canonical = {canonical_lead_name(k): k for k in leads}
        if all(name in canonical for name in ("I", "II", "III", "aVR", "aVL", "aVF")):
            by_name = {name: leads[canonical[name]] for name in ("I", "II", "III", "aVR", "aVL", "aVF")}
            shortest = min(len(v) for v in by_name.values())
            by_name = {k: v[:shortest] for k, v in by_name.items()}
            reconstruct_limb_leads(by_name)
            for name, values_ in by_name.items():
                leads[canonical[name]] = values_
        else:
            warnings.append("XLI data without the six limb leads: residuals of III/aVR/aVL/aVF not reconstructed")
    channels = {label: samples.astype(np.float64) * (resolution / 1000.0) for label, samples in leads.items()}
    info = {"compression": method, "data_encoding": encoding, "resolution_uV": resolution, "integrity": integrity}
    return channels, fs, resolution, info


def _read_repbeats(root: Element, rhythm_fs: float, what: str, warnings: list[str]) -> tuple[dict, float | None]:
    repbeats = descendant(root, "repbeats")
    if repbeats is None:
        return {}, None
    beats = children(repbeats, "repbeat")
    if not beats:
        return {}, None
    fs = _first_number(attr(repbeats, "samplespersec")) or rhythm_fs
    resolution = _first_number(attr(repbeats, "resolution"))
    if resolution is None:
        resolution = 5.0
        warnings.append("repbeats: no resolution; assumed 5 uV per count")
    encoding = attr(repbeats, "dataencoding") or "Base64"
    channels: dict[str, np.ndarray] = {}
    n_fill = 0
    for beat in beats:
        name = attr(beat, "leadname") or ""
        holder = child(beat, "waveform")
        payload = (holder.text if holder is not None else beat.text) or ""
        if not payload.strip():
            continue
        values, raw = _decode_values(payload, encoding, f"{what} repbeat {name}")
        if raw is not None:
            values = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int64)
        if values is None or values.size == 0:
            continue
        fill = values == _REPBEAT_FILL
        n_fill = max(n_fill, int(fill.sum()))
        channels[name] = np.where(fill, 0, values).astype(np.float64) * (resolution / 1000.0)
    if n_fill:
        warnings.append(f"repbeats: up to {n_fill} samples per lead are fill ({_REPBEAT_FILL}) past the beat; set to 0")
    return channels, fs


def _years_between(birth: str, on: str) -> float | None:
    """Whole years between two ISO dates (``YYYY-MM-DD``), or None when either does not parse."""
    try:
        b, d = date_type.fromisoformat(birth[:10]), date_type.fromisoformat(on[:10])
    except ValueError:
        return None
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return float(years) if 0 <= years < 150 else None


def _meta(root: Element, doc_type: str | None, version: str | None, info: dict[str, Any]) -> dict[str, Any]:
    acquisition = descendant(root, "dataacquisition")
    machine = child(acquisition, "machine")
    signal = descendant(root, "signalcharacteristics")
    patient = descendant(root, "generalpatientdata")
    date, time_ = attr(acquisition, "date"), attr(acquisition, "time")
    acquired = f"{date}T{time_}" if date and time_ else date
    sex_text = (text(patient, "sex") or "").lower()
    sex = {"male": "M", "female": "F", "m": "M", "f": "F"}.get(sex_text)
    age = float_text(child(patient, "age"), "years")
    if age is None:
        months = float_text(child(patient, "age"), "months")
        age = months / 12.0 if months is not None else None
    birth_date = text(child(patient, "age"), "dateofbirth")
    if age is None and birth_date and date:
        age = _years_between(birth_date, date)
    bandwidth = descendant(root, "reportbandwidth")
    filters = {
        "highpass_hz": _first_number(text(signal, "hipass"), text(bandwidth, "highpassfiltersetting")),
        "lowpass_hz": _first_number(text(signal, "lowpass"), text(bandwidth, "lowpassfiltersetting")),
        "notch_hz": _first_number(text(signal, "acsetting"), text(bandwidth, "notchfiltersetting")),
    }
    heart_rate = None
    for name in ("meanventrate", "ventrate", "heartrate"):
        found = descendant(root, name)
        heart_rate = float_text(found)
        if heart_rate is not None:
            break
    name_node = child(patient, "name")
    name_parts = [text(name_node, part) for part in ("lastname", "firstname")]
    name_parts = [p for p in name_parts if p and p.strip("-, ")]
    phi = {
        "patient_id": text(patient, "patientid"),
        "name": ", ".join(name_parts) or None,
        "birth_date": birth_date,
    }
    return {
        "device": " ".join(p for p in (text(machine), attr(machine, "detaildescription")) if p) or None,
        "acquired": acquired,
        "age": age,
        "sex": sex,
        "heart_rate": heart_rate,
        "filters": {k: v for k, v in filters.items() if v is not None},
        "document_type": doc_type,
        "document_version": version,
        **info,
        "phi": {k: v for k, v in phi.items() if v},
    }


def read(path: Path, data: bytes) -> EcgRecord:
    """Read a Philips SierraECG/PhilipsECG XML file.

    Returns an :class:`EcgRecord` with ``signal`` float32 ``(12, n)`` in mV (``n`` = durationperchannel x rate,
    5500 samples for the usual 11-s 500-Hz strip, all kept) and the representative beats as ``median_beat`` when
    the file stores them.
    """
    what = f"{path} (Philips XML)"
    document = parse_xml(data, what)
    root = document.root
    warnings = list(document.warnings)
    info = child(root, "documentinfo")
    doc_type, version = text(info, "documenttype"), text(info, "documentversion")
    if doc_type not in (None, "SierraECG", "PhilipsECG"):
        warnings.append(f"document type {doc_type!r} is not SierraECG/PhilipsECG; read with the same layout")
    if version is not None and version not in KNOWN_VERSIONS:
        warnings.append(f"document version {version} is newer than those tested (1.03-1.04.02); same layout assumed")
    channels, fs, _, rhythm_info = _read_rhythm(root, what, warnings)
    median_channels, median_fs = _read_repbeats(root, fs, what, warnings)
    meta = _meta(root, doc_type, version, rhythm_info)
    meta["cart_measurements"] = philips_measurements(root)
    return finish_record(FORMAT, path, channels, fs, meta, warnings, median_channels, median_fs)
