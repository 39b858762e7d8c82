"""Build a throughput-only bundle: a registered screening model with random weights, exported and checked like any
bundle (FP32 graph plus its INT8 variant, which becomes the default when it keeps parity, as in the default bundle).

Run: ``.venv/bin/python benchmarks/make_throughput_bundle.py --model screening-ecg-small --out DIR``

For measuring how the edge pipeline behaves with a larger encoder than the CPU-scale default (``bench_edge.py
--bundle DIR``); its outputs mean nothing and its manifest says so. The variants' accuracy cost is measured on random
inputs labelled by the FP32 model's own ranking (a conversion check, not an accuracy figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch

    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.bundle_builder import build_bundle
    from cardiacnets.export.onnx_export import screening_feeds
    from cardiacnets.export.precision import EvalSplit
    from cardiacnets.models.registry import create_model, list_models, save_pretrained

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = [m for m in list_models() if m.startswith("screening-ecg-")]
    parser.add_argument("--model", default="screening-ecg-small", choices=choices)
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create (replaced if present)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = create_model(args.model).eval()
    description = f"random weights ({args.model}, seed {args.seed}): throughput benchmarks only, outputs mean nothing"
    feed = screening_feeds(64, np.random.default_rng(args.seed))
    with torch.no_grad():
        outputs = model.predict(*(torch.from_numpy(v) for v in feed.values()))
    out = dict(zip(SCREENING_OUTPUTS, outputs, strict=True))
    probability = out["disease_prob"].numpy()
    labels = (probability > np.median(probability, axis=0)).astype(np.float32)
    split = EvalSplit(feed["ecg"], feed["covariates"], feed["covariate_mask"], labels, out["phenotypes"].numpy(),
                      "random inputs labelled by the FP32 model's own ranking (a conversion check)")  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        save_pretrained(model, Path(work) / "model", metadata={"training_data": {"description": description}})
        manifest = build_bundle(Path(work) / "model", args.out, eval_split=split, variants=["int8"],
                                name=f"throughput-{args.model}", overwrite=True)  # fmt: skip
    spec = manifest["models"]["screening"]
    print(f"wrote {args.out}: default variant {spec['default_variant']} ({spec['default_variant_reason']})")


if __name__ == "__main__":
    main()
