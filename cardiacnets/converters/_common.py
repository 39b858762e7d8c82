"""Helpers shared by the converters: tolerant CSV reading, ECG fitting to the model grid, QC flags, and the loop that
converts subjects into shards, skipping (and counting) the ones that cannot be read."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from cardiacnets.datasets.shards import ECG_FS, SHAPES
from cardiacnets.errors import CardiacNetsError, DatasetError

logger = logging.getLogger(__name__)

N_SAMPLES = SHAPES["ecg"][1]


def open_text(path: Path) -> io.TextIOBase:
    """Open a ``.csv`` or ``.csv.gz`` as text."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def find_table(directory: Path, stem: str) -> Path:
    """``directory/stem.csv`` or ``directory/stem.csv.gz``."""
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (directory / name).is_file():
            return directory / name
    raise DatasetError(f"{directory}: no {stem}.csv or {stem}.csv.gz")


def read_rows(path: Path, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Rows of a CSV as dicts; raises :class:`DatasetError` when a required column is missing."""
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}")
        yield from reader


def read_columns(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Stream a CSV keeping only the named columns: one tuple per row, ``required`` then ``optional`` (``""`` where an
    optional column is absent or a row is short). Memory stays flat however many columns and rows the file has."""
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}")
        index = [header.index(c) if c in header else -1 for c in (*required, *optional)]
        for cells in reader:
            if cells:
                yield tuple(cells[k] if 0 <= k < len(cells) else "" for k in index)


def to_float(text: str | None) -> float:
    """CSV cell -> float, NaN when empty or not a number."""
    if text is None:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def fit_ecg(signal: np.ndarray, fs: float) -> tuple[np.ndarray, list[str]]:
    """Resample ``(12, n)`` mV to 500 Hz and centre-crop or zero-pad to 5000 samples; returns ``(ecg, flags)``."""
    flags: list[str] = []
    x = np.asarray(signal, dtype=np.float64)
    if abs(fs - ECG_FS) > 1e-6:
        ratio = Fraction(ECG_FS / fs).limit_denominator(1000)
        x = resample_poly(np.nan_to_num(x), ratio.numerator, ratio.denominator, axis=1)
        flags.append(f"resampled_from_{fs:g}Hz")
    n = x.shape[1]
    if n > N_SAMPLES:
        start = (n - N_SAMPLES) // 2
        x = x[:, start : start + N_SAMPLES]
    elif n < N_SAMPLES:
        pad = N_SAMPLES - n
        x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2)))
        flags.append(f"padded_from_{n}")
    return x.astype(np.float32), flags


def ecg_qc_flags(ecg: np.ndarray, leads: tuple[str, ...]) -> list[str]:
    """Record-level QC flags of a ``(12, n)`` mV ECG: ``nan_samples``, ``flat_lead:<lead>``, ``over_10mV``."""
    flags: list[str] = []
    if np.isnan(ecg).any():
        flags.append("nan_samples")
    for row, lead in enumerate(leads):
        values = ecg[row][np.isfinite(ecg[row])]
        if values.size == 0 or np.ptp(values) < 1e-6:
            flags.append(f"flat_lead:{lead}")
    if np.nanmax(np.abs(ecg), initial=0.0) > 10.0:
        flags.append("over_10mV")
    return flags


def write_subjects(
    writer: Any,
    items: Iterable[tuple[str, Callable[[], dict[str, Any]]]],
    total: int,
    skipped: dict[str, int],
    shard_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Convert and write subjects shard by shard; return the finalized manifest.

    ``items`` yields ``(subject key, make)`` in a fixed order; ``make()`` returns the subject's item dict or raises.
    A subject that raises is skipped and counted in ``skipped`` by reason (the error's type; any other exception as
    ``internal_error``), so one unreadable file never stops the run. Resumes after the writer's cursor (subjects
    already written are not converted again)."""
    position = int(writer.cursor or 0)
    pending: list[dict[str, Any]] = []
    examples: dict[str, str] = {}

    def flush(cursor: int) -> None:
        batch = {k: [p[k] for p in pending] for k in pending[0]}
        text = ("subject_id", "qc_flags")
        writer.write_shard({k: v if k in text else np.asarray(v) for k, v in batch.items()}, cursor=cursor)
        pending.clear()

    for k, (key, make) in enumerate(items):
        if k < position:
            continue
        try:
            pending.append(make())
        except CardiacNetsError as exc:
            _skip(skipped, examples, type(exc).__name__, str(exc).replace(key, "<subject>"))
        except Exception as exc:  # noqa: BLE001 - one subject never stops a conversion
            logger.debug("unexpected error converting a subject", exc_info=True)
            _skip(skipped, examples, "internal_error", f"{type(exc).__name__}: {exc}".replace(key, "<subject>"))
        if len(pending) == shard_size:
            flush(k + 1)
        if progress:
            progress(k + 1, total)
    if pending:
        flush(total)
    writer.spec.source["skipped"] = skipped
    writer.spec.source["skip_examples"] = examples
    writer.header["source"] = writer.spec.source
    return writer.finalize()


def _skip(skipped: dict[str, int], examples: dict[str, str], reason: str, message: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1
    examples.setdefault(reason, message[:300])
    logger.warning("skipped one subject (%s: %s)", reason, message[:300])
