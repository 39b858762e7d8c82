"""Typed command-line options that several CardiacNets commands share, declared once (typer ``Annotated`` aliases).

This module owns the name, type and help text of every option that appears in more than one command: the run options
of the ``cntrain`` training stages (``--data``, ``--n-subjects``, ``--model``, ``--max-steps``, ``--batch-size``,
``--out``, ``--resume``, ``--config``, ``--set``, ``--num-workers``, ``--seed``) with :func:`run_flags`, which maps
their values to the dotted config keys they override, and the options of ``cnscreen`` and ``cnexport``
(``--bundle``, ``--device``, ``--operating-point``, ``--verbose``). A command declares
``data: DataOption = None``; exit codes and error messages live beside it in :mod:`cardiacnets.cli_support`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "AllowFallbackOption",
    "BatchSizeOption",
    "BundleOption",
    "ConfigOption",
    "DataOption",
    "DeviceOption",
    "MaxStepsOption",
    "ModelOption",
    "NSubjectsOption",
    "NumWorkersOption",
    "OperatingPointOption",
    "OutOption",
    "ResumeOption",
    "SeedOption",
    "SetOption",
    "RUN_OPTIONS",
    "VerboseOption",
    "command_with_options",
    "run_flags",
]

# ---- the run options of every cntrain training stage (values None: not given, the config decides)
DataOption = Annotated[str | None, typer.Option("--data", help="'synthetic' or a converted dataset directory.")]
NSubjectsOption = Annotated[
    int | None, typer.Option("--n-subjects", help="Number of subjects (synthetic) or a cap on the dataset.")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Registry size (tiny, small, base, large) or a full registry name.")
]
MaxStepsOption = Annotated[
    int | None, typer.Option("--max-steps", help="Optimiser steps in total (the LR schedule spans them).")
]
BatchSizeOption = Annotated[int | None, typer.Option("--batch-size", help="Per-process micro-batch size.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from checkpoints/last.pt.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config overriding the stage defaults.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override any config key: --set train.lr=3e-4 (repeatable).")
]
NumWorkersOption = Annotated[int | None, typer.Option("--num-workers", help="DataLoader worker processes.")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Training seed (initialisation, data order, masks).")]

# ---- cnscreen and cnexport
BundleOption = Annotated[
    Path | None, typer.Option("--bundle", help="Model bundle directory (default: $CNS_BUNDLE or the bundled model).")
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device", help="auto, cpu, cuda (CUDA, then CPU) or trt (TensorRT, then CUDA, then CPU); outputs name the"
        " provider that actually ran.",
    ),
]  # fmt: skip
AllowFallbackOption = Annotated[
    bool,
    typer.Option(
        "--allow-fallback", help="Run on with a warning when the --device provider fails to load (default: exit 1).",
    ),
]  # fmt: skip
OperatingPointOption = Annotated[
    str | None,
    typer.Option("--operating-point", help="Decision thresholds: youden or high-specificity (default: the bundle's)."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v")]


def run_flags(
    *,
    data: str | None,
    n_subjects: int | None,
    model: str | None,
    max_steps: int | None,
    batch_size: int | None,
    out: Path | None,
    num_workers: int | None,
    seed: int | None,
) -> dict[str, Any]:
    """The run options as ``{dotted config key: value}``, the flag layer of :func:`cardiacnets.config.layer_config`
    (a ``None`` value leaves the key to the lower layers)."""
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


#: The run options of a training stage, in the order ``--help`` lists them (``(name, annotation, default)``).
RUN_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("data", DataOption, None),
    ("n_subjects", NSubjectsOption, None),
    ("model", ModelOption, None),
    ("max_steps", MaxStepsOption, None),
    ("batch_size", BatchSizeOption, None),
    ("out", OutOption, None),
    ("resume", ResumeOption, False),
    ("config", ConfigOption, None),
    ("set_", SetOption, None),
    ("num_workers", NumWorkersOption, None),
    ("seed", SeedOption, None),
)


def command_with_options(
    body: Callable[[dict[str, Any]], None], doc: str, options: Sequence[tuple[str, Any, Any]]
) -> Callable[..., None]:
    """A typer command whose parameters are ``options`` (``(name, Annotated type, default)``, in order) and that
    calls ``body`` with their values as one dict. Lets commands that share most options be declared as data: the
    function's signature and annotations are what typer reads."""

    def command(**values: Any) -> None:
        body(values)

    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                  for name, annotation, default in options]  # fmt: skip
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {name: annotation for name, annotation, _ in options} | {"return": None}
    command.__doc__ = doc
    return command
