"""Symmetric InfoNCE (CLIP) loss between two batches of paired embeddings.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (ICML 2021); used by
CardiacNets for SA-LA (CMR self-supervision) and ECG-SA / ECG-LA (alignment).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_logits(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine-similarity logits ``(B, B)`` between rows of ``a`` ``(B, D)`` and ``b`` ``(B, D)``, divided by T."""
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    return a @ b.t() / temperature


def clip_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the cross-entropy a->b and b->a, the positives on the diagonal (scalar)."""
    logits = clip_logits(a, b, temperature)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


__all__ = ["clip_logits", "clip_loss"]
