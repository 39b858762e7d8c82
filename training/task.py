"""The :class:`Task` contract between a training stage and the shared loop.

This module owns what a stage must provide: the model, the training and validation datasets, the named losses of a
batch (``training_forward``; the key ``loss`` is optimised), the validation metrics (``evaluate``; the metric
``selection_metric`` picks the best checkpoint), the artefacts and metadata saved with the best model, and how the
task is built from a resolved :class:`~cardiacnets.training.config.RunConfig` (:meth:`Task.from_run_config`, what the
stage registry calls). Everything else (optimiser, schedule, checkpoints, logs) belongs to the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from cardiacnets.training.config import RunConfig

__all__ = ["Task"]


class Task:
    """Base class of a training stage. Subclasses set ``model`` and implement the methods that raise.

    ``forward_model`` is the module to call in :meth:`training_forward`: the loop sets it to the DDP wrapper of
    ``model`` under ``torchrun`` (so gradients are synchronised) and to ``model`` itself otherwise.
    """

    name: str = "task"
    selection_metric: str = "val_loss"
    selection_mode: str = "min"  # "min" or "max"
    model: nn.Module
    forward_model: nn.Module

    @classmethod
    def from_run_config(cls, cfg: RunConfig) -> Task:
        """The task of a resolved run config; by default ``cls(cfg)``. Stages built from other inputs override it."""
        return cls(cfg)  # type: ignore[call-arg]

    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def val_dataset(self) -> Dataset:
        raise NotImplementedError

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Named losses of one micro-batch (already on the device); ``loss`` is optimised."""
        raise NotImplementedError

    def evaluate(self, loader: DataLoader) -> dict[str, float]:
        """Metrics over the validation loader (model in eval mode, no grad); must include ``selection_metric``."""
        raise NotImplementedError

    def on_evaluate(self, run_dir: Path, step: int) -> None:
        """Optional artefacts at each evaluation (images...). Runs on rank 0 after :meth:`evaluate`."""

    def best_model(self) -> nn.Module:
        """The module saved as ``best/`` (a registered model type)."""
        return self.model

    def best_metadata(self) -> dict[str, Any]:
        """JSON-serialisable metadata saved with the best model (preprocessing config, label names...)."""
        return {}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return torch.utils.data.default_collate(items)
