"""Benchmark: which CPU precision may a bundle screen with? Accuracy cost, batch dependence and speed, side by side.

Run: ``.venv/bin/python benchmarks/bench_precision.py [--bundle DIR] [--subjects 1536] [--seed 0]``

Candidates, all built from the bundle's FP32 screening graph in this run:

* ``fp32``: the graph as exported;
* ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` (S8 weights, MatMul/Gemm), activation scales
  computed per tensor over the whole batch at run time;
* ``int8-static-qdq``: ``quantize_static`` in QDQ format, per-channel S8 weights, U8 activations with fixed scales
  calibrated (min-max) on 128 training-split ECGs; and the same with ``reduce_range`` (7-bit weights, the recipe for
  CPUs without VNNI).

For each: AUROC per disease and mean phenotype Pearson r on the synthetic test split of the training cohort (subjects
and splits are pure functions of the seed), the cost against FP32; the batch dependence (largest change of a record's
outputs when it shares a batch of 2-8 with other test ECGs, vs alone); and ECG/s on one onnxruntime thread at batch 1
and 2 (the edge's CPU configuration: one thread per inference stream). Writes ``benchmarks/results/precision-cpu.json``
and ``.md``. Results are on SYNTHETIC data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info, report_header  # noqa: E402
from cardiacnets.bundle import SCREENING_OUTPUTS, default_bundle_path  # noqa: E402

INPUTS = ("ecg", "covariates", "covariate_mask")


def split_feeds(split: str, n_subjects: int, seed: int, preprocess: dict, limit: int | None = None) -> dict:
    """Model inputs, labels and phenotypes of a synthetic cohort split, preprocessed as the bundle does."""
    from cardiacnets.datasets.splits import SPLITS, hash_splits
    from cardiacnets.datasets.synthetic import synthetic_batch
    from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg

    config = PreprocessConfig.from_dict(preprocess)
    idx = np.arange(n_subjects)
    idx = idx[hash_splits(idx, seed) == SPLITS.index(split)][:limit]
    parts: dict[str, list] = {k: [] for k in (*INPUTS, "labels", "phenotypes")}
    for start in range(0, idx.size, 128):
        batch = synthetic_batch(idx[start : start + 128], seed, with_cines=False, mode="balanced")
        parts["ecg"].append(preprocess_ecg(batch["ecg"], 500.0, config, batch["covariates"][:, 2]).astype(np.float32))
        parts["covariates"].append(batch["covariates"])
        parts["covariate_mask"].append(batch["covariate_mask"].astype(np.float32))
        parts["labels"].append(batch["labels"])
        parts["phenotypes"].append(batch["phenotypes"])
    return {k: np.concatenate(v) for k, v in parts.items()}


def build_candidates(fp32: Path, train: dict, work: Path) -> dict[str, Path]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from cardiacnets.export.precision import quantize_int8

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict | None:
            if self.start >= min(128, train["ecg"].shape[0]):
                return None
            rows = slice(self.start, self.start + 8)
            self.start += 8
            return {k: train[k][rows] for k in INPUTS}

    pre = work / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    out = {"fp32": fp32, "int8-dynamic": work / "int8-dynamic.onnx"}
    quantize_int8(fp32, out["int8-dynamic"])
    for name, reduce_range in (("int8-static-qdq", False), ("int8-static-qdq-7bit", True)):
        out[name] = work / f"{name}.onnx"
        quantize_static(str(pre), str(out[name]), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=reduce_range, op_types_to_quantize=["MatMul", "Gemm"],
                        calibrate_method=CalibrationMethod.MinMax)  # fmt: skip
    return out


def session(path: Path, threads: int = 1):  # noqa: ANN201 - onnxruntime's type
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(sess, data: dict, batch: int = 1) -> dict[str, np.ndarray]:  # noqa: ANN001
    names = list(SCREENING_OUTPUTS)
    parts: dict[str, list] = {n: [] for n in names}
    for i in range(0, data["ecg"].shape[0], batch):
        for n, v in zip(names, sess.run(names, {k: data[k][i : i + batch] for k in INPUTS}), strict=True):
            parts[n].append(v)
    return {n: np.concatenate(v) for n, v in parts.items()}


def metrics(outputs: dict, data: dict) -> dict:
    from cardiacnets.metrics import auroc, pearson_r
    from cardiacnets.targets import DISEASES

    aurocs = {d: float(auroc(data["labels"][:, k], outputs["disease_prob"][:, k])) for k, d in enumerate(DISEASES)}
    rs = [pearson_r(data["phenotypes"][:, j], outputs["phenotypes"][:, j]) for j in range(82)]
    return {"auroc": aurocs, "mean_phenotype_r": float(np.mean(rs))}


def batch_dependence(sess, data: dict, records: int = 16, seed: int = 0) -> dict[str, float]:  # noqa: ANN001
    names = list(SCREENING_OUTPUTS)
    rng = np.random.default_rng(seed)
    worst = dict.fromkeys(names, 0.0)
    for i in range(records):
        alone = sess.run(names, {k: data[k][i : i + 1] for k in INPUTS})
        for size in (2, 4, 8):
            idx = np.concatenate([[i], rng.choice(data["ecg"].shape[0], size - 1)])
            for n, got, ref in zip(names, sess.run(names, {k: data[k][idx] for k in INPUTS}), alone, strict=True):
                worst[n] = max(worst[n], float(np.abs(got[0] - ref[0]).max()))
    return worst


def throughput(sess, data: dict, batch: int, seconds: float) -> float:  # noqa: ANN001
    names = list(SCREENING_OUTPUTS)
    feed = {k: data[k][:batch] for k in INPUTS}
    for _ in range(3):
        sess.run(names, feed)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sess.run(names, feed)
        count += batch
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument("--subjects", type=int, default=1536, help="synthetic training cohort size (seed --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per configuration")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    fp32 = args.bundle / manifest["models"]["screening"]["file"]
    test = split_feeds("test", args.subjects, args.seed, manifest["preprocess"])
    train = split_feeds("train", args.subjects, args.seed, manifest["preprocess"], limit=128)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        candidates = build_candidates(fp32, train, Path(tmp))
        for name, path in candidates.items():
            sess = session(path)
            entry = metrics(run_all(sess, test), test)
            entry["batch_dependence"] = batch_dependence(sess, test)
            entry["ecg_per_s_1_thread"] = {f"batch {b}": round(throughput(sess, test, b, args.seconds), 1)
                                           for b in (1, 2)}  # fmt: skip
            results[name] = entry
            print(name, json.dumps(entry), flush=True)
    base = results["fp32"]
    for entry in results.values():
        entry["auroc_cost"] = {d: base["auroc"][d] - v for d, v in entry["auroc"].items()}
        entry["max_auroc_cost"] = max(entry["auroc_cost"].values())
        entry["speed_vs_fp32_batch_1"] = entry["ecg_per_s_1_thread"]["batch 1"] / base["ecg_per_s_1_thread"]["batch 1"]
    command = "python benchmarks/bench_precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    split = f"synthetic test split of {args.subjects} subjects, seed {args.seed}: {test['ecg'].shape[0]} subjects"
    report = {
        "command": command.strip(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "bundle": manifest.get("name"),
        "split": split,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision-cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        *report_header(
            "CPU precision of the screening graph: accuracy, batch dependence, speed (synthetic data)", report
        ),
        f"- bundle: {report['bundle']}; evaluation: {report['split']}",
        "- batch dependence: largest |output(with 1-7 other test ECGs) - output(alone)| over 16 records",
        f"- speed: ECG/s on one onnxruntime thread, {args.seconds:g}-s windows, all candidates in this one run",
        "",
        "| graph | max AUROC cost | mean r | batch dependence: probabilities | phenotypes | ECG/s batch 1 |"
        " ECG/s batch 2 | speed vs FP32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        dep = e["batch_dependence"]
        lines.append(f"| {name} | {e['max_auroc_cost']:+.4f} | {e['mean_phenotype_r']:.4f} |"
                     f" {dep['disease_prob']:.2g} | {dep['phenotypes']:.2g} | {e['ecg_per_s_1_thread']['batch 1']} |"
                     f" {e['ecg_per_s_1_thread']['batch 2']} | {e['speed_vs_fp32_batch_1']:.2f}x |")  # fmt: skip
    lines += ["", "AUROC per disease:", "", "| graph | " + " | ".join(base["auroc"]) + " |",
              "|---|" + "---|" * len(base["auroc"])]  # fmt: skip
    for name, e in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in e["auroc"].values()) + " |")
    (args.out / "precision-cpu.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'precision-cpu.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
