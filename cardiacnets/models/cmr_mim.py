"""CMR self-supervision: masked image modelling on SA and LA Swin towers plus an SA-LA CLIP loss.

Paper: CardiacNets, Methods "Self-supervised method for CMR" (GreenMIM, mask ratio 0.75, patch 4, window 7, a
contrastive loss between the long- and short-axis embeddings after the encoders).

Difference from GreenMIM (Huang et al., "Green Hierarchical Vision Transformer for Masked Image Modeling", NeurIPS
2022): GreenMIM drops the masked patches and runs group-window attention on the visible ones only (cheaper); here the
masked patches' tokens are replaced by a learned mask token and the full Swin runs over every token, as in SimMIM (Xie
et al., CVPR 2022). The objective is the same (reconstruct the masked pixels from the visible ones, loss on masked
patches only); the cost per step is higher. The decoder is SimMIM's light one (a 1 x 1 convolution to
``stride**2 * frames`` channels and a pixel shuffle). One spatial mask is shared by all 50 frames of a cine (the mask
is drawn per 4 x 4 patch, the unit the encoder embeds). The CLIP loss uses the pooled tokens of the masked forward
pass, so each step costs one encoder pass per view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from cardiacnets.errors import ConfigError
from cardiacnets.models.cmr_swin import CmrSwin, CmrSwinConfig
from cardiacnets.models.contrastive import clip_loss


@dataclass
class CmrSslConfig:
    """Two Swin towers (short axis 80 px, long axis 96 px), MIM settings and the SA-LA CLIP loss."""

    sa: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=80))
    la: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=96))
    mask_ratio: float = 0.75
    reconstruction_loss: Literal["l1", "l2"] = "l1"
    proj_dim: int = 256
    temperature: float = 0.1
    clip_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")


def random_patch_mask(
    batch: int, grid: int, ratio: float, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Boolean mask ``(batch, grid, grid)``, True = masked; exactly ``round(ratio * grid**2)`` patches per sample."""
    n = grid * grid
    n_masked = int(round(ratio * n))
    scores = torch.rand(batch, n, generator=generator)
    order = scores.argsort(dim=1)
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_masked], True)
    return mask.view(batch, grid, grid).to(device)


def masked_reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, patch_size: int, kind: str = "l1"
) -> torch.Tensor:
    """Mean L1 (or squared) error over the pixels of MASKED patches only.

    ``pred``, ``target`` ``(B, C, H, W)``; ``mask`` ``(B, H / patch, W / patch)`` bool, True = masked. Pixels of
    visible patches carry zero weight, so they cannot change the loss.
    """
    m = mask.to(pred.dtype).repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).unsqueeze(1)
    err = (pred.float() - target.float()).abs() if kind == "l1" else (pred.float() - target.float()) ** 2
    return (err * m).sum() / (m.sum() * pred.shape[1]).clamp_min(1.0)


class PixelDecoder(nn.Module):
    """SimMIM light decoder: final-stage map ``(B, h, w, D)`` -> pixels ``(B, frames, H, W)``."""

    def __init__(self, config: CmrSwinConfig) -> None:
        super().__init__()
        self.image_size = config.image_size
        self.proj = nn.Conv2d(config.out_dim, config.out_stride**2 * config.in_frames, kernel_size=1)
        self.shuffle = nn.PixelShuffle(config.out_stride)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(self.proj(feature_map.permute(0, 3, 1, 2)))  # (B, frames, h*stride, w*stride)
        return x[:, :, : self.image_size, : self.image_size]  # drop the merge padding (bottom/right)


class CmrSslModel(nn.Module):
    """SA and LA towers with MIM decoders and CLIP projections. ``forward`` returns the named losses."""

    model_type = "cmr_ssl"
    config_class = CmrSslConfig

    def __init__(self, config: CmrSslConfig) -> None:
        super().__init__()
        self.config = config
        self.sa_encoder = CmrSwin(config.sa)
        self.la_encoder = CmrSwin(config.la)
        self.sa_decoder = PixelDecoder(config.sa)
        self.la_decoder = PixelDecoder(config.la)
        self.sa_proj = nn.Linear(config.sa.out_dim, config.proj_dim, bias=False)
        self.la_proj = nn.Linear(config.la.out_dim, config.proj_dim, bias=False)

    def encoder(self, view: str) -> CmrSwin:
        return self.sa_encoder if view == "sa" else self.la_encoder

    def draw_masks(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random patch masks for SA and LA, ``(B, g_sa, g_sa)`` and ``(B, g_la, g_la)``."""
        r = self.config.mask_ratio
        sa = random_patch_mask(batch, self.config.sa.grid_sizes[0], r, generator=generator, device=device)
        la = random_patch_mask(batch, self.config.la.grid_sizes[0], r, generator=generator, device=device)
        return sa, la

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, frames, H, W)`` of normalised cine ``x`` and the pooled embedding ``(B, D)``."""
        encoder = self.sa_encoder if view == "sa" else self.la_encoder
        decoder = self.sa_decoder if view == "sa" else self.la_decoder
        fmap = encoder.forward_feature_map(x, mask)
        return decoder(fmap), fmap.flatten(1, 2).mean(dim=1)

    def forward(
        self,
        sa: torch.Tensor,
        la: torch.Tensor,
        sa_mask: torch.Tensor | None = None,
        la_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses for normalised cines ``sa`` ``(B, 50, 80, 80)`` and ``la`` ``(B, 50, 96, 96)`` (values in [-1, 1]).

        Masks default to fresh random ones (torch's global RNG). Returns ``loss`` (optimised) = rec_sa + rec_la +
        clip_weight * clip, and each term.
        """
        if sa_mask is None or la_mask is None:
            sa_mask, la_mask = self.draw_masks(sa.shape[0], device=sa.device)
        kind = self.config.reconstruction_loss
        sa_rec, sa_emb = self.reconstruct(sa, sa_mask, "sa")
        la_rec, la_emb = self.reconstruct(la, la_mask, "la")
        loss_sa = masked_reconstruction_loss(sa_rec, sa, sa_mask, self.config.sa.patch_size, kind)
        loss_la = masked_reconstruction_loss(la_rec, la, la_mask, self.config.la.patch_size, kind)
        loss_clip = clip_loss(self.sa_proj(sa_emb), self.la_proj(la_emb), self.config.temperature)
        loss = loss_sa + loss_la + self.config.clip_weight * loss_clip
        return {"loss": loss, "loss_rec_sa": loss_sa, "loss_rec_la": loss_la, "loss_clip_sa_la": loss_clip}


__all__ = ["CmrSslConfig", "CmrSslModel", "masked_reconstruction_loss", "random_patch_mask", "PixelDecoder"]
