"""12-lead ECG from a vector-cardiogram of Gaussian time lobes projected through the Dower matrix.

Recipe of domain-notes sections 3.4 and 4.2: per subject, one beat template of heart-vector lobes (P, atrial
repolarisation Ta, septal / main / terminal QRS, bundle-branch lobes, ST plateau, asymmetric T) whose timings,
magnitudes and directions come from the latent subject and geometry; beats placed on a sinus (HRV) or AF RR series;
a random rotation of the heart vector and per-electrode perturbation of the precordial Dower rows; limb leads derived
from I and II so Einthoven/Goldberger hold exactly; noise generated per electrode (RA, LA, LL, V1-V6: baseline wander,
mains, EMG bursts, instrument noise, motion transients) and turned into leads; a 100 Hz low-pass FIR and 5 uV
quantisation as a cart applies. The QRS magnitude grows only weakly with LV mass and is attenuated by body habitus
and a per-subject chest factor, so voltage carries LV mass partially (Sokolow-Lyon vs LVM r about 0.3).

Frame: +X left, +Y inferior, +Z posterior (Frank / Dower).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal import firwin

from cardiacnets.record import LEADS
from cardiacnets.synth._random import SubjectRandom
from cardiacnets.synth.cart import acquire, is_default_cart
from cardiacnets.synth.sites import Acquisition, Site

FS = 500
N_SAMPLES = 5000
MAX_BEATS = 64
LSB_MV = 0.005
_PRE_S = 0.35  # template starts this long before QRS onset
_TEMPLATE_LEN = 560  # samples (1.12 s)

#: Dower matrix rows I, II, V1..V6 (mV per mV of X, Y, Z); domain-notes 4.1.
DOWER = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ]
)
_LOWPASS = firwin(15, 100.0, fs=FS).astype(np.float32)


def _unit(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    v = np.stack([x, y, z], axis=-1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _direction(frontal_deg: np.ndarray, posterior_deg: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` from a frontal-plane angle (0° = left, +90° = inferior) and an elevation towards the
    back (positive = posterior)."""
    f, e = np.deg2rad(frontal_deg), np.deg2rad(posterior_deg)
    return _unit(np.cos(f) * np.cos(e), np.sin(f) * np.cos(e), np.sin(e))


def ecg_parameters(subj: Mapping[str, np.ndarray], geom: Mapping[str, np.ndarray], rnd: SubjectRandom) -> dict:
    """Interval and lobe parameters per subject (all ``(n,)`` or ``(n, 3)``; seconds, mV): intervals, then the QRS
    loop (magnitude, axis, septal and infarct forces), then repolarisation (T, ST, atrial repolarisation) and P."""
    male = subj["sex"] == 1
    hr = np.clip(subj["heart_rate"] + 2.0 * rnd.normal("hr_ecg"), 35.0, 160.0)
    p = {"hr": hr, "rr": 60.0 / hr, "lbbb": subj["conduction"] == 1, "rbbb": subj["conduction"] == 2,
         "ph": subj["ph"], "af": subj["rhythm"] == 1,
         "la_big": geom["phenotypes"][:, 10] > np.where(male, 100.0, 85.0)}  # fmt: skip
    _intervals(p, subj, geom, rnd)
    _qrs_loop(p, subj, geom, rnd)
    _repolarisation_and_p(p, subj, geom, rnd)
    return {key: p[key] for key in _ECG_PARAMETER_KEYS}


_ECG_PARAMETER_KEYS = (
    "hr", "rr", "qrs", "pr", "p_dur", "qt", "qtc", "mag", "axis", "main_dir", "septal", "septal_dir", "q_mag",
    "q_dir", "t_mag", "t_dir", "st_mag", "st_dir", "ta_gain", "p_mag", "p_dir", "la_big", "lbbb", "rbbb", "ph",
    "rvh", "af",
)  # fmt: skip


def _intervals(p: dict, subj: Mapping[str, np.ndarray], geom: Mapping[str, np.ndarray], rnd: SubjectRandom) -> None:
    """QRS duration (mass, volume, bundle-branch blocks), PR (age, amyloid AV block), P duration, QT and QTc."""
    male, lbbb, rbbb, amyloid = subj["sex"] == 1, p["lbbb"], p["rbbb"], subj["amyloid"]
    lvm, edv = geom["lv_mass_true"], geom["lv_volume"][:, 0]
    qrs = 0.088 + 0.00005 * (lvm - 100.0) + 0.0001 * (edv - 150.0) + 0.005 * male + 0.008 * rnd.normal("qrsd")
    qrs = np.where(lbbb, 0.145 + 0.012 * rnd.normal("qrsd_lbbb"), qrs)
    qrs = np.where(rbbb, 0.135 + 0.01 * rnd.normal("qrsd_rbbb"), qrs)
    p["qrs"] = qrs = np.clip(qrs, 0.065, 0.19)
    pr = 0.16 + 0.02 * rnd.normal("pr") + 0.0003 * (subj["age"] - 60.0)
    pr = pr + np.where(amyloid & rnd.bernoulli("avb1", 0.25), 0.06, 0.0)
    p["pr"] = np.clip(pr, 0.11, 0.32)
    p["p_dur"] = np.clip(0.1 + 0.01 * rnd.normal("pdur") + 0.02 * p["la_big"], 0.07, 0.15)
    p["qtc"] = qtc = (
        0.41 + 0.01 * ~male + 0.018 * rnd.normal("qtc") + 0.02 * (subj["hf"] | p["ph"]) + 0.5 * (qrs - 0.09)
    )
    p["qt"] = qtc * p["rr"] ** (1.0 / 3.0)


def _qrs_loop(p: dict, subj: Mapping[str, np.ndarray], geom: Mapping[str, np.ndarray], rnd: SubjectRandom) -> None:
    """QRS magnitude (a weak power of LV mass x body habitus x chest/lead-position factor: most of the variance),
    axis and elevation (PH rotates it), septal forces, and initial forces away from an old infarct."""
    n, male, ph, lbbb, amyloid = rnd.n, subj["sex"] == 1, p["ph"], p["lbbb"], subj["amyloid"]
    lvm = geom["lv_mass_true"]
    hcm = subj["cm_subtype"] == 2
    chest = np.exp(0.3 * rnd.normal("chest"))
    habitus = np.exp(-0.025 * (subj["bmi"] - 26.0)) * np.where(male, 1.0, 0.88)
    p["effusion"] = effusion = np.clip(1.0 - 0.035 * subj["pc_effusion_mm"], 0.45, 1.0)
    infiltration = np.where(amyloid, 0.35 + 0.3 * rnd.uniform("amyloid_volt"), 1.0)
    p["mag"] = 1.35 * (lvm / 100.0) ** 0.6 * chest * habitus * effusion * infiltration
    axis = 45.0 + 18.0 * rnd.normal("axis") - 0.15 * (subj["age"] - 60.0) - 0.3 * (subj["bmi"] - 26.0)
    # PH: right-axis / anterior rotation grows with severity and RV hypertrophy, which varies a lot (often normal).
    p["rvh"] = rvh = subj["ph_severity"] * rnd.uniform("rvh")
    p["axis"] = axis = axis + np.where(ph, 55.0 * rvh, 0.0) - np.where(lbbb, 25.0, 0.0)
    elev = 28.0 + 10.0 * rnd.normal("elev") - np.where(ph, 40.0 * rvh, 0.0)
    p["main_dir"] = _direction(axis, elev)
    p["septal"] = 0.16 * np.ones(n) * np.where(lbbb | amyloid, 0.0, 1.0) * np.where(hcm, 3.0, 1.0)
    p["septal_dir"] = _unit(-0.6 * np.ones(n), 0.35 * np.ones(n), -0.75 * np.ones(n))
    # Old MI: initial forces point away from the infarct (pathological Q in the territory leads).
    away_table = np.array([[0.0, 0.0, 1.0], [0.1, 0.2, 1.0], [0.1, -1.0, 0.2], [-1.0, -0.2, 0.3]])
    p["away"] = away = away_table[subj["cad_territory"].astype(int) + 1]  # row 0: no territory
    q_mag = np.where(subj["cad_q_waves"], 0.35 + 0.5 * subj["cad_severity"], 0.0)
    p["q_mag"] = q_mag + np.where(amyloid & rnd.bernoulli("pseudo_q", 0.45), 0.3, 0.0)
    p["q_dir"] = away / np.linalg.norm(away, axis=1, keepdims=True)


def _repolarisation_and_p(
    p: dict, subj: Mapping[str, np.ndarray], geom: Mapping[str, np.ndarray], rnd: SubjectRandom
) -> None:
    """T wave (strain, bundle-branch blocks, apical HCM, RV strain, infarcts, pericarditis stages), ST deviation,
    atrial repolarisation gain, and the P wave (none in AF)."""
    n, ph, rvh, main_dir = rnd.n, p["ph"], p["rvh"], p["main_dir"]
    hcm, amyloid = subj["cm_subtype"] == 2, subj["amyloid"]
    lvm = geom["lv_mass_true"]
    t_mag = 0.35 * np.exp(0.25 * rnd.normal("tmag")) * p["effusion"] * np.where(amyloid, 0.6, 1.0)
    t_dir = _direction(40.0 + 12.0 * rnd.normal("taxis"), -20.0 + 10.0 * rnd.normal("telev"))
    strain = np.clip((lvm - 150.0) / 100.0, 0.0, 1.0) + 0.6 * (hcm & (subj["hcm_variant"] != 2))
    t_dir = _unit(*(t_dir - strain[:, None] * 1.2 * main_dir).T)
    t_dir = np.where((p["lbbb"] | p["rbbb"])[:, None], -main_dir, t_dir)
    apical = subj["hcm_variant"] == 2
    t_dir = np.where(apical[:, None], _unit(-0.4 * np.ones(n), -0.5 * np.ones(n), 0.75 * np.ones(n)), t_dir)
    t_mag = np.where(apical, 0.9 + 0.5 * rnd.uniform("giant_t"), t_mag)
    rv_strain = ph & (rvh > 0.4)
    t_dir = np.where(rv_strain[:, None], _unit(0.2 * np.ones(n), -0.6 * np.ones(n), 0.8 * np.ones(n)), t_dir)
    t_dir = np.where((subj["cad"] & subj["cad_mi"])[:, None], _unit(*(t_dir + 0.8 * p["away"]).T), t_dir)
    stage = subj["pc_stage"]
    p["t_mag"] = np.where(stage == 2, 0.08, t_mag)
    p["t_dir"] = np.where((stage == 3)[:, None], -t_dir, t_dir)

    st_mag = np.where(stage == 1, 0.1 + 0.2 * subj["pc_severity"], 0.0)
    st_dir = _direction(np.full(n, 50.0), np.full(n, -15.0))
    p["st_mag"] = st_mag + 0.12 * strain
    p["st_dir"] = np.where((strain > 0)[:, None] & (stage != 1)[:, None], -main_dir, st_dir)
    p["ta_gain"] = np.where(stage == 1, 3.5, 1.0)

    p_mag = (0.12 + 0.02 * rnd.normal("pmag")) * np.where(ph, 1.0 + 0.6 * rvh, 1.0)
    p["p_dir"] = _direction(55.0 + np.where(ph, 25.0 * rvh, 0.0) + 10.0 * rnd.normal("paxis"), np.full(n, 0.0))
    p["p_mag"] = np.where(p["af"], 0.0, p_mag)


def _gauss(tau: np.ndarray, centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((tau - centre[:, None]) / width[:, None]) ** 2)


def beat_template(p: Mapping[str, np.ndarray]) -> np.ndarray:
    """One beat of the heart vector: ``(n, 3, 560)`` mV, time 0 at sample 175 (QRS onset)."""
    tau = (np.arange(_TEMPLATE_LEN) / FS - _PRE_S)[None, :]  # (1, L) seconds from QRS onset
    qrs, pr, pd = p["qrs"], p["pr"], p["p_dur"]
    mag = p["mag"]
    lobes: list[tuple[np.ndarray, np.ndarray]] = []  # (amplitude*direction (n,3), time course (n,L))
    # P wave: right-atrial then left-atrial halves (wider and notched when the LA is enlarged).
    p_start = -pr
    la_shift = np.where(p["la_big"], 0.012, 0.0)
    lobes.append(((0.6 * p["p_mag"])[:, None] * p["p_dir"], _gauss(tau, p_start + 0.35 * pd, pd / 5.0)))
    la_dir = _unit(*(p["p_dir"] + np.array([0.3, -0.1, 0.5])).T)
    lobes.append(((0.6 * p["p_mag"])[:, None] * la_dir, _gauss(tau, p_start + 0.62 * pd + la_shift, pd / 5.5)))
    # Atrial repolarisation (Ta) opposite to P, spanning the PR segment (PR depression in pericarditis).
    lobes.append(
        ((-0.25 * p["p_mag"] * p["ta_gain"])[:, None] * p["p_dir"], _gauss(tau, p_start + pd + 0.03, 0.04 + 0 * pd))
    )
    # QRS.
    lobes.append(((p["septal"] * mag * 0.5)[:, None] * p["septal_dir"], _gauss(tau, 0.12 * qrs, 0.07 * qrs)))
    lobes.append(((p["q_mag"] * mag)[:, None] * p["q_dir"], _gauss(tau, 0.18 * qrs, 0.09 * qrs)))
    lbbb = p["lbbb"]
    main_c = np.where(lbbb, 0.38, 0.45) * qrs
    main_w = np.where(lbbb, 0.15, 0.12) * qrs
    lobes.append((mag[:, None] * p["main_dir"], _gauss(tau, main_c, main_w)))
    notch = np.where(lbbb, 0.7, 0.0) * mag
    lobes.append((notch[:, None] * p["main_dir"], _gauss(tau, 0.68 * qrs, 0.1 * qrs)))
    term_dir = _unit(-0.25 * np.ones_like(mag), -0.5 * np.ones_like(mag), 0.8 * np.ones_like(mag))
    lobes.append(((0.28 * mag * (1 - lbbb))[:, None] * term_dir, _gauss(tau, 0.74 * qrs, 0.09 * qrs)))
    rb = np.where(p["rbbb"], 0.55, 0.0) + np.where(p["ph"], 0.3 * p["rvh"], 0.0)
    rv_dir = _unit(-0.75 * np.ones_like(mag), 0.1 * np.ones_like(mag), -0.65 * np.ones_like(mag))
    lobes.append(((rb * 1.0)[:, None] * rv_dir, _gauss(tau, 0.83 * qrs, 0.1 * qrs)))
    # ST plateau from J to T, then an asymmetric T wave (slow up, fast down).
    st_course = 1.0 / (1.0 + np.exp(-(tau - qrs[:, None]) / 0.006))
    t_peak = p["qt"] - 0.085 * (p["qt"] / 0.4)
    st_course = st_course / (1.0 + np.exp((tau - t_peak[:, None]) / 0.03))
    lobes.append((p["st_mag"][:, None] * p["st_dir"], st_course))
    left = 0.065 * p["qt"] / 0.4
    right = 0.038 * p["qt"] / 0.4
    width = np.where(tau < t_peak[:, None], left[:, None], right[:, None])
    lobes.append((p["t_mag"][:, None] * p["t_dir"], np.exp(-0.5 * ((tau - t_peak[:, None]) / width) ** 2)))
    template = np.zeros((mag.shape[0], 3, _TEMPLATE_LEN), dtype=np.float64)
    for vec, course in lobes:  # ~11 lobes, vectorised over subjects
        template += vec[:, :, None] * course[:, None, :]
    return template


def beat_onsets(p: Mapping[str, np.ndarray], rnd: SubjectRandom) -> np.ndarray:
    """QRS onset sample of each beat ``(n, 64)`` int64; beats beyond the record are -1. Sinus rhythm has
    respiratory and Mayer-wave variability; AF has irregular RR (CV about 0.2)."""
    rr = p["rr"][:, None]
    k = np.arange(MAX_BEATS)[None, :]
    phase = 2.0 * np.pi * rnd.uniform("hrv_phase", 2)
    sinus = (
        1.0
        + 0.03 * np.sin(2.0 * np.pi * 0.25 * k * rr + phase[:, :1])
        + 0.02 * np.sin(2.0 * np.pi * 0.1 * k * rr + phase[:, 1:])
    )
    sinus = sinus + 0.01 * rnd.normal("rr_noise", MAX_BEATS)
    irregular = np.clip(1.0 + 0.2 * rnd.normal("rr_af", MAX_BEATS), 0.55, 1.8)
    intervals = rr * np.where(p["af"][:, None], irregular, sinus)
    first = (0.05 + 0.9 * rnd.uniform("first_beat")) * p["rr"]
    onsets = first[:, None] + np.concatenate([np.zeros((rr.shape[0], 1)), np.cumsum(intervals[:, :-1], axis=1)], axis=1)
    samples = np.round(onsets * FS).astype(np.int64)
    return np.where(samples < N_SAMPLES, samples, -1)


def place_beats(template: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Sum of the template placed at every onset: ``(n, 3, 5000)``. Also places a beat before the first onset so the
    record does not start flat."""
    n = template.shape[0]
    pre = int(_PRE_S * FS)
    t = np.arange(N_SAMPLES)[None, :]
    valid = onsets >= 0
    first_gap = np.where(valid[:, 1], onsets[:, 1] - onsets[:, 0], onsets[:, 0] + 400)
    full = np.concatenate([(onsets[:, :1] - first_gap[:, None]), np.where(valid, onsets, 10**7)], axis=1)
    # Index of the latest beat whose template window has started at t (template starts `pre` before the onset).
    started = (full[:, None, :] - pre <= t[:, :, None]).sum(axis=2) - 1  # (n, T)
    out = np.zeros((n, 3, N_SAMPLES))
    flat = template.reshape(n * 3, _TEMPLATE_LEN)
    row = (np.arange(n)[:, None] * 3 + np.arange(3)[None, :])[:, :, None]  # (n, 3, 1)
    for back in range(3):  # overlapping windows of up to three beats (fast rates)
        b = started - back
        ok = b >= 0
        onset_b = np.take_along_axis(full, np.clip(b, 0, None), axis=1)
        local = t - onset_b + pre
        ok &= (local >= 0) & (local < _TEMPLATE_LEN)
        idx = np.clip(local, 0, _TEMPLATE_LEN - 1)
        out += np.where(ok[:, None, :], flat[row, idx[:, None, :]], 0.0)
    return out


def _electrode_noise(rnd: SubjectRandom, mains_hz: float, habits: Acquisition | None = None) -> np.ndarray:
    """Noise at the 9 electrodes RA, LA, LL, V1..V6: ``(n, 9, 5000)`` mV; ``habits`` scales it for a site."""
    n = rnd.n
    t = (np.arange(N_SAMPLES) / FS)[None, None, :]
    # Baseline wander: respiration plus slow drift, electrode-specific amplitudes.
    resp_f = (0.15 + 0.15 * rnd.uniform("bw_f"))[:, None, None]
    bw_amp = (0.02 + 0.12 * rnd.uniform("bw_amp") ** 2)[:, None, None] * rnd.uniform("bw_e", 9)[:, :, None]
    bw_phase = 2.0 * np.pi * rnd.uniform("bw_p", 9)[:, :, None]
    drift_f = (0.03 + 0.07 * rnd.uniform("drift_f", 9))[:, :, None]
    wander = bw_amp * (np.sin(2 * np.pi * resp_f * t + bw_phase) + 0.7 * np.sin(2 * np.pi * drift_f * t + 2 * bw_phase))
    # Mains (residual after the cart's notch) with a little 3rd harmonic.
    mains_amp = (0.002 + 0.02 * rnd.uniform("mains_amp") ** 3)[:, None, None] * rnd.uniform("mains_e", 9)[:, :, None]
    mains_phase = 2.0 * np.pi * rnd.uniform("mains_p")[:, None, None]
    mains = mains_amp * (np.sin(2 * np.pi * mains_hz * t + mains_phase) + 0.2 * np.sin(2 * np.pi * 3 * mains_hz * t))
    # EMG: white noise (band-limited later) in bursts, limb electrodes more; plus instrument noise.
    emg_rms = (0.004 + 0.02 * rnd.uniform("emg_rms") ** 2)[:, None, None]
    limb = np.array([1.5, 1.5, 1.5, 1, 1, 1, 1, 1, 1])[None, :, None]
    burst_c = rnd.uniform("emg_burst_c", 2)[:, :, None] * 10.0
    burst_w = (0.2 + 0.8 * rnd.uniform("emg_burst_w", 2))[:, :, None]
    burst_a = (4.0 * rnd.uniform("emg_burst_a", 2) * rnd.bernoulli("emg_burst", 0.3)[:, None])[:, :, None]
    envelope = 1.0 + (burst_a * np.exp(-0.5 * ((t[:, 0] - burst_c) / burst_w) ** 2)).sum(axis=1, keepdims=True)
    white = rnd.bank_windows("emg", 9 * N_SAMPLES).reshape(n, 9, N_SAMPLES)
    emg = white * (emg_rms * limb * envelope + 0.004)
    # Motion: an occasional electrode transient (step with exponential recovery).
    has_motion = rnd.bernoulli("motion", 0.1 if habits is None else habits.motion_rate)
    m_t = 10.0 * rnd.uniform("motion_t")
    m_e = (rnd.uniform("motion_e") * 9).astype(int)
    m_amp = np.where(has_motion, 0.2 + 0.8 * rnd.uniform("motion_amp"), 0.0) * np.sign(rnd.uniform("motion_s") - 0.5)
    step = np.where(t[:, 0] >= m_t[:, None], np.exp(-np.clip(t[:, 0] - m_t[:, None], 0.0, None) / 0.3), 0.0)
    motion = (np.arange(9)[None, :, None] == m_e[:, None, None]) * (m_amp[:, None, None] * step[:, None, :])
    if habits is not None and not habits.default_noise:
        return habits.wander_scale * wander + habits.mains_scale * mains + habits.emg_scale * emg + motion
    return wander + mains + emg + motion


def _shift_precordial(dower: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Precordial lead vectors of electrodes displaced by ``shift`` ``(n,)`` electrode spacings along the chest row
    (+ lateral): linear interpolation between neighbouring rows of ``dower`` ``(n, 8, 3)``, extrapolated at V1/V6."""
    rows = dower[:, 2:, :]  # (n, 6, 3)
    pos = np.arange(6)[None, :] + np.clip(shift, -1.0, 1.0)[:, None]  # (n, 6)
    lo = np.clip(np.floor(pos), 0, 4).astype(np.int64)
    frac = (pos - lo)[:, :, None]
    a = np.take_along_axis(rows, lo[:, :, None], axis=1)
    b = np.take_along_axis(rows, lo[:, :, None] + 1, axis=1)
    out = dower.copy()
    out[:, 2:, :] = a + frac * (b - a)
    return out


def _lead_vectors(rnd: SubjectRandom, habits: Acquisition | None) -> np.ndarray:
    """Per-subject Dower rows ``(n, 8, 3)``: the precordial rows perturbed (electrode-position jitter) and, for a
    site's placement habit, displaced along the chest row."""
    n = rnd.n
    dower = np.broadcast_to(DOWER, (n, 8, 3)).copy()
    jitter = 0.1 if habits is None else habits.electrode_jitter
    dower[:, 2:, :] *= 1.0 + jitter * rnd.normal("electrode", 18).reshape(n, 6, 3)
    if habits is not None and (habits.precordial_shift or habits.precordial_shift_sd):
        dower = _shift_precordial(dower, habits.precordial_shift + habits.precordial_shift_sd * rnd.normal("v_shift"))
    return dower


def _reverse_limb_electrodes(leads8: np.ndarray, reversed_: np.ndarray) -> None:
    """RA and LA electrodes swapped in the records ``reversed_`` ``(n,)``: lead I inverts, II becomes III (in place
    on ``leads8`` ``(n, 8, T)``: I, II, V1..V6)."""
    lead_i, lead_ii = leads8[reversed_, 0].copy(), leads8[reversed_, 1].copy()
    leads8[reversed_, 0] = -lead_i
    leads8[reversed_, 1] = lead_ii - lead_i


def synthesize_ecg(
    subj: Mapping[str, np.ndarray],
    geom: Mapping[str, np.ndarray],
    rnd: SubjectRandom,
    noise: bool = True,
    mains_hz: float = 50.0,
    site: Site | None = None,
    keep_native: bool = False,
) -> dict[str, np.ndarray]:
    """12-lead ECGs ``ecg`` float32 ``(n, 12, 5000)`` mV (canonical lead order, 500 Hz), with ``qrs_onsets``
    ``(n, 64)`` (sample index of each beat, -1 padded) and the interval parameters (``ecg_hr``, ``pr_s``, ``qrs_s``,
    ``qt_s``, ``qtc_s``). ``noise=False`` gives the clean projection (no electrode noise, filter or quantisation).
    ``site``: placement habits, noise and cart of a simulated site (:mod:`~cardiacnets.synth.sites`; None or the
    default site: as always); with ``keep_native`` a cart other than the default's also returns ``ecg_native``
    ``(n, 12, 10 * fs)`` mV at its own rate and ``ecg_native_fs`` ``(n,)`` Hz (the record its files would hold)."""
    n = rnd.n
    habits = None if site is None else site.acquisition
    p = ecg_parameters(subj, geom, rnd)
    template = beat_template(p)
    # Anatomical rotation of the heart vector (±10°) before projection.
    ang = np.deg2rad(8.0) * rnd.normal("rot", 3)
    cx, cy, cz = np.cos(ang).T
    sx, sy, sz = np.sin(ang).T
    one, zero = np.ones(n), np.zeros(n)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], axis=1).reshape(n, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], axis=1).reshape(n, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], axis=1).reshape(n, 3, 3)
    template = np.matmul(rz @ ry @ rx, template)
    onsets = beat_onsets(p, rnd)
    vcg = place_beats(template, onsets)
    # AF fibrillatory waves (4-9 Hz), mostly along the V1 direction.
    t = np.arange(N_SAMPLES) / FS
    f_hz = (4.0 + 5.0 * rnd.uniform("fwave_f"))[:, None]
    f_amp = np.where(p["af"], 0.02 + 0.06 * rnd.uniform("fwave_a"), 0.0)[:, None]
    fw = f_amp * np.sin(2 * np.pi * f_hz * t[None, :] + 6.0 * np.sin(2 * np.pi * 0.3 * t[None, :]))
    vcg += fw[:, None, :] * np.array([-0.3, 0.2, -0.9])[None, :, None]
    vcg *= 1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * t[None, None, :] + 2 * np.pi * rnd.uniform("resp_mod")[:, None, None])
    leads8 = np.matmul(_lead_vectors(rnd, habits), vcg)  # (n, 8, T): I, II, V1..V6
    if noise:
        e = _electrode_noise(rnd, mains_hz, habits)
        ra, la, ll = e[:, 0], e[:, 1], e[:, 2]
        wct = (ra + la + ll) / 3.0
        leads8[:, 0] += la - ra
        leads8[:, 1] += ll - ra
        leads8[:, 2:] += e[:, 3:] - wct[:, None, :]
    if habits is not None and habits.limb_reversal_rate > 0:
        _reverse_limb_electrodes(leads8, rnd.bernoulli("limb_reversal", habits.limb_reversal_rate))
    lead_i, lead_ii = leads8[:, 0], leads8[:, 1]
    ecg = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,
            -(lead_i + lead_ii) / 2.0,
            lead_i - lead_ii / 2.0,
            lead_ii - lead_i / 2.0,
        ],
        axis=1,
    )
    ecg = np.concatenate([ecg, leads8[:, 2:]], axis=1).astype(np.float32)
    native: dict[str, np.ndarray] = {}
    if noise and site is not None and not is_default_cart(site.cart):
        record, ecg = acquire(ecg, site.cart, rnd)
        if keep_native:
            native = {"ecg_native": record, "ecg_native_fs": np.full(n, site.cart.fs, np.int32)}
    elif noise:
        ecg = convolve1d(ecg, _LOWPASS, axis=-1, mode="nearest")
        ecg = np.round(ecg / LSB_MV) * np.float32(LSB_MV)
        ecg = np.clip(ecg, -30.0, 30.0).astype(np.float32)
    return {
        "ecg": ecg,
        "qrs_onsets": onsets.astype(np.int32),
        "ecg_hr": p["hr"].astype(np.float32),
        "pr_s": p["pr"].astype(np.float32),
        "qrs_s": p["qrs"].astype(np.float32),
        "qt_s": p["qt"].astype(np.float32),
        "qtc_s": p["qtc"].astype(np.float32),
        **native,
    }


_I, _II, _AVL, _AVF, _V1, _V3, _V5, _V6 = (LEADS.index(k) for k in ("I", "II", "aVL", "aVF", "V1", "V3", "V5", "V6"))


def ecg_features(d: Mapping[str, np.ndarray], seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Simple cart-style ECG features ``(n, k)`` from simulated records: measured intervals (true value plus cart
    measurement scatter), RR irregularity, and from the averaged beat of the noisy ECG: R and S amplitude and ST
    level per lead, Sokolow-Lyon, Cornell voltage, QRS and T axes. Returns (features, names). A dict that already
    holds ``ecg_features`` (see the report) is returned as is."""
    if "ecg_features" in d:
        return np.asarray(d["ecg_features"]), list(_FEATURE_NAMES)
    n = len(d["ecg"])
    keys = ("ecg", "qrs_onsets", "ecg_hr", "pr_s", "qrs_s", "qt_s", "qtc_s", "subject_index")
    parts = [
        _ecg_features_chunk({k: d[k][i : i + 128] for k in keys if k in d}, seed) for i in range(0, max(n, 1), 128)
    ]
    return np.concatenate(parts, axis=0), list(_FEATURE_NAMES)


_FEATURE_NAMES = ["hr", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "rr_cv"]
_FEATURE_NAMES += [f"R_{lead}" for lead in LEADS] + [f"S_{lead}" for lead in LEADS] + [f"ST_{lead}" for lead in LEADS]
_FEATURE_NAMES += ["sokolow_lyon", "cornell", "qrs_axis_cos", "qrs_axis_sin", "t_axis_cos", "t_axis_sin"]


def _ecg_features_chunk(d: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    ecg = np.asarray(d["ecg"], dtype=np.float32)
    onsets = np.asarray(d["qrs_onsets"])
    n = ecg.shape[0]
    pre, post = 60, 300
    valid = (onsets - pre >= 0) & (onsets + post < N_SAMPLES) & (onsets >= 0)
    idx = np.clip(onsets, pre, N_SAMPLES - post - 1)[:, :, None] + np.arange(-pre, post)[None, None, :]  # (n, B, W)
    beats = np.take_along_axis(ecg[:, :, None, :], idx[:, None, :, :].reshape(n, 1, -1)[:, :, None, :], axis=3)
    beats = beats.reshape(n, 12, MAX_BEATS, pre + post)
    w = valid[:, None, :, None].astype(np.float32)
    avg = (beats * w).sum(axis=2) / np.maximum(w.sum(axis=2), 1.0)  # (n, 12, W)
    baseline = avg[:, :, pre - 25 : pre - 10].mean(axis=2, keepdims=True)  # PR segment
    avg = avg - baseline
    qrs_n = np.clip((np.asarray(d["qrs_s"]) * FS).astype(int), 20, 100)
    tt = np.arange(pre + post)[None, None, :]
    in_qrs = (tt >= pre) & (tt < pre + qrs_n[:, None, None])
    r_amp = np.where(in_qrs, avg, -np.inf).max(axis=2)
    s_amp = -np.where(in_qrs, avg, np.inf).min(axis=2)
    net = np.where(in_qrs, avg, 0.0).sum(axis=2)
    st = np.take_along_axis(avg, (pre + qrs_n + 30)[:, None, None].repeat(12, axis=1), axis=2)[:, :, 0]
    in_t = (tt >= pre + qrs_n[:, None, None] + 40) & (tt < pre + 260)
    t_area = np.where(in_t, avg, 0.0).sum(axis=2)
    sokolow = s_amp[:, _V1] + np.maximum(r_amp[:, _V5], r_amp[:, _V6])
    cornell = r_amp[:, _AVL] + s_amp[:, _V3]
    qrs_axis = np.degrees(np.arctan2(net[:, _AVF], net[:, _I]))
    t_axis = np.degrees(np.arctan2(t_area[:, _AVF], t_area[:, _I]))
    rnd = SubjectRandom(seed + 7919, np.asarray(d.get("subject_index", np.arange(n))))
    intervals = np.stack(
        [
            np.asarray(d["ecg_hr"]) + rnd.normal("f_hr"),
            (np.asarray(d["pr_s"]) + 0.006 * rnd.normal("f_pr")) * 1000.0,
            (np.asarray(d["qrs_s"]) + 0.005 * rnd.normal("f_qrs")) * 1000.0,
            (np.asarray(d["qt_s"]) + 0.008 * rnd.normal("f_qt")) * 1000.0,
            (np.asarray(d["qtc_s"]) + 0.008 * rnd.normal("f_qtc")) * 1000.0,
        ],
        axis=1,
    )
    rr = np.diff(np.where(valid, onsets, np.nan), axis=1)
    rr_cv = np.nanstd(rr, axis=1) / np.nanmean(rr, axis=1)
    feats = np.concatenate(
        [
            intervals,
            np.nan_to_num(rr_cv)[:, None],
            r_amp,
            s_amp,
            st,
            np.stack([sokolow, cornell, np.cos(np.radians(qrs_axis)), np.sin(np.radians(qrs_axis))], axis=1),
            np.stack([np.cos(np.radians(t_axis)), np.sin(np.radians(t_axis))], axis=1),
        ],
        axis=1,
    ).astype(np.float32)
    return feats
