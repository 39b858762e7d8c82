"""Benchmark: `cnscreen` at the edge, measured side by side in one run.

Run: ``.venv/bin/python benchmarks/bench_edge.py [--bundle DIR] [--files 256] [--workers 2]``

1. Archive throughput: `cnscreen batch` over a directory of synthetic 10-s 500-Hz ECG files (WFDB records written
   here), end to end (read, QC, preprocess in worker processes, batched inference, CSV rows) against inference-only
   throughput (the same bundle's graph on already preprocessed inputs, same batch size), same run: the ratio is what the
   issue asks for (target >= 0.8).
2. Cold start: wall time and peak resident memory of `cnscreen FILE` in a fresh process (median of 5), the default
   bundle unless ``--bundle`` is given.
Writes ``benchmarks/results/edge-<bundle name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cardiacnets.bundle import default_bundle_path  # noqa: E402
from cardiacnets.edge.batch import run_batch  # noqa: E402
from cardiacnets.edge.screen import Screener, prepare_file  # noqa: E402


def archive(root: Path, n: int) -> list[Path]:
    # Imported here, not at the top: reader workers re-import the main module (this script) when they start, and the
    # test helpers pull in pytest, wfdb and pandas, which `cnscreen batch` itself never loads.
    from tests.test_edge_screen import write_wfdb_ecg

    return [write_wfdb_ecg(root, f"rec{i:05d}", patient=f"P^{i}", mrn=f"M{i}") for i in range(n)]


def inference_only_rate(bundle: Path, files: list[Path], batch_size: int, repeats: int = 3) -> float:
    screener = Screener(bundle, device="cpu")
    prepared = [prepare_file(f, screener.preprocess_config) for f in files[: max(batch_size * 4, 64)]]
    screener.infer_prepared(prepared[:batch_size])  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(prepared), batch_size):
            screener.infer_prepared(prepared[i : i + batch_size])
        best = max(best, len(prepared) / (time.perf_counter() - start))
    return best


def stage_times(files: list[Path], config: Any, repeats: int = 3) -> dict[str, float]:
    """Per-file CPU path of one worker, stage by stage, in this process: median over ``repeats`` passes of the mean
    ms/file to read, QC and preprocess (each stage timed on its own, back to back)."""
    from cardiacnets.io import read_ecg
    from cardiacnets.preprocess import preprocess_record
    from cardiacnets.qc import run_qc

    records = [read_ecg(f) for f in files]
    stages = {
        "read_ms": lambda i: read_ecg(files[i]),
        "qc_ms": lambda i: run_qc(records[i].signal, records[i].fs, records[i].meta),
        "preprocess_ms": lambda i: preprocess_record(records[i], config),
    }
    out = {}
    for name, stage in stages.items():
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(len(files)):
                stage(i)
            passes.append((time.perf_counter() - start) / len(files) * 1000)
        out[name] = statistics.median(passes)
    out["total_ms"] = sum(out.values())
    return out


def cold_start(bundle: Path, file: Path, repeats: int = 5) -> dict[str, float]:
    """Fresh-process wall time of `cnscreen FILE --json`, and that process's own peak resident memory (VmHWM of
    /proc/self/status: per address space, so unlike ru_maxrss it is not inherited from the forking parent)."""
    code = (
        "import sys\nfrom cardiacnets.edge.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0].split()[1]\n"
        "print('PEAK_RSS_KB', hwm, file=sys.stderr)"
    )
    walls, rss = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, str(file), "--bundle", str(bundle), "--json"], check=True,
                              capture_output=True, text=True)  # fmt: skip
        walls.append(time.perf_counter() - start)
        rss.append(int(proc.stderr.split("PEAK_RSS_KB")[-1].split()[0]) / 1024)
    cli = REPO / ".venv" / "bin" / "cnscreen"
    cli_walls = []
    if cli.exists():
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([str(cli), str(file), "--bundle", str(bundle), "--json"], check=True, capture_output=True)
            cli_walls.append(time.perf_counter() - start)
    return {
        "wall_s_median": statistics.median(walls),
        "wall_s_min": min(walls),
        "cnscreen_entry_point_wall_s_median": statistics.median(cli_walls) if cli_walls else None,
        "peak_rss_mib": max(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = archive(Path(tmp) / "archive", args.files)
        stages = stage_times(files[:32], Screener(args.bundle, device="cpu").preprocess_config)
        infer_rate = inference_only_rate(args.bundle, files, args.batch_size)
        summary = run_batch(
            Path(tmp) / "archive",
            Path(tmp) / "out.csv",
            bundle=args.bundle,
            workers=args.workers,
            batch_size=args.batch_size,
            progress=False,
        )
        e2e_rate = summary.processed / summary.seconds
        infer_rate_after = inference_only_rate(args.bundle, files, args.batch_size)
        cold = cold_start(args.bundle, files[0])
    infer = max(infer_rate, infer_rate_after)
    result = {
        "command": "python benchmarks/bench_edge.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus_visible": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # other jobs skew absolute rates, less the ratio
        },
        "bundle": str(args.bundle),
        "files": args.files,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "end_to_end_files_per_s": round(e2e_rate, 2),
        "inference_only_records_per_s": round(infer, 2),
        "end_to_end_over_inference_only": round(e2e_rate / infer, 3),
        "cold_start": {k: (round(v, 3) if v is not None else None) for k, v in cold.items()},
        "per_file_stages_single_thread": {k: round(v, 2) for k, v in stages.items()},
        "batch_summary": {"ok": summary.ok, "qc_failed": summary.qc_failed, "error": summary.error},
    }
    name = json.loads((args.bundle / "manifest.json").read_text()).get("name", "bundle")
    out = REPO / "benchmarks" / "results" / f"edge-{name}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Edge screening benchmark ({name})",
        "",
        f"`{result['command']}` on {result['date']} ({os.cpu_count()} CPUs visible, 1-min load average"
        f" {result['machine']['load_average_1min_at_end']} at the end), {args.files} synthetic 10-s 500-Hz WFDB files,"
        " ONNX Runtime CPU.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| end-to-end `cnscreen batch` ({args.workers} workers, batch {args.batch_size}) |"
        f" {result['end_to_end_files_per_s']} files/s |",
        "| inference only (same graph, same batch, preprocessed inputs) |"
        f" {result['inference_only_records_per_s']} records/s |",
        f"| end-to-end / inference-only | **{result['end_to_end_over_inference_only']}** |",
        f"| cold `cnscreen FILE --json` wall time, median of 5 | {result['cold_start']['wall_s_median']} s |",
        "| same through the `.venv/bin/cnscreen` entry point |"
        f" {result['cold_start']['cnscreen_entry_point_wall_s_median']} s |",
        f"| peak resident memory of that process | {result['cold_start']['peak_rss_mib']:.0f} MiB |",
        "| per-file worker CPU, one process (read + QC + preprocess) |"
        f" {stages['read_ms']:.1f} + {stages['qc_ms']:.1f} + {stages['preprocess_ms']:.1f}"
        f" = {stages['total_ms']:.1f} ms |",
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
