"""Synthetic cohort generation speed: subjects per second per core, ECG only and ECG + both cines, same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_synth.py [--n-ecg 2000] [--n-full 200]

Per-core throughput is subjects / CPU seconds of this single-threaded process (robust to other load on a shared
machine); wall-clock throughput is reported too. Writes ``benchmarks/results/synth.json`` and ``synth.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info, report_header  # noqa: E402
from cardiacnets.synth import simulate  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def _time(n: int, with_cines: bool, seed: int) -> dict:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    simulate(n, seed, with_cines=with_cines)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "n_subjects": n,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "subjects_per_cpu_second": round(n / cpu, 2),
        "subjects_per_wall_second": round(n / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ecg", type=int, default=2000)
    parser.add_argument("--n-full", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    simulate(8, 123)  # warm-up: noise bank, imports
    result = {
        "command": "OMP_NUM_THREADS=1 " + " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average_1min": os.getloadavg()[0]},
        "ecg_only": _time(args.n_ecg, False, 1),
        "ecg_and_cines": _time(args.n_full, True, 2),
        "target_subjects_per_second_per_core": 50,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synth.json").write_text(json.dumps(result, indent=2) + "\n")
    e, f = result["ecg_only"], result["ecg_and_cines"]
    md = [
        *report_header("Synthetic cohort generation speed", result),
        f"- 1-min load average at start: {result['machine']['load_average_1min']:.1f}",
        "",
        "| workload | subjects | subjects / CPU s (per core) | subjects / wall s |",
        "|---|---|---|---|",
        f"| ECG only | {e['n_subjects']} | {e['subjects_per_cpu_second']} | {e['subjects_per_wall_second']} |",
        f"| ECG + SA + 4Ch cines | {f['n_subjects']} | {f['subjects_per_cpu_second']} | "
        f"{f['subjects_per_wall_second']} |",
        "",
        "Target (issue 3): 50 subjects / s / core for ECG + both cines.",
    ]
    (args.out / "synth.md").write_text("\n".join(md) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
