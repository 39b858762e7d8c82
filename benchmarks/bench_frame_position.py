"""Does the temporal attention need to know the frame index? Two ECG2CMR denoisers, side by side (issue 23).

Diffusers' UNet3D builds its temporal transformers without a positional embedding: attention over the frames cannot
tell them apart, and only the temporal convolutions' zero padding says where a frame lies in the cycle. This compares
two denoiser runs trained with the same recipe, cohort, seed and number of steps, one with ``task.frame_position=
sinusoidal`` (a frame-index embedding in every temporal attention block) and one without, on:

- validation epsilon-MSE (EMA weights) at every evaluation step both runs reached (the training loss at equal steps);
- the share of generated frames with a heart (:mod:`cardiacnets.diffusion.frame_quality`), overall and per frame
  index (the hypothesis: mid-cycle frames fail without position information);
- faithfulness: generated-vs-real Pearson r of the view's measures on the same held-out test ECGs (conditional
  samples; the full study with controls is ``cntrain ecg2cmr-report``).

Sampling as ``cnscreen --cine`` does: DPM-Solver++ 20 steps, guidance 3, seed 0. Synthetic cohort; results are
labelled synthetic. Run on purpose, never as a test:

    python benchmarks/bench_frame_position.py --run none=RUN_A --run sinusoidal=RUN_B --vae VAE \
        --encoder cardiacnets/data/aligned-ecg-encoder --data runs/demo/cohort --n-subjects 1536 \
        --max-items 48 --out benchmarks/results/ecg2cmr-frame-position
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path

import numpy as np


def val_losses(run: Path) -> dict[int, float]:
    """``{step: validation loss}`` of a training run's ``metrics.csv``."""
    out: dict[int, float] = {}
    with (run / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "val" and row["name"] == "val_loss":
                out[int(row["step"])] = float(row["value"])
    return out


def evaluate(run: Path, vae: Path, encoder: Path, ecgs: np.ndarray, real: np.ndarray, seed: int) -> dict:
    from cardiacnets.diffusion.evaluate import StudySettings, _generate, measure_cines, pearson_with_ci
    from cardiacnets.diffusion.frame_quality import cine_quality
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline

    pipeline = EcgToCmrPipeline.from_components(encoder, run, vae)
    view = pipeline.config.view
    # sampled exactly as the faithfulness study samples (batches of 8, seeded per batch)
    settings = StudySettings(guidance_scale=3.0, seed=seed, batch_size=8)
    cines, seconds_per_cine = _generate(pipeline, ecgs, len(ecgs), "dpm", 20, settings)
    checks = [cine_quality(c, view) for c in cines]
    per_frame = np.mean([[f is None for f in q.failures] for q in checks], axis=0)
    generated, truth = measure_cines(cines, view), measure_cines(real, view)
    r = {name: pearson_with_ci(generated[name], truth[name], 1000, seed=seed) for name in generated}
    return {
        "frame_position": pipeline.denoiser.config.frame_position,
        "frames_with_heart": float(np.mean(per_frame)),
        "frames_with_heart_by_frame": [round(float(v), 4) for v in per_frame],
        "cines_with_heart_in_every_frame": float(np.mean([q.ok for q in checks])),
        "r": r,
        "seconds_per_cine": seconds_per_cine,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=DIR of a cntrain diffusion run")
    parser.add_argument("--vae", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--n-subjects", type=int, default=None)
    parser.add_argument("--max-items", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from cardiacnets.datasets import open_dataset
    from cardiacnets.diffusion.data import resample_cine
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg

    runs = dict(item.split("=", 1) for item in args.run)
    first = EcgToCmrPipeline.from_components(args.encoder, next(iter(runs.values())), args.vae)
    config, key = first.config, f"cine_{first.config.view}"
    ds = open_dataset(args.data, "test", n_subjects=args.n_subjects, seed=0, modalities=["ecg", key])
    n = min(len(ds), args.max_items)
    items = [ds[i] for i in range(n)]
    ecgs = preprocess_ecg(np.stack([np.asarray(it["ecg"], np.float32) for it in items]), 500.0, PreprocessConfig())
    real = resample_cine(np.stack([np.asarray(it[key], np.float32) for it in items]), config.num_frames,
                         config.height, config.width).numpy()  # fmt: skip
    losses = {name: val_losses(Path(run)) for name, run in runs.items()}
    common = sorted(set.intersection(*(set(v) for v in losses.values())))
    results = {
        "synthetic": True,
        "command": "python " + " ".join(sys.argv),
        "machine": platform.processor() or platform.machine(),
        "view": config.view,
        "n_test": n,
        "runs": {name: str(run) for name, run in runs.items()},
        "val_loss_at_equal_steps": {str(s): {name: losses[name][s] for name in runs} for s in common},
        "samples": {
            name: evaluate(Path(run), args.vae, args.encoder, ecgs.astype(np.float32), real, args.seed)
            for name, run in runs.items()
        },  # fmt: skip
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (args.out / "report.md").write_text(markdown(results) + "\n")
    print(json.dumps({"out": str(args.out)}))
    return 0


def markdown(results: dict) -> str:
    names = list(results["runs"])
    lines = [
        f"# Frame position in the temporal attention: {results['view'].upper()} denoisers side by side (SYNTHETIC)",
        "",
        f"Command: `{results['command']}`; {results['n_test']} held-out synthetic test ECGs, DPM-Solver++ 20 steps,"
        " guidance 3, seed 0. Runs: " + "; ".join(f"**{k}**: `{v}`" for k, v in results["runs"].items()) + ".",
        "",
        "## Validation epsilon-MSE (EMA weights) at equal steps",
        "",
        "| step | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for step, row in results["val_loss_at_equal_steps"].items():
        lines.append(f"| {step} | " + " | ".join(f"{row[n]:.4f}" for n in names) + " |")
    lines += ["", "## Generated frames with a heart", "", "| run | all frames | cines with a heart in every frame |"
              " by frame index |", "|---|---|---|---|"]  # fmt: skip
    for name in names:
        s = results["samples"][name]
        by = " ".join(f"{v:.2f}" for v in s["frames_with_heart_by_frame"])
        lines.append(f"| {name} | {s['frames_with_heart']:.1%} | {s['cines_with_heart_in_every_frame']:.1%} | {by} |")
    measures = list(results["samples"][names[0]]["r"])
    lines += ["", "## Generated vs real (Pearson r, 95 % bootstrap interval; conditional samples)", "",
              "| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]  # fmt: skip
    for m in measures:
        cells = []
        for name in names:
            e = results["samples"][name]["r"][m]
            finite = e.get("value") is not None and np.isfinite(e["value"])  # NaN: a measure constant on one side
            cells.append(f"{e['value']:.3f} ({e['ci'][0]:.3f}-{e['ci'][1]:.3f})" if finite else "n/a")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
