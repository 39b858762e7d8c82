"""Benchmark: does the bundle's out-of-distribution check flag the ECGs it should, and only those?

Run: ``.venv/bin/python benchmarks/bench_ood.py [--bundle DIR] [--subjects 6000] [--seed 0] [--shift-subjects 400]``

Three measurements with the bundle's own trust artefacts (``trust.json``), through the edge's own path:

1. **Real ECGs.** Every input of the shared conformance corpus (``../shared/ecg-conformance``, enumerated as
   ``cnscreen batch`` does) that the readers accept, screened with :class:`cardiacnets.edge.screen.Screener`. The
   default bundle was trained on synthetic ECGs only, so nearly all of them should be flagged.
2. **Synthetic test ECGs** (the training cohort's test split, never used to fit anything): the flag rate should be
   near the calibrated rate ``alpha``.
3. **Shifts a hospital meets**, applied to the raw test ECGs (mV, 500 Hz) before the bundle's preprocessing: another
   cart's 0.5-40 Hz filter, a 250-Hz cart, 60-Hz mains, pacemaker spikes, LA/RA limb-lead reversal, a
   paediatric-like ECG (an adult ECG made faster, with larger precordial voltages and a rightward axis: a transform,
   not a simulated child), and heavy noise. For each: detection AUROC (shifted vs the same ECGs unshifted), the flag
   rate, and the AUROC of each view.

Writes ``benchmarks/results/ood-synthetic/report.md`` and ``results.json``. Results on SYNTHETIC data and on a small
public corpus; the shifts are simulated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info  # noqa: E402


# ---------------------------------------------------------------------------------------------------- the shifts
def _cart_filter(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, [0.5, 40.0], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=-1), fs, 1.0


def _cart_250hz(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    from scipy.signal import resample_poly

    return resample_poly(x, 1, 2, axis=-1), fs / 2, 1.0


def _mains_60hz(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    t = np.arange(x.shape[-1]) / fs
    amplitude = rng.uniform(0.03, 0.15, size=x.shape[:-1] + (1,))
    phase = rng.uniform(0, 2 * np.pi, size=x.shape[:-1] + (1,))
    return x + amplitude * np.sin(2 * np.pi * 60.0 * t + phase), fs, 1.0


def _pacemaker(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    out = x.copy()
    width = max(1, int(round(0.002 * fs)))  # 2-ms pulses
    for i in range(x.shape[0]):
        period = int(fs * 60.0 / rng.uniform(60, 80))
        direction = rng.normal(size=12)
        direction *= rng.uniform(2.0, 6.0) / np.abs(direction).max()  # mV in the lead that sees most of it
        for start in range(int(rng.integers(0, period)), x.shape[-1] - width, period):
            out[i, :, start : start + width] += direction[:, None]
    return out, fs, 1.0


def _limb_reversal(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    out = x.copy()  # LA <-> RA: I -> -I, II <-> III, aVR <-> aVL, aVF unchanged
    out[:, 0] = -x[:, 0]
    out[:, 1], out[:, 2] = x[:, 2], x[:, 1]
    out[:, 3], out[:, 4] = x[:, 4], x[:, 3]
    return out, fs, 1.0


def _paediatric_like(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    from scipy.signal import resample_poly

    from cardiacnets.record import derive_limb_leads

    fast = resample_poly(x, 2, 3, axis=-1)  # every interval 1.5x shorter: heart rate x 1.5
    fast = np.concatenate([fast, fast[..., : x.shape[-1] - fast.shape[-1]]], axis=-1)  # back to 10 s
    lead_i, lead_ii = fast[:, 0], fast[:, 1]
    horizontal, vertical = lead_i, (2 * lead_ii - lead_i) / np.sqrt(3)  # frontal vector (aVF downwards)
    angle = np.deg2rad(60.0)  # rightward axis shift
    rotated_h = horizontal * np.cos(angle) - vertical * np.sin(angle)
    rotated_v = horizontal * np.sin(angle) + vertical * np.cos(angle)
    new_i, new_ii = rotated_h, rotated_h / 2 + rotated_v * np.sqrt(3) / 2
    out = fast.copy()
    derived = derive_limb_leads(new_i, new_ii)
    out[:, 0], out[:, 1] = new_i, new_ii
    for lead, name in enumerate(("III", "aVR", "aVL", "aVF"), start=2):
        out[:, lead] = derived[name]
    out[:, 6:] *= 1.6  # thinner chest wall: larger precordial voltages
    return out, fs, 1.5


def _heavy_noise(x: np.ndarray, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    t = np.arange(x.shape[-1]) / fs
    emg = rng.normal(0.0, 0.12, size=x.shape)
    wander = 0.6 * np.sin(2 * np.pi * rng.uniform(0.15, 0.4, size=x.shape[:-1] + (1,)) * t + rng.uniform(0, 6.3))
    return x + emg + wander, fs, 1.0


SHIFTS = {
    "cart filter 0.5-40 Hz": _cart_filter,
    "cart at 250 Hz": _cart_250hz,
    "60 Hz mains": _mains_60hz,
    "pacemaker spikes": _pacemaker,
    "LA/RA limb-lead reversal": _limb_reversal,
    "paediatric-like (rate x1.5, axis +60 deg, precordial x1.6)": _paediatric_like,
    "heavy noise (EMG 0.12 mV, 0.6 mV wander)": _heavy_noise,
}


# ---------------------------------------------------------------------------------------------------- measurement
def corpus_results(bundle: Path, corpus: Path) -> list[dict]:
    from cardiacnets.edge.batch import enumerate_inputs
    from cardiacnets.edge.screen import Screener
    from cardiacnets.errors import CardiacNetsError

    screener = Screener(bundle, device="cpu")
    rows = []
    for item in enumerate_inputs(corpus):
        if "_groundtruth" in Path(item.path).parts or item.path.endswith((".md", ".json")):
            continue
        try:
            result, _ = screener.screen_file(item.path)
        except CardiacNetsError as exc:
            rows.append({"file": os.path.relpath(item.path, corpus), "readable": False, "reason": str(exc)[:120]})
            continue
        distribution = result["distribution"]
        rows.append({"file": os.path.relpath(item.path, corpus), "readable": True, "format": result["record"]["format"],
                     "flagged": not distribution["in_distribution"], "score": distribution["score"],
                     "views": distribution["views"], "reasons": distribution["reasons"]})  # fmt: skip
    return rows


def scores(bundle: Path, manifest: dict, args: argparse.Namespace, transform=None, limit: int | None = None) -> dict:  # noqa: ANN001
    from cardiacnets.export.trust_fit import score_split
    from cardiacnets.trust import TrustModel

    trust = TrustModel.from_file(bundle / manifest["trust"]["file"])
    graph = bundle / manifest["models"]["screening"]["file"]
    scored = score_split(graph, "synthetic", "test", preprocess=manifest["preprocess"], n_subjects=args.subjects,
                         seed=args.seed, max_items=limit, transform=transform,
                         rng=np.random.default_rng(args.seed + 17))  # fmt: skip
    checks = trust.distribution(scored.outputs["embedding"], scored.signal)
    return {"score": np.array([c.score for c in checks]), "flagged": np.array([not c.in_distribution for c in checks]),
            "views": {v: np.array([c.views[v] for c in checks]) for v in checks[0].views}, "n": scored.n,
            "description": scored.description}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from cardiacnets.bundle import default_bundle_path, load_bundle
    from cardiacnets.metrics import auroc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("CNS_CONFORMANCE_DIR", REPO.parent / "shared/ecg-conformance")),
    )
    parser.add_argument("--subjects", type=int, default=6000, help="synthetic cohort size (the trust fit's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift-subjects", type=int, default=400, help="test ECGs per shift")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ood-synthetic")
    args = parser.parse_args(argv)

    started = time.time()
    bundle = load_bundle(args.bundle)
    manifest = bundle.manifest
    corpus = corpus_results(args.bundle, args.corpus)
    readable = [r for r in corpus if r["readable"]]
    test = scores(args.bundle, manifest, args)
    clean = scores(args.bundle, manifest, args, limit=args.shift_subjects)
    shifts = {}
    for name, transform in SHIFTS.items():
        shifted = scores(args.bundle, manifest, args, transform=transform, limit=args.shift_subjects)
        labels = np.r_[np.zeros(clean["n"]), np.ones(shifted["n"])]
        shifts[name] = {
            "auroc": float(auroc(labels, np.r_[clean["score"], shifted["score"]])),
            "flag_rate": float(shifted["flagged"].mean()),
            "auroc_by_view": {
                v: float(auroc(labels, np.r_[clean["views"][v], shifted["views"][v]])) for v in clean["views"]
            },  # fmt: skip
        }
        print(name, json.dumps(shifts[name]), flush=True)
    command = "python benchmarks/bench_ood.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ood = json.loads((args.bundle / manifest["trust"]["file"]).read_text())["ood"]
    results = {
        "command": command.strip(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "bundle": {"name": manifest["name"], "version": manifest.get("version"), "digest": manifest["digest"]},
        "threshold": ood["threshold"],
        "alpha": ood["alpha"],
        "real_corpus": {
            "inputs": len(corpus),
            "readable": len(readable),
            "flagged": sum(r["flagged"] for r in readable),
            "flag_rate": float(np.mean([r["flagged"] for r in readable])) if readable else None,
            "files": corpus,
        },  # fmt: skip
        "synthetic_test": {
            "split": test["description"],
            "flag_rate": float(test["flagged"].mean()),
            "flag_rate_by_view": {v: float(np.mean(s > ood["threshold"])) for v, s in test["views"].items()},
        },  # fmt: skip
        "shifts": {"clean_subjects": clean["n"], "clean_flag_rate": float(clean["flagged"].mean()), "by_shift": shifts},
        "seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    lines = [
        "# Out-of-distribution check of the default bundle (synthetic training data)",
        "",
        f"- command: `{results['command']}` ({results['seconds']} s)",
        f"- date: {results['date']}; machine: {results['machine']['cpu']}",
        f"- bundle: {manifest['name']} {manifest.get('version')}, digest {manifest['digest'][:16]}; threshold"
        f" {results['threshold']:.3f} (the validation split's {1 - results['alpha']:.0%} quantile of the score)",
        "",
        "## Real ECGs (shared conformance corpus)",
        "",
        f"{results['real_corpus']['flagged']} of {len(readable)} readable inputs flagged out of distribution"
        f" ({100 * (results['real_corpus']['flag_rate'] or 0):.0f} %; target >= 95 %); {len(corpus) - len(readable)}"
        " inputs could not be read (not ECGs, or refused on purpose).",
        "",
        "| file | format | score | flagged | why |",
        "|---|---|---|---|---|",
    ]
    for r in readable:
        lines.append(f"| {r['file']} | {r['format']} | {r['score']:.2f} | {'yes' if r['flagged'] else 'no'} |"
                     f" {'; '.join(r['reasons'][:2])} |")  # fmt: skip
    lines += [
        "",
        "## Synthetic test ECGs",
        "",
        f"{100 * results['synthetic_test']['flag_rate']:.1f} % of the {test['description']} flagged (target <= 5 %).",
        "",
        f"## Shifts ({clean['n']} test ECGs each; unshifted: {100 * clean['flagged'].mean():.1f} % flagged)",
        "",
        "| shift | detection AUROC | flagged | AUROC by view: embedding / morphology / spectrum / statistics |",
        "|---|---|---|---|",
    ]
    for name, s in shifts.items():
        views = " / ".join(
            f"{s['auroc_by_view'][v]:.3f}" for v in ("embedding", "morphology", "spectrum", "statistics")
        )
        lines.append(f"| {name} | {s['auroc']:.3f} | {100 * s['flag_rate']:.1f} % | {views} |")
    missed = [name for name, s in shifts.items() if s["auroc"] < 0.6]
    if missed:
        lines += ["", f"Not detected: {', '.join(missed)}. A shift that changes nothing the model or the check sees is"
                  " not a shift for this model: the synthetic ECGs carry nothing above 100 Hz (the simulator's"
                  " low-pass), so a 250-Hz cart, for one, leaves every view unchanged."]  # fmt: skip
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
