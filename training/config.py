"""Run configuration: YAML defaults, a user YAML, CLI flags and ``--set key=value`` overrides, validated strictly.

Precedence (later wins): the stage's ``training/configs/<stage>.yaml`` (or, with ``--resume``, the run's saved
``config.yaml``), ``--config FILE``, the CLI flags, then each ``--set``. Values of ``--set`` are parsed as YAML
(``--set train.lr=3e-4``, ``--set train.betas=[0.9,0.95]``). Unknown keys raise :class:`ConfigError`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cardiacnets.errors import ConfigError
from cardiacnets.models._config import config_from_dict, config_to_dict

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


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"``, creating intermediate mappings."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"invalid config key {key!r}")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {key!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = value


def parse_set(items: list[str]) -> list[tuple[str, Any]]:
    """``["train.lr=1e-4", ...]`` -> ``[("train.lr", 0.0001), ...]``; values parsed as YAML."""
    parsed = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    return parsed


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
        data = _read_yaml(saved)
    else:
        default = CONFIG_DIR / f"{stage}.yaml"
        data = _read_yaml(default) if default.is_file() else {}
    if config_file is not None:
        data = _deep_merge(data, _read_yaml(Path(config_file)))
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    for key, value in parse_set(sets or []):
        set_dotted(data, key, value)
    if data.get("stage", stage) != stage:
        raise ConfigError(f"config is for stage {data.get('stage')!r}, not {stage!r}")
    data["stage"] = stage
    return config_from_dict(RunConfig, data, where="config")


def dump_config(config: RunConfig) -> str:
    """YAML text of the resolved config."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


__all__ = ["DataConfig", "RunConfig", "TrainConfig", "dump_config", "parse_set", "resolve_config", "set_dotted"]
