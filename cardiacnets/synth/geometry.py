"""Cardiac geometry over the 50-frame cycle and the 82 phenotypes measured from it.

LV: a "bullet" (V = 5/6 · A · L) whose mid-cavity endocardial radius varies with angle (16 AHA segments, regional
motion) and whose myocardium conserves its volume through the cycle. RV, LA and RA are volume curves with the
shapes of domain-notes section 4.3; the atria are measured by area-length from the 4-chamber ellipses the renderer
draws; the aorta by areas and central pulse pressure. Phenotypes follow the UK Biobank (Bai et al. 2020) definitions
of ``reference/phenotypes_82.csv``: ES = argmin LV volume, LVM = myocardial volume x 1.05 g/mL, strains as ED-to-peak
length changes. Lengths in mm, volumes in mL, areas in mm².
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np

from cardiacnets.synth._random import SubjectRandom

N_FRAMES = 50
N_ANGLES = 36
#: Centre angle (radians, counter-clockwise from anterior towards the septum) of each AHA segment 1..16.
_RING6 = np.deg2rad(np.arange(6) * 60.0)
_RING4 = np.deg2rad(np.arange(4) * 90.0)
SEGMENT_ANGLES = np.concatenate([_RING6, _RING6, _RING4])
SEGMENT_RING = np.array([0] * 6 + [1] * 6 + [2] * 4)  # 0 basal, 1 mid, 2 apical
# Segments per coronary territory (AHA 1-based numbers minus one), domain-notes 2.2 CAD table.
_TERRITORY_SEGMENTS = {0: [0, 1, 6, 7, 12, 13], 1: [2, 3, 8, 9, 14], 2: [4, 5, 10, 11, 15]}
_TERRITORY_ELL = {0: [4, 5], 1: [0, 2], 2: [1, 3]}
_SEPTAL = [1, 2, 7, 8, 13]
_APICAL = [12, 13, 14, 15]


def cycle_curves(es_frac: np.ndarray, ivr_frac: np.ndarray, early_fraction: np.ndarray) -> np.ndarray:
    """Normalised systolic excursion ``s`` ``(n, 50)``: 0 at ED (frame 0), 1 at ES, back towards 0 by the next ED.

    Ejection is a skewed raised cosine up to ``es_frac`` of the cycle; after isovolumic relaxation (``ivr_frac``)
    the ventricle fills with an exponential early wave carrying ``early_fraction`` of the stroke volume and an atrial
    kick over the last 15 % of the cycle.
    """
    phi = (np.arange(N_FRAMES) / N_FRAMES)[None, :]
    es = es_frac[:, None]
    x = np.clip(phi / es, 0.0, 1.0) ** 0.85
    systole = 0.5 * (1.0 - np.cos(np.pi * x))
    d0 = es + ivr_frac[:, None]
    tau = 0.09
    early = np.clip(1.0 - np.exp(-np.clip(phi - d0, 0.0, None) / tau), 0.0, 1.0)
    early = early / (1.0 - np.exp(-np.clip(1.0 - d0, 1e-3, None) / tau))
    a0 = 0.85
    atrial = np.where(phi > a0, 0.5 * (1.0 - np.cos(np.pi * (phi - a0) / (1.0 - a0))), 0.0)
    fe = early_fraction[:, None]
    filling = np.clip(fe * early + (1.0 - fe) * atrial, 0.0, 1.0)
    return np.where(phi <= es, systole, 1.0 - filling)


def atrial_curve(s_lv: np.ndarray, conduit_fraction: np.ndarray, es_frac: np.ndarray) -> np.ndarray:
    """Normalised atrial volume ``(n, 50)`` in [0, 1]: fills while the ventricle ejects (reservoir), empties by the
    conduit fraction in early diastole and by the booster (atrial kick) at end diastole. 0 = minimum, 1 = maximum."""
    phi = (np.arange(N_FRAMES) / N_FRAMES)[None, :]
    systolic = phi <= es_frac[:, None]
    diastolic_drop = 1.0 - s_lv  # 0 at ES, 1 at the next ED
    late = np.where(phi > 0.85, 0.5 * (1.0 - np.cos(np.pi * (phi - 0.85) / 0.15)), 0.0)
    c = conduit_fraction[:, None]
    early_part = np.clip(diastolic_drop - (1.0 - c) * late, 0.0, None)
    early_part = np.minimum(early_part / np.maximum(1.0 - (1.0 - c) * 1.0, 1e-3), 1.0) * c
    dia = 1.0 - early_part - (1.0 - c) * late
    return np.clip(np.where(systolic, s_lv, dia), 0.0, 1.0)


def _myo_thickness(r: np.ndarray, area_over_pi: np.ndarray) -> np.ndarray:
    """Wall thickness from endocardial radius and conserved myocardial area / pi (same units as r)."""
    return np.sqrt(r**2 + area_over_pi) - r


def build_geometry(subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> dict[str, np.ndarray]:
    """Geometry over the cycle and the 82 phenotypes.

    Returns (besides intermediate latents): ``lv_volume`` ``(n, 50)`` mL, ``lv_length`` ``(n, 50)`` mm,
    ``endo_radius`` / ``wall_thickness`` ``(n, 50, 36)`` mm on the mid slice, ``rv_volume``, ``la_volume``,
    ``ra_volume`` ``(n, 50)`` mL, ``es_frame`` ``(n,)``, ``segment_wt`` ``(n, 16)`` mm at ED, and ``phenotypes``
    ``(n, 82)`` float32 with measurement noise.

    Built in steps, each a function below that adds its quantities to one namespace: the subject's latents, the LV
    targets, the segmental walls and motion, the cycle timing, the mid-slice endocardium, the LV volume and mass, the
    strains, the right ventricle, the atria, the aorta, and last the measured phenotypes.
    """
    g = _latents(subj, rnd)
    for step in (_lv_targets, _segment_walls, _cycle_timing, _mid_slice, _lv_volume_and_mass, _strains,
                 _right_ventricle, _atria, _aorta):  # fmt: skip
        step(g, rnd)
    return {
        "phenotypes": _measured_phenotypes(g, rnd),
        "lv_volume": g.lv_volume,
        "lv_length": g.length,
        "lv_mass_true": g.lvm_g,
        "endo_radius": g.endo,
        "wall_thickness": g.wall,
        "segment_wt": g.seg_wt,
        "mapse": g.mapse,
        "s_curve": g.s,
        "es_frame": g.es_frame,
        "es_fraction": g.es_frac,
        "rv_volume": g.rv_volume,
        "la_volume": g.la_volume,
        "ra_volume": g.ra_volume,
        "la_len": g.la_len,
        "ra_len": g.ra_len,
        "la_area": g.la_area,
        "ra_area": g.ra_area,
        "theta": g.theta,
    }


def _latents(subj: Mapping[str, np.ndarray], rnd: SubjectRandom) -> SimpleNamespace:
    """The subject's latents that the geometry depends on, as one namespace the steps below add to."""
    sub = subj["cm_subtype"]
    return SimpleNamespace(
        subj=subj,
        n=rnd.n,
        male=subj["sex"] == 1,
        age=subj["age"],
        bsa=subj["bsa"],
        hr=subj["heart_rate"],
        ph=subj["ph"],
        pc=subj["pc"],
        hf=subj["hf"],
        dcm=sub == 1,
        hcm=sub == 2,
        rcm=sub == 0,
        amyloid=subj["amyloid"],
        hf_r=subj["hf_type"] == 1,
        hf_mr=subj["hf_type"] == 2,
        hf_p=subj["hf_type"] == 3,
        cad_sev=subj["cad_severity"],
        ph_sev=subj["ph_severity"],
        cm_sev=subj["cm_severity"],
        hf_sev=subj["hf_severity"],
        mi=subj["cad_mi"],
        transmural=subj["cad_transmural"],
        af=subj["rhythm"] == 1,
        htn=subj["hypertension"],
        constrictive=subj["pc_constrictive"],
        variant=subj["hcm_variant"],
        territory=subj["cad_territory"],
    )


def _lv_targets(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """LV targets: a healthy body-size model, then disease shifts of EDV, EF, mass, sphericity and MAPSE."""
    male, age, bsa, dcm, hcm, rcm = g.male, g.age, g.bsa, g.dcm, g.hcm, g.rcm
    hf_r, hf_mr, hf_p = g.hf_r, g.hf_mr, g.hf_p
    g.size = (bsa / np.where(male, 1.96, 1.71)) * (1.0 - 0.006 * (age - 60.0))
    edv = np.where(male, 166.0, 124.0) * g.size * np.exp(0.15 * rnd.normal("edv"))
    ef = np.where(male, 58.0, 61.0) + 4.5 * rnd.normal("ef")
    lvm_ref = np.where(male, 104.0, 72.0) * (bsa / np.where(male, 1.96, 1.71)) * np.exp(0.14 * rnd.normal("lvm"))
    lvm_ref = lvm_ref * np.where(male, 1.0 - 0.004 * (age - 60.0), 1.0) * np.where(g.htn, 1.12, 1.0)
    # Eccentric hypertrophy of dilated hearts (the wall stays normal or thin while the mass grows).
    g.lvm_ref = lvm_ref * np.where(dcm, 1.45 + 0.2 * g.cm_sev, 1.0) * np.where(hf_r & ~dcm, 1.3, 1.0)

    edv = edv * np.where(dcm, 1.5 + 0.45 * g.cm_sev, 1.0) * np.where(hcm, 0.88, 1.0) * np.where(rcm, 0.85, 1.0)
    edv = (
        edv * np.where(hf_r & ~dcm, 1.3 + 0.2 * g.hf_sev, 1.0) * np.where(hf_mr, 1.12, 1.0) * np.where(hf_p, 0.95, 1.0)
    )
    edv = edv * np.where(g.ph, 0.88 - 0.1 * g.ph_sev, 1.0) * np.where(g.constrictive, 0.82, 1.0)
    g.edv = edv * np.where(g.mi, 1.0 + 0.3 * g.cad_sev**2, 1.0)
    ef_rng = rnd.normal("ef_dis")
    ef = np.where(dcm, 34.0 - 12.0 * g.cm_sev + 3.0 * ef_rng, ef)
    ef = np.where(hcm, 68.0 + 3.5 * ef_rng, ef)
    ef = np.where(rcm, 54.0 + 4.0 * ef_rng, ef)
    ef = np.where(hf_r & ~dcm, 32.0 - 6.0 * g.hf_sev + 3.0 * ef_rng, ef)
    ef = np.where(hf_mr, 45.0 + 2.0 * ef_rng, ef)
    ef = np.where(hf_p, np.maximum(ef, 55.0), ef)
    ef = ef - np.where(g.mi & ~(hf_r | hf_mr), 5.0 + 15.0 * g.cad_sev, 0.0)
    ef = ef - np.where(g.subj["cad_hibernation"], 2.0, 0.0)
    ef = ef - np.where(g.pc & (g.subj["pc_stage"] == 1), 3.0 * rnd.uniform("myopericarditis"), 0.0)
    g.ef = np.clip(ef, 12.0, 80.0)

    # LV length from volume and sphericity (L / r); dilated hearts are rounder.
    aspect = 3.4 * np.exp(0.06 * rnd.normal("aspect")) * np.where(dcm | hf_r, 0.85, 1.0)
    g.length_ed = (6.0 * g.edv * 1000.0 * aspect**2 / (5.0 * np.pi)) ** (1.0 / 3.0)
    g.r_ed = np.sqrt(6.0 * g.edv * 1000.0 / (5.0 * np.pi * g.length_ed))

    mapse = np.where(male, 15.5, 15.0) * np.exp(0.1 * rnd.normal("mapse"))
    mapse = mapse * np.where(dcm | hf_r, 0.55, 1.0) * np.where(hcm, 0.72, 1.0) * np.where(g.amyloid, 0.6, 1.0)
    mapse = mapse * np.where(hf_mr, 0.75, 1.0) * np.where(hf_p, 0.85, 1.0) * np.where(rcm & ~g.amyloid, 0.8, 1.0)
    g.mapse = mapse * np.where(g.mi, 1.0 - 0.3 * g.cad_sev, 1.0) * np.where(g.constrictive, 0.85, 1.0)


def _segment_walls(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Wall thickness per AHA segment at ED (mass-calibrated healthy thickness times a segment pattern, then the
    hypertrophy patterns and infarct thinning) and regional motion (1 = normal)."""
    n, cm_sev, variant = g.n, g.cm_sev, g.variant
    pattern = np.array([1.08, 1.12, 1.12, 1.05, 1.0, 1.0, 1.05, 1.08, 1.08, 1.02, 0.98, 0.98, 0.82, 0.85, 0.82, 0.8])
    pattern = pattern / pattern.mean()
    seg_noise = np.exp(0.06 * rnd.normal("wt_seg", 16))
    # Solve 1.05 * 5/6 * pi * ((r+t)^2 (L+t) - r^2 L) = LVM for the mean thickness t (Newton, 6 steps).
    r_ed, length_ed = g.r_ed, g.length_ed
    target_mm3 = g.lvm_ref / 1.05 * 1000.0
    t = np.full(n, 6.0)
    for _ in range(6):
        f = 5.0 / 6.0 * np.pi * ((r_ed + t) ** 2 * (length_ed + t) - r_ed**2 * length_ed) - target_mm3
        df = 5.0 / 6.0 * np.pi * (2.0 * (r_ed + t) * (length_ed + t) + (r_ed + t) ** 2)
        t = np.clip(t - f / df, 2.5, 20.0)
    seg_wt = t[:, None] * pattern[None, :] * seg_noise
    mult = np.ones((n, 16))
    hyper = 2.0 + 1.4 * cm_sev
    sept_cols = np.zeros(16, dtype=bool)
    sept_cols[_SEPTAL] = True
    apical_cols = np.zeros(16, dtype=bool)
    apical_cols[_APICAL] = True
    mult = np.where((variant == 1)[:, None] & sept_cols, hyper[:, None], mult)
    mult = np.where((variant == 1)[:, None] & ~sept_cols, 1.45, mult)
    mult = np.where((variant == 2)[:, None] & apical_cols, (hyper + 0.4)[:, None], mult)
    mult = np.where((variant == 2)[:, None] & ~apical_cols, 1.3, mult)
    mult = np.where((variant == 3)[:, None], (1.6 + 0.6 * cm_sev)[:, None], mult)
    mult = mult * np.where(g.amyloid, 1.7 + 0.8 * cm_sev, 1.0)[:, None]
    mult = mult * np.where(g.hf_p, 1.25, 1.0)[:, None] * np.where(g.dcm, 0.92, 1.0)[:, None]
    # Regional motion (1 normal) and infarct thinning.
    motion = np.ones((n, 16))
    for terr, segs in _TERRITORY_SEGMENTS.items():
        cols = np.zeros(16, dtype=bool)
        cols[segs] = True
        in_terr = (g.territory == terr)[:, None] & cols
        motion = np.where(in_terr & g.mi[:, None], (0.35 - 0.3 * g.cad_sev)[:, None], motion)
        motion = np.where(in_terr & g.subj["cad_hibernation"][:, None], 0.7, motion)
        mult = np.where(in_terr & g.transmural[:, None], (0.85 - 0.3 * g.cad_sev)[:, None], mult)
    motion = np.where(g.hcm[:, None] & (mult > 1.8), 0.75, motion)
    g.motion = np.where(g.ph[:, None] & sept_cols, (1.0 - 0.5 * g.ph_sev)[:, None], motion)
    g.seg_wt = seg_wt * mult


def _cycle_timing(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Cycle timing: ES from the ejection time (Weissler), relaxation longer in stiff hearts; the LV excursion ``s``."""
    hr, age = g.hr, g.age
    lvet_ms = np.where(g.male, 413.0 - 1.7 * hr, 418.0 - 1.6 * hr)
    rr_ms = 60000.0 / hr
    g.es_frac = np.clip((50.0 + lvet_ms) / rr_ms + 0.01 * rnd.normal("es_jitter"), 0.31, 0.43)
    g.ivr_frac = np.clip((80.0 + 25.0 * (g.hcm | g.hf_p) - 25.0 * g.rcm) / rr_ms, 0.02, 0.15)
    early_fraction = np.clip(
        0.7 - 0.004 * (age - 60.0) - 0.15 * (g.hcm | g.hf_p | g.htn) + 0.2 * (g.rcm | g.constrictive), 0.4, 0.95
    )
    g.early_fraction = np.where(g.af, 1.0, early_fraction)
    g.s = cycle_curves(g.es_frac, g.ivr_frac, g.early_fraction)  # (n, F)


def _mid_slice(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Mid-slice endocardium r(f, θ) = r_ED(θ) (1 - κ m(θ) s(f)), κ solved for the target EF, and the wall
    thickness that conserves myocardial area."""
    s, motion, length_ed = g.s, g.motion, g.length_ed
    g.length = length_ed[:, None] - g.mapse[:, None] * s  # (n, F)
    mid = slice(6, 12)
    q = (1.0 - g.ef / 100.0) * length_ed / (length_ed - g.mapse)  # required area ratio ES/ED
    m_mid = motion[:, mid]
    a_coef = (m_mid**2).mean(axis=1)
    b_coef = m_mid.mean(axis=1)
    disc = np.clip(b_coef**2 - a_coef * (1.0 - q), 0.0, None)
    g.kappa = np.clip((b_coef - np.sqrt(disc)) / a_coef, 0.02, 0.6)

    g.theta = theta = np.linspace(0.0, 2.0 * np.pi, N_ANGLES, endpoint=False)
    ellipticity = 0.03 * rnd.normal("ellip")
    shape_ed = 1.0 + ellipticity[:, None] * np.cos(2.0 * (theta[None, :] - 0.5))
    # PH flattens the septum (θ ≈ 90°), more in systole (pressure overload, D-shape).
    sept_bump = np.exp(-(((theta - np.pi / 2.0 + np.pi) % (2 * np.pi) - np.pi) ** 2) / (2 * 0.45**2))
    flatten = (0.12 * g.ph_sev * g.ph)[:, None, None] * (0.6 + 0.4 * s[:, :, None]) * sept_bump[None, None, :]
    g.r_theta_ed = g.r_ed[:, None] * shape_ed  # (n, A)
    motion_theta = _mid_interp(motion, theta)
    endo = g.r_theta_ed[:, None, :] * (1.0 - g.kappa[:, None, None] * motion_theta[:, None, :] * s[:, :, None])
    g.endo = endo * (1.0 - flatten)  # (n, F, A)
    g.wt_theta_ed = _mid_interp(g.seg_wt, theta)
    area_ed = (g.r_theta_ed + g.wt_theta_ed) ** 2 - g.r_theta_ed**2  # myocardial area / π per angle
    g.wall = _myo_thickness(g.endo, area_ed[:, None, :] * (length_ed[:, None] / g.length)[:, :, None])


def _mid_interp(values: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Periodic linear interpolation of the 6 mid-segment values (columns 6..11 of ``values``) to the angles
    ``theta``: ``(n, len(theta))``."""
    pos = theta / (np.pi / 3.0)
    i0 = np.floor(pos).astype(int) % 6
    i1 = (i0 + 1) % 6
    w = pos - np.floor(pos)
    return values[:, 6 + i0] * (1.0 - w) + values[:, 6 + i1] * w


def _lv_volume_and_mass(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """LV volume over the cycle from the geometry (bullet), ES = argmin; myocardial mass from the whole LV."""
    lv_area = np.pi * (g.endo**2).mean(axis=2)  # (n, F) mm²
    g.lv_volume = 5.0 / 6.0 * lv_area * g.length / 1000.0
    g.es_frame = np.argmin(g.lv_volume, axis=1)
    g.edv_g = g.lv_volume[:, 0]
    g.esv_g = g.lv_volume[np.arange(g.n), g.es_frame]
    # Per-ring mean thickness around the mid-cavity bullet.
    seg_wt = g.seg_wt
    t_mean = seg_wt.mean(axis=1)
    r_mean_sq = (g.r_theta_ed**2).mean(axis=1)
    epi_sq = ((g.r_theta_ed + g.wt_theta_ed * (t_mean / seg_wt[:, 6:12].mean(axis=1))[:, None]) ** 2).mean(axis=1)
    t_apex = seg_wt[:, 12:].mean(axis=1)
    myo_mm3 = 5.0 / 6.0 * np.pi * (epi_sq * (g.length_ed + t_apex) - r_mean_sq * g.length_ed)
    g.lvm_g = 1.05 * myo_mm3 / 1000.0


def _strains(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Segmental circumferential and radial strains (ring radius, conserved myocardial area) and longitudinal
    strains (global from MAPSE, segmental patterns of amyloid, HCM and infarcts)."""
    seg_wt = g.seg_wt
    ring_scale = np.array([1.0, 1.0, 0.62])[SEGMENT_RING]
    r_seg_ed = g.r_ed[:, None] * ring_scale[None, :]
    r_seg_es = r_seg_ed * (1.0 - g.kappa[:, None] * g.motion)
    length_es = g.length_ed - g.mapse
    a_seg = (r_seg_ed + seg_wt) ** 2 - r_seg_ed**2
    t_seg_es = _myo_thickness(r_seg_es, a_seg * (g.length_ed / length_es)[:, None])
    g.ecc_seg = ((r_seg_es + t_seg_es / 2.0) / (r_seg_ed + seg_wt / 2.0) - 1.0) * 100.0
    # Feature tracking under-reads radial strain; 0.75 brings the bullet's mid-wall thickening to UKB-like values.
    g.err_seg = 0.75 * (t_seg_es / seg_wt - 1.0) * 100.0
    g.ell_global = -g.mapse / g.length_ed * 100.0
    ell_mult = np.ones((g.n, 6)) * np.exp(0.05 * rnd.normal("ell_mult", 6))
    ell_mult = np.where(g.amyloid[:, None], np.array([0.45, 0.45, 0.95, 0.95, 1.6, 1.6]), ell_mult)
    ell_mult = np.where((g.variant == 1)[:, None], np.array([0.7, 1.1, 0.75, 1.1, 1.0, 1.1]), ell_mult)
    for terr, segs in _TERRITORY_ELL.items():
        cols = np.zeros(6, dtype=bool)
        cols[segs] = True
        ell_mult = np.where(((g.territory == terr) & g.mi)[:, None] & cols, 0.35, ell_mult)
    g.ell_seg = g.ell_global[:, None] * ell_mult / ell_mult.mean(axis=1, keepdims=True)


def _right_ventricle(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """RV volume curve: body-size EDV and EF, shifted by PH, involvement in dilated hearts and restriction."""
    male, ph, ph_sev = g.male, g.ph, g.ph_sev
    rv_edv = np.where(male, 180.0, 128.0) * g.size * np.exp(0.14 * rnd.normal("rvedv"))
    rvef = np.where(male, 54.0, 58.0) + 0.05 * (g.age - 60.0) + 5.0 * rnd.normal("rvef")
    rv_edv = rv_edv * np.where(ph, 1.35 + 0.5 * ph_sev, 1.0) * np.where(g.constrictive, 0.82, 1.0)
    g.rv_inv = (g.dcm | g.hf_r) & rnd.bernoulli("rv_involved", 0.35)
    rv_edv = rv_edv * np.where(g.rv_inv, 1.25, 1.0) * np.where(g.rcm, 0.92, 1.0)
    rvef = np.where(ph, 40.0 - 14.0 * ph_sev + 3.0 * rnd.normal("rvef_ph"), rvef)
    rvef = rvef - np.where(g.rv_inv, 14.0, 0.0) - np.where(g.rcm, 6.0, 0.0)
    rvef = np.clip(rvef, 12.0, 80.0)
    s_rv = cycle_curves(np.clip(g.es_frac + 0.015, 0.3, 0.47), g.ivr_frac, g.early_fraction)
    g.rv_volume = rv_edv[:, None] * (1.0 - rvef[:, None] / 100.0 * s_rv)


def _atria(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Atria: volume curves, then the 4-chamber ellipses the renderer draws and their area-length measurement."""
    male, size, age, af, constrictive = g.male, g.size, g.age, g.af, g.constrictive
    la_max = np.where(male, 75.0, 65.0) * size * (1.0 + 0.004 * (age - 60.0)) * np.exp(0.2 * rnd.normal("la"))
    laef = np.where(male, 58.0, 60.0) + 6.0 * rnd.normal("laef")
    la_max = la_max * np.where(g.dcm, 1.5, 1.0) * np.where(g.hcm, 1.35, 1.0) * np.where(g.rcm, 1.9, 1.0)
    la_max = la_max * np.where(g.hf_r | g.hf_mr, 1.35, 1.0) * np.where(g.hf_p, 1.4, 1.0) * np.where(af, 1.3, 1.0)
    la_max = la_max * np.where(g.htn, 1.08, 1.0) * np.where(constrictive, 1.3, 1.0) * np.where(g.ph, 0.92, 1.0)
    laef = laef - 15.0 * g.dcm - 15.0 * g.hcm - 30.0 * g.rcm - 15.0 * (g.hf & ~g.dcm) - 18.0 * af - 12.0 * constrictive
    laef = np.clip(laef, 8.0, 80.0)
    ra_max = np.where(male, 95.0, 72.0) * size * np.exp(0.2 * rnd.normal("ra"))
    raef = np.where(male, 47.0, 50.0) + 7.0 * rnd.normal("raef")
    ra_max = ra_max * np.where(g.ph, 1.4 + 0.5 * g.ph_sev, 1.0) * np.where(g.rcm, 1.7, 1.0) * np.where(af, 1.2, 1.0)
    ra_max = ra_max * np.where(constrictive, 1.3, 1.0) * np.where(g.rv_inv, 1.2, 1.0)
    raef = np.clip(raef - 15.0 * g.ph - 20.0 * g.rcm - 12.0 * af - 10.0 * constrictive, 8.0, 80.0)
    conduit = np.where(af, 1.0, np.clip(0.5 + 0.1 * rnd.normal("conduit"), 0.3, 0.7))
    g_atrial = atrial_curve(g.s, conduit, g.es_frac)
    g.la_volume = la_max[:, None] * (1.0 - laef[:, None] / 100.0 * (1.0 - g_atrial))
    g.ra_volume = ra_max[:, None] * (1.0 - raef[:, None] / 100.0 * (1.0 - g_atrial))
    g.la_len = 52.0 * (g.la_volume / 65.0) ** (1.0 / 3.0)  # mm, long axis of the 4-chamber ellipse
    g.ra_len = 52.0 * (g.ra_volume / 72.0) ** (1.0 / 3.0)
    g.la_area = np.sqrt(g.la_volume * 1000.0 * g.la_len * 3.0 * np.pi / 8.0)  # mm², area-length inverted
    g.ra_area = np.sqrt(g.ra_volume * 1000.0 * g.ra_len * 3.0 * np.pi / 8.0)
    two_ch = np.exp(0.05 * rnd.normal("la_2ch"))  # the 2-chamber area differs a little from the 4-chamber one
    g.la_meas = 8.0 / (3.0 * np.pi) * g.la_area * (g.la_area * two_ch[:, None]) / g.la_len / 1000.0
    g.ra_meas = 8.0 / (3.0 * np.pi) * g.ra_area**2 / g.ra_len / 1000.0


def _aorta(g: SimpleNamespace, rnd: SubjectRandom) -> None:
    """Ascending and descending aortic areas at their maximum and minimum from distensibility and pulse pressure."""
    male, age, size = g.male, g.age, g.size
    aao_max = np.where(male, 900.0, 750.0) * (1.0 + 0.009 * (age - 55.0)) * np.sqrt(size)
    g.aao_max = aao_max * np.exp(0.15 * rnd.normal("aao")) * np.where(g.htn, 1.08, 1.0)
    dao_max = np.where(male, 500.0, 400.0) * (1.0 + 0.008 * (age - 55.0)) * np.sqrt(size)
    g.dao_max = dao_max * np.exp(0.13 * rnd.normal("dao"))
    dist_true = np.clip(3.5 - 0.075 * (age - 45.0), 0.6, None) * np.exp(0.25 * rnd.normal("dist"))
    dist_true = dist_true * np.where(g.htn, 0.8, 1.0) * np.where(g.hf_p, 0.7, 1.0)
    g.pp = pp = g.subj["pulse_pressure"]
    g.aao_min = g.aao_max / (1.0 + dist_true * pp / 1000.0)
    g.dao_min = g.dao_max / (1.0 + 1.1 * dist_true * pp / 1000.0)


def _measured_phenotypes(g: SimpleNamespace, rnd: SubjectRandom) -> np.ndarray:
    """The 82 phenotypes ``(n, 82)`` float32 as an automated pipeline measures them (scatter of domain-notes 4.3)."""

    def noisy(name: str, value: np.ndarray, sd: float | np.ndarray, k: int | None = None) -> np.ndarray:
        return value + sd * rnd.normal(name, k)

    m_edv = noisy("m_edv", g.edv_g, 4.0)
    m_esv = np.clip(noisy("m_esv", g.esv_g, 3.0), 3.0, None)
    m_sv = m_edv - m_esv
    m_ef = m_sv / m_edv * 100.0
    hr_cmr = g.hr + 2.0 * rnd.normal("hr_cmr")
    m_co = m_sv * hr_cmr / 1000.0
    m_lvm = noisy("m_lvm", g.lvm_g, 5.0)
    m_rvedv = noisy("m_rvedv", g.rv_volume[:, 0], 6.0)
    m_rvesv = np.clip(noisy("m_rvesv", g.rv_volume.min(axis=1), 5.0), 3.0, None)
    m_rvsv = m_rvedv - m_rvesv
    m_rvef = m_rvsv / m_rvedv * 100.0
    m_lamax = noisy("m_lamax", g.la_meas.max(axis=1), 3.0)
    m_lamin = np.clip(noisy("m_lamin", g.la_meas.min(axis=1), 2.5), 2.0, None)
    m_ramax = noisy("m_ramax", g.ra_meas.max(axis=1), 4.0)
    m_ramin = np.clip(noisy("m_ramin", g.ra_meas.min(axis=1), 3.0), 2.0, None)
    m_aao_max = g.aao_max * np.exp(0.02 * rnd.normal("m_aaomax"))
    m_aao_min = g.aao_min * np.exp(0.02 * rnd.normal("m_aaomin"))
    m_dao_max = g.dao_max * np.exp(0.02 * rnd.normal("m_daomax"))
    m_dao_min = g.dao_min * np.exp(0.02 * rnd.normal("m_daomin"))
    pp_meas = np.clip(g.pp + 3.0 * rnd.normal("m_pp"), 10.0, None)
    aao_dist = (m_aao_max - m_aao_min) / (m_aao_min * pp_meas) * 1000.0
    dao_dist = (m_dao_max - m_dao_min) / (m_dao_min * pp_meas) * 1000.0
    return np.concatenate(
        [
            np.stack([m_edv, m_esv, m_sv, m_ef, m_co, m_lvm, m_rvedv, m_rvesv, m_rvsv, m_rvef], axis=1),
            np.stack([m_lamax, m_lamin, m_lamax - m_lamin, (m_lamax - m_lamin) / m_lamax * 100.0], axis=1),
            np.stack([m_ramax, m_ramin, m_ramax - m_ramin, (m_ramax - m_ramin) / m_ramax * 100.0], axis=1),
            np.stack([m_aao_max, m_aao_min, aao_dist, m_dao_max, m_dao_min, dao_dist], axis=1),
            noisy("m_wt", g.seg_wt, 0.5, 16),
            noisy("m_wt_global", g.seg_wt.mean(axis=1), 0.2)[:, None],
            noisy("m_ecc", g.ecc_seg, 3.0, 16),
            noisy("m_ecc_global", g.ecc_seg.mean(axis=1), 1.0)[:, None],
            noisy("m_err", g.err_seg, 6.0, 16),
            noisy("m_err_global", g.err_seg.mean(axis=1), 2.5)[:, None],
            noisy("m_ell", g.ell_seg, 2.5, 6),
            noisy("m_ell_global", g.ell_global, 1.0)[:, None],
        ],
        axis=1,
    ).astype(np.float32)
