"""Share of a bundle's generated cine frames that show a heart, per view, on a cohort's held-out test ECGs.

python scripts/cine_frame_quality.py --data runs/demo/cohort --n-subjects 1536 [--bundle DIR] [--max-items 48]
                                     [--results benchmarks/results/ecg2cmr-synthetic/results.json]

Runs the bundle's own graphs on onnxruntime (CPU) exactly as ``cnscreen --cine`` does
(:func:`cardiacnets.edge.cine.sample_view`: DPM-Solver++ 20 steps, guidance 3, seed = subject index) and checks every
frame with :func:`cardiacnets.diffusion.frame_quality.cine_quality`. Prints JSON; with ``--results`` also writes each
view's share into that faithfulness results file's ``frames_with_heart`` (with how it was measured under
``frames_with_heart_source``), leaving the views that file's own study measured alone unless ``--replace`` is given,
and rewrites the ``report.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cardiacnets.bundle import default_bundle_path, load_bundle
from cardiacnets.datasets import open_dataset
from cardiacnets.diffusion.frame_quality import cine_quality
from cardiacnets.edge.cine import sample_view
from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg
from cardiacnets.training.ecg2cmr_report import write_markdown


def bundle_frame_quality(bundle_dir: Path, data: str, n_subjects: int | None, max_items: int) -> dict:
    """``{view: {"frames_with_heart", "cines_with_heart_in_every_frame", "n_cines", "seconds"}}`` of a bundle."""
    bundle = load_bundle(bundle_dir)
    ds = open_dataset(data, "test", n_subjects=n_subjects, seed=0, modalities=["ecg"])
    n = min(len(ds), max_items)
    raw = np.stack([np.asarray(ds[i]["ecg"], np.float32) for i in range(n)])
    ecgs = preprocess_ecg(raw.astype(np.float64), 500.0, PreprocessConfig()).astype(np.float32)
    out = {}
    for view in bundle.manifest["cine"]["views"]:
        started = time.perf_counter()
        checks = []
        for i in range(n):
            cine, _ = sample_view(bundle, view, ecgs[i], providers=["CPUExecutionProvider"], seed=i)
            checks.append(cine_quality(cine, view))
        out[view] = {
            "frames_with_heart": sum(q.frames_with_heart for q in checks) / sum(q.n_frames for q in checks),
            "cines_with_heart_in_every_frame": float(np.mean([q.ok for q in checks])),
            "n_cines": n,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"{view}: {out[view]}", file=sys.stderr)
    return out


def merge_into_results(path: Path, measured: dict, how: str, replace: bool = False) -> None:
    """Write each view's share of ``measured`` into the faithfulness results at ``path`` (``frames_with_heart``, with
    ``how`` and the share of cines with a heart in every frame under ``frames_with_heart_source``); views the results'
    own study measured are kept unless ``replace``. Rewrites the ``report.md`` beside it."""
    results = json.loads(path.read_text())
    heart = dict(results.get("frames_with_heart") or {})
    source = dict(results.get("frames_with_heart_source") or {})
    for view, entry in measured.items():
        if view in heart and view not in source and not replace:
            continue  # measured by the results' own study
        heart[view] = entry["frames_with_heart"]
        every = entry["cines_with_heart_in_every_frame"]
        source[view] = f"{how}; {entry['n_cines']} cines, {every:.1%} with a heart in every frame"
    results.update(frames_with_heart=heart, frames_with_heart_source=source)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path} and {write_markdown(path.parent)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument("--data", required=True)
    parser.add_argument("--n-subjects", type=int, default=None)
    parser.add_argument("--max-items", type=int, default=48)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--replace", action="store_true", help="Also overwrite views the results' study measured.")
    args = parser.parse_args()
    measured = bundle_frame_quality(args.bundle, args.data, args.n_subjects, args.max_items)
    print(json.dumps(measured, indent=2))
    if args.results is not None:
        version = load_bundle(args.bundle).manifest.get("version")
        how = (f"the bundle {version} graphs on onnxruntime (scripts/cine_frame_quality.py), test ECGs of {args.data},"
               " DPM-Solver++ 20 steps, guidance 3, seed = subject index")  # fmt: skip
        merge_into_results(args.results, measured, how, args.replace)


if __name__ == "__main__":
    main()
