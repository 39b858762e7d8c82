"""Replace one part of a bundle without rebuilding the rest: one view's cine generator (``cnexport
bundle-update-cine``) or the screening model (``cnexport bundle-update-screening``).

Screening model: the new model's graph is exported and parity-checked as :func:`~cardiacnets.export.bundle_builder.
build_bundle` exports it (FP32; no precision variants), its thresholds, training data and declared lead sets replace
the old ones, and the trust artefacts are re-fitted for it (for every lead set it declares); the cine graphs stay
byte for byte. The new model must preprocess ECGs as the bundle does (the cine generators read the same input).

Cine generator:
The screening graph, trust artefacts and the other view stay byte for byte. The view's denoiser and frame decoder are
exported from an ``EcgToCmrPipeline`` exactly as :func:`~cardiacnets.export.bundle_builder.build_bundle` exports them
(:func:`~cardiacnets.export.bundle_builder.export_cine_view`: parity against torch, FP16-stored weights when asked),
the manifest's entries, file hashes and digest are recomputed by :func:`~cardiacnets.bundle.write_manifest`, and the
result is verified before it replaces anything.

The bundle's ECG encoder graph is shared by its views, so the new generator must be conditioned on what that graph
computes: its ECG encoder's tokens are compared with the graph's on seeded ECG-like inputs, and a pipeline whose
encoder differs is refused (no half-consistent bundle).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import BundleIntegrityError, InputError

logger = logging.getLogger(__name__)

#: Largest token difference accepted between the pipeline's ECG encoder and the bundle's graph (FP16-stored weights
#: in the graph differ from FP32 torch by about 1e-3; a different encoder by orders of magnitude more).
ENCODER_ATOL = 0.02


def _encoder_difference(bundle_root: Path, encoder_rel: str, encoder: Any, n: int = 3, seed: int = 0) -> float:
    """Largest |token difference| between the bundle's ECG encoder graph and ``encoder`` on ``n`` seeded inputs."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    # smooth, ECG-scaled inputs (a sum of a few sines per lead, about 1 mV) rather than white noise
    ecg = sum(
        rng.normal(0, 0.4, (n, 12, 1)) * np.sin(2 * np.pi * rng.uniform(0.5, 15, (n, 12, 1)) * t) for _ in range(4)
    )
    ecg = ecg.astype(np.float32)
    session = ort.InferenceSession(str(bundle_root / encoder_rel), providers=["CPUExecutionProvider"])
    graph = session.run(["tokens"], {"ecg": ecg})[0]
    with torch.no_grad():
        tokens = encoder.forward_tokens(torch.from_numpy(ecg)[:, None]).numpy()
    if graph.shape != tokens.shape:
        return float("inf")
    return float(np.abs(graph - tokens).max())


@contextlib.contextmanager
def editing_copy(source: Path, out: Path, *, overwrite: bool) -> Iterator[Path]:
    """A copy of the bundle ``source`` without its manifest and signature, at ``out.partial``, to edit; removed when
    the block fails. End the block with :func:`replace_with_copy`. A non-empty ``out`` other than ``source`` is
    refused unless ``overwrite``."""
    from cardiacnets.bundle import MANIFEST_NAME

    if out.exists() and any(out.iterdir()) and not overwrite and out.resolve() != source.resolve():
        raise InputError(f"{out} exists and is not empty; choose another --out or pass --force")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(MANIFEST_NAME, "signature.json"))
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def replace_with_copy(
    partial: Path, out: Path, manifest: dict[str, Any], *, version: str | None = None, change: str | None = None
) -> None:
    """Write ``manifest`` into the edited copy ``partial`` (files re-hashed, new digest; with ``version``, and a
    ``history`` entry saying ``change``), verify it, and put it in place of ``out``."""
    from cardiacnets.bundle import verify_bundle, write_manifest
    from cardiacnets.export.bundle_builder import tool_versions
    from cardiacnets.reporting import json_ready

    if change is not None:
        utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        history = [*(manifest.get("history") or []), {"utc": utc, "from_version": manifest.get("version"),
                                                      "change": change}]  # fmt: skip
        manifest.update(history=history, tools=tool_versions())
    if version is not None:
        manifest["version"] = version
    for key in ("files", "digest", "bundle_format_version"):
        manifest.pop(key, None)
    write_manifest(partial, json_ready(manifest))
    problems = verify_bundle(partial)
    if problems:
        raise BundleIntegrityError(f"the new bundle failed verification: {problems[0]}")
    if out.exists():
        shutil.rmtree(out)
    partial.replace(out)


def update_bundle_cine(
    bundle: str | os.PathLike[str],
    pipeline_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    version: str,
    weights_fp16: bool | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Copy ``bundle`` to ``out`` with the cine generator of the pipeline's view replaced; return the new manifest.

    Args:
        bundle: a bundle directory that verifies and has a cine model for the pipeline's view.
        pipeline_dir: an ``EcgToCmrPipeline`` directory (``save_pretrained``) of that view.
        out: the new bundle directory (``out == bundle`` replaces it in place, atomically).
        version: the new bundle's version string.
        weights_fp16: store the new graphs' weights as FP16; default: as the replaced UNet graph stored them.
        overwrite: replace a non-empty ``out``.
    """
    from cardiacnets.bundle import load_bundle
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.export.bundle_builder import export_cine_view

    source, out = Path(bundle), Path(out)
    manifest = json.loads(json.dumps(load_bundle(source).manifest))  # verified, and a deep copy
    pipeline = EcgToCmrPipeline.from_pretrained(pipeline_dir)
    view = pipeline.config.view
    old = ((manifest.get("cine") or {}).get("views") or {}).get(view)
    if old is None:
        raise InputError(f"bundle {source} has no cine model for view {view!r} to replace")
    difference = _encoder_difference(source, old["ecg_encoder"], pipeline.ecg_encoder)
    if not difference <= ENCODER_ATOL:
        raise InputError(
            f"the pipeline's ECG encoder differs from the bundle's {old['ecg_encoder']} (max token difference"
            f" {difference:.3g} > {ENCODER_ATOL}); train the generator on that encoder"
        )
    unet_entry = manifest["models"][f"cine_{view}_unet"]
    if weights_fp16 is None:
        weights_fp16 = (unet_entry.get("weights_storage") or {}).get("dtype") == "float16"
    with editing_copy(source, out, overwrite=overwrite) as partial:
        for variant in (unet_entry.get("variants") or {}).values():
            (partial / variant["file"]).unlink(missing_ok=True)
        models = manifest["models"]
        entry = export_cine_view(pipeline, partial, models, old["ecg_encoder"], fp16=bool(unet_entry.get("variants")),
                                 weights_fp16=weights_fp16)  # fmt: skip
        models[f"cine_{view}_unet"]["encoder_parity"] = {"max_abs": difference, "atol": ENCODER_ATOL}
        manifest["cine"]["views"][view] = {**old, **entry}
        replace_with_copy(partial, out, manifest, version=version,
                          change=f"cine view {view!r} replaced from {Path(pipeline_dir)}")  # fmt: skip
    logger.info("bundle %s: cine view %s replaced (encoder token difference %.2g)", out, view, difference)
    return load_bundle(out).manifest


def update_bundle_screening(
    bundle: str | os.PathLike[str],
    screening: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    version: str,
    trust_data: Any = None,
    overwrite: bool = False,
    progress: Any = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Copy ``bundle`` to ``out`` with its screening model replaced by ``screening`` (a saved screening model or a
    fine-tuning run); return ``(manifest, trust evaluation or None)``.

    ``trust_data`` (:class:`~cardiacnets.export.trust_fit.TrustData`): re-fit the trust artefacts for the new model;
    required when the bundle had them (old artefacts describe the old model and are never kept). ``out == bundle``
    replaces the bundle in place, atomically.
    """
    from cardiacnets.bundle import load_bundle
    from cardiacnets.export.bundle_builder import (
        _screening_entry,
        load_screening,
        preprocess_from_metadata,
        thresholds_from_metadata,
        training_data_from_metadata,
    )
    from cardiacnets.export.trust_fit import attach_trust

    source, out = Path(bundle), Path(out)
    manifest = json.loads(json.dumps(load_bundle(source).manifest))  # verified, and a deep copy
    if manifest.get("trust") and trust_data is None:
        raise InputError(f"bundle {source} has trust artefacts: give the cohort to re-fit them for the new model")
    model, metadata, model_dir = load_screening(screening)
    preprocess = preprocess_from_metadata(metadata)
    if manifest.get("cine") and preprocess != manifest.get("preprocess"):
        raise InputError(
            f"the model in {screening} preprocesses ECGs differently from bundle {source}, whose cine generators read"
            " the same input; build a new bundle with cnexport bundle instead"
        )
    thresholds, thresholds_source = thresholds_from_metadata(metadata)
    from cardiacnets.bundle import LEAD_SET_MODEL

    old = manifest["models"]["screening"]
    old_files = [old["file"], *(v["file"] for v in (old.get("variants") or {}).values())]
    # the new model's own lead sets replace the old ones, and with them any separate reduced-lead-set model
    reduced_model = manifest["models"].pop(LEAD_SET_MODEL, None)
    old_files += [reduced_model["file"]] if reduced_model else []
    old_files += [manifest["trust"]["file"]] if manifest.get("trust") else []
    evaluation = None
    with editing_copy(source, out, overwrite=overwrite) as partial:
        for rel in old_files:
            (partial / rel).unlink(missing_ok=True)
        entry, _ = _screening_entry(model, model_dir, partial, (), None)
        manifest["models"]["screening"] = entry
        manifest.update(preprocess=preprocess, thresholds=thresholds, thresholds_source=thresholds_source,
                        training_data=training_data_from_metadata(metadata, None), precision_report=None)  # fmt: skip
        for key in ("trust", "lead_sets"):
            manifest.pop(key, None)
        if metadata.get("lead_sets"):
            manifest["lead_sets"] = list(metadata["lead_sets"])
        if trust_data is not None:
            manifest, evaluation = attach_trust(partial, manifest, trust_data, progress=progress)
        change = f"screening model replaced from {Path(screening)}" + (", trust re-fitted" if evaluation else "")
        replace_with_copy(partial, out, manifest, version=version, change=change)
    logger.info("bundle %s: screening model replaced from %s", out, screening)
    return load_bundle(out).manifest, evaluation


def add_lead_set_model(
    bundle: str | os.PathLike[str],
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    version: str,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Copy ``bundle`` to ``out`` with the screening model of ``source`` (a bundle whose model was fine-tuned with
    lead masking and whose trust artefacts were fitted per lead set) added for the reduced lead sets only; return the
    new manifest. The bundle's own model, thresholds and trust artefacts stay those of 12-lead ECGs, byte for byte.

    Both bundles must verify and preprocess ECGs the same way; ``bundle`` must have trust artefacts (the 12-lead
    ones) and ``source`` artefacts for each of its reduced lead sets.
    """
    from cardiacnets.bundle import LEAD_SET_MODEL, load_bundle
    from cardiacnets.leadsets import DEFAULT_LEAD_SET
    from cardiacnets.trust import TRUST_FILE

    root, donor, out = Path(bundle), Path(source), Path(out)
    manifest = json.loads(json.dumps(load_bundle(root).manifest))
    other = load_bundle(donor).manifest
    reduced = [ls for ls in other.get("lead_sets") or [] if ls != DEFAULT_LEAD_SET]
    if not reduced:
        raise InputError(f"bundle {donor} declares no reduced lead set: its model was not trained with lead masking")
    if not manifest.get("trust"):
        raise InputError(f"bundle {root} has no trust artefacts; fit them first (cnexport trust)")
    donor_trust = json.loads((donor / other["trust"]["file"]).read_text()) if other.get("trust") else {}
    lacking = [ls for ls in reduced if ls not in (donor_trust.get("lead_sets") or {})]
    if lacking:
        raise InputError(f"bundle {donor} has no trust artefacts for lead set(s) {', '.join(lacking)}")
    if other.get("preprocess") != manifest.get("preprocess"):
        raise InputError(f"bundles {root} and {donor} preprocess ECGs differently; one bundle needs one preprocessing")
    graph = "screening.lead_sets.onnx"
    trust = json.loads((root / manifest["trust"]["file"]).read_text())
    trust["lead_sets"] = {ls: {**donor_trust["lead_sets"][ls],
                               "fitted_on": {**donor_trust["lead_sets"][ls]["fitted_on"], "graph": graph}}
                          for ls in reduced}  # fmt: skip
    donor_model = other["models"].get(LEAD_SET_MODEL) or other["models"]["screening"]  # what its lead sets ran on
    with editing_copy(root, out, overwrite=overwrite) as partial:
        shutil.copyfile(donor / donor_model["file"], partial / graph)
        (partial / TRUST_FILE).write_text(json.dumps(trust, indent=1, sort_keys=True) + "\n")
        entry = {**donor_model, "file": graph, "variants": {}, "default_variant": "fp32",
                 "lead_sets": reduced, "from_bundle": load_bundle(donor).identity,
                 "training_data": other.get("training_data")}  # fmt: skip
        manifest["models"][LEAD_SET_MODEL] = entry
        manifest["lead_sets"] = [DEFAULT_LEAD_SET, *reduced]
        manifest["trust"] = {**manifest["trust"], "file": TRUST_FILE,
                             "lead_sets": {ls: other["trust"]["lead_sets"][ls] for ls in reduced}}  # fmt: skip
        change = f"screening model for lead sets {', '.join(reduced)} added from {donor}"
        replace_with_copy(partial, out, manifest, version=version, change=change)
    logger.info("bundle %s: %s", out, change)
    return load_bundle(out).manifest
