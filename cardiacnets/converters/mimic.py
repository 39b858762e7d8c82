"""MIMIC-IV-ECG -> the sharded dataset format (domain-notes section 5.1). No cines and no phenotypes: the dataset has
the modalities ``ecg`` and (when a label source is given) ``labels``.

Inputs, in their PhysioNet layouts:

* ``mimic-iv-ecg/1.0/``: ``record_list.csv`` (``subject_id, study_id, file_name, ecg_time, path``), WFDB records at
  ``files/pNNNN/pXXXXXXXX/sYYYYYYYY/YYYYYYYY.hea|.dat`` and optionally ``machine_measurements.csv``;
* labels from MIMIC-IV-ECG-Ext-ICD ``records_w_diag_icd10.csv`` (column ``all_diag_all``, a stringified list of
  ICD-10-CM codes), or from MIMIC-IV ``hosp/`` (``admissions``, ``diagnoses_icd``): the ECG belongs to the admission
  with ``admittime <= ecg_time <= dischtime`` and takes that admission's ICD-9/10 codes;
* sex and age from ``hosp/patients`` (age = ``anchor_age + ecg year - anchor_year``, capped at 91 like MIMIC), else
  from the Ext-ICD ``gender`` / ``age`` columns.

An ECG without a linked stay (an empty ``all_diag_all`` list, or no admission around ``ecg_time``) has unknown labels
(NaN, flag ``no_linked_stay``): no recorded diagnosis is not evidence of no disease. Leads are reordered by name (MIMIC
stores aVF before aVL). Records with NaN samples, flat leads, samples over 10 mV or that cannot be read are kept and
flagged in ``qc_flags`` (``nan_samples``, ``flat_lead:<lead>``, ``over_10mV``, ``unreadable``; an unreadable record's
ECG is all NaN); ``open_dataset(..., exclude_qc=True)`` drops them. ``machine_measurements.csv`` is kept as the extra
table ``machine_measurements`` with its sentinels (29999, 32767, -32768, 65535) turned into NaN; the heart-rate
covariate is ``60000 / rr_interval``. The split is subject-level (all ECGs of a patient in one split), stratified by
the patient's label pattern.
"""

from __future__ import annotations

import ast
import logging
import math
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.converters._common import ecg_qc_flags, find_table, fit_ecg, read_rows, to_float
from cardiacnets.datasets.shards import DatasetSpec, ShardWriter
from cardiacnets.datasets.splits import stratified_group_splits
from cardiacnets.errors import CardiacNetsError, DatasetError
from cardiacnets.labels import labels_from_icd
from cardiacnets.record import LEADS, assemble_record, canonical_lead_name

logger = logging.getLogger(__name__)

MEASUREMENTS: tuple[str, ...] = (
    "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis", "t_axis",
)  # fmt: skip
MEASUREMENT_UNITS: tuple[str, ...] = ("ms",) * 6 + ("deg",) * 3
SENTINELS = frozenset({29999.0, 32767.0, -32768.0, 65535.0})
AGE_CAP = 91.0


def read_measurements(path: Path) -> dict[str, np.ndarray]:
    """study_id -> float32 ``(9,)`` machine measurements in the order of :data:`MEASUREMENTS`, sentinels as NaN."""
    out = {}
    for row in read_rows(path, required=("study_id", *MEASUREMENTS)):
        values = [to_float(row[c]) for c in MEASUREMENTS]
        out[row["study_id"].strip()] = np.asarray([math.nan if v in SENTINELS else v for v in values], dtype=np.float32)
    return out


def _parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _parse_code_list(text: str | None) -> list[str]:
    text = (text or "").strip()
    if not text or text.lower() == "nan":
        return []
    try:
        value = ast.literal_eval(text)  # literals only: never executes code
    except (ValueError, SyntaxError):
        return [c.strip(" '\"") for c in text.strip("[]").split(",") if c.strip(" '\"")]
    return [str(c) for c in value] if isinstance(value, (list, tuple)) else []


def _label_tuple(codes10: list[str], codes9: list[str]) -> tuple[np.ndarray, int]:
    l10, s10 = labels_from_icd(codes10, 10)
    l9, s9 = labels_from_icd(codes9, 9)
    labels = np.maximum(l10, l9).astype(np.float32)
    return labels, s10 if s10 >= 0 else s9


class _HospLabels:
    """ECG -> admission (admittime <= ecg_time <= dischtime) -> that admission's ICD codes."""

    def __init__(self, hosp: Path) -> None:
        self.admissions: dict[str, list[tuple[datetime, datetime, str]]] = {}
        for row in read_rows(
            find_table(hosp, "admissions"), required=("subject_id", "hadm_id", "admittime", "dischtime")
        ):
            start, end = _parse_time(row["admittime"]), _parse_time(row["dischtime"])
            if start and end:
                self.admissions.setdefault(row["subject_id"].strip(), []).append((start, end, row["hadm_id"].strip()))
        self.codes: dict[str, tuple[list[str], list[str]]] = {}
        for row in read_rows(find_table(hosp, "diagnoses_icd"), required=("hadm_id", "icd_code", "icd_version")):
            ten, nine = self.codes.setdefault(row["hadm_id"].strip(), ([], []))
            (nine if row["icd_version"].strip() == "9" else ten).append(row["icd_code"])

    def labels(self, subject_id: str, ecg_time: datetime | None) -> tuple[np.ndarray, int] | None:
        if ecg_time is None:
            return None
        for start, end, hadm in self.admissions.get(subject_id, []):
            if start <= ecg_time <= end:
                ten, nine = self.codes.get(hadm, ([], []))
                return _label_tuple(ten, nine)
        return None


def convert_mimic(
    out_dir: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str],
    ext_icd: str | os.PathLike[str] | None = None,
    hosp_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    shard_size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Convert MIMIC-IV-ECG to a dataset at ``out_dir`` and return its manifest (see the module docstring).

    Args:
        root: the ``mimic-iv-ecg/1.0`` directory.
        ext_icd: ``records_w_diag_icd10.csv`` of MIMIC-IV-ECG-Ext-ICD (preferred label source).
        hosp_dir: MIMIC-IV ``hosp`` directory (patients; admissions + diagnoses_icd as label source without ext_icd).
        limit: convert only the first ``limit`` records of ``record_list.csv``.
        progress: ``progress(done, total)`` after each record.
    """
    root = Path(root)
    records = list(read_rows(root / "record_list.csv", required=("subject_id", "study_id", "ecg_time", "path")))
    if limit is not None:
        records = records[: max(0, int(limit))]
    if not records:
        raise DatasetError(f"{root / 'record_list.csv'}: no records")
    measurements_path = root / "machine_measurements.csv"
    measurements = read_measurements(measurements_path) if measurements_path.is_file() else {}

    ext: dict[str, dict[str, str]] = {}
    if ext_icd is not None:
        for row in read_rows(Path(ext_icd), required=("study_id", "all_diag_all")):
            ext[row["study_id"].strip()] = row
    hosp = Path(hosp_dir) if hosp_dir is not None else None
    hosp_labels = _HospLabels(hosp) if hosp is not None and ext_icd is None else None
    patients: dict[str, tuple[float, float, float]] = {}
    if hosp is not None:
        for row in read_rows(
            find_table(hosp, "patients"), required=("subject_id", "gender", "anchor_age", "anchor_year")
        ):
            sex = {"M": 1.0, "F": 0.0}.get(row["gender"].strip().upper(), math.nan)
            patients[row["subject_id"].strip()] = (sex, to_float(row["anchor_age"]), to_float(row["anchor_year"]))
    has_labels = ext_icd is not None or hosp_labels is not None

    # Labels first (tables only), so the subject-level stratified split is known before any waveform is read.
    label_info: list[tuple[np.ndarray, int, list[str]]] = []
    for rec in records:
        if not has_labels:
            label_info.append((np.full(5, np.nan, np.float32), -1, []))
            continue
        if ext_icd is not None:
            codes = _parse_code_list(ext.get(rec["study_id"].strip(), {}).get("all_diag_all"))
            result = _label_tuple(codes, []) if codes else None
        else:
            result = hosp_labels.labels(rec["subject_id"].strip(), _parse_time(rec["ecg_time"]))
        if result is None:
            label_info.append((np.full(5, np.nan, np.float32), -1, ["no_linked_stay"]))
        else:
            label_info.append((result[0], result[1], []))
    subjects = [r["subject_id"].strip() for r in records]
    strata = [tuple(np.nan_to_num(info[0], nan=-1).astype(int).tolist()) for info in label_info]
    splits = stratified_group_splits(subjects, strata, seed=seed)

    spec = DatasetSpec(
        n_subjects=len(records),
        modalities=("ecg", "labels") if has_labels else ("ecg",),
        shard_size=shard_size,
        source={
            "kind": "mimic-iv-ecg",
            "description": "MIMIC-IV-ECG v1.0 WFDB records with "
            + (
                "MIMIC-IV-ECG-Ext-ICD all_diag_all labels"
                if ext_icd is not None
                else "MIMIC-IV hosp diagnoses of the admission around ecg_time"
                if hosp_labels
                else "no labels"
            ),
            "rows": "one row per ECG (study); subject_id column = p<subject_id>/s<study_id>",
            "split_rule": f"subject-level, stratified by the patient's label pattern, seed {seed}",
        },
        ecg_lsb_mv=0.005,  # MIMIC's own resolution (200 adu/mV): stored without loss
        extras={"machine_measurements": {"columns": list(MEASUREMENTS), "units": list(MEASUREMENT_UNITS)}},
    )
    writer = ShardWriter(out_dir, spec, overwrite=overwrite)
    while not writer.complete:
        start = writer.n_written
        stop = min(start + shard_size, len(records))
        items = [
            _convert_record(root, records[k], label_info[k], int(splits[k]), measurements, ext, patients)
            for k in range(start, stop)
        ]
        batch: dict[str, Any] = {
            key: np.asarray([it[key] for it in items]) for key in items[0] if key not in ("subject_id", "qc_flags")
        }
        batch["subject_id"] = [it["subject_id"] for it in items]
        batch["qc_flags"] = [it["qc_flags"] for it in items]
        writer.write_shard(batch)
        if progress:
            progress(stop, len(records))
    return writer.finalize()


def _read_wfdb(base: Path) -> tuple[np.ndarray, float]:
    import wfdb

    try:
        record = wfdb.rdrecord(str(base))
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise DatasetError(f"cannot read WFDB record ({type(exc).__name__}: {exc})") from exc
    signal = np.asarray(record.p_signal, dtype=np.float64).T  # (channels, n)
    units = [str(u or "mV").strip().lower() for u in (record.units or ["mV"] * len(record.sig_name))]
    scale = np.asarray([1e-3 if u in ("uv", "µv") else 1.0 for u in units])[:, None]
    channels = {name: signal[k] * scale[k] for k, name in enumerate(record.sig_name)}
    rec = assemble_record(channels, float(record.fs), source_format="wfdb", path=None)
    out = rec.signal.copy()
    # assemble_record zero-fills non-finite samples; the dataset keeps them as NaN so QC can flag the record.
    for name, values in channels.items():
        lead = canonical_lead_name(name)
        if lead is not None and not np.all(np.isfinite(values)) and values.shape[-1] == out.shape[1]:
            out[LEADS.index(lead), ~np.isfinite(values)] = np.nan
    return out, rec.fs


def _convert_record(
    root: Path,
    rec: dict[str, str],
    label_info: tuple[np.ndarray, int, list[str]],
    split: int,
    measurements: dict[str, np.ndarray],
    ext: dict[str, dict[str, str]],
    patients: dict[str, tuple[float, float, float]],
) -> dict[str, Any]:
    labels, subtype, flags = label_info
    flags = list(flags)
    subject, study = rec["subject_id"].strip(), rec["study_id"].strip()
    try:
        signal, fs = _read_wfdb(root / rec["path"].strip())
        ecg, fit_flags = fit_ecg(signal, fs)
        flags += fit_flags + ecg_qc_flags(ecg, LEADS)
    except CardiacNetsError as exc:
        logger.warning("unreadable MIMIC record (kept, flagged): %s", type(exc).__name__)
        ecg = np.full((12, 5000), np.nan, dtype=np.float32)
        flags.append("unreadable")
    measured = measurements.get(study, np.full(len(MEASUREMENTS), np.nan, dtype=np.float32))
    heart_rate = 60000.0 / measured[0] if measured[0] > 0 else math.nan
    ecg_time = _parse_time(rec.get("ecg_time"))
    if subject in patients:
        sex, anchor_age, anchor_year = patients[subject]
        age = anchor_age + (ecg_time.year - anchor_year if ecg_time else 0.0)
    else:
        row = ext.get(study, {})
        sex = {"M": 1.0, "F": 0.0}.get((row.get("gender") or "").strip().upper(), math.nan)
        age = to_float(row.get("age"))
    age = min(age, AGE_CAP) if math.isfinite(age) else math.nan
    covariates = np.asarray([sex, age, heart_rate], dtype=np.float32)
    return {
        "ecg": ecg,
        "labels": labels,
        "cm_subtype": subtype,
        "covariates": covariates,
        "covariate_mask": np.isfinite(covariates),
        "split": split,
        "x_machine_measurements": measured,
        "subject_id": f"p{subject}/s{study}",
        "qc_flags": ";".join(flags),
    }
