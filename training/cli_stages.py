"""``cntrain cmr-ssl`` and ``cntrain align``: the pretraining stages.

Thin commands: resolve the config (stage YAML < ``--config`` < flags < ``--set``), build the stage's task, run the
shared loop, print the run summary to stdout. Multi-GPU / multi-node: launch the same command under ``torchrun``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from cardiacnets.cli_support import fail
from cardiacnets.errors import CardiacNetsError
from cardiacnets.training.config import RunConfig, resolve_config

_EXAMPLES_SSL = """
Examples:

  cntrain cmr-ssl --data synthetic --n-subjects 256 --model tiny --max-steps 200 --out runs/cmr

  cntrain cmr-ssl --config training/configs/recipe-cpu-cmr-ssl.yaml --out runs/cmr

  cntrain cmr-ssl --out runs/cmr --resume

  torchrun --nproc_per_node 8 -m cardiacnets.training.cli cmr-ssl --data /data/ukb --model base --out runs/cmr
"""

_EXAMPLES_ALIGN = """
Examples:

  cntrain align --cmr runs/cmr --data synthetic --n-subjects 256 --model tiny --max-steps 200 --out runs/align

  cntrain align --cmr runs/cmr --out runs/align --set train.lr=3e-4 --set task.ecg_preprocess=minmax
"""


def _flags(
    data: str | None,
    n_subjects: int | None,
    model: str | None,
    max_steps: int | None,
    batch_size: int | None,
    out: Path | None,
    num_workers: int | None,
    seed: int | None,
) -> dict[str, Any]:
    return {
        "data.source": data,
        "data.n_subjects": n_subjects,
        "model": model,
        "train.max_steps": max_steps,
        "train.batch_size": batch_size,
        "out": str(out) if out is not None else None,
        "data.num_workers": num_workers,
        "train.seed": seed,
    }


def _run(
    stage: str,
    build_task: Callable[[RunConfig], Any],
    flags: dict[str, Any],
    config: Path | None,
    sets: list[str],
    resume: bool,
) -> None:
    from cardiacnets.errors import ConfigError
    from cardiacnets.training.loop import run_training, seed_everything

    resume_dir = None
    if resume:
        if not flags.get("out"):
            raise ConfigError("--resume needs --out DIR (the run directory to continue)")
        resume_dir = Path(flags["out"])
    cfg = resolve_config(stage, config_file=config, flags=flags, sets=sets, resume_dir=resume_dir)
    seed_everything(cfg.train.seed)  # the same initial weights on every rank and on every run of this config
    task = build_task(cfg)
    result = run_training(task, cfg, resume=resume)
    import torch.distributed as dist

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
        typer.echo(json.dumps(summary, indent=2))
    if dist.is_initialized():
        dist.destroy_process_group()


DataOpt = typer.Option(None, "--data", help="'synthetic' or a converted dataset directory.")
NSubjectsOpt = typer.Option(None, "--n-subjects", help="Number of subjects (synthetic) or a cap on the dataset.")
ModelOpt = typer.Option(None, "--model", help="Registry size (tiny, small, base, large) or a full registry name.")
MaxStepsOpt = typer.Option(None, "--max-steps", help="Optimiser steps in total (the LR schedule spans them).")
BatchOpt = typer.Option(None, "--batch-size", help="Per-process micro-batch size.")
OutOpt = typer.Option(None, "--out", help="Run directory.")
ResumeOpt = typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/last.pt.")
ConfigOpt = typer.Option(None, "--config", help="YAML config overriding the stage defaults.")
SetOpt = typer.Option(None, "--set", help="Override any config key: --set train.lr=3e-4 (repeatable).")
WorkersOpt = typer.Option(None, "--num-workers", help="DataLoader worker processes.")
SeedOpt = typer.Option(None, "--seed", help="Training seed (initialisation, data order, masks).")


def register(app: typer.Typer) -> None:
    """Add ``cmr-ssl``, ``align`` and ``pretrain-report`` to ``app``."""

    @app.command("pretrain-report")
    def pretrain_report(
        align: Path = typer.Option(..., "--align", help="The align run directory to evaluate."),  # noqa: B008
        data: str = typer.Option("synthetic", "--data", help="'synthetic' or a dataset directory."),
        n_subjects: int | None = typer.Option(None, "--n-subjects", help="Cohort size (synthetic) or cap."),  # noqa: UP007
        seed: int = typer.Option(0, "--seed", help="Cohort seed (synthetic)."),
        max_items: int | None = typer.Option(None, "--max-items", help="At most this many subjects per split."),  # noqa: UP007
        wall_time: float | None = typer.Option(None, "--wall-time", help="Recipe wall time (s) to record."),  # noqa: UP007
        out: Path = typer.Option(..., "--out", help="Report directory (report.md, results.json)."),  # noqa: B008
    ) -> None:
        """ECG->CMR retrieval on the test split and linear probes to the 82 phenotypes (aligned vs random init vs CMR).

        Example: cntrain pretrain-report --align runs/demo/align --data runs/demo/cohort --out reports/pretraining
        """
        import sys

        from cardiacnets.training.pretrain_report import pretraining_report

        command = "cntrain " + " ".join(sys.argv[1:]) if sys.argv and "pretrain-report" in sys.argv else None
        try:
            results = pretraining_report(align, data, out, n_subjects=n_subjects, seed=seed, max_items=max_items,
                                         wall_time_s=wall_time, command=command)  # fmt: skip
        except CardiacNetsError as exc:
            fail(exc, "cntrain")
        typer.echo(json.dumps({k: v for k, v in results.items() if k != "command"}, indent=2))

    @app.command("cmr-ssl", epilog=_EXAMPLES_SSL)
    def cmr_ssl(
        data: str | None = DataOpt,  # noqa: UP007
        n_subjects: int | None = NSubjectsOpt,  # noqa: UP007
        model: str | None = ModelOpt,  # noqa: UP007
        max_steps: int | None = MaxStepsOpt,  # noqa: UP007
        batch_size: int | None = BatchOpt,  # noqa: UP007
        out: Path | None = OutOpt,  # noqa: UP007
        resume: bool = ResumeOpt,
        config: Path | None = ConfigOpt,  # noqa: UP007
        set_: list[str] | None = SetOpt,  # noqa: UP007
        num_workers: int | None = WorkersOpt,  # noqa: UP007
        seed: int | None = SeedOpt,  # noqa: UP007
    ) -> None:
        """CMR self-supervision: masked image modelling on SA and LA Swin towers plus the SA-LA CLIP loss."""
        from cardiacnets.training.tasks.cmr_ssl import CmrSslTask

        flags = _flags(data, n_subjects, model, max_steps, batch_size, out, num_workers, seed)
        _run("cmr-ssl", CmrSslTask, flags, config, set_ or [], resume)

    @app.command("align", epilog=_EXAMPLES_ALIGN)
    def align(
        cmr: Path | None = typer.Option(None, "--cmr", help="The cmr-ssl run directory (frozen CMR towers)."),  # noqa: UP007, B008
        data: str | None = DataOpt,  # noqa: UP007
        n_subjects: int | None = NSubjectsOpt,  # noqa: UP007
        model: str | None = ModelOpt,  # noqa: UP007
        max_steps: int | None = MaxStepsOpt,  # noqa: UP007
        batch_size: int | None = BatchOpt,  # noqa: UP007
        out: Path | None = OutOpt,  # noqa: UP007
        resume: bool = ResumeOpt,
        config: Path | None = ConfigOpt,  # noqa: UP007
        set_: list[str] | None = SetOpt,  # noqa: UP007
        num_workers: int | None = WorkersOpt,  # noqa: UP007
        seed: int | None = SeedOpt,  # noqa: UP007
    ) -> None:
        """ECG-CMR contrastive alignment: ECG ViT against the frozen SA and LA towers of a cmr-ssl run."""
        from cardiacnets.training.tasks.align import AlignTask

        flags = _flags(data, n_subjects, model, max_steps, batch_size, out, num_workers, seed)
        flags["task.cmr"] = str(cmr) if cmr is not None else None
        _run("align", AlignTask, flags, config, set_ or [], resume)
