"""The ``cntrain`` stage registry: stage name -> task class and task-config dataclass, and running a stage.

This module owns which training stages exist and how one is run from the command line's values: resolve the
:class:`~cardiacnets.training.config.RunConfig` (stage YAML < ``--config`` < flags < ``--set``, or the run's saved
config on ``--resume``), validate its ``task:`` section against the stage's config dataclass, seed, build the task
(:meth:`~cardiacnets.training.task.Task.from_run_config`) and train it with the shared loop. A new stage is one task
module plus one line in :data:`STAGES`; classes are named as ``"module:Class"`` and imported on first use, so that
``cntrain --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardiacnets.config import config_from_dict
from cardiacnets.errors import ConfigError
from cardiacnets.training.config import RunConfig, resolve_config

if TYPE_CHECKING:
    from cardiacnets.training.task import Task

__all__ = ["STAGES", "Stage", "build_task", "get_stage", "resolve_stage_config", "train_stage"]

_TASKS = "cardiacnets.training.tasks"


@dataclass(frozen=True)
class Stage:
    """One training stage: its :class:`Task` subclass and the dataclass of its ``task:`` config section."""

    task: str  # "module:Class" of the Task subclass
    options: str  # "module:Class" of the task-config dataclass

    def task_class(self) -> type[Task]:
        return _load(self.task)

    def options_class(self) -> type:
        return _load(self.options)

    def parse_options(self, cfg: RunConfig) -> Any:
        """The run's ``task:`` section as the stage's config dataclass (strict: unknown keys raise)."""
        return config_from_dict(self.options_class(), cfg.task, where="task")


STAGES: dict[str, Stage] = {
    "cmr-ssl": Stage(f"{_TASKS}.cmr_ssl:CmrSslTask", f"{_TASKS}.cmr_ssl:CmrSslTaskConfig"),
    "align": Stage(f"{_TASKS}.align:AlignTask", f"{_TASKS}.align:AlignTaskConfig"),
    "vae": Stage(f"{_TASKS}.vae:VaeTask", f"{_TASKS}.vae:VaeTaskConfig"),
    "diffusion": Stage(f"{_TASKS}.diffusion:DiffusionTask", f"{_TASKS}.diffusion:DiffusionTaskConfig"),
    "finetune": Stage(f"{_TASKS}.finetune:FinetuneTask", f"{_TASKS}.finetune:FinetuneTaskConfig"),
}


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def get_stage(name: str) -> Stage:
    """The registered stage ``name``; an unknown name raises with the list of known ones."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}")
    return STAGES[name]


def build_task(cfg: RunConfig) -> Task:
    """The task of ``cfg.stage`` built from ``cfg`` (its ``task:`` section validated first)."""
    stage = get_stage(cfg.stage)
    stage.parse_options(cfg)
    return stage.task_class().from_run_config(cfg)


def resolve_stage_config(
    stage: str,
    flags: dict[str, Any],
    *,
    config_file: Path | None = None,
    sets: list[str] | None = None,
    resume: bool = False,
) -> RunConfig:
    """The run config of a stage command; with ``resume`` the saved config of the run in ``flags["out"]``."""
    resume_dir = None
    if resume:
        if not flags.get("out"):
            raise ConfigError("--resume needs --out DIR (the run directory to continue)")
        resume_dir = Path(flags["out"])
    return resolve_config(stage, config_file=config_file, flags=flags, sets=sets or [], resume_dir=resume_dir)


def train_stage(
    stage: str,
    flags: dict[str, Any],
    *,
    config_file: Path | None = None,
    sets: list[str] | None = None,
    resume: bool = False,
) -> dict[str, Any] | None:
    """Resolve, build and train one stage; the run summary on rank 0 (``None`` on the other ranks of ``torchrun``).

    The process group of a ``torchrun`` job is closed before returning.
    """
    import torch.distributed as dist

    from cardiacnets.training.loop import run_training, seed_everything

    cfg = resolve_stage_config(stage, flags, config_file=config_file, sets=sets, resume=resume)
    seed_everything(cfg.train.seed)  # the same initial weights on every rank and on every run of this config
    task = build_task(cfg)
    result = run_training(task, cfg, resume=resume)
    summary = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        summary = {
            "run_dir": str(result.run_dir),
            "step": result.step,
            "stopped_early": result.stopped_early,
            "best_step": result.best_step,
            "selection_metric": task.selection_metric,
            "best_value": result.best_value,
            "last_metrics": result.last_metrics,
            "wall_s": round(result.wall_s, 2),
        }
    if dist.is_initialized():
        dist.destroy_process_group()
    return summary
