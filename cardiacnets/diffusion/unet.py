"""ECG-conditioned latent video denoiser for ECG2CMR (CardiacNets, "ECG2CMR Diffusion Model", Fig. 6c).

The denoiser is diffusers' ``UNet3DConditionModel`` (the ModelScope text-to-video UNet the paper adapts). Its
cross-attention context is the frozen aligned ECG encoder's token sequence ``(B, 1 + 600, D_ecg)`` projected by a
trainable linear layer to the UNet's ``cross_attention_dim``. A learned null token replaces the condition for dropped
samples during training and for the unconditional branch of classifier-free guidance.

One model per view: short axis (paper: 50 x 80 x 80) and 4-chamber long axis (50 x 96 x 96). Frame count and
resolution are configurable (the CPU recipe uses fewer frames). Sizes are named presets in :data:`UNET_PRESETS`.

Two options make a denoiser that learns the condition within a CPU budget (the ``cpu`` preset); both default off,
which is the paper's model:

- ``condition_tokens = K``: the N patch tokens are averaged in K consecutive groups before the projection (the ECG
  ViT's tokens are lead-major, so K = 12 gives one token per lead). Cross-attention over 600 tokens is most of a CPU
  training step at small latents; over 12 it is negligible.
- ``global_condition``: the mean of the cross-attention context is also added to the timestep embedding
  (diffusers' ``time_cond_proj_dim``), so the ECG modulates every ResNet block, not only the attention layers. The
  null context gives the null token's embedding, so classifier-free guidance is unchanged.

``frame_position = "sinusoidal"`` (issue 23) gives the temporal attention the frame index: diffusers' UNet3D builds its
temporal transformers without positional embeddings, so attention over the frames is permutation-equivariant and
only the temporal convolutions' zero padding tells a frame where it lies in the cycle. With the option, every
temporal transformer block adds a fixed sinusoidal embedding of the frame index to its normalised input (diffusers'
``SinusoidalPositionalEmbedding``, as AnimateDiff's motion modules do); the residual stream is unchanged. Default
``"none"`` (the paper's model and every denoiser trained before the option).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cardiacnets.errors import CheckpointError, ConfigError, InputError

logger = logging.getLogger(__name__)

FORMAT_NAME = "cardiacnets-ecg2cmr-denoiser"
FORMAT_VERSION = 1

#: Frame-position options of the temporal attention (:class:`Ecg2CmrConfig.frame_position`).
FRAME_POSITIONS = ("none", "sinusoidal")

#: View -> (frames, height, width) of the training cines (docs/architecture.md, "Data contracts").
VIEW_SHAPES: dict[str, tuple[int, int, int]] = {"sa": (50, 80, 80), "la": (50, 96, 96)}


def _preset(channels: tuple[int, ...], attention_levels: int, heads: int, cross_dim: int, groups: int, **extra) -> dict:
    """A UNet size: the first ``attention_levels`` levels cross-attend to the ECG (mirrored on the way up)."""
    plain = len(channels) - attention_levels
    down = ("CrossAttnDownBlock3D",) * attention_levels + ("DownBlock3D",) * plain
    return {
        "block_out_channels": channels,
        "down_block_types": down,
        "up_block_types": ("UpBlock3D",) * plain + ("CrossAttnUpBlock3D",) * attention_levels,
        "layers_per_block": extra.pop("layers_per_block", 1),
        "attention_head_dim": heads,
        "cross_attention_dim": cross_dim,
        "norm_num_groups": groups,
        **extra,
    }


#: Named UNet sizes. ``attention_head_dim`` is the NUMBER of heads in diffusers' UNet3D (an API quirk).
UNET_PRESETS: dict[str, dict] = {
    "tiny": _preset((32, 32), 1, heads=4, cross_dim=32, groups=8),
    # The CPU recipe's denoiser: wider channels than tiny, 2 attention heads per block (16 and 32 wide; many narrow
    # heads made CPU attention the bottleneck), ECG tokens pooled per lead, and the ECG in the timestep embedding.
    "cpu": _preset((32, 64), 1, heads=2, cross_dim=64, groups=8, condition_tokens=12, global_condition=True),
    "small": _preset((64, 128, 128), 2, heads=8, cross_dim=256, groups=32),
    # ModelScope text-to-video 1.7B topology (~1.4 B parameters)
    "modelscope": _preset((320, 640, 1280, 1280), 3, heads=64, cross_dim=1024, groups=32, layers_per_block=2),
}


@dataclass
class Ecg2CmrConfig:
    """Denoiser configuration. Frames/height/width are the PIXEL cine; latents are ``height / latent_downsample``."""

    view: str = "sa"
    num_frames: int = 50
    height: int = 80
    width: int = 80
    latent_channels: int = 4
    latent_downsample: int = 4
    condition_dim: int = 192  # ECG encoder embed_dim
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D")
    up_block_types: tuple[str, ...] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D")
    layers_per_block: int = 1
    attention_head_dim: int = 8
    cross_attention_dim: int = 256
    norm_num_groups: int = 32
    condition_tokens: int = 0  # 0: every ECG token (paper); K: tokens averaged in K consecutive groups
    global_condition: bool = False  # also add the mean context to the timestep embedding
    frame_position: str = "none"  # "sinusoidal": frame-index embedding in every temporal attention block
    extra: dict = field(default_factory=dict)  # free-form provenance (training data, recipe)

    def __post_init__(self) -> None:
        for name in ("block_out_channels", "down_block_types", "up_block_types"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.view not in VIEW_SHAPES:
            raise ConfigError(f"view must be one of {sorted(VIEW_SHAPES)}; got {self.view!r}")
        for name in ("num_frames", "height", "width", "latent_channels", "latent_downsample", "condition_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if int(self.condition_tokens) < 0:
            raise ConfigError(
                f"condition_tokens must be 0 (all tokens) or a positive integer; got {self.condition_tokens}"
            )
        self.global_condition = bool(self.global_condition)
        if self.frame_position not in FRAME_POSITIONS:
            raise ConfigError(f"frame_position must be one of {list(FRAME_POSITIONS)}; got {self.frame_position!r}")
        if self.height % self.latent_downsample or self.width % self.latent_downsample:
            raise ConfigError(
                f"frame size {self.height}x{self.width} is not divisible by latent_downsample={self.latent_downsample}"
            )

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """``(C, F, h, w)`` of one latent video."""
        d = self.latent_downsample
        return (self.latent_channels, self.num_frames, self.height // d, self.width // d)

    @classmethod
    def from_preset(cls, preset: str, view: str = "sa", **overrides: object) -> Ecg2CmrConfig:
        """Config for a named size and view; the view sets frames/height/width unless overridden."""
        if preset not in UNET_PRESETS:
            raise ConfigError(f"unknown denoiser preset {preset!r}; known: {', '.join(sorted(UNET_PRESETS))}")
        if view not in VIEW_SHAPES:
            raise ConfigError(f"view must be one of {sorted(VIEW_SHAPES)}; got {view!r}")
        frames, height, width = VIEW_SHAPES[view]
        values: dict = {"view": view, "num_frames": frames, "height": height, "width": width, **UNET_PRESETS[preset]}
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict) -> Ecg2CmrConfig:
        """Strict construction: an unknown key is a :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown denoiser config key(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in ("block_out_channels", "down_block_types", "up_block_types"):
            out[name] = list(out[name])
        return out


def add_frame_position(unet: nn.Module, num_frames: int) -> int:
    """Give every temporal transformer block of diffusers' ``unet`` a sinusoidal frame-index embedding (added to the
    block's normalised input before its attention over frames). Returns the number of blocks changed."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    changed = 0
    for module in unet.modules():
        if isinstance(module, TransformerTemporalModel):
            for block in module.transformer_blocks:
                block.pos_embed = SinusoidalPositionalEmbedding(block.norm1.normalized_shape[0], int(num_frames))
                changed += 1
    if not changed:
        raise ConfigError("this UNet has no temporal transformer to give a frame position")
    return changed


class EcgConditionedUNet3D(nn.Module):
    """UNet3D denoiser with a projected ECG-token condition and a learned null condition.

    ``forward(sample (B, C, F, h, w), timestep (B,) or scalar, ecg_tokens (B, T, condition_dim) or None,
    drop_condition (B,) bool or None) -> predicted noise (B, C, F, h, w)``.
    """

    model_type = "ecg2cmr_denoiser"
    config_class = Ecg2CmrConfig

    def __init__(self, config: Ecg2CmrConfig) -> None:
        super().__init__()
        from diffusers import UNet3DConditionModel

        self.config = config
        _, _, h, _ = config.latent_shape
        self.unet = UNet3DConditionModel(
            sample_size=h,
            in_channels=config.latent_channels,
            out_channels=config.latent_channels,
            down_block_types=config.down_block_types,
            up_block_types=config.up_block_types,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            cross_attention_dim=config.cross_attention_dim,
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_num_groups,
            time_cond_proj_dim=config.cross_attention_dim if config.global_condition else None,
        )
        if config.frame_position == "sinusoidal":
            add_frame_position(self.unet, config.num_frames)
        self.condition_proj = nn.Linear(config.condition_dim, config.cross_attention_dim)
        # One learned token, broadcast over the condition length: attention over identical keys returns its value,
        # so the unconditional branch sees no ECG information whatever the token count.
        self.null_condition = nn.Parameter(torch.randn(1, 1, config.cross_attention_dim) * 0.02)

    def encode_condition(
        self, ecg_tokens: torch.Tensor | None, drop_condition: torch.Tensor | None = None, batch_size: int | None = None
    ) -> torch.Tensor:
        """Project ECG tokens ``(B, T, condition_dim)`` to the cross-attention context ``(B, T, cross_attention_dim)``.

        ``ecg_tokens=None`` gives the null context for ``batch_size`` samples (one token each). ``drop_condition``
        ``(B,)`` bool replaces the flagged samples' context by the null token (classifier-free guidance training).
        """
        if ecg_tokens is None:
            if batch_size is None:
                raise InputError("batch_size is required for the null (unconditional) context")
            return self.null_condition.expand(batch_size, 1, -1)
        if ecg_tokens.ndim != 3 or ecg_tokens.shape[-1] != self.config.condition_dim:
            raise InputError(
                f"ecg_tokens must be (B, T, {self.config.condition_dim}); got shape {tuple(ecg_tokens.shape)}"
            )
        k = int(self.config.condition_tokens)
        if k:
            n = ecg_tokens.shape[1]
            if n % k:
                raise InputError(f"{n} ECG tokens cannot be pooled into condition_tokens={k} equal groups")
            ecg_tokens = ecg_tokens.unflatten(1, (k, n // k)).mean(dim=2)  # (B, K, condition_dim)
        context = self.condition_proj(ecg_tokens)  # (B, T or K, cross_attention_dim)
        if drop_condition is not None:
            null = self.null_condition.to(context.dtype).expand_as(context)
            context = torch.where(drop_condition.view(-1, 1, 1).to(context.device), null, context)
        return context

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        ecg_tokens: torch.Tensor | None = None,
        drop_condition: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise. Pass either ``ecg_tokens`` (projected here) or a ready ``context``."""
        if context is None:
            context = self.encode_condition(ecg_tokens, drop_condition, batch_size=sample.shape[0])
        if context.shape[0] != sample.shape[0]:
            context = context.expand(sample.shape[0], -1, -1)
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        # the null context is one token repeated, so its mean is the null token: no ECG in the unconditional branch
        timestep_cond = context.mean(dim=1) if self.config.global_condition else None
        return self.unet(
            sample, timestep.long(), encoder_hidden_states=context, timestep_cond=timestep_cond, return_dict=False
        )[0]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` (the model registry's format)."""
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "config": self.config.to_dict(),
            "metadata": {"format": FORMAT_NAME},
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / "model.safetensors"), metadata={"format": FORMAT_NAME})
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> EcgConditionedUNet3D:
        """Load a directory written by :meth:`save_pretrained` (strict config keys and weight names)."""
        from safetensors.torch import load_file

        path = Path(directory)
        config_path, weights_path = path / "config.json", path / "model.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise CheckpointError(f"no ECG2CMR denoiser at {path}: expected config.json and model.safetensors")
        try:
            meta = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("model_type") != cls.model_type:
            raise CheckpointError(f"{config_path} is not an ECG2CMR denoiser (model_type {cls.model_type!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"{config_path} has format_version {meta.get('format_version')}; this toolkit reads <= {FORMAT_VERSION}"
            )
        extra_keys = sorted(set(meta) - {"format_version", "model_type", "config", "metadata"})
        if extra_keys:
            raise ConfigError(f"unknown key(s) in {config_path}: {', '.join(extra_keys)}")
        model = cls(Ecg2CmrConfig.from_dict(meta["config"]))
        state = load_file(str(weights_path), device=str(map_location))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"weights in {weights_path} do not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        return model
