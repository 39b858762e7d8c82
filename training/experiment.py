"""``cntrain experiment``: the paper's downstream comparisons on any cohort, with intervals and DeLong tests.

Paper: CardiacNets, Results (Fig. 2a per-disease AUC and mean r over the 82 phenotypes for the aligned encoder vs an
ECG-only model vs a CMR-based model; Fig. 2c label efficiency at 1 %, 10 %, 100 % of training labels; Fig. 3 subtype
confusion matrices and one-vs-rest AUC; Extended Fig. 1 epochs to convergence). Each (arm, label fraction) is one
multi-task fine-tuning run (``task: all``; see :mod:`cardiacnets.training.tasks.finetune`) evaluated once on the test
split with the checkpoint chosen on the validation split:

- ``aligned``: the ECG encoder of an alignment run (``--align DIR``), fine-tuned;
- ``ecg_only``: the same architecture from random initialisation;
- ``cmr``: SA + LA Swin towers on the cines (initialised from the alignment run's frozen CMR towers), the upper bound.

Without ``--align`` the pretraining recipe of the config's ``pretrain`` section runs first (``cntrain cmr-ssl`` then
``cntrain align`` on their own synthetic cohort, whose seed differs from the downstream cohort's, so no downstream
subject was seen in pretraining). Output directory::

    results.json   results[arm][fraction] = {auc: {CAD..HF: {value, ci}}, mean_r: {value, ci}, subtype_accuracy:
                   {value, ci}}; delong_p[fraction][disease] (aligned vs ecg_only, paired on the test subjects);
                   delong_p_vs_cmr, details (confusion, per-class AUC, epochs, n), cohort, command, wall time
    report.md      tables and the verdict, labelled with the cohort
    fig2a_auc.png, fig2c_label_efficiency.png, fig3_subtype_confusion.png, extfig1_convergence.png
    runs/<arm>-<fraction>/   the fine-tuning runs (reused when already complete)
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets import metrics
from cardiacnets.config import config_from_dict, config_to_yaml, layer_config, read_yaml
from cardiacnets.errors import ConfigError
from cardiacnets.reporting import format_estimate, json_default
from cardiacnets.targets import DISEASES, SUBTYPES
from cardiacnets.training.config import CONFIG_DIR, DataConfig

logger = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("aligned", "ecg_only", "cmr")
ARM_LABELS = {"aligned": "aligned (CardiacNets)", "ecg_only": "ECG-only (random init)", "cmr": "CMR-based"}


@dataclass
class FinetuneRecipe:
    """Per-run fine-tuning settings (the paper's schedule with a CPU-sized epoch budget by default)."""

    batch_size: int = 10
    eval_batch_size: int = 32
    lr: float = 1e-4
    max_epochs: float = 30.0
    warmup_epochs: float = 10.0
    patience: int | None = 10
    ecg_preprocess: str = "full"
    max_steps: int | None = None  # a fixed number of steps per run instead of epochs (tests)
    max_steps_cap: int | None = None  # a compute budget: epochs as above, but at most this many steps per run
    precision: str = "auto"  # the training loop's precision (bf16 speeds up CPUs with avx512_bf16 / AMX)
    num_workers: int = 0


@dataclass
class PretrainRecipe:
    """The pretraining run when no ``--align`` is given (its own synthetic cohort and seed)."""

    n_subjects: int = 512
    seed: int = 0
    cmr_steps: int = 300
    align_steps: int = 300
    batch_size: int = 8
    ecg_preprocess: str = "full"


@dataclass
class ExperimentConfig:
    """Everything ``cntrain experiment`` needs; YAML defaults in ``training/configs/experiment.yaml``."""

    out: str = "runs/experiment"
    model: str = "tiny"
    align: str | None = None
    data: DataConfig = field(default_factory=lambda: DataConfig(source="synthetic", n_subjects=1024, seed=1))
    synthetic_mode: str = "balanced"
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    finetune: FinetuneRecipe = field(default_factory=FinetuneRecipe)
    pretrain: PretrainRecipe = field(default_factory=PretrainRecipe)
    seed: int = 0
    n_bootstrap: int = 1000
    saliency_examples: bool = True

    def __post_init__(self) -> None:
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            raise ConfigError(f"unknown arm(s) {bad}; use some of {', '.join(ARMS)}")
        if not self.fractions or any(not 0 < float(f) <= 1 for f in self.fractions):
            raise ConfigError(f"fractions must be in (0, 1], got {self.fractions}")


def resolve_experiment_config(
    *, config_file: Path | None = None, flags: dict[str, Any] | None = None, sets: list[str] | None = None
) -> ExperimentConfig:
    """``experiment.yaml`` < ``--config`` < flags < ``--set``, validated strictly."""
    defaults = read_yaml(CONFIG_DIR / "experiment.yaml", missing_ok=True)
    data = layer_config(defaults, config_file=config_file, flags=flags, sets=sets)
    return config_from_dict(ExperimentConfig, data, where="experiment")


def fraction_key(fraction: float) -> str:
    """``0.01`` -> ``"0.01"``, ``1`` -> ``"1.0"`` (the results.json keys)."""
    return repr(float(fraction))


# ----------------------------------------------------------------------------------------------------------------------
# Runs


def _pretrain(cfg: ExperimentConfig, out: Path) -> Path:
    """cmr-ssl then align on the pretraining cohort; returns the alignment run directory."""
    from cardiacnets.training.config import resolve_config
    from cardiacnets.training.loop import run_training
    from cardiacnets.training.tasks.align import AlignTask
    from cardiacnets.training.tasks.cmr_ssl import CmrSslTask

    p = cfg.pretrain
    common = {
        "data.source": "synthetic",
        "data.n_subjects": p.n_subjects,
        "data.seed": p.seed,
        "data.cache": True,
        "model": cfg.model,
        "train.batch_size": p.batch_size,
        "train.progress": False,
    }
    cmr_dir, align_dir = out / "pretrain" / "cmr", out / "pretrain" / "align"
    if not (cmr_dir / "best" / "config.json").is_file():
        shutil.rmtree(cmr_dir, ignore_errors=True)
        c = resolve_config("cmr-ssl", flags={**common, "out": str(cmr_dir), "train.max_steps": p.cmr_steps})
        run_training(CmrSslTask(c), c)
    if not (align_dir / "best" / "config.json").is_file():
        shutil.rmtree(align_dir, ignore_errors=True)
        flags = {**common, "out": str(align_dir), "train.max_steps": p.align_steps, "task.cmr": str(cmr_dir)}
        flags["task.ecg_preprocess"] = p.ecg_preprocess
        c = resolve_config("align", flags=flags)
        run_training(AlignTask(c), c)
    return align_dir


def _run_arm(cfg: ExperimentConfig, arm: str, fraction: float, align_dir: Path | None, out: Path) -> dict[str, Any]:
    """One fine-tuning run (or its saved outputs): ``{"evaluation", "test"}`` with the test predictions."""
    from cardiacnets.training.config import resolve_config
    from cardiacnets.training.tasks.finetune import run_finetune

    run_dir = out / "runs" / f"{arm}-{fraction_key(fraction)}"
    done = run_dir / "evaluation.json"
    if done.is_file() and (run_dir / "predictions_test.npz").is_file():
        logger.info("reusing %s", run_dir)
        with np.load(run_dir / "predictions_test.npz", allow_pickle=False) as npz:
            test = {k: npz[k] for k in npz.files}
        return {"evaluation": json.loads(done.read_text()), "test": test, "reused": True}
    shutil.rmtree(run_dir, ignore_errors=True)
    ft = cfg.finetune
    init = "random" if arm == "ecg_only" or align_dir is None else str(align_dir)
    flags = {
        "out": str(run_dir),
        "model": cfg.model,
        "data.source": cfg.data.source,
        "data.n_subjects": cfg.data.n_subjects,
        "data.seed": cfg.data.seed,
        "data.num_workers": ft.num_workers,
        "train.batch_size": ft.batch_size,
        "train.eval_batch_size": ft.eval_batch_size,
        "train.lr": ft.lr,
        "train.precision": ft.precision,
        "train.seed": cfg.seed,
        "train.progress": False,
        "task.task": "all",
        "task.init": init,
        "task.input": "cmr" if arm == "cmr" else "ecg",
        "task.label_fraction": float(fraction),
        "task.label_seed": cfg.seed,
        "task.ecg_preprocess": ft.ecg_preprocess,
        "task.synthetic_mode": cfg.synthetic_mode,
        "task.warmup_epochs": ft.warmup_epochs,
        "task.patience": ft.patience,
    }
    c = resolve_config("finetune", flags=flags)
    c.task["patience"] = ft.patience
    if ft.max_steps is not None:
        c.task["max_epochs"] = None
        c.train.max_steps = ft.max_steps
    else:
        c.task["max_epochs"] = ft.max_epochs
        c.task["max_steps_cap"] = ft.max_steps_cap
    result = run_finetune(c, eval_splits=("val", "test"))
    if "test" not in result.predictions:
        raise ConfigError(f"the cohort has no test split to evaluate {arm} on")
    return {"evaluation": result.evaluation, "test": result.predictions["test"]}


# ----------------------------------------------------------------------------------------------------------------------
# Statistics


def _none_estimate(reason: str) -> dict[str, Any]:
    return {"value": None, "ci": None, "reason": reason}


def _arm_statistics(test: dict[str, Any], n_bootstrap: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(summary, details)`` of one run's test predictions."""
    auc: dict[str, Any] = {}
    for k, name in enumerate(DISEASES):
        y = test["labels"][:, k]
        known = np.isfinite(y)
        yk, pk = y[known].astype(int), test["disease_prob"][known, k].astype(float)
        if min(yk.sum(), len(yk) - yk.sum()) < 2:
            auc[name] = _none_estimate("fewer than 2 cases or controls in the test split")
        else:
            auc[name] = metrics.auroc_ci(yk, pk).as_dict()
    rows = np.isfinite(test["phenotypes_true"]).all(axis=1)
    t, p = test["phenotypes_true"][rows].astype(float), test["phenotypes"][rows].astype(float)
    cols = (t.std(0) > 0) & (p.std(0) > 0) if len(t) > 3 else np.zeros(t.shape[1], bool)
    if cols.any():
        mean_r = metrics.mean_pearson_r(t[:, cols], p[:, cols], method="percentile", n_bootstrap=n_bootstrap, rng=seed)
        mean_r_d = mean_r.mean.as_dict()
        mean_r_d["n_targets"] = int(cols.sum())
    else:
        mean_r_d = _none_estimate("too few complete-case test subjects")
    has = test["subtype"] >= 0
    details: dict[str, Any] = {"n_test": int(len(test["rows"])), "n_subtype": int(has.sum())}
    if has.any():
        ys, ps = test["subtype"][has].astype(int), test["subtype_prob"][has].astype(float)
        counts = metrics.confusion_matrix(ys, ps.argmax(1), len(SUBTYPES))
        acc = metrics.proportion(int(np.trace(counts)), int(counts.sum())).as_dict()
        details["subtype_confusion"] = counts.tolist()
        details["subtype_auc"] = {
            name: metrics.auroc_ci(ys == c, ps[:, c]).as_dict()
            if (ys == c).sum() >= 2 and (ys != c).sum() >= 2
            else _none_estimate("fewer than 2 in or out of class")
            for c, name in enumerate(SUBTYPES)
        }
    else:
        acc = _none_estimate("no cardiomyopathy cases with a subtype in the test split")
    return {"auc": auc, "mean_r": mean_r_d, "subtype_accuracy": acc}, details


def _delong(tests: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ta, tb = tests[a], tests[b]
    if not np.array_equal(ta["rows"], tb["rows"]):
        raise ConfigError(f"arms {a} and {b} were not evaluated on the same test subjects")
    for k, name in enumerate(DISEASES):
        y = ta["labels"][:, k]
        known = np.isfinite(y)
        yk = y[known].astype(int)
        if min(yk.sum(), len(yk) - yk.sum()) < 2:
            out[name] = None
            continue
        res = metrics.delong_test(yk, ta["disease_prob"][known, k], tb["disease_prob"][known, k])
        out[name] = {"p": res.p_value, "difference": res.difference, "ci": list(res.ci) if res.ci else None}
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Entry point


def run_experiment(cfg: ExperimentConfig, command: str | None = None) -> dict[str, Any]:
    """Train and evaluate every (arm, fraction); write results.json, report.md and the figures under ``cfg.out``."""
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(config_to_yaml(cfg))
    align_dir: Path | None = Path(cfg.align) if cfg.align else None
    needs_align = "aligned" in cfg.arms or "cmr" in cfg.arms
    if needs_align and align_dir is None:
        logger.info("no --align given: running the pretraining recipe (cmr-ssl, then align)")
        align_dir = _pretrain(cfg, out)
    runs: dict[str, dict[str, Any]] = {}
    for fraction in cfg.fractions:
        for arm in cfg.arms:
            logger.info("arm %s, label fraction %g", arm, fraction)
            runs[f"{arm}|{fraction_key(fraction)}"] = _run_arm(cfg, arm, fraction, align_dir, out)
    results: dict[str, Any] = {arm: {} for arm in cfg.arms}
    details: dict[str, Any] = {arm: {} for arm in cfg.arms}
    delong_p: dict[str, Any] = {}
    delong_cmr: dict[str, Any] = {}
    comparisons: dict[str, Any] = {}
    for fraction in cfg.fractions:
        fk = fraction_key(fraction)
        tests = {arm: runs[f"{arm}|{fk}"]["test"] for arm in cfg.arms}
        for arm in cfg.arms:
            summary, det = _arm_statistics(tests[arm], cfg.n_bootstrap, cfg.seed)
            ev = runs[f"{arm}|{fk}"]["evaluation"]
            det.update(best_epoch=ev.get("best_epoch"), n_train=ev.get("n_train"), init=ev.get("init"))
            results[arm][fk], details[arm][fk] = summary, det
        if "aligned" in cfg.arms and "ecg_only" in cfg.arms:
            comparisons[fk] = _delong(tests, "aligned", "ecg_only")
            delong_p[fk] = {d: (v["p"] if v else None) for d, v in comparisons[fk].items()}
        if "aligned" in cfg.arms and "cmr" in cfg.arms:
            delong_cmr[fk] = {d: (v["p"] if v else None) for d, v in _delong(tests, "aligned", "cmr").items()}
    cohort_desc, synthetic = _describe_cohort(cfg)
    wall = time.time() - t0
    reused = sum(bool(run.get("reused")) for run in runs.values())
    training_wall = round(wall, 1)
    if reused:  # the runs were trained by an earlier invocation of this experiment: keep its wall time
        try:
            previous = json.loads((out / "results.json").read_text())
            training_wall = previous.get("training_wall_s", previous.get("wall_s"))
        except (OSError, ValueError):
            training_wall = None
    payload = {
        "cohort": {
            "description": cohort_desc,
            "source": str(cfg.data.source),
            "synthetic": synthetic,
            "n_subjects": cfg.data.n_subjects,
            "seed": cfg.data.seed,
        },
        "align": str(align_dir) if align_dir else None,
        "model": cfg.model,
        "results": results,
        "delong_p": delong_p,
        "delong_p_vs_cmr": delong_cmr,
        "aligned_minus_ecg_only": comparisons,
        "details": details,
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "wall_s": round(wall, 1),
        "runs_reused": reused,
        "training_wall_s": training_wall,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
    from cardiacnets.training.experiment_figures import write_figures  # lazy: that module imports this one

    figures = write_figures(cfg, payload, out)
    (out / "report.md").write_text(_report(cfg, payload, figures))
    summary = {"wall_s": payload["wall_s"], "figures": figures, "verdict": _verdict(cfg, payload)}
    return {**payload, "summary": summary}


# ----------------------------------------------------------------------------------------------------------------------
# Report (the figures: cardiacnets.training.experiment_figures)


def _describe_cohort(cfg: ExperimentConfig) -> tuple[str, bool]:
    """``(description, synthetic)`` of the downstream cohort; a dataset directory is described from its manifest."""
    if cfg.data.source == "synthetic":
        return (
            f"synthetic cohort (cardiacnets.synth, seed {cfg.data.seed}, {cfg.synthetic_mode} mode, "
            f"{cfg.data.n_subjects} subjects, 70/10/20 split)",
            True,
        )
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((Path(cfg.data.source) / "manifest.json").read_text())
    except (OSError, ValueError):
        pass
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    n = manifest.get("n_subjects", cfg.data.n_subjects)
    if source.get("kind") == "synthetic":
        return (
            f"synthetic cohort {cfg.data.source} (cardiacnets.synth, seed {source.get('seed')}, "
            f"{source.get('mode')} mode, {n} subjects, 70/10/20 split)",
            True,
        )
    return f"dataset {cfg.data.source} ({n} subjects)", False


def _verdict(cfg: ExperimentConfig, payload: dict[str, Any]) -> str:
    comps = payload["aligned_minus_ecg_only"]
    if not comps:
        return "aligned vs ECG-only not compared (both arms are needed)"
    fk = fraction_key(max(cfg.fractions))
    parts, wins, sig = [], 0, 0
    for disease, comp in comps[fk].items():
        if comp is None:
            continue
        lo, hi = comp["ci"]
        wins += comp["difference"] > 0
        sig += comp["difference"] > 0 and comp["p"] < 0.05
        parts.append(f"{disease} {comp['difference']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, DeLong p={comp['p']:.3g})")
    res = payload["results"]
    r_a, r_e = res["aligned"][fk]["mean_r"].get("value"), res["ecg_only"][fk]["mean_r"].get("value")
    r_text = f"mean r {r_a:.3f} vs {r_e:.3f}" if r_a is not None and r_e is not None else "mean r n/a"
    return (
        f"At {float(fk):.0%} of training labels the aligned encoder has the higher AUC for {wins} of {len(parts)} "
        f"diseases ({sig} significant at p<0.05); AUC differences aligned - ECG-only: {'; '.join(parts) or 'n/a'}; "
        f"{r_text}."
    )


def _wall_line(payload: dict[str, Any]) -> str:
    if not payload.get("runs_reused"):
        return f"**Wall time:** {payload['wall_s'] / 60:.1f} min"
    trained = payload.get("training_wall_s")
    trained_text = f"{trained / 60:.1f} min when they were trained" if trained else "training time unknown"
    return (
        f"**Wall time:** {payload['wall_s'] / 60:.1f} min for this report; {payload['runs_reused']} fine-tuning runs "
        f"reused from an earlier invocation of the same command ({trained_text})"
    )


def _report(cfg: ExperimentConfig, payload: dict[str, Any], figures: list[str]) -> str:
    cohort = payload["cohort"]
    lines = [
        "# CardiacNets downstream comparisons",
        "",
        f"**Cohort:** {cohort['description']}"
        + (
            " — simulated subjects, not patient data; these numbers say nothing about clinical performance."
            if cohort["synthetic"]
            else ""
        ),
        f"**Model size:** {cfg.model}; **alignment run:** {payload['align'] or 'none'}; **arms:** "
        + ", ".join(ARM_LABELS[a] for a in cfg.arms),
        f"**Recipe:** multi-task fine-tuning (`task: all`), batch {cfg.finetune.batch_size}, lr {cfg.finetune.lr:g}, "
        f"warm-up {cfg.finetune.warmup_epochs:g} epochs then cosine, max {cfg.finetune.max_epochs:g} epochs"
        + (f" and at most {cfg.finetune.max_steps_cap} steps" if cfg.finetune.max_steps_cap else "")
        + f", {cfg.finetune.precision} precision, patience {cfg.finetune.patience}; checkpoint chosen on validation, "
        "metrics on the test split (95% intervals: "
        "DeLong for AUC, subject bootstrap for mean r, Wilson for accuracy).",
        f"**Command:** `{payload['command']}`  ",
        _wall_line(payload),
        "",
        "## Verdict",
        "",
        _verdict(cfg, payload),
        "",
    ]
    for fraction in cfg.fractions:
        fk = fraction_key(fraction)
        lines += [f"## {float(fraction):.0%} of training labels", ""]
        lines += ["| arm | " + " | ".join(DISEASES) + " | mean r (82 phenotypes) | subtype accuracy | best epoch |"]
        lines += ["|---" * (len(DISEASES) + 4) + "|"]
        for arm in cfg.arms:
            r = payload["results"][arm][fk]
            d = payload["details"][arm][fk]
            best = d.get("best_epoch")
            epoch = "n/a" if best is None else f"{best:.1f}"
            lines.append(
                f"| {ARM_LABELS[arm]} | "
                + " | ".join(format_estimate(r["auc"][x]) for x in DISEASES)
                + f" | {format_estimate(r['mean_r'])} | {format_estimate(r['subtype_accuracy'])} | {epoch} |"
            )
        if fk in payload["delong_p"]:
            lines += [
                "",
                "DeLong p, aligned vs ECG-only: "
                + ", ".join(
                    f"{x} {p:.3g}" if p is not None else f"{x} n/a" for x, p in payload["delong_p"][fk].items()
                ),
            ]
        if fk in payload["delong_p_vs_cmr"]:
            lines += [
                "DeLong p, aligned vs CMR-based: "
                + ", ".join(
                    f"{x} {p:.3g}" if p is not None else f"{x} n/a" for x, p in payload["delong_p_vs_cmr"][fk].items()
                )
            ]
        lines.append("")
        for arm in cfg.arms:
            d = payload["details"][arm][fk]
            if "subtype_confusion" in d:
                auc = ", ".join(f"{k} {format_estimate(v)}" for k, v in d["subtype_auc"].items())
                lines.append(
                    f"- {ARM_LABELS[arm]} subtype confusion (rows true RCM/DCM/HCM): {d['subtype_confusion']}; "
                    f"one-vs-rest AUC: {auc}"
                )
        lines.append("")
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


__all__ = ["ARMS", "ExperimentConfig", "fraction_key", "resolve_experiment_config", "run_experiment"]
