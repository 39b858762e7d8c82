"""One plain training loop shared by every CardiacNets stage (CMR self-supervision, alignment, fine-tuning, diffusion).

A stage is a :class:`~cardiacnets.training.task.Task`: it owns the model and the datasets, turns a batch into named
losses and evaluates on the validation split. The loop (:class:`Trainer`, entered through :func:`run_training`) owns
everything else: AdamW with a pure :func:`lr_at` (linear warm-up, then cosine), gradient accumulation and clipping,
bf16 autocast on CUDA, DDP under ``torchrun`` (:mod:`~cardiacnets.training.distributed`), evaluation and
checkpointing at fixed step intervals (:mod:`~cardiacnets.training.checkpoint`), exact resume, CSV + TensorBoard logs
(:mod:`~cardiacnets.training.metrics_log`) and a progress bar on stderr.

Run directory::

    config.yaml            resolved config
    metrics.csv            long format: step, split, name, value
    tb/                    TensorBoard events
    checkpoints/last.pt    model, optimiser, step, data position, RNG states of every rank (torch.save, plain types)
    best/                  config.json + model.safetensors of the best validation step (+ metadata)

Exact resume: the data order is a pure function of (seed, epoch, rank) and the loop records how many batches of the
current epoch it consumed (:mod:`~cardiacnets.training.sampling`), so a resumed run draws the same batches; the RNG
states of every rank are restored, and ``metrics.csv`` / TensorBoard rows after the checkpoint are dropped, so a
killed-and-resumed run writes the same per-step losses as an uninterrupted one (bit-exact on CPU).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from cardiacnets.errors import CheckpointError, ConfigError
from cardiacnets.training.checkpoint import (
    CHECKPOINT_VERSION,
    atomic_torch_save,
    check_world_size,
    load_checkpoint,
    rng_state,
    rng_to_tensors,
    save_best,
    set_rng_state,
)
from cardiacnets.training.config import RunConfig, TrainConfig, dump_config
from cardiacnets.training.distributed import init_distributed
from cardiacnets.training.metrics_log import MetricsLog
from cardiacnets.training.sampling import BatchStream, DeviceLoader, StatefulBatchSampler, to_device
from cardiacnets.training.task import Task

logger = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``lr``, then cosine to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA). Call it before building a task so the initialisation is fixed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, tokens, position embeddings and bias tables (1-D or named so)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith(("token", "pos_embed", "bias_table")):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX; Linux ``/proc/cpuinfo``); None when unknown.
    Elsewhere PyTorch emulates bf16 autocast, which can make a CPU training step several times slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and precision in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress(enabled: bool):  # noqa: ANN202 - rich types are optional at import time
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


@dataclass
class TrainResult:
    """Summary of a finished (or stopped) run."""

    run_dir: Path
    step: int
    best_step: int | None
    best_value: float | None
    last_metrics: dict[str, float]
    stopped_early: bool
    wall_s: float


class Trainer:
    """Trains one task as one :class:`RunConfig` says, in ``cfg.out``; with ``resume``, from ``checkpoints/last.pt``.

    Building it prepares the run (process group, seeding, model on its device, optimiser, restored checkpoint,
    ``config.yaml``, datasets, logs); :meth:`fit` then trains to ``train.max_steps``. Every rank of a ``torchrun``
    job builds one, from a task already built identically on every rank.
    """

    def __init__(self, task: Task, cfg: RunConfig, *, resume: bool = False) -> None:
        self.t0 = time.time()
        self.task, self.cfg, self.tc, self.resume = task, cfg, cfg.train, resume
        self.dist, self.device = init_distributed()
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.step = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._check_run_dir()
        seed_everything(self.tc.seed + self.dist.rank)
        if self.device.type == "cpu" and self.tc.precision == "bf16" and cpu_has_native_bf16() is False:
            logger.warning(
                "train.precision=bf16 on a CPU without native bf16 (no AVX-512 BF16 or AMX): autocast is emulated"
                " and a step can be several times slower than with train.precision=fp32"
            )
        self._setup_model()
        epoch, position = self._restore() if resume else (0, 0)
        if self.dist.main:
            if not resume:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        self.train_set = task.train_dataset()
        self.val_set = task.val_dataset() if self.dist.main else None
        self.stream = BatchStream(
            self.train_set, cfg, task, self.dist.rank, self.dist.world, epoch=epoch, position=position
        )
        self.log = MetricsLog(self.run_dir, self.step if resume else None, enabled=self.dist.main)

    # ------------------------------------------------------------------------------------------------------ set-up
    def _check_run_dir(self) -> None:
        if self.dist.main:
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        if self.resume and not self.ckpt_path.is_file():
            raise CheckpointError(f"cannot resume: {self.ckpt_path} not found")
        if not self.resume and self.ckpt_path.is_file():
            raise CheckpointError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out"
            )

    def _setup_model(self) -> None:
        """Model on the device, its DDP wrapper as the task's ``forward_model`` under ``torchrun``, AdamW."""
        self.model = self.task.model.to(self.device)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.task.forward_model = self.forward_model
        tc = self.tc
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, tc.weight_decay),
            lr=lr_at(0, tc),
            betas=tc.betas,
            fused=self.device.type == "cuda",
        )
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    def _restore(self) -> tuple[int, int]:
        """Load ``last.pt`` into the model, optimiser, counters and this rank's RNGs; returns (epoch, position)."""
        state = load_checkpoint(self.ckpt_path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.best_value, self.best_step = state["best_value"], state["best_step"]
        check_world_size(state, self.ckpt_path, self.dist.world)
        set_rng_state(state["rng"][self.dist.rank])
        logger.info("resumed from step %d", self.step)
        return state["epoch"], state["position"]

    # ---------------------------------------------------------------------------------------------------- training
    def train_step(self) -> tuple[dict[str, float], float, float]:
        """One optimiser step over ``grad_accum`` micro-batches: ``(losses averaged over ranks, lr, grad norm)``."""
        tc = self.tc
        lr = lr_at(self.step, tc)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums: dict[str, float] = {}
        for micro in range(tc.grad_accum):
            batch = to_device(self.stream.next(), self.device)
            sync = micro == tc.grad_accum - 1 or not self.dist.enabled
            ctx = contextlib.nullcontext() if sync else self.forward_model.no_sync()  # type: ignore[operator]
            with ctx:
                with _autocast(self.device, tc.precision):
                    losses = self.task.training_forward(batch)
                (losses["loss"] / tc.grad_accum).backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / tc.grad_accum
        grad_norm = self._grad_norm()
        if not math.isfinite(sums["loss"]):
            raise FloatingPointError(f"non-finite loss at step {self.step + 1}: {sums}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return self._mean_over_ranks(sums), lr, grad_norm

    def _grad_norm(self) -> float:
        """Clip to ``train.grad_clip`` (when > 0) and return the total gradient norm before clipping."""
        if self.tc.grad_clip > 0:
            return float(torch.nn.utils.clip_grad_norm_(self.trainable, self.tc.grad_clip))
        norms = [p.grad.norm() for p in self.trainable if p.grad is not None]
        return float(torch.norm(torch.stack(norms))) if norms else 0.0

    def _mean_over_ranks(self, sums: dict[str, float]) -> dict[str, float]:
        if not self.dist.enabled:
            return sums
        names = sorted(sums)
        t = torch.tensor([sums[n] for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {n: float(v) / self.dist.world for n, v in zip(names, t.tolist(), strict=True)}

    # -------------------------------------------------------------------------------------- evaluation, checkpoints
    def evaluate(self, at_step: int) -> dict[str, float]:
        """Validation metrics on rank 0 (empty elsewhere); a new best selection value rewrites ``best/``."""
        metrics: dict[str, float] = {}
        if self.dist.main:
            metrics = self._validation_metrics(at_step)
            self._select(metrics, at_step)
        if self.dist.enabled:
            dist.barrier()
        return metrics

    def _validation_metrics(self, at_step: int) -> dict[str, float]:
        task, tc = self.task, self.tc
        assert self.val_set is not None
        loader = DataLoader(
            self.val_set,
            batch_size=tc.eval_batch_size,
            shuffle=False,
            collate_fn=task.collate,
            num_workers=self.cfg.data.num_workers,
            generator=torch.Generator().manual_seed(0),
        )
        self.model.eval()
        with torch.no_grad(), _autocast(self.device, tc.precision):
            metrics = task.evaluate(DeviceLoader(loader, self.device, tc.max_eval_batches))
        if task.selection_metric not in metrics:
            raise ConfigError(f"task {task.name} did not report its selection metric {task.selection_metric}")
        task.on_evaluate(self.run_dir, at_step)
        self.model.train()
        self.log.log(at_step, "val", metrics)
        return metrics

    def _select(self, metrics: dict[str, float], at_step: int) -> None:
        task = self.task
        value = metrics[task.selection_metric]
        best = self.best_value
        better = best is None or (value < best if task.selection_mode == "min" else value > best)
        if better and math.isfinite(value):
            self.best_value, self.best_step = value, at_step
            metadata = {
                "step": at_step,
                "selection_metric": task.selection_metric,
                "selection_value": value,
                "split": self.cfg.data.val_split,
            }
            save_best(task.best_model(), self.run_dir, {**task.best_metadata(), **metadata})

    def checkpoint(self, at_step: int) -> None:
        """Write ``checkpoints/last.pt`` (rank 0) with the RNG states gathered from every rank."""
        rng = rng_state()
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if self.dist.main:
            state = {
                "version": CHECKPOINT_VERSION,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": at_step,
                "epoch": self.stream.epoch,
                "position": self.stream.position,
                "world_size": self.dist.world,
                "best_value": self.best_value,
                "best_step": self.best_step,
                "rng": [rng_to_tensors(r) for r in gathered],
            }
            atomic_torch_save(state, self.ckpt_path)
        if self.dist.enabled:
            dist.barrier()

    # ------------------------------------------------------------------------------------------------------- fit
    def fit(self) -> TrainResult:
        """Train to ``train.max_steps`` (or to ``train.stop_after_step``, like a kill); evaluate and checkpoint at
        their intervals and at the last step."""
        tc, task = self.tc, self.task
        self.model.train()
        last_metrics: dict[str, float] = {}
        stopped = False
        with _progress(tc.progress and self.dist.main) as bar:
            bar_task = bar.add_task(f"{task.name}", total=tc.max_steps, completed=self.step, info="")
            while self.step < tc.max_steps:
                sums, lr, grad_norm = self.train_step()
                step, final = self.step, self.step == tc.max_steps
                if step % tc.log_every == 0 or final:
                    extra = {"lr": lr, "grad_norm": grad_norm, "epoch": float(self.stream.epoch)}
                    self.log.log(step, "train", {**sums, **extra})
                bar.update(bar_task, completed=step, info=f"loss {sums['loss']:.4f}")
                if tc.stop_after_step is not None and step >= tc.stop_after_step and not final:
                    stopped = True  # behave like a kill: no evaluation or checkpoint at this step
                    break
                if step % tc.eval_every == 0 or final:
                    last_metrics = self.evaluate(step)
                    selection = last_metrics.get(task.selection_metric, float("nan"))
                    bar.update(bar_task, info=f"loss {sums['loss']:.4f} {task.selection_metric} {selection:.4f}")
                if step % tc.ckpt_every == 0 or final:
                    self.checkpoint(step)
        self.log.close()
        return self._result(last_metrics, stopped)

    def _result(self, last_metrics: dict[str, float], stopped: bool) -> TrainResult:
        wall = time.time() - self.t0
        if self.dist.main:
            logger.info(
                "run %s: step %d, best %s=%s at step %s, %.1f s",
                self.run_dir,
                self.step,
                self.task.selection_metric,
                self.best_value,
                self.best_step,
                wall,
            )
        return TrainResult(self.run_dir, self.step, self.best_step, self.best_value, last_metrics, stopped, wall)


def run_training(task: Task, cfg: RunConfig, *, resume: bool = False) -> TrainResult:
    """Train ``task`` as ``cfg`` says, in ``cfg.out``; with ``resume`` continue from ``checkpoints/last.pt``.

    Call it in every process of a ``torchrun`` job; the task must already be built (identically on every rank).
    """
    return Trainer(task, cfg, resume=resume).fit()


__all__ = [
    "StatefulBatchSampler",
    "Task",
    "TrainResult",
    "Trainer",
    "lr_at",
    "run_training",
    "seed_everything",
]
