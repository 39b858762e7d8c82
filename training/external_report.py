"""``report.md`` and figures of ``cntrain external`` from its ``results.json`` payload (:func:`run_external`).

Tables: per site and arm the AUROC per disease with DeLong intervals, mean r, ECE and calibration slope before and
after recalibration, and the out-of-distribution flag rate; DeLong aligned vs ECG-only per site; per lead set and arm
AUROC and mean r with DeLong p against 12 leads. Figures (matplotlib Agg, 110 dpi): mean AUROC by site, and mean
AUROC by lead set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.leadsets import LEAD_SET_WORDS
from cardiacnets.targets import DISEASES

ARM_LABELS = {"aligned": "aligned (CardiacNets)", "ecg_only": "ECG-only (random init)", "cmr": "CMR-based"}

__all__ = ["write_external_report"]


def _est(e: dict[str, Any] | None, digits: int = 3) -> str:
    if not e or e.get("value") is None:
        return "n/a"
    ci = e.get("ci")
    return f"{e['value']:.{digits}f} ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})" if ci else f"{e['value']:.{digits}f}"


def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _p(v: dict[str, Any] | None) -> str:
    return "n/a" if not v else f"{v['difference']:+.3f} (p={v['p']:.3g})"


def mean_auc(auc: dict[str, Any]) -> float:
    """Mean AUROC over the diseases with a value (NaN if none)."""
    values = [v["value"] for v in auc.values() if v.get("value") is not None]
    return float(np.mean(values)) if values else math.nan


def _site_tables(payload: dict[str, Any]) -> list[str]:
    lines = ["## External validation by site", ""]
    head = (
        "| site | arm | "
        + " | ".join(DISEASES)
        + " | mean r | ECE before / after | median slope before / after | OOD flagged |"
    )
    lines += [head, "|---|---|" + "---|" * (len(DISEASES) + 4)]
    for site, arms in payload["sites"].items():
        tag = f"{site} (training site)" if site == payload["train_site"] else site
        for arm, r in arms.items():
            cells = [_est(r["auc"][d]) for d in DISEASES]
            ece = f"{_num(r['ece'])} / {_num(r['ece_recalibrated'])}"
            slope = f"{_num(r['calibration_slope'], 2)} / {_num(r['calibration_slope_recalibrated'], 2)}"
            ood = _est(r["ood_flag_rate"])
            lines.append(f"| {tag} | {ARM_LABELS[arm]} | " + " | ".join(cells) + f" | {_est(r['mean_r'])} | {ece} |"
                         f" {slope} | {ood} |")  # fmt: skip
    for key, other in (("delong_aligned_vs_ecg_only", "ECG-only"), ("delong_aligned_vs_cmr", "CMR-based")):
        comparisons = (payload.get(key) or {}).get("sites")
        if comparisons:
            lines += ["", f"AUROC difference aligned - {other} (DeLong p, same subjects):", "",
                      "| site | " + " | ".join(DISEASES) + " |", "|---|" + "---|" * len(DISEASES)]  # fmt: skip
            for site, per in comparisons.items():
                lines.append(f"| {site} | " + " | ".join(_p(per.get(d)) for d in DISEASES) + " |")
    return lines


def _lead_set_tables(payload: dict[str, Any]) -> list[str]:
    lines = ["## Reduced lead sets (training site's test cohort)", ""]
    lines += ["| lead set | arm | " + " | ".join(DISEASES) + " | mean r | AUROC change vs 12 leads (DeLong p) |",
              "|---|---|" + "---|" * (len(DISEASES) + 2)]  # fmt: skip
    for ls, arms in payload["lead_sets"].items():
        for arm, r in arms.items():
            cells = [_est(r["auc"][d]) for d in DISEASES]
            vs = r.get("delong_vs_12")
            if r.get("uses_ecg") is False:
                change = "does not use the ECG (the 12-lead site results, repeated)"
            else:
                change = "reference" if vs is None else "; ".join(f"{d} {_p(vs.get(d))}" for d in DISEASES)
            lines.append(f"| {LEAD_SET_WORDS[ls]} | {ARM_LABELS[arm]} | " + " | ".join(cells) +
                         f" | {_est(r['mean_r'])} | {change} |")  # fmt: skip
    comparisons = payload["delong_aligned_vs_ecg_only"]["lead_sets"]
    if comparisons:
        lines += ["", "AUROC difference aligned - ECG-only per lead set (DeLong p):", "",
                  "| lead set | " + " | ".join(DISEASES) + " |", "|---|" + "---|" * len(DISEASES)]  # fmt: skip
        for ls, per in comparisons.items():
            lines.append(f"| {LEAD_SET_WORDS[ls]} | " + " | ".join(_p(per.get(d)) for d in DISEASES) + " |")
    return lines


def _advantage(label: str, arms: dict[str, Any], delong: dict[str, Any] | None) -> tuple[str, bool | None]:
    """One line comparing aligned with ECG-only on one site or lead set, and whether the advantage holds there
    (higher mean AUROC and mean r, at least one disease significantly better and none significantly worse at
    p < 0.05); None: not both arms."""
    if not {"aligned", "ecg_only"} <= set(arms):
        return "", None
    a, b = arms["aligned"], arms["ecg_only"]
    auc_a, auc_b = mean_auc(a["auc"]), mean_auc(b["auc"])
    better = [d for d, v in (delong or {}).items() if v and v["p"] < 0.05 and v["difference"] > 0]
    worse = [d for d, v in (delong or {}).items() if v and v["p"] < 0.05 and v["difference"] < 0]
    r_a, r_b = a["mean_r"].get("value"), b["mean_r"].get("value")
    holds = bool(auc_a > auc_b and better and not worse and r_a is not None and r_b is not None and r_a > r_b)
    line = (
        f"- {label}: mean AUROC {_num(auc_a)} vs {_num(auc_b)} ({auc_a - auc_b:+.3f}); aligned significantly better"
        f" for {len(better)}/{len(DISEASES)} diseases{' (' + ', '.join(better) + ')' if better else ''}, worse for"
        f" {len(worse)}{' (' + ', '.join(worse) + ')' if worse else ''}; mean r {_est(a['mean_r'])} vs"
        f" {_est(b['mean_r'])}. **{'Holds' if holds else 'Does not hold'}.**"
    )
    return line, holds


def _advantage_section(payload: dict[str, Any]) -> list[str]:
    """Whether the aligned encoder's advantage over ECG-only holds at each site and with each lead set."""
    lines = ["## Does the aligned encoder's advantage over ECG-only hold?", "",
             "Aligned vs ECG-only on the same subjects; \"holds\" means a higher mean AUROC over the five diseases and"
             " a higher mean phenotype r, with at least one disease significantly better and none significantly worse"
             " (DeLong p < 0.05).",
             ""]  # fmt: skip
    delong = payload["delong_aligned_vs_ecg_only"]
    counts = {}
    for key, groups, name in (("sites", payload["sites"], "site"), ("lead_sets", payload["lead_sets"], "lead set")):
        verdicts = []
        for group, arms in groups.items():
            label = LEAD_SET_WORDS.get(group, group) if key == "lead_sets" else group
            line, holds = _advantage(f"{name} {label}", arms, delong[key].get(group))
            if holds is not None:
                lines.append(line)
                verdicts.append(holds)
        counts[name] = (sum(verdicts), len(verdicts))
    if any(n for _, n in counts.values()):
        lines += ["", "In short: the advantage holds at " + " and with ".join(
            f"{k} of {n} {name}s" for name, (k, n) in counts.items()) + "."]  # fmt: skip
    return lines


def _masking_lines(payload: dict[str, Any]) -> list[str]:
    """What lead masking costs the aligned model at 12 leads (``--unmasked``), or nothing."""
    cost = payload.get("masking_cost")
    if not cost:
        return []
    lines = ["## What lead masking costs at 12 leads (training site's test cohort)", "",
             f"The lead-masked aligned model against the same recipe without masking (`{cost['run']}`), both given all"
             " 12 leads.", "", "| model | " + " | ".join(DISEASES) + " | mean AUROC | mean r |",
             "|---|" + "---|" * (len(DISEASES) + 2)]  # fmt: skip
    for name in ("masked", "unmasked"):
        auc = cost["auc"][name]
        lines.append(f"| {name} | " + " | ".join(_est(auc[d]) for d in DISEASES) +
                     f" | {_num(mean_auc(auc))} | {_est(cost['mean_r'][name])} |")  # fmt: skip
    delong = cost["delong_masked_vs_unmasked"]
    lines += ["| masked - unmasked (DeLong p) | " + " | ".join(_p(delong.get(d)) for d in DISEASES) +
              f" | {mean_auc(cost['auc']['masked']) - mean_auc(cost['auc']['unmasked']):+.3f} |"
              f" {cost['mean_r']['masked']['value'] - cost['mean_r']['unmasked']['value']:+.3f} |"]  # fmt: skip
    return lines


def _figures(payload: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = []
    for key, title, fname in (
        ("sites", "site", "fig_sites_auc.png"),
        ("lead_sets", "lead set", "fig_lead_sets_auc.png"),
    ):
        groups = list(payload[key])
        arms = sorted({a for g in groups for a in payload[key][g]}, key=list(ARM_LABELS).index)
        if not groups or not arms:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.2))
        width = 0.8 / len(arms)
        for i, arm in enumerate(arms):
            vals = [mean_auc(payload[key][g][arm]["auc"]) if arm in payload[key][g] else math.nan for g in groups]
            ax.bar(np.arange(len(groups)) + i * width, vals, width, label=ARM_LABELS[arm])
        ax.set_xticks(np.arange(len(groups)) + width * (len(arms) - 1) / 2, groups)
        ax.set_ylim(0.4, 1.0)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylabel("mean AUROC (5 diseases)")
        ax.set_title(f"Mean AUROC by {title} (synthetic cohorts)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        names.append(fname)
    return names


def write_external_report(payload: dict[str, Any], out: Path) -> None:
    """Write ``report.md`` and the figures into ``out``."""
    cfg = payload["config"]
    lines = [
        "# External validation across simulated sites, and reduced lead sets (SYNTHETIC)",
        "",
        "**All cohorts are simulated (cardiacnets.synth); these numbers say nothing about clinical performance.**",
        "",
        f"Training site: `{payload['train_site']}`. Each site's test cohort: {cfg['n_test']} subjects ({cfg['mode']}"
        f" mode, seed {cfg['seed']}); recalibration sample: {cfg['n_recalibration']} further labelled subjects of the"
        f" site (Platt per disease). Out-of-distribution check fitted on {cfg['n_reference']} +"
        f" {cfg['n_ood_calibration']} training-site subjects (alpha {cfg['alpha']}). Intervals: DeLong (AUROC),"
        f" subject bootstrap ({cfg['n_bootstrap']}, mean r), Wilson (flag rate).",
        "",
        f"**Command:** `{payload.get('command') or 'cntrain external'}`; wall time {payload['wall_s'] / 60:.1f} min.",
        "",
        "Runs: "
        + "; ".join(
            f"{ARM_LABELS[a]}: `{r['dir']}` (init {(r.get('init') or {}).get('init')}, lead sets"
            f" {r.get('lead_sets') or ['12']})"
            for a, r in payload["runs"].items()
        ),  # fmt: skip
        "",
        "Sites: " + "; ".join(f"**{s}**: {d}" for s, d in payload["site_descriptions"].items()),
        "",
        *_advantage_section(payload),
        "",
        *_site_tables(payload),
        "",
        *_lead_set_tables(payload),
        "",
        *_masking_lines(payload),
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{name}]({name})" for name in _figures(payload, out)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
