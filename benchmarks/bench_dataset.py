"""Dataset read throughput (items per second) on this machine -> benchmarks/results/dataset.{json,md}.

Writes a small synthetic dataset with both cines, then times item reads: sequential and shuffled, all modalities and
ECG only, through a DataLoader (batch 16, no worker processes), and the on-the-fly synthetic dataset for comparison.
Generation speed of the simulator itself is measured by the simulator's own benchmark.

Run: ``.venv/bin/python benchmarks/bench_dataset.py [--n-subjects 128]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cardiacnets.datasets import open_dataset, write_synthetic

RESULTS = Path(__file__).resolve().parent / "results"


def _items_per_second(dataset, order: np.ndarray, min_seconds: float = 3.0) -> float:
    done, start = 0, time.perf_counter()
    while True:
        for i in order:
            dataset[int(i)]
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def _loader_items_per_second(dataset, batch_size: int = 16) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    done, start = 0, time.perf_counter()
    for batch in loader:
        done += len(batch["index"])
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "n_subjects": args.n_subjects,
        "shard_size": args.shard_size,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        start = time.perf_counter()
        write_synthetic(out, args.n_subjects, seed=0, shard_size=args.shard_size)
        results["write_seconds"] = round(time.perf_counter() - start, 2)
        size = sum(p.stat().st_size for p in out.rglob("*.npz"))
        results["bytes_per_subject"] = int(size / args.n_subjects)
        start = time.perf_counter()
        full = open_dataset(out, "all")
        results["open_with_sha256_seconds"] = round(time.perf_counter() - start, 3)
        ecg_only = open_dataset(out, "all", modalities=["ecg", "labels"], verify=False)
        n = len(full)
        timings = {
            "all_modalities_sequential": _items_per_second(full, np.arange(n)),
            "all_modalities_shuffled": _items_per_second(full, rng.permutation(n)),
            "ecg_labels_shuffled": _items_per_second(ecg_only, rng.permutation(n)),
            "all_modalities_dataloader_b16": _loader_items_per_second(full),
        }
    fly = open_dataset("synthetic", "all", n_subjects=10**6, seed=0, modalities=["ecg", "labels"])
    fly_cines = open_dataset("synthetic", "all", n_subjects=10**6, seed=0)
    fly._cache_size = fly_cines._cache_size = 0  # measure generation, not the item cache
    timings["on_the_fly_ecg_labels"] = _items_per_second(fly, rng.integers(0, 10**6, 20))
    timings["on_the_fly_all_modalities"] = _items_per_second(fly_cines, rng.integers(0, 10**6, 10))
    results["items_per_second"] = {k: round(v, 1) for k, v in timings.items()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dataset.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Dataset read throughput",
        "",
        f"`benchmarks/bench_dataset.py`, {args.n_subjects} synthetic subjects with both cines, shards of "
        f"{args.shard_size}, one torch thread, {os.cpu_count()} CPU cores (shared).",
        "",
        f"- write: {results['write_seconds']} s (simulation included); {results['bytes_per_subject'] / 1024:.0f} KiB "
        "per subject on disk",
        f"- open with sha256 check of every shard: {results['open_with_sha256_seconds']} s",
        "",
        "| read | items/s |",
        "|---|---|",
        *[f"| {k.replace('_', ' ')} | {v} |" for k, v in results["items_per_second"].items()],
        "",
    ]
    (RESULTS / "dataset.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
