"""The machinery of the GPU check (``scripts/gpu_check.py``): stages whose status says what actually ran, results
written after every stage and part, the exit code, and the probe of every import the stages need.

A stage or part is ``ok`` only when it ran and passed. One that could not run is ``skipped (not installed)`` (it
raised :class:`NotInstalled`: TensorRT, onnxruntime-gpu or a CUDA build of torch is missing), ``skipped (time
budget)`` or ``skipped (prerequisite not ok)``; one that raised is ``failed`` (its partial result kept when it raised
:class:`CheckFailed`). A stage with parts is ``ok`` only when every part is, ``failed`` when any failed, and
``partial`` otherwise. The exit code is 0 only when every stage is ``ok``; ``--allow-missing`` also accepts what was
skipped for a missing package (never a failure, a budget skip or a missing GPU).
"""

from __future__ import annotations

import importlib
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

OK, FAILED, PARTIAL, RUNNING = "ok", "failed", "partial", "running (did not finish)"
SKIPPED_MISSING = "skipped (not installed)"
SKIPPED_BUDGET = "skipped (time budget)"
SKIPPED_PREREQ = "skipped (prerequisite not ok)"
RESULTS_JSON, RESULTS_MD = "gpu_check.json", "gpu_check.md"

#: Every module a stage imports (directly or through the library modules listed), True where the check cannot run
#: without it. tests/test_gpu_check.py keeps this list complete.
PROBE_IMPORTS: dict[str, bool] = {
    "numpy": True, "scipy": True, "pywt": True, "onnx": True, "onnxscript": True, "onnxruntime": True,
    "torch": True, "safetensors": True, "diffusers": True, "huggingface_hub": True, "regex": True, "PIL": True,
    "requests": True, "filelock": True, "importlib_metadata": True,
    "nibabel": True, "imageio": True, "typer": True, "rich": True, "yaml": True, "defusedxml": True,
    "statsmodels": True, "pytest": True, "tensorrt": False,
    "cardiacnets.export.bundle_builder": True, "cardiacnets.export.trt_jobs": True,
    "cardiacnets.diffusion.pipeline": True, "cardiacnets.diffusion.schedulers": True,
}  # fmt: skip


class NotInstalled(Exception):
    """What a stage needs (a package, a provider, a CUDA build of torch) is not installed: it did not run."""


class CheckFailed(Exception):
    """A check ran and failed; ``result`` (its measurements) is kept in the results."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


def _outcome(entry: dict[str, Any], fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and record its status in ``entry``; the value, or None when it did not complete."""
    started = time.perf_counter()
    value = None
    try:
        value = fn()
        entry["result"] = value
        entry.setdefault("status", OK)
    except NotInstalled as exc:
        entry.update(status=SKIPPED_MISSING, reason=str(exc))
    except CheckFailed as exc:
        entry.update(status=FAILED, error=str(exc), result=exc.result)
    except Exception as exc:  # noqa: BLE001 - a failed check is recorded and the next one runs
        entry.update(status=FAILED, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
    entry["seconds"] = round(time.perf_counter() - started, 1)
    return value


def combine(statuses: list[str]) -> str:
    """A stage's status from its parts': ok only when all are ok."""
    if not statuses or all(s == OK for s in statuses):
        return OK
    if FAILED in statuses:
        return FAILED
    if all(s == SKIPPED_MISSING for s in statuses):
        return SKIPPED_MISSING
    return PARTIAL


class Stage:
    """Handed to a stage function: :meth:`part` runs one independently recorded part."""

    def __init__(self, run: CheckRun, entry: dict[str, Any]) -> None:
        self.run = run
        self.entry = entry
        self.parts: dict[str, dict[str, Any]] = {}

    def part(self, name: str, fn: Callable[[], Any], *, needs_s: float = 0.0) -> Any:
        """Run one part (skipped when the budget cannot fit ``needs_s`` more seconds); write the results after it."""
        entry: dict[str, Any] = {}
        self.parts[name] = entry
        self.entry["parts"] = self.parts
        if self.run.remaining() < needs_s:
            entry.update(status=SKIPPED_BUDGET, reason=f"needs ~{needs_s:.0f} s, {self.run.remaining():.0f} s left")
            value = None
        else:
            value = _outcome(entry, fn)
        self.run.write()
        return value


class CheckRun:
    """The stages of one check run, their results in ``out`` (rewritten after every stage and part)."""

    def __init__(self, out: Path | None, budget_s: float, *, log: Callable[[str], None] = print) -> None:
        self.out = out
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.results: dict[str, Any] = {"stages": {}}
        self.log = log

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float:
        return self.budget_s - self.elapsed()

    def status(self, name: str) -> str | None:
        return (self.results["stages"].get(name) or {}).get("status")

    def stage(self, name: str, fn: Callable[[Stage], Any], *, needs_s: float = 30.0, requires: tuple[str, ...] = ()
              ) -> Any:  # fmt: skip
        """Run a stage (``fn(stage)``) unless a stage it ``requires`` is not ok or the budget cannot fit ``needs_s``;
        record its status and write the results."""
        entry: dict[str, Any] = {}
        self.results["stages"][name] = entry
        blocked = [r for r in requires if self.status(r) != OK]
        value = None
        if blocked:
            entry.update(status=SKIPPED_PREREQ, reason=f"needs {', '.join(blocked)} ok")
        elif self.remaining() < needs_s:
            entry.update(status=SKIPPED_BUDGET, reason=f"needs ~{needs_s:.0f} s, {self.remaining():.0f} s left")
        else:
            self.log(f"== {name} (t={self.elapsed():.0f} s)")
            entry["status"] = RUNNING  # on disk while it runs: a run killed here shows it unfinished, never ok
            self.write()
            del entry["status"]
            stage = Stage(self, entry)
            value = _outcome(entry, lambda: fn(stage))
            if entry["status"] == OK and stage.parts:
                entry["status"] = combine([p["status"] for p in stage.parts.values()])
        self.log(f"== {name}: {entry['status']} {entry.get('error') or entry.get('reason') or ''}".rstrip())
        self.write()
        return value

    def exit_code(self, allow_missing: bool = False) -> int:
        """0 when every stage is ok (with ``allow_missing``, also when all that is not ok was skipped for a missing
        package); 1 otherwise."""
        for entry in self.results["stages"].values():
            status = entry.get("status")
            if status == OK:
                continue
            if allow_missing and status == SKIPPED_MISSING:
                continue
            if allow_missing and status == PARTIAL:
                if all(p["status"] in (OK, SKIPPED_MISSING) for p in entry.get("parts", {}).values()):
                    continue
            return 1
        return 0

    def write(self) -> None:
        """``gpu_check.json`` and ``gpu_check.md`` in ``out``, replaced atomically (a timeout keeps the last ones)."""
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["elapsed_seconds"] = round(self.elapsed(), 1)
        _atomic_write(self.out / RESULTS_JSON, json.dumps(self.results, indent=2, default=str) + "\n")
        lines = ["# GPU check", "", f"elapsed {self.elapsed():.0f} s of {self.budget_s:.0f} s", ""]
        for name, entry in self.results["stages"].items():
            lines.append(f"- **{name}**: {entry.get('status', 'running')} ({entry.get('seconds', '-')} s)"
                         f" {entry.get('error') or entry.get('reason') or ''}".rstrip())  # fmt: skip
            for part, sub in (entry.get("parts") or {}).items():
                lines.append(f"  - {part}: {sub.get('status')} {sub.get('error') or sub.get('reason') or ''}".rstrip())
        _atomic_write(self.out / RESULTS_MD, "\n".join(lines) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------ probe
def check_imports(modules: Mapping[str, bool]) -> dict[str, str]:
    """Import each module: its version (or ``"ok"``), or ``"missing: <why>"``."""
    found = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install raising anything
            found[name] = f"missing: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        found[name] = str(getattr(module, "__version__", "ok"))
    return found


def probe(stage: Stage, modules: Mapping[str, bool] = PROBE_IMPORTS) -> dict[str, Any]:
    """The machine: versions (:func:`cardiacnets.execution.runtime_versions`) and the GPU torch sees; parts for the
    imports (failed when a required one is missing, naming each), TensorRT (skipped when not installed) and the
    version pairs that must load each other."""
    from cardiacnets.execution import compatibility_problems, runtime_versions

    versions = runtime_versions()
    info: dict[str, Any] = {"versions": versions}
    try:
        import torch

        info["torch_cuda_available"] = bool(torch.cuda.is_available())
        if info["torch_cuda_available"]:
            info["torch_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch_cuda_available"] = False
    imports = check_imports(modules)
    info["imports"] = imports

    def required() -> dict[str, str]:
        missing = [f"{n} ({v.removeprefix('missing: ')})" for n, v in imports.items() if modules[n] and
                   v.startswith("missing")]  # fmt: skip
        if missing:
            raise CheckFailed(f"missing: {'; '.join(missing)}", imports)
        return {n: v for n, v in imports.items() if modules[n]}

    def tensorrt() -> str:
        if imports.get("tensorrt", "missing").startswith("missing"):
            raise NotInstalled(f"TensorRT ({imports.get('tensorrt')})")
        return imports["tensorrt"]

    def compatible() -> list[str]:
        problems = compatibility_problems(versions)
        if problems:
            raise CheckFailed("; ".join(problems), problems)
        return problems

    stage.part("imports", required)
    stage.part("tensorrt", tensorrt)
    stage.part("compatibility", compatible)
    return info


__all__ = ["CheckFailed", "CheckRun", "NotInstalled", "PROBE_IMPORTS", "Stage", "check_imports", "combine", "probe"]
