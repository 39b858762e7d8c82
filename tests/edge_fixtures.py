"""A tiny screening bundle built with the onnx helper API (no torch), for testing the edge runtime's plumbing.

The graph honours the screening contract of :mod:`cardiacnets.bundle`; its outputs are simple deterministic functions
of the input (per-lead means through fixed weights) so tests can check them against numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiacnets.bundle import write_manifest
from cardiacnets.preprocess import PreprocessConfig

RNG = np.random.default_rng(1234)
W_DISEASE = RNG.normal(size=(12, 5)).astype(np.float32) * 4
W_COV = RNG.normal(size=(3, 5)).astype(np.float32) * 0.01
W_SUBTYPE = RNG.normal(size=(12, 3)).astype(np.float32)
W_PHENO = RNG.normal(size=(12, 82)).astype(np.float32)
B_PHENO = np.linspace(5, 200, 82).astype(np.float32)


def reference_outputs(ecg: np.ndarray, cov: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """What the tiny graph computes, in numpy: ``ecg`` (B, 12, 5000), ``cov``/``mask`` (B, 3)."""
    feat = ecg.mean(axis=-1)
    logits = feat @ W_DISEASE + (cov * mask) @ W_COV
    sub = feat @ W_SUBTYPE
    sub = np.exp(sub - sub.max(-1, keepdims=True))
    return {
        "disease_prob": 1 / (1 + np.exp(-logits)),
        "subtype_prob": sub / sub.sum(-1, keepdims=True),
        "phenotypes": feat @ W_PHENO + B_PHENO,
        "embedding": feat,
    }


def make_tiny_screening_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [
            (W_DISEASE, "w_d"),
            (W_COV, "w_c"),
            (W_SUBTYPE, "w_s"),
            (W_PHENO, "w_p"),
            (B_PHENO, "b_p"),
            (np.array([-1], dtype=np.int64), "axes"),
        ]
    ]
    nodes = [
        helper.make_node("ReduceMean", ["ecg", "axes"], ["feat"], keepdims=0),
        helper.make_node("MatMul", ["feat", "w_d"], ["ld"]),
        helper.make_node("Mul", ["covariates", "covariate_mask"], ["cm"]),
        helper.make_node("MatMul", ["cm", "w_c"], ["lc"]),
        helper.make_node("Add", ["ld", "lc"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["disease_prob"]),
        helper.make_node("MatMul", ["feat", "w_s"], ["ls"]),
        helper.make_node("Softmax", ["ls"], ["subtype_prob"], axis=-1),
        helper.make_node("MatMul", ["feat", "w_p"], ["lp"]),
        helper.make_node("Add", ["lp", "b_p"], ["phenotypes"]),
        helper.make_node("Identity", ["feat"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_screening",
        [
            helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 12, 5000]),
            helper.make_tensor_value_info("covariates", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("covariate_mask", TensorProto.FLOAT, ["batch", 3]),
        ],
        [
            helper.make_tensor_value_info("disease_prob", TensorProto.FLOAT, ["batch", 5]),
            helper.make_tensor_value_info("subtype_prob", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("phenotypes", TensorProto.FLOAT, ["batch", 82]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 12]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_tiny_bundle(root: Path, *, synthetic: bool = True, lead_sets: list[str] | None = None) -> Path:
    """A bundle of the tiny random screening graph; ``lead_sets`` declares its lead sets (cardiacnets.leadsets)."""
    root.mkdir(parents=True, exist_ok=True)
    make_tiny_screening_onnx(root / "screening.onnx")
    write_manifest(
        root,
        {
            **({"lead_sets": list(lead_sets)} if lead_sets else {}),
            "name": "tiny-test-bundle",
            "version": "0.0.0",
            "models": {"screening": {"file": "screening.onnx"}},
            "preprocess": PreprocessConfig().to_dict(),
            "thresholds": {
                d: {"youden": 0.5, "high_specificity": 0.8, "default": "youden"}
                for d in ("CAD", "PH", "PC", "CM", "HF")
            },
            "training_data": {"description": "test graph, fixed random weights", "synthetic": synthetic},
        },
    )
    return root
