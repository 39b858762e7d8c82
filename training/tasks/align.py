"""Stage 2: ECG-CMR contrastive alignment with the frozen CMR towers of a cmr-ssl run.

Evaluation on the validation split: the mean batch InfoNCE loss (``val_loss``, the selection metric, as the paper
keeps the lowest-validation-loss checkpoint) and ECG->CMR retrieval over the whole split (cosine similarity of the
projected ECG embedding to the projected SA plus LA embeddings), top-1/top-5 against chance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from cardiacnets.config import config_from_dict
from cardiacnets.errors import CheckpointError, ConfigError
from cardiacnets.models.alignment import AlignmentConfig, AlignmentModel
from cardiacnets.models.cmr_mim import CmrSslModel
from cardiacnets.models.ecg_vit import EcgViTConfig
from cardiacnets.models.registry import from_pretrained, model_config, pretrained_dir, read_pretrained_metadata
from cardiacnets.training.config import RunConfig
from cardiacnets.training.data import StageDataset, augment_ecg_batch, ecg_transform, open_split, preprocess_config_dict
from cardiacnets.training.task import Task
from cardiacnets.training.tasks._common import resolve_model_name, retrieval_metrics

logger = logging.getLogger(__name__)


@dataclass
class AlignTaskConfig:
    """``task:`` section of an align config. ``cmr`` is the cmr-ssl run directory (its ``best/`` is loaded).

    ``cache_cmr_features`` keeps only the preprocessed ECG and the frozen towers' pooled features of each subject in
    memory (computed on first use; exact, since the towers are frozen), so cohorts far larger than memory-for-cines
    train at the speed of the ECG tower alone. ``augment`` turns on the paper's ECG augmentation of training batches
    (crop-resize, TimeFlip, SignFlip, then min-max; :func:`cardiacnets.training.data.augment_ecg_batch`)."""

    cmr: str | None = None
    ecg_preprocess: Literal["full", "minmax"] = "full"
    proj_dim: int = 256
    temperature: float = 0.1
    augment: bool = False
    cache_cmr_features: bool = False
    min_crop_fraction: float = 0.5
    p_time_flip: float = 0.5
    p_sign_flip: float = 0.5


def load_cmr_ssl(run_dir: str | Path) -> CmrSslModel:
    """The best CMR self-supervised model of a cmr-ssl run directory (or a saved model directory)."""
    candidate = pretrained_dir(run_dir)
    model = from_pretrained(candidate)
    if not isinstance(model, CmrSslModel):
        raise CheckpointError(f"{candidate} holds a {type(model).__name__}, not a cmr-ssl model")
    return model


class CmrFeatureCache(Dataset):
    """Items ``{"index", "ecg", "sa_feat", "la_feat"}``: the stage's ECG and the frozen CMR towers' pooled features,
    computed once per subject (the cines are dropped after use). ``model`` is the :class:`AlignmentModel` whose towers
    are frozen; the features are computed in FP32 (also when training under bf16 autocast, where the cine path would
    compute them in bf16) on the model's device in the data pipeline and kept on the CPU (use
    ``data.num_workers: 0`` with it: the cache lives in the process that reads the data)."""

    def __init__(self, base: StageDataset, model: AlignmentModel) -> None:
        self.base, self.model = base, model
        self._items: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self._items.get(i)
        if item is None:
            raw = self.base[i]
            device = next(self.model.sa_encoder.parameters()).device  # wherever the loop put the model
            sa_feat, la_feat = self.model.cmr_features(raw["cine_sa"][None].to(device), raw["cine_la"][None].to(device))
            item = {"index": raw["index"], "ecg": raw["ecg"], "sa_feat": sa_feat[0].cpu(), "la_feat": la_feat[0].cpu()}
            self._items[i] = item
        return item


class AlignTask(Task):
    name = "align"
    selection_metric = "val_loss"
    selection_mode = "min"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.options = config_from_dict(AlignTaskConfig, cfg.task, where="task")
        if not self.options.cmr:
            raise ConfigError("align needs the CMR self-supervision run: pass --cmr DIR (a cmr-ssl run directory)")
        ssl = load_cmr_ssl(self.options.cmr)
        ecg_cfg = model_config(resolve_model_name("ecg-vit", self.cfg.model))
        if not isinstance(ecg_cfg, EcgViTConfig):
            raise ConfigError(f"model {cfg.model!r} is not an ECG ViT size (try tiny, small, base, large)")
        config = AlignmentConfig(
            ecg=ecg_cfg,
            sa=ssl.config.sa,
            la=ssl.config.la,
            proj_dim=self.options.proj_dim,
            temperature=self.options.temperature,
        )
        self.model = AlignmentModel(config)
        self.model.load_cmr_towers(ssl)
        self.forward_model = self.model
        self.ecg = ecg_transform(self.options.ecg_preprocess)
        cmr_dir = pretrained_dir(self.options.cmr)
        # a cmr-ssl run's best/ carries the run's metadata; a bare saved model is recorded without it
        self.cmr_metadata = read_pretrained_metadata(cmr_dir) if cmr_dir != Path(self.options.cmr) else {}

    def _split(self, split: str) -> Dataset:
        base = open_split(self.cfg.data, split, ["ecg", "cine_sa", "cine_la"])
        if self.options.cache_cmr_features:
            return CmrFeatureCache(StageDataset(base, ecg=self.ecg, cines=True), self.model)
        return StageDataset(base, ecg=self.ecg, cines=True, cache=self.cfg.data.cache)

    def train_dataset(self) -> StageDataset:
        return self._split(self.cfg.data.train_split)

    def val_dataset(self) -> StageDataset:
        return self._split(self.cfg.data.val_split)

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        ecg = batch["ecg"]
        if self.options.augment:  # training batches only; evaluation sees the ECG as preprocessed
            ecg = augment_ecg_batch(
                ecg,
                min_crop_fraction=self.options.min_crop_fraction,
                p_time_flip=self.options.p_time_flip,
                p_sign_flip=self.options.p_sign_flip,
            )
        if "sa_feat" in batch:
            return self.forward_model.forward_features(ecg, batch["sa_feat"], batch["la_feat"])
        return self.forward_model(ecg, batch["cine_sa"], batch["cine_la"])

    def evaluate(self, loader: Any) -> dict[str, float]:
        model = self.model
        totals: dict[str, float] = {}
        n_batches = 0
        ecg_emb, sa_emb, la_emb = [], [], []
        for batch in loader:
            if "sa_feat" in batch:
                sa_feat, la_feat = batch["sa_feat"], batch["la_feat"]
            else:
                sa_feat, la_feat = model.cmr_features(batch["cine_sa"], batch["cine_la"])
            e = model.embed_ecg(batch["ecg"])
            s, la = model.sa_proj(sa_feat), model.la_proj(la_feat)
            if e.shape[0] > 1:  # InfoNCE needs negatives
                losses = model.forward_features(batch["ecg"], sa_feat, la_feat)
                for k, v in losses.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
                n_batches += 1
            ecg_emb.append(e.float().cpu())
            sa_emb.append(s.float().cpu())
            la_emb.append(la.float().cpu())
        metrics = {f"val_{k}": v / max(n_batches, 1) for k, v in totals.items()}
        if not n_batches:
            metrics["val_loss"] = float("nan")
        ecg_all = torch.cat(ecg_emb)
        metrics.update(retrieval_metrics(ecg_all, [torch.cat(sa_emb), torch.cat(la_emb)], "val_ecg_to_cmr"))
        return metrics

    def best_metadata(self) -> dict[str, Any]:
        return {
            "stage": "align",
            "ecg_preprocess": preprocess_config_dict(self.options.ecg_preprocess),
            "cmr_run": str(self.options.cmr),
            "cmr_metadata": self.cmr_metadata,
        }


__all__ = ["AlignTask", "AlignTaskConfig", "CmrFeatureCache", "load_cmr_ssl"]
