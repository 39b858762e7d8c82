"""The recording cart of a simulated site: analogue filters, sampling rate and ADC applied to the electrode signals.

The simulator forms the 12 leads at 500 Hz (``ecg.FS``). A site's cart (:class:`~cardiacnets.synth.sites.Cart`)
then records them as its hardware would: a 1000 Hz cart sees the signal upsampled with its own amplifier noise floor
(white, so its spectrum reaches 500 Hz), an analogue high-pass and low-pass act causally (2nd-order Butterworth
low-pass, 1st-order high-pass, both started in steady state so a record has no switch-on transient), a 250 Hz cart
decimates (with the anti-alias filter of :func:`scipy.signal.resample_poly`), and the ADC quantises to ``lsb_mv``.
The record at the cart's own rate is what the site's files hold; the dataset contract then stores it resampled to
500 Hz, as the converters do for real carts. The default site's cart (15-tap FIR, 500 Hz, no high-pass) is applied
in :mod:`cardiacnets.synth.ecg` exactly as before.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt, sosfilt_zi

from cardiacnets.errors import InputError
from cardiacnets.synth._random import SubjectRandom
from cardiacnets.synth.sites import Cart

__all__ = ["AMPLIFIER_NOISE_MV", "acquire", "is_default_cart"]

CONTRACT_FS = 500
#: RMS of the amplifier's white noise floor at the cart's input (mV), added at the cart's own rate.
AMPLIFIER_NOISE_MV = 0.003
_FULL_SCALE_MV = 30.0


def is_default_cart(cart: Cart) -> bool:
    """The default site's cart: 500 Hz, the 15-tap FIR low-pass, no high-pass (applied by ``ecg`` as before)."""
    return cart.fs == CONTRACT_FS and cart.lowpass_kind == "fir15" and cart.highpass_hz is None


def _causal(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Causal filtering along the last axis, started in the steady state of each lead's first sample."""
    zi = sosfilt_zi(sos)[:, None, None, :] * x[None, ..., :1]  # (sections, n, 12, 2)
    return sosfilt(sos, x, axis=-1, zi=zi)[0]


def acquire(ecg: np.ndarray, cart: Cart, rnd: SubjectRandom) -> tuple[np.ndarray, np.ndarray]:
    """Record ``ecg`` ``(n, 12, 5000)`` mV at 500 Hz (electrode signals with their noise) through ``cart``.

    Returns ``(native, contract)``: float32 ``(n, 12, 10 * cart.fs)`` mV at the cart's rate, quantised to its
    ``lsb_mv`` and clipped to +-30 mV, and the same record resampled to the 500-Hz contract ``(n, 12, 5000)``.
    """
    if cart.fs not in (250, 500, 1000):
        raise InputError(f"cart sampling rate must be 250, 500 or 1000 Hz, got {cart.fs!r}")
    if cart.lowpass_kind != "butter2":
        raise InputError(
            f"a site cart's low-pass must be 'butter2' (fir15 is the default cart), got {cart.lowpass_kind}"
        )
    x = np.asarray(ecg, dtype=np.float64)
    fs = CONTRACT_FS
    if cart.fs > fs:
        x = resample_poly(x, cart.fs // fs, 1, axis=-1)
        fs = cart.fs
    n, leads, samples = x.shape
    floor = rnd.bank_windows("cart_amplifier", leads * samples).reshape(n, leads, samples)
    x = x + AMPLIFIER_NOISE_MV * floor
    if cart.highpass_hz is not None:
        x = _causal(x, butter(1, cart.highpass_hz, "highpass", fs=fs, output="sos"))
    x = _causal(x, butter(2, min(cart.lowpass_hz, 0.45 * fs), "lowpass", fs=fs, output="sos"))
    if cart.fs < fs:
        x = resample_poly(x, 1, fs // cart.fs, axis=-1)
    native = np.clip(np.round(x / cart.lsb_mv) * cart.lsb_mv, -_FULL_SCALE_MV, _FULL_SCALE_MV).astype(np.float32)
    if cart.fs == CONTRACT_FS:
        return native, native
    up, down = (2, 1) if cart.fs < CONTRACT_FS else (1, 2)
    contract = resample_poly(native.astype(np.float64), up, down, axis=-1).astype(np.float32)
    return native, contract
