"""cntrain data commands: ``generate`` (synthetic cohort to shards), ``convert-ukb``, ``convert-mimic``.

Each command parses its flags, calls one library function with a rich progress bar on stderr, and prints a one-line
summary of the written dataset to stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not os.environ.get("CNS_PROGRESS"),
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _run(action: Callable[[], dict[str, Any]], out: Path | None = None) -> None:
    manifest = action()
    counts = manifest.get("split_counts", {})
    typer.echo(
        f"{manifest['n_subjects']} subjects ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
        f"modalities {', '.join(manifest['modalities'])}, {len(manifest['shards'])} shards"
    )
    skipped = (manifest.get("source") or {}).get("skipped") or {}
    if skipped:
        typer.echo("skipped: " + ", ".join(f"{n} ({reason})" for reason, n in sorted(skipped.items())))
    if out is not None and (out / "conversion_report.md").is_file():
        typer.echo(f"report: {out / 'conversion_report.md'}")


def generate(
    out: Path = typer.Option(..., "--out", help="Dataset directory to write (resumes an interrupted write)."),
    n_subjects: int = typer.Option(..., "--n-subjects", min=1, help="Number of simulated subjects."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed: subject i is a pure function of (seed, i)."),
    no_cines: bool = typer.Option(False, "--no-cines", help="ECG, phenotypes and labels only (much faster)."),
    mode: str = typer.Option("population", "--mode", help="'population' prevalences or 'balanced' case-control."),
    shard_size: int = typer.Option(256, "--shard-size", min=1, help="Subjects per shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset at --out."),
    site: str = typer.Option(
        "default", "--site", help="Simulated hospital: default, us-hospital, community or asia-tertiary."
    ),
) -> None:
    """Generate the synthetic paired ECG-CMR cohort into a sharded dataset.

    Examples:

      cntrain generate --n-subjects 20000 --seed 0 --out data/synth

      cntrain generate --n-subjects 5000 --no-cines --mode balanced --out data/synth-ecg

      cntrain generate --n-subjects 2000 --no-cines --site community --out data/synth-community
    """
    from cardiacnets.datasets import write_synthetic
    from cardiacnets.synth.sites import SITES

    if mode not in ("population", "balanced"):
        raise typer.BadParameter(f"must be 'population' or 'balanced', got {mode!r}", param_hint="--mode")
    if site not in SITES:
        raise typer.BadParameter(f"unknown site {site!r}; known: {', '.join(SITES)}", param_hint="--site")
    with _progress("generating") as update:
        _run(
            lambda: write_synthetic(
                out,
                n_subjects,
                seed=seed,
                with_cines=not no_cines,
                mode=mode,
                shard_size=shard_size,
                overwrite=overwrite,
                progress=update,
                site=site,
            )
        )


def convert_ukb(
    out: Path = typer.Option(..., "--out", help="Dataset directory to write."),
    ecg_dir: Path = typer.Option(..., "--ecg-dir", help="Folder (searched recursively) of <eid>_20205_2_0.xml files."),
    tabular: list[Path] = typer.Option(
        ...,
        "--tabular",
        help="Tabular CSV(s), merged on the participant (repeat the option): legacy names (eid, 31-0.0, 21003-2.0,"
        " 53-2.0, 41270-0.*, 41280-0.*, 24100-2.0..24181-2.0) or Research Analysis Platform names (participant.eid,"
        " p31, p21003_i2, p53_i2, p41270, p41280_a*, p24100_i2..p24181_i2), raw codes or meanings; .csv or .csv.gz.",
    ),
    cmr_dir: Path | None = typer.Option(
        None,
        "--cmr-dir",
        help="Folder of <eid>_20208_2_0.zip and <eid>_20209_2_0.zip; without it the dataset has no cines.",
    ),
    instance: int = typer.Option(2, "--instance", help="Imaging visit instance (2 first, 3 repeat)."),
    window_days: int = typer.Option(
        0, "--window-days", help="Diagnoses up to this many days after imaging count as prevalent."
    ),
    incident: str = typer.Option("negative", "--incident", help="Later diagnoses: 'negative' (label 0) or 'unknown'."),
    shard_size: int = typer.Option(256, "--shard-size", min=1),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified split."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Convert UK Biobank ECG XML, CMR DICOM zips and tabular exports into a sharded dataset.

    A participant whose files cannot be read is skipped with the reason and the run goes on; conversion_report.md
    beside the dataset lists counts, skips, known labels and assumptions. Compressed CMR pixel data (JPEG, JPEG-LS,
    JPEG 2000) needs the decoders: pip install 'cardiacnets[dicom]'.

    Example:

      cntrain convert-ukb --ecg-dir ukb/20205 --cmr-dir ukb/cmr --tabular ukb/main.csv --out data/ukb
    """
    from cardiacnets.converters.ukb import convert_ukb as run

    with _progress("converting UK Biobank") as update:
        _run(
            lambda: run(
                out,
                ecg_dir=ecg_dir,
                tabular=tabular,
                cmr_dir=cmr_dir,
                instance=instance,
                window_days=window_days,
                incident=incident,
                shard_size=shard_size,
                seed=seed,
                overwrite=overwrite,
                progress=update,
            ),
            out,
        )


def convert_mimic(
    out: Path = typer.Option(..., "--out", help="Dataset directory to write."),
    root: Path = typer.Option(..., "--root", help="The mimic-iv-ecg/1.0 folder (record_list.csv, files/...)."),
    ext_icd: Path | None = typer.Option(
        None,
        "--ext-icd",
        help="MIMIC-IV-ECG-Ext-ICD records_w_diag_icd10.csv (labels from all_diag_all).",
    ),
    hosp: Path | None = typer.Option(
        None,
        "--hosp",
        help="MIMIC-IV hosp folder: patients (sex/age) and, without --ext-icd, admissions + diagnoses_icd for labels.",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Convert only the first N records."),
    shard_size: int = typer.Option(256, "--shard-size", min=1),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified subject-level split."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Convert MIMIC-IV-ECG WFDB records (+ labels) into a sharded dataset (ECG and labels; no cines).

    Example:

      cntrain convert-mimic --root mimic-iv-ecg/1.0 --ext-icd records_w_diag_icd10.csv --hosp hosp --out data/mimic
    """
    from cardiacnets.converters.mimic import convert_mimic as run

    with _progress("converting MIMIC-IV-ECG") as update:
        _run(
            lambda: run(
                out,
                root=root,
                ext_icd=ext_icd,
                hosp_dir=hosp,
                limit=limit,
                shard_size=shard_size,
                seed=seed,
                overwrite=overwrite,
                progress=update,
            ),
            out,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("generate")(generate)
    app.command("convert-ukb")(convert_ukb)
    app.command("convert-mimic")(convert_mimic)
