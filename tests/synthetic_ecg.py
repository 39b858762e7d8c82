"""A simple, physiologically shaped 12-lead ECG for tests (Gaussian P, Q, R, S, T waves).

Limb leads are consistent by construction: I and II are synthesised, III, aVR, aVL and aVF follow Einthoven and
Goldberger. Precordial leads move from an rS complex in V1 to a qR complex in V6 (normal R-wave progression).
Amplitudes are typical adult values in mV.
"""

from __future__ import annotations

import numpy as np

from cardiacnets.record import derive_limb_leads

# (P, Q, R, S, T) amplitudes in mV per synthesised lead.
_WAVES = {
    "I": (0.08, -0.05, 0.70, -0.10, 0.20),
    "II": (0.15, -0.08, 1.10, -0.15, 0.30),
    "V1": (0.06, 0.00, 0.25, -1.00, -0.05),
    "V2": (0.06, 0.00, 0.50, -1.30, 0.35),
    "V3": (0.06, 0.00, 0.80, -0.90, 0.40),
    "V4": (0.07, -0.05, 1.30, -0.50, 0.40),
    "V5": (0.07, -0.08, 1.40, -0.30, 0.35),
    "V6": (0.07, -0.08, 1.10, -0.15, 0.25),
}
# (offset from R peak in s, Gaussian sigma in s) of P, Q, R, S, T.
_TIMING = ((-0.16, 0.025), (-0.025, 0.008), (0.0, 0.010), (0.028, 0.009), (0.28, 0.045))


def synthetic_ecg(
    fs: float = 500.0,
    duration_s: float = 10.0,
    heart_rate: float = 72.0,
    rng: np.random.Generator | None = None,
    noise_mV: float = 0.01,
    wander_mV: float = 0.0,
) -> np.ndarray:
    """Return float64 ``(12, n)`` mV in canonical lead order, ``n = round(fs * duration_s)``.

    Beats at ``heart_rate`` beats/min with +-3% RR jitter; white noise of ``noise_mV`` std; optional 0.3-Hz baseline
    wander of amplitude ``wander_mV`` common to the electrodes.
    """
    rng = rng or np.random.default_rng(0)
    n = int(round(fs * duration_s))
    t = np.arange(n) / fs
    rr = 60.0 / heart_rate
    peaks = []
    when = 0.35
    while when < duration_s + 0.5:
        peaks.append(when)
        when += rr * (1.0 + rng.uniform(-0.03, 0.03))
    base: dict[str, np.ndarray] = {}
    for lead, amplitudes in _WAVES.items():
        x = np.zeros(n)
        for peak in peaks:
            for amp, (offset, sigma) in zip(amplitudes, _TIMING, strict=True):
                x += amp * np.exp(-0.5 * ((t - peak - offset) / sigma) ** 2)
        base[lead] = x
    if wander_mV:
        phase = rng.uniform(0, 2 * np.pi)
        wander = wander_mV * np.sin(2 * np.pi * 0.3 * t + phase)
        base["I"] = base["I"] + wander
        base["II"] = base["II"] + 1.3 * wander
        for lead in ("V1", "V2", "V3", "V4", "V5", "V6"):
            base[lead] = base[lead] + wander
    limb = derive_limb_leads(base["I"], base["II"])
    order = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    leads = {**base, **limb}
    out = np.stack([leads[name] for name in order])
    return out + noise_mV * rng.standard_normal(out.shape)
