"""Batches for the training loop: the resumable distributed batch order and moving batches to the device.

This module owns the data order of a run. :class:`StatefulBatchSampler` makes the order a pure function of (seed,
epoch, rank); :class:`BatchStream` is the endless stream of training batches that knows its position (epoch, batches
consumed in the epoch), which is what a checkpoint records for an exact resume; :class:`DeviceLoader` feeds the
validation loader to a task on the device, optionally capped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cardiacnets.errors import ConfigError
from cardiacnets.training.config import RunConfig
from cardiacnets.training.task import Task

__all__ = ["BatchStream", "DeviceLoader", "StatefulBatchSampler", "to_device"]


class StatefulBatchSampler:
    """Distributed, resumable batch sampler over ``n`` items: yields lists of indices for one rank.

    Epoch ``e`` uses the permutation drawn from seed ``seed * 1_000_003 + e``; global batch ``i`` is
    ``perm[i*B*W : (i+1)*B*W]`` and rank ``r`` takes its ``r``-th slice of ``B`` (DistributedSampler-equivalent;
    the incomplete last global batch is dropped). Starting at ``start_batch`` skips already consumed batches.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        if self.batches_per_epoch() < 1:
            raise ConfigError(
                f"the training split has {n} items, fewer than one global batch "
                f"({batch_size} x {world_size} ranks); lower --batch-size or add subjects"
            )

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        global_batch = self.batch_size * self.world_size
        for i in range(self.start_batch, self.batches_per_epoch()):
            start = i * global_batch + self.rank * self.batch_size
            yield perm[start : start + self.batch_size]


class BatchStream:
    """Endless stream of training batches that knows its position (epoch, batches consumed in the epoch)."""

    def __init__(
        self, dataset: Dataset, cfg: RunConfig, task: Task, rank: int, world: int, epoch: int = 0, position: int = 0
    ) -> None:
        self.dataset, self.cfg, self.task, self.rank, self.world = dataset, cfg, task, rank, world
        self.epoch, self.position = epoch, position
        self._it: Iterator | None = None

    def _loader(self) -> Iterator:
        sampler = StatefulBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            self.cfg.train.batch_size,
            seed=self.cfg.train.seed,
            epoch=self.epoch,
            start_batch=self.position,
            rank=self.rank,
            world_size=self.world,
        )
        workers = self.cfg.data.num_workers
        # An own generator: creating a loader iterator must not draw from the global RNG (exact resume).
        generator = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + self.epoch + 7919 * self.rank)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=self.task.collate,
            prefetch_factor=2 if workers else None,
            generator=generator,
        )
        return iter(loader)

    def next(self) -> dict[str, Any]:
        while True:
            if self._it is None:
                self._it = self._loader()
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                self.epoch += 1
                self.position = 0
                continue
            self.position += 1
            return batch


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors, possibly nested in dicts, lists and tuples) with every tensor moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class DeviceLoader:
    """Iterates a loader, moving batches to ``device``, optionally capped at ``max_batches``."""

    def __init__(self, loader: DataLoader, device: torch.device, max_batches: int | None) -> None:
        self.loader, self.device, self.max_batches = loader, device, max_batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, batch in enumerate(self.loader):
            if self.max_batches is not None and i >= self.max_batches:
                break
            yield to_device(batch, self.device)

    def __len__(self) -> int:
        n = len(self.loader)
        return n if self.max_batches is None else min(n, self.max_batches)
