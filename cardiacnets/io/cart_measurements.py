"""The cart's own global measurements and rhythm statement, as the files carry them, in the toolkit's keys.

Every function returns a dict with exactly :data:`~cardiacnets.measure.schema.MEASUREMENT_KEYS` (None where the file
gives nothing; nothing is derived from the waveform), or None when the file holds no cart measurement at all. The
readers store it as ``meta["cart_measurements"]``. Where the cart came from:

- GE MUSE ``RestingECGMeasurements``: ``VentricularRate``, ``PRInterval``, ``QRSDuration``, ``QTInterval``,
  ``QTCorrected`` (Bazett, 12SL's default), ``QTcFrederica``, ``PAxis``/``RAxis``/``TAxis``; rhythm from the
  ``Diagnosis`` statements, else ``OriginalDiagnosis``.
- GE CardioSoft ``RestingECGMeasurements``: ``VentricularRate``, ``PQInterval``, ``QRSDuration``, ``QTInterval``,
  ``QTCInterval`` (Bazett), axes; rhythm from ``Interpretation/Diagnosis/DiagnosisText``.
- Philips SierraECG 1.04 ``globalmeasurements`` (``heartrate``, ``print``, ``qrsdur``, ``qtint``, ``qtcb``, ``qtcf``,
  ``*frontaxis``) or 1.03 (``meanventrate``, ``meanprint``, ``meanqrsdur``, ``meanqtint``, ``meanqtc`` = Bazett);
  rhythm from the first interpretation's statements (deleted ones skipped); pace mode fields when present.
- HL7 aECG: the device-authored annotation set: per-beat ``MDC_ECG_TIME_PD_*`` / ``MDC_ECG_ANGLE_*_FRONT`` values
  (median over beats) and the ``MDC_ECG_RHY`` rhythm code.
- DICOM ``WaveformAnnotationSequence``: numeric annotations by concept name (PR, QRS, QT, QTc, RR, axes) and the
  unformatted text statements.

A QTc whose formula the file does not name (aECG ``MDC_ECG_TIME_PD_QTc``, DICOM ``QTc Interval``) is kept only when
exactly one of Bazett and Fridericia, applied to the cart's own QT and RR, reproduces it within 2 ms (carts also use
Hodges and Framingham).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from typing import Any
from xml.etree.ElementTree import Element

from cardiacnets.io._xml import attr, child, children, descendant, descendants, float_text, local_name, text
from cardiacnets.measure.schema import MEASUREMENT_KEYS, Measurements, qtc_bazett, qtc_fridericia

__all__ = [
    "aecg_measurements",
    "cardiosoft_measurements",
    "complete",
    "dicom_measurements",
    "muse_measurements",
    "philips_measurements",
    "rhythm_from_statements",
]

_COMPARISON = re.compile(r"COMPARED WITH|COMPARISON WITH|CONFRONTO", re.IGNORECASE)
# Order matters: the first pattern that matches names the rhythm (pacing before the underlying rhythm words).
_RHYTHM_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("paced", re.compile(r"PACED|PACEMAKER|PACING|STIMOLAT", re.IGNORECASE)),
    ("atrial fibrillation", re.compile(r"ATRIAL[\s_-]*FIB|ATR_FIB|\bA-?FIB|FIBRILLAZIONE ATRIALE", re.IGNORECASE)),
    ("sinus bradycardia", re.compile(r"SINUS[\s_]*BRAD|BRADICARDIA SINUSALE", re.IGNORECASE)),
    ("sinus tachycardia", re.compile(r"SINUS[\s_]*TACH|TACHICARDIA SINUSALE", re.IGNORECASE)),
    ("sinus", re.compile(r"SINUS|RITMO SINUSALE", re.IGNORECASE)),
)
# Statements that name some rhythm the toolkit does not classify ("other").
_OTHER_RHYTHM = re.compile(
    r"RHYTHM|FLUTTER|FIBRILLATION|JUNCTIONAL|IDIOVENTRICULAR|ASYSTOLE|SUPRAVENTRICULAR TACHY|VENTRICULAR TACHY|"
    r"ESCAPE|MDC_ECG_RHY_",
    re.IGNORECASE,
)


def rhythm_from_statements(statements: Iterable[str]) -> tuple[str | None, bool | None]:
    """``(rhythm, paced)`` from a cart's interpretation statements (or MDC rhythm codes).

    Statements after a comparison with an earlier ECG ("when compared with ...") are ignored. ``rhythm`` is None when
    no statement names a rhythm; ``paced`` is True when one names pacing, False when statements exist and none
    does, None without statements.
    """
    kept: list[str] = []
    for statement in statements:
        if _COMPARISON.search(statement):
            break
        if statement.strip():
            kept.append(statement.strip())
    if not kept:
        return None, None
    joined = " | ".join(kept)
    for rhythm, pattern in _RHYTHM_PATTERNS:
        if pattern.search(joined):
            return rhythm, rhythm == "paced"
    return ("other" if _OTHER_RHYTHM.search(joined) else None), False


def complete(values: dict[str, Any]) -> dict[str, Any] | None:
    """``values`` (a subset of the keys) as a full, JSON-ready measurement dict; None when it holds nothing."""
    known = {key: value for key, value in values.items() if key in MEASUREMENT_KEYS and value is not None}
    if not known:
        return None
    return Measurements(**known).as_dict()


def _unnamed_qtc(qtc: float | None, qt: float | None, rr_s: float | None) -> dict[str, float]:
    """A QTc of unnamed formula, as the one of Bazett/Fridericia it matches (empty dict when none or both)."""
    if qtc is None:
        return {}
    matches = {
        key: qtc
        for key, formula in (("qtc_bazett_ms", qtc_bazett), ("qtc_fridericia_ms", qtc_fridericia))
        if (value := formula(qt, rr_s)) is not None and abs(value - qtc) <= 2.0
    }
    return matches if len(matches) == 1 else {}


def _rate(value: float | None) -> float | None:
    return value if value is not None and 10.0 <= value <= 400.0 else None


def _interval(value: float | None) -> float | None:
    # Carts write 0 (or negatives) for "not measured".
    return value if value is not None and 0.0 < value < 2000.0 else None


def _axis(value: float | None) -> float | None:
    if value is None or not -360.0 <= value <= 360.0:
        return None
    wrapped = (value + 180.0) % 360.0 - 180.0  # carts write -90..270; the toolkit (-180, 180]
    return 180.0 if wrapped == -180.0 else wrapped


# --------------------------------------------------------------------------------------------------- GE MUSE


def _muse_statements(section: Element | None) -> list[str]:
    return [t for t in (text(s, "StmtText") for s in children(section, "DiagnosisStatement")) if t]


def muse_measurements(root: Element) -> dict[str, Any] | None:
    """Cart measurements of a GE MUSE ``RestingECG`` document (see the module docstring)."""
    m = child(root, "RestingECGMeasurements")
    statements = _muse_statements(child(root, "Diagnosis")) or _muse_statements(child(root, "OriginalDiagnosis"))
    rhythm, paced = rhythm_from_statements(statements)
    return complete(
        {
            "heart_rate_bpm": _rate(float_text(m, "VentricularRate")),
            "pr_ms": _interval(float_text(m, "PRInterval")),
            "qrs_ms": _interval(float_text(m, "QRSDuration")),
            "qt_ms": _interval(float_text(m, "QTInterval")),
            "qtc_bazett_ms": _interval(float_text(m, "QTCorrected")),
            "qtc_fridericia_ms": _interval(float_text(m, "QTcFrederica")),
            "p_axis_deg": _axis(float_text(m, "PAxis")),
            "qrs_axis_deg": _axis(float_text(m, "RAxis")),
            "t_axis_deg": _axis(float_text(m, "TAxis")),
            "rhythm": rhythm,
            "paced": paced,
        }
    )


# --------------------------------------------------------------------------------------------------- GE CardioSoft


def cardiosoft_measurements(root: Element) -> dict[str, Any] | None:
    """Cart measurements of a GE CardioSoft ``CardiologyXML`` document (see the module docstring)."""
    m = child(root, "RestingECGMeasurements")
    diagnosis = child(child(root, "Interpretation"), "Diagnosis")
    rhythm, paced = rhythm_from_statements(t for t in (text(d) for d in children(diagnosis, "DiagnosisText")) if t)
    return complete(
        {
            "heart_rate_bpm": _rate(float_text(m, "VentricularRate")),
            "pr_ms": _interval(float_text(m, "PQInterval")),
            "qrs_ms": _interval(float_text(m, "QRSDuration")),
            "qt_ms": _interval(float_text(m, "QTInterval")),
            "qtc_bazett_ms": _interval(float_text(m, "QTCInterval")),
            "p_axis_deg": _axis(float_text(m, "PAxis")),
            "qrs_axis_deg": _axis(float_text(m, "RAxis")),
            "t_axis_deg": _axis(float_text(m, "TAxis")),
            "rhythm": rhythm,
            "paced": paced,
        }
    )


# --------------------------------------------------------------------------------------------------- Philips


def _philips_statements(root: Element) -> list[str]:
    """Left-hand statement texts of the first interpretation (1.03 ``statement``, 1.04 ``codedstatement``), skipping
    statements a clinician deleted."""
    interpretation = descendant(root, "interpretation")
    statements: list[str] = []
    for element in interpretation.iter() if interpretation is not None else ():
        if local_name(element.tag) not in ("statement", "codedstatement", "qualitystatement"):
            continue
        if attr(element, "deleted") == "True":
            continue
        for name in ("leftstatement", "lhsstatement"):
            statements += [t for t in (text(e) for e in descendants(element, name)) if t]
    return statements


def _philips_paced(root: Element) -> bool | None:
    """Pace mode fields: True when a pace mode or pace pulses are reported, False when the fields say none."""
    mode = descendant(root, "pacemode")
    if mode is None:
        mode = descendant(root, "pacemodes")
    if mode is None:
        return None
    return (text(mode) or "0") not in ("0", "None") or bool(text(descendant(root, "pacepulses")))


def philips_measurements(root: Element) -> dict[str, Any] | None:
    """Cart measurements of a Philips SierraECG/PhilipsECG document, versions 1.03 and 1.04 (see the module
    docstring)."""
    g = descendant(root, "globalmeasurements")

    def first(*names: str) -> float | None:
        return next((v for v in (float_text(g, n) for n in names) if v is not None), None)

    statements = _philips_statements(root)
    rhythm, paced_text = rhythm_from_statements(statements)
    paced_fields = _philips_paced(root)
    flags = [flag for flag in (paced_text, paced_fields) if flag is not None]
    paced = any(flags) if flags else None
    return complete(
        {
            "heart_rate_bpm": _rate(first("heartrate", "meanventrate")),
            "pr_ms": _interval(first("print", "meanprint")),
            "qrs_ms": _interval(first("qrsdur", "meanqrsdur")),
            "qt_ms": _interval(first("qtint", "meanqtint")),
            "qtc_bazett_ms": _interval(first("qtcb", "meanqtc")),
            "qtc_fridericia_ms": _interval(first("qtcf")),
            "p_axis_deg": _axis(first("pfrontaxis")),
            "qrs_axis_deg": _axis(first("qrsfrontaxis")),
            "t_axis_deg": _axis(first("tfrontaxis")),
            "rhythm": rhythm,
            "paced": paced,
        }
    )


# --------------------------------------------------------------------------------------------------- HL7 aECG

_AECG_CODES = {
    "MDC_ECG_TIME_PD_PR": "pr_ms",
    "MDC_ECG_TIME_PD_QRS": "qrs_ms",
    "MDC_ECG_TIME_PD_QT": "qt_ms",
    "MDC_ECG_TIME_PD_QTc": "qtc",
    "MDC_ECG_TIME_PD_QTcB": "qtc_bazett_ms",
    "MDC_ECG_TIME_PD_QTcF": "qtc_fridericia_ms",
    "MDC_ECG_TIME_PD_RR": "rr",
    "MDC_ECG_HEART_RATE": "heart_rate_bpm",
    "MDC_ECG_CARD_BEAT_RATE": "heart_rate_bpm",
    "MDC_ECG_CARD_BEAT_RATE_VENT": "heart_rate_bpm",
    "MDC_ECG_ANGLE_P_FRONT": "p_axis_deg",
    "MDC_ECG_ANGLE_QRS_FRONT": "qrs_axis_deg",
    "MDC_ECG_ANGLE_T_FRONT": "t_axis_deg",
}
_TIME_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3}


def _aecg_value(annotation: Element) -> float | None:
    value = child(annotation, "value")
    try:
        number = float(attr(value, "value") or "")
    except ValueError:
        return None
    unit = attr(value, "unit") or ""
    return number * _TIME_UNIT_MS.get(unit, 1.0)


def _device_sets(root: Element) -> list[Element]:
    """Annotation sets a device wrote (all of them when no set names its author)."""
    sets = list(descendants(root, "annotationSet"))
    device = [s for s in sets if descendant(s, "assignedDevice") is not None]
    authored = [s for s in sets if descendant(s, "author") is not None]
    return device if device else (sets if not authored else [])


def aecg_measurements(root: Element) -> dict[str, Any] | None:
    """Cart measurements of an HL7 aECG document (see the module docstring)."""
    collected: dict[str, list[float]] = {}
    rhythm_codes: list[str] = []
    for annotation_set in _device_sets(root):
        for annotation in descendants(annotation_set, "annotation"):
            code = attr(child(annotation, "code"), "code") or ""
            if code == "MDC_ECG_RHY":
                rhythm_codes.append(attr(child(annotation, "value"), "code") or "")
            key = _AECG_CODES.get(code)
            number = _aecg_value(annotation) if key else None
            if key and number is not None:
                collected.setdefault(key, []).append(number)
    values: dict[str, Any] = {k: statistics.median(v) for k, v in collected.items()}
    rr = values.pop("rr", None)
    if values.get("heart_rate_bpm") is None and rr:
        values["heart_rate_bpm"] = 60000.0 / rr
    rr_s = rr / 1000.0 if rr else (60.0 / values["heart_rate_bpm"] if values.get("heart_rate_bpm") else None)
    values.update(_unnamed_qtc(values.pop("qtc", None), values.get("qt_ms"), rr_s))
    for key in ("p_axis_deg", "qrs_axis_deg", "t_axis_deg"):
        values[key] = _axis(values.get(key))
    values["rhythm"], values["paced"] = rhythm_from_statements(c for c in rhythm_codes if c)
    return complete(values)


# --------------------------------------------------------------------------------------------------- DICOM

_DICOM_CONCEPTS = {
    "pr interval": "pr_ms",
    "qrs duration": "qrs_ms",
    "qt interval": "qt_ms",
    "qtc interval": "qtc",
    "rr interval": "rr",
    "heart rate": "heart_rate_bpm",
    "ventricular heart rate": "heart_rate_bpm",
    "p axis": "p_axis_deg",
    "qrs axis": "qrs_axis_deg",
    "t axis": "t_axis_deg",
}


def dicom_measurements(ds: Any) -> dict[str, Any] | None:
    """Cart measurements of a pydicom dataset's ``WaveformAnnotationSequence`` (see the module docstring)."""
    values: dict[str, Any] = {}
    statements: list[str] = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        statement = str(item.get("UnformattedTextValue", "") or "").strip()
        if statement:
            statements.append(statement)
        names = item.get("ConceptNameCodeSequence") or []
        key = _DICOM_CONCEPTS.get(str(names[0].get("CodeMeaning", "")).strip().lower()) if names else None
        number = item.get("NumericValue")
        if key is None or number in (None, "") or key in values:
            continue
        try:
            values[key] = float(number[0] if isinstance(number, Sequence) and not isinstance(number, str) else number)
        except (TypeError, ValueError, IndexError):
            continue
    rr = _interval(values.pop("rr", None))
    if values.get("heart_rate_bpm") is None and rr:
        values["heart_rate_bpm"] = 60000.0 / rr
    rr_s = rr / 1000.0 if rr else (60.0 / values["heart_rate_bpm"] if values.get("heart_rate_bpm") else None)
    values.update(_unnamed_qtc(values.pop("qtc", None), values.get("qt_ms"), rr_s))
    for key in ("pr_ms", "qrs_ms", "qt_ms"):
        values[key] = _interval(values.get(key))
    for key in ("p_axis_deg", "qrs_axis_deg", "t_axis_deg"):
        values[key] = _axis(values.get(key))
    values["heart_rate_bpm"] = _rate(values.get("heart_rate_bpm"))
    values["rhythm"], values["paced"] = rhythm_from_statements(statements)
    return complete(values)
