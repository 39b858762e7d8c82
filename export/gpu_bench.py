"""The GPU measurements of the GPU check (``scripts/gpu_check.py``), each backend a separately recorded part.

- :func:`screening_backends`: the screening graph at batches 1, 8 and 32 on TensorRT (FP16 engine), onnxruntime
  CUDA (FP32 and FP16 graphs) and onnxruntime TensorRT (FP16), through IOBinding on device buffers, and torch CUDA
  (FP32, FP16 autocast); each against the onnxruntime CPU FP32 reference with its bounds, then timed after a warm-up
  (engine builds and session creation are reported apart, never inside a timing).
- :func:`cine_graphs`: one cine graph set (ECG encoder, FP16 UNet, VAE decoder) as TensorRT engines and on
  onnxruntime CUDA, parity-checked against the CPU; torch CUDA sampling time per cine (DDIM / DPM-Solver, FP32 / FP16).

A backend whose package is missing raises :class:`~cardiacnets.export.gpu_check.NotInstalled` (recorded as skipped,
never ok); a parity failure raises :class:`~cardiacnets.export.gpu_check.CheckFailed` with the measurements kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.export.gpu_check import CheckFailed, NotInstalled, Stage

BATCHES = (1, 8, 32)
ITERS = 30


def fp32_tolerances() -> dict[str, Any]:
    """GPU FP32 (cuBLAS/cuDNN, TF32 where the runtime enables it) vs the CPU FP32 graph."""
    from cardiacnets.export.onnx_export import Tolerance

    return {"disease_prob": Tolerance(3e-3), "subtype_prob": Tolerance(3e-3), "phenotypes": Tolerance(0.0, 0.0, 3e-3),
            "embedding": Tolerance(0.0, 0.0, 5e-3)}  # fmt: skip


def require_cuda_torch() -> Any:
    """torch with a usable CUDA device, else :class:`NotInstalled` saying which piece is missing."""
    try:
        import torch
    except ImportError as exc:
        raise NotInstalled(f"torch ({exc})") from None
    if torch.version.cuda is None:
        raise NotInstalled(f"a CUDA build of torch (torch {torch.__version__} is a CPU build)")
    if not torch.cuda.is_available():
        raise NotInstalled(f"a GPU torch {torch.__version__} (CUDA {torch.version.cuda}) can use")
    return torch


def require_provider(device: str) -> None:
    import onnxruntime as ort

    from cardiacnets.execution import PROVIDER_NAMES

    name = PROVIDER_NAMES[device]
    if name not in ort.get_available_providers():
        raise NotInstalled(f"onnxruntime's {name} (onnxruntime-gpu; README: GPU install)")


def require_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install raises OSError and friends
        raise NotInstalled(f"TensorRT ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def build_test_bundle(root: Path) -> dict[str, Any]:
    """A random-weight ``screening-ecg-tiny`` saved to ``root/model`` and exported (FP32 + INT8 + FP16 graphs,
    parity, accuracy cost) into ``root/bundle`` on this machine's CPU."""
    import torch

    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.bundle_builder import build_bundle
    from cardiacnets.export.onnx_export import screening_feeds
    from cardiacnets.export.precision import EvalSplit
    from cardiacnets.models.registry import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("screening-ecg-tiny").eval()
    with torch.no_grad():  # FiLM is the identity at init; spread the probabilities away from 0.5
        model.film.proj.weight.normal_(0, 0.2)
        model.disease_head.weight.mul_(8.0)
    save_pretrained(model, root / "model", metadata={"training_data": {"description": "random weights (GPU check)"}})
    feed = screening_feeds(128, np.random.default_rng(0))
    with torch.no_grad():
        out = dict(zip(SCREENING_OUTPUTS, model.predict(*(torch.from_numpy(v) for v in feed.values())), strict=True))
    prob = out["disease_prob"].numpy()
    labels = (prob > np.median(prob, axis=0)).astype(np.float32)
    split = EvalSplit(feed["ecg"], feed["covariates"], feed["covariate_mask"], labels, out["phenotypes"].numpy(),
                      "random inputs labelled by the fp32 model's ranking (a conversion check)")  # fmt: skip
    manifest = build_bundle(root / "model", root / "bundle", eval_split=split, name="gpu-check")
    spec = manifest["models"]["screening"]
    return {"variants": sorted(spec.get("variants") or {}), "default_variant": spec["default_variant"],
            "parity": spec["parity"]}  # fmt: skip


def parity_and_timing(
    feeds: Mapping[int, Mapping[str, np.ndarray]],
    references: Mapping[int, Mapping[str, np.ndarray]],
    tolerances: Mapping[str, Any],
    prepare: Callable[[Mapping[str, np.ndarray]], tuple[Callable[[], Any], Callable[[], Mapping[str, Any]]]],
    *,
    sync: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Per batch: ``prepare(feed)`` gives ``(run, outputs)``; the outputs' parity against the reference, then the
    timing of ``run`` after a warm-up. Raises :class:`CheckFailed` (measurements kept) when a bound is exceeded."""
    from cardiacnets.export.onnx_export import compare_outputs
    from cardiacnets.export.trt import time_callable

    report, failures = {}, []
    for batch, feed in feeds.items():
        run, outputs = prepare(feed)
        got = {k: np.asarray(v, dtype=np.float32) for k, v in outputs().items() if k in tolerances}
        parity = compare_outputs(references[batch], got, tolerances)
        failures += [f"{k} at batch {batch}" for k, v in parity.items() if not v["ok"]]
        timing = time_callable(run, iters=ITERS, sync=sync)
        report[str(batch)] = {"parity": parity, **timing, "items_per_s": batch / timing["median_ms"] * 1e3}
    if failures:
        raise CheckFailed(f"parity against the CPU reference failed: {', '.join(failures)}", report)
    return report


def _ort_backend(graph: Path, device: str, feeds: Any, refs: Any, tolerances: Any, profile: Any = None,
                 cache_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    import time

    from cardiacnets.export.trt import IoBoundSession, ort_gpu_session

    require_provider(device)
    if device == "trt":
        require_tensorrt()
    started = time.perf_counter()
    session = ort_gpu_session(graph, device, profile=profile, cache_dir=cache_dir)  # builds TensorRT engines
    first = time.perf_counter() - started

    def prepare(feed: Mapping[str, np.ndarray]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        bound = IoBoundSession(session, feed, device="cuda")
        return bound.run, bound.outputs

    report = {"graph": graph.name, "session_seconds": round(first, 2),
              "batches": parity_and_timing(feeds, refs, tolerances, prepare)}  # fmt: skip
    if device == "trt":  # a second session must find the engines in the cache
        started = time.perf_counter()
        ort_gpu_session(graph, device, profile=profile, cache_dir=cache_dir)
        report["cached_session_seconds"] = round(time.perf_counter() - started, 2)
    return report


def _torch_backend(model_dir: Path, feeds: Any, refs: Any, tolerances: Any, *, fp16: bool) -> dict[str, Any]:
    import contextlib

    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.models.registry import from_pretrained

    torch = require_cuda_torch()
    model = from_pretrained(model_dir).cuda().eval()

    def prepare(feed: Mapping[str, np.ndarray]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        args = tuple(torch.from_numpy(v).cuda() for v in feed.values())

        def run() -> Any:
            autocast = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()
            with torch.inference_mode(), autocast:
                return model.predict(*args)

        return run, lambda: {k: v.float().cpu().numpy() for k, v in zip(SCREENING_OUTPUTS, run(), strict=True)}

    return {"precision": "fp16 autocast" if fp16 else "fp32",
            "batches": parity_and_timing(feeds, refs, tolerances, prepare, sync=torch.cuda.synchronize)}  # fmt: skip


def _trt_backend(fp16: Path, fp32: Path, feeds: Any, tolerances: Any, profile: Any, cache_dir: Path) -> dict[str, Any]:
    from cardiacnets.export.trt import build_engine, check_engine

    require_tensorrt()
    require_cuda_torch()
    engine, info = build_engine(fp16, profile, cache_dir=cache_dir)
    report = {**info, **check_engine(engine, fp32, list(feeds.values()), tolerances, precision="fp16")}
    _, again = build_engine(fp16, profile, cache_dir=cache_dir)
    if not again["cached"]:
        raise CheckFailed("the second build did not come from the engine cache", report)
    return report


def screening_backends(stage: Stage, bundle: Path, model_dir: Path, cache_dir: Path,
                       batches: Sequence[int] = BATCHES) -> dict[str, Any]:  # fmt: skip
    """Every GPU backend of the screening graph against the onnxruntime CPU FP32 reference (see the module doc)."""
    from cardiacnets.bundle import SCREENING_OUTPUTS, load_bundle
    from cardiacnets.execution import batch_profile
    from cardiacnets.export.onnx_export import ort_session, screening_feeds
    from cardiacnets.export.trt_jobs import build_for_target, engine_tolerances

    rng = np.random.default_rng(11)
    feeds = {b: screening_feeds(b, rng) for b in batches}
    cpu = ort_session(bundle / "screening.onnx")
    names = list(SCREENING_OUTPUTS)
    refs = {b: dict(zip(names, cpu.run(names, feed), strict=True)) for b, feed in feeds.items()}
    fp16_tol, fp32_tol = engine_tolerances("screening", "fp16"), fp32_tolerances()
    spec = load_bundle(bundle).model("screening")
    profile = batch_profile(spec["inputs"], 1, min(8, max(batches)), max(batches))
    fp32_graph, fp16_graph = bundle / "screening.onnx", bundle / "screening.fp16.onnx"
    stage.part("tensorrt_fp16", lambda: _trt_backend(fp16_graph, fp32_graph, feeds, fp16_tol, profile, cache_dir),
               needs_s=60)  # fmt: skip
    stage.part("cnexport_trt", lambda: _cnexport_trt(build_for_target, bundle, cache_dir, max(batches)), needs_s=30)
    stage.part("ort_trt_fp16", lambda: _ort_backend(fp16_graph, "trt", feeds, refs, fp16_tol, profile,
                                                    cache_dir / "ort"), needs_s=60)  # fmt: skip
    stage.part("ort_cuda_fp32", lambda: _ort_backend(fp32_graph, "cuda", feeds, refs, fp32_tol), needs_s=20)
    stage.part("ort_cuda_fp16", lambda: _ort_backend(fp16_graph, "cuda", feeds, refs, fp16_tol), needs_s=20)
    stage.part("torch_fp32", lambda: _torch_backend(model_dir, feeds, refs, fp32_tol, fp16=False), needs_s=20)
    stage.part("torch_fp16_autocast", lambda: _torch_backend(model_dir, feeds, refs, fp16_tol, fp16=True), needs_s=20)
    bounds = {name: {k: v.to_dict() for k, v in tol.items()} for name, tol in (("fp16", fp16_tol), ("fp32", fp32_tol))}
    return {"batches": list(batches), "reference": "onnxruntime CPU, FP32 graph", "bounds": bounds}


def _cnexport_trt(build_for_target: Any, bundle: Path, cache_dir: Path, max_batch: int) -> dict[str, Any]:
    require_tensorrt()
    require_cuda_torch()
    report = build_for_target(bundle, cache_dir=cache_dir, max_batch=max_batch)
    return {name: {k: entry[k] for k in ("kind", "cached", "build_seconds", "layer_precisions")} for name, entry in
            report.items()}  # fmt: skip


def cine_graphs(stage: Stage, work: Path, bundle_root: Path, view: str = "sa") -> dict[str, Any]:
    """One cine graph set of the bundle at ``bundle_root`` (``view``'s ECG encoder, UNet converted to FP16 here, VAE
    decoder): TensorRT engines and onnxruntime CUDA, each against the CPU FP32 graph; torch CUDA sampling time."""
    from cardiacnets.bundle import load_bundle
    from cardiacnets.export.precision import convert_to_fp16
    from cardiacnets.export.trt_jobs import cine_jobs

    bundle = load_bundle(bundle_root)
    manifest = copy.deepcopy(bundle.manifest)
    unet_rel = manifest["cine"]["views"][view]["unet"]
    fp16_rel = unet_rel.replace(".onnx", ".fp16.onnx")
    (work / fp16_rel).parent.mkdir(parents=True, exist_ok=True)
    if stage.part("unet_to_fp16", lambda: convert_to_fp16(bundle.path(unet_rel), work / fp16_rel), needs_s=20):
        entry = next(e for e in manifest["models"].values() if e.get("file") == unet_rel)
        entry["variants"] = {**(entry.get("variants") or {}), "fp16": {"file": fp16_rel}}
    jobs = cine_jobs(manifest, lambda rel: work / rel if (work / rel).is_file() else bundle.root / rel, views=[view])
    for job in jobs:
        stage.part(f"tensorrt_{job.kind}_{job.precision}", lambda j=job: _engine_job(j, work / "trt-cache"),
                   needs_s=45)  # fmt: skip
        stage.part(f"ort_cuda_{job.kind}_{job.precision}", lambda j=job: _ort_job(j), needs_s=15)
    for sampler, steps in (("dpm", 20), ("ddim", 100)):
        for precision in ("fp32", "fp16"):
            stage.part(f"torch_{sampler}{steps}_{precision}", lambda s=sampler, n=steps, p=precision:
                       _torch_sampling(s, n, p), needs_s=30)  # fmt: skip
    return {"view": view, "graphs": {j.name: {"kind": j.kind, "precision": j.precision, "file": j.onnx.name}
                                     for j in jobs}}  # fmt: skip


def _engine_job(job: Any, cache_dir: Path) -> dict[str, Any]:
    from cardiacnets.export.trt import build_engine, check_engine

    require_tensorrt()
    require_cuda_torch()
    engine, info = build_engine(job.onnx, job.profile, cache_dir=cache_dir)
    return {**info, **check_engine(engine, job.reference, job.feeds, job.tolerances(), precision=job.precision)}


def _ort_job(job: Any) -> dict[str, Any]:
    from cardiacnets.export.onnx_export import ort_session

    cpu = ort_session(job.reference)
    feeds = {int(next(iter(f.values())).shape[0]): f for f in job.feeds}
    refs = {b: dict(zip(job.outputs, cpu.run(job.outputs, dict(f)), strict=True)) for b, f in feeds.items()}
    return _ort_backend(job.onnx, "cuda", feeds, refs, job.tolerances())


_PIPELINE: dict[str, Any] = {}


def _torch_sampling(sampler: str, steps: int, precision: str) -> dict[str, Any]:
    """Seconds per cine of torch CUDA sampling with the "small" denoiser at the paper's short-axis cine size."""
    import contextlib

    torch = require_cuda_torch()
    if "pipeline" not in _PIPELINE:
        from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
        from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D
        from cardiacnets.diffusion.vae import create_vae
        from cardiacnets.models.registry import create_model

        torch.manual_seed(0)
        encoder = create_model("ecg-vit-tiny").eval()
        config = Ecg2CmrConfig.from_preset("small", "sa", latent_downsample=4, condition_dim=encoder.embed_dim)
        pipeline = EcgToCmrPipeline(encoder, EcgConditionedUNet3D(config), create_vae("small", image_size=80),
                                    device="cuda")  # fmt: skip
        ecg = np.random.default_rng(0).uniform(-1, 1, size=(1, 12, 5000)).astype(np.float32)
        pipeline(ecg, num_inference_steps=2, seed=0)  # warm-up, outside every timing
        _PIPELINE.update(pipeline=pipeline, ecg=ecg)
    pipeline, ecg = _PIPELINE["pipeline"], _PIPELINE["ecg"]
    autocast = torch.autocast("cuda", dtype=torch.float16) if precision == "fp16" else contextlib.nullcontext()
    with autocast:
        torch.cuda.synchronize()
        cine, seconds = pipeline.timed_call(ecg, num_inference_steps=steps, scheduler=sampler, seed=0)
    result = {"seconds_per_cine": round(seconds, 3), "cine_shape": list(cine.shape[1:]),
              "finite": bool(np.isfinite(cine).all())}  # fmt: skip
    if not result["finite"]:
        raise CheckFailed("the cine holds NaN or infinite values", result)
    return result


__all__ = ["BATCHES", "build_test_bundle", "cine_graphs", "fp32_tolerances", "parity_and_timing",
           "require_cuda_torch", "require_provider", "require_tensorrt", "screening_backends"]  # fmt: skip
