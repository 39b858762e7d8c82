"""Swin Transformer encoder for cine CMR, the 50 frames of one cardiac cycle stacked as input channels.

Paper: CardiacNets, Methods "Self-supervised method for CMR" (Swin-Base, patch 4, window 7, frames as channels), after
Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (ICCV 2021).

Input sizes that are not multiples of the window (short axis 80 x 80 -> 20 x 20 tokens, long axis 96 x 96 -> 24 x 24)
are handled as the reference Swin does, with one difference: each block pads its token grid at the bottom/right to a
multiple of its window, and the padded tokens are MASKED OUT as attention keys (the reference only zero-pads), so
padding never changes a real token's output. Where a stage's grid is no larger than the window, the window shrinks to
the grid and the shift is dropped (as in the reference). Patch merging zero-pads an odd grid by one row/column.

Because ``image_size`` is fixed by the config, every shape, window mask and relative-position index is computed once
at construction: the forward pass has no data-dependent control flow (export-friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cardiacnets.errors import ConfigError, InputError

_MASK_VALUE = -1e4  # added to masked attention logits: exp underflows to exactly 0 in fp32 and bf16


@dataclass
class CmrSwinConfig:
    """Size and input geometry of a CMR Swin encoder (input ``(B, in_frames, image_size, image_size)``)."""

    in_frames: int = 50
    image_size: int = 80
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = field(default_factory=lambda: (2, 2, 6, 2))
    num_heads: tuple[int, ...] = field(default_factory=lambda: (3, 6, 12, 24))
    window_size: int = 7
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.depths = tuple(self.depths)
        self.num_heads = tuple(self.num_heads)
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if len(self.depths) != len(self.num_heads) or not self.depths:
            raise ConfigError(f"depths {self.depths} and num_heads {self.num_heads} must be non-empty, same length")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ConfigError(f"stage {i} dim {self.embed_dim * 2**i} is not divisible by {heads} heads")

    @property
    def grid_sizes(self) -> list[int]:
        """Token-grid side per stage, e.g. ``[20, 10, 5, 3]`` for 80 px, patch 4, four stages."""
        sizes = [self.image_size // self.patch_size]
        for _ in range(len(self.depths) - 1):
            sizes.append(math.ceil(sizes[-1] / 2))
        return sizes

    @property
    def out_dim(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def out_stride(self) -> int:
        """Pixels per final-stage token side."""
        return self.patch_size * 2 ** (len(self.depths) - 1)


def _window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, nW, w*w, C)``, windows in row-major order."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // w) * (wd // w), w * w, c)


def _window_reverse(windows: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """``(B, nW, w*w, C)`` -> ``(B, H, W, C)``."""
    b, _, _, c = windows.shape
    x = windows.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def _attention_mask(grid: int, window: int, shift: int) -> torch.Tensor:
    """Additive mask ``(nW, w*w, w*w)`` for one block: padded keys and (when shifted) keys from another region."""
    padded = math.ceil(grid / window) * window
    valid = torch.zeros(padded, padded)
    valid[:grid, :grid] = 1.0
    region = torch.zeros(padded, padded)
    if shift:
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        label = 0
        for hs in cuts:
            for ws in cuts:
                region[hs, ws] = label
                label += 1
        valid = torch.roll(valid, shifts=(-shift, -shift), dims=(0, 1))
        region = torch.roll(region, shifts=(-shift, -shift), dims=(0, 1))
    valid_w = _window_partition(valid[None, :, :, None], window)[0, :, :, 0]  # (nW, L)
    region_w = _window_partition(region[None, :, :, None], window)[0, :, :, 0]  # (nW, L)
    same_region = region_w[:, :, None] == region_w[:, None, :]  # (nW, L, L)
    allowed = same_region & (valid_w[:, None, :] > 0)
    return torch.where(allowed, 0.0, _MASK_VALUE)


class WindowAttention(nn.Module):
    """Window multi-head self-attention with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (L, L, 2)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, nW, L, C)``, ``mask`` ``(nW, L, L)`` additive -> ``(B, nW, L, C)``."""
        b, nw, n, c = x.shape
        qkv = self.qkv(x).reshape(b, nw, n, 3, self.num_heads, c // self.num_heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nW, heads, L, head_dim)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(n, n, self.num_heads).permute(2, 0, 1)  # (heads, L, L)
        attn_mask = (bias[None, None] + mask[None, :, None]).to(q.dtype)  # (1, nW, heads, L, L)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(2, 3).reshape(b, nw, n, c))


class SwinBlock(nn.Module):
    """(Shifted-)window attention block at a fixed token grid ``grid x grid``."""

    def __init__(
        self, dim: int, num_heads: int, grid: int, window: int, shifted: bool, mlp_ratio: float, dropout: float
    ) -> None:
        super().__init__()
        self.grid = grid
        self.window = min(window, grid)
        self.shift = self.window // 2 if (shifted and grid > window) else 0
        self.padded = math.ceil(grid / self.window) * self.window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, self.window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.register_buffer("attn_mask", _attention_mask(grid, self.window, self.shift), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, grid, grid, C)`` -> same."""
        b, h, w, c = x.shape
        shortcut = x
        x = self.norm1(x)
        pad = self.padded - self.grid
        if pad:
            x = F.pad(x, (0, 0, 0, pad, 0, pad))
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(_window_partition(x, self.window), self.attn_mask)
        x = _window_reverse(windows, self.window, self.padded, self.padded)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2 x 2 neighbourhood -> one token with twice the channels; odd grids are zero-padded by one."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, ceil(H/2), ceil(W/2), 2C)``."""
        h, w = x.shape[1], x.shape[2]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class CmrSwin(nn.Module):
    """CMR encoder: input ``(B, 50, H, W)`` normalised cine (Normalize(0.5, 0.5) of [0, 1], so in [-1, 1]).

    Encoder API: :meth:`forward_features` -> final-stage tokens ``(B, N, D)`` (no CLS token; N = 9 for 80 px with
    four stages), :meth:`forward_pooled` -> mean token ``(B, D)``, :meth:`forward_tokens` -> same as features,
    ``embed_dim`` = D. ``mask`` (``(B, h0, w0)`` bool over the first-stage patch grid) replaces the masked patches'
    tokens by a learned mask token, for masked image modelling.
    """

    model_type = "cmr_swin"
    config_class = CmrSwinConfig

    def __init__(self, config: CmrSwinConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.out_dim
        self.patch_embed = nn.Conv2d(config.in_frames, config.embed_dim, config.patch_size, stride=config.patch_size)
        self.patch_norm = nn.LayerNorm(config.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, config.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        grids = config.grid_sizes
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
            dim = config.embed_dim * 2**i
            blocks = [
                SwinBlock(dim, heads, grids[i], config.window_size, j % 2 == 1, config.mlp_ratio, config.dropout)
                for j in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
            self.merges.append(PatchMerging(dim) if i < len(config.depths) - 1 else nn.Identity())
        self.norm = nn.LayerNorm(config.out_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (c.in_frames, c.image_size, c.image_size):
            raise InputError(
                f"cine input must be (B, {c.in_frames}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}"
            )

    def forward_feature_map(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-stage feature map ``(B, h, w, D)`` after the final norm."""
        self._check(x)
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))  # (B, h0, w0, C)
        if mask is not None:
            m = mask.to(x.dtype).unsqueeze(-1)  # (B, h0, w0, 1)
            x = x * (1.0 - m) + self.mask_token.to(x.dtype) * m
        for stage, merge in zip(self.stages, self.merges, strict=True):
            x = merge(stage(x))
        return self.norm(x)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-stage tokens ``(B, N, D)``."""
        return self.forward_feature_map(x, mask).flatten(1, 2)

    def forward_pooled(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of the final-stage tokens ``(B, D)``."""
        return self.forward_features(x, mask).mean(dim=1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-stage tokens ``(B, N, D)`` for cross-attention."""
        return self.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pooled(x)


__all__ = ["CmrSwin", "CmrSwinConfig"]
