"""``cntrain finetune`` and ``cntrain experiment``: downstream fine-tuning and the paper's comparisons.

Thin commands: resolve the config (stage YAML < ``--config`` < flags < ``--set``), call one training function, print
a JSON summary to stdout. The shared options are declared in :mod:`cardiacnets.cli_options`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cardiacnets.cli_options import (
    ConfigOption,
    ModelOption,
    NSubjectsOption,
    OutOption,
    SeedOption,
    SetOption,
)
from cardiacnets.training.cli_stages import stage_command

_EXAMPLES_FINETUNE = """
Examples:

  cntrain finetune --task cm --init runs/align --data synthetic --n-subjects 512 --out runs/ft-cm

  cntrain finetune --task all --init random --label-fraction 0.1 --out runs/ft-ecg-only-10pct

  cntrain finetune --task all --init default --data data/ukb --out runs/ft-from-default

  cntrain finetune --task subtype --input cmr --init runs/align --out runs/ft-cmr-subtype

  cntrain finetune --task phenotypes --init runs/align --set task.max_epochs=50 --set task.patience=10
"""

_EXAMPLES_EXPERIMENT = """
Examples:

  cntrain experiment --align runs/align --n-subjects 2000 --out runs/experiment

  cntrain experiment --out runs/experiment        # runs cmr-ssl and align first (recipe in experiment.yaml)

  cntrain experiment --config training/configs/experiment-synthetic.yaml --out benchmarks/results/experiment-synthetic
"""


def _finetune_summary(result: Any, out: str) -> dict[str, Any]:
    """The JSON summary of a :class:`~cardiacnets.training.tasks.finetune.FinetuneResult`."""
    return {
        "run_dir": str(result.train.run_dir),
        "step": result.train.step,
        "best_step": result.train.best_step,
        "best_epoch": result.best_epoch,
        "selection_metric": "val_selection",
        "best_value": result.train.best_value,
        "stopped_early": result.train.stopped_early,
        "thresholds": result.evaluation["thresholds"],
        "evaluation": str(Path(out) / "evaluation.json"),
        "wall_s": round(result.train.wall_s, 2),
    }


def _run_finetune(stage: str, flags: dict[str, Any], config: Path | None, sets: list[str] | None, resume: bool) -> None:
    from cardiacnets.training.stages import resolve_stage_config
    from cardiacnets.training.tasks.finetune import run_finetune

    cfg = resolve_stage_config(stage, flags, config_file=config, sets=sets, resume=resume)
    if flags.get("train.max_steps") is not None:
        cfg.task["max_epochs"] = None  # an explicit step budget wins over the epoch budget
    result = run_finetune(cfg, resume=resume)
    typer.echo(json.dumps(_finetune_summary(result, cfg.out), indent=2))


def _option(name: str, annotation: Any, *decls: str, help_text: str) -> tuple[str, Any, Any]:
    return (name, Annotated[annotation, typer.Option(*decls, help=help_text)], None)


finetune = stage_command(
    "finetune",
    "Fine-tune a screening model (whole encoder + FiLM + heads); writes best/, evaluation.json, predictions.",
    options=[
        _option("task", str | None, "--task",
                help_text="cad, ph, pc, cm, hf, subtype, phenotypes or all (multi-task)."),
        _option("init", str | None, "--init",
                help_text="An alignment run directory (its aligned ECG encoder), 'default' (the default bundle's "
                          "aligned encoder, shipped) or 'random'."),
        _option("input_", str | None, "--input", help_text="'ecg', or 'cmr' for the CMR-input upper bound."),
        _option("label_fraction", float | None, "--label-fraction",
                help_text="Fraction of training subjects with labels (0.01, 0.1, 1.0)."),
        _option("eval_balanced", bool | None, "--eval-balanced/--eval-natural",
                help_text="Evaluate binary tasks on 1:1 samples (default: natural)."),
    ],
    task_flags=lambda v: {"task.task": v["task"], "task.init": v["init"], "task.input": v["input_"],
                          "task.label_fraction": v["label_fraction"], "task.eval_balanced": v["eval_balanced"]},
    run=_run_finetune,
)  # fmt: skip


def experiment(
    align: Path | None = typer.Option(
        None, "--align", help="Alignment run directory for the 'aligned' arm (default: run the pretraining)."
    ),
    data: str | None = typer.Option(
        None, "--data", help="'synthetic' (default) or a converted dataset directory (the downstream cohort)."
    ),
    n_subjects: NSubjectsOption = None,
    model: ModelOption = None,
    out: OutOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    arms: str | None = typer.Option(None, "--arms", help="Comma list of aligned,ecg_only,cmr."),
    fractions: str | None = typer.Option(None, "--fractions", help="Comma list of label fractions, e.g. 0.01,0.1,1.0."),
    max_epochs: float | None = typer.Option(None, "--max-epochs", help="Epoch budget per run."),
    seed: SeedOption = None,
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
    typer.echo(json.dumps({"out": cfg.out, "report": str(Path(cfg.out) / "report.md"), **results["summary"]}, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``finetune`` and ``experiment`` to ``app``."""
    app.command("finetune", epilog=_EXAMPLES_FINETUNE)(finetune)
    app.command("experiment", epilog=_EXAMPLES_EXPERIMENT)(experiment)
