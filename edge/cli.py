"""``cnscreen``: screen ECG files (one file, or whole archives with ``cnscreen batch``) and inspect them.

Thin CLI: parse, call one library function, print. Data goes to stdout, messages to stderr. Errors print one line and
exit with the code documented in :mod:`cardiacnets.cli_support` (``CNS_DEBUG=1`` shows the traceback); usage errors
exit 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from cardiacnets.cli_options import AllowFallbackOption, BundleOption, DeviceOption, OperatingPointOption
from cardiacnets.cli_support import EXIT_INPUT, App
from cardiacnets.edge.cli_params import (
    BATCH_HELP,
    SCREEN_HELP,
    Actors,
    Address,
    BatchFhirTransaction,
    BatchOut,
    BatchSize,
    CineDir,
    CineFlag,
    CineSteps,
    CpusPerActor,
    DicomSrPath,
    EcgFile,
    Engine,
    Exclude,
    FhirPath,
    FhirTransaction,
    GpusPerActor,
    Include,
    IncludePhi,
    JsonFlag,
    JsonOut,
    OutputFormat,
    PhiColumns,
    Quiet,
    ReportPath,
    ReportSignal,
    Source,
    Streams,
    TrustedKeys,
    Workers,
)
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


@app.command("screen", help=SCREEN_HELP)
def screen(
    file: EcgFile,
    bundle: BundleOption = None,
    as_json: JsonFlag = False,
    out: JsonOut = None,
    report: ReportPath = None,
    report_signal: ReportSignal = "raw",
    cine: CineFlag = False,
    cine_dir: CineDir = None,
    cine_steps: CineSteps = None,
    fhir: FhirPath = None,
    fhir_transaction: FhirTransaction = False,
    dicom_sr: DicomSrPath = None,
    device: DeviceOption = "auto",
    allow_fallback: AllowFallbackOption = False,
    operating_point: OperatingPointOption = None,
    trusted_key: TrustedKeys = [],  # noqa: B006 - typer's default for a repeatable option, never mutated
    include_phi: IncludePhi = False,
) -> None:
    from cardiacnets.edge.screen import Screener
    from cardiacnets.edge.summary import render_result

    html_report = _check_screen_outputs(report, report_signal, cine, cine_dir)
    screener = Screener(bundle, device=device, operating_point=_operating_point(operating_point),
                        trusted_keys=trusted_key, allow_fallback=allow_fallback)  # fmt: skip
    result, prepared = screener.screen_file(file, include_phi=include_phi, keep_signal=report is not None)
    written: list[str] = []
    cine_gifs = None
    if cine:
        from cardiacnets.edge.cine import generate_cines

        cine_info, cine_gifs = generate_cines(
            screener.bundle, prepared, out_dir=cine_dir, stem=file.stem, device=device, steps=cine_steps,
            allow_fallback=allow_fallback,
        )  # fmt: skip
        result["cine"] = cine_info
        written += [p for view in cine_info["views"].values() for p in view.get("files", {}).values()]
        for view, info in cine_info["views"].items():
            if info.get("refused"):
                err.print(f"cine {view}: {info['refused']}", highlight=False, soft_wrap=True)
    written += _write_hospital_outputs(result, fhir, fhir_transaction, dicom_sr, include_phi)
    if report is not None:
        from cardiacnets.edge.report import write_report

        try:
            write_report(result, prepared, report, cine_gifs if html_report else None, signal=report_signal,
                         include_phi=include_phi)  # fmt: skip
        except OSError as exc:
            raise OutputError(f"cannot write {report}: {exc.strerror or exc}") from None
        written.append(str(report))
    text = json.dumps(result, indent=2, default=str) + "\n"
    if out is not None and str(out) != "-":
        _write_text(out, text)
        written.append(str(out))
    if as_json or (out is not None and str(out) == "-"):
        sys.stdout.write(text)
    else:
        Console().print(render_result(result), highlight=False)
    for path in written:
        err.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _check_screen_outputs(report: Path | None, report_signal: str, cine: bool, cine_dir: Path | None) -> bool:
    """Usage errors of ``screen``'s output options; whether the report is HTML (the one that can hold cines)."""
    if report_signal not in ("raw", "cleaned"):
        raise typer.BadParameter(f"{report_signal!r}: choose raw or cleaned", param_hint="--report-signal")
    if report is not None and report.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise typer.BadParameter(f"{report.name}: use a .html or .pdf file name", param_hint="--report")
    html_report = report is not None and report.suffix.lower() in (".html", ".htm")
    if cine and not (html_report or cine_dir):
        raise typer.BadParameter("say where the cines go: an HTML --report, --cine-dir DIR or both",
                                 param_hint="--cine")  # fmt: skip
    return html_report


def _write_hospital_outputs(
    result: dict[str, Any], fhir: Path | None, transaction: bool, dicom_sr: Path | None, include_phi: bool
) -> list[str]:
    """``--fhir`` and ``--dicom-sr``: the result as a FHIR Bundle and as a DICOM SR; the paths written."""
    if fhir is None and dicom_sr is None:
        if transaction:
            raise typer.BadParameter("--fhir-transaction needs --fhir PATH", param_hint="--fhir-transaction")
        return []
    from cardiacnets.edge.hospital import require_hospital_extra

    require_hospital_extra()
    written = []
    if fhir is not None:
        from cardiacnets.edge.hospital.fhir import fhir_bundle, fhir_json

        bundle = fhir_bundle(result, include_phi=include_phi, transaction=transaction)
        _write_text(fhir, fhir_json(bundle, indent=2) + "\n")
        written.append(str(fhir))
    if dicom_sr is not None:
        from cardiacnets.edge.hospital.dicom_sr import write_dicom_sr

        try:
            write_dicom_sr(result, dicom_sr, include_phi=include_phi)
        except OSError as exc:
            raise OutputError(f"cannot write {dicom_sr}: {exc.strerror or exc}") from None
        written.append(str(dicom_sr))
    return written


@app.command("batch", help=BATCH_HELP)
def batch(
    source: Source,
    out: BatchOut,
    bundle: BundleOption = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    streams: Streams = None,
    device: DeviceOption = "auto",
    allow_fallback: AllowFallbackOption = False,
    operating_point: OperatingPointOption = None,
    trusted_key: TrustedKeys = [],  # noqa: B006 - typer's default for a repeatable option, never mutated
    include_phi: PhiColumns = False,
    quiet: Quiet = False,
    include: Include = [],  # noqa: B006
    exclude: Exclude = [],  # noqa: B006
    output_format: OutputFormat = None,
    fhir_transaction: BatchFhirTransaction = False,
    engine: Engine = "builtin",
    address: Address = None,
    actors: Actors = None,
    gpus_per_actor: GpusPerActor = None,
    cpus_per_actor: CpusPerActor = None,
) -> None:
    run = _batch_engine(engine, address=address, actors=actors, gpus_per_actor=gpus_per_actor,
                        cpus_per_actor=cpus_per_actor)  # fmt: skip
    summary = run(
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
        include=include,
        exclude=exclude,
        allow_fallback=allow_fallback,
        **_fhir_batch_options(output_format, fhir_transaction, engine),
    )
    _print_batch_summary(summary, out)
    if summary.error or summary.errors_before:  # the job's output, resumed runs included, holds error rows
        raise typer.Exit(EXIT_INPUT)


def _print_batch_summary(summary: Any, out: Path) -> None:
    """What a batch run did, on stderr: counts, rate, and what was skipped."""
    from cardiacnets.edge.batch import summary_dict

    info = summary_dict(summary)
    err.print(
        f"{info['inputs']} inputs: {info['ok']} ok, {info['qc_failed']} qc_failed, {info['error']} error"
        f" ({info['already_done']} already in {out}); {info['seconds']} s, {info['files_per_second']} files/s",
        highlight=False,
        soft_wrap=True,
    )
    skipped = [f"{n} {kind} file{'s' if n > 1 else ''} (not an ECG)" for kind, n in info["not_ecg"].items()]
    skipped += [f"{info['excluded']} by --include/--exclude"] if info["excluded"] else []
    if skipped:
        err.print("skipped: " + ", ".join(skipped), highlight=False, soft_wrap=True)


def _fhir_batch_options(output_format: str | None, transaction: bool, engine: str) -> dict[str, Any]:
    """``--format fhir``: the keyword that makes ``run_batch`` write FHIR NDJSON (none for the row formats)."""
    if output_format is None:
        if transaction:
            raise typer.BadParameter("--fhir-transaction needs --format fhir", param_hint="--fhir-transaction")
        return {}
    if output_format != "fhir":
        raise typer.BadParameter(f"{output_format!r}: the only --format is fhir (rows: by --out extension)",
                                 param_hint="--format")  # fmt: skip
    if engine != "builtin":
        raise typer.BadParameter("--format fhir needs --engine builtin", param_hint="--format")
    from cardiacnets.edge.hospital import require_hospital_extra

    require_hospital_extra()
    return {"fhir_transaction": transaction}


def _batch_engine(engine: str, **ray_options: Any) -> Callable[..., Any]:
    """What ``cnscreen batch`` runs: the built-in engine's ``run_batch``, or ``run_ray_batch`` with the options of
    ``--engine ray`` bound (Ray is imported only then)."""
    if engine == "builtin":
        given = [f"--{name.replace('_', '-')}" for name, value in ray_options.items() if value is not None]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} need --engine ray", param_hint="--engine")
        from cardiacnets.edge.batch import run_batch

        return run_batch
    if engine != "ray":
        raise typer.BadParameter(f"{engine!r}: choose builtin or ray", param_hint="--engine")
    from cardiacnets.edge.cluster import run_ray_batch

    return functools.partial(run_ray_batch, **ray_options)


@app.command("denoise")
def denoise(
    source: Path = typer.Argument(..., help="ECG file (any supported format), directory tree or .zip archive."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output file: .hea (WFDB), .csv, .edf or .xml (HL7 aECG); '-' = CSV on stdout. For a directory or zip"
        " source: a folder (the inputs' relative paths, plus denoise-log.csv; rerun to resume).",
    ),
    fs: float | None = typer.Option(None, "--fs", help="Resample the cleaned ECG to this rate, Hz (default: its own)."),
    fmt: str | None = typer.Option(
        None, "--format", help="wfdb, csv, edf or aecg: the files written for a directory or zip source (default csv)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also draw raw above cleaned on ECG paper: .png, .pdf or .svg (one file only)."
    ),
    bundle: BundleOption = None,
    force: bool = typer.Option(False, "--force", help="Replace existing output files."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write the cleaned ECG in millivolts: the bundle's versioned cleaning (baseline removal, wavelet denoising,
    smoothing, as the model's preprocessing does, without its scaling) of the whole record, at its own rate or --fs.
    Patient identifiers are not written.

    Exit codes: 0 written; 1 user error (unknown extension or format, bad --fs); 3 the file could not be read, or some
    inputs of a folder or zip (their rows in denoise-log.csv say why); 4 an output exists (--force replaces it) or
    cannot be written; 5 the bundle failed verification.

    Examples:

      cnscreen denoise ecg.xml --out clean.csv

      cnscreen denoise ecg.xml --out clean.hea --fs 500 --plot clean.pdf

      cnscreen denoise /archive/ecg --out /archive/clean-edf --format edf
    """
    from cardiacnets.edge.denoise import DenoiseSummary, denoise, file_line, load_job, summary_line

    result = denoise(source, out, load_job(bundle, fs), fmt=fmt, plot=plot, force=force, progress=not quiet)
    if isinstance(result, DenoiseSummary):
        err.print(summary_line(result, out), highlight=False, soft_wrap=True)
        if result.error or result.errors_before:  # the job's log, resumed runs included, holds error rows
            raise typer.Exit(EXIT_INPUT)
        return
    if result.data is not None:
        sys.stdout.buffer.write(result.data)
        sys.stdout.flush()
    err.print(file_line(result), highlight=False, soft_wrap=True)


_SUBCOMMANDS = {"inspect", "batch", "screen", "denoise"}


def main(argv: list[str] | None = None) -> None:
    """``cnscreen FILE`` is short for ``cnscreen screen FILE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in _SUBCOMMANDS:
        args.insert(0, "screen")
    app(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
