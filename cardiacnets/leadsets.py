"""Reduced lead sets: which of the 12 model-input leads a screening model may be given (issue 22).

A model fine-tuned with lead masking (``task.lead_masking``) learns to screen from any of :data:`LEAD_SETS`: the
12-lead ECG, the 6 limb leads of a 6-lead device, leads I and II, and lead I alone (a single-lead wearable). Leads
outside the set are zero in the model input (after preprocessing, where a zero-filled missing lead is flat at 0
anyway), so one graph serves every set. A bundle declares the sets its model was trained for
(``manifest["lead_sets"]``); the edge picks the richest declared set whose leads the file holds (stored, or derived
exactly from I and II by the reader: III = II - I and the Goldberger leads) and says which it used.

Note that leads I and II determine the other four limb leads exactly, so a file storing I and II is screened as
``limb6``; ``I+II`` is the model given those two leads alone. Pure numpy, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.record import LEADS

__all__ = [
    "DEFAULT_LEAD_SET",
    "LEAD_SETS",
    "LEAD_SET_WORDS",
    "apply_lead_set",
    "choose_lead_set",
    "lead_set_mask",
    "sample_lead_masks",
]

#: Lead sets by name, each a tuple of lead names from :data:`cardiacnets.record.LEADS`, richest first.
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "12": tuple(LEADS),
    "limb6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "I+II": ("I", "II"),
    "I": ("I",),
}
DEFAULT_LEAD_SET = "12"
LEAD_SET_WORDS: dict[str, str] = {
    "12": "12-lead ECG",
    "limb6": "6 limb leads (I, II, III, aVR, aVL, aVF)",
    "I+II": "leads I and II",
    "I": "single lead I",
}


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in LEAD_SETS]
    if unknown:
        raise InputError(f"unknown lead set(s) {unknown}; known: {', '.join(LEAD_SETS)}")
    return names


def lead_set_mask(name: str) -> np.ndarray:
    """``(12,)`` float32: 1 for the leads of set ``name``, 0 for the others (order of :data:`LEADS`)."""
    _check_names([name])
    return np.asarray([1.0 if lead in LEAD_SETS[name] else 0.0 for lead in LEADS], dtype=np.float32)


def apply_lead_set(ecg: np.ndarray, name: str) -> np.ndarray:
    """``ecg`` ``(..., 12, n)`` with the leads outside set ``name`` zeroed (a copy, same dtype)."""
    x = np.asarray(ecg)
    if x.ndim < 2 or x.shape[-2] != len(LEADS):
        raise InputError(f"expected (..., 12, samples), got shape {x.shape}")
    return (x * lead_set_mask(name)[:, None]).astype(x.dtype, copy=False)


def sample_lead_masks(
    n: int, rng: np.random.Generator, probabilities: Mapping[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(masks (n, 12) float32, set indices (n,))`` of lead sets drawn per record with ``probabilities`` (default
    equal over :data:`LEAD_SETS`; need not sum to 1). Index ``k`` is the ``k``-th key of ``probabilities``."""
    probabilities = dict(probabilities or {name: 1.0 for name in LEAD_SETS})
    names = _check_names(probabilities)
    weights = np.asarray([float(probabilities[k]) for k in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise InputError(f"lead-set probabilities must be non-negative and not all zero, got {probabilities}")
    choice = rng.choice(len(names), size=n, p=weights / weights.sum())
    table = np.stack([lead_set_mask(k) for k in names])
    return table[choice], choice


def choose_lead_set(available: Iterable[str], declared: Sequence[str]) -> str | None:
    """The richest set of ``declared`` (in :data:`LEAD_SETS` order) whose leads are all ``available``; None if none
    fits."""
    have = set(available)
    declared = _check_names(declared)
    for name in LEAD_SETS:
        if name in declared and set(LEAD_SETS[name]) <= have:
            return name
    return None
