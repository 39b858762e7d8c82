"""Precision variants of exported graphs and their measured accuracy cost.

* FP16 (GPUs, TensorRT strongly typed builds): :func:`convert_to_fp16`, written with ``onnx`` alone (no
  onnxconverter-common). Float tensors become float16, except: the graph's inputs and outputs (FP32 at the interface,
  cast inside), normalisations and softmax (:data:`FP32_OPS`; their FP16 variance/exponent overflows, export-notes.md
  4.4), the sinusoidal timestep embedding (Sin/Cos and every float node feeding them: ``t * freq`` with t up to 999 is
  off by up to 0.5 rad in FP16), inputs an op's schema requires as float32 (Resize ``scales``) and ops whose schema
  admits no float16 (Range). Casts are inserted wherever a producer's and consumer's dtypes differ, so explicit
  ``Cast(to=FLOAT)`` nodes in the graph are retargeted rather than breaking it (the onnxconverter-common failure that
  export-notes.md section 3 records).
* FP16 weight storage (compact bundles): :func:`store_weights_fp16` keeps FP32 compute but stores large weights as
  float16 with a ``Cast`` each, halving the file.
* INT8 (CPU screening): ``onnxruntime.quantization.quantize_dynamic`` with S8 weights on MatMul/Gemm only after
  ``quant_pre_process`` (export-notes.md 1.2). Its activation scales are computed over the whole batch, so one ECG's
  result depends on the others in its batch (:func:`batch_dependence`), and its accuracy depends on the CPU's
  integer kernels (VNNI or not); it is therefore never the default (benchmarks/results/precision-cpu.md).

:func:`accuracy_cost` measures a variant against FP32 on a labelled split (AUROC per disease, mean phenotype Pearson r)
and :func:`choose_default_variant` applies the rule: a variant costing more than :data:`MAX_AUROC_COST` AUROC on any
disease, or whose results depend on their batch, is not the default.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import ExportError, InputError

logger = logging.getLogger(__name__)

#: A variant whose AUROC drops by more than this on any disease (vs FP32, same split) is never the default.
MAX_AUROC_COST = 0.005
#: A variant whose disease probabilities for one ECG move by more than this with what shares its batch is never the
#: default (dynamic INT8 moves them by 1e-2; FP32 by 1e-7: benchmarks/results/precision-cpu.md).
MAX_BATCH_DEPENDENCE = 1e-4

#: Ops kept in FP32 in FP16 graphs: normalisations (x^2 overflows FP16 past |x| > 256) and softmax.
FP32_OPS = frozenset(
    {"LayerNormalization", "InstanceNormalization", "GroupNormalization", "BatchNormalization", "Softmax",
     "LogSoftmax", "ReduceMean", "ReduceSumSquare", "Pow", "Sqrt", "Reciprocal"}
)  # fmt: skip
#: Ops whose float inputs, and everything float upstream of them, stay FP32 (timestep embeddings).
FP32_UPSTREAM_OPS = frozenset({"Sin", "Cos"})
#: Ops that accept any input dtype (no cast is inserted before them).
_ANY_INPUT_OPS = frozenset({"Cast", "Shape", "Size", "Identity"})

_FLOAT = 1  # onnx.TensorProto.FLOAT
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


# --------------------------------------------------------------------------------------------------------- FP16
def convert_to_fp16(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, fp32_ops: frozenset[str] = FP32_OPS
) -> dict[str, int]:
    """Write an FP16 (mixed) copy of the FP32 graph ``src`` to ``dst``; inputs and outputs stay float32.

    Returns counts: ``{"fp16_nodes", "fp32_nodes", "casts", "fp16_initializers"}``. Raises :class:`ExportError` for
    graphs with subgraphs (If/Loop) or local functions, which this converter does not handle.
    """
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(src))
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise ExportError(f"{Path(src).name}: graphs with If/Loop subgraphs are not supported by the FP16 converter")
    conversion = _Fp16Conversion(model, fp32_ops)
    fp16_inits = conversion.convert_initializers()
    conversion.retype_nodes()
    n_casts = conversion.insert_casts()
    del graph.value_info[:]  # stale FP32 annotations would contradict the new types
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, shape_inference.InferenceError) as exc:
        raise ExportError(f"FP16 conversion of {Path(src).name} produced an invalid graph: {exc}") from None
    onnx.save(model, str(dst))
    counts = {
        "fp16_nodes": sum(1 for n in graph.node if id(n) not in conversion.blocked and n.op_type != "Cast"),
        "fp32_nodes": len(conversion.blocked),
        "casts": n_casts,
        "fp16_initializers": fp16_inits,
    }
    logger.info("FP16 graph %s: %s", dst, counts)
    return counts


class _Fp16Conversion:
    """One graph's FP16 conversion in three steps: which nodes stay FP32 (:attr:`blocked`), the dtype every float
    tensor is produced with (:meth:`convert_initializers`, :meth:`retype_nodes`), and casts wherever a producer's
    dtype differs from what a use needs (:meth:`insert_casts`)."""

    def __init__(self, model: Any, fp32_ops: frozenset[str]) -> None:
        from onnx import shape_inference

        self.model = model
        self.graph = graph = model.graph
        inferred = shape_inference.infer_shapes(model)
        self.elem: dict[str, int] = {}
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            self.elem[v.name] = v.type.tensor_type.elem_type
        for init in graph.initializer:
            self.elem[init.name] = init.data_type
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
        self.producers = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.produced: dict[str, int] = {}
        self.blocked = self._blocked_nodes(fp32_ops)

    def is_float(self, name: str) -> bool:
        return bool(name) and self.elem.get(name) == _FLOAT

    def schema_of(self, node: Any) -> Any:
        from onnx import defs

        if node.domain not in ("", "ai.onnx"):
            return None
        try:
            return defs.get_schema(node.op_type, self.opset, node.domain)
        except defs.SchemaError:
            return None

    def _blocked_nodes(self, fp32_ops: frozenset[str]) -> set[int]:
        """ids of the nodes computed in FP32: listed ops, ops without FP16 kernels, and everything float upstream of
        :data:`FP32_UPSTREAM_OPS`."""
        blocked: set[int] = set()
        for node in self.graph.node:
            schema = self.schema_of(node)
            if node.op_type in fp32_ops or schema is None:
                blocked.add(id(node))
                continue
            allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
            for i, name in enumerate([*node.input, *node.output]):
                if not self.is_float(name):
                    continue
                formal = schema.inputs if i < len(node.input) else schema.outputs
                j = i if i < len(node.input) else i - len(node.input)
                if not formal:
                    continue
                type_str = formal[min(j, len(formal) - 1)].type_str
                if type_str in allowed and "tensor(float16)" not in allowed[type_str]:
                    blocked.add(id(node))
        stack = [n for n in self.graph.node if n.op_type in FP32_UPSTREAM_OPS]
        while stack:
            node = stack.pop()
            if id(node) in blocked and node.op_type not in FP32_UPSTREAM_OPS:
                continue
            blocked.add(id(node))
            for name in node.input:
                if self.is_float(name) and name in self.producers:
                    stack.append(self.producers[name])
        return blocked

    def wanted(self, node: Any, index: int, name: str) -> int | None:
        """The dtype input ``index`` (``name``) of ``node`` needs, or None when it takes any."""
        if not self.is_float(name) or node.op_type in _ANY_INPUT_OPS:
            return None
        if id(node) in self.blocked:
            return _FLOAT
        schema = self.schema_of(node)
        if schema is not None and schema.inputs:
            type_str = schema.inputs[min(index, len(schema.inputs) - 1)].type_str
            if type_str == "tensor(float)":
                return _FLOAT
        return _FLOAT16

    def convert_initializers(self) -> int:
        """Store as FP16 every float initializer that some use wants in FP16; return how many."""
        from onnx import numpy_helper

        graph, produced = self.graph, self.produced
        fp16_inits = 0
        new_inits = []
        for init in graph.initializer:
            if init.data_type != _FLOAT:
                new_inits.append(init)
                continue
            uses = [
                self.wanted(n, list(n.input).index(init.name), init.name) for n in self.consumers.get(init.name, [])
            ]
            if uses and all(u == _FLOAT for u in uses):
                produced[init.name] = _FLOAT
                new_inits.append(init)
            else:
                array = numpy_helper.to_array(init)
                new_inits.append(numpy_helper.from_array(_to_half(array), init.name))
                produced[init.name] = _FLOAT16
                fp16_inits += 1
        del graph.initializer[:]
        graph.initializer.extend(new_inits)
        for name in {v.name for v in graph.input}:
            if self.is_float(name):
                produced[name] = _FLOAT
        return fp16_inits

    def retype_nodes(self) -> None:
        """FP16 nodes: casts to FLOAT retargeted, float constants halved; record each float output's dtype."""
        from onnx import numpy_helper

        for node in self.graph.node:
            fp16 = id(node) not in self.blocked
            if node.op_type == "Cast" and fp16:
                to = next(a for a in node.attribute if a.name == "to")
                if to.i == _FLOAT:
                    to.i = _FLOAT16
            if node.op_type in ("Constant", "ConstantOfShape") and fp16:
                for a in node.attribute:
                    if a.name == "value" and a.t.data_type == _FLOAT:
                        a.t.CopyFrom(numpy_helper.from_array(_to_half(numpy_helper.to_array(a.t)), a.t.name))
            for out in node.output:
                if self.is_float(out):
                    self.produced[out] = _FLOAT16 if fp16 else _FLOAT

    def insert_casts(self) -> int:
        """Rebuild the node list with a cast wherever a producer's dtype differs from what a use needs, and a final
        cast to FP32 for every FP16 graph output; return how many casts."""
        from onnx import helper

        graph, produced = self.graph, self.produced
        casts: dict[tuple[str, int], str] = {}
        new_nodes: list[Any] = []
        for node in graph.node:
            for i, name in enumerate(node.input):
                need = self.wanted(node, i, name)
                if need is not None and produced.get(name, need) != need:
                    key = (name, need)
                    if key not in casts:
                        out = f"{name}__to_{'fp16' if need == _FLOAT16 else 'fp32'}"
                        new_nodes.append(helper.make_node("Cast", [name], [out], to=need, name=f"cast_{out}"))
                        casts[key] = out
                    node.input[i] = casts[key]
            new_nodes.append(node)
        n_casts = len(casts)
        output_renames = {out.name: f"{out.name}__fp16" for out in graph.output
                          if self.is_float(out.name) and produced.get(out.name) == _FLOAT16}  # fmt: skip
        if output_renames:  # the producer writes X__fp16, a final cast restores the FP32 output name X
            for node in new_nodes:
                for i, name in enumerate(node.output):
                    if name in output_renames:
                        node.output[i] = output_renames[name]
                for i, name in enumerate(node.input):
                    if name in output_renames:
                        node.input[i] = output_renames[name]
            for name, tmp in output_renames.items():
                new_nodes.append(helper.make_node("Cast", [tmp], [name], to=_FLOAT, name=f"cast_out_{name}"))
                n_casts += 1
        del graph.node[:]
        graph.node.extend(new_nodes)
        return n_casts


def _to_half(array: np.ndarray) -> np.ndarray:
    """float32 -> float16, saturating at the FP16 range instead of overflowing to inf."""
    info = np.finfo(np.float16)
    return np.clip(array, info.min, info.max).astype(np.float16)


# ------------------------------------------------------------------------------------------- FP16 weight storage
def store_weights_fp16(path: str | os.PathLike[str], *, min_elements: int = 256) -> dict[str, Any]:
    """Rewrite an FP32 graph in place so that its large float32 weights are stored as float16, each followed by a
    ``Cast(to=FLOAT)``: the file shrinks by about half while every op still computes in FP32 (onnxruntime folds the
    casts into FP32 constants when it loads the graph, so run time is unchanged). The cost is the rounding of the
    weights to FP16 (relative 2**-11); callers check parity. Weights under ``min_elements`` or outside the FP16 range
    stay FP32. Returns counts and sizes for the manifest.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = Path(path)
    before = path.stat().st_size
    model = onnx.load(str(path))
    graph = model.graph
    limit = float(np.finfo(np.float16).max)
    keep, casts, converted = [], [], 0
    for init in graph.initializer:
        n = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type != _FLOAT or n < min_elements:
            keep.append(init)
            continue
        array = numpy_helper.to_array(init)
        if not np.isfinite(array).all() or float(np.abs(array).max()) > limit:
            keep.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=_FLOAT, name=f"{init.name}__to_fp32"))
        converted += 1
    if not converted:
        return {"weights_fp16": 0, "bytes_fp32": before, "bytes": before}
    names = {c.output[0] for c in casts}
    inputs = [i for i in graph.input if i.name not in names]  # IR < 4 lists initializers among the inputs
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *nodes])
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"storing the weights of {path.name} as FP16 broke the graph: {exc}") from None
    tmp = path.with_suffix(".fp16w.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    info = {"weights_fp16": converted, "bytes_fp32": before, "bytes": path.stat().st_size}
    logger.info("%s: %d weights stored as FP16 (%d -> %d bytes)", path.name, converted, before, info["bytes"])
    return info


# --------------------------------------------------------------------------------------------------------- INT8
def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Dynamic INT8 quantisation (S8 weights, MatMul/Gemm only) after ``quant_pre_process``. Weights use 7 bits
    (``reduce_range``): U8 x S8 products of full-range weights can saturate the 16-bit intermediate sums of CPUs
    without VNNI (onnxruntime's quantisation guide), which made the same graph inaccurate on some x86 hosts only."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - the pre-pass is an optimisation; quantise the raw graph instead
            logger.warning("quant_pre_process failed on %s (%s); quantising the graph as exported", src, exc)
            pre = Path(src)
        try:
            quantize_dynamic(
                str(pre),
                str(dst),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                reduce_range=True,
            )
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"INT8 quantisation of {Path(src).name} failed: {exc}") from None


# ------------------------------------------------------------------------------------------------ accuracy cost
@dataclass
class EvalSplit:
    """A labelled evaluation split in model-input form.

    ``ecg`` (n, 12, 5000) preprocessed to [-1, 1]; ``covariates``/``covariate_mask`` (n, 3); ``labels`` (n, 5) 0/1 in
    ``cardiacnets.targets.DISEASES`` order; ``phenotypes`` (n, 82) in original units; ``description`` says where it
    came from (e.g. "synthetic test split, 64 subjects, seed 0").
    """

    ecg: np.ndarray
    covariates: np.ndarray
    covariate_mask: np.ndarray
    labels: np.ndarray
    phenotypes: np.ndarray
    description: str

    def __post_init__(self) -> None:
        n = self.ecg.shape[0]
        if self.ecg.ndim != 3 or self.ecg.shape[1:] != (12, 5000):
            raise InputError(f"evaluation ECGs must be (n, 12, 5000), got {self.ecg.shape}")
        for name in ("covariates", "covariate_mask", "labels", "phenotypes"):
            if getattr(self, name).shape[0] != n:
                raise InputError(f"evaluation split: {name} has {getattr(self, name).shape[0]} rows, ECGs {n}")


def load_eval_split(
    source: str = "synthetic", *, split: str = "test", n_subjects: int = 400, seed: int = 0,
    preprocess: Mapping[str, Any] | None = None, max_items: int | None = None,
) -> EvalSplit:  # fmt: skip
    """Load a dataset split (``cardiacnets.datasets.open_dataset``) and preprocess its ECGs as the bundle will.

    ``source="synthetic"`` simulates the cohort of ``n_subjects`` with ``seed`` (balanced mode, so every disease has
    positives) and keeps its ``split``.
    """
    from cardiacnets.datasets import open_dataset
    from cardiacnets.preprocess import PreprocessConfig, preprocess_ecg

    kwargs: dict[str, Any] = {"mode": "balanced"} if source == "synthetic" else {}
    dataset = open_dataset(source, split, n_subjects=n_subjects, seed=seed,
                           modalities=["ecg", "phenotypes", "labels"], **kwargs)  # fmt: skip
    n = len(dataset) if max_items is None else min(len(dataset), max_items)
    if n < 4:
        raise InputError(f"{source} {split} split has {n} subjects; need at least 4 to measure AUROC")
    items = [dataset[i] for i in range(n)]
    config = PreprocessConfig.from_dict(dict(preprocess)) if preprocess else PreprocessConfig()
    raw = np.stack([np.asarray(it["ecg"], np.float32) for it in items])  # (n, 12, 5000) mV at 500 Hz
    ecg = np.asarray(preprocess_ecg(raw, 500.0, config), dtype=np.float32)
    return EvalSplit(
        ecg=ecg,
        covariates=np.stack([np.asarray(it["covariates"], np.float32) for it in items]),
        covariate_mask=np.stack([np.asarray(it["covariate_mask"], np.float32) for it in items]),
        labels=np.stack([np.asarray(it["labels"], np.float32) for it in items]),
        phenotypes=np.stack([np.asarray(it["phenotypes"], np.float32) for it in items]),
        description=f"{source} {split} split, {n} subjects, seed {seed}",
    )


def run_graph(path: str | os.PathLike[str], data: EvalSplit, *, batch: int = 32) -> dict[str, np.ndarray]:
    """Screening outputs of a graph on the whole split (onnxruntime CPU, in batches)."""
    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.onnx_export import ort_session

    session = ort_session(path)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in SCREENING_OUTPUTS}
    for i in range(0, data.ecg.shape[0], batch):
        feed = {"ecg": data.ecg[i : i + batch], "covariates": data.covariates[i : i + batch],
                "covariate_mask": data.covariate_mask[i : i + batch]}  # fmt: skip
        for name, value in zip(SCREENING_OUTPUTS, session.run(list(SCREENING_OUTPUTS), feed), strict=True):
            parts[name].append(value)
    return {k: np.concatenate(v) for k, v in parts.items()}


def screening_metrics(outputs: Mapping[str, np.ndarray], data: EvalSplit) -> dict[str, Any]:
    """AUROC per disease (None where the split lacks a class) and mean phenotype Pearson r (constant columns
    skipped)."""
    from cardiacnets.metrics import auroc, pearson_r
    from cardiacnets.targets import DISEASES

    aurocs: dict[str, float | None] = {}
    for k, disease in enumerate(DISEASES):
        y = data.labels[:, k]
        aurocs[disease] = float(auroc(y, outputs["disease_prob"][:, k])) if 0 < y.sum() < len(y) else None
    rs = []
    for j in range(data.phenotypes.shape[1]):
        truth, pred = data.phenotypes[:, j], outputs["phenotypes"][:, j]
        if np.ptp(truth) > 0 and np.ptp(pred) > 0 and np.isfinite(truth).all():
            rs.append(pearson_r(truth, pred))
    return {"auroc": aurocs, "mean_phenotype_r": float(np.mean(rs)) if rs else None}


def accuracy_cost(
    fp32_path: str | os.PathLike[str], variants: Mapping[str, str | os.PathLike[str]], data: EvalSplit
) -> dict[str, Any]:
    """Metrics of FP32 and of each variant on ``data`` and the variants' cost (FP32 minus variant; positive = worse).

    Returns ``{"split", "fp32": metrics, "variants": {name: {"metrics", "auroc_cost": {disease: d},
    "max_auroc_cost", "phenotype_r_cost", "max_abs_prob_diff"}}}``.
    """
    reference = run_graph(fp32_path, data)
    base = screening_metrics(reference, data)
    report: dict[str, Any] = {"split": data.description, "n": int(data.ecg.shape[0]), "fp32": base, "variants": {}}
    for name, path in variants.items():
        outputs = run_graph(path, data)
        metrics = screening_metrics(outputs, data)
        cost = {d: (base["auroc"][d] - metrics["auroc"][d]) if base["auroc"][d] is not None else None
                for d in base["auroc"]}  # fmt: skip
        valid = [c for c in cost.values() if c is not None]
        r_base, r_variant = base["mean_phenotype_r"], metrics["mean_phenotype_r"]
        r_cost = r_base - r_variant if r_base is not None and r_variant is not None else None
        report["variants"][name] = {
            "metrics": metrics,
            "auroc_cost": cost,
            "max_auroc_cost": max(valid) if valid else None,
            "phenotype_r_cost": r_cost,
            "max_abs_prob_diff": float(np.abs(outputs["disease_prob"] - reference["disease_prob"]).max()),
            "batch_dependence": batch_dependence(path),
        }
    report["fp32"]["batch_dependence"] = batch_dependence(fp32_path)
    return report


def batch_dependence(path: str | os.PathLike[str], *, records: int = 4, seed: int = 5) -> dict[str, float]:
    """How much one ECG's outputs move with what shares its batch: per output, the largest ``|batched - alone|``
    over ``records`` records, each run alone and then with random partners of larger amplitude in batches of 2 to
    8 (one onnxruntime thread, CPU)."""
    from cardiacnets.bundle import SCREENING_OUTPUTS
    from cardiacnets.export.onnx_export import ort_session, screening_feeds

    session = ort_session(path, threads=1)
    rng = np.random.default_rng(seed)
    names = list(SCREENING_OUTPUTS)
    worst = dict.fromkeys(names, 0.0)
    for _ in range(records):
        own = screening_feeds(1, rng)
        alone = session.run(names, own)
        for size in (2, 5, 8):
            partners = screening_feeds(size - 1, rng)
            partners["ecg"] = np.clip(partners["ecg"] * 3.0, -1.0, 1.0)  # louder than the record itself
            feed = {k: np.concatenate([own[k], partners[k]]) for k in own}
            for name, got, ref in zip(names, session.run(names, feed), alone, strict=True):
                worst[name] = max(worst[name], float(np.abs(got[0] - ref[0]).max()))
    return worst


def choose_default_variant(report: Mapping[str, Any], preference: Sequence[str] = ("int8",)) -> tuple[str, str]:
    """``(variant, reason)``: the first of ``preference`` whose measured AUROC cost is at most :data:`MAX_AUROC_COST`
    on every disease and whose disease probabilities move by at most :data:`MAX_BATCH_DEPENDENCE` with their batch,
    else ``"fp32"``. A variant with no measurable AUROC is never chosen."""
    for name in preference:
        entry = report.get("variants", {}).get(name)
        if entry is None:
            continue
        moved = (entry.get("batch_dependence") or {}).get("disease_prob")
        if moved is None or moved > MAX_BATCH_DEPENDENCE:
            logger.info("variant %s: results depend on the batch (%s); not the default", name, moved)
            continue
        cost = entry.get("max_auroc_cost")
        if cost is None:
            logger.info("variant %s: AUROC not measurable on %s; not the default", name, report.get("split"))
            continue
        if cost <= MAX_AUROC_COST:
            return name, f"{name}: max AUROC cost {cost:+.4f} <= {MAX_AUROC_COST} on {report.get('split')}"
        logger.info("variant %s costs %.4f AUROC (> %.3f): not the default", name, cost, MAX_AUROC_COST)
    return "fp32", f"no variant within {MAX_AUROC_COST} AUROC of FP32 on {report.get('split')}"


__all__ = [
    "FP32_OPS",
    "MAX_AUROC_COST",
    "MAX_BATCH_DEPENDENCE",
    "EvalSplit",
    "batch_dependence",
    "accuracy_cost",
    "choose_default_variant",
    "convert_to_fp16",
    "load_eval_split",
    "quantize_int8",
    "run_graph",
    "screening_metrics",
]
