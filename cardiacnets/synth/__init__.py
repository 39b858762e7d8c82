"""Synthetic paired ECG / cine-CMR cohort (README, "Synthetic cohort").

``simulate(n, seed)`` returns subjects ``0..n-1`` of the cohort ``seed``; ``simulate_subjects(indices, seed)`` any
subset. Subject ``i`` is a pure function of ``(seed, i)`` (counter-based randomness, see ``_random``), so a dataset
can generate subject ``i`` on the fly and batches never change a subject. Pipeline: latent subject
(``subjects``) -> geometry over 50 frames and the 82 phenotypes measured from it (``geometry``) -> short-axis and
4-chamber cines (``render``) -> 12-lead ECG from a Dower-projected VCG with electrode-level noise (``ecg``), recorded
by the site's cart (``cart``). ``site=NAME`` draws the cohort of a simulated hospital (``sites``: population, cart,
placement habits and noise); the default site is the cohort as it always was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.synth._random import SubjectRandom
from cardiacnets.synth.ecg import ecg_features, synthesize_ecg
from cardiacnets.synth.geometry import N_FRAMES, build_geometry
from cardiacnets.synth.render import LA_SIZE, SA_SIZE, render_four_chamber, render_short_axis
from cardiacnets.synth.sites import SITES, Site, get_site, site_names
from cardiacnets.synth.subjects import (
    BALANCED_GROUPS,
    CM_SUBTYPES,
    CONDUCTIONS,
    DEFAULT_PREVALENCE,
    LABELS,
    RHYTHMS,
    icd10_codes,
    labels_of,
    sample_subjects,
)

__all__ = [
    "BALANCED_GROUPS",
    "CM_SUBTYPES",
    "CONDUCTIONS",
    "DEFAULT_PREVALENCE",
    "LABELS",
    "RHYTHMS",
    "SITES",
    "Site",
    "ecg_features",
    "get_site",
    "simulate",
    "simulate_subjects",
    "site_names",
]

logger = logging.getLogger(__name__)

#: Subjects per internal chunk (draws, geometry and ECG are vectorised over a chunk; cines are drawn per subject).
_CHUNK = 8

_COVARIATES = (
    "sex",
    "age",
    "height",
    "weight",
    "bmi",
    "bsa",
    "heart_rate",
    "pulse_pressure",
    "hypertension",
    "rhythm",
    "conduction",
    "cm_subtype",
    "cad_territory",
    "cad_mi",
    "hf_type",
    "hcm_variant",
    "amyloid",
    "pc_effusion_mm",
    "pc_stage",
)
_SEVERITIES = ("cad_severity", "ph_severity", "pc_severity", "cm_severity", "hf_severity")


def _simulate_chunk(
    indices: np.ndarray,
    seed: int,
    mode: str,
    prevalence: Mapping[str, float] | None,
    with_cines: bool,
    ecg_noise: bool,
    mains_hz: float,
    cines: tuple[np.ndarray, np.ndarray] | None = None,
    site: Site | None = None,
    native_rate: bool = False,
) -> dict[str, np.ndarray]:
    """One chunk of subjects; with ``with_cines`` the cines are rendered into ``cines`` (short axis, 4-chamber
    ``(len(indices), 50, H, W)`` float32 views of the cohort's arrays)."""
    rnd = SubjectRandom(seed, indices)
    subj = sample_subjects(rnd, mode=mode, prevalence=prevalence, population=None if site is None else site.population)
    geom = build_geometry(subj, rnd)
    out: dict[str, np.ndarray] = {"subject_index": indices.astype(np.int64)}
    out.update(synthesize_ecg(subj, geom, rnd, noise=ecg_noise, mains_hz=mains_hz, site=site, keep_native=native_rate))
    if with_cines:
        sa = render_short_axis(geom, subj, rnd, out=cines[0])
        out["cine_sa"] = sa["cine"]
        out["sa_lv_center"] = sa["lv_center"].astype(np.float32)
        out["cine_la"] = render_four_chamber(geom, subj, rnd, out=cines[1])["cine"]
    out["phenotypes"] = geom["phenotypes"]
    out["labels"] = labels_of(subj)
    for key in _COVARIATES:
        value = subj[key]
        out[key] = value.astype(np.float32) if value.dtype.kind == "f" else value.astype(np.int8)
    out["severity"] = np.stack([subj[k] for k in _SEVERITIES], axis=1).astype(np.float32)
    out["icd10"] = icd10_codes(subj)
    out["es_frame"] = geom["es_frame"].astype(np.int16)
    out["lv_volume_curve"] = geom["lv_volume"].astype(np.float32)
    out["lv_mass_true"] = geom["lv_mass_true"].astype(np.float32)
    return out


def simulate_subjects(
    indices: Sequence[int] | np.ndarray,
    seed: int = 0,
    *,
    mode: str = "population",
    prevalence: Mapping[str, float] | None = None,
    with_cines: bool = True,
    ecg_noise: bool = True,
    mains_hz: float | None = None,
    site: str | Site | None = None,
    native_rate: bool = False,
) -> dict[str, np.ndarray]:
    """Simulate the subjects ``indices`` of cohort ``seed``; see :func:`simulate` for the returned arrays."""
    idx = np.asarray(indices)
    resolved = get_site(site)
    # The default site takes the historical code path (byte-identical outputs); any other site passes its parameters.
    site_obj = None if resolved is SITES["default"] else resolved
    mains_hz = resolved.cart.mains_hz if mains_hz is None else float(mains_hz)
    if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0)):
        raise InputError("indices must be a 1-D sequence of non-negative integers")
    if mains_hz not in (50.0, 60.0):
        raise InputError(f"mains_hz must be 50 or 60, got {mains_hz!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    chunk = _CHUNK if with_cines else 32
    # The cines (3 MB a subject) are rendered straight into the cohort's arrays: no per-chunk copies to concatenate.
    whole = {}
    if with_cines:
        whole["cine_sa"] = np.empty((idx.size, N_FRAMES, SA_SIZE, SA_SIZE), dtype=np.float32)
        whole["cine_la"] = np.empty((idx.size, N_FRAMES, LA_SIZE, LA_SIZE), dtype=np.float32)
    parts = []
    for i in range(0, max(idx.size, 1), chunk):
        cines = (whole["cine_sa"][i : i + chunk], whole["cine_la"][i : i + chunk]) if with_cines else None
        parts.append(
            _simulate_chunk(
                idx[i : i + chunk],
                int(seed),
                mode,
                prevalence,
                with_cines,
                ecg_noise,
                mains_hz,
                cines,
                site_obj,
                native_rate,
            )
        )
    return {k: whole[k] if k in whole else np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def simulate(
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    mode: str = "population",
    prevalence: Mapping[str, float] | None = None,
    with_cines: bool = True,
    ecg_noise: bool = True,
    mains_hz: float | None = None,
    site: str | Site | None = None,
    native_rate: bool = False,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` paired subjects (indices ``start .. start+n-1``) of cohort ``seed``.

    Returns a dict of numpy arrays (first axis = subject):

    - ``ecg`` float32 ``(n, 12, 5000)`` mV, leads I, II, III, aVR, aVL, aVF, V1..V6 at 500 Hz (``ecg_noise=False``:
      clean projection, no noise / filter / quantisation); ``qrs_onsets`` ``(n, 64)`` beat onsets (samples, -1 pad);
      ``ecg_hr``, ``pr_s``, ``qrs_s``, ``qt_s``, ``qtc_s`` (generator intervals).
    - ``cine_sa`` float32 ``(n, 50, 80, 80)`` and ``cine_la`` ``(n, 50, 96, 96)`` in [0, 1], frame 0 = end diastole
      (absent with ``with_cines=False``); ``sa_lv_center`` ``(n, 2)`` LV centre (row, col) pixel.
    - ``phenotypes`` float32 ``(n, 82)``, order and units of ``reference/phenotypes_82.csv``.
    - ``labels`` int8 ``(n, 5)`` (CAD, PH, PC, CM, HF); ``cm_subtype`` int8 (-1 none, 0 RCM, 1 DCM, 2 HCM);
      ``severity`` ``(n, 5)`` in [0, 1]; ``icd10`` str codes joined by ``;``.
    - covariates: ``sex`` (0 F, 1 M), ``age`` (y), ``height`` (cm), ``weight`` (kg), ``bmi``, ``bsa`` (m²),
      ``heart_rate`` (bpm, CMR), ``pulse_pressure`` (mmHg), ``hypertension``, ``rhythm`` (0 sinus, 1 AF),
      ``conduction`` (0 none, 1 LBBB, 2 RBBB) and disease sub-states.
    - ``es_frame``, ``lv_volume_curve`` ``(n, 50)`` mL, ``lv_mass_true`` g (noise-free geometry), ``subject_index``.

    ``mode="balanced"`` draws healthy, CAD, PH, PC, HF, RCM, DCM and HCM with equal probability; ``prevalence``
    overrides the population-mode prevalences (the site's; the default site's are :data:`DEFAULT_PREVALENCE`).
    ``mains_hz`` 50 (UK) or 60 (US); default: the site cart's.

    ``site``: a simulated hospital (:data:`SITES`: ``default``, ``us-hospital``, ``community``, ``asia-tertiary``, or a
    :class:`Site`), which sets the population (age, sex, habitus, prevalences), the cart (sampling rate, filters, ADC,
    mains), electrode-placement habits and noise. ``ecg`` stays in the 500-Hz contract (a cart at another rate is
    resampled, as a converter does); with ``native_rate`` a non-default cart's record at its own rate comes too
    (``ecg_native`` ``(n, 12, 10 * fs)``, ``ecg_native_fs``). ``None`` or ``"default"``: the cohort as before.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise InputError(f"start must be a non-negative integer, got {start!r}")
    return simulate_subjects(
        np.arange(start, start + n, dtype=np.int64),
        seed,
        mode=mode,
        prevalence=prevalence,
        with_cines=with_cines,
        ecg_noise=ecg_noise,
        mains_hz=mains_hz,
        site=site,
        native_rate=native_rate,
    )
