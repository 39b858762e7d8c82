"""``cntrain vae``, ``cntrain diffusion --view sa|la`` and ``cntrain ecg2cmr-report``: the ECG2CMR stages.

Thin commands over the shared loop (same flags as the pretraining stages). ``diffusion`` needs a frame autoencoder
(``--vae``: a ``cntrain vae`` run or a local diffusers AutoencoderKL directory) and the aligned ECG encoder
(``--ecg-encoder``: a ``cntrain align`` run or a saved ECG ViT). The run's ``best/`` holds the EMA denoiser; build a
sampler with ``EcgToCmrPipeline.from_components(ecg_encoder_dir, run/best, vae_dir)``. The stages' ``task:`` options
are :class:`~cardiacnets.training.tasks.vae.VaeTaskConfig` and
:class:`~cardiacnets.training.tasks.diffusion.DiffusionTaskConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cardiacnets.training.cli_stages import stage_command

_EXAMPLES_VAE = """
Examples:

  cntrain vae --data synthetic --n-subjects 256 --view sa --max-steps 500 --out runs/vae-sa
"""

_EXAMPLES_DIFF = """
Examples:

  cntrain diffusion --view sa --vae runs/vae-sa --ecg-encoder runs/align --data synthetic --n-subjects 256 \\
      --model small --set task.num_frames=16 --max-steps 2000 --out runs/ecg2cmr-sa

  cntrain diffusion --view la --vae /models/vae-la --ecg-encoder runs/align --model modelscope --out runs/ecg2cmr-la
"""


def ecg2cmr_report_command(
    pipeline: Path = typer.Option(..., "--pipeline", help="EcgToCmrPipeline directory (either view)."),
    data: str = typer.Option("synthetic", "--data", help="'synthetic' or a dataset directory."),
    n_subjects: int | None = typer.Option(None, "--n-subjects", help="Cohort size (synthetic) or cap."),
    seed: int = typer.Option(0, "--seed", help="Cohort and sampling seed."),
    max_items: int = typer.Option(64, "--max-items", help="Test subjects to generate for."),
    ddim_items: int | None = typer.Option(None, "--ddim-items", help="Subjects for the DDIM-100 comparison."),
    guidance: float = typer.Option(3.0, "--guidance", help="Classifier-free guidance scale."),
    dpm_steps: int = typer.Option(20, "--dpm-steps", help="DPM-Solver++ steps."),
    ddim_steps: int = typer.Option(100, "--ddim-steps", help="DDIM steps."),
    out: Path = typer.Option(..., "--out", help="Report directory (report.md, results.json)."),
) -> None:
    """Generated-vs-real phenotype correlation against shuffled-ECG and unconditional controls; SSIM/PSNR; DDIM-100
    vs DPM-Solver-20.

    Both views go into one --out: run it once per view (the other view's results there are kept).

    Example: cntrain ecg2cmr-report --pipeline runs/demo/pipeline-sa --data runs/demo/cohort --out reports/ecg2cmr

    Example: cntrain ecg2cmr-report --pipeline runs/demo/pipeline-la --data runs/demo/cohort --out reports/ecg2cmr
    """
    import json
    import sys

    from cardiacnets.training.ecg2cmr_report import ecg2cmr_report

    command = "cntrain " + " ".join(sys.argv[1:]) if "ecg2cmr-report" in sys.argv else None
    results = ecg2cmr_report(pipeline, data, out, n_subjects=n_subjects, seed=seed, max_items=max_items,
                             ddim_items=ddim_items, guidance_scale=guidance, dpm_steps=dpm_steps,
                             ddim_steps=ddim_steps, command=command)  # fmt: skip
    typer.echo(json.dumps({k: v for k, v in results.items() if k in ("r", "ssim", "psnr", "seconds_per_cine")}))


def _view_option(help_text: str) -> tuple[str, Any, Any]:
    return ("view", Annotated[str, typer.Option("--view", help=help_text)], "sa")


def _model_option(help_text: str) -> tuple[str, Any, Any]:
    return ("model", Annotated[str | None, typer.Option("--model", help=help_text)], None)


_VAE_HELP = "cntrain vae run, or a local AutoencoderKL dir."
_ENCODER_HELP = "cntrain align run or ECG ViT dir."


def _path_flag(value: Path | None) -> str | None:
    return str(value) if value is not None else None


vae = stage_command(
    "vae",
    "Train the 1-channel frame autoencoder (diffusers AutoencoderKL) of ECG2CMR on cine frames.",
    options=[_view_option("Cine view whose frames train the autoencoder: sa or la."),
             _model_option("Autoencoder preset: tiny, small, base.")],
    task_flags=lambda v: {"task.view": None if v["resume"] else v["view"]},
)  # fmt: skip
diffusion = stage_command(
    "diffusion",
    "Train the ECG-conditioned latent video denoiser (UNet3D) for one view, with CFG dropout and EMA.",
    options=[
        _view_option("sa (short axis) or la (4-chamber long axis)."),
        ("vae_dir", Annotated[Path | None, typer.Option("--vae", help=_VAE_HELP)], None),
        ("ecg_encoder", Annotated[Path | None, typer.Option("--ecg-encoder", help=_ENCODER_HELP)], None),
        _model_option("Denoiser preset: tiny, cpu, small, modelscope."),
    ],
    task_flags=lambda v: {**({} if v["resume"] else {"task.view": v["view"]}), "task.vae": _path_flag(v["vae_dir"]),
                          "task.ecg_encoder": _path_flag(v["ecg_encoder"])},
)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``ecg2cmr-report``, ``vae`` and ``diffusion`` to ``app``."""
    app.command("ecg2cmr-report")(ecg2cmr_report_command)
    app.command("vae", epilog=_EXAMPLES_VAE)(vae)
    app.command("diffusion", epilog=_EXAMPLES_DIFF)(diffusion)
