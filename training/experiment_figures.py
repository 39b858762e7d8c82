"""The figures of ``cntrain experiment`` (Fig. 2a, Fig. 2c, Fig. 3 and Extended Fig. 1 of the CardiacNets paper),
drawn with matplotlib's Agg backend from the ``results.json`` payload that :func:`run_experiment` builds: one function
per figure, each writing one PNG at 110 dpi into the experiment's output directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets import metrics
from cardiacnets.targets import DISEASES, SUBTYPES
from cardiacnets.training.experiment import ARM_LABELS, ExperimentConfig, fraction_key


def write_figures(cfg: ExperimentConfig, payload: dict[str, Any], out: Path) -> list[str]:
    """Write the paper's figures as PNGs into ``out``; returns their file names in report order."""
    import matplotlib

    matplotlib.use("Agg")
    tag = " (synthetic cohort)" if payload["cohort"]["synthetic"] else ""
    return [
        _fig2a_auc(cfg, payload["results"], tag, out),
        _fig2c_label_efficiency(cfg, payload["results"], tag, out),
        _fig3_subtype_confusion(cfg, payload["details"], tag, out),
        _extfig1_convergence(cfg, payload["details"], tag, out),
    ]


def _save(fig: Any, out: Path, name: str) -> str:
    """Lay out, write ``out / name`` at 110 dpi and close the figure; returns ``name``."""
    from matplotlib import pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _fig2a_auc(cfg: ExperimentConfig, res: dict[str, Any], tag: str, out: Path) -> str:
    """Fig. 2a: per-disease test AUC and mean r of every arm at the largest label fraction, with CI error bars."""
    from matplotlib import pyplot as plt

    full = fraction_key(max(cfg.fractions))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    labels = [*DISEASES, "mean r"]
    width = 0.8 / len(cfg.arms)
    for i, arm in enumerate(cfg.arms):
        ests = [res[arm][full]["auc"][d] for d in DISEASES] + [res[arm][full]["mean_r"]]
        vals = [e["value"] if e.get("value") is not None else math.nan for e in ests]
        err = [
            [v - e["ci"][0] if e.get("ci") else 0 for v, e in zip(vals, ests, strict=True)],
            [e["ci"][1] - v if e.get("ci") else 0 for v, e in zip(vals, ests, strict=True)],
        ]
        ax.bar(
            np.arange(len(labels)) + i * width, vals, width, yerr=np.nan_to_num(err), label=ARM_LABELS[arm], capsize=2
        )
    ax.set_xticks(np.arange(len(labels)) + width * (len(cfg.arms) - 1) / 2, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test AUC / mean Pearson r")
    ax.set_title(f"Fig. 2a: {float(full):.0%} of labels{tag}")
    ax.legend(fontsize=7)
    return _save(fig, out, "fig2a_auc.png")


def _fig2c_label_efficiency(cfg: ExperimentConfig, res: dict[str, Any], tag: str, out: Path) -> str:
    """Fig. 2c: label efficiency, test AUC per disease and mean r against the percentage of training labels."""
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(DISEASES) + 1, figsize=(14, 2.8), sharey=True)
    for ax, metric in zip(axes, [*DISEASES, "mean r"], strict=True):
        for arm in cfg.arms:
            ys = []
            for f in cfg.fractions:
                e = (
                    res[arm][fraction_key(f)]["mean_r"]
                    if metric == "mean r"
                    else res[arm][fraction_key(f)]["auc"][metric]
                )
                ys.append(e["value"] if e.get("value") is not None else math.nan)
            ax.plot([100 * f for f in cfg.fractions], ys, marker="o", label=ARM_LABELS[arm])
        ax.set_xscale("log")
        ax.set_title(metric)
        ax.set_xlabel("% training labels")
    axes[0].set_ylabel("test AUC / r")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"Fig. 2c: label efficiency{tag}", fontsize=9)
    return _save(fig, out, "fig2c_label_efficiency.png")


def _fig3_subtype_confusion(cfg: ExperimentConfig, det: dict[str, Any], tag: str, out: Path) -> str:
    """Fig. 3: row-normalised subtype confusion matrix (cells labelled with counts) of every arm at the largest
    label fraction."""
    from matplotlib import pyplot as plt

    full = fraction_key(max(cfg.fractions))
    fig, axes = plt.subplots(1, len(cfg.arms), figsize=(3.2 * len(cfg.arms), 3))
    for ax, arm in zip(np.atleast_1d(axes), cfg.arms, strict=True):
        conf = det[arm][full].get("subtype_confusion")
        m = metrics.normalise_rows(np.asarray(conf, float)) if conf else np.full((3, 3), np.nan)
        ax.imshow(np.nan_to_num(m), vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(np.asarray(conf if conf else np.zeros((3, 3)), int)):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(3), SUBTYPES)
        ax.set_yticks(range(3), SUBTYPES)
        ax.set_xlabel("predicted")
        ax.set_title(ARM_LABELS[arm], fontsize=8)
    fig.suptitle(f"Fig. 3: cardiomyopathy subtypes{tag}", fontsize=9)
    return _save(fig, out, "fig3_subtype_confusion.png")


def _extfig1_convergence(cfg: ExperimentConfig, det: dict[str, Any], tag: str, out: Path) -> str:
    """Extended Fig. 1: epochs to the best validation checkpoint per arm and label fraction."""
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / len(cfg.arms)
    for i, arm in enumerate(cfg.arms):
        eps = [det[arm][fraction_key(f)].get("best_epoch") or math.nan for f in cfg.fractions]
        ax.bar(np.arange(len(cfg.fractions)) + i * width, eps, width, label=ARM_LABELS[arm])
    ax.set_xticks(np.arange(len(cfg.fractions)) + width * (len(cfg.arms) - 1) / 2, [f"{f:.0%}" for f in cfg.fractions])
    ax.set_ylabel("epochs to best validation")
    ax.set_title(f"Extended Fig. 1: convergence{tag}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out, "extfig1_convergence.png")


__all__ = ["write_figures"]
