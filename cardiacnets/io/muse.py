"""GE MUSE RestingECG XML (root ``RestingECG``; MUSE 7-9 export, ``restecg.dtd``).

Layout: ``<Waveform>`` blocks, one per ``WaveformType`` (``Rhythm``: the 10-s strip; ``Median``: the median beat),
each with ``SampleBase`` x 10^``SampleExponent`` Hz, filter settings and one ``<LeadData>`` per stored lead:
``LeadID``, ``WaveFormData`` (base64 of little-endian int16, ``LeadSampleSize`` = 2 bytes), ``LeadSampleCountTotal``,
``LeadByteCountTotal``, ``LeadAmplitudeUnitsPerBit`` with ``LeadAmplitudeUnits`` (``MICROVOLTS`` in every export
seen; 4.88 uV per bit) and ``LeadDataCRC32`` over the decoded bytes. MUSE stores 8 leads (I, II, V1-V6);
:func:`~cardiacnets.record.assemble_record` derives III, aVR, aVL, aVF.

Filter fields are in the units MUSE writes: ``HighPassFilter`` in hundredths of Hz (``16`` = 0.16 Hz),
``LowPassFilter`` and ``ACFilter`` in Hz (``NONE`` when off).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import zlib
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np

from cardiacnets.errors import CorruptFileError
from cardiacnets.io._xml import child, children, finish_record, float_text, int_text, parse_xml, text
from cardiacnets.io.cart_measurements import muse_measurements
from cardiacnets.record import EcgRecord

logger = logging.getLogger(__name__)

FORMAT = "ge_muse_xml"
#: ``LeadAmplitudeUnits`` -> millivolts per unit.
UNIT_TO_MV: dict[str, float] = {
    "NANOVOLTS": 1e-6,
    "MICROVOLTS": 1e-3,
    "UV": 1e-3,
    "MILLIVOLTS": 1.0,
    "MV": 1.0,
    "VOLTS": 1e3,
    "V": 1e3,
}
_DEFAULT_UV_PER_BIT = 4.88
_STANDARD_RATES = (100.0, 125.0, 128.0, 200.0, 250.0, 256.0, 500.0, 512.0, 1000.0, 2000.0)


def _sample_rate(waveform: Element, what: str) -> float:
    base = float_text(waveform, "SampleBase")
    if base is None or base <= 0:
        raise CorruptFileError(f"{what}: waveform has no valid SampleBase")
    exponent = int_text(waveform, "SampleExponent") or 0
    if not -6 <= exponent <= 6:
        raise CorruptFileError(f"{what}: implausible SampleExponent {exponent}")
    return base * 10.0**exponent


def _decode_lead(
    lead: Element, label: str, what: str, warnings: list[str], verify_crc: bool, crc_failed: list[str]
) -> np.ndarray:
    """One ``<LeadData>`` -> float64 samples in mV. A ``LeadDataCRC32`` mismatch adds ``label`` to ``crc_failed``."""
    payload = text(lead, "WaveFormData") or ""
    if not payload:
        raise CorruptFileError(f"{what}: lead {label} has no WaveFormData")
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptFileError(f"{what}: lead {label} WaveFormData is not valid base64 ({exc})") from exc
    sample_size = int_text(lead, "LeadSampleSize") or 2
    if sample_size != 2:
        raise CorruptFileError(f"{what}: lead {label} LeadSampleSize {sample_size} is not supported (2 expected)")
    crc = text(lead, "LeadDataCRC32")
    if verify_crc and crc is not None and crc.isdigit() and zlib.crc32(raw) != int(crc):
        warnings.append(f"{label}: LeadDataCRC32 mismatch (file says {crc}, data gives {zlib.crc32(raw)})")
        crc_failed.append(label)
    declared_bytes = int_text(lead, "LeadByteCountTotal")
    if declared_bytes is not None and declared_bytes != len(raw):
        warnings.append(f"{label}: LeadByteCountTotal {declared_bytes} but {len(raw)} bytes decoded")
    if len(raw) % 2:
        warnings.append(f"{label}: odd byte count {len(raw)}; last byte ignored")
        raw = raw[:-1]
    counts = np.frombuffer(raw, dtype="<i2")
    declared = int_text(lead, "LeadSampleCountTotal")
    if declared is not None and declared != counts.size:
        if counts.size > declared:
            warnings.append(f"{label}: {counts.size} samples decoded, {declared} declared; extra samples dropped")
            counts = counts[:declared]
        else:
            warnings.append(f"{label}: only {counts.size} of {declared} declared samples present (truncated)")
    if counts.size == 0:
        raise CorruptFileError(f"{what}: lead {label} holds no samples")
    per_bit = float_text(lead, "LeadAmplitudeUnitsPerBit")
    if per_bit is None or per_bit <= 0:
        per_bit = _DEFAULT_UV_PER_BIT
        warnings.append(f"{label}: no LeadAmplitudeUnitsPerBit; assumed {_DEFAULT_UV_PER_BIT} uV")
        units = "MICROVOLTS"
    else:
        units = (text(lead, "LeadAmplitudeUnits") or "MICROVOLTS").upper()
    if units not in UNIT_TO_MV:
        warnings.append(f"{label}: unknown LeadAmplitudeUnits {units!r}; assumed microvolts")
        units = "MICROVOLTS"
    return counts.astype(np.float64) * (per_bit * UNIT_TO_MV[units])


def _read_waveform(
    waveform: Element, what: str, warnings: list[str], verify_crc: bool, integrity: list[dict[str, Any]]
) -> tuple[dict[str, np.ndarray], float]:
    fs = _sample_rate(waveform, what)
    kind = text(waveform, "WaveformType") or "?"
    channels: dict[str, np.ndarray] = {}
    crc_failed: list[str] = []
    for lead in children(waveform, "LeadData"):
        label = text(lead, "LeadID")
        if label is None:
            warnings.append(f"{kind}: LeadData without LeadID ignored")
            continue
        if label in channels:
            warnings.append(f"{kind}: lead {label} stored twice; kept the first copy")
            continue
        channels[label] = _decode_lead(lead, label, f"{what} {kind}", warnings, verify_crc, crc_failed)
    if not channels:
        raise CorruptFileError(f"{what}: {kind} waveform holds no LeadData")
    if crc_failed:
        integrity.append(_crc_problem(kind, crc_failed))
    declared_leads = int_text(waveform, "NumberofLeads")
    if declared_leads is not None and declared_leads != len(channels):
        warnings.append(f"{kind}: NumberofLeads says {declared_leads}, {len(channels)} leads found")
    return channels, fs


def _crc_problem(kind: str, labels: list[str]) -> dict[str, Any]:
    """The ``meta["integrity"]`` entry for leads of one waveform whose data fail their ``LeadDataCRC32``. Only the
    stored median beat failing is resolved: screening reads the rhythm strip."""
    detail = f"LeadDataCRC32 mismatch in {kind} lead(s) {', '.join(labels)}: the data are not what the cart wrote"
    if kind.lower() == "median":
        resolution = "only the stored median beat is damaged; the rhythm strip the screening reads passed its CRCs"
        return {"code": "crc_mismatch", "detail": detail, "resolved": True, "resolution": resolution}
    return {"code": "crc_mismatch", "detail": detail, "resolved": False, "resolution": None}


def _check_rate(fs: float, n: int, root: Element, warnings: list[str], integrity: list[dict[str, Any]]) -> None:
    """Flag a declared rate that contradicts the sample count (older MAC carts: SampleBase 240, 2500 samples).

    Unresolved in ``integrity``: MUSE states no duration, so nothing in the file says whether the rate or the
    sample count (the usual 10-s strip at another rate) is wrong; the declared rate is kept."""
    seconds = n / fs
    if abs(seconds - round(seconds)) < 0.02 * seconds:
        return
    for candidate in _STANDARD_RATES:
        whole = n / candidate
        if whole >= 1 and abs(whole - round(whole)) < 1e-9 and round(whole) in (10, 5, 2, 1):
            note = (
                f"declared rate {fs:g} Hz contradicts {n} samples ({seconds:.2f} s); "
                f"{candidate:g} Hz would give {round(whole)} s"
            )
            measured = [
                float_text(child(root, section), "ECGSampleBase")
                for section in ("RestingECGMeasurements", "OriginalRestingECGMeasurements")
            ]
            measured = [m for m in measured if m is not None and m != fs]
            if measured:
                note += f" (the measurements section gives ECGSampleBase {measured[0]:g})"
            warnings.append(note + "; the declared rate is kept")
            integrity.append(
                {
                    "code": "sampling_rate_conflict",
                    "detail": f"MUSE SampleBase: {note}",
                    "resolved": False,
                    "resolution": None,
                }
            )
            return


def _muse_date(value: str | None) -> str | None:
    """MUSE dates are ``MM-DD-YYYY``; return ISO ``YYYY-MM-DD`` (or the text unchanged when it is another form)."""
    if not value:
        return None
    match = re.fullmatch(r"(\d{1,2})[-/](\d{1,2})[-/](\d{4})", value)
    if not match:
        return value
    month, day, year = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def _age_years(demographics: Element | None) -> float | None:
    age = float_text(demographics, "PatientAge")
    if age is None:
        return None
    units = (text(demographics, "AgeUnits") or "YEARS").upper()
    divisor = {"YEARS": 1.0, "MONTHS": 12.0, "WEEKS": 52.1775, "DAYS": 365.25, "HOURS": 8766.0}.get(units, 1.0)
    return age / divisor


def _meta(root: Element, rhythm: Element) -> dict[str, Any]:
    demographics = child(root, "PatientDemographics")
    test = child(root, "TestDemographics")
    measurements = child(root, "RestingECGMeasurements")
    date = _muse_date(text(test, "AcquisitionDate"))
    time_ = text(test, "AcquisitionTime")
    sex = {"MALE": "M", "FEMALE": "F"}.get((text(demographics, "Gender") or "").upper())
    high_pass = float_text(rhythm, "HighPassFilter")
    low_pass = float_text(rhythm, "LowPassFilter")
    notch = float_text(rhythm, "ACFilter")
    filters = {
        "highpass_hz": high_pass / 100.0 if high_pass is not None else None,
        "lowpass_hz": low_pass,
        "notch_hz": notch,
    }
    names = [text(demographics, "PatientLastName"), text(demographics, "PatientFirstName")]
    phi = {
        "patient_id": text(demographics, "PatientID"),
        "name": ", ".join(n for n in names if n) or None,
        "birth_date": _muse_date(text(demographics, "DateofBirth")),
    }
    numeric_measurements = {}
    for item in measurements if measurements is not None else []:
        value = float_text(item)
        if value is not None and isinstance(item.tag, str):
            numeric_measurements[item.tag] = value
    device_parts = [text(test, "AcquisitionDevice"), text(test, "AcquisitionSoftwareVersion")]
    return {
        "device": " ".join(p for p in device_parts if p) or None,
        "acquired": f"{date}T{time_}" if date and time_ else date,
        "age": _age_years(demographics),
        "sex": sex,
        "heart_rate": float_text(measurements, "VentricularRate"),
        "filters": {k: v for k, v in filters.items() if v is not None},
        "muse_version": text(root, "MuseInfo", "MuseVersion"),
        "measurements": numeric_measurements,
        "phi": {k: v for k, v in phi.items() if v},
    }


def read(path: Path, data: bytes, *, verify_crc: bool = True) -> EcgRecord:
    """Read a GE MUSE RestingECG XML file.

    Returns an :class:`EcgRecord` with ``signal`` float32 ``(12, n)`` in mV at the declared ``SampleBase`` rate
    (8 stored leads, 4 derived) and the ``Median`` waveform as ``median_beat`` when present. ``verify_crc`` checks
    each lead's ``LeadDataCRC32``: a mismatch is a warning and a ``meta["integrity"]`` problem (unresolved for the
    rhythm strip, so QC fails the record), as is a ``SampleBase`` that contradicts the sample count.
    """
    what = f"{path} (GE MUSE XML)"
    document = parse_xml(data, what)
    root = document.root
    warnings = list(document.warnings)
    waveforms = {}
    for waveform in children(root, "Waveform"):
        kind = (text(waveform, "WaveformType") or "").lower()
        if kind and kind not in waveforms:
            waveforms[kind] = waveform
    rhythm = waveforms.get("rhythm")
    if rhythm is None:
        raise CorruptFileError(f"{what}: no Rhythm <Waveform> (found {sorted(waveforms) or 'none'})")
    integrity: list[dict[str, Any]] = []
    channels, fs = _read_waveform(rhythm, what, warnings, verify_crc, integrity)
    n = min(len(v) for v in channels.values())
    _check_rate(fs, n, root, warnings, integrity)
    median_channels, median_fs = None, None
    if "median" in waveforms:
        median_channels, median_fs = _read_waveform(waveforms["median"], what, warnings, verify_crc, integrity)
    meta = _meta(root, rhythm)
    meta["integrity"] = integrity
    meta["cart_measurements"] = muse_measurements(root)
    return finish_record(FORMAT, path, channels, fs, meta, warnings, median_channels, median_fs)
