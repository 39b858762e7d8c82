"""UK Biobank -> the sharded dataset format (domain-notes section 5.2-5.3).

Inputs, in their UK Biobank layouts:

* resting ECG XML, field 20205 (GE CardioSoft, ``<eid>_20205_<instance>_0.xml``), read with
  :func:`cardiacnets.io.read_ecg`;
* CMR DICOM zips, fields 20208 (long axis) and 20209 (short axis), ``<eid>_2020{8,9}_<instance>_0.zip``, each with a
  ``manifest.csv`` (sometimes misspelt ``manifest.cvs``; dates may contain unquoted commas);
* one or more tabular CSVs, merged on the participant: the legacy download's names (``eid``, ``31-0.0``,
  ``21003-2.0``, ``53-2.0``, ``41270-0.k`` / ``41280-0.k``, ``24100-2.0`` ... ``24181-2.0``) or the Research Analysis
  Platform's (``eid`` / ``participant.eid``, ``p31``, ``p21003_i2``, ``p53_i2``, ``p41270`` as one array cell or
  ``p41270_a<k>``, ``p41280_a<k>``, ``p24100_i2`` ...), coded values as raw codes or as their meanings
  (:mod:`cardiacnets.converters.ukb_tabular`). Only the needed columns of the participants with an ECG file are kept.

Cines: the short-axis stack's slices are ordered along the slice normal and the middle one is taken as the
mid-ventricular slice (UK Biobank stacks cover the LV from base to apex); frames are sorted by ``TriggerTime``; the
image is resampled to 1.8 mm/px when its pixel spacing differs, and cropped 80 x 80 around the LV found by
:func:`lv_centre` (a heuristic: the round region whose brightness drops most in systole, near the image centre).
The 4-chamber series (``CINE_segmented_LAX_4Ch``, or the middle
third of a mixed ``CINE_segmented_LAX`` series, Bai's 3Ch/4Ch/2Ch order) is cropped 96 x 96 the same way. Intensities
are divided by the 99.5th percentile of the cropped cine and clipped to [0, 1]. A cine with a frame count other than 50
is linearly interpolated in time to 50 frames and flagged.

Labels (HES ICD-10, fields 41270 codes / 41280 dates, relative to the imaging date, field 53): a disease is
**prevalent** (label 1) when a code of its family was recorded on or before the imaging date plus ``window_days``
(default 0: on or before the imaging visit). Diagnoses after that are incident: label 0 by default
(``incident="negative"``: the subject had no recorded disease when imaged), or unknown (NaN) with
``incident="unknown"``. A code without a usable date (empty, or the UK Biobank placeholders 1900-01-01, 1901-01-01,
1902-02-02, 1903-03-03, 2037-07-07) makes its label unknown unless a dated code already makes it positive. A subject
without an imaging date gets unknown labels (flag ``no_imaging_date``).

Covariates: sex (field 31; 0 female, 1 male), age at imaging (21003), heart rate from the ECG file (its
``VentricularRate``), else field 12336.

A subject whose files cannot be read (an unreadable ECG, a zip without the expected series, DICOM pixel data that no
installed decoder can decode) is skipped with its reason and the run goes on; every run writes
``conversion_report.json`` and ``.md`` beside the dataset (:mod:`cardiacnets.converters.report`) with the counts, the
skips by reason, the labels known per disease, and the assumptions this converter makes that could not be checked
against the real data (:data:`ASSUMPTIONS`).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cardiacnets.converters._common import ecg_qc_flags, fit_ecg, to_float, write_subjects
from cardiacnets.converters.report import write_report
from cardiacnets.converters.ukb_tabular import UkbRow, describe_missing, parse_code, parse_date, parse_sex, read_needed
from cardiacnets.datasets.shards import SHAPES, DatasetSpec, ShardWriter
from cardiacnets.datasets.splits import stratified_group_splits
from cardiacnets.errors import DatasetError, InputError
from cardiacnets.labels import labels_from_icd
from cardiacnets.record import LEADS
from cardiacnets.targets import phenotypes

logger = logging.getLogger(__name__)

TARGET_SPACING_MM = 1.8
N_FRAMES = SHAPES["cine_sa"][0]


# --------------------------------------------------------------------------------------------------- tabular

#: Field ids the converter reads: sex, age at the visit, imaging date, ventricular rate, ICD-10 codes and dates.
SEX, AGE, IMAGING_DATE, VENTRICULAR_RATE, ICD10_CODES, ICD10_DATES = 31, 21003, 53, 12336, 41270, 41280
#: What the converter assumes where the public documentation and code could not settle it without the data.
ASSUMPTIONS = (
    "A mixed CINE_segmented_LAX series holds the 3-, 4- and 2-chamber views as three equal blocks in InstanceNumber"
    " order (ml4h's reading); the middle block is the 4-chamber view. (Bai's ukbb_cardiac sorts by file name.)",
    "When a slice has several series (repeated acquisitions), the one with the highest SeriesNumber is kept.",
    "Field 12336 (ventricular rate at the imaging visit) is the heart-rate covariate when the ECG file has none.",
    "The 82 imaging phenotypes are fields 24100-24181 in order (reference/phenotypes_82.csv).",
    "Dates 1900-01-01, 1901-01-01, 1902-02-02, 1903-03-03 and 2037-07-07 are UK Biobank placeholders, not events.",
    "ICD-10 field 41270 item k is dated by field 41280 item k.",
)


def ukb_labels(
    row: UkbRow, *, instance: int = 2, window_days: int = 0, incident: str = "negative"
) -> tuple[np.ndarray, int, list[str]]:
    """Prevalent-disease labels of one subject (module docstring): ``(labels (5,) float32, NaN unknown; subtype;
    flags)``."""
    if incident not in ("negative", "unknown"):
        raise InputError(f"incident must be 'negative' or 'unknown', got {incident!r}")
    imaging = parse_date(row.get(IMAGING_DATE))
    if imaging is None:
        return np.full(5, np.nan, dtype=np.float32), -1, ["no_imaging_date"]
    cutoff = imaging + timedelta(days=window_days)
    prevalent: list[str] = []
    later: list[str] = []
    undated: list[str] = []
    dates = row.array(ICD10_DATES)
    for k, cell in row.array(ICD10_CODES).items():
        code = parse_code(cell)
        if code is None:
            continue
        when = parse_date(dates.get(k))
        if when is None:
            undated.append(code)
        elif when <= cutoff:
            prevalent.append(code)
        else:
            later.append(code)
    labels_int, subtype = labels_from_icd(prevalent, 10)
    labels = labels_int.astype(np.float32)
    unknown_sources = undated + (later if incident == "unknown" else [])
    if unknown_sources:
        unsure, _ = labels_from_icd(unknown_sources, 10)
        labels[(unsure == 1) & (labels_int == 0)] = np.nan
    return labels, subtype, []


# --------------------------------------------------------------------------------------------------- DICOM cines


def _read_zip_manifest(zf: zipfile.ZipFile, where: str) -> dict[str, str]:
    """File name -> series description from ``manifest.csv`` / ``manifest.cvs`` (commas in dates tolerated)."""
    name = next((n for n in zf.namelist() if Path(n).name.lower() in ("manifest.csv", "manifest.cvs")), None)
    if name is None:
        return {}
    lines = zf.read(name).decode("utf-8", errors="replace").splitlines()
    rows = list(csv.reader(lines))
    if not rows:
        return {}
    header = [h.strip().lower() for h in rows[0]]
    column = next((k for k, h in enumerate(header) if h in ("series discription", "series description")), None)
    if column is None:
        logger.warning("%s: manifest has no series description column", where)
        return {}
    from_end = len(header) - column  # extra commas (in dates) sit before this column: count it from the end
    out = {}
    for fields in rows[1:]:
        if len(fields) < len(header):
            continue
        out[fields[0].strip()] = fields[len(fields) - from_end].strip()
    return out


def _load_dicoms(path: Path) -> list[Any]:
    import pydicom

    datasets = []
    try:
        with zipfile.ZipFile(path) as zf:
            described = _read_zip_manifest(zf, path.name)
            for info in zf.infolist():
                base = Path(info.filename).name
                if info.is_dir() or base.lower() in ("manifest.csv", "manifest.cvs"):
                    continue
                try:
                    ds = pydicom.dcmread(io.BytesIO(zf.read(info)), force=False)
                except Exception as exc:  # noqa: BLE001 - pydicom raises many types; not a DICOM -> skip the member
                    logger.debug("%s: %s is not DICOM (%s)", path.name, base, type(exc).__name__)
                    continue
                ds.cns_series = str(getattr(ds, "SeriesDescription", "") or described.get(base, "")).strip()
                datasets.append(ds)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path}: unreadable zip ({exc})") from exc
    if not datasets:
        raise DatasetError(f"{path}: no DICOM image in the zip")
    return datasets


def _keep_last_series(files: list[Any]) -> list[Any]:
    """When a folder holds several SeriesInstanceUIDs (repeated acquisitions), keep the one with the highest
    SeriesNumber (an assumption, :data:`ASSUMPTIONS`; Bai's ukbb_cardiac sorts by SeriesInstanceUID)."""
    uids: dict[str, int] = {}
    for ds in files:
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        uids[uid] = max(uids.get(uid, -1), int(getattr(ds, "SeriesNumber", 0) or 0))
    if len(uids) <= 1:
        return files
    last = max(uids, key=lambda u: (uids[u], list(uids).index(u)))
    return [ds for ds in files if str(getattr(ds, "SeriesInstanceUID", "")) == last]


class UndecodablePixelsError(DatasetError):
    """A DICOM image's pixel data is compressed in a transfer syntax no installed decoder handles."""


def _cine_from_frames(files: list[Any], what: str, flags: list[str]) -> tuple[np.ndarray, float]:
    """Frames sorted by TriggerTime -> ``(T, H, W)`` float64 and the pixel spacing (mm)."""
    files = sorted(files, key=lambda ds: (float(getattr(ds, "TriggerTime", 0.0) or 0.0), int(ds.InstanceNumber or 0)))
    try:
        frames = [
            ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1)
            + float(getattr(ds, "RescaleIntercept", 0) or 0)
            for ds in files
        ]
        cine = np.stack(frames)
    except (ValueError, AttributeError) as exc:
        raise DatasetError(f"{what}: frames have no readable pixels or different sizes ({exc})") from exc
    except (RuntimeError, NotImplementedError, ImportError) as exc:  # pydicom: no decoder for this transfer syntax
        syntax = getattr(getattr(files[0], "file_meta", None), "TransferSyntaxUID", "unknown")
        raise UndecodablePixelsError(
            f"{what}: pixel data in transfer syntax {syntax} cannot be decoded here ({type(exc).__name__}); install"
            " the DICOM decoders: pip install 'cardiacnets[dicom]'"
        ) from exc
    spacing = [float(v) for v in getattr(files[0], "PixelSpacing", [TARGET_SPACING_MM, TARGET_SPACING_MM])]
    if len(cine) != N_FRAMES:
        flags.append(f"{what}_frames_{len(cine)}")
        positions = np.linspace(0, len(cine) - 1, N_FRAMES)
        low = np.floor(positions).astype(int)
        high = np.minimum(low + 1, len(cine) - 1)
        frac = (positions - low)[:, None, None]
        cine = cine[low] * (1 - frac) + cine[high] * frac
    if abs(spacing[0] - TARGET_SPACING_MM) > 0.02 * TARGET_SPACING_MM or abs(spacing[1] - spacing[0]) > 1e-3:
        cine = ndimage.zoom(cine, (1, spacing[0] / TARGET_SPACING_MM, spacing[1] / TARGET_SPACING_MM), order=1)
    return cine, spacing[0]


def _systolic_change(cine: np.ndarray) -> np.ndarray:
    """Smoothed ``max(0, ED - ES)`` of a ``(T, H, W)`` cine, ES being the frame that differs most from frame 0: the
    blood pools that shrink in systole (bright in bSSFP) light up."""
    change = np.abs(cine - cine[0]).reshape(len(cine), -1).sum(axis=1)
    es = int(np.argmax(change))
    return ndimage.gaussian_filter(np.clip(cine[0] - cine[es], 0.0, None), sigma=2.0)


def lv_centre(cine: np.ndarray) -> tuple[int, int]:
    """Row and column of the LV in a short-axis ``(T, H, W)`` cine.

    Among the regions whose intensity drops most from ED to ES, take the one that scores highest on systolic change x
    roundness^2 x a Gaussian prior towards the image centre (UK Biobank SAX images are planned on the LV): the LV cavity
    is round, the RV a crescent. On simulated subjects this lands within 3 px of the true LV centre for about 9 in 10
    (misses are low-motion hearts, e.g. DCM, where the RV can win); a segmentation network would do better.
    """
    diff = _systolic_change(cine)
    if not diff.max() > 0:
        return cine.shape[1] // 2, cine.shape[2] // 2
    lab, n = ndimage.label(ndimage.binary_fill_holes(diff >= 0.5 * diff.max()))
    h, w = diff.shape
    best, best_score = 1, -1.0
    for j in range(1, n + 1):
        region = lab == j
        r, c = ndimage.center_of_mass(diff * region)
        rows, cols = np.nonzero(region)
        radius = float(np.hypot(rows - r, cols - c).max()) + 0.5
        roundness = region.sum() / (np.pi * radius**2)
        prior = np.exp(-((np.hypot(r - h / 2, c - w / 2) / (0.25 * max(h, w))) ** 2))
        score = float(diff[region].sum()) * roundness**2 * prior
        if score > best_score:
            best, best_score = j, score
    r, c = ndimage.center_of_mass(diff * (lab == best))
    return int(round(r)), int(round(c))


def heart_centre(cine: np.ndarray) -> tuple[int, int]:
    """Row and column of the heart in a long-axis ``(T, H, W)`` cine: centroid of the systolic change of all four
    chambers (pixels above 30 % of the largest change)."""
    diff = _systolic_change(cine)
    if not diff.max() > 0:
        return cine.shape[1] // 2, cine.shape[2] // 2
    r, c = ndimage.center_of_mass(diff * (diff >= 0.3 * diff.max()))
    return int(round(r)), int(round(c))


def crop_and_scale(cine: np.ndarray, size: int, centre: tuple[int, int]) -> np.ndarray:
    """Crop ``(T, H, W)`` to ``(T, size, size)`` around ``centre`` (zero-padded at borders); scale to [0, 1] by the
    99.5th percentile."""
    r, c = centre
    half = size // 2
    padded = np.pad(cine, ((0, 0), (half, half), (half, half)))
    crop = padded[:, r : r + size, c : c + size]
    high = float(np.percentile(crop, 99.5))
    if not high > 0:
        return np.zeros_like(crop, dtype=np.float32)
    return np.clip(crop / high, 0.0, 1.0).astype(np.float32)


def _slice_key(ds: Any) -> float:
    """Position of a slice along its normal (mm)."""
    orientation = np.asarray([float(v) for v in getattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
    normal = np.cross(orientation[:3], orientation[3:])
    position = np.asarray([float(v) for v in getattr(ds, "ImagePositionPatient", [0, 0, 0])])
    return float(position @ normal)


def short_axis_cine(path: Path, flags: list[str]) -> np.ndarray:
    """Mid-ventricular short-axis cine ``(50, 80, 80)`` in [0, 1] from a field-20209 zip."""
    files = _load_dicoms(path)
    slices: dict[Any, list[Any]] = {}
    for ds in files:
        match = re.fullmatch(r"CINE_segmented_SAX_b(\d+)", ds.cns_series, flags=re.IGNORECASE)
        if match:
            slices.setdefault(("b", int(match.group(1))), []).append(ds)
        elif ds.cns_series.upper() == "CINE_SEGMENTED_SAX":  # one mixed series: split by slice position
            slices.setdefault(("pos", round(_slice_key(ds), 1)), []).append(ds)
    if not slices:
        raise DatasetError(f"{path}: no CINE_segmented_SAX series")
    stack = [_keep_last_series(group) for group in slices.values()]
    stack.sort(key=lambda group: _slice_key(group[0]))
    middle = stack[(len(stack) - 1) // 2]
    cine, _ = _cine_from_frames(middle, "sax", flags)
    return crop_and_scale(cine, SHAPES["cine_sa"][1], lv_centre(cine))


def four_chamber_cine(path: Path, flags: list[str]) -> np.ndarray:
    """4-chamber cine ``(50, 96, 96)`` in [0, 1] from a field-20208 zip."""
    files = _load_dicoms(path)
    four = [ds for ds in files if ds.cns_series.upper() == "CINE_SEGMENTED_LAX_4CH"]
    if not four:
        mixed = [ds for ds in files if ds.cns_series.upper() == "CINE_SEGMENTED_LAX"]
        if len(mixed) >= 3 and len(mixed) % 3 == 0:
            mixed.sort(key=lambda ds: int(getattr(ds, "InstanceNumber", 0) or 0))
            t = len(mixed) // 3
            four = mixed[t : 2 * t]  # 3Ch, 4Ch, 2Ch blocks in InstanceNumber order (ASSUMPTIONS)
            flags.append("lax_mixed_series")
    if not four:
        raise DatasetError(f"{path}: no CINE_segmented_LAX_4Ch series")
    cine, _ = _cine_from_frames(_keep_last_series(four), "lax", flags)
    return crop_and_scale(cine, SHAPES["cine_la"][1], heart_centre(cine))


# --------------------------------------------------------------------------------------------------- conversion


def _find_files(directory: Path | None, field: int, instance: int, suffix: str) -> dict[str, Path]:
    if directory is None:
        return {}
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such directory")
    pattern = re.compile(rf"(\d+)_{field}_{instance}_0\.{suffix}$")
    found = {}
    for path in directory.rglob(f"*_{field}_{instance}_0.{suffix}"):
        match = pattern.fullmatch(path.name)
        if match:
            found[match.group(1)] = path
    return found


def convert_ukb(
    out_dir: str | os.PathLike[str],
    *,
    ecg_dir: str | os.PathLike[str],
    tabular: Sequence[str | os.PathLike[str]],
    cmr_dir: str | os.PathLike[str] | None = None,
    instance: int = 2,
    window_days: int = 0,
    incident: str = "negative",
    shard_size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Convert UK Biobank files to a dataset at ``out_dir`` and return its manifest.

    Subjects are the participants with an ECG file (and, with ``cmr_dir``, both CMR zips) and a tabular row; only
    their needed columns are read from the tabular files (streamed). Subjects whose files cannot be read are skipped
    and counted in ``manifest["source"]["skipped"]`` by reason; ``conversion_report.json``/``.md`` beside the
    dataset says what was converted, skipped and assumed. The 70/10/20 split is stratified by the label pattern.
    ``progress(done, total)`` is called after each subject.
    """
    if not tabular:
        raise InputError("at least one tabular CSV (UK Biobank legacy or Research Analysis Platform export) is needed")
    ecg_files = _find_files(Path(ecg_dir), 20205, instance, "xml")
    lax_files = _find_files(Path(cmr_dir) if cmr_dir else None, 20208, instance, "zip")
    sax_files = _find_files(Path(cmr_dir) if cmr_dir else None, 20209, instance, "zip")
    if not ecg_files:
        raise DatasetError(f"{ecg_dir}: no ECG file <eid>_20205_{instance}_0.xml")
    fields = [p.ukb_field for p in phenotypes()]
    needed = [SEX, AGE, IMAGING_DATE, VENTRICULAR_RATE, ICD10_CODES, ICD10_DATES, *fields]
    rows, found = read_needed(tabular, needed, instance, set(ecg_files))
    missing = describe_missing(found, {"sex (31)": [SEX], "age (21003)": [AGE], "imaging date (53)": [IMAGING_DATE],
                                       "diagnoses (41270)": [ICD10_CODES], "phenotypes (24100-24181)": fields},
                               tabular)  # fmt: skip
    if missing:
        raise DatasetError(missing)
    skipped: dict[str, int] = {}
    candidates = []
    for eid in sorted(ecg_files, key=lambda e: (len(e), e)):
        if eid not in rows:
            skipped["no_tabular_row"] = skipped.get("no_tabular_row", 0) + 1
        elif cmr_dir and (eid not in lax_files or eid not in sax_files):
            skipped["no_cmr_zip"] = skipped.get("no_cmr_zip", 0) + 1
        else:
            candidates.append(eid)
    if not candidates:
        raise DatasetError(f"no participant with an ECG file in {ecg_dir} has a row in the tabular data")
    labels = {eid: ukb_labels(rows[eid], instance=instance, window_days=window_days, incident=incident)
              for eid in candidates}  # fmt: skip
    strata = [tuple(np.nan_to_num(labels[e][0], nan=-1).astype(int).tolist()) for e in candidates]
    splits = dict(zip(candidates, stratified_group_splits(candidates, strata, seed=seed).tolist(), strict=True))
    source = {
        "kind": "ukbiobank",
        "description": "UK Biobank: ECG 20205, CMR 20208/20209, IDPs 24100-24181, HES ICD-10 41270/41280",
        "instance": instance,
        "label_rule": f"prevalent: ICD-10 code dated on or before imaging date (53) + {window_days} days; "
        f"later diagnoses: {'0' if incident == 'negative' else 'unknown'}; undated codes: unknown",
        "split_rule": f"stratified by label pattern, seed {seed}",
        "candidates": len(candidates),
        "columns_found": {str(k): v for k, v in found.items()},
    }
    modalities = ("ecg", "cine_sa", "cine_la", "phenotypes", "labels") if cmr_dir else ("ecg", "phenotypes", "labels")
    spec = DatasetSpec(n_subjects=None, modalities=modalities, shard_size=shard_size, source=source)
    convert = functools.partial(_convert_subject, fields=fields)
    items = ((eid, lambda eid=eid: convert(eid, rows[eid], labels[eid], splits[eid], ecg_files[eid],
                                            sax_files.get(eid), lax_files.get(eid))) for eid in candidates)  # fmt: skip
    manifest = write_subjects(ShardWriter(out_dir, spec, overwrite=overwrite), items, len(candidates), skipped,
                              shard_size, progress)  # fmt: skip
    label_flags = Counter(flag for eid in candidates for flag in labels[eid][2])
    write_report(out_dir, manifest, skipped, ASSUMPTIONS, title="UK Biobank conversion", label_flags=label_flags)
    return manifest


def _convert_subject(
    eid: str,
    row: UkbRow,
    label_info: tuple[np.ndarray, int, list[str]],
    split: int,
    ecg_path: Path,
    sax_path: Path | None,
    lax_path: Path | None,
    *,
    fields: list[int],
) -> dict[str, Any]:
    from cardiacnets.io import read_ecg

    labels, subtype, flags = label_info
    flags = list(flags)
    record = read_ecg(ecg_path)
    ecg, fit_flags = fit_ecg(record.signal, record.fs)
    flags += fit_flags + ecg_qc_flags(ecg, LEADS)
    heart_rate = to_float(str(record.meta.get("heart_rate") or ""))
    if not math.isfinite(heart_rate):
        heart_rate = to_float(row.get(VENTRICULAR_RATE))
    item: dict[str, Any] = {
        "ecg": ecg,
        "phenotypes": np.asarray([to_float(row.get(f)) for f in fields], dtype=np.float32),
        "labels": labels,
        "cm_subtype": subtype,
        "covariates": np.asarray([parse_sex(row.get(SEX)), to_float(row.get(AGE)), heart_rate], dtype=np.float32),
        "split": split,
        "subject_id": eid,
    }
    item["covariate_mask"] = np.isfinite(item["covariates"])
    if sax_path is not None and lax_path is not None:
        item["cine_sa"] = short_axis_cine(sax_path, flags)
        item["cine_la"] = four_chamber_cine(lax_path, flags)
    item["qc_flags"] = ";".join(flags)
    return item
