"""Latent subjects: demographics, body size, haemodynamics, rhythm, conduction and disease state with severity.

Facts from ``reference/domain-notes.md`` sections 1.3 (healthy ranges), 2 (disease shifts) and 3.3 (ECG prevalences).
Every quantity is drawn from :class:`~cardiacnets.synth._random.SubjectRandom`, so subject ``i`` depends only on
``(seed, i)``. All arrays are ``(n,)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.synth._random import SubjectRandom
from cardiacnets.synth.sites import Population

#: Label order of ``labels`` (docs/architecture.md, "Data contracts").
LABELS: tuple[str, ...] = ("CAD", "PH", "PC", "CM", "HF")
#: ``cm_subtype`` values 0, 1, 2 (-1 = no cardiomyopathy).
CM_SUBTYPES: tuple[str, ...] = ("RCM", "DCM", "HCM")
#: Population-mode prevalences (an imaging cohort enriched a little so that every class has cases at small n).
DEFAULT_PREVALENCE: dict[str, float] = {"CAD": 0.08, "PH": 0.02, "PC": 0.02, "CM": 0.03, "HF": 0.04}
#: Balanced-mode groups, drawn with equal probability.
BALANCED_GROUPS: tuple[str, ...] = ("healthy", "CAD", "PH", "PC", "HF", "RCM", "DCM", "HCM")

RHYTHMS: tuple[str, ...] = ("sinus", "AF")
CONDUCTIONS: tuple[str, ...] = ("none", "LBBB", "RBBB")
CAD_TERRITORIES: tuple[str, ...] = ("LAD", "RCA", "LCx")
HF_TYPES: tuple[str, ...] = ("none", "HFrEF", "HFmrEF", "HFpEF")
HCM_VARIANTS: tuple[str, ...] = ("none", "septal", "apical", "concentric")


def _check_prevalence(
    prevalence: Mapping[str, float] | None, base: Mapping[str, float] = DEFAULT_PREVALENCE
) -> dict[str, float]:
    prev = dict(base)
    for key, value in (prevalence or {}).items():
        if key not in prev:
            raise InputError(f"unknown disease {key!r} in prevalence; expected one of {list(LABELS)}")
        if not 0.0 <= float(value) <= 1.0:
            raise InputError(f"prevalence of {key} must be in [0, 1], got {value!r}")
        prev[key] = float(value)
    return prev


def sample_subjects(
    rnd: SubjectRandom,
    mode: str = "population",
    prevalence: Mapping[str, float] | None = None,
    population: Population | None = None,
) -> dict[str, np.ndarray]:
    """Draw the latent state of ``rnd.n`` subjects.

    Returns a dict of ``(n,)`` arrays: ``sex`` (0 F, 1 M), ``age`` (years), ``height`` (cm), ``weight`` (kg), ``bmi``,
    ``bsa`` (m², Mosteller), ``heart_rate`` (bpm), ``pulse_pressure`` (central, mmHg), ``hypertension``, disease flags
    ``cad, ph, pc, cm, hf`` (bool), ``cm_subtype`` (-1/0 RCM/1 DCM/2 HCM), severities in [0, 1], and sub-states
    (``cad_territory``, ``cad_mi``, ``cad_transmural``, ``cad_q_waves``, ``hf_type``, ``hcm_variant``, ``amyloid``,
    ``pc_effusion_mm``, ``pc_thickening_mm``, ``pc_stage``, ``pc_constrictive``, ``rhythm`` (0 sinus, 1 AF),
    ``conduction`` (0 none, 1 LBBB, 2 RBBB)).

    ``population``: a site's demography, habitus and prevalences (:class:`~cardiacnets.synth.sites.Population`; None:
    the default site's); ``prevalence`` overrides its prevalences.
    """
    if mode not in ("population", "balanced"):
        raise InputError(f"mode must be 'population' or 'balanced', got {mode!r}")
    population = population or Population()
    d = _disease_assignment(rnd, mode, _check_prevalence(prevalence, population.prevalence))
    _body(d, rnd, population)
    for step in (_disease_states, _rhythm_and_haemodynamics):
        step(d, rnd)
    casts = {"sex": np.int8, "cm_subtype": np.int8, "cad_territory": np.int8, "hf_type": np.int8,
             "hcm_variant": np.int8, "pc_stage": np.int8, "rhythm": np.int8, "conduction": np.int8}  # fmt: skip
    return {key: d[key].astype(casts[key]) if key in casts else d[key] for key in _SUBJECT_KEYS}


#: The latents :func:`sample_subjects` returns, in order.
_SUBJECT_KEYS = (
    "sex", "age", "height", "weight", "bmi", "bsa", "heart_rate", "pulse_pressure", "hypertension",
    "cad", "ph", "pc", "cm", "hf", "cm_subtype", "cad_severity", "ph_severity", "pc_severity", "cm_severity",
    "hf_severity", "cad_territory", "cad_mi", "cad_transmural", "cad_q_waves", "cad_hibernation", "hf_type",
    "hcm_variant", "amyloid", "pc_effusion_mm", "pc_thickening_mm", "pc_stage", "pc_constrictive", "rhythm",
    "conduction",
)  # fmt: skip


def _disease_assignment(rnd: SubjectRandom, mode: str, prev: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Disease flags (balanced: one group each; population: independent draws at ``prev``) and the comorbidity of
    heart failure with cardiomyopathies and large infarcts."""
    if mode == "balanced":
        group = rnd.choice("group", np.ones(len(BALANCED_GROUPS)))
        cad, ph, pc, hf, cm = group == 1, group == 2, group == 3, group == 4, group >= 5
        subtype = np.where(cm, group - 5, -1)
    else:
        cad = rnd.bernoulli("cad", prev["CAD"])
        ph = rnd.bernoulli("ph", prev["PH"])
        pc = rnd.bernoulli("pc", prev["PC"])
        cm = rnd.bernoulli("cm", prev["CM"])
        hf = rnd.bernoulli("hf", prev["HF"])
        subtype = np.where(cm, rnd.choice("cm_subtype", [0.2, 0.5, 0.3]), -1)
    dcm, rcm = subtype == 1, subtype == 0
    cad_mi = cad & rnd.bernoulli("cad_mi", 0.5)
    cad_sev = np.where(cad, rnd.uniform("cad_sev") ** 0.8, 0.0)
    hf = hf | (dcm & rnd.bernoulli("hf_dcm", 0.5)) | (rcm & rnd.bernoulli("hf_rcm", 0.35))
    hf = hf | (cad_mi & (cad_sev > 0.6) & rnd.bernoulli("hf_cad", 0.4))
    return {"cad": cad, "ph": ph, "pc": pc, "cm": cm, "hf": hf, "cm_subtype": subtype, "cad_mi": cad_mi,
            "cad_severity": cad_sev}  # fmt: skip


def _body(d: dict[str, np.ndarray], rnd: SubjectRandom, pop: Population) -> None:
    """Sex, age, height, weight, BMI, body surface area (Mosteller) and hypertension, for the site's ``pop``."""
    subtype = d["cm_subtype"]
    hcm, dcm, rcm = subtype == 2, subtype == 1, subtype == 0
    cad, hf = d["cad"], d["hf"]
    p_male = np.where(cad | hf, 0.65, np.where(hcm | dcm, 0.6, 0.48))
    if pop.male_shift:
        p_male = np.clip(p_male + pop.male_shift, 0.0, 1.0)
    d["sex"] = sex = rnd.bernoulli("sex", p_male).astype(np.int8)
    male = sex == 1
    age = pop.age_mean + pop.age_sd * rnd.normal("age") + np.where(hf | cad | rcm, 5.0, 0.0)
    d["age"] = age = np.clip(age, pop.age_min, pop.age_max)
    mean_height = np.where(male, 176.0, 163.0)
    if pop.height_shift_cm:
        mean_height = mean_height + pop.height_shift_cm
    d["height"] = height = mean_height + np.where(male, 7.0, 6.5) * rnd.normal("height")
    bmi = np.exp(np.log(pop.bmi_median) + pop.bmi_log_sd * rnd.normal("bmi")) + np.where(hf, 2.0, 0.0)
    d["bmi"] = bmi = np.clip(bmi, 16.0, 50.0)
    d["weight"] = weight = bmi * (height / 100.0) ** 2
    d["bsa"] = np.sqrt(height * weight / 3600.0)
    d["hypertension"] = rnd.bernoulli("htn", np.clip(0.15 + 0.012 * (age - 45.0) + 0.01 * (bmi - 26.0), 0.05, 0.8))


def _disease_states(d: dict[str, np.ndarray], rnd: SubjectRandom) -> None:
    """Severities in [0, 1] and each disease's sub-states (territory, infarct, HF type, HCM variant, amyloid,
    pericardial effusion, thickening, stage, constriction)."""
    cad, ph, pc, cm, hf, cad_mi = d["cad"], d["ph"], d["pc"], d["cm"], d["hf"], d["cad_mi"]
    subtype = d["cm_subtype"]
    dcm, hcm, rcm = subtype == 1, subtype == 2, subtype == 0
    d["ph_severity"] = np.where(ph, rnd.uniform("ph_sev"), 0.0)
    d["cm_severity"] = np.where(cm, 0.3 + 0.7 * rnd.uniform("cm_sev"), 0.0)
    d["hf_severity"] = np.where(hf, rnd.uniform("hf_sev"), 0.0)
    d["pc_severity"] = np.where(pc, rnd.uniform("pc_sev"), 0.0)

    d["cad_territory"] = np.where(cad, rnd.choice("cad_territory", [0.5, 0.3, 0.2]), -1)
    d["cad_transmural"] = cad_mi & rnd.bernoulli("cad_transmural", 0.6)
    d["cad_q_waves"] = cad_mi & rnd.bernoulli("cad_q", 0.6)
    d["cad_hibernation"] = cad & ~cad_mi & rnd.bernoulli("cad_hib", 0.3)

    hf_type = np.where(hf, 1 + rnd.choice("hf_type", [0.5, 0.15, 0.35]), 0)
    # Dilated and ischaemic HF has a reduced EF.
    d["hf_type"] = np.where(hf & (dcm | (cad_mi & (d["cad_severity"] > 0.6))), 1, hf_type)
    d["hcm_variant"] = np.where(hcm, 1 + rnd.choice("hcm_variant", [0.7, 0.1, 0.2]), 0)
    d["amyloid"] = amyloid = rcm & rnd.bernoulli("amyloid", 0.6)

    effusion_present = pc & rnd.bernoulli("pc_effusion", 0.6)
    pc_effusion_mm = np.where(effusion_present, 3.0 + 12.0 * rnd.uniform("pc_eff_mm") ** 1.5, 0.0)
    d["pc_effusion_mm"] = np.where(
        amyloid & rnd.bernoulli("amyloid_eff", 0.4), np.maximum(pc_effusion_mm, 3.0), pc_effusion_mm
    )
    d["pc_thickening_mm"] = np.where(pc & rnd.bernoulli("pc_thick", 0.5), 4.0 + 2.0 * rnd.uniform("pc_thick_mm"), 2.0)
    d["pc_stage"] = np.where(pc, 1 + rnd.choice("pc_stage", [0.55, 0.15, 0.15, 0.15]), 0)  # 1..4
    d["pc_constrictive"] = pc & rnd.bernoulli("pc_constrictive", 0.1)


def _rhythm_and_haemodynamics(d: dict[str, np.ndarray], rnd: SubjectRandom) -> None:
    """Rhythm (AF risk by age and disease), conduction (LBBB, RBBB), heart rate and central pulse pressure."""
    age, ph, pc, hf, hf_type = d["age"], d["ph"], d["pc"], d["hf"], d["hf_type"]
    subtype = d["cm_subtype"]
    dcm, hcm, rcm = subtype == 1, subtype == 2, subtype == 0
    p_af = 0.02 + 0.002 * np.clip(age - 60.0, 0.0, None)
    p_af = p_af + np.where(hf, np.where(hf_type == 3, 0.35, 0.25), 0.0) + np.where(rcm, 0.35, 0.0)
    p_af = p_af + np.where(dcm, 0.2, 0.0) + np.where(hcm, 0.08, 0.0) + np.where(ph, 0.1, 0.0)
    d["rhythm"] = rhythm = rnd.bernoulli("af", np.clip(p_af, 0.0, 0.7)).astype(np.int8)

    p_lbbb = 0.01 + np.where(dcm | (hf_type == 1), 0.22, 0.0) + np.where(hcm, 0.02, 0.0)
    p_lbbb = p_lbbb + np.where(d["cad_mi"], 0.03, 0.0)
    p_rbbb = 0.02 + np.where(ph, 0.2, 0.0) + np.where(hcm, 0.05, 0.0) + np.where(hf, 0.05, 0.0)
    u = rnd.uniform("conduction")
    d["conduction"] = np.where(u < p_lbbb, 1, np.where(u < p_lbbb + p_rbbb, 2, 0)).astype(np.int8)

    heart_rate = 64.0 + 9.0 * rnd.normal("hr") - 2.0 * (d["sex"] == 1)
    heart_rate = heart_rate + 12.0 * d["hf_severity"] * hf + 10.0 * d["ph_severity"] + 8.0 * (pc & (d["pc_stage"] == 1))
    heart_rate = heart_rate + 6.0 * dcm + np.where(rhythm == 1, 14.0 + 8.0 * rnd.normal("af_rate"), 0.0)
    d["heart_rate"] = np.clip(heart_rate, 42.0, 130.0)

    pulse_pressure = 38.0 + 0.5 * (age - 60.0) + 7.0 * d["hypertension"] + 7.0 * rnd.normal("pp")
    d["pulse_pressure"] = np.clip(pulse_pressure, 20.0, 90.0)


def labels_of(subj: Mapping[str, np.ndarray]) -> np.ndarray:
    """Binary labels ``(n, 5)`` int8 in the order of :data:`LABELS`."""
    return np.stack([subj["cad"], subj["ph"], subj["pc"], subj["cm"], subj["hf"]], axis=1).astype(np.int8)


def icd10_codes(subj: Mapping[str, np.ndarray]) -> np.ndarray:
    """ICD-10(-CM) style codes per subject, ``;``-separated: ``(n,)`` str. Empty for a healthy subject."""
    n = subj["sex"].shape[0]
    codes = np.full(n, "", dtype=object)

    def add(mask: np.ndarray, code: np.ndarray | str) -> None:
        nonlocal codes
        code_arr = np.broadcast_to(np.asarray(code, dtype=object), (n,))
        sep = np.where(codes == "", "", ";").astype(object)
        codes = np.where(mask, codes + sep + code_arr, codes)

    add(subj["cad"], np.where(subj["cad_mi"], "I25.2", "I25.10"))
    add(subj["ph"], np.where(subj["ph_severity"] > 0.5, "I27.0", "I27.20"))
    pc_code = np.where(subj["pc_constrictive"], "I31.1", np.where(subj["pc_effusion_mm"] > 0, "I31.3", "I30.9"))
    add(subj["pc"], pc_code)
    cm_code = np.select(
        [subj["cm_subtype"] == 1, subj["hcm_variant"] == 1, subj["cm_subtype"] == 2, subj["amyloid"]],
        ["I42.0", "I42.1", "I42.2", "E85.4;I43"],
        default="I42.5",
    )
    add(subj["cm"], cm_code)
    add(subj["hf"], np.select([subj["hf_type"] == 1, subj["hf_type"] == 2], ["I50.20", "I50.40"], default="I50.30"))
    add(subj["rhythm"] == 1, "I48.91")
    add(subj["conduction"] == 1, "I44.7")
    add(subj["conduction"] == 2, "I45.10")
    add(subj["hypertension"], "I10")
    return codes.astype(str)
