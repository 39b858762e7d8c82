"""What a run writes to resume and to keep: ``checkpoints/last.pt`` with every rank's RNG state, and ``best/``.

This module owns the checkpoint format (:data:`CHECKPOINT_VERSION`; ``torch.save`` of plain types, so
``torch.load(weights_only=True)`` reads it), capturing and restoring the RNG states of python, numpy and torch as
plain values (gathered from every rank for an exact resume), the atomic writes of ``last.pt`` and the swap of
``best/`` (written to ``best.tmp``, then renamed), and reading a checkpoint back with user-facing errors.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cardiacnets.errors import CheckpointError
from cardiacnets.models.registry import save_pretrained

CHECKPOINT_VERSION = 1

__all__ = [
    "CHECKPOINT_VERSION",
    "atomic_torch_save",
    "check_world_size",
    "load_checkpoint",
    "rng_state",
    "rng_to_tensors",
    "save_best",
    "set_rng_state",
]


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain Python values (picklable by ``all_gather_object`` without tensors)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": bytes(torch.get_rng_state().numpy().tobytes()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [bytes(s.numpy().tobytes()) for s in torch.cuda.get_rng_state_all()]
    return state


def rng_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint form: byte strings and key lists as tensors (``torch.load(weights_only=True)`` reads them)."""
    out = dict(state)
    out["numpy"] = [*state["numpy"][:1], torch.tensor(state["numpy"][1], dtype=torch.int64), *state["numpy"][2:]]
    out["torch"] = torch.frombuffer(bytearray(state["torch"]), dtype=torch.uint8)
    if "cuda" in state:
        out["cuda"] = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in state["cuda"]]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore this process's RNG states from their checkpoint form (:func:`rng_to_tensors`)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary beside ``path``, then rename: a killed process never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (on the CPU), checked for its version."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-facing error
        raise CheckpointError(f"{path} cannot be loaded: {exc}") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {state.get('version')!r}")
    return state


def check_world_size(state: dict[str, Any], path: Path, world_size: int) -> None:
    """A run resumes with as many processes as wrote its checkpoint (the data order and RNG states are per rank)."""
    if state["world_size"] != world_size:
        raise CheckpointError(
            f"{path} was written by {state['world_size']} processes; resume with the same number (got {world_size})"
        )


def save_best(model: nn.Module, run_dir: Path, metadata: dict[str, Any]) -> None:
    """Write ``run_dir/best`` atomically: into ``best.tmp``, then swap directories."""
    tmp, best, old = run_dir / "best.tmp", run_dir / "best", run_dir / "best.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp, metadata=metadata)
    shutil.rmtree(old, ignore_errors=True)
    if best.exists():
        os.replace(best, old)
    os.replace(tmp, best)
    shutil.rmtree(old, ignore_errors=True)
