"""GE CardioSoft CardiologyXML (root ``CardiologyXML``; the UK Biobank resting ECG, field 20205).

Layout: ``StripData`` is the 10-s 12-lead rhythm: ``SampleRate`` (Hz), ``ChannelSampleCountTotal``, ``Resolution``
(``units="uVperLsb"``) and one ``<WaveformData lead="I">`` per lead holding comma-separated decimal integers.
``RestingECGMeasurements/MedianSamples`` holds the median beat in the same layout. ``FullDisclosure`` holds the whole
acquisition (tens of seconds): ``LeadOrder`` and ``FullDisclosureData`` text in which each block of ``SampleRate``
values (one text line) is one second of one lead, cycling through ``LeadOrder``; it is read only when ``StripData``
is absent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np

from cardiacnets.errors import CorruptFileError
from cardiacnets.io._numbers import parse_numbers
from cardiacnets.io._xml import attr, child, children, descendant, finish_record, float_text, int_text, parse_xml, text
from cardiacnets.io.cart_measurements import cardiosoft_measurements
from cardiacnets.record import EcgRecord

logger = logging.getLogger(__name__)

FORMAT = "ge_cardiosoft_xml"
_PREFIX_TO_MV = {"nv": 1e-6, "uv": 1e-3, "µv": 1e-3, "mv": 1.0}


def _resolution_mv(block: Element, what: str, warnings: list[str]) -> float:
    """``Resolution`` in mV per count (``units`` like ``uVperLsb``; uV assumed when no unit is given)."""
    node = child(block, "Resolution")
    value = float_text(node)
    if value is None or value <= 0:
        warnings.append(f"{what}: no valid Resolution; assumed 5 uV per count (the CardioSoft default)")
        return 5e-3
    units = (attr(node, "units") or "uVperLsb").lower()
    prefix = next((p for p in _PREFIX_TO_MV if units.startswith(p)), None)
    if prefix is None:
        warnings.append(f"{what}: unknown Resolution units {units!r}; assumed uV per count")
        prefix = "uv"
    return value * _PREFIX_TO_MV[prefix]


def _parse_integers(payload: str, what: str) -> np.ndarray:
    try:
        return parse_numbers(payload, commas=True)
    except ValueError as exc:
        raise CorruptFileError(f"{what}: waveform text holds a non-numeric value ({exc})") from exc


def _sample_rate(block: Element, what: str) -> float:
    fs = float_text(block, "SampleRate")
    if fs is None or fs <= 0:
        raise CorruptFileError(f"{what}: no valid SampleRate")
    units = (attr(child(block, "SampleRate"), "units") or "Hz").lower()
    if units not in ("hz", "1/s"):
        raise CorruptFileError(f"{what}: SampleRate units {units!r} not supported (Hz expected)")
    return fs


def _read_lead_block(block: Element, what: str, warnings: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """``StripData`` or ``MedianSamples`` -> (lead -> float64 mV, Hz)."""
    fs = _sample_rate(block, what)
    scale = _resolution_mv(block, what, warnings)
    declared = int_text(block, "ChannelSampleCountTotal")
    channels: dict[str, np.ndarray] = {}
    for waveform in children(block, "WaveformData"):
        lead = attr(waveform, "lead")
        if not lead:
            warnings.append(f"{what}: WaveformData without a lead attribute ignored")
            continue
        counts = _parse_integers(waveform.text or "", f"{what} lead {lead}")
        if declared is not None and counts.size != declared:
            warnings.append(f"{what}: lead {lead} holds {counts.size} samples, {declared} declared")
        if lead in channels:
            warnings.append(f"{what}: lead {lead} stored twice; kept the first copy")
            continue
        channels[lead] = counts * scale
    if not channels or all(v.size == 0 for v in channels.values()):
        raise CorruptFileError(f"{what}: no WaveformData samples")
    return channels, fs


def _read_full_disclosure(block: Element, what: str, warnings: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """``FullDisclosure`` -> (lead -> float64 mV, Hz): 1-s blocks of one lead each, cycling through ``LeadOrder``."""
    fs = _sample_rate(block, what)
    scale = _resolution_mv(block, what, warnings)
    order = [name.strip() for name in (text(block, "LeadOrder") or "").split(",") if name.strip()]
    if not order:
        raise CorruptFileError(f"{what}: FullDisclosure has no LeadOrder")
    data = child(block, "FullDisclosureData")
    # Mixed content: the samples are the element's own text, around child elements such as <SampleCountTotal>.
    payload = "" if data is None else (data.text or "") + ",".join(c.tail or "" for c in data)
    values = _parse_integers(payload, what)
    block_len = int(round(fs))
    if block_len != fs:
        raise CorruptFileError(f"{what}: FullDisclosure SampleRate {fs:g} Hz is not a whole number of samples/s")
    cycle = block_len * len(order)
    n_cycles = values.size // cycle
    if n_cycles == 0:
        raise CorruptFileError(f"{what}: FullDisclosureData holds {values.size} values, under one second of all leads")
    if values.size % cycle:
        warnings.append(f"{what}: {values.size % cycle} trailing FullDisclosure values (an incomplete second) ignored")
    declared = int_text(data, "SampleCountTotal")
    if declared is not None and declared != values.size:
        warnings.append(f"{what}: SampleCountTotal {declared} but {values.size} values present")
    seconds = values[: n_cycles * cycle].reshape(n_cycles, len(order), block_len)  # (s, lead, sample)
    channels = {lead: seconds[:, i, :].reshape(-1) * scale for i, lead in enumerate(order)}
    return channels, fs


def _observation_time(root: Element) -> str | None:
    stamp = child(root, "ObservationDateTime")
    parts = {k: int_text(stamp, k) for k in ("Year", "Month", "Day", "Hour", "Minute", "Second")}
    if parts["Year"] is None or parts["Month"] is None or parts["Day"] is None:
        return None
    iso = f"{parts['Year']:04d}-{parts['Month']:02d}-{parts['Day']:02d}"
    if parts["Hour"] is not None:
        iso += f"T{parts['Hour']:02d}:{parts['Minute'] or 0:02d}:{parts['Second'] or 0:02d}"
    return iso


def _meta(root: Element) -> dict[str, Any]:
    patient = child(root, "PatientInfo")
    device_info = descendant(root, "DeviceInfo")
    age_node = child(patient, "Age")
    age = float_text(age_node)
    if age is not None:
        units = (attr(age_node, "units") or "YEARS").upper()
        age = age / {"YEARS": 1.0, "MONTHS": 12.0, "WEEKS": 52.1775, "DAYS": 365.25}.get(units, 1.0)
    sex = {"MALE": "M", "FEMALE": "F", "M": "M", "F": "F"}.get((text(patient, "Gender") or "").upper())
    settings = child(root, "FilterSetting")
    filters: dict[str, Any] = {
        "lowpass_hz": float_text(settings, "LowPass"),
        "highpass_hz": float_text(settings, "HighPass"),
    }
    for mains in (50, 60):
        if (text(settings, f"Filter{mains}Hz") or "").lower() == "yes":
            filters["notch_hz"] = float(mains)
    birth = child(patient, "BirthDateTime")
    year, month, day = (int_text(birth, k) for k in ("Year", "Month", "Day"))
    names = [text(patient, "Name", "FamilyName"), text(patient, "Name", "GivenName")]
    phi = {
        "patient_id": text(patient, "PID"),
        "name": ", ".join(n for n in names if n) or None,
        "birth_date": f"{year:04d}-{month or 1:02d}-{day or 1:02d}" if year else None,
    }
    return {
        "device": text(device_info, "Desc"),
        "software": " ".join(p for p in (text(device_info, "SoftwareVer"), text(device_info, "AnalysisVer")) if p)
        or None,
        "acquired": _observation_time(root),
        "age": age,
        "sex": sex,
        "heart_rate": float_text(child(root, "RestingECGMeasurements"), "VentricularRate"),
        "filters": {k: v for k, v in filters.items() if v is not None},
        "phi": {k: v for k, v in phi.items() if v},
    }


def read(path: Path, data: bytes) -> EcgRecord:
    """Read a GE CardioSoft CardiologyXML file.

    Returns an :class:`EcgRecord` with ``signal`` float32 ``(12, n)`` in mV from ``StripData`` (10 s) or, when it is
    absent, the whole ``FullDisclosure`` recording (flagged in the warnings), and ``MedianSamples`` as
    ``median_beat``.
    """
    what = f"{path} (GE CardioSoft XML)"
    document = parse_xml(data, what)
    root = document.root
    warnings = list(document.warnings)
    strip = child(root, "StripData")
    full = child(root, "FullDisclosure")
    if strip is not None and children(strip, "WaveformData"):
        channels, fs = _read_lead_block(strip, f"{what} StripData", warnings)
        source = "StripData"
    elif full is not None:
        channels, fs = _read_full_disclosure(full, f"{what} FullDisclosure", warnings)
        source = "FullDisclosure"
        seconds = next(iter(channels.values())).size / fs
        warnings.append(f"no StripData; rhythm read from FullDisclosure ({seconds:g} s, not the 10-s strip)")
    else:
        raise CorruptFileError(f"{what}: no StripData or FullDisclosure waveform")
    median_channels, median_fs = None, None
    median = child(child(root, "RestingECGMeasurements"), "MedianSamples")
    if median is not None and children(median, "WaveformData"):
        median_channels, median_fs = _read_lead_block(median, f"{what} MedianSamples", warnings)
    meta = _meta(root)
    meta["rhythm_source"] = source
    meta["cart_measurements"] = cardiosoft_measurements(root)
    return finish_record(FORMAT, path, channels, fs, meta, warnings, median_channels, median_fs)
