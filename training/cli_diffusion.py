"""``cntrain vae`` and ``cntrain diffusion --view sa|la``: the ECG2CMR stages.

Thin commands over the shared loop (same flags as the pretraining stages). ``diffusion`` needs a frame autoencoder
(``--vae``: a ``cntrain vae`` run or a local diffusers AutoencoderKL directory) and the aligned ECG encoder
(``--ecg-encoder``: a ``cntrain align`` run or a saved ECG ViT). The run's ``best/`` holds the EMA denoiser; build a
sampler with ``EcgToCmrPipeline.from_components(ecg_encoder_dir, run/best, vae_dir)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from cardiacnets.cli_support import fail
from cardiacnets.errors import CardiacNetsError
from cardiacnets.training.cli_stages import (
    BatchOpt,
    ConfigOpt,
    DataOpt,
    MaxStepsOpt,
    NSubjectsOpt,
    OutOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    WorkersOpt,
    _flags,
    _run,
)
from cardiacnets.training.config import RunConfig

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

_TASK_KEYS_VAE = {"view", "preset", "frames_per_item", "kl_weight", "image_size"}
_TASK_KEYS_DIFF = {"view", "vae", "ecg_encoder", "num_frames", "height", "width", "condition_dropout", "ema_decay",
                   "preprocess_ecg", "sample_every_eval"}  # fmt: skip


def _run_dir_model(path: Path) -> Path:
    """A run directory's ``best/`` if it has one, else the directory itself."""
    return path / "best" if (path / "best" / "config.json").is_file() else path


def _check_task_keys(cfg: RunConfig, known: set[str]) -> dict[str, Any]:
    from cardiacnets.errors import ConfigError

    unknown = sorted(set(cfg.task) - known)
    if unknown:
        raise ConfigError(f"unknown task key(s) for {cfg.stage}: {', '.join(unknown)}; known: {sorted(known)}")
    return dict(cfg.task)


def build_vae_task(cfg: RunConfig) -> Any:
    from cardiacnets.training.tasks.vae import VaeTask

    opts = _check_task_keys(cfg, _TASK_KEYS_VAE)
    d = cfg.data
    preset = opts.pop("preset", None) or (cfg.model if cfg.model in ("tiny", "small", "base") else "small")
    return VaeTask(source=d.source, n_subjects=d.n_subjects, seed=d.seed, train_split=d.train_split,
                   val_split=d.val_split, preset=preset, **opts)  # fmt: skip


def build_diffusion_task(cfg: RunConfig) -> Any:
    from cardiacnets.diffusion.pipeline import load_ecg_encoder
    from cardiacnets.diffusion.unet import Ecg2CmrConfig
    from cardiacnets.diffusion.vae import downsample_factor, load_vae
    from cardiacnets.errors import ConfigError
    from cardiacnets.training.tasks.diffusion import DiffusionTask

    opts = _check_task_keys(cfg, _TASK_KEYS_DIFF)
    for key in ("vae", "ecg_encoder"):
        if not opts.get(key):
            raise ConfigError(f"cntrain diffusion needs --{key.replace('_', '-')} DIR")
    vae = load_vae(_run_dir_model(Path(opts.pop("vae"))))
    encoder = load_ecg_encoder(_run_dir_model(Path(opts.pop("ecg_encoder"))))
    view = opts.pop("view", "sa")
    overrides: dict[str, Any] = {"latent_downsample": downsample_factor(vae), "condition_dim": encoder.embed_dim,
                                 "latent_channels": vae.config.latent_channels}  # fmt: skip
    for key in ("num_frames", "height", "width"):  # the CPU recipe trains on fewer frames / smaller frames
        value = opts.pop(key, None)
        if value:
            overrides[key] = int(value)
    config = Ecg2CmrConfig.from_preset(cfg.model, view, **overrides)
    d = cfg.data
    return DiffusionTask(vae=vae, ecg_encoder=encoder, config=config, source=d.source, n_subjects=d.n_subjects,
                         seed=d.seed, train_split=d.train_split, val_split=d.val_split, cache=d.cache,
                         **opts)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``vae``, ``diffusion`` and ``ecg2cmr-report`` to ``app``."""

    @app.command("ecg2cmr-report")
    def ecg2cmr_report_command(
        pipeline: Path = typer.Option(..., "--pipeline", help="EcgToCmrPipeline directory (short-axis view)."),
        data: str = typer.Option("synthetic", "--data", help="'synthetic' or a dataset directory."),
        n_subjects: Optional[int] = typer.Option(None, "--n-subjects", help="Cohort size (synthetic) or cap."),  # noqa: UP007
        seed: int = typer.Option(0, "--seed", help="Cohort and sampling seed."),
        max_items: int = typer.Option(64, "--max-items", help="Test subjects to generate for."),
        ddim_items: Optional[int] = typer.Option(None, "--ddim-items", help="Subjects for the DDIM-100 comparison."),  # noqa: UP007
        guidance: float = typer.Option(3.0, "--guidance", help="Classifier-free guidance scale."),
        dpm_steps: int = typer.Option(20, "--dpm-steps", help="DPM-Solver++ steps."),
        ddim_steps: int = typer.Option(100, "--ddim-steps", help="DDIM steps."),
        out: Path = typer.Option(..., "--out", help="Report directory (report.md, results.json)."),
    ) -> None:
        """Generated-vs-real phenotype correlation against shuffled-ECG and unconditional controls; SSIM/PSNR; DDIM-100
        vs DPM-Solver-20.

        Example: cntrain ecg2cmr-report --pipeline runs/demo/pipeline-sa --data runs/demo/cohort --out reports/ecg2cmr
        """
        import json
        import sys

        from cardiacnets.training.ecg2cmr_report import ecg2cmr_report

        command = "cntrain " + " ".join(sys.argv[1:]) if "ecg2cmr-report" in sys.argv else None
        try:
            results = ecg2cmr_report(pipeline, data, out, n_subjects=n_subjects, seed=seed, max_items=max_items,
                                     ddim_items=ddim_items, guidance_scale=guidance, dpm_steps=dpm_steps,
                                     ddim_steps=ddim_steps, command=command)  # fmt: skip
        except CardiacNetsError as exc:
            fail(exc, "cntrain")
        typer.echo(json.dumps({k: v for k, v in results.items() if k in ("r", "ssim", "psnr", "seconds_per_cine")}))

    @app.command("vae", epilog=_EXAMPLES_VAE)
    def vae(
        view: str = typer.Option("sa", "--view", help="Cine view whose frames train the autoencoder: sa or la."),
        data: Optional[str] = DataOpt,  # noqa: UP007, UP045
        n_subjects: Optional[int] = NSubjectsOpt,  # noqa: UP007, UP045
        model: Optional[str] = typer.Option(None, "--model", help="Autoencoder preset: tiny, small, base."),  # noqa: UP007, UP045, B008
        max_steps: Optional[int] = MaxStepsOpt,  # noqa: UP007, UP045
        batch_size: Optional[int] = BatchOpt,  # noqa: UP007, UP045
        out: Optional[Path] = OutOpt,  # noqa: UP007, UP045
        resume: bool = ResumeOpt,
        config: Optional[Path] = ConfigOpt,  # noqa: UP007, UP045
        set_: Optional[list[str]] = SetOpt,  # noqa: UP007, UP045
        num_workers: Optional[int] = WorkersOpt,  # noqa: UP007, UP045
        seed: Optional[int] = SeedOpt,  # noqa: UP007, UP045
    ) -> None:
        """Train the 1-channel frame autoencoder (diffusers AutoencoderKL) of ECG2CMR on cine frames."""
        flags = _flags(data, n_subjects, model, max_steps, batch_size, out, num_workers, seed)
        flags["task.view"] = None if resume else view
        _run("vae", build_vae_task, flags, config, set_ or [], resume)

    @app.command("diffusion", epilog=_EXAMPLES_DIFF)
    def diffusion(
        view: str = typer.Option("sa", "--view", help="sa (short axis) or la (4-chamber long axis)."),
        vae_dir: Optional[Path] = typer.Option(None, "--vae", help="cntrain vae run, or a local AutoencoderKL dir."),  # noqa: UP007, UP045, B008
        ecg_encoder: Optional[Path] = typer.Option(None, "--ecg-encoder", help="cntrain align run or ECG ViT dir."),  # noqa: UP007, UP045, B008
        data: Optional[str] = DataOpt,  # noqa: UP007, UP045
        n_subjects: Optional[int] = NSubjectsOpt,  # noqa: UP007, UP045
        model: Optional[str] = typer.Option(None, "--model", help="Denoiser preset: tiny, cpu, small, modelscope."),  # noqa: UP007, UP045, B008
        max_steps: Optional[int] = MaxStepsOpt,  # noqa: UP007, UP045
        batch_size: Optional[int] = BatchOpt,  # noqa: UP007, UP045
        out: Optional[Path] = OutOpt,  # noqa: UP007, UP045
        resume: bool = ResumeOpt,
        config: Optional[Path] = ConfigOpt,  # noqa: UP007, UP045
        set_: Optional[list[str]] = SetOpt,  # noqa: UP007, UP045
        num_workers: Optional[int] = WorkersOpt,  # noqa: UP007, UP045
        seed: Optional[int] = SeedOpt,  # noqa: UP007, UP045
    ) -> None:
        """Train the ECG-conditioned latent video denoiser (UNet3D) for one view, with CFG dropout and EMA."""
        flags = _flags(data, n_subjects, model, max_steps, batch_size, out, num_workers, seed)
        if not resume:
            flags["task.view"] = view
        flags["task.vae"] = str(vae_dir) if vae_dir is not None else None
        flags["task.ecg_encoder"] = str(ecg_encoder) if ecg_encoder is not None else None
        _run("diffusion", build_diffusion_task, flags, config, set_ or [], resume)
