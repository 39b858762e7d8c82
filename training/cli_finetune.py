"""``cntrain finetune`` and ``cntrain experiment``: downstream fine-tuning and the paper's comparisons.

Thin commands: resolve the config (stage YAML < ``--config`` < flags < ``--set``), call one training function, print
a JSON summary to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cardiacnets.training.cli_stages import (
    BatchOpt,
    ConfigOpt,
    DataOpt,
    MaxStepsOpt,
    ModelOpt,
    NSubjectsOpt,
    OutOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    WorkersOpt,
    _flags,
)

_EXAMPLES_FINETUNE = """
Examples:

  cntrain finetune --task cm --init runs/align --data synthetic --n-subjects 512 --out runs/ft-cm

  cntrain finetune --task all --init random --label-fraction 0.1 --out runs/ft-ecg-only-10pct

  cntrain finetune --task subtype --input cmr --init runs/align --out runs/ft-cmr-subtype

  cntrain finetune --task phenotypes --init runs/align --set task.max_epochs=50 --set task.patience=10
"""

_EXAMPLES_EXPERIMENT = """
Examples:

  cntrain experiment --align runs/align --n-subjects 2000 --out runs/experiment

  cntrain experiment --out runs/experiment        # runs cmr-ssl and align first (recipe in experiment.yaml)

  cntrain experiment --config training/configs/experiment-synthetic.yaml --out benchmarks/results/experiment-synthetic
"""


def register(app: typer.Typer) -> None:
    """Add ``finetune`` and ``experiment`` to ``app``."""

    @app.command("finetune", epilog=_EXAMPLES_FINETUNE)
    def finetune(
        task: str | None = typer.Option(  # noqa: UP007, B008
            None, "--task", help="cad, ph, pc, cm, hf, subtype, phenotypes or all (multi-task)."
        ),
        init: str | None = typer.Option(  # noqa: UP007, B008
            None, "--init", help="An alignment run directory (its aligned ECG encoder) or 'random'."
        ),
        input_: str | None = typer.Option(  # noqa: UP007, B008
            None, "--input", help="'ecg', or 'cmr' for the CMR-input upper bound."
        ),
        label_fraction: float | None = typer.Option(  # noqa: UP007, B008
            None, "--label-fraction", help="Fraction of training subjects with labels (0.01, 0.1, 1.0)."
        ),
        eval_balanced: bool | None = typer.Option(  # noqa: UP007, B008
            None, "--eval-balanced/--eval-natural", help="Evaluate binary tasks on 1:1 samples (default: natural)."
        ),
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
        """Fine-tune a screening model (whole encoder + FiLM + heads); writes best/, evaluation.json, predictions."""
        from cardiacnets.errors import ConfigError
        from cardiacnets.training.config import resolve_config
        from cardiacnets.training.tasks.finetune import run_finetune

        flags = _flags(data, n_subjects, model, max_steps, batch_size, out, num_workers, seed)
        flags.update(
            {
                "task.task": task,
                "task.init": init,
                "task.input": input_,
                "task.label_fraction": label_fraction,
                "task.eval_balanced": eval_balanced,
            }
        )
        if max_steps is not None:
            flags["task.max_epochs"] = None  # an explicit step budget wins over the epoch budget
        resume_dir = None
        if resume:
            if not out:
                raise ConfigError("--resume needs --out DIR (the run directory to continue)")
            resume_dir = out
        cfg = resolve_config("finetune", config_file=config, flags=flags, sets=set_ or [], resume_dir=resume_dir)
        if max_steps is not None:
            cfg.task["max_epochs"] = None
        result = run_finetune(cfg, resume=resume)
        summary = {
            "run_dir": str(result.train.run_dir),
            "step": result.train.step,
            "best_step": result.train.best_step,
            "best_epoch": result.best_epoch,
            "selection_metric": "val_selection",
            "best_value": result.train.best_value,
            "stopped_early": result.train.stopped_early,
            "thresholds": result.evaluation["thresholds"],
            "evaluation": str(Path(cfg.out) / "evaluation.json"),
            "wall_s": round(result.train.wall_s, 2),
        }
        typer.echo(json.dumps(summary, indent=2))

    @app.command("experiment", epilog=_EXAMPLES_EXPERIMENT)
    def experiment(
        align: Path | None = typer.Option(  # noqa: UP007, B008
            None, "--align", help="Alignment run directory for the 'aligned' arm (default: run the pretraining)."
        ),
        data: str | None = typer.Option(  # noqa: UP007, B008
            None, "--data", help="'synthetic' (default) or a converted dataset directory (the downstream cohort)."
        ),
        n_subjects: int | None = NSubjectsOpt,  # noqa: UP007
        model: str | None = ModelOpt,  # noqa: UP007
        out: Path | None = OutOpt,  # noqa: UP007
        config: Path | None = ConfigOpt,  # noqa: UP007
        set_: list[str] | None = SetOpt,  # noqa: UP007
        arms: str | None = typer.Option(None, "--arms", help="Comma list of aligned,ecg_only,cmr."),  # noqa: UP007, B008
        fractions: str | None = typer.Option(  # noqa: UP007, B008
            None, "--fractions", help="Comma list of label fractions, e.g. 0.01,0.1,1.0."
        ),
        max_epochs: float | None = typer.Option(None, "--max-epochs", help="Epoch budget per run."),  # noqa: UP007, B008
        seed: int | None = SeedOpt,  # noqa: UP007
    ) -> None:
        """Reproduce the paper's comparisons (aligned vs ECG-only vs CMR; label fractions; subtypes; convergence)
        on a cohort; writes report.md, figures and results.json."""
        from cardiacnets.training.experiment import resolve_experiment_config, run_experiment

        flags = {
            "align": str(align) if align is not None else None,
            "data.source": data,
            "data.n_subjects": n_subjects,
            "model": model,
            "out": str(out) if out is not None else None,
            "arms": [a.strip() for a in arms.split(",") if a.strip()] if arms else None,
            "fractions": [float(f) for f in fractions.split(",") if f.strip()] if fractions else None,
            "finetune.max_epochs": max_epochs,
            "seed": seed,
        }
        cfg = resolve_experiment_config(config_file=config, flags=flags, sets=set_ or [])
        results = run_experiment(cfg)
        typer.echo(
            json.dumps({"out": cfg.out, "report": str(Path(cfg.out) / "report.md"), **results["summary"]}, indent=2)
        )
