# ruff: noqa: B008 - typer declares options as argument defaults
"""``cnexport``: ONNX export, TensorRT engines, model bundles, verification and benchmarks.

User errors print one line and exit 1 (``CNS_DEBUG=1`` shows the traceback); usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer

from cardiacnets.errors import CardiacNetsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Export CardiacNets models and build verified bundles. Examples:\n\n"
    "  cnexport bundle --screening runs/finetune --out bundle/\n\n"
    "  cnexport bundle --screening runs/finetune --diffusion runs/ecg2cmr/pipeline --out bundle/\n\n"
    "  cnexport verify bundle/\n\n"
    "  cnexport onnx --model runs/finetune/best --out screening.onnx\n\n"
    "  cnexport trt bundle/            (needs TensorRT and an NVIDIA GPU)\n\n"
    "  cnexport bench --screening runs/finetune --batches 1,8,32",
)


def _fail(exc: CardiacNetsError) -> None:
    if os.environ.get("CNS_DEBUG"):
        raise exc
    typer.echo(f"cnexport: error: {' '.join(str(exc).split())}", err=True)
    raise typer.Exit(1)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


@app.command()
def version() -> None:
    """Print the toolkit version."""
    from cardiacnets import __version__

    typer.echo(__version__)


@app.command()
def onnx(
    model: Path | None = typer.Option(None, "--model", help="Saved screening model or training run directory."),  # noqa: UP007
    diffusion: Path | None = typer.Option(None, "--diffusion", help="ECG2CMR pipeline directory."),  # noqa: UP007
    out: Path = typer.Option(..., "--out", help="Output .onnx file (--model) or directory (--diffusion, --encoder)."),
    encoder: bool = typer.Option(False, "--encoder", help="Export the model's ECG encoder (ECG -> tokens) instead."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Export one graph with checker and parity checks; prints the parity report as JSON.

    Examples:\n
      cnexport onnx --model runs/finetune --out screening.onnx\n
      cnexport onnx --model runs/finetune --encoder --out ecg_encoder.onnx\n
      cnexport onnx --diffusion runs/ecg2cmr/pipeline --out cine/
    """
    _setup_logging(verbose)
    if (model is None) == (diffusion is None):
        raise typer.BadParameter("give exactly one of --model or --diffusion")
    try:
        from cardiacnets.export import onnx_export

        if diffusion is not None:
            from cardiacnets.diffusion.pipeline import EcgToCmrPipeline

            results = onnx_export.export_pipeline(EcgToCmrPipeline.from_pretrained(diffusion), out)
            report = {k: {"file": str(r.path), "exporter": r.exporter, "parity": r.parity} for k, r in results.items()}
        else:
            from cardiacnets.export.bundle_builder import load_screening

            screening, _, _ = load_screening(model)
            if encoder:
                result = onnx_export.export_ecg_encoder(screening.encoder, out)
            else:
                result = onnx_export.export_screening(screening, out)
            report = {result.kind: {"file": str(result.path), "exporter": result.exporter, "parity": result.parity}}
    except CardiacNetsError as exc:
        _fail(exc)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bundle(
    screening: Path = typer.Option(..., "--screening", help="Saved screening model or training run directory."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to create."),
    diffusion: list[Path] = typer.Option(  # noqa: B008
        [], "--diffusion", help="ECG2CMR pipeline directory, one per view (repeat for SA and LA)."
    ),
    eval_source: str = typer.Option("synthetic", help="'synthetic' or a dataset directory, for the accuracy cost."),
    eval_split: str = typer.Option("test", help="Split the variants' accuracy cost is measured on."),
    eval_subjects: int = typer.Option(600, help="Synthetic cohort size (its test split is used)."),
    eval_max: int = typer.Option(256, help="At most this many subjects of the split."),
    seed: int = typer.Option(0, help="Synthetic cohort seed."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the accuracy cost (the default stays FP32)."),
    variants: str = typer.Option("int8,fp16", help="Precision variants of the screening graph (comma list or '')."),
    name: str | None = typer.Option(None, help="Bundle name (default from the model directory)."),  # noqa: UP007
    bundle_version: str | None = typer.Option(None, "--version", help="Bundle version string."),  # noqa: UP007
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    cine_fp16: bool = typer.Option(True, "--cine-fp16/--no-cine-fp16", help="Also ship FP16 denoisers (GPU)."),
    cine_weights_fp16: bool = typer.Option(
        False, "--cine-weights-fp16", help="Store the cine graphs' weights as FP16 (FP32 compute, ~half the size)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build a verified bundle: screening.onnx + INT8/FP16 variants (+ cine/ parts) + manifest.json.

    Examples:\n
      cnexport bundle --screening runs/finetune --out bundle/\n
      cnexport bundle --screening model/ --diffusion pipe-sa/ --diffusion pipe-la/ --out bundle/ --eval-subjects 1000
    """
    _setup_logging(verbose)
    try:
        from cardiacnets.export.bundle_builder import build_bundle, load_screening, preprocess_from_metadata
        from cardiacnets.export.precision import load_eval_split

        wanted = [v.strip() for v in variants.split(",") if v.strip()]
        split = None
        if not no_eval and wanted:
            _, metadata, _ = load_screening(screening)
            typer.echo(f"loading the {eval_source} {eval_split} split for the accuracy cost...", err=True)
            split = load_eval_split(eval_source, split=eval_split, n_subjects=eval_subjects, seed=seed,
                                    preprocess=preprocess_from_metadata(metadata), max_items=eval_max)  # fmt: skip
        manifest = build_bundle(screening, out, diffusion=diffusion or None, eval_split=split, variants=wanted,
                                name=name, cine_fp16=cine_fp16, cine_weights_fp16=cine_weights_fp16,
                                version=bundle_version, overwrite=force)  # fmt: skip
    except CardiacNetsError as exc:
        _fail(exc)
    spec = manifest["models"]["screening"]
    typer.echo(f"wrote {out}: {len(manifest['files'])} files; screening default variant {spec['default_variant']}"
               f" ({spec['default_variant_reason']})", err=True)  # fmt: skip
    typer.echo(str(out))


@app.command()
def verify(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory."),
    no_hashes: bool = typer.Option(False, "--no-hashes", help="Check presence only, not sha256."),
) -> None:
    """Check a bundle: manifest, format version, every file present with its sha256. Exit 0 valid, 1 otherwise.

    Example:\n
      cnexport verify bundle/
    """
    from cardiacnets.bundle import verify_bundle

    problems = verify_bundle(bundle_dir, check_hashes=not no_hashes)
    if problems:
        for problem in problems:
            typer.echo(f"cnexport: invalid bundle: {problem}", err=True)
        raise typer.Exit(1)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    typer.echo(f"ok: {bundle_dir} ({len(manifest['files'])} files verified)")


@app.command()
def trt(
    target: Path = typer.Argument(..., metavar="BUNDLE_OR_ONNX", help="A bundle directory or an FP16 .onnx file."),
    cache: Path | None = typer.Option(None, help="Engine cache directory (default: ~/.cache/cardiacnets/trt)."),  # noqa: UP007
    max_batch: int = typer.Option(32, help="Largest batch of the optimisation profile."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build (or reuse cached) TensorRT FP16 engines, check engine-vs-ONNX parity and time them.

    Needs the TensorRT Python package and an NVIDIA GPU; without either it says which is missing and exits 1.

    Example:\n
      cnexport trt bundle/ --max-batch 64
    """
    _setup_logging(verbose)
    try:
        from cardiacnets.export import trt as trt_mod

        report = trt_mod.build_for_target(target, cache_dir=cache, max_batch=max_batch)
    except CardiacNetsError as exc:
        _fail(exc)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bench(
    model: str = typer.Option("screening-ecg-tiny", help="Registry model when no --bundle / --screening is given."),
    screening: Path | None = typer.Option(None, "--screening", help="Saved screening model to time."),  # noqa: UP007
    batches: str = typer.Option("1,8,32", help="Batch sizes."),
    threads: int = typer.Option(0, help="Threads for torch and onnxruntime (0: all cores)."),
    out: Path | None = typer.Option(None, help="Write the JSON report here ('-' for stdout)."),  # noqa: UP007
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Time screening inference: torch eager vs ORT FP32 vs ORT INT8 (ratios), FLOPs and matmul efficiency.

    Example:\n
      cnexport bench --batches 1,8,32 --out -
    """
    _setup_logging(verbose)
    try:
        from cardiacnets.export.bench import bench_screening

        report = bench_screening(model_name=model, screening_dir=screening,
                                 batches=[int(b) for b in batches.split(",")], threads=threads or None)  # fmt: skip
    except ValueError:
        raise typer.BadParameter(f"--batches must be a comma list of integers, got {batches!r}") from None
    except CardiacNetsError as exc:
        _fail(exc)
    text = json.dumps(report, indent=2)
    if out is None or str(out) == "-":
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}", err=True)


def main(argv: list[str] | None = None) -> None:  # noqa: UP007
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="cnexport")


if __name__ == "__main__":
    main()
