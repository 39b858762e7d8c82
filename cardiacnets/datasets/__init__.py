"""Datasets for training: the synthetic cohort on the fly, and the sharded on-disk format written by ``cntrain
generate`` and the UK Biobank / MIMIC-IV-ECG converters (format: ``docs/dataset-format.md``).

``open_dataset(source, split)`` is the one entry point; items are dicts of torch tensors (see
:class:`~cardiacnets.datasets.shards.ShardedDataset`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cardiacnets.datasets.shards import (
    FORMAT_VERSION,
    MODALITIES,
    SHAPES,
    DatasetSpec,
    ShardedDataset,
    ShardWriter,
    read_manifest,
)
from cardiacnets.datasets.splits import SPLITS, hash_splits, stratified_group_splits
from cardiacnets.datasets.synthetic import SyntheticDataset, write_synthetic
from cardiacnets.errors import DatasetError

__all__ = [
    "FORMAT_VERSION",
    "MODALITIES",
    "SHAPES",
    "SPLITS",
    "DatasetSpec",
    "ShardWriter",
    "ShardedDataset",
    "SyntheticDataset",
    "hash_splits",
    "open_dataset",
    "read_manifest",
    "stratified_group_splits",
    "write_synthetic",
]


def open_dataset(
    source: str | os.PathLike[str],
    split: str,
    *,
    n_subjects: int | None = None,
    seed: int = 0,
    modalities: Sequence[str] | None = None,
    mode: str = "population",
    verify: bool = True,
    exclude_qc: bool | Sequence[str] = False,
) -> Any:
    """Open a dataset split as a map-style ``torch.utils.data.Dataset``.

    Args:
        source: ``"synthetic"`` (generated on the fly from ``seed``; ``n_subjects`` required) or a dataset directory.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        n_subjects: synthetic: cohort size; directory: use only its first ``n_subjects`` rows (default all).
        seed: synthetic cohort seed (ignored for directories, whose seed is in the manifest).
        modalities: subset of ``("ecg", "cine_sa", "cine_la", "phenotypes", "labels")`` to load (default: all the
            dataset has); ``dataset.modalities`` says what items carry.
        mode: synthetic only, ``"population"`` or ``"balanced"``.
        verify: directory only, check every shard's sha256 on open.
        exclude_qc: directory only, drop rows with QC flags (``True``: any flag; or a list of flag names such as
            ``["nan_samples", "flat_lead"]``); ``dataset.qc_flags`` lists the flags of the kept rows.

    Raises :class:`~cardiacnets.errors.DatasetError` for a missing, incomplete or tampered directory.
    """
    if isinstance(source, str) and source == "synthetic":
        if n_subjects is None:
            raise DatasetError("the synthetic dataset needs n_subjects (the cohort size)")
        return SyntheticDataset(split, n_subjects=n_subjects, seed=seed, modalities=modalities, mode=mode)
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset directory (or pass source='synthetic')")
    return ShardedDataset(
        path, split, n_subjects=n_subjects, modalities=modalities, verify=verify, exclude_qc=exclude_qc
    )
