"""The synthetic cohort as a dataset: generated on the fly (no disk) or written to shards.

Subject ``i`` is a pure function of ``(seed, i, mode)`` (the simulator's contract) and so is its split
(:func:`~cardiacnets.datasets.splits.hash_splits`), so the on-the-fly dataset and a dataset written by
:func:`write_synthetic` with the same seed hold the same subjects in the same splits.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cardiacnets.datasets.shards import MODALITIES, DatasetSpec, ShardWriter, _select_modalities, _TorchDataset
from cardiacnets.datasets.splits import SPLITS, hash_splits
from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)

SYNTHETIC_DESCRIPTION = "synthetic paired ECG-CMR cohort from cardiacnets.synth (simulated subjects, not patient data)"


def simulate_indices(
    indices: Sequence[int] | np.ndarray,
    seed: int,
    *,
    with_cines: bool,
    mode: str = "population",
    site: str | None = None,
) -> dict[str, np.ndarray]:
    """Simulate the subjects with the given indices (a dict of arrays with leading axis ``len(indices)``)."""
    from cardiacnets.synth import simulate_subjects

    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise InputError("no subject indices to simulate")
    return simulate_subjects(indices, seed, with_cines=with_cines, mode=mode, site=site)


def synthetic_batch(
    indices: np.ndarray, seed: int, *, with_cines: bool, mode: str, site: str | None = None
) -> dict[str, np.ndarray]:
    """Simulated subjects in the writer's batch layout (see :class:`~cardiacnets.datasets.shards.ShardWriter`);
    ``site``: a simulated hospital of :mod:`cardiacnets.synth.sites` (None: the default site)."""
    d = simulate_indices(indices, seed, with_cines=with_cines, mode=mode, site=site)
    covariates = np.stack([d["sex"], d["age"], d["heart_rate"]], axis=1).astype(np.float32)
    batch: dict[str, Any] = {
        "ecg": d["ecg"],
        "phenotypes": d["phenotypes"],
        "labels": d["labels"],
        "cm_subtype": d["cm_subtype"],
        "covariates": covariates,
        "covariate_mask": np.isfinite(covariates),
        "split": hash_splits(indices, seed),
        "subject_id": [f"synth-{seed}-{int(i)}" for i in indices],
    }
    if with_cines:
        batch["cine_sa"] = d["cine_sa"]
        batch["cine_la"] = d["cine_la"]
    return batch


def write_synthetic(
    out_dir: str | os.PathLike[str],
    n_subjects: int,
    *,
    seed: int = 0,
    with_cines: bool = True,
    mode: str = "population",
    shard_size: int = 256,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """Generate ``n_subjects`` simulated subjects into a sharded dataset at ``out_dir`` and return its manifest.

    Resumes an interrupted write of the same options. ``progress(done, total)`` is called after each shard. ``site``:
    a simulated hospital (:mod:`cardiacnets.synth.sites`; None or ``"default"``: the cohort as always); the manifest's
    ``source.site`` names a non-default one and its ``source.site_description`` says how it differs.
    """
    from cardiacnets.synth.sites import DEFAULT_SITE, get_site

    if mode not in ("population", "balanced"):
        raise InputError(f"mode must be 'population' or 'balanced', got {mode!r}")
    site_obj = get_site(site)
    modalities = MODALITIES if with_cines else ("ecg", "phenotypes", "labels")
    spec = DatasetSpec(
        n_subjects=n_subjects,
        modalities=modalities,
        shard_size=shard_size,
        source={
            "kind": "synthetic",
            "description": SYNTHETIC_DESCRIPTION,
            "seed": seed,
            "mode": mode,
            "subject_ids": "synth-<seed>-<index>; subject i is a pure function of (seed, i, mode)",
            "split_rule": "hash of (seed, index): 70/10/20, independent of the data (stratified in distribution)",
            **(
                {}
                if site_obj.name == DEFAULT_SITE
                else {"site": site_obj.name, "site_description": site_obj.description}
            ),
        },
    )
    writer = ShardWriter(out_dir, spec, overwrite=overwrite)
    if progress:
        progress(writer.n_written, n_subjects)
    while not writer.complete:
        start = writer.n_written
        stop = min(start + shard_size, n_subjects)
        batch = synthetic_batch(np.arange(start, stop), seed, with_cines=with_cines, mode=mode, site=site_obj.name)
        writer.write_shard(batch)
        if progress:
            progress(writer.n_written, n_subjects)
    return writer.finalize()


class SyntheticDataset(_TorchDataset):
    """On-the-fly synthetic cohort: item ``k`` simulates the ``k``-th subject of the split (no disk).

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        n_subjects: size of the cohort before the split filter (subject indices ``0 .. n_subjects - 1``).
        seed: cohort seed.
        modalities: subset of :data:`~cardiacnets.datasets.shards.MODALITIES`; without cines the simulator skips
            rendering (much faster).
        mode: ``"population"`` or ``"balanced"``.
        cache_items: simulated subjects kept in memory (repeated access of the same item is free).

    Items follow the same contract as :class:`~cardiacnets.datasets.shards.ShardedDataset`; cines are quantised to
    uint8 and back like the stored format, so on-the-fly and written datasets give the same cines, and ECGs that
    differ only by the stored int16 rounding (at most half of ``ecg_lsb_mv``).
    """

    def __init__(
        self,
        split: str = "all",
        *,
        n_subjects: int,
        seed: int = 0,
        modalities: Sequence[str] | None = None,
        mode: str = "population",
        cache_items: int = 64,
    ) -> None:
        if n_subjects is None or int(n_subjects) < 1:
            raise InputError(f"the synthetic dataset needs n_subjects >= 1, got {n_subjects!r}")
        if mode not in ("population", "balanced"):
            raise InputError(f"mode must be 'population' or 'balanced', got {mode!r}")
        self.modalities = _select_modalities(MODALITIES, modalities, "the synthetic cohort")
        self.seed = int(seed)
        self.mode = mode
        self.n_subjects = int(n_subjects)
        all_indices = np.arange(self.n_subjects, dtype=np.int64)
        codes = hash_splits(all_indices, self.seed)
        if split == "all":
            self.rows = all_indices
        elif split in SPLITS:
            self.rows = all_indices[codes == SPLITS.index(split)]
        else:
            raise InputError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
        self.split = split
        self.with_cines = "cine_sa" in self.modalities or "cine_la" in self.modalities
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._cache_size = max(0, int(cache_items))
        self.manifest = {
            "source": {"kind": "synthetic", "description": SYNTHETIC_DESCRIPTION, "seed": self.seed, "mode": mode},
            "n_subjects": self.n_subjects,
            "modalities": list(self.modalities),
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)}")
        row = int(self.rows[i])
        item = self._cache.get(row)
        if item is None:
            item = self._make(row)
            if self._cache_size:
                self._cache[row] = item
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return {k: v.clone() for k, v in item.items()}

    def _make(self, row: int) -> dict[str, Any]:
        import torch

        from cardiacnets.datasets.shards import decode_cine, encode_cine

        batch = synthetic_batch(np.asarray([row]), self.seed, with_cines=self.with_cines, mode=self.mode)
        item: dict[str, Any] = {}
        if "ecg" in self.modalities:
            item["ecg"] = torch.from_numpy(np.asarray(batch["ecg"][0], dtype=np.float32).copy())
        for name in ("cine_sa", "cine_la"):
            if name in self.modalities:
                item[name] = torch.from_numpy(decode_cine(encode_cine(batch[name][0])))
        if "phenotypes" in self.modalities:
            item["phenotypes"] = torch.from_numpy(np.asarray(batch["phenotypes"][0], dtype=np.float32).copy())
        if "labels" in self.modalities:
            item["labels"] = torch.from_numpy(np.asarray(batch["labels"][0], dtype=np.float32).copy())
            item["cm_subtype"] = torch.tensor(int(batch["cm_subtype"][0]), dtype=torch.int64)
        item["covariates"] = torch.from_numpy(batch["covariates"][0].copy())
        item["covariate_mask"] = torch.from_numpy(batch["covariate_mask"][0].astype(np.float32))
        item["index"] = torch.tensor(row, dtype=torch.int64)
        return item
