"""The options of ``cnscreen screen`` and ``cnscreen batch`` as annotated types, and their help texts, so that the
commands in :mod:`cardiacnets.edge.cli` read as what they do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TRUSTED_KEY_HELP = (
    "Public key (PEM) that must have signed the bundle; repeat for several. Unsigned bundles are refused."
)

# ------------------------------------------------------------------------------------------------------- screen
EcgFile = Annotated[Path, typer.Argument(help="ECG file (any supported format).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout.")]
JsonOut = Annotated[Path | None, typer.Option("--out", help="Also write the JSON result to this file ('-' = stdout).")]
ReportPath = Annotated[
    Path | None,
    typer.Option("--report", help="Write a report: self-contained HTML (.html) or a one-page printable PDF (.pdf)."),
]
ReportSignal = Annotated[
    str,
    typer.Option(
        "--report-signal", help="ECG drawn in the report: raw (as recorded) or cleaned (the model's filtering)."
    ),
]
CineFlag = Annotated[
    bool,
    typer.Option(
        "--cine", help="Generate short- and long-axis cines (GPU recommended): into the HTML report, --cine-dir."
    ),
]
CineDir = Annotated[
    Path | None,
    typer.Option("--cine-dir", help="Also write the cines as GIF, MP4, NIfTI and NumPy files into this folder."),
]
CineSteps = Annotated[
    int | None,
    typer.Option(
        "--cine-steps", min=1, help="Diffusion sampling steps per cine (default: the bundle's scheduler default)."
    ),
]
FhirPath = Annotated[
    Path | None,
    typer.Option(
        "--fhir", help="Also write the result as a FHIR R4 Bundle (JSON) to this file (the [hospital] extra)."
    ),
]
FhirTransaction = Annotated[
    bool, typer.Option("--fhir-transaction", help="Write a transaction Bundle (POST entries) instead of a collection.")
]
DicomSrPath = Annotated[
    Path | None,
    typer.Option("--dicom-sr", help="Also write the result as a DICOM Comprehensive SR (ECG report) to this file."),
]
TrustedKeys = Annotated[list[Path], typer.Option("--trusted-key", help=TRUSTED_KEY_HELP)]
IncludePhi = Annotated[
    bool,
    typer.Option("--include-phi", help="Include patient identifiers (and the full path in the report) in the output."),
]

SCREEN_HELP = """Screen one ECG: calibrated disease probabilities with decisions, phenotypes with intervals, whether the
ECG is like the model's training data, rhythm and intervals, QC.

Exit codes: 0 screened (also when QC fails or the ECG is out of distribution: the output says so); 1 user error;
3 the file could not be read; 4 an output could not be written; 5 the bundle failed verification.

Examples:

  cnscreen ecg.xml

  cnscreen ecg.xml --json --out result.json --report report.html

  cnscreen ecg.xml --report printout.pdf --report-signal cleaned

  cnscreen ecg.xml --cine --report report.html --cine-dir cines/

  cnscreen ecg.xml --device trt --json    (model.execution_provider names what ran)

  cnscreen ecg.xml --operating-point high-specificity --trusted-key team.pub

  cnscreen ecg.dcm --fhir result.fhir.json --dicom-sr result-sr.dcm
"""

# -------------------------------------------------------------------------------------------------------- batch
Source = Annotated[Path, typer.Argument(help="Directory tree, zip archive, or a text file listing one path per line.")]
BatchOut = Annotated[Path, typer.Option("--out", help="Output file: .csv, .jsonl or .parquet (rerun to resume).")]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Reader processes (default: one per CPU core; 1 reads in this process).")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Most ECGs per inference call (default: 2 on the CPU, 32 on a GPU).")
]
Streams = Annotated[
    int | None,
    typer.Option("--streams", help="Inference calls run at once (default: one per CPU core on the CPU, 1 on a GPU)."),
]
PhiColumns = Annotated[bool, typer.Option("--include-phi", help="Add patient identifier columns to the output.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
Include = Annotated[
    list[str],
    typer.Option(
        "--include", help="Only inputs matching this shell pattern (file name, or path with '/'); repeatable."
    ),
]
Exclude = Annotated[list[str], typer.Option("--exclude", help="Leave out inputs matching this pattern; repeatable.")]
OutputFormat = Annotated[
    str | None,
    typer.Option("--format", help="fhir: one FHIR R4 Bundle per input, NDJSON (--out X.ndjson; the [hospital] extra)."),
]
BatchFhirTransaction = Annotated[
    bool,
    typer.Option("--fhir-transaction", help="With --format fhir: transaction Bundles (POST entries), not collections."),
]
Engine = Annotated[
    str,
    typer.Option("--engine", help="builtin (this machine) or ray (Ray Data; the [cluster] extra; --out is a folder)."),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address", help="--engine ray: the cluster, auto, HOST:PORT or ray://HOST:PORT (default: Ray here)."
    ),
]
Actors = Annotated[
    int | None,
    typer.Option("--actors", min=1, help="--engine ray: inference actors (default: one per CPU, or per GPU share)."),
]
GpusPerActor = Annotated[
    float | None,
    typer.Option("--gpus-per-actor", min=0, help="--engine ray: GPUs each inference actor takes (default 0: the CPU)."),
]
CpusPerActor = Annotated[
    float | None,
    typer.Option("--cpus-per-actor", min=0, help="--engine ray: CPUs an actor reserves (default 0; 1 with GPUs)."),
]

BATCH_HELP = """Screen every ECG in an archive; one output row per input file, errors included. Resumable.

With --engine ray the same rows are computed on a Ray cluster (reading as Ray tasks, inference in an actor pool)
and written as a Parquet dataset folder; SOURCE may also be a glob or a URI of any filesystem pyarrow or fsspec
reaches (s3://bucket/ecg/**/*.xml). Rerunning resumes from the folder's manifest; see docs/cluster.md.

Files that are plainly not ECGs (images, PDFs and office documents, README and other text) are counted as skipped,
not screened, and do not change the exit code.

Exit codes: 0 every file screened (QC failures and out-of-distribution ECGs are rows that say so); 3 some files
could not be read (rows with status error, in this run or an earlier interrupted run of the same job); 1 a user
error stopped the run; 2 a usage error; 4 the output could not be written (missing or read-only folder, disk
full; rows already written are kept) or another run is writing it, or it holds rows of another bundle; 5 the
bundle failed verification.

Examples:

  cnscreen batch /archive/ecg --out results.csv

  cnscreen batch ecgs.zip --out results.parquet --workers 4

  cnscreen batch /archive --out results.csv --include '*.xml' --exclude 'test/*'

  cnscreen batch /archive --out results.ndjson --format fhir

  cnscreen batch 's3://bucket/ecg/**/*.xml' --engine ray --address auto --out results/
"""
