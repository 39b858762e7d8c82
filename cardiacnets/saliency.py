"""Grad-CAM saliency over (lead, time) for any output of an ECG screening model.

Paper: CardiacNets, Results "Evaluation of CMR generation and Interpretation studies" (Grad-CAM heatmaps on the ECG),
after Selvaraju et al., "Grad-CAM" (ICCV 2017). For a ViT the "feature map" is the grid of patch tokens: the ECG is cut
into (1, 100) patches, so tokens form a (12 leads x 50 patches) map. Grad-CAM weights each channel d by the average
gradient of the chosen output over tokens, ``alpha_d = mean_n dY/dA_nd``, and the map is ``ReLU(sum_d alpha_d A_nd)``.

Which tokens (``layer``):

- ``"embedding"`` (default): the patch embeddings plus position embeddings, before any attention. Every later layer
  mixes tokens through global attention, so a map read there can smear a single lead's evidence over all leads (a
  model trained where only V1 is informative gives a flat map at the final layer, a V1 map here; see the tests).
- ``"last_block"``: the tokens entering the last block's attention (the usual choice for ViTs with CLS pooling).
- ``"final"``: the final normed patch tokens; only for mean pooling (with CLS pooling they do not reach the output).
  There the gradient of a linear head through the mean is the same for every token, so Grad-CAM equals the class
  activation map :meth:`ScreeningModel.token_contributions` that the exported graph computes.

``weighting="channel"`` is Grad-CAM's; ``"token"`` uses each token's own gradient (gradient x activation).

The token map is upsampled to the sample grid by linear interpolation between patch centres, per lead:
``(B, 12, 5000)``, >= 0, each map divided by its maximum (all-zero maps stay zero).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cardiacnets.errors import InputError
from cardiacnets.targets import DISEASES, SUBTYPES, phenotype_names

logger = logging.getLogger(__name__)

HEADS = ("disease", "subtype", "phenotype")


def resolve_target(head: str, target: int | str) -> int:
    """Output index of ``target`` in ``head``: a disease (``"CM"``), subtype (``"DCM"``), phenotype name, or index."""
    if head not in HEADS:
        raise InputError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    names = {"disease": list(DISEASES), "subtype": list(SUBTYPES), "phenotype": phenotype_names()}[head]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(names):
            raise InputError(f"{head} output index {target} out of range 0..{len(names) - 1}")
        return int(target)
    if isinstance(target, str):
        lowered = [n.lower() for n in names]
        if target.lower() in lowered:
            return lowered.index(target.lower())
    raise InputError(
        f"unknown {head} output {target!r}; known: {', '.join(names[:12])}{'...' if len(names) > 12 else ''}"
    )


LAYERS = ("embedding", "last_block", "final")
WEIGHTINGS = ("channel", "token")


def _target_tokens_module(model: Any, layer: str) -> torch.nn.Module:
    encoder = model.encoder
    if layer not in LAYERS:
        raise InputError(f"unknown saliency layer {layer!r}; use one of {', '.join(LAYERS)}")
    if layer == "final":
        if encoder.config.pool != "mean":
            raise InputError(
                "layer='final' needs a mean-pooled encoder: with CLS pooling the final patch tokens do not "
                "reach the output; use 'last_block' or 'embedding'"
            )
        return encoder.norm
    if layer == "last_block":
        return encoder.blocks[-1].norm1
    return encoder.pos_drop  # patch embeddings + position embeddings, before any attention


def grad_cam_tokens(
    model: Any,
    ecg: torch.Tensor,
    covariates: torch.Tensor,
    covariate_mask: torch.Tensor,
    head: str = "disease",
    target: int | str = 0,
    *,
    layer: str = "embedding",
    weighting: str = "channel",
) -> torch.Tensor:
    """Signed Grad-CAM map before the ReLU: ``(B, n_leads, n_patches_per_lead)`` for ECG ``(B, 12, 5000)``.

    ``head`` is ``disease`` (logit), ``subtype`` (logit) or ``phenotype`` (standardised output); ``target`` names the
    output. The model is put in eval mode (no dropout); its parameters get no gradient.
    """
    if getattr(model, "config", None) is None or model.config.input != "ecg":
        raise InputError("Grad-CAM over (lead, time) needs an ECG-input screening model")
    index = resolve_target(head, target)
    key = {"disease": "disease_logits", "subtype": "subtype_logits", "phenotype": "phenotypes_z"}[head]
    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}")
    module = _target_tokens_module(model, layer)
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = ecg.detach().float().requires_grad_(True)  # gradients reach the tokens even if weights are frozen
            out = model(x, covariates, covariate_mask)
            acts = captured[-1]  # (B, 1 + N, D)
            score = out[key][:, index].sum()  # samples are independent, so one backward gives every sample's gradient
            (grad,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
        model.train(was_training)
    tokens, grads = acts[:, 1:].detach(), grad[:, 1:]  # (B, N, D)
    if weighting == "channel":
        cam = torch.einsum("bnd,bd->bn", tokens, grads.mean(dim=1))  # (B, N): Grad-CAM, alpha_d = mean_n grad
    else:
        cam = (tokens * grads).sum(dim=-1)  # (B, N): gradient x activation of each token
    cfg = model.config.ecg
    return cam.reshape(cam.shape[0], cfg.n_leads, cfg.n_samples // cfg.patch_samples)


def upsample_token_map(token_map: torch.Tensor | np.ndarray, n_samples: int = 5000) -> np.ndarray:
    """``(B, L, P)`` token map -> ``(B, L, n_samples)``: linear interpolation between patch centres, per lead."""
    t = torch.as_tensor(np.asarray(token_map, dtype=np.float32))
    b, leads, p = t.shape
    up = F.interpolate(t.reshape(b * leads, 1, p), size=n_samples, mode="linear", align_corners=False)
    return up.reshape(b, leads, n_samples).numpy()


def grad_cam(
    model: Any,
    ecg: torch.Tensor,
    covariates: torch.Tensor,
    covariate_mask: torch.Tensor,
    head: str = "disease",
    target: int | str = 0,
    *,
    layer: str = "embedding",
    weighting: str = "channel",
) -> np.ndarray:
    """Grad-CAM saliency ``(B, 12, 5000)`` in [0, 1] (ReLU of the token map, upsampled, divided by each map's max)."""
    cam = torch.relu(
        grad_cam_tokens(model, ecg, covariates, covariate_mask, head, target, layer=layer, weighting=weighting)
    )
    sal = upsample_token_map(cam, model.config.ecg.n_samples)
    peak = sal.reshape(sal.shape[0], -1).max(axis=1)
    return (sal / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)


def lead_shares(saliency: np.ndarray) -> np.ndarray:
    """Fraction of each map's total saliency per lead: ``(B, 12)`` from ``(B, 12, n)`` (rows sum to 1, or 0)."""
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0, None).sum(axis=-1)
    total = s.sum(axis=-1, keepdims=True)
    return np.where(total > 0, s / np.where(total > 0, total, 1.0), 0.0)


def save_saliency(path: str | Path, saliency: np.ndarray) -> Path:
    """Write a saliency array (``(12, n)`` or ``(B, 12, n)``, float32) as ``.npy`` (no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(saliency, dtype=np.float32), allow_pickle=False)
    return path


def plot_saliency(
    signal_mv: np.ndarray, fs: float, saliency: np.ndarray, path: str | Path, title: str | None = None
) -> Path:
    """Draw the 12-lead ECG ``(12, n)`` mV on ECG paper with ``saliency`` ``(12, m)`` shaded behind it; write PNG."""
    from matplotlib import pyplot as plt

    from cardiacnets.plotting import plot_ecg_paper

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_ecg_paper(np.asarray(signal_mv), fs, saliency=np.asarray(saliency), title=title)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


__all__ = [
    "HEADS",
    "grad_cam",
    "grad_cam_tokens",
    "lead_shares",
    "plot_saliency",
    "resolve_target",
    "save_saliency",
    "upsample_token_map",
]
