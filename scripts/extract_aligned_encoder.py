"""Recover the default bundle's aligned ECG encoder as a torch checkpoint (``cntrain finetune --init default``).

python scripts/extract_aligned_encoder.py [--bundle DIR] [--out cardiacnets/data/aligned-ecg-encoder]
                                          [--corpus ../shared/ecg-conformance] [--atol 1e-4]

The training runs that built the default bundle are not kept; its ``cine/ecg_encoder.onnx`` is the ECG2CMR
generator's condition encoder, which is the frozen aligned ECG encoder of the demo recipe's alignment run
(``scripts/demo_model.sh``: ``cntrain diffusion --ecg-encoder $RUN/align``). The script rebuilds the torch ECG ViT
from that graph (:func:`cardiacnets.export.onnx_import.ecg_vit_from_onnx`: every parameter from the graph, the
unnamed linear weights placed by structure), checks its tokens against onnxruntime on every readable file of the ECG
conformance corpus (preprocessed as the bundle preprocesses), refuses to write anything when they differ by more
than ``--atol``, and writes ``config.json`` + ``model.safetensors`` (the FP16-stored weights kept as FP16: exact)
and a ``manifest.json`` with their sha256 and the provenance. Deterministic: the same bundle gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from cardiacnets.bundle import default_bundle_path, load_bundle
from cardiacnets.errors import CardiacNetsError
from cardiacnets.export.onnx_import import ecg_vit_from_onnx, token_parity
from cardiacnets.io import read_ecg
from cardiacnets.models.registry import save_pretrained
from cardiacnets.models.shipped import aligned_encoder_path, write_checkpoint_manifest
from cardiacnets.preprocess import PreprocessConfig, preprocess_record

REPO = Path(__file__).resolve().parents[1]
ENCODER_MODEL = "cine_ecg_encoder"
#: The demo recipe's alignment stage (scripts/demo_model.sh), which trained the weights this script recovers.
RECIPE = (
    "scripts/demo_model.sh: cntrain align --model tiny on a balanced synthetic pretraining cohort of 8192 subjects "
    "(seed 100), 800 steps, batch 32, lr 5e-4, bf16, ECG augmentation, frozen CMR towers of cntrain cmr-ssl --model "
    "tiny (400 steps on the 1536-subject cohort, seed 0); then frozen as the ECG2CMR condition encoder"
)


def corpus_inputs(corpus: Path, config: PreprocessConfig) -> tuple[np.ndarray, list[str]]:
    """Preprocessed model inputs ``(n, 12, 5000)`` of every corpus file the readers accept, and their names."""
    expected = json.loads((corpus / "expected.json").read_text())
    ecgs, names = [], []
    for rel in sorted(expected["files"]):
        try:
            ecg, _ = preprocess_record(read_ecg(corpus / rel), config)
        except CardiacNetsError as exc:
            logging.info("skipped %s: %s", rel, exc)
            continue
        ecgs.append(ecg)
        names.append(rel)
    if not ecgs:
        raise SystemExit(f"no readable ECG in {corpus}")
    return np.stack(ecgs).astype(np.float32), names


def extract(bundle_dir: Path, out: Path, corpus: Path, atol: float) -> dict:
    bundle = load_bundle(bundle_dir, check_hashes=True)
    rel = bundle.model(ENCODER_MODEL)["file"]
    onnx_path = bundle.path(rel)
    encoder, report = ecg_vit_from_onnx(onnx_path)
    preprocess = PreprocessConfig.from_dict(bundle.preprocess) if bundle.preprocess else PreprocessConfig()
    ecgs, names = corpus_inputs(corpus, preprocess)
    parity = token_parity(encoder, onnx_path, ecgs)
    parity_record = {"inputs": "ECG conformance corpus, preprocessed", "files": names, "atol": atol,
                     "max_abs": parity["max_abs"], "max_rel": parity["max_rel"]}  # fmt: skip
    if not parity["max_abs"] <= atol:
        raise SystemExit(f"parity failed: max |torch - onnxruntime| = {parity['max_abs']:.3g} > {atol:g}")
    identity = {k: bundle.identity[k] for k in ("name", "version", "digest")}
    source = {
        "bundle": identity,
        "file": rel,
        "file_sha256": bundle.manifest["files"][rel]["sha256"],
        "weights_storage": "the graph stored its large weights as float16 (FP32 compute); kept as float16 here",
        "recipe": RECIPE,
    }
    metadata = {
        "stage": "align",
        "description": "frozen aligned ECG encoder of the default bundle (ECG tower only; no projection head)",
        "source": source,
        "rebuild": report,
        "parity": parity_record,
        "preprocess": preprocess.to_dict(),
        "training_data": {
            "description": "balanced synthetic pretraining cohort (8192 subjects, seed 100)",
            "synthetic": True,
            "clinical_use": "not for clinical use",
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # a failed write never leaves half a checkpoint
        staged = Path(tmp) / out.name
        save_pretrained(encoder, staged, metadata, fp16_exact=True)
        manifest = write_checkpoint_manifest(staged, source)
        for path in staged.iterdir():
            path.chmod(0o644)  # package data: readable by everyone once installed
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return {"out": str(out), "digest": manifest["digest"], "rebuild": report, "parity": parity_record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle_path())
    parser.add_argument("--out", type=Path, default=aligned_encoder_path())
    corpus = os.environ.get("CNS_CONFORMANCE_DIR") or REPO.parent / "shared" / "ecg-conformance"
    parser.add_argument("--corpus", type=Path, default=Path(corpus))
    parser.add_argument("--atol", type=float, default=1e-4, help="largest |torch - onnxruntime| token difference")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = extract(args.bundle, args.out, args.corpus, args.atol)
    except CardiacNetsError as exc:
        raise SystemExit(str(exc)) from None
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
