"""Benchmark: vectorised ECG preprocessing vs the per-lead reference, same run, same inputs.

Run: ``.venv/bin/python benchmarks/bench_preprocess.py [--records 64] [--repeats 3]``

Inputs are synthetic 12 x 5000 records at 500 Hz (10 s) with heart rates spread over 45-150 bpm, noise and baseline
wander. The vectorised path (:func:`cardiacnets.preprocess.preprocess_ecg` on the whole ``(B, 12, 5000)`` batch) and
the per-lead reference (``tests/reference_preprocess.py``: a loop over records and leads calling statsmodels'
``seasonal_decompose``, ``pywt`` and ``scipy.signal.savgol_filter``) get the same heart rates. Reports records/s for
both, the speed ratio (target >= 10x) and the largest absolute difference (target <= 1e-5). Writes
``benchmarks/results/preprocess.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info, report_header  # noqa: E402
from cardiacnets.preprocess import PreprocessConfig, estimate_heart_rate, preprocess_ecg  # noqa: E402
from tests.reference_preprocess import reference_preprocess_record  # noqa: E402
from tests.synthetic_ecg import synthetic_ecg  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each path (best is kept)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    heart_rates = np.linspace(45.0, 150.0, args.records)
    batch = np.stack([synthetic_ecg(500.0, 10.0, hr, rng, noise_mV=0.03, wander_mV=0.4) for hr in heart_rates])
    config = PreprocessConfig()
    hr_used = estimate_heart_rate(batch, 500.0)

    preprocess_ecg(batch[:2], 500.0, config, hr_used[:2])  # warm-up (imports, FFT plans)
    vec_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        vectorised = preprocess_ecg(batch, 500.0, config, hr_used)
        vec_times.append(time.perf_counter() - start)

    ref_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        reference = np.stack(
            [reference_preprocess_record(batch[b], 500.0, hr_used[b], config) for b in range(len(batch))]
        )
        ref_times.append(time.perf_counter() - start)

    max_diff = float(np.abs(vectorised.astype(np.float64) - reference.astype(np.float64)).max())
    vec_rate = args.records / min(vec_times)
    ref_rate = args.records / min(ref_times)
    result = {
        "benchmark": "preprocess",
        "command": "python benchmarks/bench_preprocess.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "records": args.records,
        "record_shape": [12, 5000],
        "heart_rates_bpm": [float(heart_rates.min()), float(heart_rates.max())],
        "distinct_seasonal_periods": int(len({round(30000 / h) for h in hr_used})),
        "repeats": args.repeats,
        "vectorised_seconds_best": round(min(vec_times), 4),
        "reference_seconds_best": round(min(ref_times), 4),
        "vectorised_records_per_s": round(vec_rate, 1),
        "reference_records_per_s": round(ref_rate, 1),
        "speed_ratio": round(vec_rate / ref_rate, 2),
        "max_abs_diff": max_diff,
        "target": {"speed_ratio_min": 10.0, "max_abs_diff": 1e-5},
        "meets_target": bool(vec_rate / ref_rate >= 10.0 and max_diff <= 1e-5),
        "config": config.to_dict(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "preprocess.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        *report_header("Preprocessing benchmark: vectorised vs per-lead reference", result),
        f"- input: {args.records} synthetic records of 12 x 5000 samples (500 Hz, 10 s), heart rates"
        f" {heart_rates.min():.0f}-{heart_rates.max():.0f} bpm ({result['distinct_seasonal_periods']} distinct seasonal"
        " periods), noise and baseline wander",
        f"- timing: best of {args.repeats} repeats per path, same process",
        "",
        "| path | seconds | records/s |",
        "|---|---|---|",
        f"| vectorised `preprocess_ecg` (one batch call) | {min(vec_times):.3f} | {vec_rate:.1f} |",
        f"| per-lead reference (`tests/reference_preprocess.py`) | {min(ref_times):.3f} | {ref_rate:.1f} |",
        "",
        f"- speed ratio: **{vec_rate / ref_rate:.1f}x** (target >= 10x)",
        f"- max |vectorised - reference|: **{max_diff:.2e}** (target <= 1e-5)",
        f"- meets target: {result['meets_target']}",
        "",
    ]
    (args.out / "preprocess.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
