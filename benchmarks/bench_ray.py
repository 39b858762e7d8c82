"""Benchmark: `cnscreen batch --engine ray` beside the built-in engine, in one run on this machine.

Run: ``.venv/bin/python benchmarks/bench_ray.py [--bundle DIR] [--synthetic 600]``

1. The mixed archive of ``bench_edge.py``: the whole ECG conformance corpus, synthetic subjects written in turn as GE
   CardioSoft XML, HL7 aECG and WFDB, and broken files.
2. The built-in engine (``run_batch``, its defaults, Parquet output).
3. Ray on one node: ``run_ray_batch`` starting Ray on this machine for each run (``num_cpus`` = usable cores).
4. Ray on two nodes: a ``ray.cluster_utils.Cluster`` of a head and a second node on this same machine, the cores split
   between them (so no more cores than 3., only the node boundary added); ``run_ray_batch`` connects to it. Starting
   the cluster is reported apart (a user's cluster is already up); connecting is part of each run.
5. The built-in engine again, to bracket the noise of a machine shared with other jobs.

Each engine runs twice: over a small subset of the archive (10 synthetic subjects: its start-up, wall time and CPU),
then over the whole archive; the difference is what the files themselves cost once the engine is started (files per
second, CPU per file). CPU is that of this process and all its descendants (reader processes; Ray's raylets, workers
and actors), the steadier measure on a machine shared with other jobs. Rows are compared with the built-in engine's
(same inputs, one row each, equal values). Writes ``benchmarks/results/edge-ray.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_edge import mixed_archive  # noqa: E402
from common import machine_info, report_header  # noqa: E402

from cardiacnets.bundle import default_bundle_path  # noqa: E402
from cardiacnets.edge.batch import run_batch, usable_cores  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
#: The small run of every engine: 10 synthetic subjects (s00000-s00009) of the archive.
SMALL = ("s0000?.*",)
BUILTIN = "built-in engine (defaults: 2 reader processes, 2 inference streams)"


class _TreeCpu:
    """CPU seconds used by this process and all its descendants (reader processes; Ray's raylets, workers and actors)
    while it runs: /proc sampled every 0.2 s, each process's last reading kept, so a process that exits costs at
    most one interval. On a machine shared with other jobs this is the steadier measure: wall time depends on how
    much of the cores the other jobs take, CPU time much less."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.base = sum(self._sample().values())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _sample() -> dict[int, float]:
        parents, cpu = {}, {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        mine, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in mine]
            mine.update(children)
            frontier += children
        return {pid: cpu[pid] for pid in mine if pid in cpu}

    def _run(self) -> None:
        while not self.stop.is_set():
            self.seen.update(self._sample())
            time.sleep(0.2)

    def total(self) -> float:
        """CPU seconds so far."""
        self.seen.update(self._sample())
        return sum(self.seen.values()) - self.base

    def seconds(self) -> float:
        """CPU seconds of the whole run; stops sampling."""
        self.stop.set()
        self.thread.join()
        return self.total()


class _RowClock:
    """Stands in for both engines' progress bar (``_progress``): records when the first rows reached the driver."""

    first: float | None = None

    def __init__(self, enabled: bool, total: int, label: str = "") -> None:
        return None

    def __enter__(self) -> Any:
        def advance(n: int) -> None:
            if _RowClock.first is None:
                _RowClock.first = time.perf_counter()

        return advance

    def __exit__(self, *exc: Any) -> None:
        return None


def _timed(run: Any) -> dict[str, Any]:
    """Run ``run()`` (an engine over an archive) with the row clock in place of the progress bar: its summary's counts,
    wall time, time to the first row, and CPU time of this process tree."""
    from cardiacnets.edge.batch import run as builtin_module
    from cardiacnets.edge.cluster import run as ray_module

    builtin_module._progress = ray_module._progress = _RowClock  # type: ignore[attr-defined]
    load = os.getloadavg()[0]
    _RowClock.first, cpu = None, _TreeCpu()
    started = time.perf_counter()
    summary = run()
    return {
        "rows": summary.processed,
        "ok": summary.ok,
        "qc_failed": summary.qc_failed,
        "error": summary.error,
        "seconds": round(summary.seconds, 2),
        "first_row_s": round((_RowClock.first or started) - started, 2),
        "cpu_s": round(cpu.seconds(), 2),
        "load_before": round(load, 2),
    }


def measure(engine: str, run: Any) -> dict[str, Any]:
    """``run(include)`` over the whole archive, then over its few :data:`SMALL` inputs: the difference is the cost of
    the files alone (marginal rate and CPU per file), the small run's time and CPU the start-up's."""
    small, whole = _timed(lambda: run(SMALL)), _timed(lambda: run(()))
    files = whole["rows"] - small["rows"]
    return {
        "engine": engine,
        **whole,
        "files_per_s": round(whole["rows"] / whole["seconds"], 2),
        "startup_s": small["seconds"],
        "startup_cpu_s": small["cpu_s"],
        "marginal_files_per_s": round(files / (whole["seconds"] - small["seconds"]), 2),
        "marginal_cpu_ms_per_file": round(1000 * (whole["cpu_s"] - small["cpu_s"]) / files, 1),
        "small_rows": small["rows"],
    }


def builtin_run(root: Path, out: Path, bundle: Path) -> Any:
    def run(include: tuple[str, ...]) -> Any:
        target = out.with_name(f"{out.stem}-small.parquet") if include else out
        return run_batch(root, target, bundle=bundle, progress=False, include=include)

    return run


def ray_run(root: Path, out: Path, bundle: Path, address: str | None) -> Any:
    from cardiacnets.edge.cluster import run_ray_batch

    def run(include: tuple[str, ...]) -> Any:
        target = out.with_name(f"{out.name}-small") if include else out
        return run_ray_batch(root, target, bundle=bundle, address=address, progress=False, include=include)

    return run


def same_rows(a: Path, b: Path) -> bool:
    """Same inputs, one row each, equal values (NaN equal to NaN)."""
    import pyarrow.parquet as pq

    left = {r["path"]: r for r in pq.read_table(a).to_pylist()}
    right = pq.read_table(b).to_pylist()
    if len(right) != len({r["path"] for r in right}) or left.keys() != {r["path"] for r in right}:
        return False

    def same(x: Any, y: Any) -> bool:
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return all(same(v, left[r["path"]][k]) for r in right for k, v in r.items())


def two_node_cluster() -> tuple[Any, float]:
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    half = max(1, usable_cores() // 2)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": half, "include_dashboard": False})
    cluster.add_node(num_cpus=max(1, usable_cores() - half))
    cluster.wait_for_nodes()
    return cluster, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument("--synthetic", type=int, default=600, help="synthetic subjects in the archive")
    args = parser.parse_args()
    runs, parity = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp) / "archive"
        kinds = mixed_archive(root, args.synthetic)
        reference = Path(tmp) / "builtin-1.parquet"
        runs.append(measure(BUILTIN, builtin_run(root, reference, args.bundle)))
        runs.append(
            measure("Ray, one node (started for each run)", ray_run(root, Path(tmp) / "ray-1", args.bundle, None))
        )
        parity["Ray, one node"] = same_rows(reference, Path(tmp) / "ray-1")
        cluster, cluster_start = two_node_cluster()
        try:
            label = "Ray, two nodes on this machine (cores split between them)"
            runs.append(measure(label, ray_run(root, Path(tmp) / "ray-2", args.bundle, cluster.address)))
        finally:
            cluster.shutdown()
        parity["Ray, two nodes"] = same_rows(reference, Path(tmp) / "ray-2")
        runs.append(measure(BUILTIN, builtin_run(root, Path(tmp) / "builtin-2.parquet", args.bundle)))
    builtin = [r for r in runs if r["engine"] == BUILTIN]
    best, best_marginal = max(r["files_per_s"] for r in builtin), max(r["marginal_files_per_s"] for r in builtin)
    least_cpu = min(r["marginal_cpu_ms_per_file"] for r in builtin)
    for run in runs:
        run["ratio_to_builtin"] = round(run["files_per_s"] / best, 3)
        run["marginal_ratio_to_builtin"] = round(run["marginal_files_per_s"] / best_marginal, 3)
        run["cpu_ratio_to_builtin"] = round(least_cpu / run["marginal_cpu_ms_per_file"], 3)
    result = {
        "command": "python benchmarks/bench_ray.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "usable_cores": str(usable_cores())},
        "bundle": str(args.bundle),
        "archive": kinds,
        "two_node_cluster_start_s": round(cluster_start, 2),
        "rows_equal_builtin": parity,
        "runs": runs,
        "load_after": round(os.getloadavg()[0], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edge-ray.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "edge-ray.md").write_text(report(result))
    print(report(result))


def report(result: dict[str, Any]) -> str:
    kinds = result["archive"]
    lines = report_header("`cnscreen batch`: Ray Data beside the built-in engine", result)
    lines += [
        f"- bundle: `{Path(result['bundle']).name}`; archive: {sum(kinds.values())} inputs ({kinds['corpus']} from the"
        f" conformance corpus, {kinds['synthetic']} synthetic subjects, {kinds['broken']} broken files)",
        "- each engine runs twice, in the order listed: over its small subset (10 synthetic subjects), then over the"
        " whole archive; the machine is shared with other jobs (1-min load average before each whole run in the table,"
        f" {result['load_after']} at the end), so wall times depend on what else ran: the CPU columns are the steadier"
        " measure",
        "",
        "| engine | whole archive: rows, wall time, files/s | start-up (small run: wall, CPU) | once started:"
        " files/s | once started: CPU per file | vs built-in: files/s end to end / once started | vs built-in: CPU per"
        " file (built-in's / this) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['engine']} | {r['rows']} ({r['ok']} ok, {r['qc_failed']} qc_failed, {r['error']} error),"
            f" {r['seconds']} s, {r['files_per_s']} | {r['startup_s']} s, {r['startup_cpu_s']} s |"
            f" {r['marginal_files_per_s']} | {r['marginal_cpu_ms_per_file']} ms | {r['ratio_to_builtin']} /"
            f" {r['marginal_ratio_to_builtin']} | {r['cpu_ratio_to_builtin']} | {r['load_before']} |"
        )
    parity = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["rows_equal_builtin"].items())
    lines += [
        "",
        f"- rows equal to the built-in engine's (same inputs, one row each, every value): {parity}",
        f"- starting the two-node cluster (not counted above): {result['two_node_cluster_start_s']} s",
        "- start-up: the small run, end to end (for Ray: its start or connection, workers and actors starting, ten"
        " files); 'once started': the whole run minus the small run (files, seconds, CPU), i.e. what each further file"
        " costs; 'vs built-in': divided by the better built-in run",
        "- CPU: CPU time of the benchmark process and all its descendants (reader processes; Ray's own processes,"
        " workers and actors), /proc sampled every 0.2 s; 'built-in's / this' is the throughput ratio to expect on an"
        " idle machine whose cores both engines keep busy",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
