"""The training run configuration: the dataclasses every ``cntrain`` stage shares, and how a run's config resolves.

This module owns :class:`RunConfig` (with :class:`DataConfig` and :class:`TrainConfig`; a stage's own options live in
its ``task:`` section and are validated by the stage's task-config dataclass, see
:mod:`cardiacnets.training.stages`) and :func:`resolve_config`. Precedence (later wins): the stage's
``training/configs/<stage>.yaml`` (or, with ``--resume``, the run's saved ``config.yaml``), ``--config FILE``, the CLI
flags, then each ``--set``, merged by :func:`cardiacnets.config.layer_config`. Values of ``--set`` are parsed as YAML
(``--set train.lr=3e-4``, ``--set train.betas=[0.9,0.95]``). Unknown keys raise :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cardiacnets.config import (
    config_from_dict,
    config_to_yaml,
    layer_config,
    parse_set,
    read_yaml,
    set_dotted,
)
from cardiacnets.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    """Where the cohort comes from: ``synthetic`` (generated on the fly) or a converted dataset directory."""

    source: str = "synthetic"
    n_subjects: int | None = None
    seed: int = 0
    num_workers: int = 0
    # Keep converted items in memory after their first use (per process): the synthetic cohort renders each subject
    # on the fly (~0.3 s with cines), so small CPU runs that revisit subjects every epoch get much faster.
    cache: bool = False
    train_split: str = "train"
    val_split: str = "val"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by every stage. Steps count optimiser updates."""

    max_steps: int = 1000
    batch_size: int = 8
    eval_batch_size: int = 16
    lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    grad_accum: int = 1
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    eval_every: int = 100
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    max_eval_batches: int | None = None
    progress: bool = True
    # Stop right after this step WITHOUT a final checkpoint, exactly as if the process were killed there (tests and
    # pre-emptible queues); ``--resume`` continues from the last periodic checkpoint.
    stop_after_step: int | None = None

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        for name in (
            "max_steps",
            "batch_size",
            "eval_batch_size",
            "grad_accum",
            "eval_every",
            "ckpt_every",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.lr <= 0:
            raise ConfigError("train.warmup_steps must be >= 0 and train.lr > 0")


@dataclass
class RunConfig:
    """Everything a run needs; written resolved as ``config.yaml`` in the run directory."""

    stage: str
    out: str = "runs/run"
    model: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: dict[str, Any] = field(default_factory=dict)


def resolve_config(
    stage: str,
    *,
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    resume_dir: Path | None = None,
) -> RunConfig:
    """Merge the layers described in the module docstring and validate them into a :class:`RunConfig`."""
    if resume_dir is not None:
        saved = Path(resume_dir) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"cannot resume: {saved} not found")
        defaults = read_yaml(saved)
    else:
        defaults = read_yaml(CONFIG_DIR / f"{stage}.yaml", missing_ok=True)
    data = layer_config(defaults, config_file=config_file, flags=flags, sets=sets)
    if data.get("stage", stage) != stage:
        raise ConfigError(f"config is for stage {data.get('stage')!r}, not {stage!r}")
    data["stage"] = stage
    return config_from_dict(RunConfig, data, where="config")


def dump_config(config: RunConfig) -> str:
    """YAML text of the resolved config."""
    return config_to_yaml(config)


__all__ = ["DataConfig", "RunConfig", "TrainConfig", "dump_config", "parse_set", "resolve_config", "set_dotted"]
