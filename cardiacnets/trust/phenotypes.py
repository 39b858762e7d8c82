"""Phenotype identities: the 82-vector made to obey the relations its UK Biobank definitions imply.

A regression head predicts every phenotype on its own, so nothing stops it from saying LVEDV 137 mL, LVESV 73 mL and
LVSV 78 mL at once. The definitions (``reference/phenotypes_82.csv``; Bai et al. 2018 for UK Biobank fields
24100-24181) tie four quantities of each chamber together:

* ventricles: stroke volume = end-diastolic - end-systolic volume; ejection fraction = 100 x stroke / end-diastolic;
* atria: stroke volume = maximum - minimum volume; ejection fraction = 100 x stroke / maximum;
* LV cardiac output = LV stroke volume x heart rate / 1000 (L/min).

Per chamber, two of its four quantities are kept as predicted (the *primary* pair, always including the larger
volume) and the other two are derived from them; which pair is chosen by measurement on a validation split
(:func:`choose_primary_pairs`) and stored in the bundle. Cardiac output is derived from the derived LV stroke volume and
the heart rate the screening model was given. The remaining phenotypes (aortic areas and distensibility, wall
thickness, strains) have no identity the vector alone can enforce: distensibility needs the blood pressure, and the
global wall thickness and strains are measured on their own, not averaged from the segments. The 82 phenotypes carry
no body-surface-area-indexed values, so no indexing is done.

Pure numpy on ``(n, 82)`` arrays in the units of the phenotype table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.targets import phenotype_index

__all__ = [
    "CHAMBERS",
    "PAIRS",
    "Chamber",
    "choose_primary_pairs",
    "derivation_table",
    "identity_violations",
    "reconcile_phenotypes",
    "safe_pearson_r",
]


@dataclass(frozen=True)
class Chamber:
    """The four phenotypes one chamber's identities tie together, by short name."""

    name: str
    large: str  # end-diastolic (ventricles) or maximum (atria) volume, mL
    small: str  # end-systolic or minimum volume, mL
    stroke: str  # large - small, mL
    fraction: str  # 100 x stroke / large, %


CHAMBERS: tuple[Chamber, ...] = (
    Chamber("LV", "LVEDV", "LVESV", "LVSV", "LVEF"),
    Chamber("RV", "RVEDV", "RVESV", "RVSV", "RVEF"),
    Chamber("LA", "LAV max", "LAV min", "LASV", "LAEF"),
    Chamber("RA", "RAV max", "RAV min", "RASV", "RAEF"),
)
#: Primary pairs a chamber can be reconstructed from (the larger volume and one other quantity).
PAIRS: tuple[str, ...] = ("small", "stroke", "fraction")
CARDIAC_OUTPUT = "LVCO"


def _derive(large: np.ndarray, other: np.ndarray, pair: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(large, small, stroke, fraction)`` from the larger volume and ``other`` (the pair's second quantity).

    Clamped so the result is physically consistent: volumes >= 0, 0 <= stroke <= large, 0 <= fraction <= 100.
    """
    large = np.clip(large, 0.0, None)
    if pair == "small":
        small = np.clip(other, 0.0, large)
        stroke = large - small
    elif pair == "stroke":
        stroke = np.clip(other, 0.0, large)
        small = large - stroke
    elif pair == "fraction":
        stroke = large * np.clip(other, 0.0, 100.0) / 100.0
        small = np.maximum(large - stroke, 0.0)
    else:
        raise InputError(f"unknown primary pair {pair!r}; choose from {', '.join(PAIRS)}")
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.clip(np.where(large > 0, 100.0 * stroke / np.where(large > 0, large, 1.0), 0.0), 0.0, 100.0)
    return large, small, stroke, fraction


def reconcile_phenotypes(
    values: np.ndarray, heart_rate: np.ndarray | float | None, pairs: Mapping[str, str] | None = None
) -> np.ndarray:
    """Return a copy of ``values`` (``(n, 82)`` or ``(82,)``) in which every identity of this module holds.

    ``heart_rate``: beats/min per record (or one number); where it is None or not finite, LV cardiac output is set to
    NaN rather than left inconsistent. ``pairs`` maps chamber name to its primary pair (default ``"small"``: the two
    volumes are kept).
    """
    values = np.asarray(values, dtype=np.float64)
    single = values.ndim == 1
    out = np.array(values[None] if single else values, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] != 82:
        raise InputError(f"phenotypes must be (n, 82), got {values.shape}")
    pairs = dict(pairs or {})
    for chamber in CHAMBERS:
        pair = pairs.get(chamber.name, "small")
        idx = {role: phenotype_index(getattr(chamber, role)) for role in ("large", "small", "stroke", "fraction")}
        large, small, stroke, fraction = _derive(out[:, idx["large"]], out[:, idx[pair]], pair)
        out[:, idx["large"]], out[:, idx["small"]] = large, small
        out[:, idx["stroke"]], out[:, idx["fraction"]] = stroke, fraction
    hr = (
        np.full(out.shape[0], np.nan)
        if heart_rate is None
        else np.broadcast_to(np.asarray(heart_rate, dtype=np.float64), (out.shape[0],))
    )
    out[:, phenotype_index(CARDIAC_OUTPUT)] = out[:, phenotype_index("LVSV")] * hr / 1000.0
    return out[0] if single else out


def identity_violations(values: np.ndarray, heart_rate: np.ndarray | float | None = None) -> dict[str, float]:
    """Largest absolute violation of each identity over the records (0 = exact); in the identity's own unit."""
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    col = {name: v[:, phenotype_index(name)] for c in CHAMBERS for name in (c.large, c.small, c.stroke, c.fraction)}
    out = {}
    for c in CHAMBERS:
        out[f"{c.stroke} = {c.large} - {c.small}"] = float(
            np.max(np.abs(col[c.stroke] - (col[c.large] - col[c.small])))
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            ef = 100.0 * (col[c.large] - col[c.small]) / col[c.large]
        out[f"{c.fraction} = 100 {c.stroke} / {c.large}"] = float(np.nanmax(np.abs(col[c.fraction] - ef)))
    if heart_rate is not None:
        hr = np.broadcast_to(np.asarray(heart_rate, dtype=np.float64), (v.shape[0],))
        co = v[:, phenotype_index(CARDIAC_OUTPUT)]
        out["LVCO = LVSV x HR / 1000"] = float(np.nanmax(np.abs(co - col["LVSV"] * hr / 1000.0)))
    return out


def choose_primary_pairs(predicted: np.ndarray, truth: np.ndarray, heart_rate: np.ndarray) -> dict[str, str]:
    """Per chamber, the primary pair whose derived quantities correlate best with ``truth`` (mean Pearson r over the
    chamber's four phenotypes, on a validation split). Ties keep the earlier pair of :data:`PAIRS`."""
    chosen = {}
    for chamber in CHAMBERS:
        names = (chamber.large, chamber.small, chamber.stroke, chamber.fraction)
        best, best_r = "small", -np.inf
        for pair in PAIRS:
            rec = reconcile_phenotypes(predicted, heart_rate, {chamber.name: pair})
            rs = [safe_pearson_r(truth[:, phenotype_index(n)], rec[:, phenotype_index(n)]) for n in names]
            mean_r = float(np.nanmean(rs)) if np.isfinite(rs).any() else -np.inf
            if mean_r > best_r + 1e-12:
                best, best_r = pair, mean_r
        chosen[chamber.name] = best
    return chosen


def safe_pearson_r(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Pearson r over the rows where both are finite; NaN when either side is constant or fewer than 3 rows remain."""
    from cardiacnets.metrics import pearson_r

    keep = np.isfinite(truth) & np.isfinite(predicted)
    if keep.sum() < 3 or np.ptp(truth[keep]) == 0 or np.ptp(predicted[keep]) == 0:
        return float("nan")
    return float(pearson_r(truth[keep], predicted[keep]))


def derivation_table(pairs: Mapping[str, str]) -> dict[str, str]:
    """Derived phenotype short name -> how it is computed, for the manifest and the docs."""
    table = {}
    for chamber in CHAMBERS:
        pair = pairs.get(chamber.name, "small")
        formulas = {
            "small": {chamber.stroke: f"{chamber.large} - {chamber.small}",
                      chamber.fraction: f"100 x {chamber.stroke} / {chamber.large}"},
            "stroke": {chamber.small: f"{chamber.large} - {chamber.stroke}",
                       chamber.fraction: f"100 x {chamber.stroke} / {chamber.large}"},
            "fraction": {chamber.stroke: f"{chamber.large} x {chamber.fraction} / 100",
                         chamber.small: f"{chamber.large} - {chamber.stroke}"},
        }[pair]  # fmt: skip
        table.update(formulas)
    table[CARDIAC_OUTPUT] = "LVSV x heart rate / 1000 (the ECG heart rate given to the model)"
    return table
