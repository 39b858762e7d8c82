"""Build the model bundle (docs/architecture.md, "The bundle") from a trained screening model (and optionally an
ECG2CMR pipeline).

Layout::

    out/
      manifest.json             written last, by cardiacnets.bundle.write_manifest (sha256 of every other file)
      screening.onnx            FP32 master, checked against torch
      screening.int8.onnx       dynamic INT8 (CPU), checked against the FP32 graph, accuracy cost and batch dependence
                                measured (never the default: its results depend on the batch)
      screening.fp16.onnx       FP16 with norms/softmax in FP32 (GPU / TensorRT), likewise
      cine/ecg_encoder.onnx     with --diffusion: ECG -> tokens
      cine/unet_<view>.onnx     the denoiser (+ .fp16.onnx), fixed frames, dynamic batch
      cine/vae_decoder.onnx     latents -> frames
      cine/scheduler_config.json
      trust.json                with trust data: calibrators, conformal half-widths, out-of-distribution models

``default_variant`` of the screening model is a variant only when its measured AUROC cost on the evaluation split is
at most :data:`~cardiacnets.export.precision.MAX_AUROC_COST` on every disease and its results do not depend on the
batch (:func:`~cardiacnets.export.precision.batch_dependence`); FP16 is a GPU variant and never the CPU default.
The build refuses a non-empty output directory unless ``overwrite``; it writes into ``out.partial`` and
renames, so a failed build leaves no half bundle behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import load_bundle, write_manifest
from cardiacnets.errors import CheckpointError, ExportError, InputError
from cardiacnets.reporting import json_ready

logger = logging.getLogger(__name__)

NOT_FOR_CLINICAL_USE = "not for clinical use"
SCREENING_VARIANTS = ("int8", "fp16")


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """A saved-model directory (``config.json`` + ``model.safetensors``) or a training run directory (its ``best/``)."""
    from cardiacnets.models.registry import pretrained_dir

    path = Path(path)
    candidate = pretrained_dir(path)
    if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
        return candidate
    raise CheckpointError(f"{path}: no saved model (config.json + model.safetensors) here or in {path / 'best'}")


def load_screening(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any], Path]:
    """``(model, metadata, model_dir)`` of an ECG-input screening model saved with ``save_pretrained``."""
    from cardiacnets.models.registry import from_pretrained, read_pretrained_metadata
    from cardiacnets.models.screening import ScreeningModel

    model_dir = resolve_model_dir(path)
    model = from_pretrained(model_dir)
    if not isinstance(model, ScreeningModel) or model.config.input != "ecg":
        raise CheckpointError(f"{model_dir} holds a {type(model).__name__}, not an ECG-input screening model")
    return model.eval(), read_pretrained_metadata(model_dir), model_dir


def preprocess_from_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PreprocessConfig`` dict the model was trained with (the default config when the metadata has none)."""
    from cardiacnets.preprocess import PreprocessConfig

    raw = metadata.get("preprocess")
    if raw is None:
        logger.warning("model metadata has no preprocessing config; the bundle uses the default PreprocessConfig")
        return PreprocessConfig().to_dict()
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"model metadata 'preprocess' must be a mapping, got {type(raw).__name__}")
    if "kind" in raw:  # training's {"kind": "full" | "minmax", "config": {...}}
        if raw["kind"] != "full":
            raise ExportError(
                f"the model was trained with ECG preprocessing {raw['kind']!r}; the edge runtime applies the full"
                " PreprocessConfig pipeline, so it cannot be bundled (retrain with ecg_preprocess=full)"
            )
        raw = raw.get("config") or {}
    return PreprocessConfig.from_dict(dict(raw)).to_dict()


def thresholds_from_metadata(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``(thresholds, source)``: per disease ``{"youden", "high_specificity", "default"}`` from the model's metadata,
    or 0.5 placeholders (source ``"placeholder"``) when it has none."""
    from cardiacnets.targets import DISEASES

    raw = metadata.get("thresholds")
    if not raw:
        logger.warning("model metadata has no decision thresholds; the bundle uses 0.5 placeholders")
        return {d: {"youden": 0.5, "high_specificity": 0.5, "default": "youden"} for d in DISEASES}, "placeholder"
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"model metadata 'thresholds' must map diseases to thresholds, got {raw!r}")
    out = {}
    placeholders = []
    for disease in DISEASES:
        entry = raw.get(disease)
        if isinstance(entry, (int, float)) and not isinstance(entry, bool):
            entry = {"youden": float(entry), "default": "youden"}
        if entry is None:  # a fine-tuning task may cover only some diseases: the others get a marked placeholder
            placeholders.append(disease)
            out[disease] = {"youden": 0.5, "high_specificity": 0.5, "default": "youden", "placeholder": True}
            continue
        if not isinstance(entry, Mapping):
            raise CheckpointError(f"model metadata threshold for {disease} must be a mapping, got {entry!r}")
        entry = dict(entry)
        entry.setdefault("default", "youden")
        point = entry["default"]
        value = entry.get(point)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise CheckpointError(f"threshold {disease}.{point} must be a probability in [0, 1], got {value!r}")
        out[disease] = entry
    if placeholders:
        logger.warning("no thresholds for %s in the model metadata: 0.5 placeholders", ", ".join(placeholders))
        return out, f"model metadata; 0.5 placeholders for {', '.join(placeholders)}"
    return out, "model metadata"


def training_data_from_metadata(metadata: Mapping[str, Any], eval_description: str | None) -> dict[str, Any]:
    """Training-data description. Unless the metadata says ``"synthetic": false`` the bundle is marked synthetic."""
    raw = metadata.get("training_data")
    info: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    if isinstance(raw, str):
        info["description"] = raw
    info.setdefault("description", "CardiacNets screening model trained on the synthetic cohort (cardiacnets.synth)")
    info["synthetic"] = bool(info.get("synthetic", True))
    info["clinical_use"] = NOT_FOR_CLINICAL_USE
    if eval_description:
        info["precision_evaluation_split"] = eval_description
    return info


def label_spec() -> dict[str, Any]:
    """Disease and subtype names and the 82 phenotypes (name, unit) in output order, from ``cardiacnets.targets``."""
    from cardiacnets.targets import COVARIATES, DISEASE_NAMES, DISEASES, SUBTYPE_NAMES, SUBTYPES, phenotypes

    return {
        "diseases": [{"code": d, "name": DISEASE_NAMES[d]} for d in DISEASES],
        "subtypes": [{"code": s, "name": SUBTYPE_NAMES[s]} for s in SUBTYPES],
        "covariates": list(COVARIATES),
        "phenotypes": [{"index": p.index, "short": p.short, "name": p.name, "unit": p.unit} for p in phenotypes()],
    }


def tool_versions() -> dict[str, str]:
    """Versions of the tools that built the bundle."""
    import onnx
    import onnxruntime
    import torch

    import cardiacnets

    versions = {"cardiacnets": cardiacnets.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                "numpy": np.__version__}  # fmt: skip
    try:
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass
    return versions


def _variant_tolerances(variant: str) -> dict[str, Any]:
    from cardiacnets.export.onnx_export import Tolerance

    prob = 0.05 if variant == "int8" else 0.01
    spread = 0.05 if variant == "int8" else 0.01
    return {"disease_prob": Tolerance(prob), "subtype_prob": Tolerance(prob),
            "phenotypes": Tolerance(0.0, 0.0, spread), "embedding": Tolerance(0.0, 0.0, spread)}  # fmt: skip


def make_screening_variant(fp32: Path, variant: str, dst: Path) -> dict[str, Any]:
    """Write an ``int8`` or ``fp16`` variant of the FP32 screening graph and check it against FP32 on fixed inputs."""
    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.onnx_export import check_graph, ort_session, parity_check, screening_feeds
    from cardiacnets.export.precision import convert_to_fp16, quantize_int8

    if variant == "int8":
        quantize_int8(fp32, dst)
        info: dict[str, Any] = {"precision": "int8-dynamic (S8 weights, MatMul/Gemm)", "target": "cpu"}
    elif variant == "fp16":
        info = {"precision": "fp16 (norms, softmax in fp32; fp32 I/O)", "target": "gpu",
                "conversion": convert_to_fp16(fp32, dst)}  # fmt: skip
    else:
        raise InputError(f"unknown precision variant {variant!r}; choose from {', '.join(SCREENING_VARIANTS)}")
    check_graph(dst)
    reference = ort_session(fp32)
    names = list(SCREENING_OUTPUTS)

    def run_fp32(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, reference.run(names, feed), strict=True))

    rng = np.random.default_rng(11)
    info["parity"] = parity_check(dst, run_fp32, [screening_feeds(b, rng) for b in (1, 3)],
                                  _variant_tolerances(variant), what="screening.onnx (fp32)")  # fmt: skip
    return info


def build_bundle(
    screening: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    diffusion: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    eval_split: Any = None,
    variants: Sequence[str] = SCREENING_VARIANTS,
    name: str | None = None,
    version: str | None = None,
    overwrite: bool = False,
    cine_fp16: bool = True,
    cine_weights_fp16: bool = False,
    trust_data: Any = None,
    trust_report: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Export, check and write a bundle directory; return its manifest.

    Args:
        screening: a saved screening model directory or a training run directory.
        out: the bundle directory to create.
        diffusion: ``EcgToCmrPipeline`` directories (``save_pretrained``), one per view, whose parts go into
            ``cine/<view>/``.
        eval_split: an :class:`~cardiacnets.export.precision.EvalSplit` to measure the variants' accuracy cost on;
            without it no variant can become the default (the bundle defaults to FP32).
        variants: precision variants of the screening graph to build.
        cine_fp16: also write FP16 denoiser graphs for GPUs.
        cine_weights_fp16: store the cine graphs' weights as FP16 (FP32 compute; about half the size), each graph
            checked against torch with the looser bounds of ``*_TOLERANCES_FP16W``.
        trust_data: a :class:`~cardiacnets.export.trust_fit.TrustData` (the training cohort) to fit the trust
            artefacts on (calibration, thresholds with bands, phenotype identities and intervals, the
            out-of-distribution check); without it the bundle has none and its outputs say so.
        trust_report: with ``trust_data``, also write the trust evaluation report into this directory.
    """
    started = time.time()
    out = Path(out)
    with _building(out, overwrite) as partial:
        model, metadata, model_dir = load_screening(screening)
        preprocess = preprocess_from_metadata(metadata)  # before the export: a model the edge cannot run fails fast
        thresholds, thresholds_source = thresholds_from_metadata(metadata)
        entry, precision_report = _screening_entry(model, model_dir, partial, variants, eval_split)
        models: dict[str, Any] = {"screening": entry}
        if isinstance(diffusion, (str, os.PathLike)):
            diffusion = [diffusion]
        cine = (
            _add_diffusion(list(diffusion), partial, models, fp16=cine_fp16, weights_fp16=cine_weights_fp16)
            if diffusion
            else None
        )
        manifest: dict[str, Any] = {
            "name": name or f"cardiacnets-{model_dir.parent.name if model_dir.name == 'best' else model_dir.name}",
            "version": version or "0.1.0",
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tools": tool_versions(),
            "models": models,
            "preprocess": preprocess,
            "labels": label_spec(),
            "thresholds": thresholds,
            "thresholds_source": thresholds_source,
            "training_data": training_data_from_metadata(
                metadata, precision_report["split"] if precision_report else None
            ),
            "precision_report": precision_report,
            "build_seconds": round(time.time() - started, 1),
        }
        if metadata.get("lead_sets"):  # a lead-masked model screens from reduced lead sets (cardiacnets.leadsets)
            manifest["lead_sets"] = list(metadata["lead_sets"])
        if cine is not None:
            manifest["cine"] = cine
        if trust_data is not None:
            manifest = _fit_trust(partial, manifest, trust_data, trust_report)
        write_manifest(partial, json_ready(manifest))
    bundle = load_bundle(out)  # re-verify what was written
    logger.info("bundle %s written: %d files, default variant %s", out, len(bundle.manifest["files"]),
                entry["default_variant"])  # fmt: skip
    return bundle.manifest


@contextlib.contextmanager
def _building(out: Path, overwrite: bool) -> Iterator[Path]:
    """Build into ``out.partial`` and rename it to ``out`` when the block succeeds; remove it when it fails, so a
    failed build leaves no half bundle behind. A non-empty ``out`` is refused unless ``overwrite``."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty; choose another --out or pass --force")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _screening_entry(
    model: Any, model_dir: Path, root: Path, variants: Sequence[str], eval_split: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Export the screening graph and its precision variants into ``root``, measure the variants on ``eval_split``
    and choose the default; ``(manifest entry, precision report or None)``."""
    from cardiacnets.export.onnx_export import export_screening
    from cardiacnets.export.precision import accuracy_cost, choose_default_variant

    result = export_screening(model, root / "screening.onnx")
    entry = result.manifest_entry("screening.onnx")
    entry["source"] = {"model_dir": model_dir.name, "config": _model_summary(model)}
    entry["variants"] = {}
    for variant in variants:
        rel = f"screening.{variant}.onnx"
        entry["variants"][variant] = {"file": rel, **make_screening_variant(root / "screening.onnx", variant,
                                                                           root / rel)}  # fmt: skip
    precision_report = None
    default, reason = "fp32", "no evaluation split given: variants' accuracy cost unmeasured"
    if eval_split is not None and entry["variants"]:
        paths = {v: root / e["file"] for v, e in entry["variants"].items()}
        precision_report = accuracy_cost(root / "screening.onnx", paths, eval_split)
        default, reason = choose_default_variant(precision_report)
        for v, cost in precision_report["variants"].items():
            keys = ("auroc_cost", "max_auroc_cost", "phenotype_r_cost", "max_abs_prob_diff", "batch_dependence")
            entry["variants"][v]["accuracy_cost"] = {k: cost[k] for k in keys}
    entry["default_variant"] = default
    entry["default_variant_reason"] = reason
    return entry, precision_report


def _fit_trust(root: Path, manifest: dict[str, Any], trust_data: Any, report: Any) -> dict[str, Any]:
    """Fit the trust artefacts into ``root`` (and write their report when asked); the updated manifest."""
    from cardiacnets.export.trust_fit import attach_trust, write_trust_report

    manifest, evaluation = attach_trust(root, manifest, trust_data)
    if report is not None:
        spec = json.loads((root / manifest["trust"]["file"]).read_text())
        write_trust_report(evaluation, spec, report, title=f"Trust artefacts of {manifest['name']}",
                           command="cnexport bundle (trust fitted at build time)")  # fmt: skip
    return manifest


def _model_summary(model: Any) -> dict[str, Any]:
    from cardiacnets.config import config_to_dict

    cfg = config_to_dict(model.config)
    return {"ecg": cfg.get("ecg"), "n_diseases": cfg.get("n_diseases"), "n_phenotypes": cfg.get("n_phenotypes"),
            "parameters": int(sum(p.numel() for p in model.parameters()))}  # fmt: skip


def _same_weights(a: Any, b: Any) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _add_diffusion(
    directories: Sequence[str | os.PathLike[str]],
    root: Path,
    models: dict[str, Any],
    *,
    fp16: bool = True,
    weights_fp16: bool = False,
) -> dict[str, Any]:
    """Export ECG2CMR pipelines (one per view) into ``root/cine/<view>`` and register their graphs in ``models``.

    The conditional ECG encoder is exported once to ``cine/ecg_encoder.onnx`` when every view uses the same weights
    (the usual case: the aligned encoder), else once per view. Returns the manifest's ``cine`` section.
    """
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.export.onnx_export import export_ecg_encoder

    pipelines = [EcgToCmrPipeline.from_pretrained(d) for d in directories]
    views = [p.config.view for p in pipelines]
    if len(set(views)) != len(views):
        raise InputError(f"one ECG2CMR pipeline per view, got views {views}")
    cine_dir = root / "cine"
    cine_dir.mkdir(parents=True, exist_ok=True)
    shared = all(_same_weights(pipelines[0].ecg_encoder, p.ecg_encoder) for p in pipelines[1:])
    section: dict[str, Any] = {"views": {}, "label": None}
    for k, (directory, pipeline) in enumerate(zip(directories, pipelines, strict=True)):
        view = pipeline.config.view
        view_dir = cine_dir / view
        view_dir.mkdir(exist_ok=True)
        if shared:
            encoder_rel = "cine/ecg_encoder.onnx"
            if k == 0:
                result = export_ecg_encoder(pipeline.ecg_encoder, root / encoder_rel, weights_fp16=weights_fp16)
                models["cine_ecg_encoder"] = result.manifest_entry(encoder_rel)
        else:
            encoder_rel = f"cine/{view}/ecg_encoder.onnx"
            result = export_ecg_encoder(pipeline.ecg_encoder, root / encoder_rel, weights_fp16=weights_fp16)
            models[f"cine_{view}_ecg_encoder"] = result.manifest_entry(encoder_rel)
        meta = json.loads((Path(directory) / "pipeline.json").read_text())
        section["label"] = meta.get("label")
        section["views"][view] = export_cine_view(pipeline, root, models, encoder_rel, fp16=fp16,
                                                  weights_fp16=weights_fp16)  # fmt: skip
    return section


def export_cine_view(
    pipeline: Any, root: Path, models: dict[str, Any], encoder_rel: str, *, fp16: bool, weights_fp16: bool
) -> dict[str, Any]:
    """Export one view's denoiser (and its FP16 GPU variant when ``fp16``), frame decoder and noise schedule into
    ``root/cine/<view>/``, each graph checked against torch; register the graphs in ``models`` and return the view's
    entry of the manifest's ``cine`` section (its ECG encoder graph, ``encoder_rel``, is exported by the caller)."""
    import torch

    from cardiacnets.export.onnx_export import export_unet, export_vae_decoder
    from cardiacnets.export.precision import convert_to_fp16

    view = pipeline.config.view
    (root / "cine" / view).mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        n_tokens = int(pipeline.ecg_encoder.forward_tokens(torch.zeros(1, 1, 12, 5000)).shape[1])
    unet_rel = f"cine/{view}/unet.onnx"
    unet = export_unet(pipeline.denoiser, root / unet_rel, n_tokens=n_tokens, weights_fp16=weights_fp16)
    models[f"cine_{view}_unet"] = unet.manifest_entry(unet_rel)
    if fp16:  # GPU variant; a CPU-only bundle can leave it out (TensorRT can also build from the FP32 graph)
        counts = convert_to_fp16(root / unet_rel, root / f"cine/{view}/unet.fp16.onnx")
        models[f"cine_{view}_unet"]["variants"] = {
            "fp16": {"file": f"cine/{view}/unet.fp16.onnx", "precision": "fp16", "target": "gpu", "conversion": counts}
        }
    c, f, h, w = pipeline.config.latent_shape
    vae_rel = f"cine/{view}/vae_decoder.onnx"
    vae = export_vae_decoder(pipeline.vae, root / vae_rel, latent_hw=(h, w), weights_fp16=weights_fp16)
    models[f"cine_{view}_vae_decoder"] = vae.manifest_entry(vae_rel)
    scheduler_rel = f"cine/{view}/scheduler_config.json"
    (root / scheduler_rel).write_text(json.dumps(pipeline.scheduler_config, indent=2) + "\n")
    return {
        "ecg_encoder": encoder_rel,
        "unet": unet_rel,
        "vae_decoder": vae_rel,
        "n_tokens": n_tokens,
        "latent_shape": [c, f, h, w],
        "cine_shape": [pipeline.config.num_frames, pipeline.config.height, pipeline.config.width],
        "default_scheduler": pipeline.default_scheduler,
        "scheduler_config": scheduler_rel,
        "classifier_free_guidance": "batch [latents, latents] with drop_condition [True]*B + [False]*B",
    }


__all__ = ["NOT_FOR_CLINICAL_USE", "build_bundle", "label_spec", "load_screening", "resolve_model_dir"]
