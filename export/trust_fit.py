"""Fit a bundle's trust artefacts (``trust.json``) from its screening graph and a labelled cohort.

The screening graph is run, exactly as the edge runs it, on three splits of the cohort the model was trained on:

* ``train`` (reference): where the training ECGs lie, for the out-of-distribution models;
* ``val`` (calibration): disease calibrators, operating thresholds and their uncertainty bands, the phenotype primary
  pairs, conformal half-widths and the out-of-distribution threshold;
* ``test`` (evaluation, never used to fit): ECE and reliability before and after calibration, conformal coverage per
  phenotype, the phenotype identities' effect on mean r, and the flag rates.

ECGs go through the bundle's own preprocessing (``preprocess_ecg``), the heart rate the model is given is the cohort's
(as a file's own heart rate would be) or else the estimate, and signal features are computed on the raw 10-s window,
as :mod:`cardiacnets.edge.screen` does for a file. For the synthetic cohort, subject ``i`` and its split are pure
functions of ``(seed, i)``: a cohort larger than the training one (same seed) holds the training cohort as its first
subjects, so its validation and test splits gain unseen subjects while keeping the training cohort's own.

A bundle whose model screens from reduced lead sets (``manifest["lead_sets"]``) gets one set of artefacts per lead set
(``trust.json``'s ``lead_sets``): for each, the cohort's ECGs lose the leads outside the set before anything else (as
a file holding only those leads reaches the edge: the others zero-filled), so calibration, thresholds, intervals and
the out-of-distribution check are those of the model given that set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cardiacnets.errors import InputError

logger = logging.getLogger(__name__)

#: A transform of raw ECGs for shift experiments: ``(signal (n, 12, m) mV, fs, rng) -> (signal, fs, hr_factor)``.
Transform = Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, float, float]]


@dataclass
class ScoredSplit:
    """A cohort split run through a screening graph. Arrays have one row per subject."""

    description: str
    outputs: dict[str, np.ndarray]  # disease_prob (n, 5), subtype_prob (n, 3), phenotypes (n, 82), embedding (n, D)
    labels: np.ndarray  # (n, 5) 0/1, NaN unknown
    phenotypes: np.ndarray  # (n, 82) measured (NaN unknown)
    heart_rate: np.ndarray  # (n,) beats/min given to the model
    signal: dict[str, np.ndarray]  # signal views of the raw window: morphology, spectrum, statistics, (n, ...) each
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


def _chunks(
    source: str | os.PathLike[str], split: str, *, n_subjects: int | None, seed: int, mode: str,
    max_items: int | None, chunk: int,
) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """Raw ECGs (mV, 500 Hz, (m, 12, 5000)) with covariates, labels and phenotypes, ``chunk`` subjects at a time."""
    if isinstance(source, str) and source == "synthetic":
        from cardiacnets.datasets.splits import SPLITS, hash_splits
        from cardiacnets.datasets.synthetic import synthetic_batch

        if not n_subjects:
            raise InputError("a synthetic trust cohort needs its size (n_subjects)")
        indices = np.arange(int(n_subjects), dtype=np.int64)
        if split != "all":
            indices = indices[hash_splits(indices, seed) == SPLITS.index(split)]
        indices = indices[:max_items] if max_items else indices
        for start in range(0, indices.size, chunk):
            batch = synthetic_batch(indices[start : start + chunk], seed, with_cines=False, mode=mode)
            yield {"ecg": np.asarray(batch["ecg"], np.float32), "covariates": batch["covariates"],
                   "covariate_mask": batch["covariate_mask"].astype(np.float32),
                   "labels": np.asarray(batch["labels"], np.float32),
                   "phenotypes": np.asarray(batch["phenotypes"], np.float32)}  # fmt: skip
        return
    from cardiacnets.datasets import open_dataset

    dataset = open_dataset(source, split, n_subjects=n_subjects, modalities=["ecg", "phenotypes", "labels"])
    n = len(dataset) if not max_items else min(len(dataset), max_items)
    for start in range(0, n, chunk):
        items = [dataset[i] for i in range(start, min(n, start + chunk))]
        yield {key: np.stack([np.asarray(it[key], np.float32) for it in items])
               for key in ("ecg", "covariates", "covariate_mask", "labels", "phenotypes")}  # fmt: skip


def score_split(
    graph: str | os.PathLike[str],
    source: str | os.PathLike[str],
    split: str,
    *,
    preprocess: Mapping[str, Any] | None = None,
    n_subjects: int | None = None,
    seed: int = 0,
    mode: str = "balanced",
    max_items: int | None = None,
    transform: Transform | None = None,
    rng: np.random.Generator | None = None,
    chunk: int = 128,
    batch: int = 32,
    lead_set: str | None = None,
) -> ScoredSplit:
    """Run the screening graph at ``graph`` on a cohort split, the edge's way (see the module docstring); with
    ``lead_set`` (:mod:`cardiacnets.leadsets`) the leads outside the set are zeroed in the raw ECGs first."""
    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.onnx_export import ort_session
    from cardiacnets.leadsets import apply_lead_set
    from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg
    from cardiacnets.trust.ood import SIGNAL_VIEWS, signal_views

    config = PreprocessConfig.from_dict(dict(preprocess)) if preprocess else PreprocessConfig()
    session = ort_session(graph)
    rng = rng or np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*SCREENING_OUTPUTS, *SIGNAL_VIEWS, "labels", "truth", "hr")}
    for data in _chunks(source, split, n_subjects=n_subjects, seed=seed, mode=mode, max_items=max_items, chunk=chunk):
        raw, fs, hr_factor = np.asarray(data["ecg"], np.float64), 500.0, 1.0
        if transform is not None:
            raw, fs, hr_factor = transform(raw, fs, rng)
        if lead_set not in (None, "12"):
            raw = apply_lead_set(raw, lead_set)  # type: ignore[arg-type]
        covariates = np.array(data["covariates"], np.float32)
        mask = np.array(data["covariate_mask"], np.float32)
        known = (mask[:, 2] > 0) & np.isfinite(covariates[:, 2])
        covariates[:, 2] = np.where(known, covariates[:, 2] * hr_factor, covariates[:, 2])
        given = np.where(known & (covariates[:, 2] >= config.hr_min) & (covariates[:, 2] <= config.hr_max),
                         covariates[:, 2], np.nan)  # fmt: skip
        ecg, info = preprocess_ecg(raw, fs, config, given, return_info=True, keep_window=True)
        hr_used = np.where(known, covariates[:, 2], np.asarray(info["heart_rate"], np.float64))
        covariates[:, 2] = np.where(known, covariates[:, 2], hr_used)
        mask[:, 2] = 1.0  # the edge always gives the model a heart rate (the file's or the estimate)
        covariates = np.nan_to_num(covariates * (mask > 0), nan=0.0).astype(np.float32)
        for window, rate in zip(info["window"], hr_used, strict=True):
            for name, values in signal_views(window, rate).items():
                parts[name].append(values[None])
        for i in range(0, ecg.shape[0], batch):
            rows = slice(i, i + batch)
            feed = {"ecg": np.ascontiguousarray(ecg[rows], np.float32), "covariates": covariates[rows],
                    "covariate_mask": mask[rows]}  # fmt: skip
            for name, value in zip(SCREENING_OUTPUTS, session.run(list(SCREENING_OUTPUTS), feed), strict=True):
                parts[name].append(value)
        parts["labels"].append(np.where(np.asarray(data["labels"]) < 0, np.nan, data["labels"]))
        parts["truth"].append(np.asarray(data["phenotypes"], np.float64))
        parts["hr"].append(hr_used)
    if not parts["labels"]:
        raise InputError(f"{source} {split} split is empty")
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    n = joined["labels"].shape[0]
    where = f"{source} {split} split" + (f" of {n_subjects} subjects, seed {seed}" if source == "synthetic" else "")
    where += f", lead set {lead_set}" if lead_set not in (None, "12") else ""
    return ScoredSplit(
        description=f"{where}: {n} subjects",
        outputs={k: joined[k] for k in SCREENING_OUTPUTS},
        labels=joined["labels"],
        phenotypes=joined["truth"],
        heart_rate=joined["hr"],
        signal={name: joined[name] for name in SIGNAL_VIEWS},
    )


# -------------------------------------------------------------------------------------------------------- fitting
def _threshold_band(
    y: np.ndarray, prob: np.ndarray, rule: Callable[[np.ndarray, np.ndarray], float], point: float,
    n_bootstrap: int, rng: np.random.Generator, quantiles: tuple[float, float],
) -> list[float]:  # fmt: skip
    """Central bootstrap interval of the threshold ``rule`` picks (stratified resamples of the calibration split),
    widened to contain ``point``: the threshold's own uncertainty."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        draws.append(rule(y[idx], prob[idx]))
    low, high = np.quantile(draws, quantiles)
    return [float(min(low, point)), float(max(high, point))]


def fit_trust(
    reference: ScoredSplit,
    calibration: ScoredSplit,
    *,
    coverage: float = 0.9,
    alpha: float = 0.02,
    min_specificity: float = 0.9,
    band_quantiles: tuple[float, float] = (0.1, 0.9),
    n_bootstrap: int = 200,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(trust_spec, thresholds)`` fitted on ``reference`` (training split) and ``calibration`` (validation split).

    ``trust_spec`` is the ``trust.json`` content (:class:`cardiacnets.trust.TrustModel`); ``thresholds`` the
    manifest's per-disease operating points in calibrated probability with their bands.
    """
    from cardiacnets.metrics import threshold_for_specificity, youden_threshold
    from cardiacnets.targets import DISEASES, phenotype_names, phenotypes
    from cardiacnets.trust import TRUST_SCHEMA
    from cardiacnets.trust.calibration import apply_calibrator, fit_calibrator
    from cardiacnets.trust.conformal import conformal_quantiles, physical_limits
    from cardiacnets.trust.ood import fit_ood
    from cardiacnets.trust.phenotypes import choose_primary_pairs, derivation_table, reconcile_phenotypes

    if not 0.0 < alpha < 0.5:
        raise InputError(f"the out-of-distribution rate alpha must be in (0, 0.5), got {alpha!r}")
    rng = np.random.default_rng(seed)
    calibrators, thresholds = {}, {}
    for k, disease in enumerate(DISEASES):
        known = np.isfinite(calibration.labels[:, k])
        y = calibration.labels[known, k].astype(np.float64)
        raw = calibration.outputs["disease_prob"][known, k].astype(np.float64)
        if y.sum() < 5 or (1 - y).sum() < 5:
            raise InputError(f"the calibration split has too few {disease} cases or controls to calibrate (need 5)")
        calibrators[disease] = fit_calibrator(y, raw, rng=rng)
        prob = apply_calibrator(calibrators[disease], raw)
        rules = {"youden": youden_threshold,
                 "high_specificity": lambda yy, pp: threshold_for_specificity(yy, pp, min_specificity)}  # fmt: skip
        entry: dict[str, Any] = {"default": "youden", "min_specificity": min_specificity, "scale": "calibrated",
                                 "band": {}}  # fmt: skip
        for point, rule in rules.items():
            entry[point] = float(rule(y, prob))
            entry["band"][point] = _threshold_band(y, prob, rule, entry[point], n_bootstrap, rng, band_quantiles)
        thresholds[disease] = entry

    names = phenotype_names()
    truth, predicted = calibration.phenotypes, calibration.outputs["phenotypes"].astype(np.float64)
    pairs = choose_primary_pairs(predicted, truth, calibration.heart_rate)
    reconciled = reconcile_phenotypes(predicted, calibration.heart_rate, pairs)
    half_widths = conformal_quantiles(truth, reconciled, coverage)
    low, high = physical_limits([p.unit for p in phenotypes()], names)

    reference_rows = {"embedding": reference.outputs["embedding"], **reference.signal}
    calibration_rows = {"embedding": calibration.outputs["embedding"], **calibration.signal}
    ood = fit_ood(reference_rows, calibration_rows, alpha)

    def finite(values: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in values]

    spec = {
        "schema": TRUST_SCHEMA,
        "diseases": list(DISEASES),
        "fitted_on": {"reference": reference.description, "calibration": calibration.description},
        "calibration": calibrators,
        "phenotypes": {"primary_pairs": pairs, "derived": derivation_table(pairs), "coverage": coverage,
                       "half_widths": finite(half_widths), "low": finite(low), "high": finite(high)},  # fmt: skip
        "ood": ood,
        "bands": {"method": f"bootstrap ({n_bootstrap} stratified resamples of the calibration split) of each operating"
                            f" threshold, central {band_quantiles[1] - band_quantiles[0]:.0%} interval"},
    }  # fmt: skip
    return spec, thresholds


def _share(hits: np.ndarray, among: np.ndarray) -> float | None:
    return float(hits[among].mean()) if among.any() else None


def evaluate_trust(spec: Mapping[str, Any], thresholds: Mapping[str, Any], data: ScoredSplit) -> dict[str, Any]:
    """What the fitted trust artefacts do on a held-out split: calibration (ECE, slope, Brier, reliability curves)
    before and after, decisions per disease, phenotype identities and mean r before and after reconciliation,
    conformal coverage per phenotype, and the out-of-distribution flag rate."""
    from cardiacnets.metrics import auroc, brier_score, expected_calibration_error, reliability_curve
    from cardiacnets.targets import phenotype_names
    from cardiacnets.trust import TrustModel, decide
    from cardiacnets.trust.calibration import calibration_slope
    from cardiacnets.trust.conformal import interval_coverage
    from cardiacnets.trust.phenotypes import identity_violations, safe_pearson_r

    model = TrustModel(spec)
    raw = data.outputs["disease_prob"].astype(np.float64)
    calibrated = model.calibrate(raw)
    diseases: dict[str, Any] = {}
    for k, disease in enumerate(model.diseases):
        known = np.isfinite(data.labels[:, k])
        y, before, after = data.labels[known, k], raw[known, k], calibrated[known, k]
        entry = thresholds[disease]
        point = entry["default"]
        calls = np.array([decide(p, entry[point], entry["band"][point]) for p in after])
        determinate = calls != "indeterminate"
        positive = calls == "flagged"
        diseases[disease] = {
            "n": int(known.sum()), "n_positive": int(y.sum()),
            "auroc": {"raw": auroc(y, before), "calibrated": auroc(y, after)},
            "ece": {"raw": expected_calibration_error(y, before), "calibrated": expected_calibration_error(y, after)},
            "calibration_slope": {"raw": calibration_slope(y, before), "calibrated": calibration_slope(y, after)},
            "brier": {"raw": brier_score(y, before), "calibrated": brier_score(y, after)},
            "reliability": {"raw": reliability_curve(y, before).as_dict(),
                            "calibrated": reliability_curve(y, after).as_dict()},
            "decisions": {name: float(np.mean(calls == name)) for name in ("flagged", "clear", "indeterminate")},
            "sensitivity_determinate": _share(positive, determinate & (y == 1)),
            "specificity_determinate": _share(~positive, determinate & (y == 0)),
        }  # fmt: skip
    truth = data.phenotypes
    predicted = data.outputs["phenotypes"].astype(np.float64)
    reconciled, lower, upper = model.phenotypes(predicted, data.heart_rate)
    names = phenotype_names()

    def rs(values: np.ndarray) -> list[float]:
        return [safe_pearson_r(truth[:, j], values[:, j]) for j in range(truth.shape[1])]

    r_raw, r_rec = rs(predicted), rs(reconciled)
    cover = interval_coverage(truth, lower, upper)
    checks = model.distribution(data.outputs["embedding"], data.signal)
    return {
        "split": data.description,
        "diseases": diseases,
        "phenotypes": {
            "mean_r": {"raw": float(np.nanmean(r_raw)), "reconciled": float(np.nanmean(r_rec))},
            "r": {name: {"raw": a, "reconciled": b} for name, a, b in zip(names, r_raw, r_rec, strict=True)},
            "identity_violation_raw": identity_violations(predicted, data.heart_rate),
            "identity_violation_reconciled": identity_violations(reconciled, data.heart_rate),
            "coverage_nominal": model.coverage,
            "coverage": {name: float(c) for name, c in zip(names, cover, strict=True)},
            "coverage_mean": float(np.nanmean(cover)),
        },
        "ood": {
            "flag_rate": float(np.mean([not c.in_distribution for c in checks])),
            "threshold": model.ood_threshold,
            "flag_rate_by_view": {
                name: float(np.mean([c.views[name] > model.ood_threshold for c in checks])) for name in checks[0].views
            },
        },  # fmt: skip
    }


# -------------------------------------------------------------------------------------------- bundles and reports
@dataclass(frozen=True)
class TrustData:
    """Where a bundle's trust artefacts are fitted: a cohort (``"synthetic"`` or a dataset directory) and, for the
    synthetic cohort, its size, seed and mode. Its train, val and test splits are used (module docstring)."""

    source: str = "synthetic"
    n_subjects: int | None = 6000
    seed: int = 0
    mode: str = "balanced"
    max_items: int | None = None


def attach_trust(
    root: str | os.PathLike[str],
    manifest: dict[str, Any],
    data: TrustData,
    *,
    coverage: float = 0.9,
    alpha: float = 0.02,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit trust artefacts for the bundle directory ``root`` (its default screening graph), write ``trust.json`` there
    and update ``manifest`` (thresholds on the calibrated scale, the ``trust`` entry); return ``(manifest, evaluation)``
    where ``evaluation`` is :func:`evaluate_trust` on the test split. The caller writes the manifest."""
    from pathlib import Path

    from cardiacnets.trust import TRUST_FILE

    root = Path(root)
    spec = manifest["models"]["screening"]
    variant = spec.get("default_variant") or "fp32"
    graph = spec["file"] if variant == "fp32" else spec["variants"][variant]["file"]
    say = progress or (lambda text: logger.info(text))
    splits = {}
    for split in ("train", "val", "test"):
        say(f"running {graph} on the {data.source} {split} split...")
        splits[split] = score_split(root / graph, data.source, split, preprocess=manifest.get("preprocess"),
                                    n_subjects=data.n_subjects, seed=data.seed, mode=data.mode,
                                    max_items=data.max_items)  # fmt: skip
    trust, thresholds = fit_trust(splits["train"], splits["val"], coverage=coverage, alpha=alpha)
    evaluation = evaluate_trust(trust, thresholds, splits["test"])
    trust["fitted_on"]["graph"] = graph
    trust["evaluation"] = _evaluation_summary(evaluation)
    from cardiacnets.bundle import LEAD_SET_MODEL

    reduced_graph = (manifest["models"].get(LEAD_SET_MODEL) or {}).get("file") or graph
    for lead_set in manifest.get("lead_sets") or []:
        if lead_set == "12":
            continue
        parts = {}
        for split in ("train", "val", "test"):
            say(f"running {reduced_graph} on the {data.source} {split} split with lead set {lead_set}...")
            parts[split] = score_split(root / reduced_graph, data.source, split, preprocess=manifest.get("preprocess"),
                                       n_subjects=data.n_subjects, seed=data.seed, mode=data.mode,
                                       max_items=data.max_items, lead_set=lead_set)  # fmt: skip
        sub, sub_thresholds = fit_trust(parts["train"], parts["val"], coverage=coverage, alpha=alpha)
        sub_evaluation = evaluate_trust(sub, sub_thresholds, parts["test"])
        sub.update(thresholds=sub_thresholds, evaluation=_evaluation_summary(sub_evaluation))
        sub["fitted_on"]["graph"] = reduced_graph
        for key in ("schema", "diseases"):  # the lead set's artefacts share the top level's
            sub.pop(key)
        trust.setdefault("lead_sets", {})[lead_set] = sub
        evaluation.setdefault("lead_sets", {})[lead_set] = sub_evaluation
    (root / TRUST_FILE).write_text(json.dumps(trust, indent=1, sort_keys=True) + "\n")
    updated = dict(manifest)
    previous = manifest.get("thresholds") or {}
    updated["thresholds"] = {d: {**entry, **({"uncalibrated": previous[d]} if d in previous else {})}
                             for d, entry in thresholds.items()}  # fmt: skip
    updated["thresholds_source"] = f"chosen on the calibrated probabilities of the {splits['val'].description}"
    updated["trust"] = {"file": TRUST_FILE, "fitted_on": trust["fitted_on"], "evaluation": trust["evaluation"]}
    if trust.get("lead_sets"):
        updated["trust"]["lead_sets"] = {ls: sub["evaluation"] for ls, sub in trust["lead_sets"].items()}
    return updated, evaluation


def _evaluation_summary(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers the manifest repeats from a trust evaluation."""
    pheno = evaluation["phenotypes"]
    return {
        "split": evaluation["split"],
        "ece": {d: {k: round(v, 4) for k, v in e["ece"].items()} for d, e in evaluation["diseases"].items()},
        "indeterminate": {d: round(e["decisions"]["indeterminate"], 4) for d, e in evaluation["diseases"].items()},
        "phenotype_mean_r": {k: round(v, 4) for k, v in pheno["mean_r"].items()},
        "coverage_nominal": pheno["coverage_nominal"],
        "coverage_mean": round(pheno["coverage_mean"], 4),
        "ood_flag_rate": round(evaluation["ood"]["flag_rate"], 4),
    }


def refit_bundle_trust(
    bundle: str | os.PathLike[str],
    out: str | os.PathLike[str],
    data: TrustData,
    *,
    drop_variants: tuple[str, ...] = (),
    coverage: float = 0.9,
    alpha: float = 0.02,
    overwrite: bool = False,
    version: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy the bundle at ``bundle`` to ``out`` with newly fitted trust artefacts (and without ``drop_variants``; with
    a new ``version`` string when given),
    written atomically; return ``(manifest, evaluation)``. The source bundle must verify; a format-1 bundle is
    accepted as the source (its files' hashes are checked) and written as the current format."""
    from pathlib import Path

    from cardiacnets.bundle import MANIFEST_NAME, load_bundle, sha256_file
    from cardiacnets.errors import BundleIntegrityError
    from cardiacnets.export.bundle_update import editing_copy, replace_with_copy

    source, out = Path(bundle), Path(out)
    manifest = json.loads((source / MANIFEST_NAME).read_text())
    if manifest.get("bundle_format_version", 0) >= 2:
        load_bundle(source)  # full verification, digest included
    else:  # format 1: no digest to check, but every file must match its hash
        for rel, entry in manifest.get("files", {}).items():
            if sha256_file(source / rel) != entry.get("sha256"):
                raise BundleIntegrityError(f"bundle {source}: {rel} does not match its sha256; refusing to re-fit it")
    with editing_copy(source, out, overwrite=overwrite) as partial:
        spec = manifest["models"]["screening"]
        for variant in drop_variants:
            entry = (spec.get("variants") or {}).pop(variant, None)
            if entry is None:
                raise InputError(f"the bundle has no screening variant {variant!r} to drop")
            (partial / entry["file"]).unlink()
            if spec.get("default_variant") == variant:
                spec["default_variant"] = "fp32"
                spec["default_variant_reason"] = (
                    f"fp32: the {variant} variant was removed (batch-dependent results;"
                    " benchmarks/results/precision-cpu.md)"
                )
            report = (manifest.get("precision_report") or {}).get("variants", {}).get(variant)
            if report is not None:
                report["removed"] = "results depend on the other ECGs in a batch (dynamic activation quantisation)"
        manifest, evaluation = attach_trust(partial, manifest, data, coverage=coverage, alpha=alpha, progress=progress)
        replace_with_copy(partial, out, manifest, version=version)
    return load_bundle(out).manifest, evaluation


def write_trust_report(evaluation: Mapping[str, Any], spec: Mapping[str, Any], out_dir: str | os.PathLike[str],
                       *, title: str, command: str) -> None:  # fmt: skip
    """``report.md``, ``results.json`` and ``reliability.png`` (reliability diagrams before/after calibration) of a
    trust evaluation, in ``out_dir``."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"evaluation": evaluation, "fitted_on": spec.get("fitted_on"),
                                                  "primary_pairs": spec["phenotypes"]["primary_pairs"],
                                                  "derived": spec["phenotypes"]["derived"]},
                                                 indent=1, default=float) + "\n")  # fmt: skip
    _reliability_figure(evaluation, out / "reliability.png")
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             f"Fitted on: reference {spec['fitted_on']['reference']}; calibration {spec['fitted_on']['calibration']}.",
             f"Evaluated on: {evaluation['split']} (never used for fitting).", "",
             "## Calibration of disease probabilities (test split)", "",
             "| disease | method | AUROC | ECE raw | ECE calibrated | slope raw | slope calibrated | flagged | clear |"
             " indeterminate | sens. (determinate) | spec. (determinate) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for d, e in evaluation["diseases"].items():
        dec = e["decisions"]

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f} %"

        lines.append(f"| {d} | {spec['calibration'][d]['method']} | {e['auroc']['calibrated']:.3f} |"
                     f" {e['ece']['raw']:.3f} | {e['ece']['calibrated']:.3f} | {e['calibration_slope']['raw']:.2f} |"
                     f" {e['calibration_slope']['calibrated']:.2f} | {pct(dec['flagged'])} | {pct(dec['clear'])} |"
                     f" {pct(dec['indeterminate'])} | {pct(e['sensitivity_determinate'])} |"
                     f" {pct(e['specificity_determinate'])} |")  # fmt: skip
    pheno = evaluation["phenotypes"]
    cover = pheno["coverage"]
    worst = sorted(cover.items(), key=lambda kv: kv[1])[:5]
    lines += ["", "![reliability diagrams](reliability.png)", "", "## Phenotypes (test split)", "",
              f"- Mean Pearson r over the 82: {pheno['mean_r']['raw']:.4f} as the head predicts them,"
              f" {pheno['mean_r']['reconciled']:.4f} after the identities are enforced"
              f" ({pheno['mean_r']['reconciled'] - pheno['mean_r']['raw']:+.4f}).",
              f"- Largest identity violation before: {max(pheno['identity_violation_raw'].values()):.2f};"
              f" after: {max(pheno['identity_violation_reconciled'].values()):.2e}.",
              f"- Primary pairs (kept as predicted, with the larger volume): {spec['phenotypes']['primary_pairs']}.",
              f"- Split-conformal intervals, nominal coverage {pheno['coverage_nominal']:.0%}: measured"
              f" {pheno['coverage_mean']:.1%} averaged over the 82 (lowest: "
              + ", ".join(f"{k} {v:.1%}" for k, v in worst) + ").", "",
              "| phenotype | r raw | r reconciled | coverage |", "|---|---|---|---|"]  # fmt: skip
    for name, r in pheno["r"].items():
        lines.append(f"| {name} | {r['raw']:.3f} | {r['reconciled']:.3f} | {cover[name]:.1%} |")
    ood = evaluation["ood"]
    lines += ["", "## Out-of-distribution check (test split)", "",
              f"Flagged: {ood['flag_rate']:.1%} (threshold {ood['threshold']:.3f}; target about"
              f" {spec['ood']['alpha']:.0%}). By view: "
              + ", ".join(f"{k} {v:.1%}" for k, v in ood["flag_rate_by_view"].items()) + ".", ""]  # fmt: skip
    lines += _lead_set_lines(evaluation)
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _lead_set_lines(evaluation: Mapping[str, Any]) -> list[str]:
    """The report's table of the artefacts fitted per reduced lead set (none: no lines)."""
    from cardiacnets.leadsets import LEAD_SET_WORDS

    sets = evaluation.get("lead_sets") or {}
    if not sets:
        return []
    lines = ["## Per lead set (test split; each set's own calibration, thresholds, intervals and check)", "",
             "Each lead set's artefacts are fitted on the same splits with the leads outside the set removed.", "",
             "| lead set | mean AUROC | mean ECE raw / calibrated | indeterminate | phenotype mean r (reconciled) |"
             " conformal coverage | OOD flagged |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, e in {"12": evaluation, **sets}.items():
        d = e["diseases"].values()
        auc = float(np.nanmean([x["auroc"]["calibrated"] for x in d]))
        ece_raw, ece_cal = (float(np.mean([x["ece"][k] for x in d])) for k in ("raw", "calibrated"))
        ind = float(np.mean([x["decisions"]["indeterminate"] for x in d]))
        ph = e["phenotypes"]
        rest = f" {ph['mean_r']['reconciled']:.3f} | {ph['coverage_mean']:.1%} | {e['ood']['flag_rate']:.1%} |"
        lines.append(f"| {LEAD_SET_WORDS[name]} | {auc:.3f} | {ece_raw:.3f} / {ece_cal:.3f} | {ind:.1%} |" + rest)
    return [*lines, ""]


def _reliability_figure(evaluation: Mapping[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diseases = list(evaluation["diseases"])
    fig, axes = plt.subplots(1, len(diseases), figsize=(3.2 * len(diseases), 3.3), squeeze=False)
    for ax, disease in zip(axes[0], diseases, strict=True):
        rel = evaluation["diseases"][disease]["reliability"]
        for key, style in (("raw", "o--"), ("calibrated", "s-")):
            curve = rel[key]
            x = [v for v, c in zip(curve["mean_predicted"], curve["counts"], strict=True) if c]
            y = [v for v, c in zip(curve["observed_frequency"], curve["counts"], strict=True) if c]
            ax.plot(x, y, style, label=key, markersize=4)
        ax.plot([0, 1], [0, 1], color="0.7", lw=1)
        ax.set_title(disease)
        ax.set_xlabel("predicted probability")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("observed frequency")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Reliability before and after calibration (synthetic test split)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
