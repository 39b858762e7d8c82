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
    from rich.markup import escape

    # One line whatever the terminal width; the message is text from files, never markup.
    err.print(f"[bold red]error:[/] {escape(' '.join(str(exc).split()))}", highlight=False, soft_wrap=True)
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

        sys.stdout.write(format_inspection(report) + "\n")  # plain text: file content must not be read as markup


@app.command("screen")
def screen(
    file: Path = typer.Argument(..., help="ECG file (any supported format)."),
    bundle: Optional[Path] = typer.Option(
        None, "--bundle", help="Model bundle directory (default: the bundled model)."
    ),  # noqa: UP007
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON result to this file ('-' = stdout)."),  # noqa: UP007
    report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report."),  # noqa: UP007
    cine: bool = typer.Option(False, "--cine", help="Generate short- and long-axis cines (GPU recommended)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    include_phi: bool = typer.Option(False, "--include-phi", help="Include patient identifiers in the output."),
) -> None:
    """Screen one ECG: disease probabilities against the bundle's thresholds, key phenotypes, QC.

    Examples:

      cnscreen ecg.xml

      cnscreen ecg.xml --json --out result.json --report report.html
    """
    from cardiacnets.edge.screen import Screener
    from cardiacnets.edge.summary import render_result

    try:
        screener = Screener(bundle, device=device)
        result, prepared = screener.screen_file(file, include_phi=include_phi, keep_signal=report is not None)
        cine_gifs = None
        if cine:
            from cardiacnets.edge.cine import generate_cines

            cine_info, cine_gifs = generate_cines(
                screener.bundle, prepared, out_dir=(report or out or file).parent, stem=file.stem, device=device
            )
            result["cine"] = cine_info
        if report is not None:
            from cardiacnets.edge.report import write_report

            write_report(result, prepared, report, cine_gifs)
            err.print(f"report written to {report}")
    except CardiacNetsError as exc:
        _fail(exc)
    text = json.dumps(result, indent=2, default=str) + "\n"
    if out is not None:
        if str(out) == "-":
            sys.stdout.write(text)
        else:
            out.write_text(text)
    if as_json:
        if str(out) != "-":
            sys.stdout.write(text)
    else:
        Console().print(render_result(result), highlight=False)


@app.command("batch")
def batch(
    source: Path = typer.Argument(..., help="Directory tree, zip archive, or a text file listing one path per line."),
    out: Path = typer.Option(..., "--out", help="Output file: .csv, .jsonl or .parquet (rerun to resume)."),
    bundle: Optional[Path] = typer.Option(
        None, "--bundle", help="Model bundle directory (default: the bundled model)."
    ),  # noqa: UP007
    workers: Optional[int] = typer.Option(  # noqa: UP007
        None, "--workers", help="Reader processes (default: one per CPU core; 1 reads in this process)."
    ),
    batch_size: Optional[int] = typer.Option(  # noqa: UP007
        None, "--batch-size", help="Most ECGs per inference call (default: 2 on the CPU, 32 on a GPU)."
    ),
    streams: Optional[int] = typer.Option(  # noqa: UP007
        None, "--streams", help="Inference calls run at once (default: one per CPU core on the CPU, 1 on a GPU)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or trt."),
    include_phi: bool = typer.Option(False, "--include-phi", help="Add patient identifier columns to the output."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Screen every ECG in an archive; one output row per input file, errors included. Resumable.

    Exit codes: 0 every file screened (QC failures are rows with status qc_failed); 3 some files could not be read
    (rows with status error, in this run or an earlier interrupted run of the same job); 1 a user error stopped the
    run; 2 a usage error.

    Examples:

      cnscreen batch /archive/ecg --out results.csv

      cnscreen batch ecgs.zip --out results.parquet --workers 4
    """
    from cardiacnets.edge.batch import run_batch, summary_dict

    try:
        summary = run_batch(
            source,
            out,
            bundle=bundle,
            workers=workers,
            batch_size=batch_size,
            streams=streams,
            device=device,
            include_phi=include_phi,
            progress=not quiet,
        )
    except CardiacNetsError as exc:
        _fail(exc)
    info = summary_dict(summary)
    err.print(
        f"{info['inputs']} inputs: {info['ok']} ok, {info['qc_failed']} qc_failed, {info['error']} error"
        f" ({info['already_done']} already in {out}); {info['seconds']} s, {info['files_per_second']} files/s",
        highlight=False,
    )
    if summary.error or summary.errors_before:  # the job's output, resumed runs included, holds error rows
        raise typer.Exit(3)


_SUBCOMMANDS = {"inspect", "batch", "screen"}


def main(argv: Optional[list[str]] = None) -> None:  # noqa: UP007 - typer needs Optional on py3.10
    """``cnscreen FILE`` is short for ``cnscreen screen FILE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in _SUBCOMMANDS:
        args.insert(0, "screen")
    app(args=args, prog_name="cnscreen")


if __name__ == "__main__":
    main()
