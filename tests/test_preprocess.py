"""ECG preprocessing: vectorised path equals the per-lead statsmodels/pywt/scipy reference; each step does its job."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from statsmodels.tsa.seasonal import seasonal_decompose

from cardiacnets.augment import augment_ecg, crop_resize, sign_flip, time_flip
from cardiacnets.errors import ConfigError, InputError
from cardiacnets.preprocess import (
    PreprocessConfig,
    center_crop_or_pad,
    estimate_heart_rate,
    minmax_scale,
    preprocess_ecg,
    preprocess_record,
    remove_baseline_seasonal,
    resample_to,
    savgol_smooth,
    seasonal_trend,
    wavelet_denoise,
)
from cardiacnets.record import EcgRecord
from tests.reference_preprocess import reference_preprocess_record
from tests.synthetic_ecg import synthetic_ecg

CASES = [  # (fs Hz, duration s, heart rate bpm)
    (500.0, 10.0, 72.0),
    (250.0, 10.0, 48.0),
    (1000.0, 12.0, 130.0),
    (240.0, 10.42, 90.0),
    (100.0, 10.0, 60.0),
    (500.0, 7.0, 165.0),
    (800.0, 40.9, 55.0),
]


def _db(power_ratio: float) -> float:
    return 10.0 * np.log10(power_ratio)


@pytest.mark.parametrize(("fs", "duration", "hr"), CASES)
def test_vectorised_equals_per_lead_reference(fs: float, duration: float, hr: float) -> None:
    rng = np.random.default_rng(int(fs + hr))
    x = synthetic_ecg(fs, duration, hr, rng, noise_mV=0.03, wander_mV=0.4)
    out, info = preprocess_ecg(x, fs, return_info=True)
    ref = reference_preprocess_record(x, fs, info["heart_rate"])
    assert out.shape == (12, 5000) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    assert info["resampled"] == (fs != 500.0)
    assert info["cropped"] == (duration * 500 > 5000 + 1)
    assert info["padded"] == (duration * 500 < 5000 - 1)


def test_batch_of_records_in_one_call_equals_reference() -> None:
    rng = np.random.default_rng(7)
    heart_rates = [45.0, 60.0, 75.0, 95.0, 120.0, 150.0]
    batch = np.stack([synthetic_ecg(500.0, 10.0, hr, rng, wander_mV=0.3) for hr in heart_rates])  # (6, 12, 5000)
    out, info = preprocess_ecg(batch, 500.0, return_info=True)
    assert out.shape == (6, 12, 5000)
    assert len(set(info["period"])) == len(heart_rates)  # several seasonal periods in one call
    for b, hr in enumerate(info["heart_rate"]):
        np.testing.assert_allclose(out[b], reference_preprocess_record(batch[b], 500.0, hr), atol=1e-5, rtol=0)
    # Given heart rates are used (clamped), not re-estimated.
    _, info = preprocess_ecg(batch, 500.0, heart_rate=np.array([30.0, 60, 75, 95, 120, 250]), return_info=True)
    assert info["heart_rate"] == [40.0, 60.0, 75.0, 95.0, 120.0, 180.0]


@pytest.mark.parametrize("period", [2, 3, 416, 417, 750])
def test_seasonal_trend_is_statsmodels_trend(period: int) -> None:
    x = synthetic_ecg(500.0, 10.0, 70.0, np.random.default_rng(period), wander_mV=1.0)
    ours = seasonal_trend(x, period)
    for lead in range(12):
        theirs = seasonal_decompose(x[lead], model="additive", period=period, extrapolate_trend=period - 1).trend
        np.testing.assert_allclose(ours[lead], theirs, atol=1e-9, rtol=0)


def test_baseline_removal_removes_wander_and_keeps_qrs() -> None:
    rng = np.random.default_rng(3)
    clean = synthetic_ecg(500.0, 10.0, 70.0, rng, noise_mV=0.0)
    t = np.arange(5000) / 500.0
    wander = 0.8 * np.sin(2 * np.pi * 0.25 * t) + 0.3 * t / 10.0  # 0.8 mV 0.25-Hz sway plus a 0.3-mV ramp
    out = remove_baseline_seasonal(clean + wander, 428)  # one beat at 70 bpm
    residual = out - (clean - clean.mean(axis=-1, keepdims=True))
    inner = slice(500, 4500)
    assert _db(np.mean(wander[inner] ** 2) / np.mean(residual[:, inner] ** 2)) > 15.0
    lead_ii = out[1]
    assert np.corrcoef(lead_ii[inner], clean[1, inner])[0, 1] > 0.97


def test_wavelet_denoise_improves_snr_and_keeps_r_peaks() -> None:
    rng = np.random.default_rng(4)
    clean = synthetic_ecg(500.0, 10.0, 70.0, rng, noise_mV=0.0)
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    denoised = wavelet_denoise(noisy, "db6", 4)
    gain = _db(np.mean((noisy - clean) ** 2) / np.mean((denoised - clean) ** 2))
    assert gain > 4.0  # the 0-16 Hz approximation band keeps its share of white noise by design
    assert denoised[1].max() == pytest.approx(clean[1].max(), rel=0.15)


def test_savgol_passes_ecg_band_and_attenuates_high_frequency() -> None:
    t = np.arange(5000) / 500.0
    slow = np.sin(2 * np.pi * 5.0 * t)
    qrs_band = np.sin(2 * np.pi * 40.0 * t)
    fast = np.sin(2 * np.pi * 150.0 * t)
    inner = slice(100, 4900)
    assert _db(np.mean(slow[inner] ** 2) / np.mean(savgol_smooth(slow)[inner] ** 2)) < 0.1
    assert _db(np.mean(qrs_band[inner] ** 2) / np.mean(savgol_smooth(qrs_band)[inner] ** 2)) < 3.0
    assert _db(np.mean(fast[inner] ** 2) / np.mean(savgol_smooth(fast)[inner] ** 2)) > 10.0


def test_minmax_scale_channelwise_and_flat_channel() -> None:
    x = np.stack([np.linspace(-3, 5, 100), np.full(100, 2.5), np.sin(np.arange(100.0))])
    out = minmax_scale(x)
    assert out[0].min() == -1.0 and out[0].max() == 1.0 and out[2].min() == -1.0 and out[2].max() == 1.0
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[0], np.linspace(-1, 1, 100), atol=1e-12)


def test_resample_keeps_frequency_and_amplitude() -> None:
    fs = 240.0
    t = np.arange(2400) / fs
    x = np.sin(2 * np.pi * 10.0 * t)[None, :]
    y = resample_to(x, fs, 500.0)
    assert y.shape == (1, 5000)
    t2 = np.arange(5000) / 500.0
    np.testing.assert_allclose(y[0, 200:-200], np.sin(2 * np.pi * 10.0 * t2)[200:-200], atol=1e-2)


def test_center_crop_or_pad() -> None:
    x = np.arange(10.0)[None]
    cropped, padded = center_crop_or_pad(x, 4)
    assert not padded and cropped.tolist() == [[3.0, 4.0, 5.0, 6.0]]
    wide, padded = center_crop_or_pad(x, 15)
    assert padded and wide.shape == (1, 15) and wide[0, 2:12].tolist() == list(range(10))
    assert wide[0, :2].tolist() == [0, 0] and wide[0, 12:].tolist() == [0, 0, 0]


@pytest.mark.parametrize("hr", [42.0, 60.0, 85.0, 110.0, 170.0])
def test_heart_rate_estimate(hr: float) -> None:
    x = synthetic_ecg(500.0, 10.0, hr, np.random.default_rng(int(hr)), noise_mV=0.03, wander_mV=0.3)
    assert estimate_heart_rate(x, 500.0) == pytest.approx(hr, rel=0.04)


def test_heart_rate_of_flat_record_is_nan_and_default_used() -> None:
    flat = np.zeros((2, 12, 5000))
    assert np.isnan(estimate_heart_rate(flat, 500.0)).all()
    out, info = preprocess_ecg(flat, 500.0, return_info=True)
    assert info["heart_rate"] == [75.0, 75.0]
    np.testing.assert_array_equal(out, 0.0)


def test_preprocess_record_reports_what_it_did() -> None:
    x = synthetic_ecg(250.0, 8.0, 66.0, np.random.default_rng(9)).astype(np.float32)
    record = EcgRecord(signal=x, fs=250.0, meta={"heart_rate": 66})
    out, info = preprocess_record(record)
    assert out.shape == (12, 5000) and out.dtype == np.float32
    assert info["resampled"] and info["padded"] and not info["cropped"]
    assert info["heart_rate"] == 66.0 and info["heart_rate_source"] == "file" and info["period"] == 455
    assert info["fs_in"] == 250.0 and info["n_samples_in"] == 2000
    assert np.all(out[:, :500] == 0) and np.all(out[:, -500:] == 0)  # 1 s of zero padding each side
    assert out[:, 500:4500].min() == -1.0 and out[:, 500:4500].max() == 1.0


def test_config_round_trip_and_strictness() -> None:
    config = PreprocessConfig(wavelet_level=5, savgol_window=15)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    import json

    assert PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown key"):
        PreprocessConfig.from_dict({**config.to_dict(), "wavelet_levels": 3})
    with pytest.raises(ConfigError, match="integer"):
        PreprocessConfig.from_dict({"wavelet_level": "4"})
    with pytest.raises(ConfigError, match="odd"):
        PreprocessConfig(savgol_window=14)
    with pytest.raises(ConfigError, match="wavelet"):
        PreprocessConfig(wavelet="db99")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.wavelet = "db4"  # type: ignore[misc]


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        preprocess_ecg(np.zeros(5000), 500.0)
    with pytest.raises(InputError):
        preprocess_ecg(np.zeros((12, 5000)), 0.0)
    with pytest.raises(InputError):
        preprocess_ecg(np.zeros((12, 0)), 500.0)


def test_augmentations_are_seeded_and_do_what_they_say() -> None:
    x = synthetic_ecg(500.0, 10.0, 70.0, np.random.default_rng(0))
    ramp = np.tile(np.arange(1000.0), (2, 1))
    np.testing.assert_array_equal(time_flip(x, np.random.default_rng(0), p=1.0), x[:, ::-1])
    np.testing.assert_array_equal(sign_flip(x, np.random.default_rng(0), p=1.0), -x)
    np.testing.assert_array_equal(time_flip(x, np.random.default_rng(0), p=0.0), x)
    cropped = crop_resize(ramp, np.random.default_rng(1), min_fraction=0.5)
    steps = np.diff(cropped[0])
    assert cropped.shape == ramp.shape and np.allclose(steps, steps[0]) and 0.49 <= steps[0] <= 1.0
    np.testing.assert_array_equal(cropped[0], cropped[1])  # one crop for all leads
    a = augment_ecg(x, np.random.default_rng(5))
    b = augment_ecg(x, np.random.default_rng(5))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert a.min() == -1.0 and a.max() == 1.0


@pytest.mark.parametrize("n", [11, 12, 57, 5000])
def test_savgol_smooth_is_scipy_savgol_filter(n: int) -> None:
    from scipy import signal as sps

    x = np.random.default_rng(4).normal(size=(2, 12, n))
    np.testing.assert_allclose(savgol_smooth(x), sps.savgol_filter(x, 11, 3, axis=-1), atol=1e-12, rtol=0)
    np.testing.assert_allclose(
        savgol_smooth(x[0].T, 7, 2, axis=0), sps.savgol_filter(x[0].T, 7, 2, axis=0), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("width", [1, 2, 24, 25, 40])
def test_box_filter_is_a_centred_moving_average(width: int) -> None:
    from scipy import signal as sps

    from cardiacnets.preprocess import _box_filter_same

    x = np.random.default_rng(5).normal(size=(3, 31))
    expected = sps.fftconvolve(x, np.ones((1, width)) / width, mode="same", axes=-1)
    np.testing.assert_allclose(_box_filter_same(x, width), expected, atol=1e-12, rtol=0)


def test_fast_fft_length_is_the_next_5_smooth_number() -> None:
    from cardiacnets.preprocess import _fast_fft_length

    def smooth(k: int) -> bool:
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        return k == 1

    for minimum in list(range(1, 600)) + [9997]:
        assert _fast_fft_length(minimum) == next(k for k in range(minimum, 4 * minimum + 2) if smooth(k))
    assert _fast_fft_length(2 * 4999 - 1) == 10000
