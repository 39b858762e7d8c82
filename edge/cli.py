"""``cnscreen``: screen ECG files (one file, or whole archives with ``cnscreen batch``) and inspect them.

Thin CLI: parse, call one library function, print. Data goes to stdout, messages to stderr. Errors print one line and
exit with the code documented in :mod:`cardiacnets.cli_support` (``CNS_DEBUG=1`` shows the traceback); usage errors
exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from cardiacnets.cli_options import BundleOption, DeviceOption, OperatingPointOption
from cardiacnets.cli_support import EXIT_INPUT, App
from cardiacnets.errors import OutputError

PROG = "cnscreen"
app = App(
    prog=PROG,
    add_completion=False,
    no_args_is_help=True,
    help="Screen 12-lead ECG files with a CardiacNets model bundle. Examples:\n\n"
    "  cnscreen ecg.xml\n\n  cnscreen ecg.xml --json --out result.json\n\n"
    "  cnscreen batch /archive/ecg --out results.csv\n\n  cnscreen inspect ecg.xml --json\n\n"
    "Exit codes: 0 done; 1 user error; 2 usage error; 3 an input could not be read; 4 an output could not be"
    " written; 5 the model bundle failed verification.",
)
err = Console(stderr=True)

_TRUSTED_KEY_HELP = (
    "Public key (PEM) that must have signed the bundle; repeat for several. Unsigned bundles are refused."
)


def _operating_point(value: str | None) -> str | None:
    if value is None:
        return None
    point = value.replace("-", "_")
    if point not in ("youden", "high_specificity"):
        raise typer.BadParameter(f"{value!r}: choose youden or high-specificity", param_hint="--operating-point")
    return point


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="ECG file (any supported format)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a summary."),
    include_phi: bool = typer.Option(False, "--include-phi", help="Also print patient identifiers."),
) -> None:
    """Show what an ECG file holds: format, device, rate, duration, stored vs derived leads, QC findings.

    Example: cnscreen inspect ecg.xml --json
    """
    from cardiacnets.inspect import format_inspection, inspect_file

    report = inspect_file(file, include_phi=include_phi)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(format_inspection(report) + "\n")  # plain text: file content must not be read as markup


@app.command("screen")
def screen(
    file: Path = typer.Argument(..., help="ECG file (any supported format)."),
    bundle: BundleOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to this file ('-' = stdout)."),
    report: Path | None = typer.Option(None, "--report", help="Write a self-contained HTML report."),
    cine: bool = typer.Option(False, "--cine", help="Generate short- and long-axis cines (GPU recommended)."),
    device: DeviceOption = "auto",
    operating_point: OperatingPointOption = None,
    trusted_key: list[Path] = typer.Option([], "--trusted-key", help=_TRUSTED_KEY_HELP),
    include_phi: bool = typer.Option(False, "--include-phi", help="Include patient identifiers in the output."),
) -> None:
    """Screen one ECG: calibrated disease probabilities with decisions, phenotypes with intervals, whether the ECG is
    like the model's training data, QC.

    Exit codes: 0 screened (also when QC fails or the ECG is out of distribution: the output says so); 1 user error;
    3 the file could not be read; 4 an output could not be written; 5 the bundle failed verification.

    Examples:

      cnscreen ecg.xml

      cnscreen ecg.xml --json --out result.json --report report.html

      cnscreen ecg.xml --operating-point high-specificity --trusted-key team.pub
    """
    from cardiacnets.edge.screen import Screener
    from cardiacnets.edge.summary import render_result

    screener = Screener(bundle, device=device, operating_point=_operating_point(operating_point),
                        trusted_keys=trusted_key)  # fmt: skip
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

        try:
            write_report(result, prepared, report, cine_gifs)
        except OSError as exc:
            raise OutputError(f"cannot write {report}: {exc.strerror or exc}") from None
        err.print(f"report written to {report}", highlight=False)
    text = json.dumps(result, indent=2, default=str) + "\n"
    if out is not None and str(out) != "-":
        _write_text(out, text)
    if as_json or (out is not None and str(out) == "-"):
        sys.stdout.write(text)
    else:
        Console().print(render_result(result), highlight=False)


@app.command("batch")
def batch(
    source: Path = typer.Argument(..., help="Directory tree, zip archive, or a text file listing one path per line."),
    out: Path = typer.Option(..., "--out", help="Output file: .csv, .jsonl or .parquet (rerun to resume)."),
    bundle: BundleOption = None,
    workers: int | None = typer.Option(
        None, "--workers", help="Reader processes (default: one per CPU core; 1 reads in this process)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Most ECGs per inference call (default: 2 on the CPU, 32 on a GPU)."
    ),
    streams: int | None = typer.Option(
        None, "--streams", help="Inference calls run at once (default: one per CPU core on the CPU, 1 on a GPU)."
    ),
    device: DeviceOption = "auto",
    operating_point: OperatingPointOption = None,
    trusted_key: list[Path] = typer.Option([], "--trusted-key", help=_TRUSTED_KEY_HELP),
    include_phi: bool = typer.Option(False, "--include-phi", help="Add patient identifier columns to the output."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Screen every ECG in an archive; one output row per input file, errors included. Resumable.

    Exit codes: 0 every file screened (QC failures and out-of-distribution ECGs are rows that say so); 3 some files
    could not be read (rows with status error, in this run or an earlier interrupted run of the same job); 1 a user
    error stopped the run; 2 a usage error; 4 the output could not be written (missing or read-only folder, disk
    full; rows already written are kept) or another run is writing it, or it holds rows of another bundle; 5 the
    bundle failed verification.

    Examples:

      cnscreen batch /archive/ecg --out results.csv

      cnscreen batch ecgs.zip --out results.parquet --workers 4
    """
    from cardiacnets.edge.batch import run_batch, summary_dict

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
        operating_point=_operating_point(operating_point),
        trusted_keys=trusted_key,
    )
    info = summary_dict(summary)
    err.print(
        f"{info['inputs']} inputs: {info['ok']} ok, {info['qc_failed']} qc_failed, {info['error']} error"
        f" ({info['already_done']} already in {out}); {info['seconds']} s, {info['files_per_second']} files/s",
        highlight=False,
    )
    if summary.error or summary.errors_before:  # the job's output, resumed runs included, holds error rows
        raise typer.Exit(EXIT_INPUT)


_SUBCOMMANDS = {"inspect", "batch", "screen"}


def main(argv: list[str] | None = None) -> None:
    """``cnscreen FILE`` is short for ``cnscreen screen FILE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in _SUBCOMMANDS:
        args.insert(0, "screen")
    app(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
