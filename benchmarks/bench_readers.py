"""Benchmark: ``read_ecg`` throughput per format over the ECG conformance corpus (files/s, MB/s).

Run: ``.venv/bin/python benchmarks/bench_readers.py [--repeats 5] [--corpus PATH]``

Every file listed in the corpus's ``expected.json`` is read ``repeats`` times after one untimed warm-up read (imports,
caches); bytes count the file itself plus, for WFDB, its record's signal files. Writes
``benchmarks/results/readers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info, report_header  # noqa: E402
from cardiacnets.io import read_ecg  # noqa: E402


def _size(path: Path) -> int:
    if path.suffix.lower() == ".hea":
        return sum(
            p.stat().st_size
            for p in path.parent.glob(path.stem + ".*")
            if p.suffix.lower() in {".hea", ".dat", ".xyz", ".mat"}
        )
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("CNS_CONFORMANCE_DIR", REPO.parent / "shared" / "ecg-conformance")),
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    files = sorted(json.loads((args.corpus / "expected.json").read_text())["files"])
    per_format: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: {"files": 0, "reads": 0, "bytes": 0, "seconds": 0.0}
    )
    failures: dict[str, str] = {}
    for rel in files:
        path = args.corpus / rel
        try:
            fmt = read_ecg(path).meta.get("format_id", "?")
        except Exception as exc:  # noqa: BLE001 - a benchmark records failures instead of stopping
            failures[rel] = f"{type(exc).__name__}: {exc}"
            continue
        size = _size(path)
        start = time.perf_counter()
        for _ in range(args.repeats):
            read_ecg(path)
        elapsed = time.perf_counter() - start
        entry = per_format[fmt]
        entry["files"] += 1
        entry["reads"] += args.repeats
        entry["bytes"] += size * args.repeats
        entry["seconds"] += elapsed

    rows = {}
    for fmt, entry in sorted(per_format.items()):
        rows[fmt] = {
            "files": int(entry["files"]),
            "reads": int(entry["reads"]),
            "mb_read": round(entry["bytes"] / 1e6, 3),
            "seconds": round(entry["seconds"], 4),
            "files_per_s": round(entry["reads"] / entry["seconds"], 1),
            "mb_per_s": round(entry["bytes"] / 1e6 / entry["seconds"], 2),
            "ms_per_file": round(1000 * entry["seconds"] / entry["reads"], 2),
        }
    result = {
        "benchmark": "readers",
        "command": "python benchmarks/bench_readers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "corpus": str(args.corpus),
        "repeats": args.repeats,
        "per_format": rows,
        "failures": failures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "readers.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        *report_header("Reader throughput over the ECG conformance corpus", result),
        f"- each file read {args.repeats} times after one warm-up read; single process",
        "",
        "| format | files | reads | MB read | files/s | MB/s | ms/file |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, row in rows.items():
        md.append(
            f"| {fmt} | {row['files']} | {row['reads']} | {row['mb_read']} | {row['files_per_s']} | {row['mb_per_s']}"
            f" | {row['ms_per_file']} |"
        )
    if failures:
        md += ["", "Files that could not be read:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()]
    md.append("")
    (args.out / "readers.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
