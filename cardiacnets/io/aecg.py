"""HL7 annotated ECG (aECG, HL7 v3 ``AnnotatedECG``, namespace ``urn:hl7-org:v3``; the FDA's submission format).

Layout: ``component/series`` (code ``RHYTHM``) -> ``component/sequenceSet`` -> ``component/sequence``. One sequence
carries the time axis (code ``TIME_ABSOLUTE`` with a ``GLIST_TS`` value, or ``TIME_RELATIVE`` with ``GLIST_PQ``):
``increment`` value and unit give the sampling interval. Every other sequence is a lead (code ``MDC_ECG_LEAD_*``)
whose ``SLIST_PQ`` value holds ``origin`` and ``scale`` (value + unit, uV or mV ...) and ``digits``: physical value =
origin + scale x digit. Leads may come in any order. The series' ``derivation/derivedSeries`` (code
``REPRESENTATIVE_BEAT``) holds the representative beat in the same layout.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np

from cardiacnets.errors import CorruptFileError
from cardiacnets.io._numbers import parse_numbers
from cardiacnets.io._xml import attr, child, children, descendant, descendants, finish_record, parse_xml, text
from cardiacnets.io.cart_measurements import aecg_measurements
from cardiacnets.record import EcgRecord

logger = logging.getLogger(__name__)

FORMAT = "hl7_aecg"
#: voltage unit (UCUM, case-insensitive) -> millivolts per unit.
VOLTAGE_TO_MV: dict[str, float] = {"nv": 1e-6, "uv": 1e-3, "µv": 1e-3, "mv": 1.0, "v": 1e3}
#: time unit -> seconds per unit.
TIME_TO_S: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
_AGE_UNIT_PER_YEAR = {"a": 1.0, "mo": 12.0, "wk": 52.1775, "d": 365.25}


def _code(elem: Element | None) -> str:
    return attr(child(elem, "code"), "code") or ""


def _quantity(elem: Element | None, units: dict[str, float], default_unit: str, what: str) -> float:
    """A physical-quantity element (``value`` + ``unit`` attributes) in the unit ``units`` is relative to."""
    if elem is None:
        raise CorruptFileError(f"{what} is missing")
    raw_value = attr(elem, "value")
    try:
        value = float(raw_value) if raw_value is not None else float("nan")
    except ValueError as exc:
        raise CorruptFileError(f"{what}: value {raw_value!r} is not a number") from exc
    if not np.isfinite(value):
        raise CorruptFileError(f"{what}: value {raw_value!r} is not a finite number")
    unit = (attr(elem, "unit") or default_unit).strip()
    factor = units.get(unit, units.get(unit.lower()))
    if factor is None:
        raise CorruptFileError(f"{what}: unit {unit!r} is not supported (known: {', '.join(units)})")
    return value * factor


def _read_sequence_set(sequence_set: Element, what: str, warnings: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """A ``sequenceSet`` -> (lead name -> float64 samples in mV, sampling rate in Hz)."""
    fs: float | None = None
    channels: dict[str, np.ndarray] = {}
    for sequence in (child(c, "sequence") for c in children(sequence_set, "component")):
        if sequence is None:
            continue
        code = _code(sequence)
        value = child(sequence, "value")
        if code.startswith("TIME_"):
            increment = _quantity(child(value, "increment"), TIME_TO_S, "s", f"{what} {code} increment")
            if increment <= 0:
                raise CorruptFileError(f"{what}: {code} increment must be positive, got {increment} s")
            fs = 1.0 / increment
            continue
        digits = text(value, "digits")
        if digits is None:
            warnings.append(f"{what}: sequence {code or '?'} has no digits; ignored")
            continue
        try:
            counts = parse_numbers(digits)
        except ValueError as exc:
            raise CorruptFileError(f"{what}: sequence {code} digits are not numbers ({exc})") from exc
        scale = _quantity(child(value, "scale"), VOLTAGE_TO_MV, "uV", f"{what} {code} scale")
        origin_elem = child(value, "origin")
        origin = (
            _quantity(origin_elem, VOLTAGE_TO_MV, "uV", f"{what} {code} origin") if origin_elem is not None else 0.0
        )
        if code in channels:
            warnings.append(f"{what}: {code} stored twice; kept the first copy")
            continue
        channels[code or f"sequence{len(channels)}"] = origin + scale * counts
    if fs is None:
        raise CorruptFileError(f"{what}: no TIME_ABSOLUTE/TIME_RELATIVE sequence giving the sampling interval")
    if not channels:
        raise CorruptFileError(f"{what}: no lead sequences")
    return channels, fs


def _pick_sequence_set(series: Element, what: str, warnings: list[str]) -> Element:
    sets = [s for s in (child(c, "sequenceSet") for c in children(series, "component")) if s is not None]
    if not sets:
        raise CorruptFileError(f"{what}: series has no sequenceSet")
    if len(sets) > 1:
        warnings.append(f"{what}: {len(sets)} sequenceSets; the first is read")
    return sets[0]


def _hl7_time(value: str | None) -> str | None:
    """HL7 TS ``YYYYMMDDHHMMSS[.fff]`` -> ISO 8601 text."""
    if not value:
        return None
    match = re.match(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d+)?)?", value)
    if not match:
        return value
    year, month, day, hour, minute, second = match.groups()
    iso = "-".join(p for p in (year, month, day) if p)
    if hour:
        iso += f"T{hour}:{minute or '00'}:{second or '00'}"
    return iso


def _filters(series: Element) -> dict[str, float]:
    filters: dict[str, float] = {}
    keys = {"LOW_PASS": "lowpass_hz", "HIGH_PASS": "highpass_hz", "NOTCH": "notch_hz"}
    for outer in children(series, "controlVariable"):
        variable = child(outer, "controlVariable")
        code = _code(variable)
        key = next((v for k, v in keys.items() if code.endswith("FILTER_" + k)), None)
        if key is None:
            continue
        for component in children(variable, "component"):
            inner = child(component, "controlVariable")
            if _code(inner).endswith(("CUTOFF_FREQ", "NOTCH_FREQ")):
                try:
                    filters[key] = _quantity(child(inner, "value"), {"Hz": 1.0, "hz": 1.0}, "Hz", code)
                except CorruptFileError:
                    continue
    return filters


def _meta(root: Element, series: Element) -> dict[str, Any]:
    effective = child(root, "effectiveTime")
    acquired = _hl7_time(attr(child(effective, "center"), "value") or attr(child(effective, "low"), "value"))
    person = descendant(root, "subjectDemographicPerson")
    subject = descendant(root, "trialSubject")
    sex = {"M": "M", "F": "F"}.get((attr(child(person, "administrativeGenderCode"), "code") or "").upper())
    age = None
    for observation in descendants(root, "relatedObservation"):
        if attr(child(observation, "code"), "code") == "21612-7":  # LOINC "Reported Age"
            value = child(observation, "value")
            unit = (attr(value, "unit") or "a").lower()
            try:
                age = float(attr(value, "value") or "") / {"a": 1.0, "mo": 12.0, "wk": 52.1775, "d": 365.25}.get(
                    unit, 1
                )
            except ValueError:
                age = None
            break
    heart_rate = None
    for annotation in descendants(root, "annotation"):
        if _code(annotation) in ("MDC_ECG_HEART_RATE", "MDC_ECG_CARD_BEAT_RATE", "MDC_ECG_CARD_BEAT_RATE_VENT"):
            try:
                heart_rate = float(attr(child(annotation, "value"), "value") or "")
            except ValueError:
                continue
            break
    device = descendant(series, "manufacturedSeriesDevice")
    organization = descendant(series, "manufacturerOrganization")
    device_parts = [text(organization, "name"), text(device, "manufacturerModelName"), text(device, "softwareName")]
    phi = {
        "patient_id": attr(child(subject, "id"), "extension"),
        "name": text(person, "name"),
        "birth_date": _hl7_time(attr(child(person, "birthTime"), "value")),
    }
    return {
        "device": " ".join(p for p in device_parts if p) or None,
        "acquired": acquired,
        "age": age,
        "sex": sex,
        "heart_rate": heart_rate,
        "filters": _filters(series),
        "phi": {k: v for k, v in phi.items() if v},
    }


def read(path: Path, data: bytes) -> EcgRecord:
    """Read an HL7 aECG file.

    Returns an :class:`EcgRecord` with ``signal`` float32 ``(12, n)`` in mV from the first rhythm series (leads
    matched by MDC code, any order) and the representative beat of ``derivation/derivedSeries`` as ``median_beat``.
    """
    what = f"{path} (HL7 aECG)"
    document = parse_xml(data, what)
    root = document.root
    warnings = list(document.warnings)
    series_list = [s for s in (child(c, "series") for c in children(root, "component")) if s is not None]
    if not series_list:
        series_list = list(descendants(root, "series"))
    if not series_list:
        raise CorruptFileError(f"{what}: no <series> waveform block")
    rhythm = next((s for s in series_list if _code(s) == "RHYTHM"), series_list[0])
    if _code(rhythm) != "RHYTHM":
        warnings.append(f"no RHYTHM series; read the first series (code {_code(rhythm) or 'missing'})")
    channels, fs = _read_sequence_set(_pick_sequence_set(rhythm, what, warnings), f"{what} rhythm", warnings)
    median_channels, median_fs = None, None
    derived = [s for s in (child(d, "derivedSeries") for d in children(rhythm, "derivation")) if s is not None]
    if derived:
        beat = next((s for s in derived if _code(s) == "REPRESENTATIVE_BEAT"), derived[0])
        median_channels, median_fs = _read_sequence_set(
            _pick_sequence_set(beat, what, warnings), f"{what} representative beat", warnings
        )
    meta = _meta(root, rhythm)
    meta["cart_measurements"] = aecg_measurements(root)
    return finish_record(FORMAT, path, channels, fs, meta, warnings, median_channels, median_fs)
