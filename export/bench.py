"""Inference benchmarks (run on purpose, never as tests): screening throughput and latency, and diffusion sampling
time.

- :func:`bench_bundle`: the graphs a bundle ships (its FP32 screening graph and each precision variant it lists) with
  onnxruntime, and torch eager only when the saved torch model is given; the bundle's identity in the report.
- :func:`bench_screening`: a model (saved, or random weights from the registry) as torch eager, ORT FP32 and ORT INT8
  graphs exported for the run, with its FLOPs against the machine's measured matmul rate.

Timing: every runtime is warmed up, then the runtimes are measured in interleaved rounds (torch, ORT FP32, ORT INT8,
torch, ...) so a load spike from other processes hits all of them alike; the median per-call latency over all rounds
is reported, with throughput = batch / median latency and ratios against a baseline runtime (torch eager when timed,
else the FP32 graph).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)


def vit_flops(embed_dim: int, depth: int, mlp_ratio: float, n_patches: int, patch_samples: int) -> dict[str, int]:
    """Analytic forward FLOPs (2 per multiply-add) of the ECG ViT for one ECG; norms, GELU and softmax excluded.

    Patch embedding ``2 N P D``; per block with T = N + 1 tokens: QKV ``6 T D^2``, attention scores and weighted sum
    ``4 T^2 D``, output projection ``2 T D^2``, MLP ``4 r T D^2``.
    """
    d, t = embed_dim, n_patches + 1
    hidden = int(d * mlp_ratio)
    patch = 2 * n_patches * patch_samples * d
    block = 6 * t * d * d + 4 * t * t * d + 2 * t * d * d + 4 * t * d * hidden
    return {"patch_embed": patch, "blocks": depth * block, "total": patch + depth * block}


def profiled_flops(module: Any, args: tuple[Any, ...]) -> int:
    """FLOPs of one forward counted by ``torch.utils.flop_counter`` (matmul, conv, attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*args)
    return int(counter.get_total_flops())


def matmul_rate(threads: int | None = None, n: int = 1024, seconds: float = 1.5) -> dict[str, float]:
    """Measured FP32 matrix-multiply rate of this machine through torch (GFLOP/s, best of repeated n x n products)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = math.inf
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "threads": torch.get_num_threads()}


def _interleaved(runners: dict[str, Callable[[], Any]], rounds: int, per_round: int) -> dict[str, list[float]]:
    for fn in runners.values():  # warm-up: first calls of a new ORT session are ~2x slower
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def bench_screening(
    *,
    model: Any = None,
    model_name: str = "screening-ecg-tiny",
    screening_dir: str | os.PathLike[str] | None = None,
    batches: Sequence[int] = (1, 8, 32),
    threads: int | None = None,
    rounds: int = 5,
    budget_s: float = 4.0,
) -> dict[str, Any]:
    """Latency/throughput of torch eager, ORT FP32 and ORT INT8 per batch size, FLOPs and efficiency.

    The model is ``model``, or loaded from ``screening_dir``, or ``create_model(model_name)`` (random weights, eval;
    speed does not depend on the weights). Its FP32 and INT8 graphs are exported (with their checks) to a temp dir.
    """
    import onnxruntime as ort
    import torch

    from cardiacnets.export.onnx_export import export_screening, screening_feeds
    from cardiacnets.export.precision import quantize_int8

    if any(b < 1 for b in batches):
        raise InputError(f"batch sizes must be >= 1, got {list(batches)}")
    if model is None and screening_dir is not None:
        from cardiacnets.export.bundle_builder import load_screening

        model = load_screening(screening_dir)[0]
        model_name = str(screening_dir)
    elif model is None:
        from cardiacnets.models.registry import create_model

        torch.manual_seed(0)
        model = create_model(model_name)
    model = model.eval()
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    cfg = model.config.ecg
    report: dict[str, Any] = {
        "model": model_name,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "conditions": _conditions(threads),
    }
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "screening.onnx"
        int8 = Path(tmp) / "screening.int8.onnx"
        export_screening(model, fp32)
        quantize_int8(fp32, int8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for k, p in (("ort_fp32", fp32), ("ort_int8", int8))}  # fmt: skip
        rng = np.random.default_rng(0)
        per_ecg = vit_flops(cfg.embed_dim, cfg.depth, cfg.mlp_ratio, cfg.num_patches, cfg.patch_samples)
        example = screening_feeds(1, rng)
        counted = profiled_flops(model.predict, tuple(torch.from_numpy(example[k]) for k in example))
        rate = matmul_rate(threads)
        # torch's flop counter does not see the attention inside CPU scaled_dot_product_attention (4 T^2 D per block),
        # so efficiency uses the larger of the analytic ViT count and the profiled count.
        flops = max(per_ecg["total"], counted)
        report["flops_per_ecg"] = {"analytic_vit": per_ecg["total"], "profiled_model": counted, "used": flops}
        report["matmul_gflops"] = rate
        report["batches"] = {}
        for batch in batches:
            row = _time_batch(model, sessions, screening_feeds(batch, rng), flops, rate["gflops"], rounds, budget_s)
            report["batches"][str(batch)] = row
    return report


def bundle_graphs(bundle: Any) -> dict[str, str]:
    """``{runtime name: file}`` of a bundle's screening graphs: ``ort_fp32`` and ``ort_<variant>`` for each precision
    variant its manifest lists."""
    spec = bundle.model("screening")
    graphs = {"ort_fp32": spec["file"]}
    for variant, entry in sorted((spec.get("variants") or {}).items()):
        graphs[f"ort_{variant}"] = entry["file"]
    return graphs


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_bundle(
    bundle_dir: str | os.PathLike[str] | None = None,
    *,
    screening_dir: str | os.PathLike[str] | None = None,
    batches: Sequence[int] = (1, 8, 32),
    threads: int | None = None,
    rounds: int = 5,
    budget_s: float = 4.0,
) -> dict[str, Any]:
    """Latency/throughput per batch size of the screening graphs a bundle ships (``bundle_dir``, default: the default
    bundle), each with onnxruntime on the CPU, in interleaved rounds; speed-ups against the FP32 graph.

    ``screening_dir``: a saved torch screening model (the one the bundle was built from) timed as torch eager too,
    with speed-ups against it, and its largest probability difference from the FP32 graph reported (a large one means
    it is not the bundle's model). FLOPs per ECG come from the manifest's source config when it has one.
    """
    from cardiacnets.bundle import default_bundle_path, load_bundle
    from cardiacnets.export.onnx_export import screening_feeds

    if any(b < 1 for b in batches):
        raise InputError(f"batch sizes must be >= 1, got {list(batches)}")
    bundle = load_bundle(bundle_dir if bundle_dir is not None else default_bundle_path(), check_hashes=True)
    threads = threads or os.cpu_count() or 1
    graphs = bundle_graphs(bundle)
    sessions = {name: _ort_session(bundle.path(rel), threads) for name, rel in graphs.items()}
    ecg = ((bundle.model("screening").get("source") or {}).get("config") or {}).get("ecg")
    flops = None
    if ecg:
        n_patches = ecg["n_leads"] * (ecg["n_samples"] // ecg["patch_samples"])
        flops = vit_flops(ecg["embed_dim"], ecg["depth"], ecg["mlp_ratio"], n_patches, ecg["patch_samples"])["total"]
    report: dict[str, Any] = {
        "bundle": {**{k: bundle.identity[k] for k in ("name", "version", "digest")}, "path": str(bundle.root)},
        "graphs": graphs,
        "default_variant": bundle.model("screening").get("default_variant", "fp32"),
        "torch_model": str(screening_dir) if screening_dir is not None else None,
        "flops_per_ecg": {"analytic_vit": flops} if flops else None,
        "conditions": _conditions(threads),
        "batches": {},
    }
    model = None
    if screening_dir is not None:
        import torch

        from cardiacnets.export.bundle_builder import load_screening

        torch.set_num_threads(threads)
        model = load_screening(screening_dir)[0]
    rng = np.random.default_rng(0)
    for batch in batches:
        feed = screening_feeds(batch, rng)
        runners: dict[str, Callable[[], Any]] = {}
        if model is not None:
            runners["torch_eager"] = _torch_runner(model, feed)
        runners.update({name: (lambda s=session, f=feed: s.run(None, f)) for name, session in sessions.items()})
        baselines = ("ort_fp32", "torch_eager") if model is not None else ("ort_fp32",)
        report["batches"][str(batch)] = _time_runners(runners, batch, rounds, budget_s, baselines, flops)
        if model is not None and batch == batches[0]:
            torch_prob = runners["torch_eager"]()[0].numpy()
            ort_prob = sessions["ort_fp32"].run(["disease_prob"], feed)[0]
            report["torch_vs_fp32_max_abs_prob_diff"] = float(np.abs(torch_prob - ort_prob).max())
    return report


def _torch_runner(model: Any, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
    import torch

    tensors = tuple(torch.from_numpy(feed[k]) for k in feed)

    def run_torch() -> Any:
        with torch.inference_mode():
            return model.predict(*tensors)

    return run_torch


def _time_runners(
    runners: dict[str, Callable[[], Any]], batch: int, rounds: int, budget_s: float, baselines: Sequence[str],
    flops: int | None = None, matmul_gflops: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One batch size: every runner timed in interleaved rounds (as many calls per round as ``budget_s`` allows, 1 to
    20); per runtime the latency, throughput, achieved GFLOP/s and efficiency against the matmul rate (when ``flops``
    and ``matmul_gflops`` are known) and ``speedup_vs_<b>`` = latency of ``b`` / latency, for each runtime ``b`` of
    ``baselines`` (names after their ``ort_``/``_eager`` affixes: ``torch``, ``fp32``)."""
    first = next(iter(runners.values()))
    start = time.perf_counter()
    first()
    one = time.perf_counter() - start
    per_round = max(1, min(20, int(budget_s / rounds / max(one, 1e-4) / len(runners))))
    times = _interleaved(runners, rounds, per_round)
    row: dict[str, Any] = {}
    for name, values in times.items():
        median = float(np.median(values))
        row[name] = {
            "latency_ms_median": median * 1e3,
            "latency_ms_p90": float(np.percentile(values, 90)) * 1e3,
            "throughput_ecg_per_s": batch / median,
            "calls": len(values),
        }
        if flops:
            gflops = flops * batch / median / 1e9
            row[name]["achieved_gflops"] = gflops
            if matmul_gflops:
                row[name]["efficiency_vs_matmul"] = gflops / matmul_gflops
    for baseline in baselines:
        label = baseline.removeprefix("ort_").removesuffix("_eager")
        for name in row:
            row[name][f"speedup_vs_{label}"] = row[baseline]["latency_ms_median"] / row[name]["latency_ms_median"]
    return row


def _time_batch(
    model: Any, sessions: dict[str, Any], feed: dict[str, np.ndarray], flops: int, matmul_gflops: float,
    rounds: int, budget_s: float,
) -> dict[str, Any]:  # fmt: skip
    """One batch size: torch eager and each ORT session timed in interleaved rounds; latency, throughput, achieved
    GFLOP/s, efficiency against the matmul rate and speed-up against torch, per runtime."""
    runners: dict[str, Callable[[], Any]] = {"torch_eager": _torch_runner(model, feed)}
    for name, session in sessions.items():
        runners[name] = lambda s=session, f=feed: s.run(None, f)
    batch = feed["ecg"].shape[0]
    return _time_runners(runners, batch, rounds, budget_s, ("torch_eager",), flops, matmul_gflops)


def bench_diffusion(
    *, preset: str = "tiny", view: str = "sa", frames: int = 8, size: int = 32, latent_downsample: int = 4,
    samplers: Sequence[tuple[str, int]] = (("ddim", 100), ("dpm", 20)), threads: int | None = None,
    guidance: float = 3.0,
) -> dict[str, Any]:  # fmt: skip
    """Seconds per generated cine for each ``(sampler, steps)`` with a random-weight pipeline of the given size
    (classifier-free guidance on, so each step runs the denoiser at batch 2)."""
    import torch

    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D
    from cardiacnets.diffusion.vae import VAE_PRESETS, create_vae
    from cardiacnets.models.registry import create_model

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    encoder = create_model("ecg-vit-tiny").eval()
    factors = {p: 2 ** (len(s["block_out_channels"]) - 1) for p, s in VAE_PRESETS.items()}
    vae_preset = next((p for p, f in factors.items() if f == latent_downsample), None)
    if vae_preset is None:
        raise InputError(f"no autoencoder preset downsamples by {latent_downsample} (have {sorted(factors.values())})")
    shape = {"num_frames": frames, "height": size, "width": size, "latent_downsample": latent_downsample}
    config = Ecg2CmrConfig.from_preset(preset, view, condition_dim=encoder.embed_dim, **shape)
    pipeline = EcgToCmrPipeline(encoder, EcgConditionedUNet3D(config), create_vae(vae_preset, image_size=size))
    ecg = np.random.default_rng(0).uniform(-1, 1, size=(1, 12, 5000)).astype(np.float32)
    pipeline(ecg, num_inference_steps=1, seed=0, guidance_scale=guidance)  # warm-up
    out: dict[str, Any] = {
        "denoiser": {
            "preset": preset,
            "view": view,
            "latent_shape": list(config.latent_shape),
            "parameters": int(sum(p.numel() for p in pipeline.denoiser.parameters())),
        },  # fmt: skip
        "vae_preset": vae_preset,
        "cine_shape": [frames, size, size],
        "guidance_scale": guidance,
        "conditions": _conditions(threads),
        "samplers": {},
    }
    for name, steps in samplers:
        _, seconds = pipeline.timed_call(ecg, num_inference_steps=steps, scheduler=name, seed=0,
                                         guidance_scale=guidance)  # fmt: skip
        out["samplers"][f"{name}-{steps}"] = {"seconds_per_cine": seconds, "ms_per_step": seconds / steps * 1e3}
    return out


def _conditions(threads: int) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import onnxruntime

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    try:
        torch_version = version("torch")  # without importing it: a bundle's graphs are timed without torch
    except PackageNotFoundError:
        torch_version = None
    return {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "torch": torch_version,
            "onnxruntime": onnxruntime.__version__, "load_average_1min_at_start": load}  # fmt: skip


__all__ = [
    "bench_bundle",
    "bench_diffusion",
    "bench_screening",
    "bundle_graphs",
    "matmul_rate",
    "profiled_flops",
    "vit_flops",
]
