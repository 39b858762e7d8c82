"""Which TensorRT engines a target yields (``cnexport trt``): one :class:`EngineJob` per graph, carrying the manifest
entry's kind, the precision of the graph the engine is built from, its FP32 reference, shape profile, feeds and parity
bounds; :func:`build_for_target` builds, checks and times them.

Kinds come from the manifest entry (``screening``, ``unet``, ``ecg_encoder``, ``vae_decoder``), never from the key
(UNet keys are ``cine_{view}_unet``), and every bound names an output the graph has: a UNet is never asked for
``disease_prob``. Planning needs neither TensorRT nor a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import ExportError, InputError
from cardiacnets.execution import DEFAULT_OPT_LEVEL, DEFAULT_WORKSPACE_BYTES, batch_profile

Profile = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]

#: Batch of each cine graph as ``cnscreen --cine`` runs it: the ECG encoder one ECG, the UNet the classifier-free
#: guidance pair, the VAE decoder all frames of a cine at once (None: the view's frame count).
CINE_BATCH: dict[str, int | None] = {"ecg_encoder": 1, "unet": 2, "vae_decoder": None}


@dataclass
class EngineJob:
    """One engine to build: ``name`` is the manifest key, ``kind`` the entry's kind, ``precision`` that of ``onnx``
    (``fp16`` engines must hold FP16 layers), ``reference`` the FP32 graph the parity check runs on the CPU."""

    name: str
    kind: str
    precision: str
    onnx: Path
    reference: Path
    profile: Profile
    feeds: list[dict[str, np.ndarray]]
    outputs: list[str]

    def tolerances(self) -> dict[str, Any]:
        return engine_tolerances(self.kind, self.precision, self.outputs)


def engine_tolerances(kind: str, precision: str, outputs: Sequence[str] | None = None) -> dict[str, Any]:
    """Engine vs FP32 ONNX (onnxruntime CPU) bounds per graph kind and engine precision. FP32 engines get
    TF32-sized bounds (TensorRT uses TF32 for FP32 matmuls on Ampere and later). With ``outputs``, a bound for an
    output the graph lacks is an :class:`ExportError`."""
    from cardiacnets.export.onnx_export import Tolerance

    prob, rel, wide_rel = (0.01, 0.01, 0.02) if precision == "fp16" else (0.003, 0.003, 0.005)
    table: dict[str, dict[str, Tolerance]] = {
        "screening": {"disease_prob": Tolerance(prob), "subtype_prob": Tolerance(prob),
                      "phenotypes": Tolerance(0.0, 0.0, rel), "embedding": Tolerance(0.0, 0.0, wide_rel)},
        "unet": {"noise_pred": Tolerance(0.0, 0.0, wide_rel)},
        "ecg_encoder": {"tokens": Tolerance(0.0, 0.0, wide_rel)},
        "vae_decoder": {"frames": Tolerance(2 * prob)},
    }  # fmt: skip
    if kind not in table:
        raise InputError(f"no engine tolerances for graph kind {kind!r} (known: {', '.join(table)})")
    bounds = table[kind]
    if outputs is not None and not set(bounds) <= set(outputs):
        missing = sorted(set(bounds) - set(outputs))
        raise ExportError(f"{kind} graph lacks the outputs its parity check needs: {', '.join(missing)}")
    return bounds


def entry_feed(entry: Mapping[str, Any], batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs for a manifest entry's graph at ``batch``: ECGs in [-1, 1], timesteps in [0, 1000), the
    classifier-free-guidance drop mask (first half dropped), other floats standard normal (scaled by 0.5)."""
    from cardiacnets.export.onnx_export import screening_feeds

    if entry.get("kind") == "screening":
        return screening_feeds(batch, rng)
    feed = {}
    for spec in entry["inputs"]:
        shape = (batch, *(int(d) for d in spec["shape"][1:]))
        name, dtype = spec["name"], str(spec.get("dtype", "float32"))
        if name == "ecg":
            feed[name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
        elif dtype == "bool":
            feed[name] = np.arange(batch) < batch // 2
        elif dtype.startswith("int"):
            feed[name] = rng.integers(0, 1000, size=shape).astype(dtype)
        else:
            feed[name] = (rng.standard_normal(shape) * 0.5).astype(dtype)
    return feed


def plan_jobs(
    manifest: Mapping[str, Any],
    path: Callable[[str], Path],
    *,
    max_batch: int = 32,
    views: Sequence[str] | None = None,
    rng: np.random.Generator | None = None,
) -> list[EngineJob]:
    """The engines of a bundle: the FP16 screening graph (batch 1..``max_batch``) and :func:`cine_jobs`. ``path``
    maps a bundle-relative file to its path."""
    rng = rng or np.random.default_rng(5)
    spec = manifest["models"]["screening"]
    fp16 = (spec.get("variants") or {}).get("fp16")
    if fp16 is None:
        raise ExportError("the bundle has no fp16 screening variant; rebuild it with --variants int8,fp16")
    batches = sorted({1, min(8, max_batch), max_batch})
    profile = batch_profile(spec["inputs"], 1, min(8, max_batch), max_batch)
    screening = _job("screening", spec, path(fp16["file"]), "fp16", path(spec["file"]), profile, batches, rng)
    return [screening, *cine_jobs(manifest, path, views=views, rng=rng)]


def cine_jobs(
    manifest: Mapping[str, Any],
    path: Callable[[str], Path],
    *,
    views: Sequence[str] | None = None,
    rng: np.random.Generator | None = None,
) -> list[EngineJob]:
    """Per cine view (``views``: all) the UNet (its FP16 variant when the bundle has one, else FP32), the ECG encoder
    and the VAE decoder (FP32), each at the batch ``cnscreen --cine`` runs (:data:`CINE_BATCH`)."""
    rng = rng or np.random.default_rng(5)
    models, jobs, seen = manifest["models"], [], set()
    for view, cine in ((manifest.get("cine") or {}).get("views") or {}).items():
        if views is not None and view not in views:
            continue
        frames = int(cine["latent_shape"][1])
        for rel in (cine["ecg_encoder"], cine["unet"], cine["vae_decoder"]):
            found = [(k, e) for k, e in models.items() if e.get("file") == rel]
            if not found:
                raise ExportError(f"cine view {view!r}: no manifest entry lists {rel}")
            name, entry = found[0]
            if name in seen:  # one encoder serves every view
                continue
            seen.add(name)
            batch = CINE_BATCH.get(str(entry.get("kind")), 1) or frames
            variant = (entry.get("variants") or {}).get("fp16") if entry.get("kind") == "unet" else None
            graph, precision = (path(variant["file"]), "fp16") if variant else (path(rel), "fp32")
            profile = batch_profile(entry["inputs"], batch, batch, batch)
            jobs.append(_job(name, entry, graph, precision, path(rel), profile, [batch], rng))
    return jobs


def _job(name: str, entry: Mapping[str, Any], graph: Path, precision: str, reference: Path, profile: Profile,
         batches: Sequence[int], rng: np.random.Generator) -> EngineJob:  # fmt: skip
    kind = entry.get("kind")
    if not kind:
        raise ExportError(f"manifest entry {name!r} has no kind")
    outputs = [o["name"] for o in entry.get("outputs") or []]
    job = EngineJob(name, str(kind), precision, graph, reference, profile, [entry_feed(entry, b, rng) for b in batches],
                    outputs)  # fmt: skip
    job.tolerances()  # fail at planning, not after a build, when a bound names an output the graph lacks
    return job


def plan_target(target: str | os.PathLike[str], *, max_batch: int = 32, views: Sequence[str] | None = None
                ) -> list[EngineJob]:  # fmt: skip
    """:func:`plan_jobs` for a bundle directory, or the single screening job of an ``NAME.fp16.onnx`` file with its
    FP32 ``NAME.onnx`` beside it."""
    from cardiacnets.bundle import load_bundle
    from cardiacnets.export.onnx_export import tensor_specs

    target = Path(target)
    if target.is_dir():
        bundle = load_bundle(target)
        return plan_jobs(bundle.manifest, bundle.path, max_batch=max_batch, views=views)
    if target.suffix == ".onnx" and target.is_file():
        fp32 = target.with_name(target.name.replace(".fp16.onnx", ".onnx"))
        if fp32 == target or not fp32.is_file():
            raise InputError(f"{target}: expected NAME.fp16.onnx next to its FP32 NAME.onnx (for the parity check)")
        inputs, outputs = tensor_specs(fp32)
        entry = {"kind": "screening", "inputs": inputs, "outputs": outputs}
        return plan_jobs({"models": {"screening": {**entry, "file": fp32.name,
                                                   "variants": {"fp16": {"file": target.name}}}}},
                         lambda rel: target.parent / rel, max_batch=max_batch)  # fmt: skip
    raise InputError(f"{target}: not a bundle directory or an .onnx file")


def build_for_target(
    target: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_batch: int = 32,
    views: Sequence[str] | None = None,
    optimization_level: int = DEFAULT_OPT_LEVEL,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
) -> dict[str, Any]:
    """Build, check and time the engines of a bundle (:func:`plan_jobs`) or of one FP16 screening ``.onnx`` file.
    Checks TensorRT and the GPU first. Returns a report per job name."""
    from cardiacnets.export.trt import build_engine, check_engine, require_trt_and_gpu

    require_trt_and_gpu()
    report: dict[str, Any] = {}
    for job in plan_target(target, max_batch=max_batch, views=views):
        engine, info = build_engine(job.onnx, job.profile, cache_dir=cache_dir, optimization_level=optimization_level,
                                    workspace_bytes=workspace_bytes)  # fmt: skip
        checked = check_engine(engine, job.reference, job.feeds, job.tolerances(), precision=job.precision)
        report[job.name] = {"kind": job.kind, **info, **checked}
    return report


__all__ = ["CINE_BATCH", "EngineJob", "build_for_target", "cine_jobs", "engine_tolerances", "entry_feed", "plan_jobs",
           "plan_target"]  # fmt: skip
