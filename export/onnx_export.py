"""ONNX export of the CardiacNets models, each one verified: onnx checker, then onnxruntime vs torch parity.

Graphs (export-notes.md sections 0-2):

* screening: ``(ecg (B, 12, 5000), covariates (B, 3), covariate_mask (B, 3)) -> (disease_prob (B, 5),
  subtype_prob (B, 3), phenotypes (B, 82), embedding (B, D))`` (the contract in :mod:`cardiacnets.bundle`);
* ECG encoder (the diffusion condition): ``ecg (B, 12, 5000) -> tokens (B, N, D)``;
* ECG2CMR denoiser: ``(sample (B, C, F, h, w), timestep (B,) int64, ecg_tokens (B, N, D), drop_condition (B,) bool)
  -> noise_pred (B, C, F, h, w)``; ``drop_condition`` selects the learned null condition (classifier-free guidance
  runs the batch ``[latents, latents]`` with ``[True] * B + [False] * B``). F, h and w are fixed to the trained cine;
* VAE decoder: ``latents (N, C, h, w)`` (normalised, one frame each) ``-> frames (N, H, W)`` in [0, 1].

Only the batch axis is dynamic. The exporter is ``torch.onnx.export(dynamo=True, opset_version=18)`` (the lowest opset
the dynamo exporter implements natively; ORT, the ORT TensorRT EP and TensorRT 10/11 accept it); the legacy
TorchScript exporter is a fallback used only when the dynamo path raises, and the result records which one ran.
A graph that fails the checker or parity raises :class:`~cardiacnets.errors.ExportError`: a bare export is a failure.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import SCREENING_INPUTS, SCREENING_OUTPUTS
from cardiacnets.errors import ExportError, InputError

logger = logging.getLogger(__name__)

OPSET = 18
PARITY_BATCHES = (1, 3)
PARITY_SEED = 20240607
MAX_BATCH = 1024


@dataclass(frozen=True)
class Tolerance:
    """Parity bound ``|onnx - torch| <= atol + rtol * |torch| + range_rel * max|torch|`` elementwise.

    ``range_rel`` scales with the output's largest magnitude, for outputs whose units vary per column (phenotypes).
    """

    atol: float
    rtol: float = 0.0
    range_rel: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol, "range_rel": self.range_rel}


#: Screening graph vs torch (FP32). Probabilities are bounded in [0, 1]: an absolute bound. Phenotypes are in original
#: units (volumes in mL up to a few hundred): relative plus a small absolute floor for values near zero.
SCREENING_TOLERANCES: dict[str, Tolerance] = {
    "disease_prob": Tolerance(1e-4),
    "subtype_prob": Tolerance(1e-4),
    "phenotypes": Tolerance(1e-4, 1e-4),
    "embedding": Tolerance(1e-4, 1e-4),
}
ENCODER_TOLERANCES = {"tokens": Tolerance(1e-4, 1e-4)}
UNET_TOLERANCES = {"noise_pred": Tolerance(1e-4, 1e-4)}
VAE_TOLERANCES = {"frames": Tolerance(1e-4)}
#: The same graphs with their weights stored as FP16 (:func:`~cardiacnets.export.precision.store_weights_fp16`): the
#: weights' rounding (relative 2**-11) propagates through the layers; bounds measured on the demo models with margin.
ENCODER_TOLERANCES_FP16W = {"tokens": Tolerance(1e-2, 1e-2)}
UNET_TOLERANCES_FP16W = {"noise_pred": Tolerance(1e-2, 1e-2)}
VAE_TOLERANCES_FP16W = {"frames": Tolerance(5e-3)}


@dataclass
class ExportResult:
    """What an export produced and how it checked itself."""

    path: Path
    kind: str
    exporter: str
    opset: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    parity: dict[str, Any]
    export_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest_entry(self, rel: str) -> dict[str, Any]:
        """The model's entry in a bundle manifest (``file`` relative to the bundle root)."""
        return {
            "file": rel,
            "kind": self.kind,
            "exporter": self.exporter,
            "opset": self.opset,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "dynamic_axes": {"batch": {"min": 1, "max": MAX_BATCH}},
            "parity": self.parity,
            **self.extra,
        }


# --------------------------------------------------------------------------------------------------- primitives
def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the export extra installs torch
        raise ExportError(f"ONNX export needs torch ({exc}); install cardiacnets[train,export]") from None
    return torch


def _repeat_interleave_self_int(self: Any, repeats: Any, dim: Any = None, output_size: Any = None) -> Any:
    """Correct ``aten::repeat_interleave.self_int`` for onnxscript 0.7 (export-notes.md section 2.2).

    The stock translation puts the repeat factor on the wrong axis when ``repeats`` is symbolic; this one unsqueezes
    after ``dim``, expands there and folds it back, valid for symbolic and integer repeats alike.
    """
    from onnxscript import opset18 as op

    rank = len(self.shape)
    dim = 0 if dim is None else dim
    pos = (dim + rank) % rank
    unsq = op.Unsqueeze(self, op.Constant(value_ints=[pos + 1]))
    if isinstance(repeats, int):
        tile = op.Constant(value_ints=[1] * (pos + 1) + [repeats] + [1] * (rank - pos - 1))
    else:
        parts = [op.Constant(value_ints=[1] * (pos + 1)), op.Reshape(repeats, op.Constant(value_ints=[-1]))]
        if rank - pos - 1 > 0:
            parts.append(op.Constant(value_ints=[1] * (rank - pos - 1)))
        tile = op.Concat(*parts, axis=0)
    tiled = op.Expand(unsq, tile)
    shape_parts = [op.Shape(self, start=0, end=pos)] if pos > 0 else []
    shape_parts.append(op.Constant(value_ints=[-1]))
    if pos + 1 < rank:
        shape_parts.append(op.Shape(self, start=pos + 1))
    return op.Reshape(tiled, op.Concat(*shape_parts, axis=0))


def export_graph(
    module: Any,
    example_args: tuple[Any, ...],
    path: str | os.PathLike[str],
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    batch_inputs: Sequence[str],
    opset: int = OPSET,
    fix_repeat_interleave: bool = False,
    allow_legacy: bool = True,
) -> str:
    """Export ``module(*example_args)`` to one ONNX file (weights inside) with a dynamic ``batch`` axis 0 on
    ``batch_inputs``; return the exporter used (``"dynamo"`` or ``"legacy"``). Raises :class:`ExportError`."""
    torch = _require_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic_shapes = {name: ({0: batch} if name in batch_inputs else None) for name in input_names}
    kwargs: dict[str, Any] = {}
    if fix_repeat_interleave:
        kwargs["custom_translation_table"] = {torch.ops.aten.repeat_interleave.self_int: _repeat_interleave_self_int}
    dynamo_error: Exception | None = None
    try:
        with _quiet():
            torch.onnx.export(
                module, example_args, str(path), dynamo=True, opset_version=opset, external_data=False,
                input_names=list(input_names), output_names=list(output_names), dynamic_shapes=dynamic_shapes,
                verbose=False, **kwargs,
            )  # fmt: skip
        strip_debug_metadata(path)
        return "dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported or falls back
        dynamo_error = exc
        logger.warning("dynamo export of %s failed (%s: %s)", path.name, type(exc).__name__, str(exc)[:300])
    if not allow_legacy:
        raise ExportError(f"ONNX export of {path.name} failed: {type(dynamo_error).__name__}: {dynamo_error}")
    logger.warning("falling back to the legacy TorchScript exporter for %s (opset 17)", path.name)
    try:
        with _quiet():
            torch.onnx.export(
                module, example_args, str(path), dynamo=False, opset_version=17,
                input_names=list(input_names), output_names=list(output_names),
                dynamic_axes={name: {0: "batch"} for name in [*batch_inputs, *output_names]},
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"ONNX export of {path.name} failed with both exporters: dynamo: {dynamo_error}; legacy: {exc}"
        ) from None
    return "legacy"


def strip_debug_metadata(path: str | os.PathLike[str]) -> int:
    """Drop the exporter's per-node debug metadata (FX node text, class hierarchy, name scopes and Python stack traces
    with the build machine's file paths) and doc strings from a graph file, in place; return the bytes saved. It is
    about half of a small model's file and plays no part in execution, so the graph computes exactly as before."""
    import onnx

    path = Path(path)
    before = path.stat().st_size
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    model.graph.doc_string = ""
    tmp = path.with_suffix(".strip.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return before - path.stat().st_size


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the exporters' chatter (progress prints, deprecation and trace warnings); errors still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_logger = logging.getLogger("torch")
        level = torch_logger.level
        torch_logger.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            torch_logger.setLevel(level)


def check_graph(path: str | os.PathLike[str]) -> None:
    """Run ``onnx.checker`` (full check, with shape inference) on a file; raise :class:`ExportError` if it fails."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{Path(path).name} fails the ONNX checker: {str(exc).splitlines()[0]}") from None


def tensor_specs(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(inputs, outputs)`` of a graph as ``{"name", "dtype", "shape"}`` (symbolic dims as their names)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)

    def spec(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {"name": value.name, "dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type)), "shape": dims}

    return [spec(v) for v in model.graph.input], [spec(v) for v in model.graph.output]


def ort_session(path: str | os.PathLike[str], *, threads: int | None = None, providers: Sequence[str] | None = None
                ) -> Any:  # fmt: skip
    """An onnxruntime CPU session (or ``providers``), quiet logging."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load {Path(path).name}: {str(exc).splitlines()[0]}") from None


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tolerances: Mapping[str, Tolerance]
) -> dict[str, dict[str, Any]]:
    """Per output: max abs / max rel difference, the bound and whether it holds (NaN anywhere fails)."""
    report = {}
    for name, tol in tolerances.items():
        ref = np.asarray(reference[name], dtype=np.float64)
        got = np.asarray(candidate[name], dtype=np.float64)
        if ref.shape != got.shape:
            report[name] = {"ok": False, "reason": f"shape {got.shape} != {ref.shape}"}
            continue
        diff = np.abs(got - ref)
        finite = bool(np.isfinite(got).all() and np.isfinite(ref).all())
        bound = tol.atol + tol.rtol * np.abs(ref) + tol.range_rel * (float(np.abs(ref).max()) if ref.size else 0.0)
        ok = finite and bool(np.all(diff <= bound))
        rel = diff / np.maximum(np.abs(ref), 1e-6)
        report[name] = {
            "ok": ok,
            "max_abs": float(diff.max()) if diff.size else 0.0,
            "max_rel": float(rel.max()) if rel.size else 0.0,
            **tol.to_dict(),
        }
    return report


def parity_check(
    path: str | os.PathLike[str],
    reference_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    feeds: Sequence[dict[str, np.ndarray]],
    tolerances: Mapping[str, Tolerance],
    *,
    what: str = "torch",
) -> dict[str, Any]:
    """Run the graph on each feed set and compare with ``reference_fn`` (the torch module); raise :class:`ExportError`
    naming the worst output when any bound fails. Returns ``{"reference", "batches", "outputs": {name: worst}}``."""
    session = ort_session(path)
    names = list(tolerances)
    worst: dict[str, dict[str, Any]] = {}
    failures = []
    for feed in feeds:
        got = dict(zip(names, session.run(names, feed), strict=True))
        ref = reference_fn(feed)
        batch = int(next(iter(feed.values())).shape[0])
        for name, entry in compare_outputs(ref, got, tolerances).items():
            if not entry["ok"]:
                failures.append(f"{name} at batch {batch}: {entry.get('reason') or _describe(entry)}")
            best = worst.get(name)
            if best is None or entry.get("max_abs", np.inf) > best.get("max_abs", -1):
                worst[name] = entry
    if failures:
        raise ExportError(f"{Path(path).name} failed parity against {what}: " + "; ".join(failures[:4]))
    return {
        "reference": what,
        "batches": [int(next(iter(f.values())).shape[0]) for f in feeds],
        "outputs": {k: {kk: vv for kk, vv in v.items() if kk != "ok"} for k, v in worst.items()},
    }


def _describe(entry: Mapping[str, Any]) -> str:
    return (f"max |diff| {entry['max_abs']:.3g}, max rel {entry['max_rel']:.3g} exceeds atol {entry['atol']:g}"
            f" + rtol {entry['rtol']:g} + range_rel {entry['range_rel']:g}")  # fmt: skip


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy()


# --------------------------------------------------------------------------------------------------- screening
def screening_feeds(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Realistic fixed-seed screening inputs: ECG in [-1, 1], plausible covariates, one in four masked."""
    ecg = np.clip(rng.normal(0.0, 0.35, size=(batch, 12, 5000)), -1.0, 1.0).astype(np.float32)
    covariates = np.stack(
        [rng.integers(0, 2, batch), rng.uniform(30, 85, batch), rng.uniform(45, 110, batch)], axis=1
    ).astype(np.float32)
    mask = (rng.uniform(size=(batch, 3)) > 0.25).astype(np.float32)
    return {"ecg": ecg, "covariates": covariates, "covariate_mask": mask}


def export_screening(model: Any, path: str | os.PathLike[str], *, batches: Sequence[int] = PARITY_BATCHES,
                     opset: int = OPSET) -> ExportResult:  # fmt: skip
    """Export an ECG-input :class:`~cardiacnets.models.screening.ScreeningModel` through its export wrapper, then
    check it (checker, ORT vs ``model.predict`` at each batch in ``batches``, fixed seed)."""
    torch = _require_torch()
    from cardiacnets.models.screening import ScreeningExportWrapper, ScreeningModel

    if not isinstance(model, ScreeningModel):
        raise InputError(f"expected a ScreeningModel, got {type(model).__name__}")
    # A mean-pooled encoder also exports its exact per-(lead, patch) evidence (the optional ``saliency`` output).
    with_saliency = model.config.input == "ecg" and model.config.ecg.pool == "mean"
    wrapper = ScreeningExportWrapper(model, with_saliency=with_saliency).eval()
    output_names = (*SCREENING_OUTPUTS, "saliency") if with_saliency else SCREENING_OUTPUTS
    rng = np.random.default_rng(PARITY_SEED)
    example = screening_feeds(2, rng)
    start = time.perf_counter()
    exporter = export_graph(
        wrapper, tuple(torch.from_numpy(example[n]) for n in SCREENING_INPUTS), path,
        input_names=SCREENING_INPUTS, output_names=output_names, batch_inputs=SCREENING_INPUTS, opset=opset,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    check_graph(path)

    @torch.no_grad()
    def reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = wrapper(*(torch.from_numpy(feed[n]) for n in SCREENING_INPUTS))
        return {name: _to_numpy(t) for name, t in zip(output_names, out, strict=True)}

    tolerances = {**SCREENING_TOLERANCES, "saliency": Tolerance(1e-4, 1e-4)} if with_saliency else SCREENING_TOLERANCES
    parity = parity_check(path, reference, [screening_feeds(b, rng) for b in batches], tolerances)
    inputs, outputs = tensor_specs(path)
    logger.info("exported screening graph %s (%s, %.1f s), parity ok", path, exporter, seconds)
    return ExportResult(Path(path), "screening", exporter, opset, inputs, outputs, parity, seconds)


# --------------------------------------------------------------------------------------------------- ECG encoder
def _tokens_wrapper(encoder: Any) -> Any:
    """``ecg (B, 12, 5000) -> tokens (B, N, D)`` around any encoder with ``forward_tokens``."""
    torch = _require_torch()

    class TokensWrapper(torch.nn.Module):
        def __init__(self, enc: Any) -> None:
            super().__init__()
            self.encoder = enc

        def forward(self, ecg: Any) -> Any:
            return self.encoder.forward_tokens(ecg)

    return TokensWrapper(encoder).eval()


def export_ecg_encoder(encoder: Any, path: str | os.PathLike[str], *, batches: Sequence[int] = PARITY_BATCHES,
                       opset: int = OPSET, weights_fp16: bool = False) -> ExportResult:  # fmt: skip
    """Export the conditional ECG encoder ``ecg (B, 12, 5000) -> tokens (B, N, D)`` and check it (with its weights
    stored as FP16 first when ``weights_fp16``)."""
    torch = _require_torch()
    if not hasattr(encoder, "forward_tokens"):
        raise InputError(f"{type(encoder).__name__} has no forward_tokens: not an ECG encoder")
    wrapper = _tokens_wrapper(encoder.eval())
    rng = np.random.default_rng(PARITY_SEED + 1)
    example = screening_feeds(2, rng)["ecg"]
    start = time.perf_counter()
    exporter = export_graph(wrapper, (torch.from_numpy(example),), path, input_names=["ecg"], output_names=["tokens"],
                            batch_inputs=["ecg"], opset=opset)  # fmt: skip
    seconds = time.perf_counter() - start
    check_graph(path)
    extra = _maybe_store_fp16(path, weights_fp16)

    @torch.no_grad()
    def reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"tokens": _to_numpy(wrapper(torch.from_numpy(feed["ecg"])))}

    feeds = [{"ecg": screening_feeds(b, rng)["ecg"]} for b in batches]
    parity = parity_check(path, reference, feeds, ENCODER_TOLERANCES_FP16W if weights_fp16 else ENCODER_TOLERANCES)
    inputs, outputs = tensor_specs(path)
    return ExportResult(Path(path), "ecg_encoder", exporter, opset, inputs, outputs, parity, seconds, extra)


def _maybe_store_fp16(path: str | os.PathLike[str], weights_fp16: bool) -> dict[str, Any]:
    """Store the graph's weights as FP16 when asked; the manifest's ``weights_storage`` entry (empty otherwise)."""
    if not weights_fp16:
        return {}
    from cardiacnets.export.precision import store_weights_fp16

    return {"weights_storage": {"dtype": "float16", "compute": "float32", **store_weights_fp16(path)}}


# --------------------------------------------------------------------------------------------------- diffusion
def _unet_wrapper(denoiser: Any) -> Any:
    torch = _require_torch()

    class UNetWrapper(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, sample: Any, timestep: Any, ecg_tokens: Any, drop_condition: Any) -> Any:
            return self.model(sample, timestep, ecg_tokens=ecg_tokens, drop_condition=drop_condition)

    return UNetWrapper(denoiser).eval()


def unet_feeds(denoiser: Any, batch: int, n_tokens: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fixed-seed denoiser inputs; half the batch (rounded down) uses the null condition."""
    c, f, h, w = denoiser.config.latent_shape
    return {
        "sample": rng.standard_normal((batch, c, f, h, w)).astype(np.float32),
        "timestep": rng.integers(0, 1000, size=batch).astype(np.int64),
        "ecg_tokens": (rng.standard_normal((batch, n_tokens, denoiser.config.condition_dim)) * 0.5).astype(np.float32),
        "drop_condition": (np.arange(batch) < batch // 2),
    }


def export_unet(denoiser: Any, path: str | os.PathLike[str], *, n_tokens: int, batches: Sequence[int] = PARITY_BATCHES,
                opset: int = OPSET, weights_fp16: bool = False) -> ExportResult:  # fmt: skip
    """Export an :class:`~cardiacnets.diffusion.unet.EcgConditionedUNet3D` with fixed frames/size and dynamic batch.

    ``n_tokens`` is the ECG encoder's token count N (fixed in the graph). The ``repeat_interleave`` translation is
    replaced (export-notes.md 2.2) and parity is checked at batch sizes other than the export example's.
    """
    torch = _require_torch()
    wrapper = _unet_wrapper(denoiser.eval())
    rng = np.random.default_rng(PARITY_SEED + 2)
    names = ["sample", "timestep", "ecg_tokens", "drop_condition"]
    example = unet_feeds(denoiser, 2, n_tokens, rng)
    start = time.perf_counter()
    exporter = export_graph(
        wrapper,
        tuple(torch.from_numpy(example[n]) for n in names),
        path,
        input_names=names,
        output_names=["noise_pred"],
        batch_inputs=names,
        opset=opset,
        fix_repeat_interleave=True,
    )
    seconds = time.perf_counter() - start
    check_graph(path)
    storage = _maybe_store_fp16(path, weights_fp16)

    @torch.no_grad()
    def reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"noise_pred": _to_numpy(wrapper(*(torch.from_numpy(feed[n]) for n in names)))}

    feeds = [unet_feeds(denoiser, b, n_tokens, rng) for b in batches]
    parity = parity_check(path, reference, feeds, UNET_TOLERANCES_FP16W if weights_fp16 else UNET_TOLERANCES)
    inputs, outputs = tensor_specs(path)
    c, f, h, w = denoiser.config.latent_shape
    extra = {"latent_shape": [c, f, h, w], "view": denoiser.config.view, "timestep_dtype": "int64", **storage}
    return ExportResult(Path(path), "unet", exporter, opset, inputs, outputs, parity, seconds, extra)


def _vae_decoder_wrapper(vae: Any) -> Any:
    torch = _require_torch()
    from cardiacnets.diffusion.vae import _shift

    class VaeDecoderWrapper(torch.nn.Module):
        """Normalised latents (N, C, h, w) -> frames (N, H, W) in [0, 1], as ``decode_latents`` does per frame."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.vae = model
            self.scale = float(model.config.scaling_factor)
            self.shift = _shift(model)

        def forward(self, latents: Any) -> Any:
            z = latents / self.scale + self.shift
            x = self.vae.decode(z, return_dict=False)[0].mean(dim=1)  # (N, H, W)
            return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    return VaeDecoderWrapper(vae).eval()


def export_vae_decoder(vae: Any, path: str | os.PathLike[str], *, latent_hw: tuple[int, int],
                       batches: Sequence[int] = PARITY_BATCHES, opset: int = OPSET,
                       weights_fp16: bool = False) -> ExportResult:  # fmt: skip
    """Export the frame decoder ``latents (N, C, h, w) -> frames (N, H, W)`` (N = frames x cines, dynamic)."""
    torch = _require_torch()
    wrapper = _vae_decoder_wrapper(vae.eval())
    c = int(vae.config.latent_channels)
    rng = np.random.default_rng(PARITY_SEED + 3)

    def feed(n: int) -> dict[str, np.ndarray]:
        return {"latents": rng.standard_normal((n, c, *latent_hw)).astype(np.float32)}

    start = time.perf_counter()
    exporter = export_graph(wrapper, (torch.from_numpy(feed(2)["latents"]),), path, input_names=["latents"],
                            output_names=["frames"], batch_inputs=["latents"], opset=opset)  # fmt: skip
    seconds = time.perf_counter() - start
    check_graph(path)
    storage = _maybe_store_fp16(path, weights_fp16)

    @torch.no_grad()
    def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"frames": _to_numpy(wrapper(torch.from_numpy(f["latents"])))}

    tolerances = VAE_TOLERANCES_FP16W if weights_fp16 else VAE_TOLERANCES
    parity = parity_check(path, reference, [feed(b) for b in batches], tolerances)
    inputs, outputs = tensor_specs(path)
    extra = {"scaling_factor": wrapper.scale, "shift_factor": wrapper.shift, **storage}
    return ExportResult(Path(path), "vae_decoder", exporter, opset, inputs, outputs, parity, seconds, extra)


def export_pipeline(pipeline: Any, out_dir: str | os.PathLike[str], *, opset: int = OPSET) -> dict[str, ExportResult]:
    """Export an :class:`~cardiacnets.diffusion.pipeline.EcgToCmrPipeline` (ECG encoder, denoiser, VAE decoder) into
    ``out_dir`` as ``ecg_encoder.onnx``, ``unet_<view>.onnx`` and ``vae_decoder.onnx``; each one checked."""
    torch = _require_torch()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = _tokens_wrapper(pipeline.ecg_encoder)
    with torch.no_grad():
        n_tokens = int(encoder(torch.zeros(1, 12, 5000)).shape[1])
    view = pipeline.config.view
    c, f, h, w = pipeline.config.latent_shape
    return {
        "ecg_encoder": export_ecg_encoder(pipeline.ecg_encoder, out / "ecg_encoder.onnx", opset=opset),
        f"unet_{view}": export_unet(pipeline.denoiser, out / f"unet_{view}.onnx", n_tokens=n_tokens, opset=opset),
        "vae_decoder": export_vae_decoder(pipeline.vae, out / "vae_decoder.onnx", latent_hw=(h, w), opset=opset),
    }


__all__ = [
    "ENCODER_TOLERANCES",
    "OPSET",
    "SCREENING_TOLERANCES",
    "ExportResult",
    "Tolerance",
    "check_graph",
    "compare_outputs",
    "export_ecg_encoder",
    "export_graph",
    "export_pipeline",
    "export_screening",
    "export_unet",
    "export_vae_decoder",
    "ort_session",
    "parity_check",
    "screening_feeds",
    "tensor_specs",
]
