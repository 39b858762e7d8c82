"""``cntrain cmr-ssl``, ``cntrain align`` and ``cntrain pretrain-report``: the pretraining stages and their report.

Thin commands: the stage commands pass their flags to :func:`cardiacnets.training.stages.train_stage` (stage YAML <
``--config`` < flags < ``--set``, the stage's task, the shared loop) and print the run summary to stdout. Multi-GPU /
multi-node: launch the same command under ``torchrun``. The shared options are declared in
:mod:`cardiacnets.cli_options`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cardiacnets.cli_options import RUN_OPTIONS, command_with_options, run_flags

_EXAMPLES_SSL = """
Examples:

  cntrain cmr-ssl --data synthetic --n-subjects 256 --model tiny --max-steps 200 --out runs/cmr

  cntrain cmr-ssl --config training/configs/cmr-ssl.yaml --out runs/cmr

  cntrain cmr-ssl --out runs/cmr --resume

  torchrun --nproc_per_node 8 -m cardiacnets.training.cli cmr-ssl --data /data/ukb --model base --out runs/cmr
"""

_EXAMPLES_ALIGN = """
Examples:

  cntrain align --cmr runs/cmr --data synthetic --n-subjects 256 --model tiny --max-steps 200 --out runs/align

  cntrain align --cmr runs/cmr --out runs/align --set train.lr=3e-4 --set task.ecg_preprocess=minmax
"""


def run_stage_command(
    stage: str, flags: dict[str, Any], config: Path | None, sets: list[str] | None, resume: bool
) -> None:
    """Train ``stage`` with the command's flags and print the run summary (JSON, rank 0 only) to stdout."""
    from cardiacnets.training.stages import train_stage

    summary = train_stage(stage, flags, config_file=config, sets=sets, resume=resume)
    if summary is not None:
        typer.echo(json.dumps(summary, indent=2))


_RUN_FLAG_NAMES = ("data", "n_subjects", "model", "max_steps", "batch_size", "out", "num_workers", "seed")


def stage_command(
    stage: str,
    doc: str,
    *,
    options: Sequence[tuple[str, Any, Any]] = (),
    task_flags: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    run: Callable[[str, dict[str, Any], Path | None, list[str] | None, bool], None] = run_stage_command,
) -> Callable[..., None]:
    """A ``cntrain`` training-stage command: the stage's own ``options`` (``(name, Annotated type, default)``; one named
    like a run option replaces it in place) and the shared run options (:data:`~cardiacnets.cli_options.RUN_OPTIONS`).
    Its flags are the run options' (:func:`~cardiacnets.cli_options.run_flags`) plus ``task_flags(values)``; ``run``
    trains the stage (default: :func:`run_stage_command`)."""
    run_names = {name for name, _, _ in RUN_OPTIONS}
    own = {option[0]: option for option in options}
    parameters = [option for option in options if option[0] not in run_names]
    parameters += [own.get(name, (name, annotation, default)) for name, annotation, default in RUN_OPTIONS]

    def body(values: dict[str, Any]) -> None:
        flags = run_flags(**{name: values[name] for name in _RUN_FLAG_NAMES})
        if task_flags is not None:
            flags.update(task_flags(values))
        run(stage, flags, values["config"], values["set_"], values["resume"])

    return command_with_options(body, doc, parameters)


def pretrain_report(
    align: Path = typer.Option(..., "--align", help="The align run directory to evaluate."),
    data: str = typer.Option("synthetic", "--data", help="'synthetic' or a dataset directory."),
    n_subjects: int | None = typer.Option(None, "--n-subjects", help="Cohort size (synthetic) or cap."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed (synthetic)."),
    max_items: int | None = typer.Option(None, "--max-items", help="At most this many subjects per split."),
    wall_time: float | None = typer.Option(None, "--wall-time", help="Recipe wall time (s) to record."),
    out: Path = typer.Option(..., "--out", help="Report directory (report.md, results.json)."),
) -> None:
    """ECG->CMR retrieval on the test split and linear probes to the 82 phenotypes (aligned vs random init vs CMR).

    Example: cntrain pretrain-report --align runs/demo/align --data runs/demo/cohort --out reports/pretraining
    """
    import sys

    from cardiacnets.training.pretrain_report import pretraining_report

    command = "cntrain " + " ".join(sys.argv[1:]) if sys.argv and "pretrain-report" in sys.argv else None
    results = pretraining_report(align, data, out, n_subjects=n_subjects, seed=seed, max_items=max_items,
                                 wall_time_s=wall_time, command=command)  # fmt: skip
    typer.echo(json.dumps({k: v for k, v in results.items() if k != "command"}, indent=2))


cmr_ssl = stage_command(
    "cmr-ssl", "CMR self-supervision: masked image modelling on SA and LA Swin towers plus the SA-LA CLIP loss."
)
_CMR_OPTION = Annotated[Path | None, typer.Option("--cmr", help="The cmr-ssl run directory (frozen CMR towers).")]
align = stage_command(
    "align",
    "ECG-CMR contrastive alignment: ECG ViT against the frozen SA and LA towers of a cmr-ssl run.",
    options=[("cmr", _CMR_OPTION, None)],
    task_flags=lambda v: {"task.cmr": str(v["cmr"]) if v["cmr"] is not None else None},
)


def register(app: typer.Typer) -> None:
    """Add ``pretrain-report``, ``cmr-ssl`` and ``align`` to ``app``."""
    app.command("pretrain-report")(pretrain_report)
    app.command("cmr-ssl", epilog=_EXAMPLES_SSL)(cmr_ssl)
    app.command("align", epilog=_EXAMPLES_ALIGN)(align)
