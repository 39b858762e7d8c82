"""One plain training loop shared by every CardiacNets stage (CMR self-supervision, alignment, fine-tuning, diffusion).

A stage is a :class:`Task`: it owns the model and the datasets, turns a batch into named losses
(``training_forward``; the key ``loss`` is optimised) and evaluates on the validation split (``evaluate``; the metric
``selection_metric`` picks the best checkpoint). The loop owns everything else: AdamW with a pure :func:`lr_at`
(linear warm-up, then cosine), gradient accumulation and clipping, bf16 autocast on CUDA, DDP under ``torchrun``
(NCCL on GPUs, gloo on CPU), evaluation and checkpointing at fixed step intervals, exact resume, CSV + TensorBoard
logs and a progress bar on stderr.

Run directory::

    config.yaml            resolved config
    metrics.csv            long format: step, split, name, value
    tb/                    TensorBoard events
    checkpoints/last.pt    model, optimiser, step, data position, RNG states of every rank (torch.save, plain types)
    best/                  config.json + model.safetensors of the best validation step (+ metadata)

Exact resume: the data order is a pure function of (seed, epoch, rank) and the loop records how many batches of the
current epoch it consumed, so a resumed run draws the same batches; the RNG states of every rank are restored, and
``metrics.csv`` / TensorBoard rows after the checkpoint are dropped, so a killed-and-resumed run writes the same
per-step losses as an uninterrupted one (bit-exact on CPU).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cardiacnets.errors import CheckpointError, ConfigError
from cardiacnets.models.registry import save_pretrained
from cardiacnets.training.config import RunConfig, TrainConfig, dump_config

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``lr``, then cosine to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


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


class _BatchStream:
    """Endless stream of training batches that knows its position (epoch, batches consumed in the epoch)."""

    def __init__(
        self, dataset: Dataset, cfg: RunConfig, task: Task, rank: int, world: int, epoch: int = 0, position: int = 0
    ) -> None:
        self.dataset, self.cfg, self.task, self.rank, self.world = dataset, cfg, task, rank, world
        self.epoch, self.position = epoch, position
        self._it: Iterator | None = None

    def _loader(self) -> Iterator:
        sampler = StatefulBatchSampler(
            len(self.dataset),
            self.cfg.train.batch_size,
            seed=self.cfg.train.seed,  # type: ignore[arg-type]
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


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA). Call it before building a task so the initialisation is fixed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
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


def _rng_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint form: byte strings and key lists as tensors (``torch.load(weights_only=True)`` reads them)."""
    out = dict(state)
    out["numpy"] = [*state["numpy"][:1], torch.tensor(state["numpy"][1], dtype=torch.int64), *state["numpy"][2:]]
    out["torch"] = torch.frombuffer(bytearray(state["torch"]), dtype=torch.uint8)
    if "cuda" in state:
        out["cuda"] = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in state["cuda"]]
    return out


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    info = _Dist(
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


class _MetricsLog:
    """``metrics.csv`` (long format) + TensorBoard, written by rank 0 only."""

    FIELDS = ("step", "split", "name", "value")

    def __init__(self, run_dir: Path, resume_step: int | None, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        path = run_dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.fh = path.open("a", newline="")
        self.csv = csv.DictWriter(self.fh, fieldnames=self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        except ImportError:  # tensorboard is an optional extra
            logger.warning("tensorboard is not installed; writing metrics.csv only")

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.csv.writerow({"step": step, "split": split, "name": name, "value": repr(float(value))})
            if self.writer is not None:
                self.writer.add_scalar(f"{split}/{name}", float(value), step)
        self.fh.flush()

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.writer is not None:
                self.writer.close()


def _save_best(task: Task, run_dir: Path, metadata: dict[str, Any]) -> None:
    """Write ``best/`` atomically: into ``best.tmp``, then swap directories."""
    tmp, best, old = run_dir / "best.tmp", run_dir / "best", run_dir / "best.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(task.best_model(), tmp, metadata={**task.best_metadata(), **metadata})
    shutil.rmtree(old, ignore_errors=True)
    if best.exists():
        os.replace(best, old)
    os.replace(tmp, best)
    shutil.rmtree(old, ignore_errors=True)


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


def run_training(task: Task, cfg: RunConfig, *, resume: bool = False) -> TrainResult:
    """Train ``task`` as ``cfg`` says, in ``cfg.out``; with ``resume`` continue from ``checkpoints/last.pt``.

    Call it in every process of a ``torchrun`` job; the task must already be built (identically on every rank).
    """
    t0 = time.time()
    tc = cfg.train
    dist_info, device = _init_distributed()
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if dist_info.main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if resume and not ckpt_path.is_file():
        raise CheckpointError(f"cannot resume: {ckpt_path} not found")
    if not resume and ckpt_path.is_file():
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")

    seed_everything(tc.seed + dist_info.rank)

    model = task.model.to(device)
    forward_model: nn.Module = model
    if dist_info.enabled:
        forward_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    task.forward_model = forward_model
    optimizer = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay), lr=lr_at(0, tc), betas=tc.betas, fused=device.type == "cuda"
    )
    trainable = [p for p in model.parameters() if p.requires_grad]

    step, epoch, position = 0, 0, 0
    best_value: float | None = None
    best_step: int | None = None
    if resume:
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-facing error
            raise CheckpointError(f"{ckpt_path} cannot be loaded: {exc}") from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{ckpt_path}: unsupported checkpoint version {state.get('version')!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        best_value, best_step = state["best_value"], state["best_step"]
        if state["world_size"] != dist_info.world:
            raise CheckpointError(
                f"{ckpt_path} was written by {state['world_size']} processes; resume with the "
                f"same number (got {dist_info.world})"
            )
        _set_rng_state(state["rng"][dist_info.rank])
        logger.info("resumed from step %d", step)
    elif dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if dist_info.main:
        (run_dir / "config.yaml").write_text(dump_config(cfg))

    train_set = task.train_dataset()
    val_set = task.val_dataset() if dist_info.main else None
    stream = _BatchStream(train_set, cfg, task, dist_info.rank, dist_info.world, epoch=epoch, position=position)
    log = _MetricsLog(run_dir, step if resume else None, enabled=dist_info.main)

    def evaluate_and_select(at_step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        nonlocal best_value, best_step
        if dist_info.main:
            assert val_set is not None
            loader = DataLoader(
                val_set,
                batch_size=tc.eval_batch_size,
                shuffle=False,
                collate_fn=task.collate,
                num_workers=cfg.data.num_workers,
                generator=torch.Generator().manual_seed(0),
            )
            model.eval()
            with torch.no_grad(), _autocast(device, tc.precision):
                metrics = task.evaluate(_DeviceLoader(loader, device, tc.max_eval_batches))
            if task.selection_metric not in metrics:
                raise ConfigError(f"task {task.name} did not report its selection metric {task.selection_metric}")
            task.on_evaluate(run_dir, at_step)
            model.train()
            log.log(at_step, "val", metrics)
            value = metrics[task.selection_metric]
            better = best_value is None or (value < best_value if task.selection_mode == "min" else value > best_value)
            if better and math.isfinite(value):
                best_value, best_step = value, at_step
                _save_best(
                    task,
                    run_dir,
                    {
                        "step": at_step,
                        "selection_metric": task.selection_metric,
                        "selection_value": value,
                        "split": cfg.data.val_split,
                    },
                )
        if dist_info.enabled:
            dist.barrier()
        return metrics

    def checkpoint(at_step: int) -> None:
        rng = _rng_state()
        if dist_info.enabled:
            gathered: list[Any] = [None] * dist_info.world
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if dist_info.main:
            _atomic_torch_save(
                {
                    "version": CHECKPOINT_VERSION,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": at_step,
                    "epoch": stream.epoch,
                    "position": stream.position,
                    "world_size": dist_info.world,
                    "best_value": best_value,
                    "best_step": best_step,
                    "rng": [_rng_to_tensors(r) for r in gathered],
                },
                ckpt_path,
            )
        if dist_info.enabled:
            dist.barrier()

    model.train()
    last_metrics: dict[str, float] = {}
    stopped = False
    with _progress(tc.progress and dist_info.main) as bar:
        bar_task = bar.add_task(f"{task.name}", total=tc.max_steps, completed=step, info="")
        while step < tc.max_steps:
            lr = lr_at(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sums: dict[str, float] = {}
            for micro in range(tc.grad_accum):
                batch = _to_device(stream.next(), device)
                sync = micro == tc.grad_accum - 1 or not dist_info.enabled
                ctx = contextlib.nullcontext() if sync else forward_model.no_sync()  # type: ignore[operator]
                with ctx:
                    with _autocast(device, tc.precision):
                        losses = task.training_forward(batch)
                    (losses["loss"] / tc.grad_accum).backward()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / tc.grad_accum
            if tc.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, tc.grad_clip))
            else:
                norms = [p.grad.norm() for p in trainable if p.grad is not None]
                grad_norm = float(torch.norm(torch.stack(norms))) if norms else 0.0
            if not math.isfinite(sums["loss"]):
                raise FloatingPointError(f"non-finite loss at step {step + 1}: {sums}")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if dist_info.enabled:
                names = sorted(sums)
                t = torch.tensor([sums[n] for n in names], dtype=torch.float64, device=device)
                dist.all_reduce(t)
                sums = {n: float(v) / dist_info.world for n, v in zip(names, t.tolist(), strict=True)}
            if step % tc.log_every == 0 or step == tc.max_steps:
                log.log(step, "train", {**sums, "lr": lr, "grad_norm": grad_norm, "epoch": float(stream.epoch)})
            bar.update(bar_task, completed=step, info=f"loss {sums['loss']:.4f}")
            if tc.stop_after_step is not None and step >= tc.stop_after_step and step < tc.max_steps:
                stopped = True  # behave like a kill: no evaluation or checkpoint at this step
                break
            if step % tc.eval_every == 0 or step == tc.max_steps:
                last_metrics = evaluate_and_select(step)
                bar.update(
                    bar_task,
                    info=f"loss {sums['loss']:.4f} {task.selection_metric} "
                    f"{last_metrics.get(task.selection_metric, float('nan')):.4f}",
                )
            if step % tc.ckpt_every == 0 or step == tc.max_steps:
                checkpoint(step)
    log.close()
    wall = time.time() - t0
    if dist_info.main:
        logger.info(
            "run %s: step %d, best %s=%s at step %s, %.1f s",
            run_dir,
            step,
            task.selection_metric,
            best_value,
            best_step,
            wall,
        )
    return TrainResult(run_dir, step, best_step, best_value, last_metrics, stopped, wall)


class _DeviceLoader:
    """Iterates a loader, moving batches to ``device``, optionally capped at ``max_batches``."""

    def __init__(self, loader: DataLoader, device: torch.device, max_batches: int | None) -> None:
        self.loader, self.device, self.max_batches = loader, device, max_batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, batch in enumerate(self.loader):
            if self.max_batches is not None and i >= self.max_batches:
                break
            yield _to_device(batch, self.device)

    def __len__(self) -> int:
        n = len(self.loader)
        return n if self.max_batches is None else min(n, self.max_batches)


__all__ = ["StatefulBatchSampler", "Task", "TrainResult", "lr_at", "run_training", "seed_everything"]
