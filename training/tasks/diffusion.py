"""``cntrain diffusion --view sa|la``: train the ECG2CMR latent video denoiser (CardiacNets, "ECG2CMR Diffusion Model").

Per micro-batch: real cines are resampled to the denoiser's frames/resolution and encoded by the frozen autoencoder;
the frozen aligned ECG encoder gives the condition tokens; noise is added with the training scheduler's ``add_noise``
(linear betas 1e-4..0.02) at uniform timesteps; the condition is dropped (null token) with probability
``condition_dropout`` so classifier-free guidance is real; the loss is the epsilon-prediction MSE.

EMA: the trained module holds the denoiser and its EMA copy (so checkpoints and exact resume include the EMA). The EMA
is updated at the start of each ``training_forward`` from the weights of the previous optimiser step (with gradient
accumulation it is applied once per micro-batch; the extra decay toward the same weights is harmless). Evaluation,
sample grids and ``best/`` use the EMA weights.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cardiacnets.config import config_from_dict
from cardiacnets.datasets import open_dataset
from cardiacnets.diffusion.data import resample_cine
from cardiacnets.diffusion.schedulers import make_training_scheduler
from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D
from cardiacnets.diffusion.vae import encode_cine
from cardiacnets.errors import ConfigError
from cardiacnets.training.config import RunConfig
from cardiacnets.training.task import Task

logger = logging.getLogger(__name__)


@dataclass
class DiffusionTaskConfig:
    """``task:`` section of a diffusion config (see :class:`DiffusionTask`). ``vae`` (a ``cntrain vae`` run or a local
    AutoencoderKL directory) and ``ecg_encoder`` (a ``cntrain align`` run or a saved ECG ViT) are required;
    ``num_frames``, ``height`` and ``width`` override the view's preset (the CPU recipe trains on fewer, smaller
    frames)."""

    view: str = "sa"
    vae: str | None = None
    ecg_encoder: str | None = None
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    condition_dropout: float = 0.1
    ema_decay: float = 0.999
    preprocess_ecg: bool = True
    sample_every_eval: bool = True
    frame_position: str = "none"  # "sinusoidal": frame-index embedding in the temporal attention (issue 23)


class DenoiserWithEma(nn.Module):
    """The trained denoiser plus its EMA copy (no gradients) and the EMA step count (a buffer, checkpointed)."""

    def __init__(self, denoiser: EcgConditionedUNet3D, decay: float) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.ema = copy.deepcopy(denoiser).requires_grad_(False)
        self.decay = float(decay)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.denoiser(*args, **kwargs)

    @torch.no_grad()
    def update_ema(self) -> None:
        # warm-up as in diffusers' EMAModel: decay grows with the number of updates
        n = int(self.ema_updates) + 1
        decay = min(self.decay, (1 + n) / (10 + n))
        for e, p in zip(self.ema.parameters(), self.denoiser.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - decay)
        self.ema_updates += 1


class FrozenInputCache(Dataset):
    """A cohort split whose items carry the frozen models' outputs, computed once per subject and kept in memory.

    The autoencoder (posterior means) and the ECG encoder are frozen and deterministic and the cines are not
    augmented, so each subject's latents ``(C, F, h, w)`` and condition tokens ``(T, D)`` never change: computing them
    once turns a CPU training step into the denoiser's forward and backward alone. Items: ``ecg`` (preprocessed
    ``(12, 5000)``), ``cine`` (resampled ``(F, H, W)`` in [0, 1], for the sample grids), ``latents``, ``tokens``.
    Memory: about ``T * D * 4`` bytes per subject for the tokens (~0.5 MB for the tiny encoder).
    """

    def __init__(self, base: Dataset, task: DiffusionTask) -> None:
        self.base, self.task = base, task
        self._items: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cached = self._items.get(i)
        if cached is None:
            device = next(self.task.vae.parameters()).device  # compute where the frozen models already are
            batch = {k: v.to(device) for k, v in self.task.collate([self.base[i]]).items()}
            latents, tokens = self.task._frozen_inputs(batch)
            cached = {
                "ecg": batch["ecg"][0].cpu(),
                "cine": batch["cine"][0].cpu(),
                "latents": latents[0].cpu(),
                "tokens": tokens[0].cpu(),
            }
            self._items[i] = cached
        return cached


def ecg_batch_preprocess(ecg: torch.Tensor, fs: float = 500.0) -> torch.Tensor:
    """Raw ECGs ``(B, 12, n)`` in mV -> model input ``(B, 12, 5000)`` with the shared preprocessing."""
    from cardiacnets.preprocess import preprocess_ecg

    return torch.from_numpy(preprocess_ecg(ecg.cpu().numpy().astype(np.float64), fs))


class DiffusionTask(Task):
    """ECG2CMR denoiser training on one view.

    Args:
        vae: the frozen frame autoencoder (diffusers ``AutoencoderKL`` with measured scaling).
        ecg_encoder: the frozen aligned ECG encoder (``forward_tokens``).
        config: the denoiser config (frames, resolution, sizes); ``condition_dim`` must equal the encoder's width.
        condition_dropout: probability of replacing a sample's condition by the null token.
        ema_decay: EMA decay of the denoiser weights.
        preprocess_ecg: dataset ECGs are raw mV and are preprocessed in ``collate`` when True.
        cache: keep each subject's latents and condition tokens in memory after their first use
            (:class:`FrozenInputCache`; exact, since both models are frozen; ``--set data.cache=true``).
    """

    name = "diffusion"
    selection_metric = "val_loss"

    def __init__(
        self,
        *,
        vae: nn.Module,
        ecg_encoder: nn.Module,
        config: Ecg2CmrConfig,
        source: str = "synthetic",
        n_subjects: int | None = 64,
        seed: int = 0,
        condition_dropout: float = 0.1,
        ema_decay: float = 0.999,
        preprocess_ecg: bool = True,
        train_split: str = "train",
        val_split: str = "val",
        sample_every_eval: bool = True,
        cache: bool = False,
    ) -> None:
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError(f"condition_dropout must be in [0, 1); got {condition_dropout}")
        width = getattr(ecg_encoder, "embed_dim", config.condition_dim)
        if width != config.condition_dim:
            raise ConfigError(f"the ECG encoder's width {width} differs from condition_dim {config.condition_dim}")
        self.vae = vae.eval().requires_grad_(False)
        self.ecg_encoder = ecg_encoder.eval().requires_grad_(False)
        self.config = config
        self.key = f"cine_{config.view}"
        self.source, self.n_subjects, self.seed = source, n_subjects, seed
        self.train_split, self.val_split = train_split, val_split
        self.condition_dropout = float(condition_dropout)
        self.preprocess = preprocess_ecg
        self.sample_every_eval = sample_every_eval
        self.cache = cache
        self.scheduler = make_training_scheduler()
        self.model = DenoiserWithEma(EcgConditionedUNet3D(config), ema_decay)
        self.forward_model = self.model
        self._sample_batch: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_run_config(cls, cfg: RunConfig) -> DiffusionTask:
        """The task of a ``cntrain diffusion`` run: the frozen autoencoder and ECG encoder loaded from the run
        directories (their ``best/``) or model directories of ``task:``, the denoiser from the ``model`` preset."""
        from cardiacnets.diffusion.pipeline import load_ecg_encoder
        from cardiacnets.diffusion.vae import downsample_factor, load_vae
        from cardiacnets.models.registry import pretrained_dir

        opts = config_from_dict(DiffusionTaskConfig, cfg.task, where="task")
        for key in ("vae", "ecg_encoder"):
            if not getattr(opts, key):
                raise ConfigError(f"cntrain diffusion needs --{key.replace('_', '-')} DIR")
        vae = load_vae(pretrained_dir(opts.vae))  # type: ignore[arg-type]
        encoder = load_ecg_encoder(pretrained_dir(opts.ecg_encoder))  # type: ignore[arg-type]
        overrides: dict[str, Any] = {"latent_downsample": downsample_factor(vae), "condition_dim": encoder.embed_dim,
                                     "latent_channels": vae.config.latent_channels}  # fmt: skip
        for key in ("num_frames", "height", "width"):  # the CPU recipe trains on fewer frames / smaller frames
            value = getattr(opts, key)
            if value:
                overrides[key] = int(value)
        overrides["frame_position"] = opts.frame_position
        config = Ecg2CmrConfig.from_preset(cfg.model, opts.view, **overrides)
        d = cfg.data
        return cls(vae=vae, ecg_encoder=encoder, config=config, source=d.source, n_subjects=d.n_subjects, seed=d.seed,
                   train_split=d.train_split, val_split=d.val_split, cache=d.cache,
                   condition_dropout=opts.condition_dropout, ema_decay=opts.ema_decay,
                   preprocess_ecg=opts.preprocess_ecg, sample_every_eval=opts.sample_every_eval)  # fmt: skip

    # ----------------------------------------------------------------------------------------------- data
    def _dataset(self, split: str) -> Dataset:
        base = open_dataset(
            self.source, split, n_subjects=self.n_subjects, seed=self.seed, modalities=["ecg", self.key]
        )
        return FrozenInputCache(base, self) if self.cache else base

    def train_dataset(self) -> Dataset:
        return self._dataset(self.train_split)

    def val_dataset(self) -> Dataset:
        return self._dataset(self.val_split)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if "latents" in items[0]:  # FrozenInputCache items
            return {key: torch.stack([item[key] for item in items]) for key in ("ecg", "cine", "latents", "tokens")}
        ecg = torch.stack([item["ecg"] for item in items]).float()
        cine = torch.stack([item[self.key] for item in items])
        c = self.config
        return {
            "ecg": ecg_batch_preprocess(ecg) if self.preprocess else ecg,  # (B, 12, 5000)
            "cine": resample_cine(cine, c.num_frames, c.height, c.width),  # (B, F, H, W)
        }

    # ------------------------------------------------------------------------------------------- training
    def _frozen_inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "latents" in batch:
            return batch["latents"], batch["tokens"]
        device = batch["cine"].device
        self.vae.to(device)
        self.ecg_encoder.to(device)
        with torch.no_grad():
            latents = encode_cine(self.vae, batch["cine"])  # (B, C, F, h, w)
            tokens = self.ecg_encoder.forward_tokens(batch["ecg"])  # (B, T, D)
        return latents, tokens

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.model.update_ema()
        latents, tokens = self._frozen_inputs(batch)
        b = latents.shape[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), device=latents.device)
        noisy = self.scheduler.add_noise(latents, noise, t)
        drop = torch.rand(b, device=latents.device) < self.condition_dropout
        eps = self.forward_model(noisy, t, tokens, drop_condition=drop)
        loss = F.mse_loss(eps.float(), noise)
        return {"loss": loss, "cond_dropped": drop.float().mean()}

    def evaluate(self, loader: DataLoader) -> dict[str, float]:
        """EMA-weight epsilon MSE at fixed noise and timesteps (seeded, comparable across evaluations)."""
        g = torch.Generator().manual_seed(1234)
        total, n = 0.0, 0
        for i, batch in enumerate(loader):
            latents, tokens = self._frozen_inputs(batch)
            b = latents.shape[0]
            noise = torch.randn(latents.shape, generator=g).to(latents.device)
            t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g).to(latents.device)
            eps = self.model.ema(self.scheduler.add_noise(latents, noise, t), t, tokens)
            total += float(F.mse_loss(eps.float(), noise, reduction="sum"))
            n += noise.numel()
            if i == 0:
                self._sample_batch = {k: v[:2].detach() for k, v in batch.items()}
        return {"val_loss": total / max(n, 1)}

    def best_model(self) -> nn.Module:
        return self.model.ema

    def best_metadata(self) -> dict[str, Any]:
        return {"stage": "diffusion", "view": self.config.view, "weights": "ema", "data": self.source}

    def on_evaluate(self, run_dir: Path, step: int) -> None:
        """Save a PNG grid: real frames (rows 1-2) and EMA samples from the same ECGs (rows 3-4)."""
        if not self.sample_every_eval or self._sample_batch is None:
            return
        import imageio.v3 as iio

        from cardiacnets.diffusion.pipeline import EcgToCmrPipeline

        pipe = EcgToCmrPipeline(self.ecg_encoder, self.model.ema, self.vae, device=self.model.ema_updates.device)
        generated = pipe(self._sample_batch["ecg"], num_inference_steps=10, guidance_scale=2.0, seed=0)
        real = self._sample_batch["cine"].cpu().numpy()
        cols = np.linspace(0, real.shape[1] - 1, min(8, real.shape[1])).round().astype(int)
        rows = [np.concatenate(list(c[cols]), axis=1) for c in (*real, *generated)]
        out = Path(run_dir) / "samples"
        out.mkdir(parents=True, exist_ok=True)
        iio.imwrite(out / f"samples_step{step:06d}.png", (np.concatenate(rows, axis=0) * 255).astype(np.uint8))
        self.model.ema.requires_grad_(False)
        self.model.denoiser.train()
