"""What replacing a bundle's screening model changed: two bundles' screening graphs on the same held-out ECGs.

Both graphs run the edge's way (:func:`cardiacnets.export.trust_fit.score_split`: the bundle's preprocessing, the
cohort's heart rate) on the test split of the synthetic cohort the default bundle's trust artefacts were fitted on,
given all 12 leads; and the new graph also with each reduced lead set it declares. Reported: AUROC per disease with
DeLong intervals and the paired DeLong test new - old, and the mean Pearson r over the 82 phenotypes (raw graph
outputs) with a subject-bootstrap interval. Synthetic data; results are labelled synthetic. Run on purpose:

    python benchmarks/bench_bundle_change.py --old OLD_BUNDLE --new NEW_BUNDLE --subjects 6000 \
        --out benchmarks/results/generalisation-synthetic/default-bundle-change
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def scores(bundle_dir: Path, subjects: int, seed: int, lead_set: str | None) -> Any:
    from cardiacnets.bundle import load_bundle
    from cardiacnets.export.trust_fit import score_split

    bundle = load_bundle(bundle_dir)
    graph = bundle_dir / bundle.manifest["models"]["screening"]["file"]
    return score_split(graph, "synthetic", "test", preprocess=bundle.manifest.get("preprocess"), n_subjects=subjects,
                       seed=seed, lead_set=lead_set)  # fmt: skip


def summary(split: Any, n_bootstrap: int, seed: int) -> dict:
    from cardiacnets import metrics
    from cardiacnets.targets import DISEASES

    out: dict = {"auc": {}}
    for k, disease in enumerate(DISEASES):
        y = split.labels[:, k]
        keep = np.isfinite(y)
        out["auc"][disease] = metrics.auroc_ci(y[keep].astype(int), split.outputs["disease_prob"][keep, k]).as_dict()
    truth, pred = split.phenotypes.astype(float), split.outputs["phenotypes"].astype(float)
    cols = (np.nanstd(truth, 0) > 0) & (pred.std(0) > 0) & np.isfinite(truth).all(0)
    r = metrics.mean_pearson_r(truth[:, cols], pred[:, cols], method="percentile", n_bootstrap=n_bootstrap, rng=seed)
    out["mean_r"] = r.mean.as_dict()
    out["mean_auc"] = float(np.mean([v["value"] for v in out["auc"].values()]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from cardiacnets.bundle import load_bundle
    from cardiacnets.training.external import delong_pairs

    t0 = time.perf_counter()
    old, new = load_bundle(args.old), load_bundle(args.new)
    split_old = scores(args.old, args.subjects, args.seed, None)
    split_new = scores(args.new, args.subjects, args.seed, None)
    results: dict = {
        "synthetic": True,
        "command": "python " + " ".join(sys.argv),
        "machine": platform.processor() or platform.machine(),
        "split": split_new.description,
        "old": {"bundle": old.identity, **summary(split_old, args.n_bootstrap, args.seed)},
        "new": {"bundle": new.identity, "lead_sets": {"12": summary(split_new, args.n_bootstrap, args.seed)}},
        "delong_new_vs_old_12": delong_pairs(
            split_new.labels,
            split_new.outputs["disease_prob"],
            split_old.outputs["disease_prob"],
        ),  # fmt: skip
    }
    for lead_set in new.lead_sets or []:
        if lead_set != "12":
            results["new"]["lead_sets"][lead_set] = summary(scores(args.new, args.subjects, args.seed, lead_set),
                                                            args.n_bootstrap, args.seed)  # fmt: skip
    results["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (args.out / "report.md").write_text(markdown(results) + "\n")
    print(json.dumps({"out": str(args.out), "seconds": results["seconds"]}))
    return 0


def _est(e: dict) -> str:
    return f"{e['value']:.3f} ({e['ci'][0]:.3f}-{e['ci'][1]:.3f})"


def markdown(results: dict) -> str:
    from cardiacnets.leadsets import LEAD_SET_WORDS
    from cardiacnets.targets import DISEASES

    old, new = results["old"], results["new"]
    lines = [
        "# What the default bundle's new screening model changed (SYNTHETIC)",
        "",
        f"Command: `{results['command']}` ({results['seconds']:.0f} s). Same held-out ECGs for both graphs:"
        f" {results['split']}. AUROC with DeLong intervals; mean r over the 82 phenotypes (raw graph outputs) with a"
        " subject-bootstrap interval.",
        "",
        "| bundle | leads | " + " | ".join(DISEASES) + " | mean AUROC | mean r |",
        "|---|---|" + "---|" * (len(DISEASES) + 2),
    ]
    rows = [(f"{old['bundle']['name']} {old['bundle']['version']}", "12", old)]
    rows += [(f"{new['bundle']['name']} {new['bundle']['version']}", ls, e) for ls, e in new["lead_sets"].items()]
    for name, ls, e in rows:
        lines.append(f"| {name} | {LEAD_SET_WORDS[ls]} | " + " | ".join(_est(e["auc"][d]) for d in DISEASES)
                     + f" | {e['mean_auc']:.3f} | {_est(e['mean_r'])} |")  # fmt: skip
    delong = results["delong_new_vs_old_12"]
    lines += ["", "Paired, 12 leads, new - old (DeLong): " + "; ".join(
        f"{d} {v['difference']:+.3f} (95 % CI {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}, p={v['p']:.3g})"
        for d, v in delong.items() if v) + "."]  # fmt: skip
    moved = new["lead_sets"]["12"]["mean_auc"] - old["mean_auc"]
    r_moved = new["lead_sets"]["12"]["mean_r"]["value"] - old["mean_r"]["value"]
    lines += ["", f"At 12 leads the mean AUROC moved by {moved:+.3f} and the mean phenotype r by {r_moved:+.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
