"""ECG2CMR latent diffusion: denoiser, autoencoder, pipeline, outputs, faithfulness measurement (tiny configs)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from cardiacnets.diffusion.evaluate import (  # noqa: E402
    measure_sa_cine,
    paired_r_difference,
    pearson_with_ci,
    psnr,
    segment_sa_frame,
    ssim,
)
from cardiacnets.diffusion.io import SYNTHETIC_LABEL, labelled_frames, save_cine, sidecar_path  # noqa: E402
from cardiacnets.diffusion.schedulers import make_training_scheduler  # noqa: E402
from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D  # noqa: E402
from cardiacnets.diffusion.vae import create_vae, decode_latents, encode_cine, measure_latent_scaling  # noqa: E402
from cardiacnets.errors import ConfigError, InputError  # noqa: E402

FRAMES, SIZE = 4, 16


def tiny_encoder() -> torch.nn.Module:
    from cardiacnets.models.registry import create_model

    torch.manual_seed(0)
    return create_model("ecg-vit-tiny", embed_dim=16, depth=1, num_heads=2).eval()


def tiny_config(**overrides: object) -> Ecg2CmrConfig:
    values = {"num_frames": FRAMES, "height": SIZE, "width": SIZE, "latent_downsample": 2, "condition_dim": 16}
    values.update(overrides)
    return Ecg2CmrConfig.from_preset("tiny", "sa", **values)


@pytest.fixture(scope="module")
def pipeline():
    from cardiacnets import EcgToCmrPipeline

    torch.manual_seed(0)
    denoiser = EcgConditionedUNet3D(tiny_config())
    vae = create_vae("tiny", image_size=SIZE)
    return EcgToCmrPipeline(tiny_encoder(), denoiser, vae)


@pytest.fixture(scope="module")
def ecgs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(2, 12, 5000)).astype(np.float32)


# ------------------------------------------------------------------------------------------------- denoiser
def test_conditional_unet_forward_backward_and_condition_use() -> None:
    torch.manual_seed(0)
    model = EcgConditionedUNet3D(tiny_config())
    x = torch.randn(2, *model.config.latent_shape)  # (2, 4, 4, 8, 8)
    tokens = torch.randn(2, 600, 16)
    out = model(x, torch.tensor([10, 900]), tokens, drop_condition=torch.tensor([False, True]))
    assert out.shape == x.shape
    out.square().mean().backward()
    assert model.condition_proj.weight.grad is not None and model.condition_proj.weight.grad.abs().sum() > 0
    assert model.null_condition.grad is not None and model.null_condition.grad.abs().sum() > 0
    with torch.no_grad():
        t = torch.tensor([500, 500])
        a = model(x, t, tokens)
        b = model(x, t, tokens + torch.randn_like(tokens))
        dropped = model(x, t, tokens, drop_condition=torch.tensor([True, True]))
        null = model(x, t, None)
    assert (a - b).abs().max() > 1e-4, "the ECG condition must change the prediction"
    torch.testing.assert_close(dropped, null, atol=1e-5, rtol=1e-5)


def test_pooled_tokens_and_global_condition_keep_the_null_branch_free_of_the_ecg() -> None:
    torch.manual_seed(0)
    model = EcgConditionedUNet3D(tiny_config(condition_tokens=12, global_condition=True)).eval()
    assert model.unet.time_embedding.cond_proj is not None  # the ECG reaches the timestep embedding
    tokens = torch.randn(2, 600, 16)
    # lead-major tokens averaged per lead, then projected
    expected = model.condition_proj(tokens.reshape(2, 12, 50, 16).mean(dim=2))
    torch.testing.assert_close(model.encode_condition(tokens), expected)
    x = torch.randn(2, *model.config.latent_shape)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        a = model(x, t, tokens)
        b = model(x, t, tokens + torch.randn_like(tokens))
        dropped = model(x, t, tokens, drop_condition=torch.tensor([True, True]))
        null = model(x, t, None)
        other_dropped = model(x, t, torch.randn_like(tokens), drop_condition=torch.tensor([True, True]))
    assert (a - b).abs().max() > 1e-4
    # a dropped condition is the null context whatever the ECG: its mean (the global condition) is the null token
    torch.testing.assert_close(dropped, null, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(other_dropped, null, atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="cannot be pooled"):
        model.encode_condition(torch.randn(1, 601, 16))
    with pytest.raises(ConfigError, match="condition_tokens"):
        tiny_config(condition_tokens=-1)


def test_global_condition_reaches_the_timestep_embedding_only_when_enabled() -> None:
    x = torch.randn(1, 4, FRAMES, SIZE // 2, SIZE // 2)
    tokens = torch.randn(1, 600, 16)
    for global_condition in (False, True):
        torch.manual_seed(0)
        model = EcgConditionedUNet3D(tiny_config(global_condition=global_condition)).eval()
        embeddings: list[torch.Tensor] = []
        hook = model.unet.time_embedding.register_forward_hook(
            lambda _m, _i, out, seen=embeddings: seen.append(out.detach())
        )
        with torch.no_grad():
            model(x, 500, tokens)
            model(x, 500, tokens * 3.0)
        hook.remove()
        differs = bool((embeddings[0] - embeddings[1]).abs().max() > 1e-6)
        assert differs == global_condition  # the ECG modulates every ResNet block through the timestep embedding


def test_denoiser_save_load_round_trip_and_strict_config(tmp_path) -> None:
    torch.manual_seed(1)
    model = EcgConditionedUNet3D(tiny_config()).eval()
    model.save_pretrained(tmp_path / "d")
    assert (tmp_path / "d" / "config.json").is_file() and (tmp_path / "d" / "model.safetensors").is_file()
    loaded = EcgConditionedUNet3D.from_pretrained(tmp_path / "d").eval()
    x = torch.randn(1, *model.config.latent_shape)
    tokens = torch.randn(1, 600, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 3, tokens), loaded(x, 3, tokens))
    meta = json.loads((tmp_path / "d" / "config.json").read_text())
    meta["config"]["colour"] = "red"
    (tmp_path / "d" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="colour"):
        EcgConditionedUNet3D.from_pretrained(tmp_path / "d")


def test_frame_position_makes_the_denoiser_see_frame_order_and_round_trips(tmp_path) -> None:
    """Issue 23's hypothesis: without a frame embedding the UNet3D's temporal attention cannot tell frames apart (at
    initialisation, where diffusers' temporal convolutions are the identity, permuting the input frames permutes the
    output); with ``frame_position="sinusoidal"`` it can. The option round-trips through save/load."""
    x = torch.randn(1, 4, FRAMES, SIZE // 2, SIZE // 2)
    tokens = torch.randn(1, 600, 16)
    order = torch.tensor([2, 0, 3, 1])
    changes = {}
    for frame_position in ("none", "sinusoidal"):
        torch.manual_seed(0)
        model = EcgConditionedUNet3D(tiny_config(frame_position=frame_position)).eval()
        with torch.no_grad():
            out, shuffled = model(x, 200, tokens), model(x[:, :, order], 200, tokens)
        changes[frame_position] = float((shuffled - out[:, :, order]).abs().max())
    assert changes["none"] < 1e-5
    assert changes["sinusoidal"] > 1e-3
    model.save_pretrained(tmp_path / "d")
    loaded = EcgConditionedUNet3D.from_pretrained(tmp_path / "d").eval()
    assert loaded.config.frame_position == "sinusoidal"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 200, tokens), model(x, 200, tokens))
    with pytest.raises(ConfigError, match="frame_position"):
        tiny_config(frame_position="learned-somehow")


def test_config_views_and_validation() -> None:
    la = Ecg2CmrConfig.from_preset("small", "la")
    assert (la.num_frames, la.height, la.width) == (50, 96, 96)
    assert la.latent_shape == (4, 50, 24, 24)
    with pytest.raises(ConfigError):
        Ecg2CmrConfig.from_preset("small", "sa", height=82)
    with pytest.raises(ConfigError, match="known"):
        Ecg2CmrConfig.from_preset("huge", "sa")


def test_training_steps_with_add_noise_run_and_update_weights() -> None:
    torch.manual_seed(0)
    model = EcgConditionedUNet3D(tiny_config())
    sched = make_training_scheduler()
    assert sched.config.beta_start == pytest.approx(1e-4) and sched.config.beta_end == pytest.approx(0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    z0 = torch.randn(2, *model.config.latent_shape)
    tokens = torch.randn(2, 600, 16)
    before = model.condition_proj.weight.detach().clone()
    losses = []
    for _ in range(2):
        noise = torch.randn_like(z0)
        t = torch.randint(0, 1000, (2,))
        noisy = sched.add_noise(z0, noise, t)
        loss = torch.nn.functional.mse_loss(model(noisy, t, tokens, torch.rand(2) < 0.1), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(before, model.condition_proj.weight)


def test_frozen_input_cache_equals_the_uncached_inputs() -> None:
    from cardiacnets.training.tasks.diffusion import DiffusionTask, FrozenInputCache

    rng = np.random.default_rng(0)
    items = [
        {"ecg": torch.as_tensor(rng.normal(size=(12, 5000)) * 0.3), "cine_sa": torch.as_tensor(rng.random((6, 24, 24)))}
        for _ in range(3)
    ]
    torch.manual_seed(0)
    task = DiffusionTask(vae=create_vae("tiny", image_size=SIZE), ecg_encoder=tiny_encoder(), config=tiny_config())
    direct_latents, direct_tokens = task._frozen_inputs(task.collate(items))
    cache = FrozenInputCache(items, task)
    batch = task.collate([cache[i] for i in range(3)])
    assert batch["latents"].shape == (3, *task.config.latent_shape)
    torch.testing.assert_close(batch["latents"], direct_latents, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batch["tokens"], direct_tokens, rtol=1e-4, atol=1e-5)
    assert cache[1] is cache[1]  # computed once, then served from memory
    torch.manual_seed(1)
    cached_loss = task.training_forward(batch)["loss"]
    torch.manual_seed(1)
    direct_loss = task.training_forward(task.collate(items))["loss"]
    assert math.isclose(float(cached_loss), float(direct_loss), rel_tol=1e-3)


# ------------------------------------------------------------------------------------------------- autoencoder
def test_vae_task_trains_at_the_denoiser_resolution() -> None:
    from cardiacnets.training.tasks.vae import VaeTask

    task = VaeTask(preset="tiny", view="sa", image_size=40)
    cine = torch.zeros(50, 80, 80)
    cine[:, 20:60, 20:60] = 1.0  # a bright 40-pixel square -> 20 pixels at half size
    batch = task.collate([{"cine_sa": cine}, {"cine_sa": cine}])["cine_sa"]
    assert batch.shape == (2, 50, 40, 40) and task.model.config.image_size == 40
    assert abs(float((batch[0, 0] > 0.5).sum()) - 20 * 20) <= 2 * 20  # area halves in each direction
    assert VaeTask(preset="tiny", view="la").collate([{"cine_la": torch.zeros(50, 96, 96)}])["cine_la"].shape[-1] == 96
    with pytest.raises(ConfigError, match="image_size"):
        VaeTask(preset="tiny", image_size=4)


def test_vae_encode_decode_shapes_and_measured_scaling() -> None:
    torch.manual_seed(0)
    vae = create_vae("tiny", image_size=SIZE)
    cine = torch.rand(2, 3, SIZE, SIZE)
    shift, scale = measure_latent_scaling(vae, cine)
    z = encode_cine(vae, cine, chunk_size=4)
    assert z.shape == (2, 4, 3, SIZE // 2, SIZE // 2)
    assert float(z.std()) == pytest.approx(1.0, rel=1e-3)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert vae.config.scaling_factor == pytest.approx(scale)
    x = decode_latents(vae, z, chunk_size=4)
    assert x.shape == (2, 3, SIZE, SIZE) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with pytest.raises(InputError):
        encode_cine(vae, torch.rand(1, 2, 15, 15))


# ------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_seed_reproducible_and_seed_sensitive(pipeline, ecgs) -> None:
    a = pipeline(ecgs, num_inference_steps=3, seed=7)
    b = pipeline(ecgs, num_inference_steps=3, seed=7)
    c = pipeline(ecgs, num_inference_steps=3, seed=8)
    g = pipeline(ecgs, num_inference_steps=3, generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, g)
    assert np.abs(a - c).max() > 1e-4


def test_pipeline_guidance_scale_changes_output(pipeline, ecgs) -> None:
    # make the condition matter: a random null token and projection differ from the ECG context
    one = pipeline(ecgs, num_inference_steps=3, guidance_scale=1.0, seed=3)
    three = pipeline(ecgs, num_inference_steps=3, guidance_scale=3.0, seed=3)
    assert np.abs(one - three).max() > 1e-5


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_pipeline_samplers_return_cines_in_unit_range(pipeline, ecgs, scheduler) -> None:
    out = pipeline(ecgs, num_inference_steps=4, scheduler=scheduler, seed=0)
    assert out.shape == (2, FRAMES, SIZE, SIZE) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    unconditional = pipeline(None, batch_size=3, num_inference_steps=2, scheduler=scheduler, seed=0)
    assert unconditional.shape == (3, FRAMES, SIZE, SIZE)


@pytest.mark.parametrize(
    ("ecg", "kwargs", "match"),
    [
        (np.zeros((2, 12, 4000)), {}, "12, 5000"),
        (np.full((1, 12, 5000), np.nan), {}, "NaN"),
        (np.zeros((1, 12, 5000)), {"num_inference_steps": 0}, "num_inference_steps"),
        (np.zeros((1, 12, 5000)), {"guidance_scale": float("nan")}, "guidance_scale"),
        (np.zeros((1, 12, 5000)), {"guidance_scale": -1.0}, "guidance_scale"),
        (np.zeros((1, 12, 5000)), {"scheduler": "euler"}, "scheduler"),
        (np.zeros((1, 12, 5000)), {"seed": 1, "generator": "g"}, "either"),
        (np.zeros((1, 12, 5000)), {"seed": -3}, "seed"),
        (None, {}, "batch_size"),
    ],
)
def test_pipeline_input_checks_raise_input_error(pipeline, ecg, kwargs, match) -> None:
    if kwargs.get("generator") == "g":
        kwargs = {**kwargs, "generator": torch.Generator()}
    with pytest.raises(InputError, match=match):
        pipeline(ecg, **kwargs)


def test_pipeline_save_load_round_trip(pipeline, ecgs, tmp_path) -> None:
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline

    pipeline.save_pretrained(tmp_path / "p")
    loaded = EcgToCmrPipeline.from_pretrained(tmp_path / "p")
    np.testing.assert_allclose(
        pipeline(ecgs[:1], num_inference_steps=2, seed=5), loaded(ecgs[:1], num_inference_steps=2, seed=5), atol=1e-5
    )


# ------------------------------------------------------------------------------------------------- outputs
def test_saved_cines_exist_and_carry_the_synthetic_label(tmp_path) -> None:
    import imageio.v3 as iio
    import nibabel as nib

    rng = np.random.default_rng(0)
    cine = rng.uniform(0, 1, size=(5, 20, 24)).astype(np.float32)
    gif = save_cine(cine, tmp_path / "c.gif", metadata={"seed": 3})
    frames = iio.imread(gif, index=None)
    expected = labelled_frames(cine)
    assert frames.shape[0] == 5
    banner = expected[0, 20 * (expected.shape[2] // 24) :]
    assert banner.max() == 255 and (banner > 128).mean() > 0.01, "the label must be burned into the banner"
    gray = frames[0] if frames.ndim == 3 else frames[0][..., 0]
    np.testing.assert_array_equal(gray[-banner.shape[0] :], banner)
    comment = iio.immeta(gif).get("comment", b"")
    assert SYNTHETIC_LABEL in (comment.decode() if isinstance(comment, bytes) else str(comment))
    nii = save_cine(cine, tmp_path / "c.nii.gz")
    image = nib.load(str(nii))
    assert image.header["descrip"].tobytes().decode().rstrip("\x00") == SYNTHETIC_LABEL
    np.testing.assert_allclose(np.asarray(image.dataobj)[:, :, 0, :].transpose(2, 1, 0), cine)
    npy = save_cine(cine, tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(npy, allow_pickle=False), cine)
    for path in (gif, nii, npy):
        side = json.loads(sidecar_path(path).read_text())
        assert side["synthetic"] is True and side["label"] == SYNTHETIC_LABEL
    assert json.loads(sidecar_path(gif).read_text())["seed"] == 3
    with pytest.raises(InputError):
        save_cine(cine, tmp_path / "c.png")


def test_mp4_written_with_label(tmp_path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    cine = np.random.default_rng(0).uniform(0, 1, size=(4, 16, 16)).astype(np.float32)
    path = save_cine(cine, tmp_path / "c.mp4")
    assert path.stat().st_size > 0
    assert json.loads(sidecar_path(path).read_text())["label"] == SYNTHETIC_LABEL


def test_import_cardiacnets_does_not_import_torch() -> None:
    code = "import sys, cardiacnets; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    code += "; assert callable(cardiacnets.EcgToCmrPipeline) and 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------- measurement
def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def phantom(r_lv: float, wall: float, r_rv: float = 11.0) -> np.ndarray:
    """SA frame: bright LV disc, mid-grey myocardial ring, bright RV crescent, dark lung; ``(80, 80)``."""
    img = np.full((80, 80), 0.05)
    epi = _disc(img.shape, 42, 46, r_lv + wall)
    rv = _disc(img.shape, 42, 46 - r_lv - wall - r_rv * 0.4, r_rv) & ~_disc(img.shape, 42, 46, r_lv + wall + 1.5)
    img[epi] = 0.4
    img[_disc(img.shape, 42, 46, r_lv)] = 0.9
    img[rv] = 0.85
    return img + np.random.default_rng(0).normal(0, 0.01, img.shape)


def test_measurement_recovers_disc_phantom_areas() -> None:
    r_lv, wall = 12.0, 6.0
    img = phantom(r_lv, wall)
    seg = segment_sa_frame(img)
    assert seg.lv.sum() == pytest.approx(math.pi * r_lv**2, rel=0.03)
    assert seg.myo.sum() == pytest.approx(math.pi * ((r_lv + wall) ** 2 - r_lv**2), rel=0.05)
    rv_true = (
        _disc(img.shape, 42, 46 - r_lv - wall - 11 * 0.4, 11) & ~_disc(img.shape, 42, 46, r_lv + wall + 1.5)
    ).sum()
    assert seg.rv.sum() == pytest.approx(rv_true, rel=0.05)
    assert not (seg.lv & seg.rv).any()


def test_cine_measurement_gives_volumes_and_ejection_fraction() -> None:
    radii = [12.0, 10.0, 8.0, 10.0]  # ED, mid-systole, ES, diastole
    cine = np.stack([phantom(r, 6.0) for r in radii])
    ph = measure_sa_cine(cine)
    ed_area, es_area = math.pi * 12.0**2, math.pi * 8.0**2
    assert ph["LVEDV"] == pytest.approx(ed_area**1.5, rel=0.05)
    assert ph["LVESV"] == pytest.approx(es_area**1.5, rel=0.08)
    assert ph["LVEF"] == pytest.approx(1 - (es_area / ed_area) ** 1.5, abs=0.03)
    assert ph["LVM"] == pytest.approx(math.pi * (18.0**2 - 12.0**2), rel=0.05)


def test_paired_r_difference_detects_the_better_predictor() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=64)
    good, noise = real + rng.normal(scale=0.5, size=64), rng.normal(size=64)
    better = paired_r_difference(good, noise, real, n_resamples=500)
    assert better["ci"][0] > 0.4 and better["n"] == 64
    assert paired_r_difference(noise, good, real, n_resamples=500)["ci"][1] < -0.4
    same = paired_r_difference(good, good, real, n_resamples=200)
    assert same["value"] == 0.0 and same["ci"] == [0.0, 0.0]
    assert math.isnan(paired_r_difference(np.ones(10), good[:10], real[:10])["value"])


def test_similarity_and_correlation_statistics() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (3, 32, 32))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, rng.uniform(0, 1, a.shape)) < 0.2
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-6)
    x = rng.normal(size=200)
    strong = pearson_with_ci(x, x + rng.normal(scale=0.5, size=200), n_resamples=300)
    null = pearson_with_ci(x, rng.normal(size=200), n_resamples=300)
    assert strong["ci"][0] > 0.8 and strong["ci"][0] <= strong["value"] <= strong["ci"][1]
    assert null["ci"][0] < 0 < null["ci"][1]


# ------------------------------------------------------------------------------------------------- training CLI
@pytest.mark.slow  # ~1 min CPU, ~3 min wall on the shared 2-core machine (synthetic cines are rendered on the fly)
def test_cntrain_vae_then_diffusion_two_steps_and_pipeline_from_run(tmp_path) -> None:
    from typer.testing import CliRunner

    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.models.registry import save_pretrained
    from cardiacnets.training.cli import app

    common = ["--data", "synthetic", "--n-subjects", "12", "--model", "tiny", "--max-steps", "2", "--batch-size", "2"]
    common += ["--set", "train.eval_every=2", "--set", "train.progress=false", "--set", "train.warmup_steps=1"]
    common += ["--set", "train.max_eval_batches=1", "--set", "train.eval_batch_size=2"]
    runner = CliRunner()
    result = runner.invoke(app, ["vae", "--view", "sa", "--out", str(tmp_path / "vae"), *common])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "vae" / "best" / "model.safetensors").is_file()
    assert list((tmp_path / "vae" / "samples").glob("*.png"))
    save_pretrained(tiny_encoder(), tmp_path / "enc")
    args = ["diffusion", "--view", "sa", "--vae", str(tmp_path / "vae"), "--ecg-encoder", str(tmp_path / "enc")]
    args += ["--out", str(tmp_path / "diff"), "--set", "task.num_frames=4", "--set", "task.height=16"]
    args += ["--set", "task.width=16", *common]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["step"] == 2 and math.isfinite(summary["best_value"])
    assert list((tmp_path / "diff" / "samples").glob("samples_step*.png"))
    pipe = EcgToCmrPipeline.from_components(tmp_path / "enc", tmp_path / "diff", tmp_path / "vae")
    out = pipe(np.zeros((1, 12, 5000), np.float32), num_inference_steps=2, seed=0)
    assert out.shape == (1, 4, 16, 16) and 0.0 <= out.min() <= out.max() <= 1.0
