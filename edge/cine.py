"""``cnscreen FILE --cine``: generate short- and long-axis cines from the bundle's ECG2CMR graphs.

The graphs (conditional ECG encoder, UNet3D denoiser, VAE frame decoder) run on onnxruntime with the chosen execution
provider (TensorRT, then CUDA on a GPU, the FP16 denoiser there; FP32 on the CPU, allowed with a warning and a time
estimate). On TensorRT each graph gets a static shape profile and an engine cache under the user's cache folder, and
on a GPU every graph runs once before the clock starts, so engine builds never enter the timings. The provider each
graph actually ran on is checked and reported. The DDIM / DPM-Solver++ update rule comes from diffusers, so this path
needs the ``[cine]`` extra (torch, diffusers, nibabel); without it ``--cine`` says in one line what to install. The
loop mirrors :class:`cardiacnets.diffusion.pipeline.EcgToCmrPipeline`: classifier-free guidance with
the null condition selected by the graph's ``drop_condition`` input, initial noise drawn from a seeded CPU generator
(same seed, same cine), frame-wise decoding. Every output is labelled as AI-generated imagery.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import Bundle
from cardiacnets.errors import BundleError, InputError
from cardiacnets.execution import CPU, TRT, batch_profile, create_session, trt_cache_dir, trt_provider_options

logger = logging.getLogger(__name__)

DEFAULT_STEPS = {"dpm": 20, "ddim": 100}
#: What ``--cine`` imports beyond the screening install: module -> the package that provides it.
CINE_MODULES = {"torch": "torch", "diffusers": "diffusers", "nibabel": "nibabel"}
CINE_INSTALL_HINT = (
    "pip install 'cardiacnets[cine]' (torch==2.13.0 first, as scripts/install.sh does; a CUDA build for a GPU)"
)


def require_cine_stack() -> Any:
    """Import what cine generation needs and return ``torch``; one-line :class:`InputError` naming the missing
    packages and the ``[cine]`` extra otherwise."""
    import importlib

    missing = []
    for module, package in CINE_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:  # a broken dependency of diffusers raises ImportError too
            missing.append(f"{package} ({str(exc).splitlines()[0] if str(exc) else 'not installed'})")
    if missing:
        raise InputError(f"--cine needs the [cine] extra; missing {', '.join(missing)}: {CINE_INSTALL_HINT}")
    import torch

    return torch


def _model_entry(bundle: Bundle, rel: str) -> dict[str, Any]:
    """The manifest entry whose graph (or one of its variants) is ``rel``."""
    for entry in bundle.manifest["models"].values():
        files = [entry.get("file"), *(v.get("file") for v in (entry.get("variants") or {}).values())]
        if rel in files:
            return entry
    raise BundleError(f"bundle {bundle.root}: no model entry lists {rel}")


def _session(
    bundle: Bundle, rel: str, providers: list[str], *, batch: int, allow_fallback: bool = False
) -> tuple[Any, str]:
    """A session on ``providers`` and the provider it runs on; on TensorRT a static profile at ``batch`` and an
    engine cache keyed by the graph's sha256."""
    trt_options = None
    if providers[0] == TRT:
        profile = batch_profile(_model_entry(bundle, rel)["inputs"], batch, batch, batch)
        digest = str(bundle.manifest["files"][rel]["sha256"])
        trt_options = trt_provider_options(trt_cache_dir(digest, profile=profile), profile=profile)
    return create_session(bundle.path(rel), providers, trt_options=trt_options, allow_fallback=allow_fallback)


def needs_warmup(provider: str) -> bool:
    """GPU providers build engines and pick kernels on their first run: run once before any timing."""
    return provider != CPU


def sample_view(
    bundle: Bundle,
    view: str,
    ecg: np.ndarray,
    *,
    providers: list[str],
    steps: int | None = None,
    scheduler: str | None = None,
    guidance_scale: float = 3.0,
    seed: int = 0,
    progress: Any = None,
    allow_fallback: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One cine ``(F, H, W)`` in [0, 1] for ``view`` from a preprocessed ECG ``(12, 5000)``; plus sampling info
    (``seconds`` excludes the warm-up run; ``providers`` names what each graph actually ran on)."""
    torch = require_cine_stack()
    from cardiacnets.diffusion.schedulers import make_sampling_scheduler

    cine = bundle.manifest.get("cine") or {}
    spec = (cine.get("views") or {}).get(view)
    if spec is None:
        raise BundleError(f"bundle {bundle.root} has no cine model for view {view!r}")
    name = scheduler or spec.get("default_scheduler", "dpm")
    steps = int(steps or DEFAULT_STEPS.get(name, 20))
    if steps < 1 or not np.isfinite(guidance_scale):
        raise InputError(f"need steps >= 1 and a finite guidance scale, got {steps}, {guidance_scale}")
    on_gpu = providers[0] != "CPUExecutionProvider"
    unet_rel = spec["unet"]
    if on_gpu:
        variants = bundle.model(f"cine_{view}_unet").get("variants") or {}
        unet_rel = variants.get("fp16", {}).get("file", unet_rel)
    c, f, h, w = spec["latent_shape"]
    encoder, on_encoder = _session(bundle, spec["ecg_encoder"], providers, batch=1, allow_fallback=allow_fallback)
    unet, on_unet = _session(bundle, unet_rel, providers, batch=2, allow_fallback=allow_fallback)
    decoder, on_decoder = _session(bundle, spec["vae_decoder"], providers, batch=f, allow_fallback=allow_fallback)
    config = bundle.path(spec["scheduler_config"]).read_text()
    import json

    sched = make_sampling_scheduler(name, json.loads(config))
    sched.set_timesteps(steps)

    tokens = encoder.run(["tokens"], {"ecg": ecg[None].astype(np.float32)})[0]  # (1, T, D)
    generator = torch.Generator().manual_seed(int(seed))
    latents = torch.randn((1, *spec["latent_shape"]), generator=generator, dtype=torch.float32)
    latents = latents * sched.init_noise_sigma
    context = np.concatenate([tokens, tokens]).astype(np.float32)
    drop = np.array([True, False])
    if needs_warmup(on_unet):
        unet.run(["noise_pred"], {"sample": np.zeros((2, c, f, h, w), np.float32), "timestep": np.zeros(2, np.int64),
                                  "ecg_tokens": context, "drop_condition": drop})  # fmt: skip
    if needs_warmup(on_decoder):
        decoder.run(["frames"], {"latents": np.zeros((f, c, h, w), np.float32)})
    started = time.perf_counter()
    for i, t in enumerate(sched.timesteps):
        model_in = sched.scale_model_input(torch.cat([latents, latents]), t).numpy().astype(np.float32)
        timestep = np.full(2, int(t), dtype=np.int64)
        eps = unet.run(["noise_pred"], {"sample": model_in, "timestep": timestep, "ecg_tokens": context,
                                        "drop_condition": drop})[0]  # fmt: skip
        eps_uncond, eps_cond = torch.from_numpy(eps).float().chunk(2)
        guided = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
        latents = sched.step(guided, t, latents).prev_sample
        if progress is not None:
            progress(view, i + 1, steps, time.perf_counter() - started)
    z = latents.permute(0, 2, 1, 3, 4).reshape(f, c, h, w).numpy().astype(np.float32)
    frames = decoder.run(["frames"], {"latents": z})[0]  # (F, H, W) in [0, 1]
    info = {"view": view, "scheduler": name, "steps": steps, "guidance_scale": guidance_scale, "seed": seed,
            "seconds": round(time.perf_counter() - started, 2), "provider": on_unet,
            "providers": {"ecg_encoder": on_encoder, "unet": on_unet, "vae_decoder": on_decoder},
            "unet_graph": unet_rel}  # fmt: skip
    return np.clip(frames, 0.0, 1.0).astype(np.float32), info


def _gif_bytes(cine: np.ndarray) -> bytes:
    import imageio.v3 as iio

    frames = (np.clip(cine, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    iio.imwrite(buffer, frames, extension=".gif", loop=0, duration=40)
    return buffer.getvalue()


def generate_cines(
    bundle: Bundle,
    prepared: Any,
    *,
    out_dir: Path | None,
    stem: str,
    device: str = "auto",
    seed: int = 0,
    steps: int | None = None,
    scheduler: str | None = None,
    allow_fallback: bool = False,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Generate every view the bundle has. Returns (info, GIF bytes by view); with ``out_dir`` also writes each view as
    GIF, MP4, NIfTI and NumPy files there (listed in ``info["views"][view]["files"]``). Nothing is written elsewhere.
    A view whose frames do not all show a heart (:mod:`cardiacnets.edge.cine_gate`) is neither written nor shown: its
    info says why (``refused``) and its GIF is a still image carrying that line."""
    require_cine_stack()
    from rich.console import Console

    from cardiacnets.diffusion.io import save_cine
    from cardiacnets.edge.cine_gate import gate_cine, refusal_image
    from cardiacnets.edge.screen import select_providers

    providers = select_providers(device)
    views = list((bundle.manifest.get("cine") or {}).get("views") or {})
    if not views:
        raise BundleError(f"bundle {bundle.root} has no cine models; build it with cnexport bundle --diffusion")
    console = Console(stderr=True)
    if providers[0] == CPU:
        console.print("[yellow]warning:[/] generating cines on the CPU; a GPU (CUDA/TensorRT) is much faster")

    def progress(view: str, step: int, total: int, seconds: float) -> None:
        if step == 1:
            console.print(f"{view}: ~{seconds * total:.0f} s estimated for {total} steps")

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"label": "AI-generated from ECG - synthetic imagery", "views": {}}
    gifs: dict[str, bytes] = {}
    for view in views:
        cine, sample_info = sample_view(bundle, view, prepared.ecg, providers=providers, steps=steps,
                                        scheduler=scheduler, seed=seed, progress=progress,
                                        allow_fallback=allow_fallback or device == "auto")  # fmt: skip
        refused = gate_cine(cine, view, sample_info)  # a cine without a heart in every frame is not shown
        files = {}
        for suffix in (".gif", ".mp4", ".nii.gz", ".npy") if out_dir is not None and not refused else ():
            path = out_dir / f"{stem}.cine_{view}{suffix}"
            try:
                save_cine(cine, path, metadata=sample_info)
                files[suffix.lstrip(".")] = str(path)
            except Exception as exc:  # noqa: BLE001 - one format failing (e.g. no ffmpeg for MP4) is not fatal
                logger.warning("could not write %s: %s", suffix, exc)
        sample_info["files"] = files
        info["views"][view] = sample_info
        name = {"sa": "short axis", "la": "4-chamber long axis"}.get(view, view)
        gifs[f"{name}: {refused}" if refused else name] = refusal_image(refused) if refused else _gif_bytes(cine)
    return info, gifs
