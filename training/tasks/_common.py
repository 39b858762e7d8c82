"""Helpers shared by the stage tasks."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cardiacnets.models.registry import REGISTRY


def resolve_model_name(prefix: str, name: str) -> str:
    """``tiny`` -> ``<prefix>-tiny`` when registered; a full registry name is returned unchanged."""
    return f"{prefix}-{name}" if f"{prefix}-{name}" in REGISTRY else name


def retrieval_metrics(query: torch.Tensor, keys: list[torch.Tensor], prefix: str) -> dict[str, Any]:
    """Top-1 / top-5 retrieval of row i of ``keys`` by row i of ``query`` (cosine similarity summed over ``keys``).

    ``query`` ``(N, D)``, each key ``(N, D)``. Also reports chance levels (1/N, min(5, N)/N).
    """
    q = F.normalize(query.float(), dim=-1)
    sim = sum(q @ F.normalize(k.float(), dim=-1).t() for k in keys)  # (N, N)
    n = sim.shape[0]
    true = sim.diagonal().unsqueeze(1)
    rank = (sim > true).sum(dim=1)  # 0 = retrieved first
    return {
        f"{prefix}_top1": float((rank < 1).float().mean()),
        f"{prefix}_top5": float((rank < 5).float().mean()),
        f"{prefix}_chance_top1": 1.0 / n,
        f"{prefix}_chance_top5": min(5, n) / n,
        f"{prefix}_n": float(n),
    }
