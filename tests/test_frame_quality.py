"""Frame quality of generated cines and the 4-chamber measurement: real synthetic cines show a heart in every frame,
noise in none, and the long-axis proxies track the simulated hearts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cardiacnets.diffusion.data import resample_cine
from cardiacnets.diffusion.frame_quality import cine_quality, fraction_with_heart, frame_failure
from cardiacnets.diffusion.measure_la import LA_PHENOTYPES, area_length_volume, measure_la_cine, segment_la_frame
from cardiacnets.errors import InputError
from cardiacnets.synth import simulate

#: The CPU recipe's cines (scripts/demo_model.sh): 8 frames, SA 40 x 40, LA 48 x 48.
SHAPES = {"sa": (8, 40, 40), "la": (8, 48, 48)}


@pytest.fixture(scope="module")
def cohort() -> dict[str, np.ndarray]:
    # a seed the ranges were not derived from (they come from the demo cohort, seed 0)
    return simulate(24, seed=11, mode="balanced")


@pytest.fixture(scope="module")
def cines(cohort) -> dict[str, np.ndarray]:
    return {view: resample_cine(cohort[f"cine_{view}"], *shape).numpy() for view, shape in SHAPES.items()}


def _noise_blobs(n: int, shape: tuple[int, int, int], sigma: float, seed: int) -> np.ndarray:
    """Smooth random fields scaled to [0, 1]: what an untrained denoiser's decoder draws."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, *shape)), (0, 0, sigma, sigma))
    low, high = field.min(axis=(2, 3), keepdims=True), field.max(axis=(2, 3), keepdims=True)
    return (field - low) / (high - low)


@pytest.mark.parametrize("view", ["sa", "la"])
def test_real_cines_show_a_heart_in_every_frame(cines, view: str) -> None:
    assert fraction_with_heart(cines[view], view) == 1.0
    assert all(cine_quality(c, view).ok for c in cines[view])


@pytest.mark.parametrize("view", ["sa", "la"])
@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_noise_shows_no_heart(view: str, sigma: float) -> None:
    noise = _noise_blobs(6, SHAPES[view], sigma, seed=int(sigma * 10))
    assert fraction_with_heart(noise, view) == 0.0
    quality = cine_quality(noise[0], view)
    assert not quality.ok and quality.reason().startswith("no heart found in 8 of 8 frames")


@pytest.mark.parametrize("view", ["sa", "la"])
def test_large_smooth_blobs_rarely_pass(view: str) -> None:
    # blobs a fifth of the frame wide can mimic a pool now and then (the module docstring says so): rarely
    assert fraction_with_heart(_noise_blobs(6, SHAPES[view], 2.0, seed=20), view) < 0.05


@pytest.mark.parametrize("view", ["sa", "la"])
def test_what_the_bundle_decoders_draw_from_random_latents_is_refused(view: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from cardiacnets.bundle import default_bundle_path, load_bundle

    bundle = load_bundle(default_bundle_path())
    spec = bundle.manifest["cine"]["views"][view]
    c, f, h, w = spec["latent_shape"]
    decoder = ort.InferenceSession(str(bundle.path(spec["vae_decoder"])), providers=["CPUExecutionProvider"])
    latents = np.random.default_rng(3).standard_normal((16 * f, c, h, w)).astype(np.float32)
    frames = decoder.run(["frames"], {"latents": latents})[0].reshape(16, f, *spec["cine_shape"][1:])
    assert fraction_with_heart(frames, view) <= 2 / (16 * f)
    assert not any(cine_quality(cine, view).ok for cine in frames)


def test_one_noise_frame_is_found_and_named(cines) -> None:
    cine = cines["la"][0].copy()
    cine[3] = _noise_blobs(1, SHAPES["la"], 1.5, seed=5)[0, 0]
    quality = cine_quality(cine, "la")
    assert quality.frames_with_heart == 7 and not quality.ok
    assert quality.failures[3] is not None and all(f is None for i, f in enumerate(quality.failures) if i != 3)
    assert "1 of 8 frames (frame 4:" in quality.reason()


def test_a_frame_is_judged_by_ratios_not_its_intensity_scale(cines) -> None:
    frame = cines["la"][1, 0]
    assert frame_failure(frame, "la") is None
    assert frame_failure(frame * 700.0 + 40.0, "la") is None


def test_long_axis_proxies_track_the_simulated_hearts(cohort, cines) -> None:
    measured = [measure_la_cine(c) for c in cines["la"]]
    assert set(LA_PHENOTYPES) <= set(measured[0])
    truth = cohort["phenotypes"]  # columns of cardiacnets/data/phenotypes_82.csv

    def r(name: str, column: int) -> float:
        return float(np.corrcoef([m[name] for m in measured], truth[:, column])[0, 1])

    assert r("LVEDV", 0) > 0.9 and r("LVESV", 1) > 0.9 and r("LVEF", 3) > 0.85
    assert r("LAV_min", 11) > 0.7 and r("LAV_max", 10) > 0.5


def test_long_axis_segmentation_finds_lv_above_la(cines) -> None:
    seg = segment_la_frame(cines["la"][2, 0])
    assert seg.found
    lv_row, la_row = np.argwhere(seg.lv)[:, 0].mean(), np.argwhere(seg.la)[:, 0].mean()
    assert lv_row < la_row  # apex up: the LV lies above the LA
    assert not (seg.lv & seg.la).any()
    assert seg.lv_length > seg.lv_width  # a bullet, longer than wide


def test_area_length_volume_of_an_ellipse_is_its_spheroid() -> None:
    a, length = np.pi * 5.0 * 10.0, 20.0  # ellipse with semi-axes 5 and 10: prolate spheroid 4/3 pi 5^2 10
    assert area_length_volume(np.array([a]), np.array([length]))[0] == pytest.approx(4.0 / 3.0 * np.pi * 250.0)
    assert area_length_volume(np.array([10.0]), np.array([0.0]))[0] == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="view"):
        cine_quality(np.zeros((2, 8, 8)), "2ch")
    with pytest.raises(InputError, match="frames, H, W"):
        cine_quality(np.zeros((8, 8)), "sa")
    with pytest.raises(InputError, match="NaN"):
        measure_la_cine(np.full((2, 8, 8), np.nan))
