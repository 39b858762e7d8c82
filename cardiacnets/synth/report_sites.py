"""The simulated sites in the synthetic sanity report: each documented difference measured back (issue 22).

For every site (``cardiacnets.synth.sites``) a population-mode cohort is simulated and checked against the site's
own definition: prevalences of the independently drawn diseases within 3.5 binomial standard errors, mean age on the
documented side of the default site's, the record length at the cart's sampling rate, ADC counts on the cart's
resolution, the cart's filters on injected sines (gain at 0.1, 10 and 100 Hz against the analogue corners), and a
mains peak at the site's 50 or 60 Hz. Each check is a dict with ``value``, ``target`` and ``passed``, as the other
report checks.
"""

from __future__ import annotations

import numpy as np

from cardiacnets.synth import simulate
from cardiacnets.synth._random import SubjectRandom
from cardiacnets.synth.cart import acquire, is_default_cart
from cardiacnets.synth.sites import DEFAULT_SITE, SITES, Cart, Site
from cardiacnets.synth.subjects import LABELS

__all__ = ["cart_gains_db", "check_sites", "mains_ratio"]

#: Diseases drawn independently at the site's prevalence (heart failure also follows cardiomyopathy and infarcts).
_INDEPENDENT = ("CAD", "PH", "PC", "CM")
_PROBE_HZ = (0.1, 10.0, 100.0)


def cart_gains_db(cart: Cart, fs: int = 500, seconds: float = 10.0) -> dict[float, float]:
    """Gain (dB) of ``cart`` at :data:`_PROBE_HZ`, measured by recording a sum of unit sines (contract rate output)."""
    t = np.arange(int(fs * seconds)) / fs
    probe = sum(np.sin(2 * np.pi * f * t) for f in _PROBE_HZ)
    x = np.broadcast_to(probe, (1, 12, t.size)).astype(np.float32)
    if is_default_cart(cart):
        from scipy.ndimage import convolve1d

        from cardiacnets.synth.ecg import _LOWPASS

        y = convolve1d(x, _LOWPASS, axis=-1, mode="nearest")
    else:
        y = acquire(x, cart, SubjectRandom(0, np.arange(1)))[1]
    spectrum = np.abs(np.fft.rfft(y[0, 0].astype(np.float64))) * 2 / t.size
    freqs = np.fft.rfftfreq(t.size, 1 / fs)
    return {f: float(20 * np.log10(max(spectrum[np.argmin(np.abs(freqs - f))], 1e-12))) for f in _PROBE_HZ}


def mains_ratio(ecg: np.ndarray, mains_hz: float, fs: int = 500) -> float:
    """Mean spectral power in the ``mains_hz`` bin over that of the other mains frequency (50 <-> 60 Hz):
    ``ecg`` ``(n, 12, samples)`` mV."""
    spectrum = np.abs(np.fft.rfft(ecg.astype(np.float64), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(ecg.shape[-1], 1 / fs)
    other = 110.0 - mains_hz
    power = lambda f: float(spectrum[..., np.argmin(np.abs(freqs - f))].mean())  # noqa: E731
    return power(mains_hz) / max(power(other), 1e-20)


def _site_checks(site: Site, d: dict[str, np.ndarray], default_age: float) -> list[dict]:
    n = len(d["labels"])
    out = []
    for disease in _INDEPENDENT:
        p = site.population.prevalence[disease]
        seen = float(d["labels"][:, LABELS.index(disease)].mean())
        tol = 3.5 * np.sqrt(p * (1 - p) / n) + 0.5 / n
        out.append({"check": f"{site.name}: {disease} prevalence", "value": round(seen, 4),
                    "target": f"{p} +/- {tol:.3f}", "passed": bool(abs(seen - p) <= tol)})  # fmt: skip
    if site.name != DEFAULT_SITE:
        sign = np.sign(site.population.age_mean - SITES[DEFAULT_SITE].population.age_mean)
        shift = float(d["age"].mean()) - default_age
        out.append({"check": f"{site.name}: mean age vs default site", "value": round(shift, 2),
                    "target": f"sign {'+' if sign > 0 else '-'}", "passed": bool(np.sign(shift) == sign)})  # fmt: skip
    cart = site.cart
    native = d.get("ecg_native", d["ecg"])
    out.append({"check": f"{site.name}: samples per 10 s at the cart's rate", "value": int(native.shape[-1]),
                "target": str(10 * cart.fs), "passed": bool(native.shape[-1] == 10 * cart.fs)})  # fmt: skip
    counts = native.astype(np.float64) / cart.lsb_mv
    off_grid = float(np.abs(counts - np.round(counts)).max())
    out.append({"check": f"{site.name}: ADC counts of {cart.lsb_mv * 1000:g} uV", "value": round(off_grid, 4),
                "target": "< 0.01 count off the grid", "passed": bool(off_grid < 0.01)})  # fmt: skip
    gains = cart_gains_db(cart)
    hp_ok = gains[0.1] < -10 if (cart.highpass_hz or 0) >= 0.5 else gains[0.1] > -3
    lp_ok = gains[100.0] < -10 if cart.lowpass_hz <= 50 else gains[100.0] > -7  # a 100-Hz corner: -6 dB there
    out.append({"check": f"{site.name}: cart gain dB at 0.1 / 10 / 100 Hz",
                "value": [round(g, 1) for g in gains.values()],
                "target": f"high-pass {cart.highpass_hz} Hz, low-pass {cart.lowpass_hz} Hz, 10 Hz within 1 dB",
                "passed": bool(hp_ok and lp_ok and abs(gains[10.0]) < 1.0)})  # fmt: skip
    ratio = mains_ratio(d["ecg"], cart.mains_hz)
    out.append({"check": f"{site.name}: {cart.mains_hz:g} Hz mains peak over {110 - cart.mains_hz:g} Hz",
                "value": round(ratio, 1), "target": "> 3", "passed": bool(ratio > 3)})  # fmt: skip
    return out


def check_sites(n: int = 400, seed: int = 0) -> list[dict]:
    """Every site's documented differences measured on a population cohort of ``n`` subjects (no cines)."""
    cohorts = {name: simulate(n, seed, site=name, with_cines=False, native_rate=True) for name in SITES}
    default_age = float(cohorts[DEFAULT_SITE]["age"].mean())
    return [check for name, site in SITES.items() for check in _site_checks(site, cohorts[name], default_age)]
