"""The GPU check: one prepared run (``bash scripts/gpu_check.sh``; about 8 minutes on one H100, engine builds included).

Each stage is recorded as ok, failed, partial, skipped (not installed), skipped (time budget) or skipped
(prerequisite not ok), with its parts; ``gpu_check.json`` and ``gpu_check.md`` in ``--out`` are rewritten after every
stage and part, so a timeout keeps what ran (:mod:`cardiacnets.export.gpu_check`):

1. probe: GPUs (nvidia-smi), torch and ``torch.version.cuda``, the onnxruntime package, build and providers,
   TensorRT, the version pairs that must load each other, and every import the later stages need (each missing one
   named);
2. bundle: a random-weight ``screening-ecg-tiny`` exported into a bundle (FP32 + INT8 + FP16 graphs) on the CPU;
3. screening: TensorRT FP16 engine, onnxruntime TensorRT FP16 and CUDA FP32/FP16 (IOBinding on device buffers), torch
   CUDA FP16 autocast and FP32, at batches 1/8/32, each against the onnxruntime CPU FP32 reference with stated bounds,
   timed after a warm-up; the engine caches hit on a second build (also through ``cnexport trt``);
4. cine: the default bundle's short-axis graph set (ECG encoder, UNet converted to FP16, VAE decoder) as TensorRT
   engines and on onnxruntime CUDA, parity against the CPU; torch CUDA DPM-20 / DDIM-100 sampling, FP32 and FP16;
5. cnscreen: ``cnscreen FILE --device cuda|trt --json`` and ``--cine --device cuda`` end to end, checking that each
   output names the provider that was asked for;
6. gpu_tests: the ``CNS_GPU=1`` test tier.

Exit 0 only when every stage is ok; ``--allow-missing`` also accepts stages skipped because a package (TensorRT,
onnxruntime-gpu) is not installed. Without an NVIDIA GPU it prints one line saying so and exits 1.

Wheels for a GPU machine without a venv or network (run here, in the repository root; .whl/ is git-ignored and
carried; diffusers is installed without its dependencies, so carry them too, and the probe names any still missing)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl PyWavelets==1.8.0 \
      diffusers==0.42.1 huggingface-hub==2.4.0 safetensors==0.8.0 regex importlib_metadata zipp hf-xet nibabel
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


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


_alias_subpackages()

from cardiacnets.export.gpu_check import PROBE_IMPORTS, CheckFailed, CheckRun, Stage, probe  # noqa: E402

BUDGET_S = 450.0
EXAMPLE = REPO / "examples" / "ecg" / "synthetic_hcm.hea"
#: The probe's list plus the edge module the cnscreen stage runs (the export layer never imports edge code).
IMPORTS = {**PROBE_IMPORTS, "cardiacnets.edge.cine": True, "cardiacnets.edge.cli": True}


def no_gpu_reason() -> str | None:
    """One line when this machine has no NVIDIA GPU (nvidia-smi lists none and torch sees none); else None."""
    from cardiacnets.execution import nvidia_gpus, torch_info

    if nvidia_gpus():
        return None
    torch = torch_info()
    if torch["cuda"] is not None:
        import torch as torch_module

        if torch_module.cuda.is_available():
            return None
    return (f"gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none; torch {torch['version']}, CUDA"
            f" {torch['cuda']}): nothing was checked; run it on a GPU machine")  # fmt: skip


def _cnscreen(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """``cnscreen ARGS`` in a fresh process (this script's ``--cnscreen`` mode makes the checkout importable)."""
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), "--cnscreen", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)  # fmt: skip


def _screened(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise CheckFailed(f"cnscreen exited {proc.returncode}: {tail[0]}", {"stderr": proc.stderr[-2000:]})
    return json.loads(proc.stdout)


def _screen_on(device: str, expected: str) -> dict[str, Any]:
    from cardiacnets.export.gpu_bench import require_provider, require_tensorrt

    require_provider(device)
    if device == "trt":
        require_tensorrt()
    started = time.perf_counter()
    result = _screened(_cnscreen(str(EXAMPLE), "--device", device, "--json", timeout=180))
    got = result["model"].get("execution_provider")
    report = {"execution_provider": got, "seconds": round(time.perf_counter() - started, 1)}
    if got != expected:
        raise CheckFailed(f"asked for {expected}, the result names {got}", report)
    return report


def _cine_on(device: str, expected: str, out: Path) -> dict[str, Any]:
    from cardiacnets.export.gpu_bench import require_provider

    require_provider(device)
    result = _screened(_cnscreen(str(EXAMPLE), "--cine", "--cine-dir", str(out), "--device", device, "--json",
                                 timeout=240))  # fmt: skip
    views = result["cine"]["views"]
    report = {v: {"providers": e["providers"], "seconds": e["seconds"], "files": sorted(e["files"])}
              for v, e in views.items()}  # fmt: skip
    wrong = [f"{v} {g}: {p}" for v, e in views.items() for g, p in e["providers"].items() if p != expected]
    if wrong:
        raise CheckFailed(f"asked for {expected}, cine graphs ran on: {'; '.join(wrong)}", report)
    return report


def cnscreen_stage(stage: Stage, work: Path) -> dict[str, Any]:
    from cardiacnets.execution import CUDA, TRT

    stage.part("device_cuda", lambda: _screen_on("cuda", CUDA), needs_s=20)
    stage.part("device_trt", lambda: _screen_on("trt", TRT), needs_s=60)
    stage.part("cine_cuda", lambda: _cine_on("cuda", CUDA, work / "cines"), needs_s=60)
    return {"input": EXAMPLE.name}


def gpu_tests_stage(stage: Stage, run: CheckRun) -> dict[str, Any]:
    """The CNS_GPU=1 tier: the tests marked gpu, in a fresh process."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); import gpu_check; import pytest;"
            " sys.exit(pytest.main(sys.argv[1:]))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "CNS_GPU": "1"},
                          timeout=max(30.0, run.remaining() - 5))  # fmt: skip
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    report = {"files": files, "summary": summary, "exit_code": proc.returncode}
    if proc.returncode != 0 or "skipped" in summary or "passed" not in summary:
        raise CheckFailed(f"the GPU tier did not pass cleanly: {summary}", {**report, "output": proc.stdout[-3000:]})
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--cnscreen"]:  # a cnscreen run for the cnscreen stage
        from cardiacnets.edge.cli import main as cnscreen

        cnscreen(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="exit 0 when all that is not ok was skipped because a package is not installed",
    )
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="time budget of the whole run")
    args = parser.parse_args(argv)
    reason = no_gpu_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from cardiacnets.bundle import default_bundle_path
    from cardiacnets.export import gpu_bench

    run = CheckRun(args.out, args.budget_s, log=lambda line: print(line, flush=True))
    work = Path(tempfile.mkdtemp(prefix="cns-gpu-check-"))
    run.stage("probe", lambda s: probe(s, IMPORTS), needs_s=5)
    run.stage("bundle", lambda s: gpu_bench.build_test_bundle(work), needs_s=90)
    run.stage("screening", lambda s: gpu_bench.screening_backends(s, work / "bundle", work / "model", work / "trt"),
              needs_s=90, requires=("bundle",))  # fmt: skip
    run.stage("cine", lambda s: gpu_bench.cine_graphs(s, work / "cine", default_bundle_path()), needs_s=90)
    run.stage("cnscreen", lambda s: cnscreen_stage(s, work), needs_s=60)
    run.stage("gpu_tests", lambda s: gpu_tests_stage(s, run), needs_s=45)
    code = run.exit_code(args.allow_missing)
    not_ok = {k: v["status"] for k, v in run.results["stages"].items() if v["status"] != "ok"}
    print(f"== done in {run.elapsed():.0f} s; exit {code}; not ok: {not_ok or 'none'}; results in {args.out}",
          flush=True)  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
