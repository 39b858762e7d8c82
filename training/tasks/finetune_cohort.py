"""The data side of fine-tuning: a whole split read and converted in memory (:class:`CohortSplit`, cached per
process so an experiment's arms share it), the rows a run trains on (the label-fraction draw stratified by the task's
label and made on whole subjects, then 1:1 case-control sampling for single-disease tasks) and the map-style
:class:`CohortRows` view the training loop and prediction read tensors from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cardiacnets.errors import DatasetError
from cardiacnets.metrics.screening import BINARY_TASKS
from cardiacnets.targets import DISEASES, phenotype_names
from cardiacnets.training.config import DataConfig
from cardiacnets.training.data import ecg_transform


@dataclass
class CohortSplit:
    """One split converted for fine-tuning, all in memory, one row per dataset row.

    ``x``: ECG ``(n, 12, 5000)`` float32 in [-1, 1], or for CMR input a pair of uint8 cines ``(n, 50, 80, 80)`` and
    ``(n, 50, 96, 96)`` (0..255). ``labels`` ``(n, 5)`` 0/1/NaN; ``subtype`` ``(n,)`` -1 none; ``phenotypes``
    ``(n, 82)`` original units, NaN missing; ``covariates`` / ``covariate_mask`` ``(n, 3)``; ``groups`` ``(n,)``
    subject keys (rows of one subject share a key).
    """

    x: Any
    labels: np.ndarray
    subtype: np.ndarray
    phenotypes: np.ndarray
    covariates: np.ndarray
    covariate_mask: np.ndarray
    groups: np.ndarray
    description: str
    synthetic: bool = False  # the data is simulated (synthetic source, or a written synthetic dataset)

    def __len__(self) -> int:
        return len(self.labels)


_COHORT_CACHE: dict[tuple, CohortSplit] = {}


def load_cohort_split(
    data: DataConfig, split: str, *, input: str, ecg_preprocess: str, synthetic_mode: str, cache: bool = True
) -> CohortSplit:
    """Read and convert a whole split (kept per process when ``cache``: the experiment's arms share it)."""
    key = (str(data.source), data.n_subjects, data.seed, split, input, ecg_preprocess, synthetic_mode)
    if cache and key in _COHORT_CACHE:
        return _COHORT_CACHE[key]
    from cardiacnets.datasets import open_dataset, read_manifest

    wanted = ["ecg"] if input == "ecg" else ["cine_sa", "cine_la"]
    wanted += ["phenotypes", "labels"]
    if data.source != "synthetic":
        available = set(read_manifest(data.source).get("modalities", []))
        missing = [m for m in wanted[:-2] if m not in available]
        if missing:
            raise DatasetError(f"{data.source} has no {', '.join(missing)}; input={input!r} needs them")
        wanted = [m for m in wanted if m in available]
    base = open_dataset(
        data.source, split, n_subjects=data.n_subjects, seed=data.seed, modalities=wanted, mode=synthetic_mode
    )
    n = len(base)
    if n == 0:
        raise DatasetError(f"the {split!r} split of {data.source} is empty")
    transform = ecg_transform(ecg_preprocess) if input == "ecg" else None
    xs: list[Any] = []
    labels = np.full((n, len(DISEASES)), np.nan, np.float32)
    subtype = np.full(n, -1, np.int64)
    phenotypes = np.full((n, len(phenotype_names())), np.nan, np.float32)
    cov = np.zeros((n, 3), np.float32)
    cov_mask = np.zeros((n, 3), np.float32)
    for i in range(n):
        item = base[i]
        if transform is not None:
            xs.append(np.asarray(transform(np.asarray(item["ecg"], np.float32)), np.float32))
        else:
            xs.append(
                tuple(
                    np.round(np.asarray(item[k], np.float32) * 255.0).astype(np.uint8) for k in ("cine_sa", "cine_la")
                )
            )
        if "labels" in item:
            labels[i] = np.asarray(item["labels"], np.float32)
            subtype[i] = int(item.get("cm_subtype", -1))
        if "phenotypes" in item:
            phenotypes[i] = np.asarray(item["phenotypes"], np.float32)
        c = np.asarray(item["covariates"], np.float32)
        m = np.asarray(item["covariate_mask"], np.float32)
        cov[i] = np.where(m > 0, np.nan_to_num(c), 0.0)
        cov_mask[i] = m
    groups = np.asarray(getattr(base, "subject_ids", np.arange(n))).astype(str)
    if input == "ecg":
        x: Any = np.stack(xs)
    else:
        x = (np.stack([a for a, _ in xs]), np.stack([b for _, b in xs]))
    kind = (getattr(base, "manifest", {}) or {}).get("source", {})
    description = (
        f"synthetic cohort (seed {data.seed}, {synthetic_mode}, {data.n_subjects} subjects)"
        if data.source == "synthetic"
        else f"dataset {data.source} ({kind.get('kind', 'converted') if isinstance(kind, dict) else kind})"
    )
    synthetic = data.source == "synthetic" or (isinstance(kind, dict) and kind.get("kind") == "synthetic")
    out = CohortSplit(x, labels, subtype, phenotypes, cov, cov_mask, groups, description, synthetic)
    if cache:
        _COHORT_CACHE[key] = out
    return out


def clear_cohort_cache() -> None:
    """Drop the in-memory converted splits."""
    _COHORT_CACHE.clear()


# ----------------------------------------------------------------------------------------------------------------------
# Which training rows a run uses


def task_strata(task: str, labels: np.ndarray, subtype: np.ndarray) -> np.ndarray:
    """Per-row stratum for the label-fraction draw: the task's label (-1 unknown); for ``all`` / ``phenotypes`` the
    disease pattern (unknown treated as negative)."""
    if task in BINARY_TASKS:
        y = labels[:, BINARY_TASKS[task]]
        return np.where(np.isfinite(y), y, -1).astype(np.int64)
    if task == "subtype":
        return subtype.astype(np.int64)
    known = np.nan_to_num(labels, nan=0.0).astype(np.int64)
    return known @ (1 << np.arange(labels.shape[1]))


def eligible_rows(task: str, cohort: CohortSplit) -> np.ndarray:
    """Rows that carry the task's target."""
    if task in BINARY_TASKS:
        return np.flatnonzero(np.isfinite(cohort.labels[:, BINARY_TASKS[task]]))
    if task == "subtype":
        return np.flatnonzero(cohort.subtype >= 0)
    if task == "phenotypes":
        return np.flatnonzero(np.isfinite(cohort.phenotypes).any(axis=1))
    return np.arange(len(cohort))


def select_training_rows(
    task: str,
    strata: np.ndarray,
    groups: np.ndarray,
    eligible: np.ndarray,
    *,
    fraction: float,
    seed: int,
    case_control: bool,
) -> np.ndarray:
    """Sorted row indices of the training subset.

    Subjects (``groups``) among ``eligible`` rows are drawn per stratum (a subject's stratum: its first eligible row's)
    with ``round(fraction * n_stratum)`` subjects, at least one per non-empty stratum; all rows of a drawn subject are
    kept. For binary tasks with ``case_control`` every drawn case is kept with as many controls, drawn without
    replacement (all controls when there are fewer).
    """
    rng = np.random.default_rng([int(seed), 1_234_567])
    eligible = np.asarray(eligible, np.int64)
    subject_keys, first = np.unique(groups[eligible], return_index=True)
    subject_stratum = strata[eligible[first]]
    chosen_subjects: list[np.ndarray] = []
    for s in np.unique(subject_stratum):
        members = subject_keys[subject_stratum == s]
        k = max(1, int(round(fraction * len(members))))
        chosen_subjects.append(rng.choice(members, size=min(k, len(members)), replace=False))
    chosen = np.concatenate(chosen_subjects) if chosen_subjects else np.empty(0, subject_keys.dtype)
    rows = eligible[np.isin(groups[eligible], chosen)]
    if task in BINARY_TASKS and case_control:
        cases, controls = rows[strata[rows] == 1], rows[strata[rows] == 0]
        if len(cases) and len(controls) > len(cases):
            controls = rng.choice(controls, size=len(cases), replace=False)
        rows = np.concatenate([cases, controls])
    return np.sort(rows)


class CohortRows(Dataset):
    """Map-style view of ``rows`` of a :class:`CohortSplit`; items are tensors (cines converted to [-1, 1])."""

    def __init__(self, cohort: CohortSplit, rows: np.ndarray) -> None:
        self.cohort, self.rows = cohort, np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.rows[i])
        c = self.cohort
        item: dict[str, torch.Tensor] = {
            "labels": torch.from_numpy(c.labels[r]),
            "subtype": torch.tensor(int(c.subtype[r])),
            "phenotypes": torch.from_numpy(c.phenotypes[r]),
            "covariates": torch.from_numpy(c.covariates[r]),
            "covariate_mask": torch.from_numpy(c.covariate_mask[r]),
            "row": torch.tensor(r),
        }
        if isinstance(c.x, tuple):
            item["cine_sa"] = torch.from_numpy(c.x[0][r]).float().div_(127.5).sub_(1.0)
            item["cine_la"] = torch.from_numpy(c.x[1][r]).float().div_(127.5).sub_(1.0)
        else:
            item["ecg"] = torch.from_numpy(c.x[r])
        return item


__all__ = [
    "CohortRows",
    "CohortSplit",
    "clear_cohort_cache",
    "eligible_rows",
    "load_cohort_split",
    "select_training_rows",
    "task_strata",
]
