"""DICOM waveform ECG reader (12-lead ECG, General ECG, General 32-bit ECG, Ambulatory ECG and Hemodynamic SOP classes).

DICOM PS3.3 C.10.9 (Waveform module): ``WaveformSequence`` holds multiplex groups, each with its own sampling rate,
channel count, sample count, ``WaveformBitsAllocated`` (8/16/32) and ``WaveformSampleInterpretation`` (SB/UB, SS/US,
SL/UL), and the samples interleaved channel by channel in ``WaveformData``. The group labelled RHYTHM (or, failing
that, the first group that is not a median beat) is the signal; a group labelled MEDIAN BEAT becomes ``median_beat``.

Channel labels come from ``ChannelSourceSequence`` (code meaning such as ``"Lead I (Einthoven)"``, or the code value:
SCPECG ``5.6.3-9-N`` / MDC ``2:N`` lead numbers), then ``ChannelLabel``. Physical value = raw x
``ChannelSensitivity`` x ``ChannelSensitivityCorrectionFactor`` + ``ChannelBaseline``, in the unit of
``ChannelSensitivityUnitsSequence`` (nV/uV/mV/V, UCUM), converted to mV. Channels in other units (mmHg, ...) are not
ECG and are dropped with a warning.

``WaveformPaddingValue`` is deliberately NOT blanked: writers use values (e.g. 0x0000) that genuine samples take too
(``Example.dcm`` holds 1269 real zeros); the count of samples equal to it is reported in a warning instead.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CardiacNetsError, CorruptFileError, UnsupportedFormatError
from cardiacnets.io._units import channel_factor
from cardiacnets.io.cart_measurements import dicom_measurements
from cardiacnets.io.scp import LEAD_CODES
from cardiacnets.record import EcgRecord, assemble_record, canonical_lead_name

logger = logging.getLogger(__name__)

ECG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG",
    "1.2.840.10008.5.1.4.1.1.9.1.3": "Ambulatory ECG",
    "1.2.840.10008.5.1.4.1.1.9.1.4": "General 32-bit ECG",
    "1.2.840.10008.5.1.4.1.1.9.2.1": "Hemodynamic",
}

_DTYPES = {
    (8, "SB"): "i1",
    (8, "UB"): "u1",
    (16, "SS"): "i2",
    (16, "US"): "u2",
    (32, "SL"): "i4",
    (32, "UL"): "u4",
}
_BIG_ENDIAN_TS = "1.2.840.10008.1.2.2"
_STUDY_REFERENCE = (
    ("sop_class_uid", "SOPClassUID"),
    ("sop_instance_uid", "SOPInstanceUID"),
    ("study_instance_uid", "StudyInstanceUID"),
    ("series_instance_uid", "SeriesInstanceUID"),
    ("study_date", "StudyDate"),
    ("study_time", "StudyTime"),
    ("study_id", "StudyID"),
)


def _lead_name(channel: Any) -> str:
    source = channel.get("ChannelSourceSequence")
    if source:
        item = source[0]
        meaning = str(item.get("CodeMeaning", "") or "").strip()
        value = str(item.get("CodeValue", "") or "").strip()
        scheme = str(item.get("CodingSchemeDesignator", "") or "").upper()
        match = (
            re.fullmatch(r"5\.6\.3-9-(\d+)", value) if scheme.startswith("SCP") or value.startswith("5.6.3") else None
        )
        if match is None and scheme == "MDC":
            match = re.fullmatch(r"2:(\d+)", value)
        from_code = LEAD_CODES.get(int(match.group(1))) if match else None
        if from_code and from_code != "unspecified":
            return from_code
        if meaning:
            return meaning
        if value:
            return value
    label = str(channel.get("ChannelLabel", "") or "").strip()
    return label or "unlabelled channel"


def _group_samples(group: Any, big_endian: bool, what: str) -> np.ndarray:
    """Raw samples of one multiplex group, ``(channels, samples)`` int64/float64 counts."""
    n_channels = int(group.NumberOfWaveformChannels)
    n_samples = int(group.NumberOfWaveformSamples)
    bits = int(group.WaveformBitsAllocated)
    interpretation = str(group.WaveformSampleInterpretation).strip().upper()
    if interpretation in {"MB", "AB"}:
        raise UnsupportedFormatError(f"{what}: mu-law/A-law companded samples ({interpretation}) are not supported")
    code = _DTYPES.get((bits, interpretation))
    if code is None:
        raise CorruptFileError(f"{what}: unsupported sample encoding {bits} bits / {interpretation!r}")
    if not 0 < n_channels <= 1024 or n_samples <= 0:
        raise CorruptFileError(f"{what}: implausible {n_channels} channels x {n_samples} samples")
    raw = group.get("WaveformData")
    if raw is None:
        raise CorruptFileError(f"{what}: WaveformData missing")
    raw = bytes(raw)
    needed = n_channels * n_samples * bits // 8
    if len(raw) < needed:
        raise CorruptFileError(
            f"{what}: WaveformData holds {len(raw)} bytes, {n_channels} channels x {n_samples} samples need {needed}"
        )
    dtype = np.dtype(code).newbyteorder(">" if big_endian else "<")
    arr = np.frombuffer(raw[:needed], dtype=dtype).reshape(n_samples, n_channels)
    return arr.T.astype(np.float64)


def _scaled_channels(group: Any, big_endian: bool, what: str, warnings: list[str]) -> dict[str, np.ndarray]:
    raw = _group_samples(group, big_endian, what)
    definitions = group.get("ChannelDefinitionSequence") or []
    if len(definitions) != raw.shape[0]:
        raise CorruptFileError(
            f"{what}: {len(definitions)} channel definitions for {raw.shape[0]} channels (NumberOfWaveformChannels)"
        )
    padding = group.get("WaveformPaddingValue")
    if padding is not None and len(bytes(padding)) * 8 == int(group.WaveformBitsAllocated):
        code = _DTYPES[(int(group.WaveformBitsAllocated), str(group.WaveformSampleInterpretation).strip().upper())]
        pad_value = np.frombuffer(bytes(padding), dtype=np.dtype(code).newbyteorder(">" if big_endian else "<"))[0]
        n_equal = int((raw == pad_value).sum())
        if n_equal:
            warnings.append(
                f"{what}: {n_equal} samples equal WaveformPaddingValue {int(pad_value)}; kept as data (padding values"
                " collide with genuine samples in real files)"
            )
    channels: dict[str, np.ndarray] = {}
    for k, channel in enumerate(definitions):
        name = _lead_name(channel)
        sensitivity = float(channel.get("ChannelSensitivity", 1.0) or 1.0)
        correction = float(channel.get("ChannelSensitivityCorrectionFactor", 1.0) or 1.0)
        baseline = float(channel.get("ChannelBaseline", 0.0) or 0.0)
        units_seq = channel.get("ChannelSensitivityUnitsSequence")
        unit = str(units_seq[0].get("CodeValue", "") or "").strip() if units_seq else ""
        factor = channel_factor(unit, f"{what}: channel {name!r}", "has no sensitivity unit", warnings)
        if factor is None:
            continue
        if not (np.isfinite(sensitivity) and np.isfinite(correction) and np.isfinite(baseline)) or sensitivity == 0:
            raise CorruptFileError(f"{what}: channel {name!r} has an unusable sensitivity {sensitivity!r}")
        if name in channels:
            name = f"{name} #{k + 1}"
        channels[name] = (raw[k] * sensitivity * correction + baseline) * factor
    return channels


def _group_label(group: Any) -> str:
    return str(group.get("MultiplexGroupLabel", "") or "").strip().upper()


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _meta(ds: Any, sop_name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"phi": {}, "filters": {}, "sop_class": sop_name}
    # The instance's place in its study (not patient identifiers): reports about it (DICOM SR) join the same study.
    meta["dicom"] = {key: _text(ds.get(tag)) for key, tag in _STUDY_REFERENCE}
    manufacturer = _text(ds.get("Manufacturer"))
    model = _text(ds.get("ManufacturerModelName"))
    meta["manufacturer"] = manufacturer
    meta["model"] = model
    meta["device"] = " ".join(x for x in (manufacturer, model) if x) or None
    stamp = _text(ds.get("AcquisitionDateTime"))
    if stamp is None:
        date, time = (
            _text(ds.get("AcquisitionDate") or ds.get("ContentDate")),
            _text(ds.get("AcquisitionTime") or ds.get("ContentTime")),
        )
        stamp = (date or "") + (time or "") if date else None
    if stamp and re.match(r"^\d{8}", stamp):
        iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
        if re.match(r"^\d{6}", stamp[8:]):
            iso += f"T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"
        meta["acquired"] = iso
    age = _text(ds.get("PatientAge"))
    if age and re.fullmatch(r"\d{1,3}[DWMY]", age):
        per_year = {"Y": 1, "M": 12, "W": 52.18, "D": 365.25}[age[-1]]
        meta["age"] = int(age[:-1]) if age[-1] == "Y" else round(int(age[:-1]) / per_year, 2)
    sex = _text(ds.get("PatientSex"))
    meta["sex"] = sex.upper() if sex and sex.upper() in {"M", "F"} else None
    for key, tag in (("patient_id", "PatientID"), ("name", "PatientName"), ("birth_date", "PatientBirthDate")):
        value = _text(ds.get(tag))
        if value and key == "birth_date" and re.fullmatch(r"\d{8}", value):
            value = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
        if value:
            meta["phi"][key] = value
    return meta


def _filters(group: Any) -> dict[str, Any]:
    definitions = group.get("ChannelDefinitionSequence") or []
    if not definitions:
        return {}
    first = definitions[0]
    out: dict[str, Any] = {}
    for key, tag in (("highpass_hz", "FilterLowFrequency"), ("lowpass_hz", "FilterHighFrequency")):
        value = first.get(tag)
        if value not in (None, ""):
            out[key] = float(value)
    notch = first.get("NotchFilterFrequency")
    if notch not in (None, "") and float(notch) > 0:
        out["notch_hz"] = [float(notch)]
    return out


def read(path: Path, data: bytes) -> EcgRecord:
    """Read a DICOM waveform ECG into an :class:`EcgRecord` (``signal`` ``(12, n)`` in mV)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    where = str(path)
    # pydicom warns about irregular values by quoting them (names, IDs): keep those out of the logs, count them.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError as exc:
            raise CorruptFileError(f"{where}: not a valid DICOM file ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on truncated/garbled input
            raise CorruptFileError(f"{where}: malformed DICOM ({type(exc).__name__})") from exc
        record = _read_dataset_typed(ds, path)
    if caught:
        record.warnings.append(f"DICOM: {len(caught)} irregular element values tolerated while decoding")
    return record


def _read_dataset_typed(ds: Any, path: Path) -> EcgRecord:
    where = str(path)
    try:
        return _read_dataset(ds, path)
    except CardiacNetsError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom decodes elements lazily: any error there means a garbled file
        raise CorruptFileError(f"{where}: malformed DICOM waveform ({type(exc).__name__}: {exc})") from exc


def _read_dataset(ds: Any, path: Path) -> EcgRecord:
    where = str(path)
    sop = str(ds.get("SOPClassUID", "") or "")
    groups = ds.get("WaveformSequence")
    if not groups:
        raise UnsupportedFormatError(f"{where}: DICOM object (SOP class {sop or 'unknown'}) holds no ECG waveform")
    sop_name = ECG_SOP_CLASSES.get(sop)
    warnings: list[str] = []
    if sop_name is None:
        warnings.append(f"DICOM SOP class {sop or 'missing'} is not an ECG waveform class; read its waveform anyway")
        sop_name = sop or "unknown"
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    big_endian = ts == _BIG_ENDIAN_TS

    labels = [_group_label(g) for g in groups]
    rhythm_idx = next((i for i, lab in enumerate(labels) if "RHYTHM" in lab), None)
    median_idx = next((i for i, lab in enumerate(labels) if "MEDIAN" in lab), None)
    candidates = [rhythm_idx] if rhythm_idx is not None else [i for i in range(len(groups)) if i != median_idx]
    channels: dict[str, np.ndarray] | None = None
    fs = float("nan")
    chosen = None
    for idx in candidates:
        what = f"{where}: DICOM WaveformSequence[{idx}] {labels[idx] or '(unlabelled)'}"
        group_channels = _scaled_channels(groups[idx], big_endian, what, warnings)
        if any(canonical_lead_name(name) for name in group_channels):
            channels, fs, chosen = group_channels, float(groups[idx].SamplingFrequency), idx
            break
    if channels is None:
        raise UnsupportedFormatError(f"{where}: no DICOM multiplex group holds standard ECG leads (groups: {labels})")

    median_channels = None
    median_fs = None
    if median_idx is not None and median_idx != chosen:
        what = f"{where}: DICOM WaveformSequence[{median_idx}] MEDIAN BEAT"
        try:
            median_channels = _scaled_channels(groups[median_idx], big_endian, what, warnings)
            median_fs = float(groups[median_idx].SamplingFrequency)
        except CorruptFileError as exc:
            warnings.append(f"median beat not read: {exc}")
            median_channels = None

    meta = _meta(ds, sop_name)
    meta["filters"] = _filters(groups[chosen])
    meta["cart_measurements"] = dicom_measurements(ds)
    meta["warnings"] = warnings
    return assemble_record(
        channels,
        fs,
        source_format="DICOM",
        path=where,
        meta=meta,
        median_channels=median_channels,
        median_fs=median_fs,
    )
