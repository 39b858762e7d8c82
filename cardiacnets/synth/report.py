"""Validation report of the synthetic cohort (issue 3, item 2): checks against the domain facts, as data.

Each check returns a dict with the measured value, the target and ``passed``. :func:`synth_report` runs all of them
on a population cohort (reference ranges, correlations), a balanced cohort (disease shifts, classifiers) and a small
rendered subset (image-derived volumes), and writes ``synth_report.json`` and ``synth_report.md``.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cardiacnets.synth import ecg_features, simulate
from cardiacnets.synth.render import PIXEL_MM
from cardiacnets.synth.subjects import LABELS

logger = logging.getLogger(__name__)

P = {"LVEDV": 0, "LVESV": 1, "LVEF": 3, "LVM": 5, "RVEDV": 6, "RVEF": 9, "LAVmax": 10, "LAEF": 13, "RAVmax": 14}
P.update({"AAo_dist": 20, "WT_global": 40, "Ell_global": 81})
#: Petersen 2017 healthy means and SDs (domain-notes 1.3): name -> ((female mean, sd), (male mean, sd)).
REFERENCE = {
    "LVEDV": ((124.0, 21.0), (166.0, 32.0)),
    "LVESV": ((49.0, 11.0), (69.0, 16.0)),
    "LVEF": ((61.0, 5.0), (58.0, 5.0)),
    "LVM": ((72.0, 13.0), (104.0, 20.0)),
}
#: (group, phenotype, expected sign of (group mean - healthy mean)).
SHIFTS = [
    ("DCM", "LVEDV", +1),
    ("DCM", "LVEF", -1),
    ("HCM", "WT_max", +1),
    ("HCM", "LVM", +1),
    ("RCM", "LAVmax", +1),
    ("RCM", "LAEF", -1),
    ("PH", "RVEDV", +1),
    ("PH", "RVEF", -1),
    ("HFrEF", "LVEF", -1),
    ("HFrEF", "LVEDV", +1),
    ("HFpEF", "LAVmax", +1),
    ("CAD-MI", "LVEF", -1),
    ("CAD-MI", "Ell_global", +1),
]


def _healthy(d: Mapping[str, np.ndarray]) -> np.ndarray:
    return d["labels"].sum(axis=1) == 0


def _groups(d: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    lab = d["labels"]
    return {
        "DCM": d["cm_subtype"] == 1,
        "HCM": d["cm_subtype"] == 2,
        "RCM": d["cm_subtype"] == 0,
        "PH": (lab[:, 1] == 1) & (lab[:, 3] == 0),
        "HFrEF": d["hf_type"] == 1,
        "HFpEF": d["hf_type"] == 3,
        "CAD-MI": (lab[:, 0] == 1) & (d["cad_mi"] == 1) & (lab[:, 4] == 0),
    }


def _value(d: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name == "WT_max":
        return d["phenotypes"][:, 24:40].max(axis=1)
    return d["phenotypes"][:, P[name]]


def check_reference_means(d: Mapping[str, np.ndarray], tolerance_sd: float = 0.5) -> list[dict]:
    """Healthy sex-specific means of LVEDV, LVESV, LVEF, LVM within ``tolerance_sd`` reference SDs of Petersen."""
    out = []
    healthy = _healthy(d)
    for name, refs in REFERENCE.items():
        for sex, (mean, sd) in enumerate(refs):
            mask = healthy & (d["sex"] == sex)
            value = float(_value(d, name)[mask].mean())
            out.append(
                {
                    "check": f"{name} healthy {'male' if sex else 'female'} mean",
                    "value": round(value, 2),
                    "target": f"{mean} +/- {tolerance_sd * sd:.1f} (ref SD {sd})",
                    "n": int(mask.sum()),
                    "passed": bool(abs(value - mean) <= tolerance_sd * sd),
                }
            )
    return out


def check_disease_shifts(d: Mapping[str, np.ndarray]) -> list[dict]:
    """Each disease moves its phenotypes in the documented direction (domain-notes 2.2)."""
    healthy = _healthy(d)
    groups = _groups(d)
    out = []
    for group, name, sign in SHIFTS:
        mask = groups[group]
        if mask.sum() < 5:
            out.append({"check": f"{group}: {name}", "value": None, "target": "n >= 5", "passed": False})
            continue
        values = _value(d, name)
        diff = float(values[mask].mean() - values[healthy].mean())
        out.append(
            {
                "check": f"{group}: {name} {'up' if sign > 0 else 'down'}",
                "value": round(diff, 2),
                "target": f"sign {'+' if sign > 0 else '-'}",
                "n": int(mask.sum()),
                "passed": bool(np.sign(diff) == sign),
            }
        )
    return out


def check_ecg_structure(d: Mapping[str, np.ndarray]) -> list[dict]:
    """Sokolow-Lyon vs LV mass r in [0.2, 0.45]; QRS duration rises with LV mass."""
    feats, names = ecg_features(d)
    lvm = d["phenotypes"][:, P["LVM"]]
    r_sok = float(np.corrcoef(feats[:, names.index("sokolow_lyon")], lvm)[0, 1])
    slope = float(np.polyfit(lvm, feats[:, names.index("qrs_ms")], 1)[0])
    r_qrs = float(np.corrcoef(feats[:, names.index("qrs_ms")], lvm)[0, 1])
    return [
        {"check": "Sokolow-Lyon vs LVM Pearson r", "value": round(r_sok, 3), "target": "[0.2, 0.45]",
         "passed": bool(0.2 <= r_sok <= 0.45)},
        {"check": "QRS duration vs LVM slope (ms per 100 g)", "value": round(100 * slope, 2), "target": "> 0",
         "r": round(r_qrs, 3), "passed": bool(slope > 0)},
    ]  # fmt: skip


def check_es_timing(d: Mapping[str, np.ndarray]) -> dict:
    """End systole (argmin LV volume) at 30-45 % of the cycle for every subject."""
    frac = d["es_frame"] / d["lv_volume_curve"].shape[1]
    inside = float(((frac >= 0.30) & (frac <= 0.45)).mean())
    return {"check": "ES at 30-45 % of the cycle (fraction of subjects)", "value": inside, "target": "1.0",
            "range": [float(frac.min()), float(frac.max())], "passed": bool(inside == 1.0)}  # fmt: skip


def check_lead_identities(n: int = 16, seed: int = 0) -> dict:
    """III = II - I and Goldberger identities on clean (noise-free) leads; max abs error in mV."""
    e = simulate(n, seed, with_cines=False, ecg_noise=False)["ecg"].astype(np.float64)
    i, ii = e[:, 0], e[:, 1]
    err = max(
        np.abs(e[:, 2] - (ii - i)).max(),
        np.abs(e[:, 3] + (i + ii) / 2).max(),
        np.abs(e[:, 4] - (i - ii / 2)).max(),
        np.abs(e[:, 5] - (ii - i / 2)).max(),
    )
    return {"check": "Einthoven/Goldberger max error (mV)", "value": float(err), "target": "< 1e-5",
            "passed": bool(err < 1e-5)}  # fmt: skip


def image_lv_volumes(d: Mapping[str, np.ndarray], threshold: float = 0.55) -> np.ndarray:
    """LV volume proxy from the rendered SA images: area of the bright connected blob at the LV centre of frame 0
    (holes such as papillary muscles filled, as the UK Biobank contours include them), raised to 1.5: ``(n,)``."""
    from scipy import ndimage

    cine = d["cine_sa"][:, 0]
    out = np.zeros(cine.shape[0])
    for k in range(cine.shape[0]):  # analysis, not generation: one labelling per image
        labels, _ = ndimage.label(cine[k] > threshold)
        r, c = np.round(d["sa_lv_center"][k]).astype(int)
        lab = labels[r, c]
        area = ndimage.binary_fill_holes(labels == lab).sum() * PIXEL_MM**2 if lab else 0.0
        out[k] = area**1.5
    return out


def check_image_volumes(d: Mapping[str, np.ndarray]) -> dict:
    """Volumes measured back from the rendered SA images correlate with LVEDV (r > 0.9)."""
    r = float(np.corrcoef(image_lv_volumes(d), d["phenotypes"][:, P["LVEDV"]])[0, 1])
    return {"check": "image-derived LV volume vs LVEDV r", "value": round(r, 3), "target": "> 0.9",
            "n": int(d["cine_sa"].shape[0]), "passed": bool(r > 0.9)}  # fmt: skip


def classifier_aurocs(d: Mapping[str, np.ndarray], seed: int = 0) -> dict:
    """Held-out (30 %) AUROC per label of logistic regression on simple ECG features vs on the 82 phenotypes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats, _ = ecg_features(d)
    inputs = {"ecg_features": feats, "phenotypes": d["phenotypes"]}
    n = feats.shape[0]
    test = np.random.Generator(np.random.PCG64(seed)).random(n) < 0.3
    out: dict[str, dict[str, float]] = {}
    for kind, x in inputs.items():
        out[kind] = {}
        for j, label in enumerate(LABELS):
            y = d["labels"][:, j]
            if y[~test].min() == y[~test].max() or y[test].min() == y[test].max():
                continue
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
            model.fit(x[~test], y[~test])
            out[kind][label] = round(float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])), 3)
    return out


def check_classifiers(aurocs: Mapping[str, Mapping[str, float]]) -> dict:
    """ECG-feature AUROC is not near-perfect (mean < 0.95) and phenotypes do clearly better (mean + 0.03)."""
    ecg = float(np.mean(list(aurocs["ecg_features"].values())))
    phen = float(np.mean(list(aurocs["phenotypes"].values())))
    passed = bool(ecg < 0.95 and phen >= ecg + 0.03)
    return {"check": "mean AUROC: ECG features vs phenotypes", "value": [round(ecg, 3), round(phen, 3)],
            "target": "ECG < 0.95 and phenotypes >= ECG + 0.03", "passed": passed}  # fmt: skip


def _compact_cohort(n: int, seed: int, mode: str, chunk: int = 1000) -> dict[str, np.ndarray]:
    """Simulate without cines in chunks, keeping the ECG features instead of the raw ECG (memory stays small)."""
    parts = []
    for start in range(0, n, chunk):
        d = simulate(min(chunk, n - start), seed, start=start, mode=mode, with_cines=False)
        d["ecg_features"] = ecg_features(d)[0]
        del d["ecg"]
        parts.append(d)
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def synth_report(n: int, seed: int, out_dir: str | Path, n_rendered: int = 200, n_site: int = 400) -> dict:
    """Run every check and write ``synth_report.json`` and ``synth_report.md`` into ``out_dir``.

    ``n`` population subjects (ECG + phenotypes, no rendering) for reference ranges and correlations, ``n // 2``
    balanced subjects for disease shifts and classifiers, and ``n_rendered`` subjects with cines for the
    image-derived volumes, and ``n_site`` population subjects per simulated site for the site checks
    (:mod:`cardiacnets.synth.report_sites`). Returns the report dict (``passed`` is true when every check passed).
    """
    from cardiacnets.synth.report_sites import check_sites

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    pop = _compact_cohort(n, seed, "population")
    bal = _compact_cohort(max(n // 2, 80), seed + 1, "balanced")
    rendered = simulate(min(n_rendered, n), seed, with_cines=True)
    aurocs = classifier_aurocs(bal, seed)
    checks = {
        "reference_means": check_reference_means(pop),
        "disease_shifts": check_disease_shifts(bal),
        "ecg_structure": check_ecg_structure(pop),
        "es_timing": [check_es_timing(pop)],
        "lead_identities": [check_lead_identities(seed=seed)],
        "image_volumes": [check_image_volumes(rendered)],
        "classifiers": [check_classifiers(aurocs)],
        "sites": check_sites(min(n_site, n), seed),
    }
    passed = all(c["passed"] for group in checks.values() for c in group)
    report = {
        "n_population": n,
        "n_balanced": max(n // 2, 80),
        "n_rendered": int(min(n_rendered, n)),
        "seed": seed,
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()}".strip(),
        "prevalence_population": dict(zip(LABELS, map(float, pop["labels"].mean(0)), strict=True)),
        "aurocs": aurocs,
        "checks": checks,
        "passed": passed,
    }
    (out_dir / "synth_report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "synth_report.md").write_text(_markdown(report))
    logger.info("synthetic cohort report: %s", "all checks passed" if passed else "some checks FAILED")
    return report


def _markdown(report: Mapping) -> str:
    lines = [
        "# Synthetic cohort validation report",
        "",
        f"Population cohort n={report['n_population']}, balanced cohort n={report['n_balanced']}, rendered "
        f"n={report['n_rendered']}, seed {report['seed']}; {report['seconds']} s on {report['machine']}.",
        "",
        f"**Overall: {'PASS' if report['passed'] else 'FAIL'}**",
        "",
        "| group | check | value | target | pass |",
        "|---|---|---|---|---|",
    ]
    for group, checks in report["checks"].items():
        for c in checks:
            lines.append(
                f"| {group} | {c['check']} | {c['value']} | {c['target']} | {'yes' if c['passed'] else 'NO'} |"
            )
    lines += ["", "## Held-out AUROC (logistic regression, balanced cohort)", "", "| input | " + " | ".join(
        report["aurocs"]["phenotypes"]) + " |", "|---|" + "---|" * len(report["aurocs"]["phenotypes"])]  # fmt: skip
    for kind, values in report["aurocs"].items():
        lines.append(f"| {kind} | " + " | ".join(str(values.get(k, "")) for k in report["aurocs"]["phenotypes"]) + " |")
    lines += ["", "Population-mode prevalences: " + ", ".join(
        f"{k} {v:.3f}" for k, v in report["prevalence_population"].items())]  # fmt: skip
    return "\n".join(lines) + "\n"
