"""The process group of a run: single process, or DDP under ``torchrun`` (NCCL on GPUs, gloo on CPU).

This module owns reading the ``torchrun`` environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), starting the
process group and choosing this process's device; the loop asks :class:`DistInfo` who it is (``main`` is rank 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed"]


@dataclass
class DistInfo:
    """This process's place in the job; ``enabled`` when more than one process trains."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> tuple[DistInfo, torch.device]:
    """Join the ``torchrun`` process group (when ``WORLD_SIZE`` > 1) and pick the device: ``cuda:LOCAL_RANK`` or CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        enabled=world > 1,
    )
    if torch.cuda.is_available():
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return info, device
