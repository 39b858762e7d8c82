"""Checkpoints shipped inside the package: the default bundle's aligned ECG encoder (``cntrain finetune --init
default``).

A shipped checkpoint is a saved-model directory (``config.json`` + ``model.safetensors``, as an alignment run's
``best/`` holds, loadable by :func:`~cardiacnets.models.registry.from_pretrained`) plus ``manifest.json``: the sha256
and size of both files, where the weights came from, and a ``digest`` of the manifest itself (the sha256 of its
canonical JSON, as a bundle's). Loading verifies every hash first, so a changed or corrupted file is refused rather
than fine-tuned from.

``aligned-ecg-encoder/`` is the frozen aligned ECG encoder of the demo recipe's alignment run
(``scripts/demo_model.sh``), recovered from the default bundle's ``cine/ecg_encoder.onnx`` by
``scripts/extract_aligned_encoder.py`` (that graph stored its weights as FP16, computing in FP32; the checkpoint keeps
them as FP16, exactly). It is the ECG tower alone: the alignment's projection head and the CMR towers are not in the
bundle, so it loads as an ``EcgViT``, not an ``AlignmentModel``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cardiacnets.bundle import manifest_digest
from cardiacnets.errors import CheckpointError
from cardiacnets.files import atomic_write_text, sha256_file
from cardiacnets.models.ecg_vit import EcgViT

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "cardiacnets-shipped-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: The files a shipped checkpoint's manifest lists (the saved model).
CHECKPOINT_FILES = ("config.json", "model.safetensors")

__all__ = [
    "aligned_encoder_path",
    "load_aligned_encoder",
    "verify_checkpoint",
    "write_checkpoint_manifest",
]


def aligned_encoder_path() -> Path:
    """The shipped aligned ECG encoder's directory (``cardiacnets/data/aligned-ecg-encoder``)."""
    return Path(__file__).resolve().parents[1] / "data" / "aligned-ecg-encoder"


def write_checkpoint_manifest(directory: str | os.PathLike[str], source: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` beside a saved model: sha256 and size of its files, ``source`` (JSON: where the weights
    came from) and the manifest's digest; returns what was written."""
    directory = Path(directory)
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"{directory}: not a saved model (missing {', '.join(missing)})")
    manifest: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "files": {
            name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
            for name in CHECKPOINT_FILES
        },
        "source": source,
    }
    manifest["digest"] = manifest_digest(manifest)
    atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a shipped checkpoint once its digest and every file's sha256 check out; raises
    :class:`~cardiacnets.errors.CheckpointError` naming the first problem otherwise."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} manifest")
    if manifest.get("format_version", 0) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {manifest.get('format_version')} is newer than this toolkit")
    if manifest.get("digest") != manifest_digest(manifest):
        raise CheckpointError(f"{path} was edited after it was written (its digest does not match its content)")
    files = manifest.get("files") or {}
    for name in CHECKPOINT_FILES:
        entry = files.get(name)
        target = directory / name
        if not isinstance(entry, dict) or not target.is_file() or sha256_file(target) != entry.get("sha256"):
            raise CheckpointError(f"{target}: missing, or its sha256 does not match {path} (changed or corrupted)")
    return manifest


def load_aligned_encoder(directory: str | os.PathLike[str] | None = None) -> tuple[EcgViT, dict[str, Any]]:
    """The shipped aligned ECG encoder (or the one in ``directory``), verified against its manifest, in eval mode,
    and a JSON description for run records: ``init: default``, the checkpoint's digest and weights' sha256, and the
    digest of the bundle the weights came from."""
    from cardiacnets.models.registry import from_pretrained

    directory = Path(directory) if directory is not None else aligned_encoder_path()
    manifest = verify_checkpoint(directory)
    model = from_pretrained(directory)
    if not isinstance(model, EcgViT):
        raise CheckpointError(f"{directory} holds a {type(model).__name__}, not an ECG encoder")
    source = manifest.get("source") or {}
    info = {
        "init": "default",
        "checkpoint": directory.name,
        "digest": manifest["digest"],
        "weights_sha256": manifest["files"]["model.safetensors"]["sha256"],
        "source_bundle": source.get("bundle"),
    }
    logger.info("aligned ECG encoder %s (digest %s)", directory, manifest["digest"][:12])
    return model, info
