"""Stage 4: downstream fine-tuning of the whole encoder for screening, subtype and phenotype tasks.

Paper: CardiacNets, Methods "Downstream tasks": the aligned ECG encoder (an alignment run's, or with ``init:
default`` the one shipped with the default bundle; or a random one: the ECG-only baseline; or SA + LA CMR towers: the
CMR-based upper bound) is fine-tuned end to end with covariates through FiLM, batch 10, a 10-epoch warm-up to 1e-4
then cosine annealing, evaluation after every epoch and the checkpoint of the best validation AUROC kept; binary tasks
train on a 1:1 case-control sample.

Tasks (``task.task``):

- ``cad``, ``ph``, ``pc``, ``cm``, ``hf``: one binary head output, BCE on subjects whose label is known; the training
  subset is 1:1 case-control (all cases, as many controls drawn without replacement; ``case_control: false`` keeps
  every subject). Selection: validation AUROC.
- ``subtype``: RCM / DCM / HCM cross-entropy on cardiomyopathy cases with a known subtype. Selection: macro
  one-vs-rest AUROC.
- ``phenotypes``: MSE on the 82 phenotypes standardised with the training subset's mean / std (stored in the model,
  whose ``predict`` returns original units), masked where NaN. Selection: mean Pearson r over phenotypes.
- ``all``: every head at once (BCE + CE + MSE). A single 1:1 sample cannot balance five diseases at once, so ``all``
  keeps every training subject and weights each disease's positives by n_negative / n_positive instead. Selection:
  mean validation AUROC over the diseases.

Label fraction (``label_fraction``): a subject-level subset of the training split, stratified by the task's label
(disease pattern for ``all`` / ``phenotypes``) and drawn with ``label_seed``, before case-control sampling.

Epoch-based schedule: ``warmup_epochs`` / ``max_epochs`` are converted to optimiser steps from the size of the training
subset, evaluation runs once per epoch, and training stops after ``patience`` evaluations without improvement of the
selection metric (the loop's ``best/`` keeps the best one). Thresholds (Youden and a high-specificity point) are chosen
on the validation predictions of the checkpoint being saved and stored in its metadata, with the preprocessing config.
After training, :func:`run_finetune` reloads ``best/`` and writes ``evaluation.json`` (validation and test: AUROC with
DeLong intervals, metrics at the stored thresholds with Wilson intervals, reliability curve and ECE, subtype confusion,
phenotype r with bootstrap intervals) and ``predictions_<split>.npz``.

This module owns the task object, model construction, prediction and the run end to end; the cohort in memory and the
training-row draw live in :mod:`cardiacnets.training.tasks.finetune_cohort`, the scoring (pure numpy) in
:mod:`cardiacnets.metrics.screening`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cardiacnets.config import config_from_dict
from cardiacnets.errors import CheckpointError, ConfigError, DatasetError
from cardiacnets.leadsets import LEAD_SETS, lead_set_mask
from cardiacnets.metrics.screening import (
    TASKS,
    evaluate_predictions,
    quick_scores,
    task_spec,
    thresholds_from_predictions,
)
from cardiacnets.models.alignment import AlignmentModel
from cardiacnets.models.registry import (
    REGISTRY,
    from_pretrained,
    model_config,
    pretrained_dir,
    read_pretrained_metadata,
)
from cardiacnets.models.screening import ScreeningConfig, ScreeningModel
from cardiacnets.models.shipped import load_aligned_encoder
from cardiacnets.reporting import json_default
from cardiacnets.targets import DISEASES, SUBTYPES
from cardiacnets.training.config import RunConfig
from cardiacnets.training.data import mask_leads_batch
from cardiacnets.training.loop import Task, TrainResult, run_training
from cardiacnets.training.tasks.finetune_cohort import (
    CohortRows,
    CohortSplit,
    eligible_rows,
    load_cohort_split,
    select_training_rows,
    task_strata,
)

logger = logging.getLogger(__name__)

#: ``task.init`` naming the default bundle's aligned ECG encoder shipped with the package.
DEFAULT_INIT = "default"


@dataclass
class FinetuneTaskConfig:
    """``task:`` section of a finetune config.

    ``init``: ``"random"``, ``"default"`` (the default bundle's aligned ECG encoder, shipped with the package:
    :mod:`cardiacnets.models.shipped`; ECG input only) or an alignment run directory (its ``best/``; a saved alignment
    model directory works too; a directory named ``default`` is ``./default``).
    ``input``: ``"ecg"``, or ``"cmr"`` for the CMR-input upper bound (initialised from the alignment run's frozen SA/LA
    towers when ``init`` is a directory). ``pool``: pooling of the fine-tuned ECG encoder (mean pooling makes the exact
    token saliency available; both arms of a comparison use the same). ``synthetic_mode``: ``population`` or
    ``balanced`` for ``data.source: synthetic``. ``min_specificity``: the high-specificity operating point.
    ``lead_masking``: train one model for every lead set of ``lead_sets`` (name -> probability; default
    :data:`DEFAULT_LEAD_MASKING`): each training ECG keeps only the leads of a set drawn at random, the others zeroed
    (:mod:`cardiacnets.leadsets`); validation stays 12-lead and the saved model declares the sets (``lead_sets``).
    """

    task: str = "all"
    init: str = "random"
    input: Literal["ecg", "cmr"] = "ecg"
    label_fraction: float = 1.0
    label_seed: int = 0
    case_control: bool = True
    eval_balanced: bool = False
    ecg_preprocess: Literal["full", "minmax"] = "full"
    synthetic_mode: Literal["population", "balanced"] = "population"
    pool: Literal["mean", "cls"] = "mean"
    warmup_epochs: float = 10.0
    max_epochs: float | None = None
    max_steps_cap: int | None = None  # compute budget: at most this many optimiser steps after the epoch conversion
    patience: int | None = 20
    min_specificity: float = 0.9
    phenotype_weight: float = 1.0
    subtype_weight: float = 1.0
    lead_masking: bool = False
    lead_sets: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if not 0.0 < float(self.label_fraction) <= 1.0:
            raise ConfigError(f"label_fraction must be in (0, 1], got {self.label_fraction!r}")
        if self.input not in ("ecg", "cmr"):
            raise ConfigError(f"input must be 'ecg' or 'cmr', got {self.input!r}")
        if self.init == DEFAULT_INIT and self.input == "cmr":
            raise ConfigError(
                "--init default is the shipped aligned ECG encoder and has no CMR towers; with --input cmr use"
                " --init random or an alignment run directory"
            )
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 (or null), got {self.patience!r}")
        if self.lead_masking and self.input != "ecg":
            raise ConfigError("lead_masking needs input 'ecg'")
        bad = [k for k in self.lead_sets or {} if k not in LEAD_SETS]
        if bad:
            raise ConfigError(f"unknown lead set(s) {bad} in lead_sets; known: {', '.join(LEAD_SETS)}")


#: Lead-set probabilities of ``lead_masking`` when ``lead_sets`` is not given: half the steps see the 12-lead ECG.
DEFAULT_LEAD_MASKING: dict[str, float] = {"12": 0.4, "limb6": 0.2, "I+II": 0.2, "I": 0.2}


# ----------------------------------------------------------------------------------------------------------------------
# Model construction


def _alignment_model(init: str) -> tuple[AlignmentModel, dict[str, Any]]:
    candidate = pretrained_dir(init)
    if not (candidate / "config.json").is_file():
        raise ConfigError(f"--init {init!r} is neither 'random' nor an alignment run directory (no best/config.json)")
    model = from_pretrained(candidate)
    if not isinstance(model, AlignmentModel):
        raise CheckpointError(f"{candidate} holds a {type(model).__name__}, not an alignment model")
    return model, read_pretrained_metadata(candidate)


def build_screening_model(options: FinetuneTaskConfig, size: str) -> tuple[ScreeningModel, dict[str, Any]]:
    """The screening model of a run and a description of its initialisation (JSON)."""
    if options.input == "cmr":
        if options.init != "random":
            aligned, meta = _alignment_model(options.init)
            config = ScreeningConfig(input="cmr", sa=aligned.config.sa, la=aligned.config.la)
            model = ScreeningModel(config)
            model.sa_encoder.load_state_dict(aligned.sa_encoder.state_dict())
            model.la_encoder.load_state_dict(aligned.la_encoder.state_dict())
            return model, {"init": "alignment-cmr-towers", "run": str(options.init)}
        name = size if size in REGISTRY else f"screening-cmr-{size}"
        return ScreeningModel(model_config(name)), {"init": "random"}
    if options.init == DEFAULT_INIT:
        # Encoder-only checkpoint: the bundle kept the aligned ECG tower, not the CMR towers an AlignmentModel needs.
        encoder, info = load_aligned_encoder()
        model = ScreeningModel(ScreeningConfig(input="ecg", ecg=dataclasses.replace(encoder.config, pool=options.pool)))
        model.load_encoder(encoder)
        return model, info
    if options.init != "random":
        aligned, meta = _alignment_model(options.init)
        ecg_cfg = dataclasses.replace(aligned.config.ecg, pool=options.pool)
        model = ScreeningModel(ScreeningConfig(input="ecg", ecg=ecg_cfg))
        model.load_encoder(aligned.ecg_encoder)
        return model, {"init": "aligned", "run": str(options.init), "align_step": meta.get("step")}
    name = size if size in REGISTRY else f"screening-ecg-{size}"
    if name not in REGISTRY:
        raise ConfigError(f"model {size!r} is not a screening size (try tiny, small, base, large)")
    return ScreeningModel(model_config(name, ecg={"pool": options.pool})), {"init": "random"}


def _model_input(batch: dict[str, Any]) -> Any:
    return batch["ecg"] if "ecg" in batch else (batch["cine_sa"], batch["cine_la"])


# ----------------------------------------------------------------------------------------------------------------------
# Predictions


@torch.no_grad()
def predict_rows(
    model: ScreeningModel, cohort: CohortSplit, rows: np.ndarray, batch_size: int = 32, lead_set: str | None = None
) -> dict[str, Any]:
    """Model outputs on ``rows``: ``disease_prob`` (n, 5), ``subtype_prob`` (n, 3), ``phenotypes`` (n, 82) original
    units, ``embedding`` (n, D), with the targets ``labels``, ``subtype``, ``phenotypes_true`` and ``rows``.
    ``lead_set``: give the model only that set's leads (:mod:`cardiacnets.leadsets`; None: all 12)."""
    model.eval()
    device = next(model.parameters()).device
    data = CohortRows(cohort, rows)
    mask = None if lead_set is None else torch.from_numpy(lead_set_mask(lead_set)).to(device)[:, None]
    out: dict[str, list[np.ndarray]] = {"disease_prob": [], "subtype_prob": [], "phenotypes": [], "embedding": []}
    for start in range(0, len(data), batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        if mask is not None:
            batch["ecg"] = batch["ecg"] * mask
        prob, sub, phen, emb = model.predict(_model_input(batch), batch["covariates"], batch["covariate_mask"])
        out["disease_prob"].append(prob.float().cpu().numpy())
        out["subtype_prob"].append(sub.float().cpu().numpy())
        out["phenotypes"].append(phen.float().cpu().numpy())
        out["embedding"].append(emb.float().cpu().numpy())
    rows = np.asarray(rows, np.int64)
    result: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
    result.update(
        labels=cohort.labels[rows],
        subtype=cohort.subtype[rows],
        phenotypes_true=cohort.phenotypes[rows],
        rows=rows,
    )
    return result


# ----------------------------------------------------------------------------------------------------------------------
# The task


class FinetuneTask(Task):
    """Fine-tuning of a :class:`ScreeningModel` on one downstream task (see the module docstring)."""

    name = "finetune"
    selection_metric = "val_selection"
    selection_mode = "max"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.options = config_from_dict(FinetuneTaskConfig, cfg.task, where="task")
        opts = self.options
        self.spec = task_spec(opts.task)
        self.model, self.init_info = build_screening_model(opts, cfg.model)
        self.forward_model = self.model
        load = {"input": opts.input, "ecg_preprocess": opts.ecg_preprocess, "synthetic_mode": opts.synthetic_mode}
        self.train_cohort = load_cohort_split(cfg.data, cfg.data.train_split, **load)
        self.val_cohort = load_cohort_split(cfg.data, cfg.data.val_split, **load)
        tc = self.train_cohort
        strata = task_strata(opts.task, tc.labels, tc.subtype)
        self.train_rows = select_training_rows(
            opts.task,
            strata,
            tc.groups,
            eligible_rows(opts.task, tc),
            fraction=opts.label_fraction,
            seed=opts.label_seed,
            case_control=opts.case_control,
        )
        self.val_rows = eligible_rows(opts.task, self.val_cohort)
        if len(self.train_rows) == 0 or len(self.val_rows) == 0:
            raise DatasetError(
                f"task {opts.task!r}: {len(self.train_rows)} training and {len(self.val_rows)} validation subjects "
                "carry its target; use a larger cohort"
            )
        phen = tc.phenotypes[self.train_rows]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phenotype columns: the scaler falls back to 1
            self.model.set_phenotype_scaler(torch.from_numpy(np.nanmean(phen, 0)), torch.from_numpy(np.nanstd(phen, 0)))
        labels = tc.labels[self.train_rows]
        pos = np.nansum(labels, axis=0)
        neg = np.sum(np.isfinite(labels), axis=0) - pos
        self.pos_weight = torch.tensor(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), dtype=torch.float32)
        self._schedule_in_epochs()
        self.thresholds: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self._best: float | None = None
        self._since_best = 0
        logger.info(
            "finetune %s (%s, init %s): %d training rows (fraction %g), %d validation rows, %d steps/epoch",
            opts.task,
            opts.input,
            self.init_info["init"],
            len(self.train_rows),
            opts.label_fraction,
            len(self.val_rows),
            self.steps_per_epoch,
        )

    def _schedule_in_epochs(self) -> None:
        """Turn ``warmup_epochs`` / ``max_epochs`` into steps; evaluate once per epoch."""
        tr = self.cfg.train
        if tr.batch_size > len(self.train_rows):
            logger.warning(
                "batch size %d > %d training rows; using %d", tr.batch_size, len(self.train_rows), len(self.train_rows)
            )
            tr.batch_size = len(self.train_rows)
        self.steps_per_epoch = max(1, len(self.train_rows) // (tr.batch_size * tr.grad_accum))
        if self.options.max_epochs is not None:
            tr.max_steps = max(1, int(round(self.options.max_epochs * self.steps_per_epoch)))
        if self.options.max_steps_cap is not None:
            tr.max_steps = max(1, min(tr.max_steps, int(self.options.max_steps_cap)))
        tr.warmup_steps = min(int(round(self.options.warmup_epochs * self.steps_per_epoch)), tr.max_steps // 2)
        tr.eval_every = min(self.steps_per_epoch, tr.max_steps)
        tr.ckpt_every = max(tr.ckpt_every, tr.eval_every)

    def train_dataset(self) -> Dataset:
        return CohortRows(self.train_cohort, self.train_rows)

    def val_dataset(self) -> Dataset:
        return CohortRows(self.val_cohort, self.val_rows)

    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Named losses; unknown targets (NaN label, subtype -1, NaN phenotype) are masked out."""
        spec = self.spec
        zero = out["disease_logits"].sum() * 0.0
        losses: dict[str, torch.Tensor] = {}
        if spec.diseases:
            cols = list(spec.diseases)
            logits, y = out["disease_logits"][:, cols].float(), batch["labels"][:, cols]
            known = torch.isfinite(y)
            # only ``all`` keeps every training subject (no 1:1 sample), so it weights each disease's positives
            weight = None if spec.is_binary else self.pos_weight.to(y.device)[cols]
            per = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(y), reduction="none", pos_weight=weight)
            losses["loss_disease"] = (per * known).sum() / known.sum().clamp(min=1) if known.any() else zero
        if spec.subtype:
            has = batch["subtype"] >= 0
            losses["loss_subtype"] = (
                F.cross_entropy(out["subtype_logits"][has].float(), batch["subtype"][has]) if has.any() else zero
            )
        if spec.phenotypes:
            z_true = (batch["phenotypes"] - self.model.phenotype_mean) / self.model.phenotype_std
            known = torch.isfinite(z_true)
            err = (out["phenotypes_z"].float() - torch.nan_to_num(z_true)) ** 2
            losses["loss_phenotypes"] = (err * known).sum() / known.sum().clamp(min=1) if known.any() else zero
        total = losses.get("loss_disease", zero)
        total = total + self.options.subtype_weight * losses.get("loss_subtype", zero)
        total = total + self.options.phenotype_weight * losses.get("loss_phenotypes", zero)
        return {"loss": total, **losses}

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.options.lead_masking:
            batch = {**batch, "ecg": mask_leads_batch(batch["ecg"], self.options.lead_sets or DEFAULT_LEAD_MASKING)}
        out = self.forward_model(_model_input(batch), batch["covariates"], batch["covariate_mask"])
        return self.losses(out, batch)

    def evaluate(self, loader: Any) -> dict[str, float]:
        model = self.model
        chunks: dict[str, list[np.ndarray]] = {"disease_prob": [], "subtype_prob": [], "phenotypes": [], "rows": []}
        total, n = 0.0, 0
        for batch in loader:
            out = model(_model_input(batch), batch["covariates"], batch["covariate_mask"])
            total += float(self.losses(out, batch)["loss"]) * len(batch["row"])
            n += len(batch["row"])
            chunks["disease_prob"].append(torch.sigmoid(out["disease_logits"].float()).cpu().numpy())
            chunks["subtype_prob"].append(torch.softmax(out["subtype_logits"].float(), -1).cpu().numpy())
            phen = out["phenotypes_z"].float() * model.phenotype_std + model.phenotype_mean
            chunks["phenotypes"].append(phen.cpu().numpy())
            chunks["rows"].append(batch["row"].cpu().numpy())
        pred: dict[str, Any] = {k: np.concatenate(v) for k, v in chunks.items()}
        rows = pred["rows"]
        pred.update(
            labels=self.val_cohort.labels[rows],
            subtype=self.val_cohort.subtype[rows],
            phenotypes_true=self.val_cohort.phenotypes[rows],
        )
        scores = quick_scores(pred, self.options.task, self.options.eval_balanced)
        scores["val_loss"] = total / max(n, 1)
        scores[self.selection_metric] = self._selection(scores)
        self.thresholds = thresholds_from_predictions(pred, self.options.task, self.options.min_specificity)
        self.history.append(dict(scores))
        return scores

    def _selection(self, scores: dict[str, float]) -> float:
        task = self.options.task
        if task == "subtype":
            value = scores.get("val_subtype_macro_auroc", float("nan"))
        elif task == "phenotypes":
            value = scores.get("val_mean_r", float("nan"))
        else:
            aucs = [v for k, v in scores.items() if k.startswith("val_auroc_") and math.isfinite(v)]
            value = float(np.mean(aucs)) if aucs else float("nan")
        if not math.isfinite(value):
            # The validation split cannot rank this task (one class only): fall back to the validation loss, so the
            # run still keeps a checkpoint; the choice is fixed for the whole run since the split does not change.
            value = -scores["val_loss"]
        return value

    def on_evaluate(self, run_dir: Path, step: int) -> None:
        """Early stopping: after ``patience`` evaluations without improvement, ask the loop to stop after the next
        step (through ``train.stop_after_step``; ``best/`` already holds the best checkpoint)."""
        value = self.history[-1][self.selection_metric]
        if self._best is None or value > self._best:
            self._best, self._since_best = value, 0
            return
        self._since_best += 1
        patience = self.options.patience
        if patience is not None and self._since_best >= patience and step < self.cfg.train.max_steps:
            logger.info("early stopping at step %d: no improvement in %d evaluations", step, patience)
            self.cfg.train.stop_after_step = step + 1

    def best_metadata(self) -> dict[str, Any]:
        from cardiacnets.preprocess import PreprocessConfig

        opts = self.options
        return {
            "stage": "finetune",
            "task": opts.task,
            "input": opts.input,
            "thresholds": dict(self.thresholds),
            "preprocess": PreprocessConfig().to_dict() if opts.ecg_preprocess == "full" else {"kind": "minmax"},
            "ecg_preprocess": opts.ecg_preprocess,
            "label_fraction": opts.label_fraction,
            "n_train": int(len(self.train_rows)),
            "steps_per_epoch": self.steps_per_epoch,
            "init": self.init_info,
            "disease_names": list(DISEASES),
            "subtype_names": list(SUBTYPES),
            **({"lead_sets": _declared_lead_sets(opts)} if opts.lead_masking else {}),
            "training_data": {
                "description": self.train_cohort.description,
                "synthetic": bool(self.train_cohort.synthetic),
            },
        }


def _declared_lead_sets(options: FinetuneTaskConfig) -> list[str]:
    """The lead sets a lead-masked model was trained for, richest first (those drawn with probability > 0)."""
    probabilities = options.lead_sets or DEFAULT_LEAD_MASKING
    return [name for name in LEAD_SETS if probabilities.get(name, 0.0) > 0]


# ----------------------------------------------------------------------------------------------------------------------
# One fine-tuning run end to end


@dataclass
class FinetuneResult:
    """A finished run: the training summary, the evaluation written to ``evaluation.json`` and the test
    predictions (``None`` when there is no test split)."""

    train: TrainResult
    evaluation: dict[str, Any]
    best_epoch: float | None
    predictions: dict[str, dict[str, Any]]


def run_finetune(
    cfg: RunConfig, *, resume: bool = False, eval_splits: tuple[str, ...] = ("val", "test")
) -> FinetuneResult:
    """Train, reload ``best/``, evaluate on ``eval_splits`` and write ``evaluation.json`` + ``predictions_*.npz``."""
    task = FinetuneTask(cfg)
    result = run_training(task, cfg, resume=resume)
    run_dir = Path(cfg.out)
    best_dir = run_dir / "best"
    if not (best_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir} has no best/ checkpoint: no evaluation produced a finite selection metric")
    model = from_pretrained(best_dir)
    meta = read_pretrained_metadata(best_dir)
    opts = task.options
    load = {"input": opts.input, "ecg_preprocess": opts.ecg_preprocess, "synthetic_mode": opts.synthetic_mode}
    evaluation: dict[str, Any] = {
        "task": opts.task,
        "input": opts.input,
        "init": task.init_info,
        "label_fraction": opts.label_fraction,
        "n_train": int(len(task.train_rows)),
        "cohort": task.train_cohort.description,
        "best_step": result.best_step,
        "best_epoch": result.best_step / task.steps_per_epoch if result.best_step else None,
        "steps_per_epoch": task.steps_per_epoch,
        "stopped_early": result.stopped_early,
        "thresholds": meta.get("thresholds", {}),
        "splits": {},
    }
    predictions: dict[str, dict[str, Any]] = {}
    for split in eval_splits:
        name = {"val": cfg.data.val_split, "train": cfg.data.train_split}.get(split, split)
        try:
            cohort = load_cohort_split(cfg.data, name, **load)
        except DatasetError as exc:
            logger.warning("no evaluation on %s: %s", name, exc)
            continue
        pred = predict_rows(model, cohort, eligible_rows(opts.task, cohort), cfg.train.eval_batch_size)
        predictions[split] = pred
        np.savez_compressed(run_dir / f"predictions_{split}.npz", **{k: np.asarray(v) for k, v in pred.items()})
        evaluation["splits"][split] = evaluate_predictions(
            pred, opts.task, evaluation["thresholds"], balanced=opts.eval_balanced, seed=cfg.train.seed
        )
    (run_dir / "evaluation.json").write_text(
        json.dumps(evaluation, indent=2, allow_nan=False, default=json_default) + "\n"
    )
    return FinetuneResult(result, evaluation, evaluation["best_epoch"], predictions)


__all__ = [
    "FinetuneResult",
    "FinetuneTask",
    "FinetuneTaskConfig",
    "build_screening_model",
    "predict_rows",
    "run_finetune",
]
