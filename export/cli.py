"""``cnexport``: ONNX export, TensorRT engines, model bundles, verification and benchmarks.

User errors print one line and exit 1 (``CNS_DEBUG=1`` shows the traceback); usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from cardiacnets.cli_options import VerboseOption
from cardiacnets.cli_support import EXIT_BUNDLE, App

app = App(
    prog="cnexport",
    add_completion=False,
    no_args_is_help=True,
    help="Export CardiacNets models and build verified bundles. Examples:\n\n"
    "  cnexport bundle --screening runs/finetune --out bundle/\n\n"
    "  cnexport bundle --screening runs/finetune --diffusion runs/ecg2cmr/pipeline --out bundle/\n\n"
    "  cnexport verify bundle/\n\n"
    "  cnexport bundle-update-cine bundle/ --pipeline runs/demo/pipeline-la --version 0.2.1\n\n"
    "  cnexport bundle-update-screening bundle/ --screening runs/ft-masked --version 0.3.0 --trust-data synthetic\n\n"
    "  cnexport bundle-add-lead-sets bundle/ --from bundle-masked/ --version 0.3.0\n\n"
    "  cnexport onnx --model runs/finetune/best --out screening.onnx\n\n"
    "  cnexport trt bundle/            (needs TensorRT and an NVIDIA GPU)\n\n"
    "  cnexport bench --bundle bundle/ --batches 1,8,32",
)


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
    model: Path | None = typer.Option(None, "--model", help="Saved screening model or training run directory."),
    diffusion: Path | None = typer.Option(None, "--diffusion", help="ECG2CMR pipeline directory."),
    out: Path = typer.Option(..., "--out", help="Output .onnx file (--model) or directory (--diffusion, --encoder)."),
    encoder: bool = typer.Option(False, "--encoder", help="Export the model's ECG encoder (ECG -> tokens) instead."),
    verbose: VerboseOption = False,
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
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bundle(
    screening: Path = typer.Option(..., "--screening", help="Saved screening model or training run directory."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to create."),
    diffusion: list[Path] = typer.Option(
        [], "--diffusion", help="ECG2CMR pipeline directory, one per view (repeat for SA and LA)."
    ),
    eval_source: str = typer.Option("synthetic", help="'synthetic' or a dataset directory, for the accuracy cost."),
    eval_split: str = typer.Option("test", help="Split the variants' accuracy cost is measured on."),
    eval_subjects: int = typer.Option(600, help="Synthetic cohort size (its test split is used)."),
    eval_max: int = typer.Option(256, help="At most this many subjects of the split."),
    seed: int = typer.Option(0, help="Synthetic cohort seed."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the accuracy cost (the default stays FP32)."),
    variants: str = typer.Option("int8,fp16", help="Precision variants of the screening graph (comma list or '')."),
    name: str | None = typer.Option(None, help="Bundle name (default from the model directory)."),
    bundle_version: str | None = typer.Option(None, "--version", help="Bundle version string."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    cine_fp16: bool = typer.Option(True, "--cine-fp16/--no-cine-fp16", help="Also ship FP16 denoisers (GPU)."),
    cine_weights_fp16: bool = typer.Option(
        False, "--cine-weights-fp16", help="Store the cine graphs' weights as FP16 (FP32 compute, ~half the size)."
    ),
    trust_data: str | None = typer.Option(
        None, "--trust-data", help="Fit trust artefacts on this cohort ('synthetic' or a dataset directory)."
    ),
    trust_subjects: int = typer.Option(6000, help="Synthetic trust cohort size (same seed as --seed)."),
    trust_report: Path | None = typer.Option(None, "--trust-report", help="Write the trust evaluation report here."),
    verbose: VerboseOption = False,
) -> None:
    """Build a verified bundle: screening.onnx + INT8/FP16 variants (+ cine/ parts) + trust.json + manifest.json.

    Without --trust-data the bundle has no calibration, intervals or out-of-distribution check (cnexport trust can add
    them later).

    Examples:\n
      cnexport bundle --screening runs/finetune --out bundle/\n
      cnexport bundle --screening model/ --diffusion pipe-sa/ --diffusion pipe-la/ --out bundle/ --eval-subjects 1000
    """
    _setup_logging(verbose)
    from cardiacnets.export.bundle_builder import build_bundle, load_screening, preprocess_from_metadata
    from cardiacnets.export.precision import load_eval_split

    wanted = [v.strip() for v in variants.split(",") if v.strip()]
    split = None
    if not no_eval and wanted:
        _, metadata, _ = load_screening(screening)
        typer.echo(f"loading the {eval_source} {eval_split} split for the accuracy cost...", err=True)
        split = load_eval_split(eval_source, split=eval_split, n_subjects=eval_subjects, seed=seed,
                                preprocess=preprocess_from_metadata(metadata), max_items=eval_max)  # fmt: skip
    trust = None
    if trust_data is not None:
        from cardiacnets.export.trust_fit import TrustData

        trust = TrustData(source=trust_data, n_subjects=trust_subjects if trust_data == "synthetic" else None,
                          seed=seed)  # fmt: skip
    manifest = build_bundle(screening, out, diffusion=diffusion or None, eval_split=split, variants=wanted,
                            name=name, cine_fp16=cine_fp16, cine_weights_fp16=cine_weights_fp16,
                            version=bundle_version, overwrite=force, trust_data=trust,
                            trust_report=trust_report)  # fmt: skip
    spec = manifest["models"]["screening"]
    typer.echo(f"wrote {out}: {len(manifest['files'])} files; screening default variant {spec['default_variant']}"
               f" ({spec['default_variant_reason']})", err=True)  # fmt: skip
    typer.echo(str(out))


@app.command()
def verify(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory."),
    no_hashes: bool = typer.Option(False, "--no-hashes", help="Check presence only, not sha256."),
    trusted_key: list[Path] = typer.Option([], "--trusted-key", help="Also require a valid signature by this key."),
) -> None:
    """Check a bundle: manifest and its digest (an edited manifest fails), format version, every file present with
    its sha256, and with --trusted-key its signature. Exit 0 valid, 5 otherwise (every problem on stderr).

    Examples:\n
      cnexport verify bundle/\n
      cnexport verify bundle/ --trusted-key team.pub
    """
    from cardiacnets.bundle import verify_bundle

    problems = verify_bundle(bundle_dir, check_hashes=not no_hashes)
    if problems:
        for problem in problems:
            typer.echo(f"cnexport: invalid bundle: {problem}", err=True)
        raise typer.Exit(EXIT_BUNDLE)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    signer = ""
    if trusted_key:
        from cardiacnets.signing import check_signature

        signer = f"; signed by trusted key {check_signature(bundle_dir, manifest['digest'], trusted_key)}"
    typer.echo(f"ok: {bundle_dir} ({len(manifest['files'])} files verified; digest {manifest['digest']}{signer})")


@app.command("bundle-update-cine")
def bundle_update_cine(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle to update."),
    pipeline: Path = typer.Option(..., "--pipeline", help="EcgToCmrPipeline directory of the view to replace."),
    out: Path | None = typer.Option(None, "--out", help="New bundle directory (default: replace BUNDLE in place)."),
    bundle_version: str = typer.Option(..., "--version", help="Version string of the updated bundle."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    verbose: VerboseOption = False,
) -> None:
    """Replace one view's denoiser and frame decoder graphs in a bundle (exported and parity-checked as cnexport
    bundle does, FP16-stored weights as before); everything else stays byte for byte. The pipeline's ECG encoder must
    compute what the bundle's shared ECG encoder graph computes. Manifest hashes and digest are recomputed and the
    result is verified before it replaces anything.

    Examples:\n
      cnexport bundle-update-cine bundle/ --pipeline runs/demo/pipeline-la --version 0.2.1\n
      cnexport bundle-update-cine bundle/ --pipeline runs/demo/pipeline-la --version 0.2.1 --out bundle-new/
    """
    _setup_logging(verbose)
    from cardiacnets.export.bundle_update import update_bundle_cine

    target = out if out is not None else bundle_dir
    manifest = update_bundle_cine(bundle_dir, pipeline, target, version=bundle_version, overwrite=force)
    typer.echo(f"wrote {target} (version {manifest['version']}, digest {manifest['digest']})", err=True)
    typer.echo(str(target))


@app.command("bundle-update-screening")
def bundle_update_screening(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle to update."),
    screening: Path = typer.Option(..., "--screening", help="Saved screening model or fine-tuning run directory."),
    out: Path | None = typer.Option(None, "--out", help="New bundle directory (default: replace BUNDLE in place)."),
    bundle_version: str = typer.Option(..., "--version", help="Version string of the updated bundle."),
    trust_data: str | None = typer.Option(
        None, "--trust-data", help="Re-fit the trust artefacts on 'synthetic' or a dataset directory."
    ),
    trust_subjects: int = typer.Option(6000, "--trust-subjects", help="Synthetic trust cohort size."),
    seed: int = typer.Option(0, help="Synthetic trust cohort seed (the training cohort's)."),
    report: Path | None = typer.Option(None, "--report", help="Write the trust report (report.md, ...) here."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    verbose: VerboseOption = False,
) -> None:
    """Replace a bundle's screening model (exported and parity-checked as cnexport bundle does) and re-fit its trust
    artefacts for it, per declared lead set; the cine graphs stay byte for byte. The new model's thresholds, training
    data and lead sets replace the old ones. Manifest hashes and digest are recomputed and the result is verified
    before it replaces anything.

    Examples:\n
      cnexport bundle-update-screening bundle/ --screening runs/ft-masked --version 0.3.0 --trust-data synthetic\n
      cnexport bundle-update-screening bundle/ --screening runs/ft --version 0.3.0 --trust-data data/ukb --out new/
    """
    _setup_logging(verbose)
    from cardiacnets.export.bundle_update import update_bundle_screening
    from cardiacnets.export.trust_fit import TrustData, write_trust_report

    data = None
    if trust_data is not None:
        data = TrustData(source=trust_data, n_subjects=trust_subjects if trust_data == "synthetic" else None, seed=seed)
    target = out if out is not None else bundle_dir
    manifest, evaluation = update_bundle_screening(bundle_dir, screening, target, version=bundle_version,
                                                   trust_data=data, overwrite=force,
                                                   progress=lambda text: typer.echo(text, err=True))  # fmt: skip
    if report is not None and evaluation is not None:
        spec = json.loads((target / manifest["trust"]["file"]).read_text())
        command = "cnexport bundle-update-screening " + " ".join(sys.argv[2:])
        write_trust_report(evaluation, spec, report, title=f"Trust artefacts of {manifest['name']}", command=command)
    typer.echo(f"wrote {target} (version {manifest['version']}, digest {manifest['digest']})", err=True)
    typer.echo(str(target))


@app.command("bundle-add-lead-sets")
def bundle_add_lead_sets(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle to extend (its model stays for 12 leads)."),
    source: Path = typer.Option(..., "--from", help="Bundle of a lead-masked model with per-lead-set trust data."),
    out: Path | None = typer.Option(None, "--out", help="New bundle directory (default: replace BUNDLE in place)."),
    bundle_version: str = typer.Option(..., "--version", help="Version string of the new bundle."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    verbose: VerboseOption = False,
) -> None:
    """Add another bundle's lead-masked screening model for the reduced lead sets (6 limb leads, I+II, lead I) with
    its per-lead-set trust artefacts; this bundle's model, thresholds and trust artefacts stay those of 12-lead ECGs,
    so 12-lead results do not change. Manifest hashes and digest are recomputed and the result verified.

    Example:\n
      cnexport bundle-add-lead-sets bundle/ --from bundle-masked/ --version 0.3.0
    """
    _setup_logging(verbose)
    from cardiacnets.export.bundle_update import add_lead_set_model

    target = out if out is not None else bundle_dir
    manifest = add_lead_set_model(bundle_dir, source, target, version=bundle_version, overwrite=force)
    typer.echo(f"wrote {target} (version {manifest['version']}, lead sets {', '.join(manifest['lead_sets'])},"
               f" digest {manifest['digest']})", err=True)  # fmt: skip
    typer.echo(str(target))


@app.command()
def trust(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle whose trust artefacts to (re)fit."),
    out: Path = typer.Option(..., "--out", help="New bundle directory (a copy with the fitted trust.json)."),
    data: str = typer.Option("synthetic", "--data", help="'synthetic' or a dataset directory (its train/val/test)."),
    subjects: int = typer.Option(6000, help="Synthetic cohort size (a superset of the training cohort, same seed)."),
    seed: int = typer.Option(0, help="Synthetic cohort seed (the training cohort's)."),
    max_items: int | None = typer.Option(None, help="At most this many subjects per split."),
    coverage: float = typer.Option(0.9, help="Nominal coverage of the phenotype intervals."),
    alpha: float = typer.Option(0.02, help="Share of in-distribution validation ECGs the OOD check may flag."),
    drop_variant: list[str] = typer.Option([], "--drop-variant", help="Remove a screening precision variant."),
    report: Path | None = typer.Option(None, "--report", help="Write report.md, results.json, reliability.png here."),
    bundle_version: str | None = typer.Option(None, "--version", help="Version string of the new bundle."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    verbose: VerboseOption = False,
) -> None:
    """Fit a bundle's trust artefacts on its training cohort: calibrated probabilities and operating thresholds with
    uncertainty bands, phenotype identities and conformal intervals, the out-of-distribution check.

    The train split is the reference, the val split calibrates, the test split is reported (--report).

    Examples:\n
      cnexport trust bundle/ --out bundle-trusted/ --data data/ukb\n
      cnexport trust bundle/ --out bundle-trusted/ --data synthetic --subjects 6000 --seed 0 --report reports/trust
    """
    _setup_logging(verbose)
    from cardiacnets.export.trust_fit import TrustData, refit_bundle_trust, write_trust_report

    manifest, evaluation = refit_bundle_trust(
        bundle_dir, out, TrustData(source=data, n_subjects=subjects if data == "synthetic" else None, seed=seed,
                                   max_items=max_items),
        drop_variants=tuple(drop_variant), coverage=coverage, alpha=alpha, overwrite=force, version=bundle_version,
        progress=lambda text: typer.echo(text, err=True),
    )  # fmt: skip
    if report is not None:
        spec = json.loads((out / manifest["trust"]["file"]).read_text())
        command = "cnexport trust " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "cnexport trust"
        write_trust_report(evaluation, spec, report, title=f"Trust artefacts of {manifest['name']}",
                           command=command)  # fmt: skip
    summary = manifest["trust"]["evaluation"]
    typer.echo(f"wrote {out} (digest {manifest['digest'][:16]}): test split ECE "
               + ", ".join(f"{d} {e['raw']:.3f}->{e['calibrated']:.3f}" for d, e in summary["ece"].items())
               + f"; interval coverage {summary['coverage_mean']:.1%} (nominal {summary['coverage_nominal']:.0%});"
               f" OOD flag rate {summary['ood_flag_rate']:.1%}", err=True)  # fmt: skip
    typer.echo(str(out))


@app.command()
def keygen(
    private: Path = typer.Option(..., "--private", help="Private key file to create (PEM, owner-only)."),
    public: Path = typer.Option(..., "--public", help="Public key file to create (PEM), to give to screening sites."),
) -> None:
    """Create an ed25519 key pair for signing bundles.

    Example:\n
      cnexport keygen --private team.key --public team.pub
    """
    from cardiacnets.signing import generate_keypair

    key = generate_keypair(private, public)
    typer.echo(f"key {key}: private {private}, public {public}")


@app.command()
def sign(
    bundle_dir: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory to sign."),
    key: Path = typer.Option(..., "--key", help="ed25519 private key (PEM), e.g. from cnexport keygen."),
) -> None:
    """Sign a verified bundle's digest (writes signature.json); cnscreen --trusted-key then accepts it.

    Example:\n
      cnexport sign bundle/ --key team.key
    """
    from cardiacnets.signing import sign_bundle

    entry = sign_bundle(bundle_dir, key)
    typer.echo(f"signed {bundle_dir} (digest {entry['digest'][:16]}) with key {entry['key_id']}")


@app.command()
def trt(
    target: Path = typer.Argument(..., metavar="BUNDLE_OR_ONNX", help="A bundle directory or an FP16 .onnx file."),
    cache: Path | None = typer.Option(
        None, help="Engine cache directory (default: $CNS_TRT_CACHE or ~/.cache/cardiacnets/trt)."
    ),
    max_batch: int = typer.Option(32, min=1, help="Largest batch of the screening graph's optimisation profile."),
    view: list[str] = typer.Option([], "--view", help="Only these cine views (default: every view); repeatable."),
    opt_level: int = typer.Option(3, "--opt-level", min=0, max=5, help="TensorRT builder optimisation level."),
    workspace_gib: float = typer.Option(4.0, "--workspace-gib", min=0.25, help="TensorRT builder workspace, GiB."),
    verbose: VerboseOption = False,
) -> None:
    """Build (or reuse cached) TensorRT engines: the FP16 screening graph and each cine view's graphs (FP16 UNet when
    the bundle has one, FP32 encoder and decoder); check engine-vs-ONNX parity on the CPU and time them.

    Engines are cached by graph, GPU, TensorRT version, optimisation level, workspace and profile. Needs TensorRT, a
    CUDA build of PyTorch and an NVIDIA GPU; without any of them it says which, with the versions found, and exits 1.

    Example:\n
      cnexport trt bundle/ --max-batch 64 --view sa
    """
    _setup_logging(verbose)
    from cardiacnets.export.trt_jobs import build_for_target

    report = build_for_target(target, cache_dir=cache, max_batch=max_batch, views=view or None,
                              optimization_level=opt_level, workspace_bytes=int(workspace_gib * (1 << 30)))  # fmt: skip
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bench(
    bundle: Path | None = typer.Option(
        None,
        "--bundle",
        help="Bundle whose shipped screening graphs to time: FP32 and each variant it lists "
        "(default when neither --screening nor --model is given: the default bundle).",
    ),
    screening: Path | None = typer.Option(
        None,
        "--screening",
        help="Saved torch screening model: timed as torch eager beside --bundle's graphs, or "
        "alone exported to FP32 and INT8 graphs for the run.",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Registry model with random weights (e.g. screening-ecg-tiny), exported for the run."
    ),
    batches: str = typer.Option("1,8,32", help="Batch sizes."),
    threads: int = typer.Option(0, help="Threads for torch and onnxruntime (0: all cores)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Interleaved timing rounds per batch size."),
    out: Path | None = typer.Option(None, help="Write the JSON report here ('-' for stdout)."),
    verbose: VerboseOption = False,
) -> None:
    """Time screening inference per batch size (latency, throughput, ratios between runtimes): a bundle's own graphs
    (FP32 and each variant it lists, onnxruntime; its name, version and digest in the report), with torch eager only
    when --screening gives the saved torch model; or a model exported for the run (--model, or --screening alone:
    torch eager vs ORT FP32 vs ORT INT8, FLOPs and matmul efficiency).

    Examples:\n
      cnexport bench --out -                                  (the default bundle)\n
      cnexport bench --bundle bundle/ --batches 1,8,32 --out bench.json\n
      cnexport bench --bundle bundle/ --screening runs/finetune\n
      cnexport bench --model screening-ecg-small --batches 1,8
    """
    _setup_logging(verbose)
    from cardiacnets.export.bench import bench_bundle, bench_screening

    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--batches must be a comma list of integers, got {batches!r}") from None
    if bundle is not None and model is not None:
        raise typer.BadParameter("give --bundle (its shipped graphs) or --model (a random-weights model), not both")
    if model is None and (bundle is not None or screening is None):
        report = bench_bundle(bundle, screening_dir=screening, batches=sizes, threads=threads or None, rounds=rounds)
    else:
        report = bench_screening(model_name=model or "screening-ecg-tiny", screening_dir=screening, batches=sizes,
                                 threads=threads or None, rounds=rounds)  # fmt: skip
    text = json.dumps(report, indent=2)
    if out is None or str(out) == "-":
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}", err=True)


def main(argv: list[str] | None = None) -> None:
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="cnexport")


if __name__ == "__main__":
    main()
