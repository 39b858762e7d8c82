"""Benchmark: SCP-ECG Huffman decoding, all leads at once (numpy) against code by code, side by side in one run.

Run: ``.venv/bin/python benchmarks/bench_scp_huffman.py [--repeats 10]``

Every Huffman-coded SCP-ECG file of the conformance corpus is read with :func:`cardiacnets.io.read_ecg` twice per
round, once with the reader's vectorised decoder and once with the code-by-code decoder it keeps as its reference
(patched in for the whole read), alternating so that machine noise hits both alike; the signals must be identical.
Writes ``benchmarks/results/scp-huffman.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cardiacnets.io import read_ecg, scp, scp_huffman  # noqa: E402

CORPUS = Path(os.environ.get("CNS_CONFORMANCE_DIR", REPO.parent / "shared" / "ecg-conformance"))


def _code_by_code(chunks: list[bytes], tables: list, n_max: int) -> list:
    return [scp_huffman.decode_loop(chunk, tables, n_max) for chunk in chunks]


def _huffman_coded(path: Path) -> bool:
    """True when reading ``path`` decodes at least one Huffman stream."""
    with mock.patch.object(scp, "decode_leads", wraps=scp.decode_leads) as spy:
        read_ecg(path)
    return spy.call_count > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    files = [p for p in sorted((CORPUS / "scp_ecg").glob("*.scp")) if _huffman_coded(p)]
    rows = []
    for path in files:
        times: dict[str, list[float]] = {"vectorised": [], "code by code": []}
        signals = {}
        for _ in range(args.repeats):
            for label in times:
                decoder = (
                    mock.patch.object(scp, "decode_leads", _code_by_code)
                    if label == "code by code"
                    else contextlib.nullcontext()
                )
                with decoder:
                    start = time.perf_counter()
                    record = read_ecg(path)
                    times[label].append(time.perf_counter() - start)
                signals[label] = record.signal
        identical = bool(np.array_equal(signals["vectorised"], signals["code by code"]))
        fast, slow = (statistics.median(times[k]) * 1000 for k in ("vectorised", "code by code"))
        rows.append(
            {
                "file": path.name,
                "leads_x_samples": list(record.signal.shape),
                "vectorised_ms": round(fast, 2),
                "code_by_code_ms": round(slow, 2),
                "speedup": round(slow / fast, 2),
                "identical_signals": identical,
            }
        )
    result = {
        "command": "python benchmarks/bench_scp_huffman.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}",
        "files": rows,
    }
    out = REPO / "benchmarks" / "results" / "scp-huffman"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# SCP-ECG Huffman decoding: all leads at once vs code by code",
        "",
        f"`{result['command']}` on {result['date']} ({result['machine']}): each Huffman-coded corpus file read"
        f" {args.repeats} times with each decoder, alternating; median ms per `read_ecg` (the whole read, not only the"
        " decoding).",
        "",
        "| file | signal | vectorised | code by code | speed-up | identical signals |",
        "|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['file']} | {r['leads_x_samples'][0]} x {r['leads_x_samples'][1]} | {r['vectorised_ms']} ms"
        f" | {r['code_by_code_ms']} ms | {r['speedup']}x | {'yes' if r['identical_signals'] else '**no**'} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
