"""TensorRT FP16 engines from FP16 ONNX graphs, an engine cache, engine-vs-ONNX parity and timing; and onnxruntime's
TensorRT / CUDA execution providers as the other GPU path.

TensorRT is imported inside functions: this module imports (and its error paths run) on machines without it. Where
TensorRT or an NVIDIA GPU is missing, :func:`require_trt_and_gpu` raises :class:`~cardiacnets.errors.ExportError`
naming exactly what is missing (export-notes.md 4.1: the libraries cannot be installed from PyPI without the vendor
index, and ``trt.Builder`` needs a CUDA device).

TensorRT 10 vs 11 (export-notes.md 4.2): both build a strongly typed network, so precision comes from the FP16 ONNX
(:func:`cardiacnets.export.precision.convert_to_fp16`), never from ``BuilderFlag.FP16`` (removed in 11). On 10 the
``STRONGLY_TYPED`` creation flag is set; on 11 every network is strongly typed and no flag is passed. Engines are
never shipped: they are built on the target and cached under a key of (TensorRT version, GPU compute capability, ONNX
sha256, optimisation profile). A built engine is checked for FP16 layers (a silently FP32 engine is an error), for
parity against the FP32 graph on onnxruntime CPU, and timed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import sha256_file
from cardiacnets.errors import ExportError, InputError

logger = logging.getLogger(__name__)

Profile = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]

WORKSPACE_BYTES = 4 << 30
TRT_INSTALL_HINT = "install TensorRT for your CUDA (pip install tensorrt-cu12 or tensorrt-cu13) on the GPU machine"


# ----------------------------------------------------------------------------------------------- availability
def _missing_pieces() -> list[str]:
    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        missing.append(f"the TensorRT Python package ('import tensorrt' failed: {str(exc).splitlines()[0]})")
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError and friends
        missing.append(f"a working TensorRT ('import tensorrt' failed: {type(exc).__name__}: {exc})")
    if not _cuda_available():
        missing.append("an NVIDIA GPU with a CUDA driver (torch.cuda.is_available() is False)")
    return missing


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def require_trt_and_gpu() -> Any:
    """Return the ``tensorrt`` module; raise :class:`ExportError` listing every missing piece otherwise."""
    missing = _missing_pieces()
    if missing:
        hint = f"; {TRT_INSTALL_HINT}" if any("TensorRT" in m for m in missing) else ""
        raise ExportError("TensorRT engines cannot be built here: missing " + " and ".join(missing) + hint)
    import tensorrt as trt

    return trt


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def gpu_info() -> dict[str, Any]:
    """Name and compute capability of CUDA device 0."""
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("CNS_TRT_CACHE") or Path.home() / ".cache" / "cardiacnets" / "trt")


def engine_cache_key(trt_version: str, compute_capability: str, onnx_sha256: str, profile: Profile) -> str:
    """Hex key of an engine: TensorRT version, GPU compute capability, ONNX sha256 and the profile's shapes."""
    canonical = json.dumps(
        {"trt": trt_version, "cc": compute_capability, "onnx": onnx_sha256,
         "profile": {k: [list(map(int, s)) for s in v] for k, v in sorted(profile.items())}},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------------------------ build
def build_engine(
    onnx_path: str | os.PathLike[str],
    profile: Profile,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    optimization_level: int = 3,
) -> tuple[Path, dict[str, Any]]:
    """Build (or load from the cache) an engine for ``onnx_path`` with one optimisation profile.

    ``profile`` maps each input name to ``(min, opt, max)`` shapes. Returns ``(engine_path, info)`` with ``cached``,
    ``build_seconds``, ``key``, ``trt_version`` and ``gpu``.
    """
    trt = require_trt_and_gpu()
    onnx_path = Path(onnx_path)
    gpu = gpu_info()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = engine_cache_key(trt.__version__, gpu["compute_capability"], sha256_file(onnx_path), profile)
    engine_path = cache / f"{onnx_path.stem}-{key}.plan"
    info: dict[str, Any] = {"key": key, "trt_version": trt.__version__, "gpu": gpu, "engine": str(engine_path)}
    if engine_path.is_file():
        info.update(cached=True, build_seconds=0.0)
        return engine_path, info
    logger_trt = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger_trt)
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if trt_major(trt) == 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger_trt)
    if hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {'; '.join(errors[:3])}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.builder_optimization_level = optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(opt_profile)
    timing_path = cache / f"timing-{trt.__version__}-sm{gpu['compute_capability']}.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path.name} (see the TensorRT log above)")
    info["build_seconds"] = round(time.perf_counter() - start, 2)
    timing_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    tmp = engine_path.with_suffix(".plan.tmp")
    tmp.write_bytes(memoryview(plan))
    os.replace(tmp, engine_path)
    info["cached"] = False
    return engine_path, info


_TRT_TO_TORCH = {"FLOAT": "float32", "HALF": "float16", "INT64": "int64", "INT32": "int32", "BOOL": "bool",
                 "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8"}  # fmt: skip


class TrtRunner:
    """A deserialised engine and an execution context; buffers are torch CUDA tensors (``execute_async_v3``)."""

    def __init__(self, engine_path: str | os.PathLike[str]) -> None:
        trt = require_trt_and_gpu()
        import torch

        self.torch = torch
        self.trt = trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ExportError(f"{engine_path}: engine does not match this TensorRT version or GPU; rebuild it")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]

    def io_dtypes(self) -> dict[str, str]:
        return {n: _TRT_TO_TORCH.get(self.engine.get_tensor_dtype(n).name, self.engine.get_tensor_dtype(n).name)
                for n in self.names}  # fmt: skip

    def layer_precisions(self) -> dict[str, int]:
        """How many engine layers mention each precision (needs a DETAILED profiling build)."""
        inspector = self.engine.create_engine_inspector()
        text = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        return {p: text.count(p) for p in ("Half", "Float", "Int8")}

    def run_torch(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run on CUDA tensors (device-resident; no host copies). Returns CUDA tensors."""
        torch = self.torch
        dtypes = self.io_dtypes()
        bufs = {}
        for name in self.inputs:
            tensor = feeds[name].to(device="cuda", dtype=getattr(torch, dtypes[name])).contiguous()
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
            bufs[name] = tensor
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            outs[name] = torch.empty(shape, dtype=getattr(torch, dtypes[name]), device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ExportError("TensorRT execution failed")
        stream.synchronize()
        return outs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.run_torch({k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
        return {k: v.float().cpu().numpy() for k, v in out.items()}


def time_callable(fn: Any, *, warmup: int = 5, iters: int = 50, sync: Any = None) -> dict[str, float]:
    """Median and p90 wall-clock milliseconds of ``fn()`` (``sync()`` after each call, e.g. a CUDA synchronise)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "iters": iters}


# -------------------------------------------------------------------------------------------- ORT GPU providers
def ort_gpu_session(
    onnx_path: str | os.PathLike[str],
    provider: str = "trt",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    profile: Profile | None = None,
) -> Any:
    """An onnxruntime session on the TensorRT (``"trt"``) or CUDA (``"cuda"``) execution provider.

    onnxruntime silently falls back to the CPU when a provider is missing; here a missing provider is an
    :class:`ExportError`. The TensorRT EP gets an engine and timing cache and, with ``profile``, explicit shape ranges;
    ``trt_fp16_enable`` stays off so an FP16 ONNX builds strongly typed (export-notes.md 4.3).
    """
    import onnxruntime as ort

    names = {"trt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider"}
    if provider not in names:
        raise InputError(f"unknown provider {provider!r}; choose trt or cuda")
    available = ort.get_available_providers()
    wanted = names[provider]
    if wanted not in available:
        raise ExportError(
            f"onnxruntime lacks {wanted} (available: {', '.join(available)}); install onnxruntime-gpu (not together"
            " with onnxruntime) with CUDA" + (" and TensorRT 10" if provider == "trt" else "")
        )
    providers: list[Any] = []
    if provider == "trt":
        cache = Path(cache_dir) if cache_dir else default_cache_dir() / "ort"
        cache.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                                   "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}  # fmt: skip
        if profile:
            for i, key in enumerate(("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")):
                options[key] = ",".join(f"{n}:{'x'.join(map(str, s[i]))}" for n, s in profile.items())
        providers.append((wanted, options))
    providers += [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available and p != wanted]
    if provider == "cuda":
        providers.insert(0, wanted)
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), session_options, providers=providers)
    if session.get_providers()[0] != wanted:
        raise ExportError(f"onnxruntime did not use {wanted} for {Path(onnx_path).name} ({session.get_providers()})")
    return session


# -------------------------------------------------------------------------------------------- bundle targets
def screening_profile(max_batch: int = 32, opt_batch: int = 8) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Batch profile for the screening graph's three inputs."""
    if max_batch < 1:
        raise InputError(f"max batch must be >= 1, got {max_batch}")
    opt = min(opt_batch, max_batch)
    return {
        "ecg": ((1, 12, 5000), (opt, 12, 5000), (max_batch, 12, 5000)),
        "covariates": ((1, 3), (opt, 3), (max_batch, 3)),
        "covariate_mask": ((1, 3), (opt, 3), (max_batch, 3)),
    }


def unet_profile(entry: Mapping[str, Any], batch: int = 2) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Static profile for a denoiser graph at the CFG batch (2 per cine): fixed frames, size and tokens."""
    shapes = {i["name"]: i["shape"] for i in entry["inputs"]}
    profile = {}
    for name, shape in shapes.items():
        static = tuple([batch] + [int(d) for d in shape[1:]])
        profile[name] = (static, static, static)
    return profile


def check_engine(
    engine_path: Path, fp32_onnx: Path, feeds: Sequence[Mapping[str, np.ndarray]], tolerances: Mapping[str, Any]
) -> dict[str, Any]:
    """FP16 layers present, parity vs the FP32 graph on onnxruntime CPU, and timing at each feed's batch."""
    from cardiacnets.export.onnx_export import compare_outputs, ort_session

    runner = TrtRunner(engine_path)
    precisions = runner.layer_precisions()
    if precisions.get("Half", 0) == 0:
        raise ExportError(f"{engine_path.name} has no FP16 layers: TensorRT built an FP32 engine")
    reference = ort_session(fp32_onnx)
    names = list(tolerances)
    report: dict[str, Any] = {"io_dtypes": runner.io_dtypes(), "layer_precisions": precisions, "batches": {}}
    failures = []
    for feed in feeds:
        batch = int(next(iter(feed.values())).shape[0])
        ref = dict(zip(names, reference.run(names, dict(feed)), strict=True))
        got = runner.run(feed)
        parity = compare_outputs(ref, got, tolerances)
        failures += [f"{k} at batch {batch}" for k, v in parity.items() if not v["ok"]]
        torch_feed = {k: runner.torch.from_numpy(np.ascontiguousarray(v)).cuda() for k, v in feed.items()}
        timing = time_callable(lambda f=torch_feed: runner.run_torch(f), sync=runner.torch.cuda.synchronize)
        report["batches"][str(batch)] = {"parity": parity, **timing}
    if failures:
        raise ExportError(f"{engine_path.name} failed parity against {fp32_onnx.name}: {', '.join(failures)}")
    return report


def fp16_tolerances(kind: str) -> dict[str, Any]:
    """Engine (FP16) vs FP32 ONNX bounds per graph kind."""
    from cardiacnets.export.onnx_export import Tolerance

    if kind == "screening":
        return {"disease_prob": Tolerance(0.01), "subtype_prob": Tolerance(0.01),
                "phenotypes": Tolerance(0.0, 0.0, 0.01), "embedding": Tolerance(0.0, 0.0, 0.02)}  # fmt: skip
    if kind == "unet":
        return {"noise_pred": Tolerance(0.0, 0.0, 0.02)}
    raise InputError(f"no FP16 tolerances for graph kind {kind!r}")


def build_for_target(
    target: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None, max_batch: int = 32
) -> dict[str, Any]:
    """Build, check and time engines for a bundle (screening FP16, and the cine denoiser FP16 when present) or for
    one FP16 screening ``.onnx`` file. Checks TensorRT and the GPU first."""
    from cardiacnets.bundle import load_bundle
    from cardiacnets.export.onnx_export import screening_feeds

    require_trt_and_gpu()
    target = Path(target)
    jobs: list[tuple[str, Path, Path, dict[str, Any], list[dict[str, np.ndarray]]]] = []
    rng = np.random.default_rng(5)
    batches = sorted({1, min(8, max_batch), max_batch})
    if target.is_dir():
        bundle = load_bundle(target)
        spec = bundle.model("screening")
        fp16 = (spec.get("variants") or {}).get("fp16")
        if fp16 is None:
            raise ExportError(f"bundle {target} has no fp16 screening variant; rebuild it with --variants int8,fp16")
        jobs.append(("screening", bundle.path(fp16["file"]), bundle.path(spec["file"]), screening_profile(max_batch),
                     [screening_feeds(b, rng) for b in batches]))  # fmt: skip
        for name, entry in bundle.manifest["models"].items():
            if entry.get("kind") == "unet" and "fp16" in (entry.get("variants") or {}):
                shapes = {i["name"]: i["shape"] for i in entry["inputs"]}
                c, f, h, w = (int(d) for d in shapes["sample"][1:])
                n_tokens, dim = (int(d) for d in shapes["ecg_tokens"][1:])
                feed = _unet_feed(2, (c, f, h, w), n_tokens, dim, rng)
                jobs.append((name, bundle.path(entry["variants"]["fp16"]["file"]), bundle.path(entry["file"]),
                             unet_profile(entry), [feed]))  # fmt: skip
    elif target.suffix == ".onnx" and target.is_file():
        fp32 = target.with_name(target.name.replace(".fp16.onnx", ".onnx"))
        if fp32 == target or not fp32.is_file():
            raise InputError(f"{target}: expected NAME.fp16.onnx next to its FP32 NAME.onnx (for the parity check)")
        jobs.append(
            ("screening", target, fp32, screening_profile(max_batch), [screening_feeds(b, rng) for b in batches])
        )
    else:
        raise InputError(f"{target}: not a bundle directory or an .onnx file")
    report: dict[str, Any] = {}
    for name, fp16_path, fp32_path, profile, feeds in jobs:
        engine, info = build_engine(fp16_path, profile, cache_dir=cache_dir)
        kind = "unet" if name.startswith("unet") else "screening"
        report[name] = {**info, **check_engine(engine, fp32_path, feeds, fp16_tolerances(kind))}
    return report


def _unet_feed(batch: int, latent: tuple[int, int, int, int], n_tokens: int, dim: int, rng: np.random.Generator
               ) -> dict[str, np.ndarray]:  # fmt: skip
    return {
        "sample": rng.standard_normal((batch, *latent)).astype(np.float32),
        "timestep": rng.integers(0, 1000, size=batch).astype(np.int64),
        "ecg_tokens": (rng.standard_normal((batch, n_tokens, dim)) * 0.5).astype(np.float32),
        "drop_condition": np.arange(batch) < batch // 2,
    }


__all__ = [
    "TrtRunner",
    "build_engine",
    "build_for_target",
    "check_engine",
    "engine_cache_key",
    "ort_gpu_session",
    "require_trt_and_gpu",
    "screening_profile",
    "time_callable",
    "unet_profile",
]
