"""``cntrain external``: external validation across simulated sites and screening from reduced lead sets (issue 22).

Paper: CardiacNets, Results "external validation" (models trained on MIMIC-IV-ECG applied unchanged to three other
hospitals' cohorts; aligned vs ECG-only, DeLong tests). Here the hospitals are the simulated sites of
:mod:`cardiacnets.synth.sites`: each arm's fine-tuned model (a ``cntrain finetune`` run on the training site) is
applied unchanged to a fresh case-control cohort of every site, and scored for

- discrimination: AUROC per disease with DeLong intervals, DeLong tests aligned vs ECG-only on the same subjects;
- phenotypes: mean Pearson r over the 82 phenotypes (subject-bootstrap interval);
- calibration: ECE and calibration slope with the training site's Platt maps ("before"), and after a light Platt
  recalibration on a small labelled sample of the site (:mod:`cardiacnets.training.recalibrate`);
- the out-of-distribution flag rate (:func:`cardiacnets.trust.ood.fit_ood` fitted on the training site: the rate
  there is about ``alpha`` by construction);

and, on the training site's cohort, every lead set of :mod:`cardiacnets.leadsets` (leads outside the set zeroed), with
DeLong tests against the same model's 12-lead AUROC. A CMR-input arm (``cntrain finetune --input cmr``) is scored on
the same subjects' cines (the sites differ in population only for it: their carts and electrodes do not touch the
CMR); it has no out-of-distribution rate (the check is the ECG model's) and stands unchanged in every lead set's table
as the reference an ECG model is compared with (DeLong aligned vs CMR per site). Every cohort is simulated in memory
from its own seed and subject range, disjoint from the fine-tuning cohort (another seed). Writes ``results.json``,
``report.md`` and figures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets import metrics
from cardiacnets.errors import ConfigError
from cardiacnets.leadsets import LEAD_SETS
from cardiacnets.reporting import json_default
from cardiacnets.synth.sites import DEFAULT_SITE, SITES
from cardiacnets.targets import DISEASES

logger = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("aligned", "ecg_only", "cmr")


@dataclass
class ExternalConfig:
    """What ``cntrain external`` evaluates. ``runs``: arm -> fine-tuning run directory (trained on ``train_site``).
    Cohorts: ``n_test`` subjects per site (``mode``, seed ``seed``, subjects 0..n_test-1), then ``n_recalibration``
    labelled subjects of each site for the recalibration, and on the training site ``n_reference`` +
    ``n_ood_calibration`` more for the out-of-distribution fit."""

    runs: dict[str, str]
    out: str = "runs/external"
    train_site: str = DEFAULT_SITE
    sites: list[str] = field(default_factory=lambda: list(SITES))
    lead_sets: list[str] = field(default_factory=lambda: list(LEAD_SETS))
    lead_set_arms: list[str] | None = None  # arms scored per lead set (default: those trained with lead masking)
    unmasked: str | None = None  # the aligned recipe without lead masking: what masking costs at 12 leads
    n_test: int = 400
    n_recalibration: int = 100
    n_reference: int = 300
    n_ood_calibration: int = 150
    mode: str = "balanced"
    seed: int = 7
    alpha: float = 0.02
    n_bootstrap: int = 500
    batch_size: int = 64

    def __post_init__(self) -> None:
        bad = [a for a in self.runs if a not in ARMS]
        if bad or not self.runs:
            raise ConfigError(f"unknown arm(s) {bad} in runs; use some of {', '.join(ARMS)}")
        unknown = [s for s in [*self.sites, self.train_site] if s not in SITES]
        if unknown:
            raise ConfigError(f"unknown site(s) {unknown}; known: {', '.join(SITES)}")
        if self.train_site not in self.sites:
            self.sites = [self.train_site, *self.sites]


# ----------------------------------------------------------------------------------------------------------------------
# Cohorts and predictions


@lru_cache(maxsize=8)  # the arms share each cohort; treat the arrays as read-only
def site_cohort(
    site: str, start: int, n: int, seed: int, mode: str, ecg_preprocess: str, input: str = "ecg"
) -> tuple[Any, np.ndarray]:
    """Subjects ``start .. start+n-1`` of ``site`` (seed ``seed``) as a fine-tuning
    :class:`~cardiacnets.training.tasks.finetune_cohort.CohortSplit` and their raw ECGs ``(n, 12, 5000)`` mV.
    ``input="cmr"``: the split's ``x`` is the subjects' cines (uint8 short axis and 4-chamber, as fine-tuning reads
    them) instead of their ECGs; the same subjects, labels and phenotypes."""
    from cardiacnets.synth import simulate
    from cardiacnets.training.data import ecg_transform
    from cardiacnets.training.tasks.finetune_cohort import CohortSplit

    d = simulate(n, seed, start=start, site=site, mode=mode, with_cines=input == "cmr")
    if input == "cmr":
        x: Any = tuple(np.round(d[k] * 255.0).astype(np.uint8) for k in ("cine_sa", "cine_la"))
    else:
        transform = ecg_transform(ecg_preprocess)
        x = np.stack([transform(e) for e in d["ecg"]]).astype(np.float32)
    covariates = np.stack([d["sex"], d["age"], d["heart_rate"]], axis=1).astype(np.float32)
    groups = np.asarray([f"{site}-{seed}-{i}" for i in d["subject_index"]])
    cohort = CohortSplit(
        x=x,
        labels=d["labels"].astype(np.float32),
        subtype=d["cm_subtype"].astype(np.int64),
        phenotypes=d["phenotypes"].astype(np.float32),
        covariates=covariates,
        covariate_mask=np.ones_like(covariates),
        groups=groups,
        description=f"synthetic site {site} (seed {seed}, {mode}, subjects {start}-{start + n - 1})",
        synthetic=True,
    )
    return cohort, d["ecg"]


def signal_rows(raw: np.ndarray, heart_rate: np.ndarray) -> dict[str, np.ndarray]:
    """The out-of-distribution signal views of raw ECGs ``(n, 12, 5000)`` mV: view -> ``(n, D)``."""
    from cardiacnets.trust.ood import signal_views

    views = [signal_views(raw[i].astype(np.float64), float(heart_rate[i])) for i in range(len(raw))]
    return {name: np.stack([v[name] for v in views]) for name in views[0]}


def load_arm(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(model, metadata)`` of a fine-tuning run's ``best/``."""
    from cardiacnets.models.registry import from_pretrained, pretrained_dir, read_pretrained_metadata

    best = pretrained_dir(str(run_dir))
    if not (best / "config.json").is_file():
        raise ConfigError(f"{run_dir} has no best/ checkpoint; run cntrain finetune first")
    model = from_pretrained(best)
    model.eval()
    return model, read_pretrained_metadata(best)


def predict_cohort(model: Any, cohort: Any, batch_size: int, lead_set: str | None = None) -> dict[str, Any]:
    from cardiacnets.training.tasks.finetune import predict_rows

    return predict_rows(
        model, cohort, np.arange(len(cohort)), batch_size, lead_set=None if lead_set == "12" else lead_set
    )


# ----------------------------------------------------------------------------------------------------------------------
# Statistics


def _auc(pred: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, disease in enumerate(DISEASES):
        y = pred["labels"][:, k]
        keep = np.isfinite(y)
        yk = y[keep].astype(int)
        if min(yk.sum(), len(yk) - yk.sum()) < 2:
            out[disease] = {"value": None, "ci": None, "reason": "fewer than 2 cases or controls"}
        else:
            out[disease] = metrics.auroc_ci(yk, pred["disease_prob"][keep, k]).as_dict()
    return out


def _mean_r(pred: dict[str, Any], n_bootstrap: int, seed: int) -> dict[str, Any]:
    t, p = pred["phenotypes_true"].astype(float), pred["phenotypes"].astype(float)
    cols = (t.std(0) > 0) & (p.std(0) > 0)
    result = metrics.mean_pearson_r(t[:, cols], p[:, cols], method="percentile", n_bootstrap=n_bootstrap, rng=seed)
    return {**result.mean.as_dict(), "n_targets": int(cols.sum())}


def delong_pairs(labels: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray) -> dict[str, Any]:
    """Per disease DeLong test of A vs B on the same subjects: ``{disease: {"p", "difference", "ci"}}`` (A - B)."""
    out: dict[str, Any] = {}
    for k, disease in enumerate(DISEASES):
        y = labels[:, k]
        keep = np.isfinite(y)
        yk = y[keep].astype(int)
        if min(yk.sum(), len(yk) - yk.sum()) < 2:
            out[disease] = None
            continue
        res = metrics.delong_test(yk, prob_a[keep, k], prob_b[keep, k])
        out[disease] = {"p": res.p_value, "difference": res.difference, "ci": list(res.ci)}
    return out


# ----------------------------------------------------------------------------------------------------------------------
# The evaluation


@dataclass
class _Arm:
    model: Any
    meta: dict[str, Any]
    train_calibration: dict[str, Any] | None = None
    ood: dict[str, Any] | None = None

    @property
    def input(self) -> str:
        return str(self.meta.get("input") or "ecg")

    def cohort(self, cfg: ExternalConfig, site: str, start: int, n: int) -> tuple[Any, np.ndarray]:
        return site_cohort(site, start, n, cfg.seed, cfg.mode, self.meta.get("ecg_preprocess", "full"), self.input)


def _fit_training_site(cfg: ExternalConfig, arms: dict[str, _Arm]) -> None:
    """Per arm: the training site's Platt maps (on its recalibration sample) and out-of-distribution check."""
    from cardiacnets.training.recalibrate import fit_site_calibration
    from cardiacnets.trust.ood import fit_ood

    start = cfg.n_test
    for arm in arms.values():
        sample, _ = arm.cohort(cfg, cfg.train_site, start, cfg.n_recalibration)
        pred = predict_cohort(arm.model, sample, cfg.batch_size)
        arm.train_calibration = fit_site_calibration(pred["labels"], pred["disease_prob"])
        if arm.input != "ecg":
            continue  # the out-of-distribution check is the ECG model's
        ref_start = start + cfg.n_recalibration
        rows = {}
        for name, first, n in (("reference", ref_start, cfg.n_reference),
                               ("calibration", ref_start + cfg.n_reference, cfg.n_ood_calibration)):  # fmt: skip
            cohort, raw = arm.cohort(cfg, cfg.train_site, first, n)
            rows[name] = {"embedding": predict_cohort(arm.model, cohort, cfg.batch_size)["embedding"],
                          **signal_rows(raw, cohort.covariates[:, 2])}  # fmt: skip
        arm.ood = fit_ood(rows["reference"], rows["calibration"], cfg.alpha)


def _evaluate_site(cfg: ExternalConfig, site: str, arms: dict[str, _Arm]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(results[arm], predictions[arm])`` of every arm on ``site``'s test cohort."""
    from cardiacnets.training.recalibrate import apply_site_calibration, calibration_summary, fit_site_calibration
    from cardiacnets.trust.ood import ood_scores

    results, preds = {}, {}
    for name, arm in arms.items():
        cohort, raw = arm.cohort(cfg, site, 0, cfg.n_test)
        sample, _ = arm.cohort(cfg, site, cfg.n_test, cfg.n_recalibration)
        pred = predict_cohort(arm.model, cohort, cfg.batch_size)
        before = apply_site_calibration(arm.train_calibration, pred["disease_prob"])
        local = fit_site_calibration(sample.labels, predict_cohort(arm.model, sample, cfg.batch_size)["disease_prob"])
        after = apply_site_calibration(local, pred["disease_prob"])
        cal_before, cal_after = calibration_summary(pred["labels"], before), calibration_summary(pred["labels"], after)
        if arm.ood is None:
            ood_rate: dict[str, Any] = {"value": None, "ci": None, "reason": "CMR input: the check is the ECG model's"}
        else:
            flags = ood_scores(arm.ood, {"embedding": pred["embedding"], **signal_rows(raw, cohort.covariates[:, 2])})
            ood_rate = metrics.proportion(int((flags > arm.ood["threshold"]).sum()), len(flags)).as_dict()
        results[name] = {
            "auc": _auc(pred),
            "mean_r": _mean_r(pred, cfg.n_bootstrap, cfg.seed),
            "ece": cal_before["ece"],
            "ece_recalibrated": cal_after["ece"],
            "calibration_slope": cal_before["slope"],
            "calibration_slope_recalibrated": cal_after["slope"],
            "calibration_per_disease": {"before": cal_before["per_disease"], "after": cal_after["per_disease"]},
            "ood_flag_rate": ood_rate,
            "n_test": len(cohort),
            "n_recalibration": len(sample),
        }
        preds[name] = pred
        logger.info("site %s, arm %s: mean AUC %.3f", site, name, _mean_auc(results[name]["auc"]))
    return results, preds


def _masking_cost(cfg: ExternalConfig, arms: dict[str, _Arm]) -> dict[str, Any]:
    """The lead-masked aligned model against the same recipe without masking, both given all 12 leads, on the
    training site's test cohort: AUROC per disease (DeLong, masked - unmasked) and mean phenotype r."""
    if "aligned" not in arms:
        raise ConfigError("--unmasked compares with the aligned arm: give --run aligned=DIR too")
    model, meta = load_arm(cfg.unmasked)  # type: ignore[arg-type]
    unmasked = _Arm(model, meta)
    if unmasked.input != "ecg":
        raise ConfigError(f"--unmasked {cfg.unmasked} is not an ECG-input model")
    preds = {}
    for name, arm in (("masked", arms["aligned"]), ("unmasked", unmasked)):
        cohort, _ = arm.cohort(cfg, cfg.train_site, 0, cfg.n_test)
        preds[name] = predict_cohort(arm.model, cohort, cfg.batch_size)
    a, b = preds["masked"], preds["unmasked"]
    return {
        "run": str(cfg.unmasked),
        "auc": {name: _auc(p) for name, p in preds.items()},
        "mean_r": {name: _mean_r(p, cfg.n_bootstrap, cfg.seed) for name, p in preds.items()},
        "delong_masked_vs_unmasked": delong_pairs(a["labels"], a["disease_prob"], b["disease_prob"]),
    }


def _mean_auc(auc: dict[str, Any]) -> float:
    values = [v["value"] for v in auc.values() if v.get("value") is not None]
    return float(np.mean(values)) if values else float("nan")


def _lead_sets(
    cfg: ExternalConfig, arms: dict[str, _Arm], reference: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per lead set and arm on the training site's test cohort: AUROC, mean r, DeLong vs the same model at 12 leads;
    and aligned vs ECG-only per lead set. ``reference``: the training site's results per arm (the CMR arm's row)."""
    names = cfg.lead_set_arms or [a for a, arm in arms.items() if arm.meta.get("lead_sets")]
    names = [a for a in names if arms[a].input == "ecg"]
    out: dict[str, Any] = {ls: {} for ls in cfg.lead_sets}
    preds: dict[str, dict[str, Any]] = {ls: {} for ls in cfg.lead_sets}
    for name in names:
        arm = arms[name]
        cohort, _ = arm.cohort(cfg, cfg.train_site, 0, cfg.n_test)
        for ls in cfg.lead_sets:
            preds[ls][name] = predict_cohort(arm.model, cohort, cfg.batch_size, ls)
        for ls in cfg.lead_sets:
            pred, full = preds[ls][name], preds["12"][name] if "12" in preds else None
            out[ls][name] = {"auc": _auc(pred), "mean_r": _mean_r(pred, cfg.n_bootstrap, cfg.seed)}
            if full is not None and ls != "12":
                out[ls][name]["delong_vs_12"] = delong_pairs(pred["labels"], pred["disease_prob"], full["disease_prob"])
    for name, arm in arms.items():
        if arm.input != "ecg":  # the CMR reference does not depend on the ECG's leads: the same row in every table
            for ls in cfg.lead_sets:
                out[ls][name] = {**{k: reference[name][k] for k in ("auc", "mean_r")}, "uses_ecg": False}
    comparisons = {}
    if {"aligned", "ecg_only"} <= set(names):
        for ls in cfg.lead_sets:
            a, b = preds[ls]["aligned"], preds[ls]["ecg_only"]
            comparisons[ls] = delong_pairs(a["labels"], a["disease_prob"], b["disease_prob"])
    return out, comparisons


def run_external(cfg: ExternalConfig, command: str | None = None) -> dict[str, Any]:
    """Evaluate every arm on every site and lead set; write ``results.json``, ``report.md`` and figures."""
    from cardiacnets.training.external_report import write_external_report

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = {}
    for name, run in cfg.runs.items():
        model, meta = load_arm(run)
        arms[name] = _Arm(model, meta)
        if arms[name].input not in ("ecg", "cmr"):
            raise ConfigError(f"arm {name}: {run} has input {arms[name].input!r}; expected 'ecg' or 'cmr'")
        if (name == "cmr") != (arms[name].input == "cmr"):
            kind = arms[name].input.upper()
            raise ConfigError(f"arm {name}: {run} is a {kind}-input model; the cmr arm, and only it, takes cines")
    _fit_training_site(cfg, arms)
    sites, comparisons, versus_cmr = {}, {}, {}
    for site in cfg.sites:
        sites[site], preds = _evaluate_site(cfg, site, arms)
        for other, table in (("ecg_only", comparisons), ("cmr", versus_cmr)):
            if {"aligned", other} <= set(arms):
                a, b = preds["aligned"], preds[other]
                table[site] = delong_pairs(a["labels"], a["disease_prob"], b["disease_prob"])
    lead_sets, lead_set_comparisons = _lead_sets(cfg, arms, sites[cfg.train_site])
    masking_cost = _masking_cost(cfg, arms) if cfg.unmasked else None
    payload = {
        "synthetic": True,
        "train_site": cfg.train_site,
        "sites": sites,
        "lead_sets": lead_sets,
        "delong_aligned_vs_ecg_only": {"sites": comparisons, "lead_sets": lead_set_comparisons},
        "delong_aligned_vs_cmr": {"sites": versus_cmr},
        "masking_cost": masking_cost,
        "site_descriptions": {s: SITES[s].description for s in cfg.sites},
        "runs": {
            name: {
                "dir": str(cfg.runs[name]),
                "init": arm.meta.get("init"),
                "lead_sets": arm.meta.get("lead_sets"),
                "training_data": arm.meta.get("training_data"),
            }
            for name, arm in arms.items()
        },  # fmt: skip
        "config": {k: v for k, v in cfg.__dict__.items() if k != "runs"},
        "command": command,
        "wall_s": round(time.time() - t0, 1),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, allow_nan=False, default=json_default) + "\n")
    write_external_report(payload, out)
    return payload


__all__ = [
    "ARMS",
    "ExternalConfig",
    "delong_pairs",
    "load_arm",
    "predict_cohort",
    "run_external",
    "signal_rows",
    "site_cohort",
]
