"""ICD codes -> the five CardiacNets disease labels and the cardiomyopathy subtype.

Labels as docs/architecture.md ("Data contracts") defines them.

One place for the mapping, shared by every converter:

* CAD: ICD-10 I20-I25 (ICD-9 410-414); PH: I27 (416); PC: I30-I32 (420, 423); CM: I42-I43 (425); HF: I50 (428).
* CM subtype (the paper's 3-class task, order ``RCM, DCM, HCM``): RCM = I42.5, the restrictive phenotypes I42.3 and
  I42.4, or amyloidosis E85.x together with I43; DCM = I42.0; HCM = I42.1 / I42.2 (ICD-9: 425.1x is HCM; ICD-9 does
  not code DCM or RCM separately). When a subject carries codes of several subtypes the most specific wins, in the
  order RCM, HCM, DCM (amyloid hearts are often also coded as another cardiomyopathy).

Codes are accepted as written by UK Biobank HES (``I420``), MIMIC (``I5022``) or with a dot (``I42.0``), any case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.targets import DISEASES, SUBTYPES

LABEL_NAMES: tuple[str, ...] = DISEASES
CM_SUBTYPE_NAMES: tuple[str, ...] = SUBTYPES
RCM, DCM, HCM = 0, 1, 2


@dataclass(frozen=True)
class _Coding:
    """How one ICD version maps to labels: category -> label index, subtype code prefixes (first match wins), and the
    amyloidosis rule (a cardiomyopathy code ``amyloid_cm`` with any ``amyloid`` code present is restrictive)."""

    categories: dict[str, int]
    subtypes: tuple[tuple[tuple[str, ...], int], ...]
    amyloid: str
    amyloid_cm: str


_CODINGS = {
    10: _Coding(
        categories={
            **{f"I2{d}": 0 for d in range(0, 6)},
            "I27": 1,
            "I30": 2,
            "I31": 2,
            "I32": 2,
            "I42": 3,
            "I43": 3,
            "I50": 4,
        },  # fmt: skip
        subtypes=((("I420",), DCM), (("I421", "I422"), HCM), (("I423", "I424", "I425"), RCM)),
        amyloid="E85",
        amyloid_cm="I43",
    ),
    9: _Coding(
        categories={"410": 0, "411": 0, "412": 0, "413": 0, "414": 0, "416": 1, "420": 2, "423": 2, "425": 3, "428": 4},
        subtypes=((("4251",), HCM),),
        amyloid="2773",
        amyloid_cm="425",
    ),
}


def normalise_icd(code: str) -> str:
    """Upper-case, strip spaces and the dot: ``" i42.0 "`` -> ``"I420"``."""
    if not isinstance(code, str):
        raise InputError(f"ICD code must be text, got {type(code).__name__}")
    return code.strip().upper().replace(".", "").replace(" ", "")


def labels_from_icd(codes: Iterable[str], version: int = 10) -> tuple[np.ndarray, int]:
    """Map one subject's ICD codes to ``(labels, cm_subtype)``.

    Args:
        codes: ICD codes (any mix of formats, see module docstring). Empty or blank entries are ignored.
        version: 10 (ICD-10 / ICD-10-CM) or 9 (ICD-9-CM).

    Returns:
        ``labels`` int8 ``(5,)`` in the order of :data:`LABEL_NAMES` (1 = any code of the family present) and
        ``cm_subtype`` (-1 none or not determinable, 0 RCM, 1 DCM, 2 HCM; only set when the CM label is 1).
    """
    if version not in (9, 10):
        raise InputError(f"ICD version must be 9 or 10, got {version!r}")
    coding = _CODINGS[version]
    labels = np.zeros(len(LABEL_NAMES), dtype=np.int8)
    normalised = [normalise_icd(c) for c in codes if isinstance(c, str) and c.strip()]
    has_amyloid = any(c.startswith(coding.amyloid) for c in normalised)
    subtypes: set[int] = set()
    for code in normalised:
        index = coding.categories.get(code[:3])
        if index is not None:
            labels[index] = 1
        found = next((subtype for prefixes, subtype in coding.subtypes if code.startswith(prefixes)), None)
        if found is None and has_amyloid and code.startswith(coding.amyloid_cm):
            found = RCM
        if found is not None:
            subtypes.add(found)
    subtype = -1
    if labels[3]:
        for candidate in (RCM, HCM, DCM):
            if candidate in subtypes:
                subtype = candidate
                break
    return labels, subtype
