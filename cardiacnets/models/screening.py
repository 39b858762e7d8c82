"""Downstream screening model: an encoder, FiLM covariate conditioning, and heads for the paper's tasks.

Paper: CardiacNets, Methods "Downstream tasks": the aligned ECG encoder is fine-tuned end to end for binary screening
(CAD, PH, PC, CM, HF), the 3-class cardiomyopathy subtype (RCM/DCM/HCM) and regression of the 82 CMR phenotypes, with
covariates as a condition. Here covariates enter through FiLM on the pooled embedding, identity at initialisation
(scale = 1 + gamma, shift = beta, both from zero-initialised layers), with an explicit mask for missing values.
``input="cmr"`` builds the CMR-input upper bound of the paper (SA and LA Swin towers, pooled features concatenated).

Phenotype targets are standardised for training; the model holds the scaler as buffers and :meth:`predict` returns
original units, so the exported graph needs no side files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from cardiacnets.errors import InputError
from cardiacnets.models.cmr_swin import CmrSwin, CmrSwinConfig
from cardiacnets.models.ecg_vit import EcgViT, EcgViTConfig


@dataclass
class ScreeningConfig:
    """Encoder choice and head sizes. ``covariate_mean``/``covariate_std`` standardise (sex, age, heart rate)."""

    input: Literal["ecg", "cmr"] = "ecg"
    ecg: EcgViTConfig = field(default_factory=EcgViTConfig)
    sa: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=80))
    la: CmrSwinConfig = field(default_factory=lambda: CmrSwinConfig(image_size=96))
    n_diseases: int = 5
    n_subtypes: int = 3
    n_phenotypes: int = 82
    n_covariates: int = 3
    film: bool = True
    head_dropout: float = 0.1
    covariate_mean: list[float] = field(default_factory=lambda: [0.5, 60.0, 70.0])
    covariate_std: list[float] = field(default_factory=lambda: [0.5, 12.0, 15.0])


class FiLM(nn.Module):
    """``h * (1 + gamma(c)) + beta(c)`` with ``c = [standardised covariates * mask, mask]``; identity at init."""

    def __init__(self, n_covariates: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * n_covariates, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, covariates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(torch.cat([covariates * mask, mask], dim=-1)).chunk(2, dim=-1)
        return h * (1.0 + gamma) + beta


class ScreeningModel(nn.Module):
    """``forward(x, covariates, covariate_mask)`` -> logits and standardised phenotypes; ``predict`` for deployment.

    ``x`` is the preprocessed ECG ``(B, 12, 5000)`` for ``input="ecg"``, or a tuple ``(cine_sa, cine_la)`` of
    normalised cines ``(B, 50, 80, 80)`` / ``(B, 50, 96, 96)`` for ``input="cmr"``.
    """

    model_type = "screening"
    config_class = ScreeningConfig

    def __init__(self, config: ScreeningConfig) -> None:
        super().__init__()
        self.config = config
        if config.input == "ecg":
            self.encoder = EcgViT(config.ecg)
            dim = config.ecg.embed_dim
        else:
            self.sa_encoder = CmrSwin(config.sa)
            self.la_encoder = CmrSwin(config.la)
            dim = config.sa.out_dim + config.la.out_dim
        self.embed_dim = dim
        self.film = FiLM(config.n_covariates, dim) if config.film else None
        self.dropout = nn.Dropout(config.head_dropout)
        self.disease_head = nn.Linear(dim, config.n_diseases)
        self.subtype_head = nn.Linear(dim, config.n_subtypes)
        self.phenotype_head = nn.Linear(dim, config.n_phenotypes)
        self.register_buffer("covariate_mean", torch.tensor(config.covariate_mean, dtype=torch.float32))
        self.register_buffer("covariate_std", torch.tensor(config.covariate_std, dtype=torch.float32))
        self.register_buffer("phenotype_mean", torch.zeros(config.n_phenotypes))
        self.register_buffer("phenotype_std", torch.ones(config.n_phenotypes))

    def set_phenotype_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's phenotype mean/std (original units); std <= 0 or NaN becomes 1."""
        std = torch.as_tensor(std, dtype=torch.float32)
        mean = torch.as_tensor(mean, dtype=torch.float32)
        self.phenotype_std.copy_(torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std)))
        self.phenotype_mean.copy_(torch.nan_to_num(mean))

    def load_encoder(self, encoder: nn.Module) -> None:
        """Initialise the ECG encoder from a pretrained one (e.g. the aligned encoder of an alignment run)."""
        if self.config.input != "ecg":
            raise InputError("load_encoder applies to ECG-input screening models")
        self.encoder.load_state_dict(encoder.state_dict())

    def embed(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Pooled encoder embedding ``(B, D)``."""
        if self.config.input == "ecg":
            if not isinstance(x, torch.Tensor):
                raise InputError("an ECG screening model takes the ECG tensor (B, 12, 5000)")
            return self.encoder.forward_pooled(x)
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise InputError("a CMR screening model takes (cine_sa, cine_la)")
        return torch.cat([self.sa_encoder.forward_pooled(x[0]), self.la_encoder.forward_pooled(x[1])], dim=-1)

    def forward(
        self,
        x: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        covariates: torch.Tensor,
        covariate_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``disease_logits`` (B, 5), ``subtype_logits`` (B, 3), ``phenotypes_z`` (B, 82) standardised,
        ``embedding`` (B, D) after FiLM."""
        h = self.embed(x)
        if self.film is not None:
            z = (covariates - self.covariate_mean) / self.covariate_std
            h = self.film(h, z, covariate_mask)
        d = self.dropout(h)
        return {
            "disease_logits": self.disease_head(d),
            "subtype_logits": self.subtype_head(d),
            "phenotypes_z": self.phenotype_head(d),
            "embedding": h,
        }

    def token_contributions(
        self, ecg: torch.Tensor, covariates: torch.Tensor, covariate_mask: torch.Tensor, head: str = "disease"
    ) -> torch.Tensor:
        """Exact per-token share of each output of ``head`` (``disease``, ``subtype`` or ``phenotype``):
        ``(B, K, n_leads, n_patches_per_lead)``, the class activation map (Zhou et al. 2016), which Grad-CAM reduces
        to for a mean-pooled encoder with a linear head. Summing over tokens gives the logit minus the constant
        ``W @ beta + b``. Needs ``ecg.pool == "mean"``; computed without autograd, so it exports to ONNX.
        """
        if self.config.input != "ecg" or self.config.ecg.pool != "mean":
            raise InputError("token contributions need an ECG encoder with mean pooling (ecg.pool='mean')")
        weight = {"disease": self.disease_head, "subtype": self.subtype_head, "phenotype": self.phenotype_head}[
            head
        ].weight
        tokens = self.encoder.forward_features(ecg)[:, 1:]  # (B, N, D), lead-major
        scale = torch.ones_like(tokens[:, 0])  # (B, D)
        if self.film is not None:
            z = (covariates - self.covariate_mean) / self.covariate_std
            gamma, _ = self.film.proj(torch.cat([z * covariate_mask, covariate_mask], dim=-1)).chunk(2, dim=-1)
            scale = 1.0 + gamma
        contrib = torch.einsum("bnd,kd,bd->bkn", tokens, weight, scale) / tokens.shape[1]  # (B, K, N)
        cfg = self.config.ecg
        return contrib.reshape(contrib.shape[0], contrib.shape[1], cfg.n_leads, -1)

    def predict(
        self,
        x: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        covariates: torch.Tensor,
        covariate_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deployment outputs: disease probabilities (B, 5), subtype probabilities (B, 3), phenotypes in original
        units (B, 82), embedding (B, D) — the screening graph's contract (:mod:`cardiacnets.bundle`)."""
        out = self.forward(x, covariates, covariate_mask)
        return (
            torch.sigmoid(out["disease_logits"]),
            F.softmax(out["subtype_logits"], dim=-1),
            out["phenotypes_z"] * self.phenotype_std + self.phenotype_mean,
            out["embedding"],
        )


class ScreeningExportWrapper(nn.Module):
    """``(ecg, covariates, covariate_mask) -> (disease_prob, subtype_prob, phenotypes, embedding[, saliency])`` for
    ONNX. With ``with_saliency`` the graph also returns the disease token contributions ``(B, 5, 12, 50)``."""

    def __init__(self, model: ScreeningModel, with_saliency: bool = False) -> None:
        super().__init__()
        if model.config.input != "ecg":
            raise InputError("only ECG-input screening models are exported for the edge")
        if with_saliency and model.config.ecg.pool != "mean":
            raise InputError("saliency output needs a mean-pooled encoder (ecg.pool='mean')")
        self.model = model.eval()
        self.with_saliency = with_saliency

    def forward(
        self, ecg: torch.Tensor, covariates: torch.Tensor, covariate_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        outputs = self.model.predict(ecg, covariates, covariate_mask)
        if self.with_saliency:
            return (*outputs, self.model.token_contributions(ecg, covariates, covariate_mask, "disease"))
        return outputs
