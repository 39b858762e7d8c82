"""Helpers shared by the converters: tolerant CSV reading, ECG fitting to the model grid, QC flags."""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from cardiacnets.datasets.shards import ECG_FS, SHAPES
from cardiacnets.errors import DatasetError

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
