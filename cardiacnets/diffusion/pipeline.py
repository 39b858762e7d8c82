"""``EcgToCmrPipeline``: generate cine CMR from 12-lead ECGs (CardiacNets, "ECG2CMR Diffusion Model").

Components, kept separate as in diffusers: the frozen ECG encoder (any module with
``forward_tokens((B, 1, 12, 5000)) -> (B, T, D)``), the denoiser :class:`EcgConditionedUNet3D`, a noise scheduler
(DDIM or DPM-Solver++, built per call from the training schedule) and the frozen frame autoencoder.

On disk a pipeline is a directory::

    pipeline.json        format, view, default sampler, label
    ecg_encoder/         the ECG encoder's own config.json + model.safetensors
    denoiser/            config.json + model.safetensors
    vae/                 diffusers AutoencoderKL (config.json + diffusion_pytorch_model.safetensors)
    scheduler/           the training noise schedule (scheduler_config.json)

Outputs are synthetic: :func:`cardiacnets.diffusion.io.save_cine` marks every written file.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cardiacnets.diffusion.io import SYNTHETIC_LABEL, save_cine
from cardiacnets.diffusion.schedulers import (
    DEFAULT_STEPS,
    NUM_TRAIN_TIMESTEPS,
    make_sampling_scheduler,
    training_scheduler_config,
)
from cardiacnets.diffusion.unet import EcgConditionedUNet3D
from cardiacnets.diffusion.vae import decode_latents, load_vae
from cardiacnets.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

PIPELINE_FORMAT = "cardiacnets-ecg2cmr-pipeline"
PIPELINE_VERSION = 1
ECG_SHAPE = (12, 5000)

__all__ = ["EcgToCmrPipeline", "save_cine", "SYNTHETIC_LABEL"]


class EcgToCmrPipeline:
    """ECG -> cine CMR sampler.

    Call with a batch of preprocessed ECGs ``(B, 12, 5000)`` (model input: the output of
    ``cardiacnets.preprocess.preprocess_ecg``) and get cines ``(B, F, H, W)`` float32 in [0, 1], frame 0 = end
    diastole, shaped like the training cines of the denoiser's view.
    """

    def __init__(
        self,
        ecg_encoder: nn.Module,
        denoiser: EcgConditionedUNet3D,
        vae: Any,
        scheduler_config: dict[str, Any] | None = None,
        default_scheduler: str = "dpm",
        device: str | torch.device = "cpu",
    ) -> None:
        if not hasattr(ecg_encoder, "forward_tokens"):
            raise InputError("ecg_encoder must provide forward_tokens(x) -> (B, T, D)")
        self.ecg_encoder = ecg_encoder.eval().requires_grad_(False)
        self.denoiser = denoiser.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler_config or training_scheduler_config())
        make_sampling_scheduler(default_scheduler, self.scheduler_config)  # validates the name
        self.default_scheduler = default_scheduler
        self.to(device)

    # ----------------------------------------------------------------------------------------------------- plumbing
    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def config(self):  # noqa: ANN201 - the denoiser's Ecg2CmrConfig
        return self.denoiser.config

    def to(self, device: str | torch.device) -> EcgToCmrPipeline:
        for module in (self.ecg_encoder, self.denoiser, self.vae):
            module.to(device)
        return self

    # ------------------------------------------------------------------------------------------------------ checks
    def _check_inputs(
        self,
        ecg: Any,
        batch_size: int | None,
        num_inference_steps: int | None,
        guidance_scale: float,
        scheduler: str | None,
        generator: torch.Generator | None,
        seed: int | None,
    ) -> tuple[torch.Tensor | None, int, int, str]:
        name = self.default_scheduler if scheduler is None else scheduler
        if name not in DEFAULT_STEPS:
            raise InputError(f"unknown scheduler {name!r}; choose 'ddim' or 'dpm'")
        steps = DEFAULT_STEPS[name] if num_inference_steps is None else num_inference_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= NUM_TRAIN_TIMESTEPS:
            raise InputError(f"num_inference_steps must be an integer in 1..{NUM_TRAIN_TIMESTEPS}; got {steps!r}")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float, np.floating)):
            raise InputError(f"guidance_scale must be a number; got {guidance_scale!r}")
        if not math.isfinite(float(guidance_scale)) or not 0.0 <= float(guidance_scale) <= 50.0:
            raise InputError(f"guidance_scale must be finite and within 0..50; got {guidance_scale!r}")
        if generator is not None and seed is not None:
            raise InputError("give either generator or seed, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise InputError(f"seed must be a non-negative integer; got {seed!r}")
        if ecg is None:
            if batch_size is None or isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise InputError("unconditional sampling (ecg=None) needs a positive integer batch_size")
            return None, batch_size, int(steps), name
        tensor = torch.as_tensor(np.asarray(ecg, dtype=np.float32)) if not torch.is_tensor(ecg) else ecg.float()
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim == 4 and tensor.shape[1] == 1:
            tensor = tensor[:, 0]
        if tensor.ndim != 3 or tuple(tensor.shape[1:]) != ECG_SHAPE:
            raise InputError(
                f"ecg must be shaped (B, 12, 5000) (10 s at 500 Hz, preprocessed); got {tuple(np.shape(ecg))}"
            )
        if tensor.shape[0] < 1:
            raise InputError("ecg batch is empty")
        if not torch.isfinite(tensor).all():
            raise InputError("ecg contains NaN or infinite values")
        if batch_size is not None and batch_size != tensor.shape[0]:
            raise InputError(f"batch_size={batch_size} disagrees with the ECG batch of {tensor.shape[0]}")
        return tensor, tensor.shape[0], int(steps), name

    # -------------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        ecg: np.ndarray | torch.Tensor | None,
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float = 3.0,
        scheduler: str | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Generate one cine per ECG.

        Args:
            ecg: ``(B, 12, 5000)`` (or ``(12, 5000)``, or ``(B, 1, 12, 5000)``) preprocessed ECGs; ``None`` samples
                unconditionally (null condition) ``batch_size`` cines.
            num_inference_steps: denoising steps; default 100 for DDIM, 20 for DPM-Solver++.
            guidance_scale: classifier-free guidance weight; 1 = conditional only, 0 = unconditional only.
            scheduler: ``"dpm"`` (default) or ``"ddim"``.
            generator: a torch CPU generator for the initial noise; or ``seed`` (same seed -> identical cines).
            batch_size: only for ``ecg=None``.
            callback: called as ``callback(step, total)`` after each denoising step.

        Returns:
            ``(B, F, H, W)`` float32 in [0, 1].
        """
        # 1. check inputs
        ecg_t, n, steps, name = self._check_inputs(
            ecg, batch_size, num_inference_steps, guidance_scale, scheduler, generator, seed
        )
        guidance = float(guidance_scale)
        device = self.device
        if generator is None:
            generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)

        # 2. condition: ECG tokens -> cross-attention context; the null context for the unconditional branch
        null_ctx = self.denoiser.encode_condition(None, batch_size=n)  # (B, 1, D)
        if ecg_t is None:
            cond_ctx, guidance = null_ctx, 1.0
        else:
            tokens = self.ecg_encoder.forward_tokens(ecg_t.to(device)[:, None])  # (B, 1 + 600, D_ecg)
            cond_ctx = self.denoiser.encode_condition(tokens)  # (B, T, cross_attention_dim)
        use_cfg = guidance != 1.0
        if use_cfg:
            # The two branches have different token counts; repeat the null token to the condition length.
            null_ctx = null_ctx.expand(-1, cond_ctx.shape[1], -1)
            context = torch.cat([null_ctx, cond_ctx])  # (2B, T, D)
        else:
            context = cond_ctx

        # 3. timesteps
        sched = make_sampling_scheduler(name, self.scheduler_config)
        sched.set_timesteps(steps, device=device)

        # 4. initial noise, drawn on the CPU so a seed gives the same cine on every device
        latents = torch.randn((n, *self.config.latent_shape), generator=generator, dtype=torch.float32)
        latents = latents.to(device) * sched.init_noise_sigma  # (B, C, F, h, w)

        # 5. denoising loop with classifier-free guidance
        for i, t in enumerate(sched.timesteps):
            model_in = torch.cat([latents, latents]) if use_cfg else latents
            model_in = sched.scale_model_input(model_in, t)
            eps = self.denoiser(model_in, t.expand(model_in.shape[0]), context=context)
            if use_cfg:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_cond - eps_uncond)
            latents = sched.step(eps, t, latents).prev_sample
            if callback is not None:
                callback(i + 1, len(sched.timesteps))

        # 6. decode frame by frame to pixels in [0, 1]
        cines = decode_latents(self.vae, latents)  # (B, F, H, W)
        return cines.cpu().numpy().astype(np.float32)

    def timed_call(self, ecg: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        """``__call__`` plus wall-clock seconds per generated cine."""
        start = time.perf_counter()
        out = self(ecg, **kwargs)
        return out, (time.perf_counter() - start) / out.shape[0]

    # ------------------------------------------------------------------------------------------------- save/load
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the pipeline directory (see the module docstring)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        if hasattr(self.ecg_encoder, "save_pretrained"):
            self.ecg_encoder.save_pretrained(path / "ecg_encoder")
        else:
            from cardiacnets.models.registry import save_pretrained as save_registered

            save_registered(self.ecg_encoder, path / "ecg_encoder")
        self.denoiser.save_pretrained(path / "denoiser")
        self.vae.save_pretrained(str(path / "vae"), safe_serialization=True)
        make_sampling_scheduler("ddim", self.scheduler_config)  # validate before writing
        (path / "scheduler").mkdir(exist_ok=True)
        (path / "scheduler" / "scheduler_config.json").write_text(json.dumps(self.scheduler_config, indent=2) + "\n")
        meta = {
            "format": PIPELINE_FORMAT,
            "format_version": PIPELINE_VERSION,
            "view": self.config.view,
            "default_scheduler": self.default_scheduler,
            "label": SYNTHETIC_LABEL,
        }
        (path / "pipeline.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def from_components(
        cls, ecg_encoder_dir: str | Path, denoiser_dir: str | Path, vae_dir: str | Path, device: str = "cpu"
    ) -> EcgToCmrPipeline:
        """Assemble a pipeline from training outputs (run directories resolve to their ``best/``)."""
        from cardiacnets.models.registry import pretrained_dir

        encoder = load_ecg_encoder(pretrained_dir(ecg_encoder_dir))
        denoiser = EcgConditionedUNet3D.from_pretrained(pretrained_dir(denoiser_dir))
        vae = load_vae(pretrained_dir(vae_dir))
        return cls(encoder, denoiser, vae, device=device)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        ecg_encoder_loader: Callable[[Path], nn.Module] | None = None,
    ) -> EcgToCmrPipeline:
        """Load a pipeline directory. ``ecg_encoder_loader(dir)`` overrides how the ECG encoder is loaded."""
        path = Path(directory)
        meta_path = path / "pipeline.json"
        if not meta_path.is_file():
            raise CheckpointError(f"no ECG2CMR pipeline at {path}: pipeline.json is missing")
        try:
            meta = json.loads(meta_path.read_text())
            sched_cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read the pipeline metadata in {path}: {exc}") from exc
        if meta.get("format") != PIPELINE_FORMAT:
            raise CheckpointError(f"{meta_path} is not an ECG2CMR pipeline (format {PIPELINE_FORMAT!r})")
        if int(meta.get("format_version", 0)) > PIPELINE_VERSION:
            raise CheckpointError(f"pipeline format_version {meta.get('format_version')} is newer than this toolkit")
        unknown = sorted(set(sched_cfg) - set(training_scheduler_config()))
        if unknown:
            raise CheckpointError(f"unknown scheduler config key(s) in {path / 'scheduler'}: {', '.join(unknown)}")
        loader = ecg_encoder_loader or _load_ecg_encoder
        encoder = loader(path / "ecg_encoder")
        denoiser = EcgConditionedUNet3D.from_pretrained(path / "denoiser")
        vae = load_vae(path / "vae")
        return cls(encoder, denoiser, vae, sched_cfg, meta.get("default_scheduler", "dpm"), device)


def load_ecg_encoder(directory: str | Path) -> nn.Module:
    """Load a frozen ECG encoder from a registry directory: an ECG ViT, or the ECG tower of an alignment model."""
    from cardiacnets.models.registry import from_pretrained

    model = from_pretrained(Path(directory))
    encoder = getattr(model, "ecg_encoder", model)  # AlignmentModel -> its aligned ECG tower
    if not hasattr(encoder, "forward_tokens"):
        raise CheckpointError(f"the model in {directory} is not an ECG encoder (no forward_tokens)")
    return encoder.eval().requires_grad_(False)


_load_ecg_encoder = load_ecg_encoder
