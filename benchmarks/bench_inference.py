"""Inference benchmark (run on purpose, not a test): screening torch eager vs ORT FP32 vs ORT INT8 at batch 1/8/32 in
one run, FLOPs vs the measured matmul rate, and (optionally) diffusion sampling time per cine on the CPU.

    .venv/bin/python benchmarks/bench_inference.py                       # screening-ecg-tiny, all cores
    .venv/bin/python benchmarks/bench_inference.py --diffusion           # + DDIM-100 / DPM-Solver-20 per cine

Writes ``benchmarks/results/inference-<conditions>.json`` and ``.md``; the conditions (device, thread count, model)
are in the file name, the machine details and load average inside. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _markdown(report: dict[str, Any]) -> str:
    s = report["screening"]
    lines = [
        f"# Inference benchmark: {report['conditions_tag']}",
        "",
        f"Model `{s['model']}` ({s['parameters']:,} parameters), {s['conditions']['threads']} threads,"
        f" torch {s['conditions']['torch']}, onnxruntime {s['conditions']['onnxruntime']},"
        f" load average at start {s['conditions']['load_average_1min_at_start']}.",
        f"FLOPs per ECG: analytic ViT {s['flops_per_ecg']['analytic_vit'] / 1e9:.2f} GFLOP, torch flop counter"
        f" {s['flops_per_ecg']['profiled_model'] / 1e9:.2f} (it misses CPU SDPA attention); efficiency uses"
        f" {s['flops_per_ecg'].get('used', s['flops_per_ecg']['profiled_model']) / 1e9:.2f}. Measured FP32 matmul rate"
        f" {s['matmul_gflops']['gflops']:.1f} GFLOP/s ({s['matmul_gflops']['n']}^3).",
        "",
        "| batch | runtime | median ms | p90 ms | ECG/s | speed-up vs torch | GFLOP/s | efficiency vs matmul |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for batch, row in s["batches"].items():
        for name, r in row.items():
            lines.append(
                f"| {batch} | {name} | {r['latency_ms_median']:.1f} | {r['latency_ms_p90']:.1f} |"
                f" {r['throughput_ecg_per_s']:.1f} | {r['speedup_vs_torch']:.2f}x | {r['achieved_gflops']:.1f} |"
                f" {r['efficiency_vs_matmul']:.0%} |"
            )
    d = report.get("diffusion")
    if d:
        lines += ["", f"## Diffusion sampling per cine (CPU, random weights, CFG {d['guidance_scale']})", "",
                  f"Denoiser `{d['denoiser']['preset']}` ({d['denoiser']['parameters']:,} parameters), latents"
                  f" {d['denoiser']['latent_shape']}, cine {d['cine_shape']}, VAE `{d['vae_preset']}`.", "",
                  "| sampler | s per cine | ms per step |", "|---|---|---|"]  # fmt: skip
        for name, r in d["samplers"].items():
            lines.append(f"| {name} | {r['seconds_per_cine']:.2f} | {r['ms_per_step']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="screening-ecg-tiny")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--diffusion", action="store_true", help="also time DDIM-100 and DPM-Solver-20 per cine")
    parser.add_argument("--diffusion-preset", default="tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--tag", default="", help="extra text for the result file name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from cardiacnets.export.bench import bench_diffusion, bench_screening

    threads = args.threads or os.cpu_count() or 1
    screening = bench_screening(model_name=args.model, batches=[int(b) for b in args.batches.split(",")],
                                threads=threads, rounds=args.rounds)  # fmt: skip
    size = args.model.removeprefix("screening-ecg-")
    tag = f"cpu{threads}-screening-{size}" + (f"-diffusion-{args.diffusion_preset}" if args.diffusion else "")
    tag += f"-{args.tag}" if args.tag else ""
    report: dict[str, Any] = {"conditions_tag": tag, "screening": screening}
    if args.diffusion:
        report["diffusion"] = bench_diffusion(preset=args.diffusion_preset, frames=args.frames, size=args.size,
                                              threads=threads)  # fmt: skip
    b32 = screening["batches"].get("32")
    if b32:
        report["int8_faster_than_torch_at_batch_32"] = b32["ort_int8"]["speedup_vs_torch"] > 1.0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"inference-{tag}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"inference-{tag}.md").write_text(_markdown(report))
    sys.stdout.write(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
