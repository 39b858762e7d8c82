"""onnxruntime execution providers and the GPU software stack, shared by ``cnscreen --device`` and the export layer.

- Which providers a device registers: TensorRT, then CUDA, then the CPU (onnxruntime's TensorRT documentation asks
  for CUDA after TensorRT, so that nodes TensorRT rejects run on the GPU rather than on the CPU).
- What a created session actually uses (:func:`session_providers`, the one seam around the runtime) and the check
  that the requested provider came first: onnxruntime falls back silently, for example when ``libnvinfer`` is
  missing although ``get_available_providers()`` lists TensorRT.
- TensorRT provider options: an engine and timing cache under the user's cache folder in a folder keyed by graph
  digest, GPU, TensorRT version, builder optimisation level and workspace size (:func:`engine_cache_key`), and
  shape profiles for the batch axis.
- The versions that decide whether the GPU pieces load each other (torch's CUDA, the onnxruntime package and build,
  TensorRT), for error messages and :func:`compatibility_problems`.

Never imports torch (the screening path stays torch-free: torch's CUDA version is read from its ``version.py``
unless torch is already imported) and imports TensorRT only to preload its libraries for onnxruntime.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cardiacnets.errors import InputError, ProviderError

logger = logging.getLogger(__name__)

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PROVIDER_NAMES = {"trt": TRT, "cuda": CUDA, "cpu": CPU}
DEVICES = ("auto", "cpu", "cuda", "trt")
_CHAINS = {"auto": (TRT, CUDA, CPU), "trt": (TRT, CUDA, CPU), "cuda": (CUDA, CPU), "cpu": (CPU,)}

#: TensorRT builder defaults (onnxruntime's and TensorRT's optimisation level 3; a 4 GiB workspace).
DEFAULT_OPT_LEVEL = 3
DEFAULT_WORKSPACE_BYTES = 4 << 30

#: CUDA major of the onnxruntime-gpu wheels on PyPI, from their metadata (their ``[cuda]`` extras require
#: ``nvidia-*-cu12`` up to 1.26 and CUDA 13 packages from 1.27). Their TensorRT provider loads TensorRT 10.
ORT_GPU_CUDA_MAJOR: tuple[tuple[tuple[int, int], int], ...] = (((1, 27), 13), ((1, 19), 12))
ORT_TRT_MAJOR = 10

Profile = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]

__all__ = [
    "CPU", "CUDA", "DEFAULT_OPT_LEVEL", "DEFAULT_WORKSPACE_BYTES", "DEVICES", "PROVIDER_NAMES", "TRT",
    "batch_profile", "check_active_provider", "compatibility_problems", "create_session", "engine_cache_key",
    "gpu_name", "nvidia_gpus", "provider_chain", "provider_entries", "runtime_versions", "session_providers",
    "tensorrt_version", "torch_info", "trt_cache_dir", "trt_provider_options", "user_cache_dir", "versions_line",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------- providers
def provider_chain(device: str, available: Iterable[str]) -> list[str]:
    """The providers to register for ``device`` (``auto``, ``cpu``, ``cuda``, ``trt``), best first.

    ``trt`` registers TensorRT, CUDA and the CPU; ``cuda`` CUDA and the CPU; ``auto`` whichever of the three are
    installed. Asking for ``cuda`` or ``trt`` where onnxruntime lacks that provider raises :class:`ProviderError`.
    """
    available = set(available)
    if device not in _CHAINS:
        raise InputError(f"unknown device {device!r}; choose {', '.join(DEVICES)}")
    if device == "auto":
        return [p for p in _CHAINS["auto"] if p in available or p == CPU]
    wanted = PROVIDER_NAMES[device]
    if wanted not in available:
        raise ProviderError(
            f"device {device!r} needs onnxruntime's {wanted}, which this installation lacks (available:"
            f" {', '.join(sorted(available))}); install onnxruntime-gpu instead of onnxruntime (README: GPU install),"
            f" or use --device cpu [{versions_line()}]"
        )
    return [p for p in _CHAINS[device] if p in available or p == wanted]


def provider_entries(chain: Sequence[str], *, trt_options: Mapping[str, Any] | None = None) -> list[Any]:
    """``chain`` as onnxruntime's ``providers`` argument: TensorRT with its options when given."""
    return [(p, dict(trt_options)) if p == TRT and trt_options is not None else p for p in chain]


def session_providers(session: Any) -> list[str]:
    """The providers a created session actually uses, in priority order (the seam a test replaces)."""
    return list(session.get_providers())


_FALLBACK_HINTS = {
    TRT: "onnxruntime could not load TensorRT 10 (libnvinfer.so.10): install the tensorrt-cu12/-cu13 10.x wheel"
    " that matches onnxruntime-gpu's CUDA (README: GPU install)",
    CUDA: "onnxruntime could not load CUDA or cuDNN: install onnxruntime-gpu[cuda,cudnn] for this CUDA major, or a"
    " CUDA build of torch of the same CUDA major (README: GPU install)",
}


def check_active_provider(
    requested: str, active: Sequence[str], *, allow_fallback: bool = False, graph: str = "graph"
) -> str:
    """The provider that runs first; :class:`ProviderError` when it is not ``requested`` (a warning instead with
    ``allow_fallback``)."""
    first = active[0] if active else "none"
    if first == requested:
        return first
    message = (
        f"{graph}: asked onnxruntime for {requested} but it runs on {first} (active: {', '.join(active) or 'none'});"
        f" {_FALLBACK_HINTS.get(requested, 'the provider failed to load')} [{versions_line()}]"
    )
    if not allow_fallback:
        raise ProviderError(message + "; --allow-fallback runs on it anyway")
    logger.warning("%s; running on %s (--allow-fallback)", message, first)
    return first


def create_session(
    path: str | os.PathLike[str],
    chain: Sequence[str],
    *,
    session_options: Any = None,
    trt_options: Mapping[str, Any] | None = None,
    allow_fallback: bool = False,
) -> tuple[Any, str]:
    """An onnxruntime session registering ``chain`` and the provider it actually runs on (checked against
    ``chain[0]``, see :func:`check_active_provider`)."""
    import onnxruntime as ort

    if chain and chain[0] != CPU:
        _preload_gpu_libraries(chain)
    options = session_options or ort.SessionOptions()
    if session_options is None:
        options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=provider_entries(chain, trt_options=trt_options))
    active = check_active_provider(chain[0], session_providers(session), allow_fallback=allow_fallback,
                                   graph=Path(path).name)  # fmt: skip
    return session, active


def _preload_gpu_libraries(chain: Sequence[str]) -> None:
    """Load CUDA/cuDNN from the nvidia-* wheels and TensorRT from its wheel, so onnxruntime's providers find them."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # noqa: BLE001 - best effort: the active-provider check reports what failed
            logger.debug("onnxruntime.preload_dlls failed: %s", exc)
    if TRT in chain and importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt  # noqa: F401 - loads libnvinfer.so.10 from the tensorrt wheel for onnxruntime
        except Exception as exc:  # noqa: BLE001
            logger.debug("import tensorrt failed: %s", exc)


# ---------------------------------------------------------------------------------------------------- cache
def user_cache_dir() -> Path:
    """``$CNS_CACHE_DIR``, else ``$XDG_CACHE_HOME/cardiacnets``, else ``~/.cache/cardiacnets``."""
    if os.environ.get("CNS_CACHE_DIR"):
        return Path(os.environ["CNS_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "cardiacnets"


def engine_cache_key(
    *,
    graph_sha256: str,
    gpu: str,
    trt_version: str,
    optimization_level: int,
    workspace_bytes: int,
    profile: Profile | None = None,
) -> str:
    """Hex key of a TensorRT engine: a change of graph, GPU model, TensorRT version, builder optimisation level,
    workspace size or shape profile gives another key, so no stale engine is ever reused."""
    canonical = {
        "graph": graph_sha256, "gpu": gpu, "trt": trt_version, "opt_level": int(optimization_level),
        "workspace": int(workspace_bytes),
        "profile": {k: [list(map(int, s)) for s in v] for k, v in sorted((profile or {}).items())},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:32]


def trt_cache_dir(
    graph_sha256: str,
    *,
    profile: Profile | None = None,
    optimization_level: int = DEFAULT_OPT_LEVEL,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    root: Path | None = None,
) -> Path:
    """The engine cache folder of one graph for onnxruntime's TensorRT provider on this machine."""
    key = engine_cache_key(
        graph_sha256=graph_sha256, gpu=gpu_name(), trt_version=tensorrt_version() or "unknown",
        optimization_level=optimization_level, workspace_bytes=workspace_bytes, profile=profile,
    )  # fmt: skip
    return (root or user_cache_dir()) / "ort-trt" / key


def batch_profile(inputs: Sequence[Mapping[str, Any]], min_batch: int, opt_batch: int, max_batch: int) -> Profile:
    """``(min, opt, max)`` shapes of a manifest entry's inputs (``[{"name", "shape"}]``, shape ``["batch", ...]``):
    only the batch axis varies."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise InputError(f"need 1 <= min <= opt <= max batch, got {min_batch}, {opt_batch}, {max_batch}")
    profile = {}
    for spec in inputs:
        rest = [int(d) for d in spec["shape"][1:]]
        profile[spec["name"]] = tuple((b, *rest) for b in (min_batch, opt_batch, max_batch))
    return profile


def trt_provider_options(
    cache_dir: Path,
    *,
    profile: Profile | None = None,
    optimization_level: int = DEFAULT_OPT_LEVEL,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
) -> dict[str, Any]:
    """Options of onnxruntime's TensorRT provider: engine and timing cache in ``cache_dir``, builder level and
    workspace, explicit shape profiles. ``trt_fp16_enable`` stays off: an FP16 graph builds strongly typed, and an
    FP32 graph stays FP32 (export-notes.md 4.3)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir),
        "trt_builder_optimization_level": int(optimization_level), "trt_max_workspace_size": int(workspace_bytes),
    }  # fmt: skip
    if profile:
        for i, key in enumerate(("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")):
            options[key] = ",".join(f"{n}:{'x'.join(map(str, s[i]))}" for n, s in profile.items())
    return options


# ------------------------------------------------------------------------------------------------- versions
def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists (visible ones first when ``CUDA_VISIBLE_DEVICES`` names one);
    empty without ``nvidia-smi`` or a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    args = [exe, "--query-gpu=name", "--format=csv,noheader"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible and visible != "-1":
        args.insert(1, f"--id={visible}")
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def gpu_name() -> str:
    gpus = nvidia_gpus()
    return gpus[0] if gpus else "unknown-gpu"


def tensorrt_version() -> str | None:
    """TensorRT's version from its wheel, else from the ``libnvinfer.so.10`` onnxruntime would load; None without."""
    for name in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs", "tensorrt-cu12-libs"):
        if version := _dist_version(name):
            return version
    try:
        import ctypes

        number = int(ctypes.CDLL(f"libnvinfer.so.{ORT_TRT_MAJOR}").getInferLibVersion())
    except (OSError, AttributeError):
        return None
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def tensorrt_cuda_major() -> int | None:
    for major in (13, 12):
        if _dist_version(f"tensorrt-cu{major}") or _dist_version(f"tensorrt-cu{major}-libs"):
            return major
    return None


def torch_info() -> dict[str, Any]:
    """torch's version and CUDA version (``torch.version.cuda``, None for a CPU build), without importing torch."""
    version = _dist_version("torch")
    if version is None:
        return {"version": None, "cuda": None}
    module = sys.modules.get("torch")
    if module is not None and hasattr(module, "version"):
        return {"version": version, "cuda": module.version.cuda}
    spec = importlib.util.find_spec("torch")
    text = ""
    if spec is not None and spec.origin:
        try:
            text = (Path(spec.origin).parent / "version.py").read_text()
        except OSError:
            pass
    match = re.search(r"^cuda\s*(?::[^=\n]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)", text, re.MULTILINE)
    return {"version": version, "cuda": (match.group(1) or match.group(2)) if match else None}


def _ort_cuda_major(version: str | None) -> int | None:
    try:
        key = tuple(int(p) for p in (version or "").split(".")[:2])
    except ValueError:
        return None
    return next((major for first, major in ORT_GPU_CUDA_MAJOR if key >= first), None)


def runtime_versions() -> dict[str, Any]:
    """What decides whether the GPU paths load: onnxruntime (packages, version, build, providers), TensorRT, torch
    and its CUDA, the GPUs ``nvidia-smi`` lists."""
    packages = [name for name in ("onnxruntime", "onnxruntime-gpu") if _dist_version(name)]
    ort: dict[str, Any] = {"packages": packages, "version": None, "providers": [], "build": None}
    try:
        import onnxruntime

        ort.update(version=onnxruntime.__version__, providers=list(onnxruntime.get_available_providers()))
        if hasattr(onnxruntime, "get_build_info"):
            ort["build"] = str(onnxruntime.get_build_info()).splitlines()[0]
    except ImportError as exc:
        ort["error"] = str(exc).splitlines()[0]
    gpu_ort = "onnxruntime-gpu" in packages
    ort["cuda_major"] = _ort_cuda_major(_dist_version("onnxruntime-gpu")) if gpu_ort else None
    return {"onnxruntime": ort, "tensorrt": tensorrt_version(), "tensorrt_cuda_major": tensorrt_cuda_major(),
            "torch": torch_info(), "gpus": list(nvidia_gpus())}  # fmt: skip


def versions_line(versions: Mapping[str, Any] | None = None) -> str:
    """One line of :func:`runtime_versions` for an error message."""
    v = versions or runtime_versions()
    ort, torch = v["onnxruntime"], v["torch"]
    providers = ", ".join(p.removesuffix("ExecutionProvider") for p in ort.get("providers") or []) or "none"
    cuda = f"CUDA {ort['cuda_major']}" if ort.get("cuda_major") else "CPU build"
    return (
        f"onnxruntime {ort.get('version') or 'missing'} ({'+'.join(ort.get('packages') or []) or 'no package'},"
        f" {cuda}, providers {providers}); TensorRT {v.get('tensorrt') or 'not installed'};"
        f" torch {torch.get('version') or 'not installed'} (torch.version.cuda {torch.get('cuda')});"
        f" GPU {', '.join(v.get('gpus') or []) or 'none found by nvidia-smi'}"
    )


def compatibility_problems(versions: Mapping[str, Any]) -> list[str]:
    """Why the installed GPU pieces would not load each other (empty when they would, as far as versions tell)."""
    ort, problems = versions["onnxruntime"], []
    packages = ort.get("packages") or []
    if {"onnxruntime", "onnxruntime-gpu"} <= set(packages):
        problems.append("onnxruntime and onnxruntime-gpu are both installed and share one import name: pip uninstall"
                        " -y onnxruntime onnxruntime-gpu, then install onnxruntime-gpu alone")  # fmt: skip
    trt, ort_cuda = versions.get("tensorrt"), ort.get("cuda_major")
    if "onnxruntime-gpu" in packages and trt and not trt.startswith(f"{ORT_TRT_MAJOR}."):
        problems.append(f"TensorRT {trt}: onnxruntime-gpu's TensorRT provider loads TensorRT {ORT_TRT_MAJOR}"
                        f" (libnvinfer.so.{ORT_TRT_MAJOR}); install tensorrt-cu{ort_cuda or 'XX'}<11")  # fmt: skip
    trt_cuda = versions.get("tensorrt_cuda_major")
    if ort_cuda and trt_cuda and trt_cuda != ort_cuda:
        problems.append(f"TensorRT is built for CUDA {trt_cuda} but onnxruntime-gpu for CUDA {ort_cuda}")
    torch_cuda = (versions.get("torch") or {}).get("cuda")
    if ort_cuda and torch_cuda and int(str(torch_cuda).split(".")[0]) != ort_cuda:
        problems.append(f"torch is built for CUDA {torch_cuda} but onnxruntime-gpu for CUDA {ort_cuda}")
    return problems
