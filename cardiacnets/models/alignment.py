"""ECG-CMR contrastive alignment: a trainable ECG tower pulled towards frozen SA and LA CMR towers.

Paper: CardiacNets, Methods "Contrastive ECG-CMR Pre-training" (ViT ECG encoder, frozen self-supervised Swin CMR
encoders, loss = InfoNCE(ECG, SA) + InfoNCE(ECG, LA)). Temperature 0.1 and 256-d projections as the upstream code;
unlike the upstream code, the SA and LA projection heads are trained too (they are initialised from the CMR
self-supervision's SA-LA CLIP heads when those have the right shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cardiacnets.models.cmr_swin import CmrSwin, CmrSwinConfig
from cardiacnets.models.contrastive import clip_loss
from cardiacnets.models.ecg_vit import EcgViT, EcgViTConfig


@dataclass
class AlignmentConfig:
    """ECG ViT + SA/LA Swin towers + 256-d projections."""

    ecg: EcgViTConfig = field(default_factory=EcgViTConfig)
    sa: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=80))
    la: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=96))
    proj_dim: int = 256
    temperature: float = 0.1


class AlignmentModel(nn.Module):
    """``forward(ecg, sa, la)`` -> named losses; the CMR towers are frozen (no gradients, always in eval mode)."""

    model_type = "alignment"
    config_class = AlignmentConfig

    def __init__(self, config: AlignmentConfig) -> None:
        super().__init__()
        self.config = config
        self.ecg_encoder = EcgViT(config.ecg)
        self.sa_encoder = CmrSwin(config.sa)
        self.la_encoder = CmrSwin(config.la)
        self.ecg_proj = nn.Linear(config.ecg.embed_dim, config.proj_dim, bias=False)
        self.sa_proj = nn.Linear(config.sa.out_dim, config.proj_dim, bias=False)
        self.la_proj = nn.Linear(config.la.out_dim, config.proj_dim, bias=False)
        self.freeze_cmr()

    def freeze_cmr(self) -> None:
        for encoder in (self.sa_encoder, self.la_encoder):
            encoder.requires_grad_(False)
            encoder.eval()

    def train(self, mode: bool = True) -> AlignmentModel:
        super().train(mode)
        self.sa_encoder.eval()
        self.la_encoder.eval()
        return self

    def load_cmr_towers(self, ssl_model: nn.Module) -> None:
        """Copy the SA/LA encoders (and matching projection heads) of a :class:`CmrSslModel`."""
        self.sa_encoder.load_state_dict(ssl_model.sa_encoder.state_dict())
        self.la_encoder.load_state_dict(ssl_model.la_encoder.state_dict())
        for name in ("sa_proj", "la_proj"):
            src, dst = getattr(ssl_model, name), getattr(self, name)
            if src.weight.shape == dst.weight.shape:
                dst.load_state_dict(src.state_dict())
        self.freeze_cmr()

    def embed_ecg(self, ecg: torch.Tensor) -> torch.Tensor:
        """Projected ECG embedding ``(B, proj_dim)`` of preprocessed ``(B, 12, 5000)``."""
        return self.ecg_proj(self.ecg_encoder.forward_pooled(ecg))

    @torch.no_grad()
    def cmr_features(self, sa: torch.Tensor, la: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled features of the frozen towers, ``(B, sa.out_dim)`` and ``(B, la.out_dim)``, before projection.

        They depend on the cines alone, so a training run may compute them once per subject and pass them to
        :meth:`forward_features` (exact: the towers are frozen and in eval mode)."""
        return self.sa_encoder.forward_pooled(sa), self.la_encoder.forward_pooled(la)

    def embed_cmr(self, sa: torch.Tensor, la: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected SA and LA embeddings ``(B, proj_dim)`` of normalised cines (the frozen towers run without grad)."""
        sa_feat, la_feat = self.cmr_features(sa, la)
        return self.sa_proj(sa_feat), self.la_proj(la_feat)

    def forward(self, ecg: torch.Tensor, sa: torch.Tensor, la: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses: ``loss`` = InfoNCE(ECG, SA) + InfoNCE(ECG, LA), each symmetric with temperature 0.1."""
        return self.forward_features(ecg, *self.cmr_features(sa, la))

    def forward_features(
        self, ecg: torch.Tensor, sa_feat: torch.Tensor, la_feat: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """:meth:`forward` from the towers' pooled features (:meth:`cmr_features`) instead of the cines."""
        e = self.embed_ecg(ecg)
        s, la_emb = self.sa_proj(sa_feat), self.la_proj(la_feat)
        loss_sa = clip_loss(e, s, self.config.temperature)
        loss_la = clip_loss(e, la_emb, self.config.temperature)
        return {"loss": loss_sa + loss_la, "loss_ecg_sa": loss_sa, "loss_ecg_la": loss_la}


__all__ = ["AlignmentConfig", "AlignmentModel"]
