"""Frame autoencoder for ECG2CMR: a small diffusers ``AutoencoderKL`` on single 1-channel cine frames.

The paper (CardiacNets, "ECG2CMR Diffusion Model") uses a frozen autoencoder pretrained on natural images. Here the
autoencoder is loaded from a local pretrained directory when the user has one (:func:`load_vae`; never a hub download),
otherwise ``cntrain vae`` trains :func:`create_vae` on the cohort's frames. Frames are encoded one by one: a cine
``(B, F, H, W)`` in [0, 1] becomes latents ``(B, C, F, h, w)`` (the UNet3D layout) with ``h = H / downsample``.

Latents are normalised as ``(z - shift_factor) * scaling_factor`` with both factors measured on data
(:func:`measure_latent_scaling`) and stored in the autoencoder's config, as Stable Diffusion 3 does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from cardiacnets.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

logger = logging.getLogger(__name__)

#: Named autoencoder sizes. ``downsample = 2 ** (len(block_out_channels) - 1)``.
VAE_PRESETS: dict[str, dict] = {
    # tests: 2x down, a few thousand parameters
    "tiny": {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4, "latent_channels": 4},
    # CPU recipe: 4x down (80x80 -> 20x20, 96x96 -> 24x24)
    "small": {"block_out_channels": (32, 64, 64), "layers_per_block": 1, "norm_num_groups": 16, "latent_channels": 4},
    # GPU recipe: 8x down (80 -> 10, 96 -> 12), Stable-Diffusion-like widths
    "base": {
        "block_out_channels": (64, 128, 256, 256),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "latent_channels": 4,
    },
}


def create_vae(preset: str = "small", image_size: int = 80) -> AutoencoderKL:
    """Build an untrained 1-channel ``AutoencoderKL`` from a named preset (see :data:`VAE_PRESETS`)."""
    from diffusers import AutoencoderKL

    if preset not in VAE_PRESETS:
        raise InputError(f"unknown autoencoder preset {preset!r}; known: {', '.join(sorted(VAE_PRESETS))}")
    spec = VAE_PRESETS[preset]
    n_blocks = len(spec["block_out_channels"])
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=spec["latent_channels"],
        block_out_channels=tuple(spec["block_out_channels"]),
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        layers_per_block=spec["layers_per_block"],
        norm_num_groups=spec["norm_num_groups"],
        sample_size=image_size,
        scaling_factor=1.0,
        shift_factor=0.0,
    )


@dataclass
class FrameAutoencoderConfig:
    """A trained frame autoencoder: preset, frame side and the measured latent normalisation."""

    preset: str = "small"
    image_size: int = 80
    scaling_factor: float = 1.0
    shift_factor: float = 0.0


class FrameAutoencoder(nn.Module):
    """Registry wrapper around the diffusers ``AutoencoderKL`` (so the training loop can save it as ``best/``)."""

    model_type = "frame_autoencoder"
    config_class = FrameAutoencoderConfig

    def __init__(self, config: FrameAutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        self.vae = create_vae(config.preset, config.image_size)
        self.vae.register_to_config(scaling_factor=config.scaling_factor, shift_factor=config.shift_factor)

    def sync_scaling(self) -> None:
        """Copy the autoencoder's measured scaling into this wrapper's config."""
        self.config.scaling_factor = float(self.vae.config.scaling_factor)
        self.config.shift_factor = float(self.vae.config.shift_factor or 0.0)


def load_vae(directory: str | Path) -> AutoencoderKL:
    """Load an autoencoder from a LOCAL directory (no network access is attempted).

    Accepts a diffusers ``AutoencoderKL.save_pretrained`` directory, or a :class:`FrameAutoencoder` saved by the
    model registry (``cntrain vae``'s ``best/``). A pretrained 3-channel natural-image autoencoder is accepted too:
    frames are then repeated to 3 channels on encode and the channels averaged on decode (see :func:`encode_cine`).
    """
    from diffusers import AutoencoderKL

    path = Path(directory)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"no autoencoder at {path}: expected a directory with config.json and weights")
    try:
        is_registry = json.loads((path / "config.json").read_text()).get("model_type") == FrameAutoencoder.model_type
    except (json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} is not a valid autoencoder config: {exc}") from exc
    if is_registry:
        from cardiacnets.models.registry import from_pretrained

        return from_pretrained(path).vae.eval().requires_grad_(False)
    try:
        vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot load the autoencoder in {path}: {exc}") from exc
    if vae.config.in_channels not in (1, 3):
        raise CheckpointError(f"autoencoder in {path} has {vae.config.in_channels} input channels; expected 1 or 3")
    return vae.eval().requires_grad_(False)


def downsample_factor(vae: AutoencoderKL) -> int:
    """Spatial reduction of the autoencoder: frame side / latent side."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _check_cine(cine: torch.Tensor) -> None:
    if cine.ndim != 4:
        raise InputError(f"cine must be (B, F, H, W); got shape {tuple(cine.shape)}")
    if not torch.isfinite(cine).all():
        raise InputError("cine contains NaN or infinite values")


@torch.no_grad()
def encode_cine(vae: AutoencoderKL, cine: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """Encode a cine batch frame by frame into normalised latents.

    Args:
        vae: the autoencoder (its ``shift_factor``/``scaling_factor`` are applied).
        cine: ``(B, F, H, W)`` intensities in [0, 1].
        chunk_size: frames per autoencoder call.

    Returns:
        ``(B, C, F, H/d, W/d)`` latents (posterior means), roughly unit variance once the scaling is measured.
    """
    _check_cine(cine)
    b, f, h, w = cine.shape
    d = downsample_factor(vae)
    if h % d or w % d:
        raise InputError(f"frame size {h}x{w} is not divisible by the autoencoder's downsampling factor {d}")
    param = next(vae.parameters())
    frames = cine.reshape(b * f, 1, h, w).to(device=param.device, dtype=param.dtype) * 2.0 - 1.0  # (N, 1, H, W)
    if vae.config.in_channels == 3:
        frames = frames.expand(-1, 3, -1, -1)
    chunks = [vae.encode(frames[i : i + chunk_size]).latent_dist.mean for i in range(0, b * f, chunk_size)]
    z = torch.cat(chunks)  # (N, C, h, w)
    z = (z - _shift(vae)) * vae.config.scaling_factor
    return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()  # (B, C, F, h, w)


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """Decode normalised latents ``(B, C, F, h, w)`` into a cine ``(B, F, H, W)`` clamped to [0, 1] (float32)."""
    if latents.ndim != 5:
        raise InputError(f"latents must be (B, C, F, h, w); got shape {tuple(latents.shape)}")
    b, c, f, h, w = latents.shape
    param = next(vae.parameters())
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w).to(device=param.device, dtype=param.dtype)
    z = z / vae.config.scaling_factor + _shift(vae)
    chunks = [vae.decode(z[i : i + chunk_size]).sample for i in range(0, b * f, chunk_size)]
    x = torch.cat(chunks).float().mean(dim=1)  # (N, H, W); averages RGB for a 3-channel autoencoder
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0).reshape(b, f, *x.shape[1:])


def _shift(vae: AutoencoderKL) -> float:
    shift = getattr(vae.config, "shift_factor", None)
    return 0.0 if shift is None else float(shift)


@torch.no_grad()
def measure_latent_scaling(vae: AutoencoderKL, cines: torch.Tensor, chunk_size: int = 64) -> tuple[float, float]:
    """Measure ``(shift_factor, scaling_factor)`` = (mean, 1 / std) of the raw latents of ``cines`` and store them.

    Args:
        cines: ``(B, F, H, W)`` in [0, 1], a representative sample of training frames.

    Returns:
        The measured shift and scale, also written into ``vae.config`` so they travel with ``save_pretrained``.
    """
    vae.register_to_config(scaling_factor=1.0, shift_factor=0.0)
    z = encode_cine(vae, cines, chunk_size=chunk_size)
    shift = float(z.mean())
    std = float(z.std())
    if not std > 0:
        raise InputError("cannot measure the latent scale: the latents have zero variance")
    scale = 1.0 / std
    vae.register_to_config(scaling_factor=scale, shift_factor=shift)
    logger.info(
        "autoencoder latent shift %.4f scale %.4f (from %d frames)", shift, scale, cines.shape[0] * cines.shape[1]
    )
    return shift, scale
