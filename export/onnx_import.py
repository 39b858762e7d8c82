"""A torch ECG ViT rebuilt from an exported ONNX graph, every parameter read from the graph's own initialisers.

The default bundle ships the frozen aligned ECG encoder only as ``cine/ecg_encoder.onnx`` (``ecg (B, 12, 5000) ->
tokens (B, 600, D)``), its large weights stored as FP16 (:func:`~cardiacnets.export.precision.store_weights_fp16`).
:func:`ecg_vit_from_onnx` recovers the torch module from such a graph:

- named parameters (``encoder.blocks.0.norm1.weight``, ``encoder.pos_embed``, ...) are the graph values of that name,
  whether stored as they are or as ``<name>__fp16`` followed by ``Cast(to=FLOAT)``;
- the dynamo exporter stores the weights of ``nn.Linear`` layers as unnamed, transposed ``MatMul`` constants
  (``val_14``). Each is placed by the graph's structure, never by its position in the file: the ``MatMul``'s output
  feeds (directly or through ``Cast`` nodes) an ``Add`` whose other input is the named bias of one linear layer
  (``...attn.qkv.bias``), and the weight is that layer's ``weight``, transposed. (The exporters write linear layers
  on 3-D activations this way; a weight stored any other way, e.g. in a ``Gemm``, is left unfilled and refused);
- a parameter left unfilled, a value filled twice, a named value the module does not have, or a shape that disagrees
  raises :class:`~cardiacnets.errors.ExportError` naming it. Where the graph reshapes the QKV projection into heads,
  the head count is checked against the config too (it changes no weight shape).

FP16-stored weights are up-cast to FP32 exactly as the graph's ``Cast`` does, so the rebuilt module and onnxruntime
compute with the same values; :func:`token_parity` measures how closely they agree.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import ExportError, InputError

logger = logging.getLogger(__name__)

#: ONNX ops through which an initialiser's value passes unchanged (up to a dtype change) to the op that uses it.
_PASS_THROUGH = ("Cast", "Identity")

__all__ = ["ecg_vit_from_onnx", "graph_constants", "token_parity"]


def graph_constants(graph: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Values computable from initialisers alone (initialisers, ``Constant`` nodes, and ``Cast``/``Identity`` of
    those), by name, with the name each value was stored under (``x`` for ``Cast(x__fp16) -> x``: ``x__fp16``)."""
    from onnx import helper, numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    stored = {name: name for name in values}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                values[node.output[0]] = numpy_helper.to_array(attr.t)
                stored[node.output[0]] = node.output[0]
        elif node.op_type in _PASS_THROUGH and node.input and node.input[0] in values:
            source = values[node.input[0]]
            if node.op_type == "Cast":
                to = next(a.i for a in node.attribute if a.name == "to")
                source = source.astype(helper.tensor_dtype_to_np_dtype(to))
            values[node.output[0]] = source
            stored[node.output[0]] = stored[node.input[0]]
    return values, stored


def _prefix(values: dict[str, np.ndarray]) -> str:
    """The name prefix of the encoder's parameters (``encoder.`` when exported inside the tokens wrapper)."""
    found = sorted(name[: -len("pos_embed")] for name in values if name.endswith("pos_embed"))
    if len(found) != 1:
        raise ExportError(f"cannot locate the ECG ViT in the graph: {len(found)} values named '*pos_embed'")
    return found[0]


def _adds_after(name: str, consumers: dict[str, list[Any]]) -> list[tuple[Any, str]]:
    """``(Add node, the input that carries name)`` for every Add fed by ``name``, through Cast/Identity nodes."""
    found = []
    for node in consumers[name]:
        if node.op_type == "Add":
            found.append((node, name))
        elif node.op_type in _PASS_THROUGH:
            found += _adds_after(node.output[0], consumers)
    return found


def _linear_weights(graph: Any, values: dict[str, np.ndarray], prefix: str, keys: set[str]) -> dict[str, str]:
    """``{parameter key: graph value name}`` of every linear layer's weight, found by the graph's structure; the
    value is the weight transposed, ``(in, out)``, as ``MatMul`` takes it."""
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def bias_key(name: str) -> str | None:
        key = name[len(prefix) :] if name.startswith(prefix) else None
        return key if key in keys and key.endswith(".bias") else None

    found: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in values or node.input[0] in values:
            continue  # not a layer applied to activations (attention products, constant-folding leftovers)
        adds = _adds_after(node.output[0], consumers)
        biases = [bias_key(other) for add, carrier in adds for other in add.input if other != carrier]
        biases = [b for b in biases if b is not None]
        if len(biases) != 1:
            raise ExportError(
                f"{node.op_type} node {node.name or node.output[0]!r} multiplies by constant {node.input[1]!r} but is"
                f" followed by {len(biases)} named biases: cannot tell which layer's weight it is"
            )
        key = biases[0][: -len(".bias")] + ".weight"
        if key in found:
            raise ExportError(f"{key} is the weight of two nodes ({found[key]!r} and {node.input[1]!r})")
        found[key] = node.input[1]
    return found


def _check_heads(graph: Any, values: dict[str, np.ndarray], num_heads: int) -> int:
    """Compare ``num_heads`` with every ``Reshape (B, N, 3, heads, head_dim)`` after a QKV projection; the count
    checked (the head count shapes no weight, so a wrong one would pass every shape check)."""
    adds = {n.output[0] for n in graph.node if n.op_type == "Add" and any(i.endswith("attn.qkv.bias") for i in n.input)}
    checked = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] not in adds or node.input[1] not in values:
            continue
        shape = values[node.input[1]].reshape(-1)
        if shape.size == 5 and int(shape[2]) == 3:
            if int(shape[3]) != num_heads:
                raise ExportError(f"the graph splits QKV into {int(shape[3])} heads; the config has {num_heads}")
            checked += 1
    return checked


def ecg_vit_from_onnx(path: str | os.PathLike[str], config: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild an :class:`~cardiacnets.models.ecg_vit.EcgViT` of ``config`` (default: the registry's
    ``ecg-vit-tiny``) from an ONNX graph of its ``forward_tokens``; returns ``(module in eval mode, report)``.

    The report counts the parameters filled from named values and from the linear layers' unnamed weights, the ones
    stored as FP16, and the QKV head splits checked. Raises :class:`ExportError` when the graph and the module do not
    correspond exactly (see the module docstring).
    """
    import onnx
    import torch

    from cardiacnets.models.ecg_vit import EcgViT
    from cardiacnets.models.registry import model_config

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file")
    config = config if config is not None else model_config("ecg-vit-tiny")
    model = EcgViT(config).eval()
    state = model.state_dict()
    graph = onnx.load(str(path)).graph
    values, stored = graph_constants(graph)
    prefix = _prefix(values)
    keys = set(state)
    storage_copies = {source for name, source in stored.items() if source != name}  # x__fp16 of Cast(x__fp16) -> x
    sources = {name[len(prefix) :]: name for name in values if name.startswith(prefix) and name not in storage_copies}
    unknown = sorted(k for k in sources if k not in keys)
    named = {k: v for k, v in sources.items() if k in keys}
    linear = _linear_weights(graph, values, prefix, keys)
    twice = sorted(set(named) & set(linear))
    if unknown or twice:
        raise ExportError(f"graph values with no parameter: {unknown}; parameters found twice: {twice}")
    missing = sorted(keys - set(named) - set(linear))
    if missing:
        raise ExportError(f"{len(missing)} parameter(s) not found in {path.name}: {', '.join(missing[:6])}")
    filled: dict[str, torch.Tensor] = {}
    for key in sorted(keys):
        array = values[named[key]] if key in named else values[linear[key]].T
        if tuple(array.shape) != tuple(state[key].shape):
            expected = tuple(state[key].shape)
            raise ExportError(f"{key}: the graph's value has shape {tuple(array.shape)}, the module's {expected}")
        filled[key] = torch.from_numpy(np.array(array, dtype=np.float32, order="C"))  # a writable copy
    model.load_state_dict(filled, strict=True)
    fp16 = sum(stored[named[k] if k in named else linear[k]].endswith("__fp16") for k in keys)
    report = {
        "parameters": len(keys),
        "from_named_values": len(named),
        "from_linear_structure": len(linear),
        "stored_fp16": int(fp16),
        "qkv_head_splits_checked": _check_heads(graph, values, config.num_heads),
        "prefix": prefix,
    }
    logger.info("rebuilt %s from %s: %s", type(model).__name__, path.name, report)
    return model, report


def token_parity(encoder: Any, onnx_path: str | os.PathLike[str], ecgs: np.ndarray) -> dict[str, Any]:
    """``tokens`` of the ONNX graph (onnxruntime, CPU) against ``encoder.forward_tokens`` for each ECG of ``ecgs``
    ``(n, 12, 5000)`` run alone: the largest absolute difference, and the same relative to the tokens' largest
    magnitude, per ECG and overall."""
    import onnxruntime as ort
    import torch

    ecgs = np.asarray(ecgs, dtype=np.float32)
    if ecgs.ndim != 3 or ecgs.shape[0] == 0:
        raise InputError(f"ecgs must be (n, 12, 5000) with n >= 1, got {ecgs.shape}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    per_ecg = []
    with torch.no_grad():
        for ecg in ecgs:
            reference = session.run(["tokens"], {"ecg": ecg[None]})[0]  # (1, N, D)
            rebuilt = encoder.forward_tokens(torch.from_numpy(ecg[None])).numpy()
            max_abs = float(np.abs(rebuilt - reference).max())
            per_ecg.append({"max_abs": max_abs, "max_rel": max_abs / float(np.abs(reference).max())})
    return {
        "n": len(per_ecg),
        "max_abs": max(p["max_abs"] for p in per_ecg),
        "max_rel": max(p["max_rel"] for p in per_ecg),
        "per_ecg": per_ecg,
    }
