"""The export layer's GPU check (run by scripts/gpu_check.sh; one call, under 10 minutes, results in --out).

Stages (each recorded as ok / skipped with the reason / failed with the error, so one failure does not hide the rest):

1. probe: GPU, torch/CUDA, TensorRT, onnxruntime providers;
2. bundle: a random-weight ``screening-ecg-tiny`` exported into a full bundle (FP32 + INT8 + FP16 graphs, parity,
   accuracy cost, manifest, verify) on this machine's CPU;
3. screening on the GPU: torch eager FP32 vs FP16 (autocast) latency per batch for tiny/small/base sizes, FP16 drift;
4. TensorRT: FP16 engines for the bundle (strongly typed, cached, FP16 layers checked, parity vs FP32 ONNX, timed),
   or the exact reason it cannot run; onnxruntime CUDA/TensorRT execution providers likewise;
5. CPU baseline on this machine: torch eager vs ORT FP32 vs ORT INT8 (cardiacnets.export.bench);
6. diffusion (needs diffusers): DDIM-100 and DPM-Solver-20 seconds per cine on the GPU, FP32 vs FP16 autocast, at the
   paper's short-axis cine size with the "small" denoiser; the denoiser exported to ONNX + FP16 graph, parity on ORT
   CPU, and a TensorRT engine vs torch FP16 per denoiser call when TensorRT is present.

Wheels for a machine without a venv (run here, in the repository root; .whl/ is git-ignored and carried)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_17_x86_64 -d .whl PyWavelets==1.8.0 diffusers==0.42.1 importlib_metadata
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
START = time.perf_counter()
BUDGET_S = 540.0


def _alias_subpackages() -> None:
    """Make ``cardiacnets.export`` / ``cardiacnets.edge`` importable from a plain checkout (no pip install)."""
    sys.path.insert(0, str(REPO))
    import cardiacnets

    for name, folder in (("export", "export"), ("edge", "edge")):
        full = f"cardiacnets.{name}"
        if full in sys.modules:
            continue
        try:
            importlib.import_module(full)
            continue
        except ImportError:
            pass
        spec = importlib.util.spec_from_file_location(full, REPO / folder / "__init__.py",
                                                      submodule_search_locations=[str(REPO / folder)])  # fmt: skip
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        setattr(cardiacnets, name, module)


import importlib  # noqa: E402

_alias_subpackages()


def elapsed() -> float:
    return time.perf_counter() - START


def stage(results: dict[str, Any], name: str, fn: Any, *, needs_s: float = 30.0) -> Any:
    """Run one stage, recording its outcome and duration; skip it when the budget cannot fit it."""
    if elapsed() + needs_s > BUDGET_S:
        results[name] = {"status": "skipped", "reason": f"time budget ({elapsed():.0f} s used of {BUDGET_S:.0f})"}
        print(f"== {name}: skipped (budget)", flush=True)
        return None
    print(f"== {name} (t={elapsed():.0f} s)", flush=True)
    t0 = time.perf_counter()
    try:
        value = fn()
        results[name] = {"status": "ok", "seconds": round(time.perf_counter() - t0, 1), "result": value}
        print(json.dumps(value, indent=1, default=str)[:3000], flush=True)
        return value
    except Exception as exc:  # noqa: BLE001 - record and continue with the next stage
        results[name] = {
            "status": "failed",
            "seconds": round(time.perf_counter() - t0, 1),
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-3000:],
        }
        print(f"!! {name} failed: {type(exc).__name__}: {exc}", flush=True)
        return None


def probe() -> dict[str, Any]:
    import onnx
    import onnxruntime as ort
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                            "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(),
                            "cuda": torch.cuda.is_available()}  # fmt: skip
    if torch.cuda.is_available():
        from cardiacnets.export.trt import gpu_info

        info["gpu"] = gpu_info()
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except Exception as exc:  # noqa: BLE001
        info["tensorrt"] = f"unavailable: {type(exc).__name__}: {exc}"
    for mod in ("onnxscript", "diffusers", "pywt"):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception as exc:  # noqa: BLE001
            info[mod] = f"unavailable: {exc}"
    return info


def tiny_model(name: str = "screening-ecg-tiny", seed: int = 0) -> Any:
    import torch

    from cardiacnets.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model(name).eval()
    with torch.no_grad():
        model.film.proj.weight.normal_(0, 0.2)
        model.disease_head.weight.mul_(8.0)
    return model


def build_test_bundle(root: Path) -> dict[str, Any]:
    import torch

    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.bundle_builder import build_bundle
    from cardiacnets.export.onnx_export import screening_feeds
    from cardiacnets.export.precision import EvalSplit
    from cardiacnets.models.registry import save_pretrained

    model = tiny_model()
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
    return {
        "files": manifest["files"],
        "default_variant": spec["default_variant"],
        "reason": spec["default_variant_reason"],
        "parity": spec["parity"],
        "precision_report": manifest["precision_report"],
    }


def torch_gpu_screening() -> dict[str, Any]:
    import torch

    from cardiacnets.export.onnx_export import screening_feeds
    from cardiacnets.export.trt import time_callable

    out: dict[str, Any] = {}
    for name in ("screening-ecg-tiny", "screening-ecg-small", "screening-ecg-base"):
        model = tiny_model(name).cuda()
        rows = {}
        for batch in (1, 8, 32, 256):
            feed = screening_feeds(batch, np.random.default_rng(batch))
            args = tuple(torch.from_numpy(v).cuda() for v in feed.values())

            def fp32(a: tuple[Any, ...] = args, m: Any = model) -> Any:
                with torch.inference_mode():
                    return m.predict(*a)

            def fp16(a: tuple[Any, ...] = args, m: Any = model) -> Any:
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                    return m.predict(*a)

            drift = float((fp16()[0].float() - fp32()[0]).abs().max())
            t32 = time_callable(fp32, iters=30, sync=torch.cuda.synchronize)
            t16 = time_callable(fp16, iters=30, sync=torch.cuda.synchronize)
            rows[str(batch)] = {"fp32_ms": t32["median_ms"], "fp16_autocast_ms": t16["median_ms"],
                                "fp16_speedup": t32["median_ms"] / t16["median_ms"], "fp16_max_prob_diff": drift,
                                "fp16_ecg_per_s": batch / t16["median_ms"] * 1e3}  # fmt: skip
        out[name] = {"parameters": int(sum(p.numel() for p in model.parameters())), "batches": rows}
        del model
        torch.cuda.empty_cache()
    return out


def tensorrt_stage(bundle: Path) -> dict[str, Any]:
    from cardiacnets.errors import ExportError
    from cardiacnets.export.trt import build_for_target

    try:
        first = build_for_target(bundle, cache_dir=bundle.parent / "trt-cache", max_batch=32)
    except ExportError as exc:
        return {"available": False, "message": str(exc)}
    second = build_for_target(bundle, cache_dir=bundle.parent / "trt-cache", max_batch=32)
    return {"available": True, "first_build": first, "cache_hit": second["screening"]["cached"]}


def ort_gpu_stage(bundle: Path) -> dict[str, Any]:
    from cardiacnets.errors import ExportError
    from cardiacnets.export.onnx_export import screening_feeds
    from cardiacnets.export.trt import ort_gpu_session, screening_profile, time_callable

    report = {}
    feed = screening_feeds(32, np.random.default_rng(1))
    for provider, graph in (("cuda", "screening.onnx"), ("trt", "screening.fp16.onnx")):
        try:
            session = ort_gpu_session(bundle / graph, provider, cache_dir=bundle.parent / "ort-trt",
                                      profile=screening_profile(32) if provider == "trt" else None)  # fmt: skip
        except ExportError as exc:
            report[provider] = {"available": False, "message": str(exc)}
            continue
        report[provider] = {"available": True, "batch32": time_callable(lambda s=session: s.run(None, feed))}
    return report


def cpu_bench() -> dict[str, Any]:
    from cardiacnets.export.bench import bench_screening

    return bench_screening(model_name="screening-ecg-tiny", batches=(1, 8, 32), rounds=3, budget_s=3.0)


def diffusion_stage(root: Path) -> dict[str, Any]:
    import torch

    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D
    from cardiacnets.diffusion.vae import create_vae
    from cardiacnets.export.trt import time_callable
    from cardiacnets.models.registry import create_model

    torch.manual_seed(0)
    encoder = create_model("ecg-vit-tiny").eval()
    config = Ecg2CmrConfig.from_preset("small", "sa", latent_downsample=4, condition_dim=encoder.embed_dim)
    pipeline = EcgToCmrPipeline(
        encoder, EcgConditionedUNet3D(config), create_vae("small", image_size=80), device="cuda"
    )
    ecg = np.random.default_rng(0).uniform(-1, 1, size=(1, 12, 5000)).astype(np.float32)
    n_params = int(sum(p.numel() for p in pipeline.denoiser.parameters()))
    out: dict[str, Any] = {"denoiser": "small", "latent_shape": list(config.latent_shape), "cine": [50, 80, 80],
                           "denoiser_parameters": n_params}  # fmt: skip
    pipeline(ecg, num_inference_steps=2, seed=0)
    for precision in ("fp32", "fp16"):
        for sampler, steps in (("ddim", 100), ("dpm", 20)):
            ctx = (
                torch.autocast("cuda", dtype=torch.float16)
                if precision == "fp16"
                else torch.autocast("cuda", enabled=False)
            )
            with ctx:
                torch.cuda.synchronize()
                cine, seconds = pipeline.timed_call(ecg, num_inference_steps=steps, scheduler=sampler, seed=0)
            out[f"{sampler}-{steps}-{precision}"] = {
                "seconds_per_cine": seconds,
                "finite": bool(np.isfinite(cine).all()),
            }
    sample = torch.randn(2, *config.latent_shape, device="cuda")
    t = torch.tensor([500, 500], device="cuda")
    tokens = torch.randn(2, 600, encoder.embed_dim, device="cuda")
    drop = torch.tensor([True, False], device="cuda")
    with torch.inference_mode():
        t32 = time_callable(lambda: pipeline.denoiser(sample, t, tokens, drop), iters=20, sync=torch.cuda.synchronize)
        with torch.autocast("cuda", dtype=torch.float16):
            t16 = time_callable(lambda: pipeline.denoiser(sample, t, tokens, drop), iters=20,
                                sync=torch.cuda.synchronize)  # fmt: skip
    out["unet_call_cfg_batch2"] = {"torch_fp32_ms": t32["median_ms"], "torch_fp16_ms": t16["median_ms"]}
    if elapsed() > BUDGET_S - 150:
        out["onnx"] = "skipped: time budget"
        return out
    from cardiacnets.export.onnx_export import export_unet
    from cardiacnets.export.precision import convert_to_fp16

    denoiser = pipeline.denoiser.float().cpu()
    result = export_unet(denoiser, root / "unet_sa.onnx", n_tokens=600)
    counts = convert_to_fp16(root / "unet_sa.onnx", root / "unet_sa.fp16.onnx")
    out["onnx"] = {"exporter": result.exporter, "export_seconds": result.export_seconds, "parity": result.parity,
                   "fp16_conversion": counts}  # fmt: skip
    try:
        import tensorrt  # noqa: F401

        from cardiacnets.export.trt import TrtRunner, build_engine, unet_profile

        engine, info = build_engine(root / "unet_sa.fp16.onnx", unet_profile(result.manifest_entry("x")),
                                    cache_dir=root / "trt-cache")  # fmt: skip
        runner = TrtRunner(engine)
        feeds = {"sample": sample, "timestep": t, "ecg_tokens": tokens, "drop_condition": drop}
        trt_ms = time_callable(lambda: runner.run_torch(feeds), iters=20, sync=torch.cuda.synchronize)
        out["tensorrt_unet"] = {**info, "layer_precisions": runner.layer_precisions(), "ms": trt_ms["median_ms"],
                                "speedup_vs_torch_fp16": t16["median_ms"] / trt_ms["median_ms"]}  # fmt: skip
    except ImportError as exc:
        out["tensorrt_unet"] = f"unavailable: {exc}"
    return out


def write_summary(out: Path, results: dict[str, Any]) -> None:
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    lines = ["# Export GPU check", "", f"total {elapsed():.0f} s", ""]
    for name, entry in results.items():
        if not isinstance(entry, dict) or "status" not in entry:
            continue
        lines.append(f"- **{name}**: {entry['status']} ({entry.get('seconds', '-')} s) "
                     f"{entry.get('error') or entry.get('reason') or ''}")  # fmt: skip
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="cns-gpu-check-"))
    stage(results, "probe", probe, needs_s=5)
    bundle_ok = stage(results, "bundle", lambda: build_test_bundle(work), needs_s=90) is not None
    stage(results, "torch_gpu_screening", torch_gpu_screening, needs_s=60)
    if bundle_ok:
        stage(results, "tensorrt", lambda: tensorrt_stage(work / "bundle"), needs_s=120)
        stage(results, "ort_gpu_providers", lambda: ort_gpu_stage(work / "bundle"), needs_s=30)
    stage(results, "cpu_bench", cpu_bench, needs_s=60)
    if importlib.util.find_spec("diffusers") is not None:
        stage(results, "diffusion", lambda: diffusion_stage(work), needs_s=120)
    else:
        results["diffusion"] = {"status": "skipped", "reason": "diffusers not importable (carry .whl)"}
    results["total_seconds"] = round(elapsed(), 1)
    write_summary(args.out, results)
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("status") == "failed"]
    print(f"== done in {elapsed():.0f} s; failed stages: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
