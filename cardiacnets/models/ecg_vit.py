"""ViT ECG encoder: the 12-lead ECG as a one-channel 12 x 5000 image cut into (1, 100) patches.

Paper: CardiacNets, Methods "Contrastive ECG-CMR Pre-training" (ViT-Large, patch (1, 100) -> 600 tokens), after
Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021).

Kept export-friendly (see ``export-notes.md`` section 1): plain torch, ``F.scaled_dot_product_attention``, no
data-dependent control flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cardiacnets.errors import ConfigError, InputError


@dataclass
class EcgViTConfig:
    """Size and input geometry of the ECG ViT.

    ``n_leads`` x ``n_samples`` is the input (12 leads x 5000 samples = 10 s at 500 Hz); ``patch_samples`` is the
    patch length along time (one lead high), so the token count is ``n_leads * n_samples / patch_samples``.
    """

    n_leads: int = 12
    n_samples: int = 5000
    patch_samples: int = 100
    embed_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    pool: Literal["cls", "mean"] = "cls"

    def __post_init__(self) -> None:
        if self.n_samples % self.patch_samples:
            raise ConfigError(f"n_samples {self.n_samples} is not a multiple of patch_samples {self.patch_samples}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    @property
    def num_patches(self) -> int:
        return self.n_leads * (self.n_samples // self.patch_samples)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EcgViT(nn.Module):
    """ECG encoder. Input ``(B, 12, 5000)`` (preprocessed, in [-1, 1]) or ``(B, 1, 12, 5000)``.

    Encoder API shared by every encoder: :meth:`forward_features` -> ``(B, 1 + N, D)`` tokens (CLS first),
    :meth:`forward_pooled` -> ``(B, D)``, :meth:`forward_tokens` -> ``(B, N, D)`` patch tokens (cross-attention
    context), ``embed_dim``.
    """

    model_type = "ecg_vit"
    config_class = EcgViTConfig

    def __init__(self, config: EcgViTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.embed_dim
        self.patch_embed = nn.Conv2d(
            1, config.embed_dim, kernel_size=(1, config.patch_samples), stride=(1, config.patch_samples)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.num_patches, config.embed_dim))
        self.pos_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.embed_dim, config.num_heads, config.mlp_ratio, config.dropout) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, 1, 12, 5000)
        expected = (1, self.config.n_leads, self.config.n_samples)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise InputError(f"ECG input must be (B, {expected[1]}, {expected[2]}), got {tuple(x.shape)}")
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final norm: ``(B, 1 + N, D)``, CLS first; N = 600 for the default geometry."""
        x = self._check(x)
        x = self.patch_embed(x)  # (B, D, 12, 50)
        x = x.flatten(2).transpose(1, 2)  # (B, 600, D), lead-major order
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``(B, D)``: the CLS token or the mean of patch tokens (``config.pool``)."""
        tokens = self.forward_features(x)
        return tokens[:, 0] if self.config.pool == "cls" else tokens[:, 1:].mean(dim=1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(B, N, D)`` without CLS, the context for cross-attention."""
        return self.forward_features(x)[:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pooled(x)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["EcgViT", "EcgViTConfig", "count_parameters"]
