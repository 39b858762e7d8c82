"""Stage 1: CMR self-supervision (masked image modelling on SA and LA Swin towers + SA-LA CLIP loss).

Evaluation on the validation split: masked-reconstruction and CLIP losses with fixed masks (seeded, so evaluations
are comparable across steps), SA->LA retrieval top-1/top-5, and a PNG of one subject's reconstructions per
evaluation under ``reconstructions/``. The best checkpoint minimises the validation loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiacnets.config import config_from_dict
from cardiacnets.models.cmr_mim import CmrSslModel
from cardiacnets.models.registry import create_model
from cardiacnets.training.config import RunConfig
from cardiacnets.training.data import StageDataset, open_split
from cardiacnets.training.task import Task
from cardiacnets.training.tasks._common import resolve_model_name, retrieval_metrics

logger = logging.getLogger(__name__)


@dataclass
class CmrSslTaskConfig:
    """``task:`` section of a cmr-ssl config."""

    mask_ratio: float = 0.75
    reconstruction_images: bool = True
    image_frames: tuple[int, ...] = (0, 20)


class CmrSslTask(Task):
    name = "cmr-ssl"
    selection_metric = "val_loss"
    selection_mode = "min"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.options = config_from_dict(CmrSslTaskConfig, cfg.task, where="task")
        model = create_model(resolve_model_name("cmr-ssl", cfg.model), mask_ratio=self.options.mask_ratio)
        if not isinstance(model, CmrSslModel):
            from cardiacnets.errors import ConfigError

            raise ConfigError(f"model {cfg.model!r} is not a cmr-ssl model")
        self.model: CmrSslModel = model
        self.forward_model = model
        self._val: StageDataset | None = None

    def _split(self, split: str) -> StageDataset:
        return StageDataset(
            open_split(self.cfg.data, split, ["cine_sa", "cine_la"]), cines=True, cache=self.cfg.data.cache
        )

    def train_dataset(self) -> StageDataset:
        return self._split(self.cfg.data.train_split)

    def val_dataset(self) -> StageDataset:
        self._val = self._split(self.cfg.data.val_split)
        return self._val

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.forward_model(batch["cine_sa"], batch["cine_la"])

    def evaluate(self, loader: Any) -> dict[str, float]:
        model = self.model
        g = torch.Generator().manual_seed(1234)  # same masks at every evaluation; the global RNG is untouched
        totals: dict[str, float] = {}
        n = 0
        sa_emb, la_emb = [], []
        for batch in loader:
            sa, la = batch["cine_sa"], batch["cine_la"]
            sa_mask, la_mask = model.draw_masks(sa.shape[0], generator=g, device=sa.device)
            losses = model(sa, la, sa_mask, la_mask)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v) * sa.shape[0]
            n += sa.shape[0]
            sa_emb.append(model.sa_proj(model.sa_encoder.forward_pooled(sa)).float().cpu())
            la_emb.append(model.la_proj(model.la_encoder.forward_pooled(la)).float().cpu())
        metrics = {f"val_{k}": v / max(n, 1) for k, v in totals.items()}
        metrics.update(retrieval_metrics(torch.cat(sa_emb), [torch.cat(la_emb)], "val_sa_to_la"))
        return metrics

    def on_evaluate(self, run_dir: Path, step: int) -> None:
        if not self.options.reconstruction_images or self._val is None or len(self._val) == 0:
            return
        import imageio.v3 as iio

        item = self._val[0]
        device = next(self.model.parameters()).device
        g = torch.Generator().manual_seed(99)
        rows = []
        with torch.no_grad():
            for view in ("sa", "la"):
                x = item[f"cine_{view}"].unsqueeze(0).to(device)  # (1, 50, H, W) in [-1, 1]
                cfg = self.model.config.sa if view == "sa" else self.model.config.la
                from cardiacnets.models.cmr_mim import random_patch_mask

                mask = random_patch_mask(1, cfg.grid_sizes[0], self.model.config.mask_ratio, generator=g, device=device)
                recon, _ = self.model.reconstruct(x, mask, view)
                pixel_mask = mask.repeat_interleave(cfg.patch_size, 1).repeat_interleave(cfg.patch_size, 2)[0]
                for frame in self.options.image_frames:
                    f = min(frame, x.shape[1] - 1)
                    original = x[0, f].float().cpu()
                    masked = original.masked_fill(pixel_mask.cpu(), -1.0)
                    pasted = torch.where(pixel_mask.cpu(), recon[0, f].float().cpu(), original)
                    rows.append(torch.cat([original, masked, pasted], dim=1))
        width = max(r.shape[1] for r in rows)
        padded = [torch.nn.functional.pad(r, (0, width - r.shape[1]), value=-1.0) for r in rows]
        image = torch.cat(padded, dim=0).clamp(-1, 1)
        out = run_dir / "reconstructions"
        out.mkdir(parents=True, exist_ok=True)
        iio.imwrite(out / f"step_{step:06d}.png", ((image.numpy() + 1.0) * 127.5).round().astype(np.uint8))

    def best_metadata(self) -> dict[str, Any]:
        return {
            "stage": "cmr-ssl",
            "cine_normalisation": {"mean": 0.5, "std": 0.5, "input_range": [0, 1]},
            "views": {"sa": [50, 80, 80], "la": [50, 96, 96]},
        }


__all__ = ["CmrSslTask", "CmrSslTaskConfig"]
