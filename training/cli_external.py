"""``cntrain external`` (external validation across simulated sites and lead sets) and ``cntrain recalibrate``
(Platt recalibration of a fine-tuned model on a small labelled sample of a new site). Thin: parse, call, print JSON."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from cardiacnets.errors import InputError

_EXAMPLES_EXTERNAL = """
Examples:

  cntrain finetune --task all --init default --set task.lead_masking=true --out runs/ft-aligned
  cntrain finetune --task all --init random --set task.lead_masking=true --out runs/ft-ecg-only
  cntrain external --run aligned=runs/ft-aligned --run ecg_only=runs/ft-ecg-only --out runs/external

  cntrain external --run aligned=runs/ft-aligned --sites default,community --n-test 200 --out runs/external-small
"""

_EXAMPLES_RECALIBRATE = """
Examples:

  cntrain recalibrate --run runs/ft-aligned --site community --n-subjects 100 --out runs/recal-community.json
"""


def _runs(values: list[str]) -> dict[str, str]:
    runs = {}
    for value in values:
        arm, sep, path = value.partition("=")
        if not sep or not arm or not path:
            raise typer.BadParameter(f"expected ARM=DIR, got {value!r}", param_hint="--run")
        runs[arm.strip()] = path.strip()
    return runs


def external(
    run: list[str] = typer.Option(..., "--run", help="ARM=DIR: a fine-tuning run per arm (aligned, ecg_only, cmr)."),
    out: Path = typer.Option(Path("runs/external"), "--out", help="Output directory (results.json, report.md)."),
    sites: str | None = typer.Option(None, "--sites", help="Comma list of sites (default: all)."),
    train_site: str = typer.Option("default", "--train-site", help="The site the runs were fine-tuned on."),
    lead_sets: str | None = typer.Option(None, "--lead-sets", help="Comma list of lead sets (default: all)."),
    n_test: int = typer.Option(400, "--n-test", min=20, help="Test subjects per site."),
    n_recalibration: int = typer.Option(100, "--n-recalibration", min=20, help="Labelled subjects for recalibration."),
    n_reference: int = typer.Option(
        300, "--n-reference", min=32, help="Training-site subjects the out-of-distribution check is fitted on."
    ),
    n_ood_calibration: int = typer.Option(
        150, "--n-ood-calibration", min=20, help="Training-site subjects that set its threshold."
    ),
    mode: str = typer.Option("balanced", "--mode", help="Site cohorts: 'balanced' (case-control) or 'population'."),
    seed: int = typer.Option(7, "--seed", help="Seed of the evaluation cohorts (differ from the fine-tuning seed)."),
    n_bootstrap: int = typer.Option(500, "--n-bootstrap", min=100, help="Bootstrap resamples for mean r."),
    unmasked: Path | None = typer.Option(
        None, "--unmasked", help="The aligned recipe without lead masking: report what masking costs at 12 leads."
    ),
) -> None:
    """Apply each arm's model, unchanged, to every simulated site and every lead set; writes results.json, report.md
    and figures."""
    from cardiacnets.training.external import ExternalConfig, run_external

    if mode not in ("balanced", "population"):
        raise typer.BadParameter(f"must be 'balanced' or 'population', got {mode!r}", param_hint="--mode")
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()]  # noqa: E731
    cfg = ExternalConfig(
        runs=_runs(run), out=str(out), train_site=train_site, n_test=n_test, n_recalibration=n_recalibration,
        n_reference=n_reference, n_ood_calibration=n_ood_calibration, mode=mode, seed=seed, n_bootstrap=n_bootstrap,
        unmasked=str(unmasked) if unmasked else None,
        **({"sites": split(sites)} if sites else {}), **({"lead_sets": split(lead_sets)} if lead_sets else {}),
    )  # fmt: skip
    command = "cntrain " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    payload = run_external(cfg, command=command)
    print(json.dumps({"out": str(out), "report": str(out / "report.md"), "wall_s": payload["wall_s"]}))


def recalibrate(
    run: Path = typer.Option(..., "--run", help="A fine-tuning run directory (its best/ model)."),
    site: str = typer.Option(..., "--site", help="The new site whose labelled sample recalibrates the model."),
    n_subjects: int = typer.Option(100, "--n-subjects", min=20, help="Labelled subjects of the site."),
    seed: int = typer.Option(11, "--seed", help="Seed of the site's sample."),
    mode: str = typer.Option("balanced", "--mode", help="'balanced' or 'population' sample."),
    out: str = typer.Option("-", "--out", help="JSON file for the Platt maps and calibration ('-': stdout)."),
) -> None:
    """Fit one Platt map per disease on a small labelled sample of a new site (trust.json 'calibration' format) and
    report ECE and calibration slope before and after, in sample."""
    from cardiacnets.synth.sites import SITES
    from cardiacnets.training.external import load_arm, predict_cohort, site_cohort
    from cardiacnets.training.recalibrate import apply_site_calibration, calibration_summary, fit_site_calibration

    if site not in SITES:
        raise InputError(f"unknown site {site!r}; known: {', '.join(SITES)}")
    model, meta = load_arm(run)
    sample, _ = site_cohort(site, 0, n_subjects, seed, mode, meta.get("ecg_preprocess", "full"))
    pred = predict_cohort(model, sample, 64)
    maps = fit_site_calibration(pred["labels"], pred["disease_prob"])
    result = {
        "run": str(run),
        "site": site,
        "sample": sample.description,
        "calibration": maps,
        "before": calibration_summary(pred["labels"], pred["disease_prob"]),
        "after_in_sample": calibration_summary(pred["labels"], apply_site_calibration(maps, pred["disease_prob"])),
    }
    text = json.dumps(result, indent=2, allow_nan=False)
    if out == "-":
        print(text)
    else:
        Path(out).write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add ``external`` and ``recalibrate`` to ``app``."""
    app.command("external", epilog=_EXAMPLES_EXTERNAL)(external)
    app.command("recalibrate", epilog=_EXAMPLES_RECALIBRATE)(recalibrate)
