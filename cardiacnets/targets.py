"""What the models predict: the five screened diseases, the cardiomyopathy subtypes and the 82 CMR phenotypes.

The phenotype list is UK Biobank fields 24100-24181 in that order (Bai et al., Nat Med 2020), shipped as
``cardiacnets/data/phenotypes_82.csv``. Reference ranges for the phenotypes shown to clinicians are healthy UK Biobank
values (Petersen et al., JCMR 2017;19:18) as mean +- 1.96 SD by sex; the wall-thickness limit is the CMR upper limit of
normal (Kawel-Boehm 2020). They are screening aids, not diagnostic criteria.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

DISEASES: tuple[str, ...] = ("CAD", "PH", "PC", "CM", "HF")
DISEASE_NAMES: dict[str, str] = {
    "CAD": "coronary artery disease",
    "PH": "pulmonary hypertension",
    "PC": "pericarditis",
    "CM": "cardiomyopathy",
    "HF": "heart failure",
}
SUBTYPES: tuple[str, ...] = ("RCM", "DCM", "HCM")
SUBTYPE_NAMES: dict[str, str] = {
    "RCM": "restrictive cardiomyopathy",
    "DCM": "dilated cardiomyopathy",
    "HCM": "hypertrophic cardiomyopathy",
}
COVARIATES: tuple[str, ...] = ("sex", "age", "heart_rate")


@dataclass(frozen=True)
class Phenotype:
    index: int
    ukb_field: int
    name: str  # UK Biobank showcase name
    short: str  # Bai's CSV column without the unit, e.g. "LVEDV"
    unit: str


@lru_cache(maxsize=1)
def phenotypes() -> tuple[Phenotype, ...]:
    """The 82 phenotypes in model output order."""
    text = resources.files("cardiacnets").joinpath("data/phenotypes_82.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    out = tuple(
        Phenotype(
            index=int(r["index"]),
            ukb_field=int(r["ukb_field_id"]),
            name=r["ukb_name_(CardiacNets_cor_index)"],
            short=re.sub(r"\s*\(.*\)\s*$", "", r["bai_csv_column"]).strip(),
            unit=r["unit"],
        )
        for r in rows
    )
    if len(out) != 82 or [p.index for p in out] != list(range(82)):
        raise RuntimeError("packaged phenotypes_82.csv is damaged")
    return out


def phenotype_names() -> list[str]:
    return [p.short for p in phenotypes()]


def phenotype_index(short: str) -> int:
    for p in phenotypes():
        if p.short == short:
            return p.index
    raise KeyError(f"unknown phenotype {short!r}")


# (low, high) for (male, female): healthy mean +- 1.96 SD (Petersen 2017; RV and LA values are literature estimates).
_REFERENCE = {
    "LVEDV": ((103, 229), (83, 165)),
    "LVESV": ((38, 100), (27, 71)),
    "LVEF": ((48, 68), (51, 71)),
    "LVM": ((65, 143), (47, 97)),
    "RVEDV": ((111, 249), (85, 166)),
    "RVEF": ((42, 66), (47, 68)),
    "LAV max": ((36, 114), (32, 98)),
}
# Global mean wall thickness: the CMR upper limit of normal is 11-12 mm (men) and 9-10 mm (women) for maximal
# thickness; the global mean of a healthy heart is 5-7 mm.
_REFERENCE_WT = ((4.0, 11.0), (3.5, 10.0))

KEY_PHENOTYPES: tuple[str, ...] = ("LVEF", "LVEDV", "LVESV", "LVM", "RVEDV", "RVEF", "LAV max", "WT_Global")


def reference_range(short: str, sex: str | None) -> tuple[float, float] | None:
    """Healthy range of a key phenotype for ``sex`` ("M"/"F"); the union of both sexes when sex is unknown."""
    ranges = _REFERENCE_WT if short == "WT_Global" else _REFERENCE.get(short)
    if ranges is None:
        return None
    male, female = ranges
    if sex == "M":
        return male
    if sex == "F":
        return female
    return (min(male[0], female[0]), max(male[1], female[1]))
