"""The sharded on-disk dataset format (``docs/dataset-format.md``): writer and map-style reader.

A dataset directory holds ``manifest.json`` and ``shards/shard-NNNNN.npz``. Each shard is a compressed ``.npz`` (read
with ``allow_pickle=False``) of up to ``shard_size`` subjects: per-subject members for the large arrays (``ecg_0000``,
``cine_sa_0000``, ``cine_la_0000``, so one item decompresses only its own arrays) and one array per shard for the small
tabular fields (phenotypes, labels, subtype, covariates and mask, split, subject ids, QC flags, extra tables).

Storage dtypes: ECG int16 counts times ``ecg.lsb_mv`` (-32768 encodes NaN) or float32; cines uint8 = round(x * 255);
labels int8 with -1 for unknown. Decoded items follow the training contract: ``ecg`` ``(12, 5000)`` float32 mV,
``cine_sa`` ``(50, 80, 80)`` and ``cine_la`` ``(50, 96, 96)`` float32 in [0, 1], ``phenotypes`` ``(82,)`` float32 (NaN
missing), ``labels`` ``(5,)`` float32 (NaN unknown), ``cm_subtype`` int64 (-1 none/unknown), ``covariates`` ``(3,)``
float32 (sex, age, heart_rate), ``covariate_mask`` ``(3,)`` float32, ``index`` int64 (row in the whole dataset).

Writes are atomic (temporary file, then rename) and resumable: the manifest lists the shards written so far with their
sha256 and says ``"complete": false`` until :meth:`ShardWriter.finalize`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.datasets.splits import SPLITS
from cardiacnets.errors import DatasetError, InputError
from cardiacnets.files import atomic_write_bytes, sha256_file
from cardiacnets.labels import CM_SUBTYPE_NAMES, LABEL_NAMES
from cardiacnets.record import LEADS
from cardiacnets.targets import COVARIATES, phenotypes

try:  # the datasets are torch datasets when torch is installed (the training extra); the format itself needs numpy only
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - screening installs have no torch
    _TorchDataset = object  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)

FORMAT_NAME = "cardiacnets-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
#: Modalities a dataset may hold. ``labels`` covers ``labels`` and ``cm_subtype``.
MODALITIES: tuple[str, ...] = ("ecg", "cine_sa", "cine_la", "phenotypes", "labels")
#: Per-subject shapes of the decoded arrays.
SHAPES: dict[str, tuple[int, ...]] = {
    "ecg": (12, 5000),
    "cine_sa": (50, 80, 80),
    "cine_la": (50, 96, 96),
    "phenotypes": (82,),
    "labels": (len(LABEL_NAMES),),
    "covariates": (len(COVARIATES),),
}
ECG_FS = 500.0
_ECG_NAN = np.iinfo(np.int16).min  # -32768 marks a NaN sample
_ECG_MAX = np.iinfo(np.int16).max
_PER_SUBJECT = ("ecg", "cine_sa", "cine_la")


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


# --------------------------------------------------------------------------------------------------- encoding


def encode_ecg(ecg: np.ndarray, lsb_mv: float) -> tuple[np.ndarray, bool]:
    """mV float ``(12, n)`` -> int16 counts of ``lsb_mv``; NaN -> -32768. Returns ``(counts, clipped)``."""
    scaled = np.asarray(ecg, dtype=np.float64) / lsb_mv
    nan = ~np.isfinite(scaled)
    rounded = np.rint(np.where(nan, 0.0, scaled))
    clipped = bool(np.any(np.abs(rounded) > _ECG_MAX))
    counts = np.clip(rounded, -_ECG_MAX, _ECG_MAX).astype(np.int16)
    counts[nan] = _ECG_NAN
    return counts, clipped


def decode_ecg(counts: np.ndarray, lsb_mv: float) -> np.ndarray:
    """int16 counts -> float32 mV, -32768 -> NaN."""
    out = counts.astype(np.float32) * np.float32(lsb_mv)
    out[counts == _ECG_NAN] = np.nan
    return out


def encode_cine(cine: np.ndarray) -> np.ndarray:
    """[0, 1] float ``(T, H, W)`` -> uint8 round(x * 255); NaN -> 0, values outside [0, 1] clipped."""
    x = np.nan_to_num(np.asarray(cine, dtype=np.float32), nan=0.0)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def decode_cine(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float32) * np.float32(1.0 / 255.0)


# --------------------------------------------------------------------------------------------------- writer


@dataclass
class DatasetSpec:
    """What a dataset will hold; fixed when writing starts (a resumed write must use the same spec).

    Attributes:
        n_subjects: total number of subjects the writer will receive, or ``None`` when it is known only at the end
            (converters that skip unreadable subjects); then every shard but the last must be full.
        modalities: subset of :data:`MODALITIES`.
        source: free description; ``kind`` is ``"synthetic"``, ``"ukbiobank"`` or ``"mimic-iv-ecg"``.
        shard_size: subjects per shard.
        ecg_encoding: ``"int16"`` (counts of ``ecg_lsb_mv``) or ``"float32"``.
        ecg_lsb_mv: mV per count for int16 ECG (1 uV by default: range +-32.7 mV, error <= 0.5 uV).
        extras: extra per-subject tables ``name -> {"columns": [...], "units": [...]}`` stored as float32 ``(n, k)``.
    """

    n_subjects: int | None
    modalities: tuple[str, ...]
    source: dict[str, Any]
    shard_size: int = 256
    ecg_encoding: str = "int16"
    ecg_lsb_mv: float = 0.001
    extras: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modalities = tuple(m for m in MODALITIES if m in self.modalities)
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise InputError(f"unknown modalities {sorted(unknown)}; known: {list(MODALITIES)}")
        if self.n_subjects is not None and self.n_subjects < 1:
            raise InputError(f"n_subjects must be at least 1, got {self.n_subjects}")
        if self.shard_size < 1:
            raise InputError(f"shard_size must be at least 1, got {self.shard_size}")
        if self.ecg_encoding not in ("int16", "float32"):
            raise InputError(f"ecg_encoding must be 'int16' or 'float32', got {self.ecg_encoding!r}")
        if not self.ecg_lsb_mv > 0:
            raise InputError(f"ecg_lsb_mv must be positive, got {self.ecg_lsb_mv}")

    def header(self) -> dict[str, Any]:
        """The manifest fields fixed by the spec (compared on resume)."""
        pheno = phenotypes()
        arrays: dict[str, Any] = {}
        if "ecg" in self.modalities:
            arrays["ecg"] = {
                "shape": list(SHAPES["ecg"]),
                "dtype": "float32",
                "units": "mV",
                "stored_as": self.ecg_encoding,
                "lsb_mv": self.ecg_lsb_mv if self.ecg_encoding == "int16" else None,
                "nan_code": int(_ECG_NAN) if self.ecg_encoding == "int16" else None,
                "fs_hz": ECG_FS,
                "leads": list(LEADS),
            }
        for name in ("cine_sa", "cine_la"):
            if name in self.modalities:
                arrays[name] = {
                    "shape": list(SHAPES[name]),
                    "dtype": "float32",
                    "range": [0, 1],
                    "stored_as": "uint8",
                    "scale": "stored / 255",
                    "frame_0": "end diastole",
                }
        if "phenotypes" in self.modalities:
            arrays["phenotypes"] = {"shape": [82], "dtype": "float32", "stored_as": "float32", "missing": "NaN"}
        if "labels" in self.modalities:
            arrays["labels"] = {
                "shape": [len(LABEL_NAMES)],
                "dtype": "float32",
                "stored_as": "int8",
                "unknown": "stored -1, decoded NaN",
            }
            arrays["cm_subtype"] = {"shape": [], "dtype": "int64", "stored_as": "int8", "none": -1}
        arrays["covariates"] = {"shape": [len(COVARIATES)], "dtype": "float32", "stored_as": "float32"}
        arrays["covariate_mask"] = {"shape": [len(COVARIATES)], "dtype": "float32", "stored_as": "uint8"}
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "n_subjects": self.n_subjects,
            "shard_size": self.shard_size,
            "modalities": list(self.modalities),
            "arrays": arrays,
            "phenotype_names": [p.short for p in pheno] if "phenotypes" in self.modalities else [],
            "phenotype_units": [p.unit for p in pheno] if "phenotypes" in self.modalities else [],
            "phenotype_ukb_fields": [p.ukb_field for p in pheno] if "phenotypes" in self.modalities else [],
            "label_names": list(LABEL_NAMES),
            "cm_subtype_names": list(CM_SUBTYPE_NAMES),
            "covariate_names": list(COVARIATES),
            "covariate_units": ["0 female / 1 male", "years", "bpm"],
            "split_names": list(SPLITS),
            "extras": self.extras,
            "source": self.source,
        }


class ShardWriter:
    """Append subjects shard by shard into a dataset directory.

    Usage: ``w = ShardWriter(out, spec)``; ``for batch in ...: w.write_shard(batch)`` starting at subject
    ``w.n_written`` (non-zero after a resume); ``w.finalize()``.

    ``batch`` is a dict of numpy arrays with a leading subject axis ``b`` (the shard size, or the remainder for the last
    shard): ``ecg`` ``(b, 12, 5000)`` mV, ``cine_sa`` ``(b, 50, 80, 80)`` / ``cine_la`` ``(b, 50, 96, 96)`` in [0, 1],
    ``phenotypes`` ``(b, 82)``, ``labels`` ``(b, 5)`` (1/0, NaN or -1 unknown), ``cm_subtype`` ``(b,)``,
    ``covariates`` ``(b, 3)`` (NaN missing), ``covariate_mask`` ``(b, 3)`` (default: finite covariates), ``split``
    ``(b,)`` (0/1/2), ``subject_id`` ``(b,)`` text, optional ``qc_flags`` ``(b,)`` text (";"-separated) and one
    ``(b, k)`` array per declared extra table.
    """

    def __init__(self, out_dir: str | os.PathLike[str], spec: DatasetSpec, *, overwrite: bool = False) -> None:
        self.root = Path(out_dir)
        self.spec = spec
        self.header = spec.header()
        self.shards: list[dict[str, Any]] = []
        manifest_path = self.root / MANIFEST_NAME
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root}: exists and is not a directory")
        if manifest_path.exists() and not overwrite:
            self._resume(manifest_path)
        elif self.root.exists() and any(self.root.iterdir()) and not overwrite:
            raise DatasetError(f"{self.root}: directory is not empty and holds no dataset manifest; choose another")
        elif overwrite and manifest_path.exists():
            for old in (self.root / SHARD_DIR).glob("shard-*.npz*"):
                old.unlink()
            manifest_path.unlink()
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (self.root / SHARD_DIR).glob("*.tmp"):
            stale.unlink()  # an interrupted write leaves only temporary files behind

    def _resume(self, manifest_path: Path) -> None:
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{manifest_path}: unreadable manifest ({exc}); pass overwrite to start again") from exc
        if old.get("complete"):
            raise DatasetError(f"{self.root}: already holds a complete dataset; pass overwrite to replace it")
        for key, value in self.header.items():
            if json.loads(json.dumps(value)) != old.get(key):
                raise DatasetError(
                    f"{self.root}: cannot resume, the interrupted write had a different {key!r}; "
                    "use the same options or overwrite"
                )
        kept: list[dict[str, Any]] = []
        for entry in old.get("shards", []):
            path = self.root / entry["file"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                logger.warning("resume: shard %s is missing or damaged; rewriting from there", entry["file"])
                break
            kept.append(entry)
        self.shards = kept
        for path in (self.root / SHARD_DIR).glob("shard-*.npz"):
            if path.name not in {Path(e["file"]).name for e in kept}:
                path.unlink()
        logger.info("resuming %s after %d subjects", self.root, self.n_written)

    @property
    def n_written(self) -> int:
        return sum(int(e["n"]) for e in self.shards)

    @property
    def complete(self) -> bool:
        return self.spec.n_subjects is not None and self.n_written >= self.spec.n_subjects

    @property
    def cursor(self) -> Any:
        """The ``cursor`` passed with the last shard written (a converter's position in its input), or ``None``."""
        return self.shards[-1].get("cursor") if self.shards else None

    def write_shard(self, batch: Mapping[str, np.ndarray], *, cursor: Any = None) -> None:
        """Encode and write the next shard, then record it (and ``cursor``, JSON-serialisable) in the manifest."""
        start = self.n_written
        b = len(batch["subject_id"])
        if self.spec.n_subjects is None:
            if self.shards and int(self.shards[-1]["n"]) != self.spec.shard_size:
                raise InputError("only the last shard may be shorter than shard_size")
            if not 1 <= b <= self.spec.shard_size:
                raise InputError(f"a shard holds 1 to {self.spec.shard_size} subjects, got {b}")
        else:
            expected = min(self.spec.shard_size, self.spec.n_subjects - start)
            if b != expected:
                raise InputError(f"shard at subject {start} must hold {expected} subjects, got {b}")
        members = self._encode(batch, b)
        name = f"shard-{len(self.shards):05d}.npz"
        path = self.root / SHARD_DIR / name
        tmp = path.with_name(name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **members)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        entry = {"file": f"{SHARD_DIR}/{name}", "start": start, "n": b, "sha256": sha256_file(path)}
        if cursor is not None:
            entry["cursor"] = cursor
        self.shards.append(entry)
        self._write_manifest(complete=False)

    def _encode(self, batch: Mapping[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
        spec = self.spec
        members: dict[str, np.ndarray] = {}
        qc = [str(x) for x in batch.get("qc_flags", [""] * b)]
        if "ecg" in spec.modalities:
            ecg = self._checked(batch, "ecg", b)
            for j in range(b):
                if spec.ecg_encoding == "int16":
                    counts, clipped = encode_ecg(ecg[j], spec.ecg_lsb_mv)
                    if clipped:
                        qc[j] = _add_flag(qc[j], "ecg_clipped")
                    members[f"ecg_{j:04d}"] = counts
                else:
                    members[f"ecg_{j:04d}"] = ecg[j].astype(np.float32)
        for name in ("cine_sa", "cine_la"):
            if name in spec.modalities:
                cine = self._checked(batch, name, b)
                for j in range(b):
                    members[f"{name}_{j:04d}"] = encode_cine(cine[j])
        if "phenotypes" in spec.modalities:
            members["phenotypes"] = self._checked(batch, "phenotypes", b).astype(np.float32)
        if "labels" in spec.modalities:
            labels = self._checked(batch, "labels", b).astype(np.float32)
            members["labels"] = np.where(np.isfinite(labels) & (labels >= 0), labels, -1).astype(np.int8)
            members["cm_subtype"] = np.asarray(batch["cm_subtype"], dtype=np.int8).reshape(b)
        covariates = self._checked(batch, "covariates", b).astype(np.float32)
        mask = batch.get("covariate_mask")
        mask = np.isfinite(covariates) if mask is None else np.asarray(mask).reshape(b, -1) > 0
        members["covariates"] = np.where(mask, covariates, np.nan).astype(np.float32)
        members["covariate_mask"] = mask.astype(np.uint8)
        split = np.asarray(batch["split"], dtype=np.int64).reshape(b)
        if np.any((split < 0) | (split > 2)):
            raise InputError("split values must be 0 (train), 1 (val) or 2 (test)")
        members["split"] = split.astype(np.uint8)
        members["subject_id"] = np.asarray([str(s) for s in batch["subject_id"]], dtype=np.str_)
        members["qc_flags"] = np.asarray(qc, dtype=np.str_)
        for name, info in spec.extras.items():
            values = np.asarray(batch[f"x_{name}"], dtype=np.float32)
            if values.shape != (b, len(info["columns"])):
                raise InputError(
                    f"extra table {name!r} must have shape {(b, len(info['columns']))}, got {values.shape}"
                )
            members[f"x_{name}"] = values
        return members

    @staticmethod
    def _checked(batch: Mapping[str, np.ndarray], name: str, b: int) -> np.ndarray:
        if name not in batch:
            raise InputError(f"batch lacks {name!r}")
        values = np.asarray(batch[name])
        want = (b, *SHAPES[name])
        if values.shape != want:
            raise InputError(f"{name} must have shape {want}, got {values.shape}")
        return values

    def _split_counts(self) -> dict[str, int]:
        counts = np.zeros(3, dtype=np.int64)
        for entry in self.shards:
            with np.load(self.root / entry["file"], allow_pickle=False) as npz:
                counts += np.bincount(npz["split"], minlength=3)[:3]
        return {name: int(c) for name, c in zip(SPLITS, counts, strict=True)}

    def _write_manifest(self, *, complete: bool) -> None:
        manifest = dict(self.header)
        if complete:
            manifest["n_subjects"] = self.n_written
        manifest["complete"] = complete
        manifest["n_written"] = self.n_written
        if complete:
            manifest["split_counts"] = self._split_counts()
        manifest["created_unix"] = int(time.time())
        manifest["shards"] = self.shards
        _write_json(self.root / MANIFEST_NAME, manifest)

    def finalize(self) -> dict[str, Any]:
        """Mark the dataset complete (all ``n_subjects`` written) and return its manifest."""
        if self.spec.n_subjects is None and self.n_written == 0:
            raise DatasetError(f"{self.root}: no subject was written")
        if self.spec.n_subjects is not None and not self.complete:
            raise DatasetError(f"{self.root}: only {self.n_written} of {self.spec.n_subjects} subjects written")
        self._write_manifest(complete=True)
        return json.loads((self.root / MANIFEST_NAME).read_text())


def _add_flag(flags: str, flag: str) -> str:
    return f"{flags};{flag}" if flags else flag


# --------------------------------------------------------------------------------------------------- reader


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check ``manifest.json`` (format, version, completeness, shard list)."""
    root = Path(root)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if not path.is_file():
        raise DatasetError(f"{root}: not a dataset (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {version!r} is not supported (this toolkit reads {FORMAT_VERSION})"
        )
    if not manifest.get("complete"):
        raise DatasetError(f"{root}: the dataset write was interrupted (complete=false); rerun the same command")
    try:
        total = sum(int(e["n"]) for e in manifest["shards"])
        unknown = set(manifest["modalities"]) - set(MODALITIES)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: malformed shard list or modalities ({exc})") from exc
    if total != manifest.get("n_subjects"):
        raise DatasetError(f"{path}: shards hold {total} subjects, manifest says {manifest.get('n_subjects')}")
    if unknown:
        raise DatasetError(f"{path}: unknown modalities {sorted(unknown)}")
    return manifest


class ShardedDataset(_TorchDataset):
    """Map-style ``torch.utils.data.Dataset`` over a dataset directory.

    Args:
        root: dataset directory.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        n_subjects: use only the first ``n_subjects`` rows of the dataset (before the split filter).
        modalities: subset of the dataset's modalities to return (default all).
        verify: check every shard's sha256 against the manifest when opening.
        cache_shards: open shards kept (per process).
        exclude_qc: drop rows carrying QC flags: ``True`` drops any flagged row, a list of flag names
            (``"nan_samples"``, ``"flat_lead"``, ...; a flag ``"flat_lead:V3"`` matches ``"flat_lead"``) drops rows
            with one of them.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "all",
        *,
        n_subjects: int | None = None,
        modalities: Sequence[str] | None = None,
        verify: bool = True,
        cache_shards: int = 4,
        exclude_qc: bool | Sequence[str] = False,
    ) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.modalities = _select_modalities(tuple(self.manifest["modalities"]), modalities, str(self.root))
        ecg_info = self.manifest["arrays"].get("ecg", {})
        self._ecg_lsb = ecg_info.get("lsb_mv") if ecg_info.get("stored_as") == "int16" else None
        self._shard_files = [self.root / e["file"] for e in self.manifest["shards"]]
        self._shard_start = np.asarray([int(e["start"]) for e in self.manifest["shards"]], dtype=np.int64)
        for entry, path in zip(self.manifest["shards"], self._shard_files, strict=True):
            if not path.is_file():
                raise DatasetError(f"{self.root}: shard {entry['file']} is missing")
            if verify and sha256_file(path) != entry["sha256"]:
                raise DatasetError(f"{self.root}: shard {entry['file']} does not match its sha256 in the manifest")
        self._load_tables()
        n_total = len(self.split_codes)
        limit = n_total if n_subjects is None else int(n_subjects)
        if limit < 1 or limit > n_total:
            raise InputError(f"n_subjects must be between 1 and {n_total} for {self.root}, got {n_subjects}")
        rows = np.arange(limit)
        if split != "all":
            if split not in SPLITS:
                raise InputError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
            rows = rows[self.split_codes[:limit] == SPLITS.index(split)]
        if exclude_qc:
            rows = rows[[not _flagged(str(f), exclude_qc) for f in self.tables["qc_flags"][rows]]]
        self.split = split
        self.rows = rows
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = max(1, int(cache_shards))
        self._pid = os.getpid()

    def _load_tables(self) -> None:
        tables: dict[str, list[np.ndarray]] = {}
        names = ["covariates", "covariate_mask", "split", "subject_id", "qc_flags"]
        if "phenotypes" in self.manifest["modalities"]:
            names.append("phenotypes")
        if "labels" in self.manifest["modalities"]:
            names += ["labels", "cm_subtype"]
        names += [f"x_{name}" for name in self.manifest.get("extras", {})]
        for path in self._shard_files:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    for name in names:
                        tables.setdefault(name, []).append(npz[name])
            except (OSError, ValueError, KeyError, EOFError) as exc:
                raise DatasetError(f"{path}: unreadable shard ({type(exc).__name__}: {exc})") from exc
        self.tables = {name: np.concatenate(parts) for name, parts in tables.items()}
        self.split_codes = self.tables["split"]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def subject_ids(self) -> np.ndarray:
        """Subject ids of this view's rows (text)."""
        return self.tables["subject_id"][self.rows]

    @property
    def qc_flags(self) -> np.ndarray:
        """Per-row QC flags (";"-separated text, empty when clean)."""
        return self.tables["qc_flags"][self.rows]

    def labels_array(self) -> np.ndarray:
        """float32 ``(len, 5)`` labels of this view (NaN unknown), without reading any waveform."""
        if "labels" not in self.tables:
            raise DatasetError(f"{self.root}: the dataset has no labels")
        stored = self.tables["labels"][self.rows].astype(np.float32)
        return np.where(stored < 0, np.nan, stored)

    def extra(self, name: str) -> np.ndarray:
        """float32 ``(len, k)`` extra table ``name`` of this view (columns in ``manifest['extras'][name]``)."""
        key = f"x_{name}"
        if key not in self.tables:
            raise DatasetError(f"{self.root}: no extra table {name!r}; has {sorted(self.manifest.get('extras', {}))}")
        return self.tables[key][self.rows]

    def _shard(self, k: int) -> Any:
        if os.getpid() != self._pid:  # forked DataLoader worker: never share open file handles with the parent
            self._cache = OrderedDict()
            self._pid = os.getpid()
        npz = self._cache.get(k)
        if npz is None:
            try:
                npz = np.load(self._shard_files[k], allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{self._shard_files[k]}: unreadable shard ({exc})") from exc
            self._cache[k] = npz
            if len(self._cache) > self._cache_size:
                _, old = self._cache.popitem(last=False)
                old.close()
        else:
            self._cache.move_to_end(k)
        return npz

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)}")
        row = int(self.rows[i])
        k = int(np.searchsorted(self._shard_start, row, side="right") - 1)
        j = row - int(self._shard_start[k])
        item: dict[str, Any] = {}
        if any(m in self.modalities for m in _PER_SUBJECT):
            npz = self._shard(k)
            try:
                if "ecg" in self.modalities:
                    stored = npz[f"ecg_{j:04d}"]
                    ecg = decode_ecg(stored, self._ecg_lsb) if self._ecg_lsb else stored.astype(np.float32)
                    item["ecg"] = torch.from_numpy(ecg)
                for name in ("cine_sa", "cine_la"):
                    if name in self.modalities:
                        item[name] = torch.from_numpy(decode_cine(npz[f"{name}_{j:04d}"]))
            except (KeyError, ValueError, OSError, EOFError) as exc:
                raise DatasetError(f"{self._shard_files[k]}: damaged member for subject {j} ({exc})") from exc
        if "phenotypes" in self.modalities:
            item["phenotypes"] = torch.from_numpy(self.tables["phenotypes"][row].astype(np.float32))
        if "labels" in self.modalities:
            stored = self.tables["labels"][row].astype(np.float32)
            item["labels"] = torch.from_numpy(np.where(stored < 0, np.nan, stored).astype(np.float32))
            item["cm_subtype"] = torch.tensor(int(self.tables["cm_subtype"][row]), dtype=torch.int64)
        item["covariates"] = torch.from_numpy(self.tables["covariates"][row].astype(np.float32))
        item["covariate_mask"] = torch.from_numpy(self.tables["covariate_mask"][row].astype(np.float32))
        item["index"] = torch.tensor(row, dtype=torch.int64)
        return item


def _flagged(flags: str, exclude: bool | Sequence[str]) -> bool:
    names = {f.split(":", 1)[0] for f in flags.split(";") if f}
    if exclude is True:
        return bool(names)
    return bool(names & set(exclude))


def _select_modalities(available: tuple[str, ...], wanted: Sequence[str] | None, where: str) -> tuple[str, ...]:
    if wanted is None:
        return available
    wanted = tuple(wanted)
    unknown = set(wanted) - set(MODALITIES)
    if unknown:
        raise InputError(f"unknown modalities {sorted(unknown)}; known: {list(MODALITIES)}")
    missing = set(wanted) - set(available)
    if missing:
        raise DatasetError(f"{where} lacks modalities {sorted(missing)}; it has {list(available)}")
    return tuple(m for m in MODALITIES if m in wanted)
