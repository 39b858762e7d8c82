"""cntrain synth-report: the synthetic cohort's validation report (issue 3, item 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cardiacnets.errors import InputError


def synth_report_command(
    n_subjects: Annotated[
        int, typer.Option("--n-subjects", min=80, help="Population cohort size (balanced: half).")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Cohort seed.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Directory for synth_report.md and .json.")] = Path("synth-report"),
    n_rendered: Annotated[int, typer.Option("--n-rendered", min=10, help="Subjects rendered for image volumes.")] = 200,
) -> None:
    """Simulate a cohort and check it against the domain facts; exit 1 if a check fails.

    Examples:

        cntrain synth-report --n-subjects 2000 --seed 0 --out runs/synth-report

        cntrain synth-report --n-subjects 20000 --n-rendered 500 --out benchmarks/results/synth-report
    """
    from cardiacnets.synth.report import synth_report

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    report = synth_report(n_subjects, seed, out, n_rendered=n_rendered)
    failed = [c["check"] for group in report["checks"].values() for c in group if not c["passed"]]
    print(json.dumps({"passed": report["passed"], "failed": failed, "out": str(out)}))
    print(f"wrote {out / 'synth_report.md'}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("synth-report")(synth_report_command)
