"""The tables of MIMIC-IV-ECG and its label sources, read into compact per-record arrays before any waveform.

This module owns everything the MIMIC converter knows before it opens a WFDB file: the record list, the labels (from
MIMIC-IV-ECG-Ext-ICD's ``all_diag_all``, or from the MIMIC-IV ``hosp`` admission around ``ecg_time``), sex and age,
and the machine measurements. Every table is streamed and only the columns used are kept; rows are matched to the
records by ``study_id`` (or, for ``hosp``, only the admissions of the listed patients and the diagnoses of the
admissions that hold an ECG are kept), so memory follows the number of ECGs, not the width of the source tables
(``benchmarks/bench_converters_memory.py``: 800,000 records with the Ext-ICD table).

A missing diagnosis is not evidence of no disease: an ECG with no linked stay (no Ext-ICD row, an empty list without
a linked admission, or no admission around ``ecg_time``) has unknown labels and the flag ``no_linked_stay``; an ECG
whose admission has no coded diagnosis has unknown labels and the flag ``no_coded_diagnoses``.
"""

from __future__ import annotations

import ast
import itertools
import logging
import math
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from cardiacnets.converters._common import find_table, read_columns, to_float
from cardiacnets.errors import DatasetError
from cardiacnets.labels import LABEL_NAMES, labels_from_icd

logger = logging.getLogger(__name__)

__all__ = ["AGE_CAP", "MEASUREMENTS", "MEASUREMENT_UNITS", "SENTINELS", "MimicTables", "read_tables"]

MEASUREMENTS: tuple[str, ...] = (
    "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis", "t_axis",
)  # fmt: skip
MEASUREMENT_UNITS: tuple[str, ...] = ("ms",) * 6 + ("deg",) * 3
SENTINELS = frozenset({29999.0, 32767.0, -32768.0, 65535.0})
AGE_CAP = 91.0
NO_LINKED_STAY, NO_CODED_DIAGNOSES = "no_linked_stay", "no_coded_diagnoses"
_SEX = {"M": 1.0, "F": 0.0}


@dataclass
class MimicTables:
    """Per-record values, row k for the k-th record of ``record_list.csv``."""

    subjects: list[str]
    studies: list[str]
    paths: list[str]
    labels: np.ndarray  # (n, 5) float32, NaN unknown
    subtypes: np.ndarray  # (n,) int8, -1 none
    flags: list[str]  # "" or the reason the labels are unknown
    sex: np.ndarray  # (n,) float32, 0 female, 1 male, NaN unknown
    age: np.ndarray  # (n,) float32 years, capped at AGE_CAP
    measurements: np.ndarray  # (n, 9) float32 in the order of MEASUREMENTS, sentinels as NaN
    label_source: str  # "ext-icd", "hosp" or "none"

    def __len__(self) -> int:
        return len(self.studies)


def read_tables(
    root: Path, *, ext_icd: Path | None = None, hosp_dir: Path | None = None, limit: int | None = None
) -> MimicTables:
    """Read ``root``'s record list and machine measurements, and the labels and covariates of those records."""
    subjects, studies, paths, times = _read_records(root / "record_list.csv", limit)
    n = len(studies)
    row_of = {study: k for k, study in enumerate(studies)}
    tables = MimicTables(
        subjects=subjects, studies=studies, paths=paths,
        labels=np.full((n, len(LABEL_NAMES)), np.nan, dtype=np.float32), subtypes=np.full(n, -1, dtype=np.int8),
        flags=[""] * n, sex=np.full(n, np.nan, dtype=np.float32), age=np.full(n, np.nan, dtype=np.float32),
        measurements=np.full((n, len(MEASUREMENTS)), np.nan, dtype=np.float32), label_source="none",
    )  # fmt: skip
    measurements = root / "machine_measurements.csv"
    if measurements.is_file():
        _read_measurements(measurements, row_of, tables.measurements)
    if ext_icd is not None:
        _read_ext_icd(Path(ext_icd), row_of, tables)
    hosp = Path(hosp_dir) if hosp_dir is not None else None
    if hosp is not None:
        if ext_icd is None:
            _hosp_labels(hosp, times, tables)
        _read_patients(find_table(hosp, "patients"), times, tables)
    tables.age[:] = np.minimum(tables.age, AGE_CAP)  # NaN stays NaN
    return tables


def _read_records(path: Path, limit: int | None) -> tuple[list[str], list[str], list[str], list[str]]:
    rows = read_columns(path, ("subject_id", "study_id", "ecg_time", "path"))
    if limit is not None:
        rows = itertools.islice(rows, max(0, int(limit)))
    subjects, studies, paths, times = [], [], [], []
    for subject, study, when, rel in rows:
        subjects.append(sys.intern(subject.strip()))  # a patient has several ECGs: one string each
        studies.append(study.strip())
        times.append(when.strip())
        paths.append(rel.strip())
    if not studies:
        raise DatasetError(f"{path}: no records")
    return subjects, studies, paths, times


def _read_measurements(path: Path, row_of: dict[str, int], out: np.ndarray) -> None:
    for study, *cells in read_columns(path, ("study_id", *MEASUREMENTS)):
        k = row_of.get(study.strip())
        if k is not None:
            values = [to_float(c) for c in cells]
            out[k] = [math.nan if v in SENTINELS else v for v in values]


_SIMPLE_LIST = re.compile(r"\[\s*(?:'[^'\\]*'\s*(?:,\s*'[^'\\]*'\s*)*,?\s*)?\]")
_QUOTED = re.compile(r"'([^']*)'")


def parse_code_list(text: str | None) -> list[str]:
    """A stringified Python list of codes (``"['I2510', 'E785']"``), as Ext-ICD stores ``all_diag_all``."""
    text = (text or "").strip()
    if not text or text.lower() == "nan":
        return []
    if _SIMPLE_LIST.fullmatch(text):  # the usual shape: quoted codes without escapes (about 10 x faster)
        return _QUOTED.findall(text)
    try:
        value = ast.literal_eval(text)  # literals only: never executes code
    except (ValueError, SyntaxError):
        return [c.strip(" '\"") for c in text.strip("[]").split(",") if c.strip(" '\"")]
    return [str(c) for c in value] if isinstance(value, (list, tuple)) else []


def label_tuple(codes10: list[str], codes9: list[str]) -> tuple[np.ndarray, int]:
    """Labels ``(5,)`` float32 and the cardiomyopathy subtype from ICD-10 and ICD-9 codes together."""
    l10, s10 = labels_from_icd(codes10, 10)
    l9, s9 = labels_from_icd(codes9, 9)
    return np.maximum(l10, l9).astype(np.float32), s10 if s10 >= 0 else s9


def _present(text: str) -> bool:
    return bool(text.strip()) and text.strip().lower() != "nan"


def _read_ext_icd(path: Path, row_of: dict[str, int], tables: MimicTables) -> None:
    tables.label_source = "ext-icd"
    tables.flags[:] = [NO_LINKED_STAY] * len(tables)  # records without an Ext-ICD row stay unknown
    optional = ("hosp_hadm_id", "ed_stay_id", "gender", "age")
    for study, diagnoses, hadm, stay, gender, age in read_columns(path, ("study_id", "all_diag_all"), optional):
        k = row_of.get(study.strip())
        if k is None:
            continue
        tables.sex[k] = _SEX.get(gender.strip().upper(), math.nan)
        tables.age[k] = to_float(age)
        codes = parse_code_list(diagnoses)
        if codes:
            tables.labels[k], tables.subtypes[k] = label_tuple(codes, [])
            tables.flags[k] = ""
        elif _present(hadm) or _present(stay):
            tables.flags[k] = NO_CODED_DIAGNOSES


def _parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _hosp_labels(hosp: Path, times: list[str], tables: MimicTables) -> None:
    """Each ECG takes the ICD codes of the admission with ``admittime <= ecg_time <= dischtime``."""
    tables.label_source = "hosp"
    wanted = set(tables.subjects)
    admissions: dict[str, list[tuple[datetime, datetime, str]]] = {}
    columns = ("subject_id", "hadm_id", "admittime", "dischtime")
    for subject, hadm, admit, discharge in read_columns(find_table(hosp, "admissions"), columns):
        start, end = _parse_time(admit), _parse_time(discharge)
        if subject.strip() in wanted and start and end:
            admissions.setdefault(subject.strip(), []).append((start, end, hadm.strip()))
    linked: list[str | None] = []
    for subject, when in zip(tables.subjects, times, strict=True):
        moment = _parse_time(when)
        stays = admissions.get(subject, []) if moment is not None else []
        linked.append(next((hadm for start, end, hadm in stays if start <= moment <= end), None))
    needed = {hadm for hadm in linked if hadm is not None}
    codes: dict[str, tuple[list[str], list[str]]] = {}
    for hadm, code, version in read_columns(find_table(hosp, "diagnoses_icd"), ("hadm_id", "icd_code", "icd_version")):
        if hadm.strip() in needed:
            ten, nine = codes.setdefault(hadm.strip(), ([], []))
            (nine if version.strip() == "9" else ten).append(code)
    cache: dict[str, tuple[np.ndarray, int]] = {}
    for k, hadm in enumerate(linked):
        if hadm is None:
            tables.flags[k] = NO_LINKED_STAY
        elif hadm not in codes:
            tables.flags[k] = NO_CODED_DIAGNOSES
        else:
            if hadm not in cache:
                cache[hadm] = label_tuple(*codes[hadm])
            tables.labels[k], tables.subtypes[k] = cache[hadm]


def _read_patients(path: Path, times: list[str], tables: MimicTables) -> None:
    """Sex and age from ``hosp/patients``: age = ``anchor_age`` + years from ``anchor_year`` to the ECG."""
    wanted = set(tables.subjects)
    patients: dict[str, tuple[float, float, float]] = {}
    for subject, gender, age, year in read_columns(path, ("subject_id", "gender", "anchor_age", "anchor_year")):
        if subject.strip() in wanted:
            patients[subject.strip()] = (_SEX.get(gender.strip().upper(), math.nan), to_float(age), to_float(year))
    for k, subject in enumerate(tables.subjects):
        if subject in patients:
            sex, anchor_age, anchor_year = patients[subject]
            moment = _parse_time(times[k])
            tables.sex[k] = sex
            tables.age[k] = anchor_age + (moment.year - anchor_year if moment else 0.0)
