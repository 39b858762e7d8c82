"""Subject-level dataset splits: 70/10/20 train/val/test, as a hash of ``(seed, index)`` for the synthetic cohort
(:func:`hash_splits`: a subject's split never depends on how many were generated) and stratified by label pattern
within subject groups for real data (:func:`stratified_group_splits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cardiacnets.errors import InputError

__all__ = ["SPLITS", "SPLIT_FRACTIONS", "hash_splits", "stratified_group_splits"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FRACTIONS: tuple[float, ...] = (0.7, 0.1, 0.2)


def hash_splits(indices: np.ndarray, seed: int) -> np.ndarray:
    """Split of each subject index as a pure function of ``(seed, index)``: 0 train, 1 val, 2 test (70/10/20).

    A SplitMix64-style hash of the pair gives a uniform number per subject; because it ignores the subject's data,
    every label has the same 70/10/20 split in expectation (stratified in distribution), and a subject's split never
    depends on how many subjects were generated.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(indices, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    edges = np.cumsum(SPLIT_FRACTIONS)[:-1]
    return np.searchsorted(edges, u, side="right").astype(np.uint8)


def stratified_group_splits(groups: Sequence[Any], strata: Sequence[Any], seed: int = 0) -> np.ndarray:
    """Subject-level stratified 70/10/20 split for real data.

    Args:
        groups: per-row group key (the subject: all rows of a group get the same split).
        strata: per-row stratum key (e.g. the label pattern); a group's stratum is that of its first row with the
            largest number of positive labels, given as the stratum's sort order (callers pass tuples).
        seed: shuffles the groups inside each stratum.

    Returns:
        uint8 ``(n_rows,)``: 0 train, 1 val, 2 test. Inside each stratum the group counts follow 70/10/20 by largest
        remainder, so every stratum (hence every label) is split in proportion.
    """
    if len(groups) != len(strata):
        raise InputError(f"groups ({len(groups)}) and strata ({len(strata)}) differ in length")
    group_stratum: dict[Any, Any] = {}
    for g, s in zip(groups, strata, strict=True):
        current = group_stratum.get(g)
        if current is None or _stratum_weight(s) > _stratum_weight(current):
            group_stratum[g] = s
    by_stratum: dict[Any, list[Any]] = {}
    for g, s in group_stratum.items():
        by_stratum.setdefault(s, []).append(g)
    rng = np.random.default_rng(seed)
    group_split: dict[Any, int] = {}
    for s in sorted(by_stratum, key=repr):
        members = sorted(by_stratum[s], key=repr)
        order = rng.permutation(len(members))
        counts = _largest_remainder(len(members), SPLIT_FRACTIONS)
        bounds = np.cumsum(counts)
        for rank, k in enumerate(order):
            group_split[members[k]] = int(np.searchsorted(bounds, rank, side="right"))
    return np.asarray([group_split[g] for g in groups], dtype=np.uint8)


def _stratum_weight(stratum: Any) -> float:
    try:
        return float(np.nansum(np.asarray(stratum, dtype=np.float64)))
    except (TypeError, ValueError):
        return 0.0


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    raw = [n * f for f in fractions]
    counts = [int(np.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: raw[k] - counts[k], reverse=True)
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    return counts
