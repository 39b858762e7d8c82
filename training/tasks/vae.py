"""``cntrain vae``: train the small frame autoencoder of ECG2CMR on the cohort's cine frames.

Loss per micro-batch: mean squared error of the reconstruction of random frames (in [-1, 1]) plus a small KL term.
The best model (lowest validation MSE) is saved with its latent shift/scale measured on validation frames.
"""

from __future__ import annotations

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
from cardiacnets.diffusion.vae import FrameAutoencoder, FrameAutoencoderConfig, measure_latent_scaling
from cardiacnets.errors import ConfigError
from cardiacnets.training.config import RunConfig
from cardiacnets.training.task import Task

logger = logging.getLogger(__name__)


IMAGE_SIZES = {"sa": 80, "la": 96}
PRESETS = ("tiny", "small", "base")


@dataclass
class VaeTaskConfig:
    """``task:`` section of a vae config (see :class:`VaeTask`). ``preset`` defaults to the run's ``model`` when that
    is a preset name (tiny, small, base), else ``small``; ``image_size`` to the view's native side (80 / 96)."""

    view: str = "sa"
    preset: str | None = None
    frames_per_item: int = 4
    kl_weight: float = 1e-4
    image_size: int | None = None


class _AutoencoderModule(FrameAutoencoder):
    """``forward(frames (N, 1, H, W) in [-1, 1]) -> (reconstruction, kl)`` so DDP sees one forward call."""

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        posterior = self.vae.encode(frames).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        return recon, posterior.kl().mean() / frames[0].numel()


class VaeTask(Task):
    """Frame autoencoder training.

    Options (``task:`` in the config): view, preset, frames_per_item, kl_weight, image_size (frame side the
    autoencoder is trained at; default the view's native 80 / 96; set it to the denoiser's resolution).
    """

    name = "vae"
    selection_metric = "val_loss"

    def __init__(
        self,
        *,
        source: str = "synthetic",
        n_subjects: int | None = 64,
        seed: int = 0,
        view: str = "sa",
        preset: str = "small",
        frames_per_item: int = 4,
        kl_weight: float = 1e-4,
        image_size: int | None = None,
        train_split: str = "train",
        val_split: str = "val",
    ) -> None:
        if view not in IMAGE_SIZES:
            raise ConfigError(f"view must be 'sa' or 'la'; got {view!r}")
        self.source, self.n_subjects, self.seed, self.view = source, n_subjects, seed, view
        self.frames_per_item, self.kl_weight = int(frames_per_item), float(kl_weight)
        self.train_split, self.val_split = train_split, val_split
        self.key = f"cine_{view}"
        # frames are resized to the resolution the denoiser will use (the CPU recipe's cines are half size)
        self.image_size = int(image_size) if image_size else IMAGE_SIZES[view]
        if self.image_size < 8:
            raise ConfigError(f"image_size must be at least 8 pixels; got {self.image_size}")
        self.model = _AutoencoderModule(FrameAutoencoderConfig(preset=preset, image_size=self.image_size))
        self.forward_model = self.model
        self._scaling_sample: torch.Tensor | None = None

    @classmethod
    def from_run_config(cls, cfg: RunConfig) -> VaeTask:
        """The task of a ``cntrain vae`` run: the cohort from ``data:``, the options from ``task:``."""
        opts = config_from_dict(VaeTaskConfig, cfg.task, where="task")
        preset = opts.preset or (cfg.model if cfg.model in PRESETS else "small")
        d = cfg.data
        return cls(source=d.source, n_subjects=d.n_subjects, seed=d.seed, train_split=d.train_split,
                   val_split=d.val_split, view=opts.view, preset=preset, frames_per_item=opts.frames_per_item,
                   kl_weight=opts.kl_weight, image_size=opts.image_size)  # fmt: skip

    def _dataset(self, split: str) -> Dataset:
        return open_dataset(self.source, split, n_subjects=self.n_subjects, seed=self.seed, modalities=[self.key])

    def train_dataset(self) -> Dataset:
        return self._dataset(self.train_split)

    def val_dataset(self) -> Dataset:
        return self._dataset(self.val_split)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        cine = torch.stack([item[self.key] for item in items])  # (B, F, H, W)
        if cine.shape[-1] != self.image_size or cine.shape[-2] != self.image_size:
            cine = resample_cine(cine, cine.shape[1], self.image_size, self.image_size)  # as the denoiser's cines
        return {self.key: cine}

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        cine = batch[self.key]  # (B, F, H, W) in [0, 1]
        b, f = cine.shape[:2]
        idx = torch.randint(0, f, (b, self.frames_per_item), device=cine.device)
        frames = torch.gather(cine, 1, idx[:, :, None, None].expand(-1, -1, *cine.shape[2:]))
        x = frames.reshape(-1, 1, *cine.shape[2:]) * 2.0 - 1.0  # (B * k, 1, H, W)
        recon, kl = self.forward_model(x)
        mse = F.mse_loss(recon, x)
        return {"loss": mse + self.kl_weight * kl, "mse": mse, "kl": kl}

    def evaluate(self, loader: DataLoader) -> dict[str, float]:
        sq, n, kept = 0.0, 0, []
        for batch in loader:
            cine = batch[self.key]
            sel = cine[:, :: max(1, cine.shape[1] // 4)]  # 4 frames over the cycle
            x = sel.reshape(-1, 1, *cine.shape[2:]) * 2.0 - 1.0
            posterior = self.model.vae.encode(x).latent_dist
            recon = self.model.vae.decode(posterior.mean).sample
            sq += float(F.mse_loss(recon, x, reduction="sum"))
            n += x.numel()
            if sum(len(k) for k in kept) < 8:
                kept.append(sel.cpu())
        mse = sq / max(n, 1)
        self._scaling_sample = torch.cat(kept)[:8] if kept else None
        psnr = 10 * np.log10(4.0 / mse) if mse > 0 else float("inf")  # range of [-1, 1] is 2
        return {"val_loss": mse, "val_psnr": float(psnr)}

    def best_model(self) -> nn.Module:
        if self._scaling_sample is not None:
            device = next(self.model.parameters()).device
            measure_latent_scaling(self.model.vae, self._scaling_sample.to(device))
            self.model.sync_scaling()
        return self.model

    def best_metadata(self) -> dict[str, Any]:
        return {"view": self.view, "stage": "vae", "data": self.source}

    def on_evaluate(self, run_dir: Path, step: int) -> None:
        if self._scaling_sample is None:
            return
        import imageio.v3 as iio

        device = next(self.model.parameters()).device
        frames = self._scaling_sample[:2, :4].to(device)  # (2, 4, H, W)
        x = frames.reshape(-1, 1, *frames.shape[2:]) * 2 - 1
        with torch.no_grad():
            recon = self.model.vae.decode(self.model.vae.encode(x).latent_dist.mean).sample
        recon = ((recon + 1) / 2).clamp(0, 1).reshape(frames.shape).cpu().numpy()
        real = frames.cpu().numpy()
        rows = [np.concatenate(list(c), axis=1) for c in (*real, *recon)]  # each (H, 4 * W)
        grid = np.concatenate(rows, axis=0)  # real rows, then their reconstructions
        out = Path(run_dir) / "samples"
        out.mkdir(parents=True, exist_ok=True)
        iio.imwrite(out / f"recon_step{step:06d}.png", (grid * 255).astype(np.uint8))
