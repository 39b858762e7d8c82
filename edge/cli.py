"""``cnscreen``: screen ECG files (one file, or whole archives with ``cnscreen batch``) and inspect them.

Thin CLI: parse, call one library function, print. Data goes to stdout, messages to stderr. User errors print one line
and exit 1 (``CNS_DEBUG=1`` shows the traceback); usage errors exit 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cardiacnets.errors import CardiacNetsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Screen 12-lead ECG files with a CardiacNets model bundle. Examples:\n\n"
    "  cnscreen inspect ecg.xml\n\n  cnscreen inspect ecg.xml --json",
)
err = Console(stderr=True)


def _fail(exc: CardiacNetsError) -> None:
    if os.environ.get("CNS_DEBUG"):
        raise exc
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(1)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="ECG file (any supported format)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a summary."),
    include_phi: bool = typer.Option(False, "--include-phi", help="Also print patient identifiers."),
) -> None:
    """Show what an ECG file holds: format, device, rate, duration, stored vs derived leads, QC findings.

    Example: cnscreen inspect ecg.xml --json
    """
    from cardiacnets.inspect import inspect_file

    try:
        report = inspect_file(file, include_phi=include_phi)
    except CardiacNetsError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        from cardiacnets.inspect import format_inspection

        Console().print(format_inspection(report), highlight=False)


def main(argv: Optional[list[str]] = None) -> None:  # noqa: UP007 - typer needs Optional on py3.10
    app(args=argv, prog_name="cnscreen")


if __name__ == "__main__":
    main()
