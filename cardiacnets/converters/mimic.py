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

An ECG without a linked stay (no Ext-ICD row or an empty ``all_diag_all`` without a linked admission, or no admission
around ``ecg_time``) has unknown labels (NaN, flag ``no_linked_stay``), and so has an ECG whose admission has no coded
diagnosis (flag ``no_coded_diagnoses``): no recorded diagnosis is not evidence of no disease. The tables are streamed
keeping only the columns used (:mod:`cardiacnets.converters.mimic_tables`). Leads are reordered by name (MIMIC
stores aVF before aVL). Records with NaN samples, flat leads, samples over 10 mV or that cannot be read are kept and
flagged in ``qc_flags`` (``nan_samples``, ``flat_lead:<lead>``, ``over_10mV``, ``unreadable``; an unreadable record's
ECG is all NaN); ``open_dataset(..., exclude_qc=True)`` drops them. ``machine_measurements.csv`` is kept as the extra
table ``machine_measurements`` with its sentinels (29999, 32767, -32768, 65535) turned into NaN; the heart-rate
covariate is ``60000 / rr_interval``. The split is subject-level (all ECGs of a patient in one split), stratified by
the patient's label pattern. Every run writes ``conversion_report.json`` and ``.md`` beside the dataset.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.converters._common import ecg_qc_flags, fit_ecg, write_subjects
from cardiacnets.converters.mimic_tables import MEASUREMENT_UNITS, MEASUREMENTS, MimicTables, read_tables
from cardiacnets.converters.report import write_report
from cardiacnets.datasets.shards import DatasetSpec, ShardWriter
from cardiacnets.datasets.splits import stratified_group_splits
from cardiacnets.errors import CardiacNetsError, DatasetError
from cardiacnets.io._units import millivolts_per_unit
from cardiacnets.record import LEADS, assemble_record, canonical_lead_name

logger = logging.getLogger(__name__)

#: What the converter assumes where the public documentation and code could not settle it without the data.
ASSUMPTIONS = (
    "Ext-ICD all_diag_all lists the ICD-10-CM codes of the stay the ECG belongs to; an empty list with a linked"
    " admission or ED stay (hosp_hadm_id / ed_stay_id) means no coded diagnosis, without one no linked stay.",
    "Without Ext-ICD, an ECG belongs to the admission with admittime <= ecg_time <= dischtime (the first such"
    " admission when several overlap).",
    "Age at the ECG is anchor_age + (ECG year - anchor_year), capped at 91 like MIMIC's own ages.",
    "Machine measurements 29999, 32767, -32768 and 65535 are sentinels for 'not measured'.",
)
_SOURCES = {
    "ext-icd": "MIMIC-IV-ECG-Ext-ICD all_diag_all labels",
    "hosp": "MIMIC-IV hosp diagnoses of the admission around ecg_time",
    "none": "no labels",
}


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

    ``conversion_report.json``/``.md`` beside the dataset says what was converted and assumed (:data:`ASSUMPTIONS`).
    """
    root = Path(root)
    # Tables first (labels, covariates), so the subject-level stratified split is known before any waveform is read.
    tables = read_tables(root, ext_icd=ext_icd, hosp_dir=hosp_dir, limit=limit)
    has_labels = tables.label_source != "none"
    strata = [tuple(row) for row in np.nan_to_num(tables.labels, nan=-1).astype(int).tolist()]
    splits = stratified_group_splits(tables.subjects, strata, seed=seed)
    spec = DatasetSpec(
        n_subjects=None,
        modalities=("ecg", "labels") if has_labels else ("ecg",),
        shard_size=shard_size,
        source={
            "kind": "mimic-iv-ecg",
            "description": f"MIMIC-IV-ECG v1.0 WFDB records with {_SOURCES[tables.label_source]}",
            "rows": "one row per ECG (study); subject_id column = p<subject_id>/s<study_id>",
            "split_rule": f"subject-level, stratified by the patient's label pattern, seed {seed}",
            "records": len(tables),
        },
        ecg_lsb_mv=0.005,  # MIMIC's own resolution (200 adu/mV): stored without loss
        extras={"machine_measurements": {"columns": list(MEASUREMENTS), "units": list(MEASUREMENT_UNITS)}},
    )
    items = ((tables.studies[k], lambda k=k: _convert_record(root, tables, k, int(splits[k])))
             for k in range(len(tables)))  # fmt: skip
    skipped: dict[str, int] = {}
    manifest = write_subjects(ShardWriter(out_dir, spec, overwrite=overwrite), items, len(tables), skipped,
                              shard_size, progress)  # fmt: skip
    write_report(out_dir, manifest, skipped, ASSUMPTIONS, title="MIMIC-IV-ECG conversion",
                 label_flags=Counter(f for f in tables.flags if f))  # fmt: skip
    return manifest


def _read_wfdb(base: Path) -> tuple[np.ndarray, float]:
    import wfdb

    try:
        record = wfdb.rdrecord(str(base))
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise DatasetError(f"cannot read WFDB record ({type(exc).__name__}: {exc})") from exc
    signal = np.asarray(record.p_signal, dtype=np.float64).T  # (channels, n)
    units = record.units or ["mV"] * len(record.sig_name)
    scale = [millivolts_per_unit(u or "mV") or 1.0 for u in units]  # MIMIC stores mV
    channels = {name: signal[k] * scale[k] for k, name in enumerate(record.sig_name)}
    rec = assemble_record(channels, float(record.fs), source_format="wfdb", path=None)
    out = rec.signal.copy()
    # assemble_record zero-fills non-finite samples; the dataset keeps them as NaN so QC can flag the record.
    for name, values in channels.items():
        lead = canonical_lead_name(name)
        if lead is not None and not np.all(np.isfinite(values)) and values.shape[-1] == out.shape[1]:
            out[LEADS.index(lead), ~np.isfinite(values)] = np.nan
    return out, rec.fs


def _convert_record(root: Path, tables: MimicTables, k: int, split: int) -> dict[str, Any]:
    """One ECG's dataset item. An unreadable record is kept, all NaN and flagged ``unreadable`` (module docstring)."""
    flags = [tables.flags[k]] if tables.flags[k] else []
    try:
        signal, fs = _read_wfdb(root / tables.paths[k])
        ecg, fit_flags = fit_ecg(signal, fs)
        flags += fit_flags + ecg_qc_flags(ecg, LEADS)
    except CardiacNetsError as exc:
        logger.warning("unreadable MIMIC record (kept, flagged): %s", type(exc).__name__)
        ecg = np.full((12, 5000), np.nan, dtype=np.float32)
        flags.append("unreadable")
    measured = tables.measurements[k]
    heart_rate = 60000.0 / measured[0] if measured[0] > 0 else math.nan
    covariates = np.asarray([tables.sex[k], tables.age[k], heart_rate], dtype=np.float32)
    return {
        "ecg": ecg,
        "labels": tables.labels[k],
        "cm_subtype": int(tables.subtypes[k]),
        "covariates": covariates,
        "covariate_mask": np.isfinite(covariates),
        "split": split,
        "x_machine_measurements": measured,
        "subject_id": f"p{tables.subjects[k]}/s{tables.studies[k]}",
        "qc_flags": ";".join(flags),
    }
