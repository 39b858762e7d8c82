"""TensorRT engines from FP16 (or FP32) ONNX graphs, an engine cache, engine-vs-ONNX parity and timing; and
onnxruntime's TensorRT / CUDA execution providers as the other GPU path, timed through IOBinding on device buffers.

TensorRT is imported inside functions: this module imports (and its error paths run) on machines without it. Where
TensorRT, a CUDA build of torch or an NVIDIA GPU is missing, :func:`require_trt_and_gpu` raises
:class:`~cardiacnets.errors.ExportError` naming each missing piece and the installed versions (torch's CUDA, the
onnxruntime package and build, TensorRT; export-notes.md 4.1: ``trt.Builder`` needs a CUDA device).

TensorRT 10 vs 11 (export-notes.md 4.2): both build a strongly typed network, so precision comes from the FP16 ONNX
(:func:`cardiacnets.export.precision.convert_to_fp16`), never from ``BuilderFlag.FP16`` (removed in 11). On 10 the
``STRONGLY_TYPED`` creation flag is set; on 11 every network is strongly typed and no flag is passed. Engines are
never shipped: they are built on the target and cached under a key of (ONNX sha256, GPU model and compute capability,
TensorRT version, builder optimisation level, workspace size, optimisation profile; :func:`engine_cache_key`). A
built FP16 engine is checked for FP16 layers by parsing the engine inspector's JSON per layer (a silently FP32 engine
is an error), for parity against the FP32 graph on onnxruntime CPU, and timed. Engines run on a dedicated CUDA stream.
Which graphs a bundle yields, with their kinds and bounds, is :mod:`cardiacnets.export.trt_jobs`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import sha256_file
from cardiacnets.errors import ExportError, InputError, ProviderError
from cardiacnets.execution import (
    DEFAULT_OPT_LEVEL,
    DEFAULT_WORKSPACE_BYTES,
    compatibility_problems,
    create_session,
    engine_cache_key,
    nvidia_gpus,
    provider_chain,
    runtime_versions,
    torch_info,
    trt_cache_dir,
    trt_provider_options,
    user_cache_dir,
    versions_line,
)

logger = logging.getLogger(__name__)

Profile = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]

WORKSPACE_BYTES = DEFAULT_WORKSPACE_BYTES
TRT_INSTALL_HINT = (
    "install the GPU stack for your CUDA major (README: GPU install; bash scripts/install_gpu.sh cu12 or cu13)"
)


# ----------------------------------------------------------------------------------------------- availability
def _missing_pieces() -> list[str]:
    """Every missing piece, each naming what was found instead (a CPU torch on a GPU machine is not 'no GPU')."""
    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        missing.append(f"the TensorRT Python package ('import tensorrt' failed: {str(exc).splitlines()[0]})")
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError and friends
        missing.append(f"a working TensorRT ('import tensorrt' failed: {type(exc).__name__}: {exc})")
    torch, gpus = torch_info(), nvidia_gpus()
    seen = f"nvidia-smi lists {', '.join(gpus)}" if gpus else "nvidia-smi finds no GPU"
    if torch["version"] is None:
        missing.append("PyTorch with CUDA (engine buffers are torch CUDA tensors)")
    elif torch["cuda"] is None:
        missing.append(f"a CUDA build of PyTorch (torch {torch['version']} is a CPU build; {seen})")
    elif not _cuda_available():
        missing.append(f"an NVIDIA GPU that torch {torch['version']} (CUDA {torch['cuda']}) can use ({seen})")
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
        versions = runtime_versions()
        problems = compatibility_problems(versions)
        raise ExportError(
            "TensorRT engines cannot be built here: missing " + " and ".join(missing) + f"; {TRT_INSTALL_HINT}"
            + (f"; {'; '.join(problems)}" if problems else "") + f" [{versions_line(versions)}]"
        )  # fmt: skip
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
    """``$CNS_TRT_CACHE``, else ``trt/`` in the user's cache folder (:func:`cardiacnets.execution.user_cache_dir`)."""
    return Path(os.environ.get("CNS_TRT_CACHE") or user_cache_dir() / "trt")


# ------------------------------------------------------------------------------------------------------ build
def build_engine(
    onnx_path: str | os.PathLike[str],
    profile: Profile,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    optimization_level: int = DEFAULT_OPT_LEVEL,
    workspace_bytes: int = WORKSPACE_BYTES,
) -> tuple[Path, dict[str, Any]]:
    """Build (or load from the cache) an engine for ``onnx_path`` with one optimisation profile.

    ``profile`` maps each input name to ``(min, opt, max)`` shapes. Returns ``(engine_path, info)`` with ``cached``,
    ``build_seconds``, ``key``, ``trt_version``, ``gpu``, ``optimization_level`` and ``workspace_bytes``.
    """
    trt = require_trt_and_gpu()
    onnx_path = Path(onnx_path)
    gpu = gpu_info()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = engine_cache_key(graph_sha256=sha256_file(onnx_path), gpu=f"{gpu['name']} sm{gpu['compute_capability']}",
                           trt_version=trt.__version__, optimization_level=optimization_level,
                           workspace_bytes=workspace_bytes, profile=profile)  # fmt: skip
    engine_path = cache / f"{onnx_path.stem}-{key}.plan"
    info: dict[str, Any] = {"key": key, "trt_version": trt.__version__, "gpu": gpu, "engine": str(engine_path),
                            "optimization_level": optimization_level, "workspace_bytes": workspace_bytes}  # fmt: skip
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
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.builder_optimization_level = optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the per-layer formats the FP16 check parses
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(opt_profile)
    timing_path = cache / f"timing-{trt.__version__}-{key[:8]}.cache"
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


# ----------------------------------------------------------------------------------------- layer precisions
_PRECISION_WORDS = (("INT8", {"int8"}), ("BF16", {"bf16", "bfloat16"}), ("FP16", {"half", "fp16", "float16"}),
                    ("FP32", {"float", "fp32", "float32"}), ("INT32", {"int32"}), ("INT64", {"int64"}),
                    ("BOOL", {"bool"}))  # fmt: skip


def tensor_precision(fmt: str) -> str | None:
    """The precision a ``Format/Datatype`` string names: ``"Half"`` and ``"Row major linear FP16 format"`` are both
    FP16, ``"Float"`` and ``"... FP32 ..."`` FP32; None when it names none (``"N/A due to dynamic shapes"``)."""
    words = set(re.findall(r"[a-z0-9]+", str(fmt).lower()))
    return next((name for name, keys in _PRECISION_WORDS if words & keys), None)


def parse_layer_precisions(engine_information: str) -> dict[str, int]:
    """Count the engine's layers per precision from the engine inspector's JSON (``LayerInformationFormat.JSON``).

    A layer counts under every precision its input and output tensors have (a cast layer counts as FP16 and FP32);
    ``layers`` is the total and ``unknown`` the layers whose tensors name none. Raises :class:`ExportError` when the
    information holds layer names only (an engine built without ``ProfilingVerbosity.DETAILED``).
    """
    try:
        layers = json.loads(engine_information).get("Layers") or []
    except (ValueError, AttributeError) as exc:
        raise ExportError(f"engine inspector output is not JSON: {str(exc)[:80]}") from None
    counts = {"layers": len(layers), "unknown": 0}
    for layer in layers:
        if isinstance(layer, str) and layer.lstrip().startswith("{"):
            layer = json.loads(layer)
        if not isinstance(layer, dict):
            raise ExportError("the engine lists layer names only (built without detailed profiling): delete the cached"
                              " engine and rebuild it")  # fmt: skip
        tensors = [*(layer.get("Inputs") or []), *(layer.get("Outputs") or [])]
        found = {tensor_precision(t.get("Format/Datatype", "")) for t in tensors if isinstance(t, dict)} - {None}
        for name in found:
            counts[name] = counts.get(name, 0) + 1
        counts["unknown"] += not found
    return counts


# ----------------------------------------------------------------------------------------------------- runner
_TRT_TO_TORCH = {"FLOAT": "float32", "HALF": "float16", "INT64": "int64", "INT32": "int32", "BOOL": "bool",
                 "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8"}  # fmt: skip


class TrtRunner:
    """A deserialised engine and an execution context on a dedicated CUDA stream (TensorRT warns about, and is
    slower on, the default stream); buffers are torch CUDA tensors (``execute_async_v3``)."""

    def __init__(self, engine_path: str | os.PathLike[str]) -> None:
        trt = require_trt_and_gpu()
        import torch

        self.torch = torch
        self.trt = trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ExportError(f"{engine_path}: engine does not match this TensorRT version or GPU; rebuild it"
                              f" [{versions_line()}]")  # fmt: skip
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]

    def io_dtypes(self) -> dict[str, str]:
        return {n: _TRT_TO_TORCH.get(self.engine.get_tensor_dtype(n).name, self.engine.get_tensor_dtype(n).name)
                for n in self.names}  # fmt: skip

    def layer_precisions(self) -> dict[str, int]:
        """Layers per precision (:func:`parse_layer_precisions`). Call after a run: the inspector then sees the
        execution context with its input shapes set, so dynamic-shape layers report their formats too."""
        inspector = self.engine.create_engine_inspector()
        for attribute in ("execution_context", "context"):  # TensorRT 10/11 name it execution_context
            if hasattr(inspector, attribute):
                setattr(inspector, attribute, self.context)
                break
        return parse_layer_precisions(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    def run_torch(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run on CUDA tensors (device-resident; no host copies) on this runner's stream. Returns CUDA tensors."""
        torch = self.torch
        dtypes = self.io_dtypes()
        self.stream.wait_stream(torch.cuda.current_stream())  # the feeds were made on the caller's stream
        with torch.cuda.stream(self.stream):
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
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ExportError("TensorRT execution failed")
        self.stream.synchronize()
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
    optimization_level: int = DEFAULT_OPT_LEVEL,
    workspace_bytes: int = WORKSPACE_BYTES,
) -> Any:
    """An onnxruntime session on TensorRT (``"trt"``: TensorRT, CUDA, CPU registered) or CUDA (``"cuda"``).

    onnxruntime silently falls back to the CPU when a provider is missing or fails to load; here either is an
    :class:`ExportError` naming the versions. The TensorRT provider gets an engine and timing cache in a folder keyed
    by graph, GPU, TensorRT version, optimisation level, workspace and profile (under ``cache_dir``, default the
    user's cache folder), and ``profile``'s shape ranges; ``trt_fp16_enable`` stays off so an FP16 ONNX builds
    strongly typed (export-notes.md 4.3).
    """
    import onnxruntime as ort

    if provider not in ("trt", "cuda"):
        raise InputError(f"unknown provider {provider!r}; choose trt or cuda")
    try:
        chain = provider_chain(provider, ort.get_available_providers())
        trt_options = None
        if provider == "trt":
            cache = trt_cache_dir(
                sha256_file(onnx_path), profile=profile, optimization_level=optimization_level,
                workspace_bytes=workspace_bytes, root=Path(cache_dir) if cache_dir else None,
            )  # fmt: skip
            trt_options = trt_provider_options(cache, profile=profile, optimization_level=optimization_level,
                                               workspace_bytes=workspace_bytes)  # fmt: skip
        session, _ = create_session(onnx_path, chain, trt_options=trt_options)
    except ProviderError as exc:
        raise ExportError(str(exc)) from None
    return session


class IoBoundSession:
    """An onnxruntime session run through IOBinding with its inputs and outputs on ``device`` (``"cuda"`` on a GPU):
    the inputs are copied there once and the outputs stay there, so a timing measures the graph rather than the
    megabytes of host copies each plain ``session.run`` makes (12 x 5000 float32 per ECG)."""

    def __init__(self, session: Any, feeds: Mapping[str, np.ndarray], *, device: str = "cuda", device_id: int = 0
                 ) -> None:  # fmt: skip
        import onnxruntime as ort

        self.session = session
        self.binding = session.io_binding()
        self._values = {name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), device, device_id)
                        for name, value in feeds.items()}  # fmt: skip
        for name, value in self._values.items():
            self.binding.bind_ortvalue_input(name, value)
        self.output_names = [o.name for o in session.get_outputs()]
        for name in self.output_names:
            self.binding.bind_output(name, device, device_id)

    def run(self) -> None:
        """One run, outputs left on the device (synchronised, so a timing includes the whole run)."""
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()

    def outputs(self) -> dict[str, np.ndarray]:
        """One run, outputs copied to the host."""
        self.run()
        return dict(zip(self.output_names, self.binding.copy_outputs_to_cpu(), strict=True))


# ------------------------------------------------------------------------------------------------- checking
def check_engine(
    engine_path: Path,
    fp32_onnx: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    tolerances: Mapping[str, Any],
    *,
    precision: str = "fp16",
) -> dict[str, Any]:
    """Parity of the engine against the FP32 graph on onnxruntime CPU and timing at each feed's batch; for an FP16
    engine also FP16 layers present (parsed per layer, :func:`parse_layer_precisions`)."""
    from cardiacnets.export.onnx_export import compare_outputs, ort_session

    runner = TrtRunner(engine_path)
    reference = ort_session(fp32_onnx)
    names = list(tolerances)
    report: dict[str, Any] = {"precision": precision, "io_dtypes": runner.io_dtypes(), "batches": {}}
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
    report["layer_precisions"] = runner.layer_precisions()  # after a run: the context has its shapes
    if precision == "fp16" and report["layer_precisions"].get("FP16", 0) == 0:
        raise ExportError(f"{engine_path.name} has no FP16 layers: TensorRT built an FP32 engine")
    if failures:
        raise ExportError(f"{engine_path.name} failed parity against {fp32_onnx.name}: {', '.join(failures)}")
    return report


__all__ = [
    "IoBoundSession",
    "TrtRunner",
    "build_engine",
    "check_engine",
    "engine_cache_key",
    "ort_gpu_session",
    "parse_layer_precisions",
    "require_trt_and_gpu",
    "tensor_precision",
    "time_callable",
]
