"""Export layer: verified ONNX graphs, precision variants, bundles (round trip, tampering, edge consumption), TensorRT
guard rails. Tiny random-weight models on CPU; TensorRT tests are in the gpu tier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from cardiacnets.bundle import SCREENING_INPUTS, SCREENING_OUTPUTS, load_bundle  # noqa: E402
from cardiacnets.errors import BundleIntegrityError, ExportError, InputError  # noqa: E402
from cardiacnets.export import onnx_export, precision  # noqa: E402
from cardiacnets.export.cli import main as cnexport  # noqa: E402
from cardiacnets.targets import DISEASES  # noqa: E402

TINY = {"embed_dim": 32, "depth": 1, "num_heads": 2}


def _tiny_screening(seed: int = 0):
    from cardiacnets.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model("screening-ecg-tiny", ecg=TINY).eval()
    with torch.no_grad():  # FiLM is the identity at init: give it weights so the covariate path is exercised
        model.film.proj.weight.normal_(0, 0.2)
        model.disease_head.weight.mul_(8.0)  # spread the probabilities away from 0.5
    model.set_phenotype_scaler(torch.linspace(1, 150, 82), torch.linspace(0.5, 30, 82))
    return model


def _predict(model, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model.predict(*(torch.from_numpy(feed[k]) for k in SCREENING_INPUTS))
    return {k: v.numpy() for k, v in zip(SCREENING_OUTPUTS, out, strict=True)}


@pytest.fixture(scope="module")
def model():
    return _tiny_screening()


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("graphs")
    result = onnx_export.export_screening(model, root / "screening.onnx")
    precision.quantize_int8(root / "screening.onnx", root / "screening.int8.onnx")
    counts = precision.convert_to_fp16(root / "screening.onnx", root / "screening.fp16.onnx")
    return {"fp32": root / "screening.onnx", "int8": root / "screening.int8.onnx", "fp16": root / "screening.fp16.onnx",
            "result": result, "fp16_counts": counts}  # fmt: skip


@pytest.fixture(scope="module")
def split(model) -> precision.EvalSplit:
    """Random ECGs labelled by the FP32 model's own ranking (AUROC 1.0 for FP32), so a variant's AUROC cost measures
    exactly how much it reorders subjects."""
    rng = np.random.default_rng(3)
    feed = onnx_export.screening_feeds(64, rng)
    out = _predict(model, feed)
    labels = (out["disease_prob"] > np.median(out["disease_prob"], axis=0)).astype(np.float32)
    phenotypes = out["phenotypes"] + rng.normal(0, 1, size=out["phenotypes"].shape).astype(np.float32)
    return precision.EvalSplit(feed["ecg"], feed["covariates"], feed["covariate_mask"], labels, phenotypes,
                               "random inputs labelled by the fp32 model")  # fmt: skip


@pytest.fixture(scope="module")
def bundle_dir(model, split, tmp_path_factory) -> Path:
    from cardiacnets.export.bundle_builder import build_bundle
    from cardiacnets.models.registry import save_pretrained
    from cardiacnets.preprocess import PreprocessConfig

    root = tmp_path_factory.mktemp("bundle")
    thresholds = {d: {"youden": 0.3 + 0.1 * i, "high_specificity": 0.9, "default": "youden"}
                  for i, d in enumerate(DISEASES)}  # fmt: skip
    preprocess = {"kind": "full", "config": PreprocessConfig(savgol_window=17).to_dict()}
    training = {"description": "synthetic cohort, 64 subjects", "synthetic": True}
    metadata = {"thresholds": thresholds, "preprocess": preprocess, "training_data": training,
                "lead_sets": ["12", "limb6", "I+II", "I"]}  # fmt: skip
    save_pretrained(model, root / "run" / "best", metadata=metadata)
    build_bundle(root / "run", root / "bundle", eval_split=split, name="tiny-export-test")
    return root / "bundle"


# ------------------------------------------------------------------------------------------------- ONNX export
def test_screening_graph_contract_and_parity(model, graphs) -> None:
    result = graphs["result"]
    onnx.checker.check_model(str(graphs["fp32"]), full_check=True)
    assert [i["name"] for i in result.inputs] == list(SCREENING_INPUTS)
    # a mean-pooled encoder also exports its exact per-(lead, patch) evidence
    assert [o["name"] for o in result.outputs] == [*SCREENING_OUTPUTS, "saliency"]
    assert result.outputs[4]["shape"] == ["batch", 5, 12, 50]
    # only the batch axis is dynamic
    assert [i["shape"] for i in result.inputs] == [["batch", 12, 5000], ["batch", 3], ["batch", 3]]
    assert result.outputs[2]["shape"] == ["batch", 82]
    assert result.parity["batches"] == [1, 3]
    # independent check at a batch size the exporter never saw
    feed = onnx_export.screening_feeds(5, np.random.default_rng(99))
    names = [*SCREENING_OUTPUTS, "saliency"]
    got = dict(zip(names, onnx_export.ort_session(graphs["fp32"]).run(names, feed), strict=True))
    ref = _predict(model, feed)
    with torch.no_grad():
        contrib = model.token_contributions(*(torch.from_numpy(feed[n]) for n in SCREENING_INPUTS)).numpy()
    np.testing.assert_allclose(got["saliency"], contrib, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["disease_prob"], ref["disease_prob"], atol=1e-4)
    np.testing.assert_allclose(got["phenotypes"], ref["phenotypes"], rtol=1e-4, atol=1e-3)
    assert np.ptp(ref["phenotypes"]) > 10  # original units, not standardised
    # the covariate mask reaches the graph: masking every covariate changes the output
    masked = dict(feed, covariate_mask=np.zeros_like(feed["covariate_mask"]))
    assert not np.allclose(onnx_export.ort_session(graphs["fp32"]).run(["disease_prob"], masked)[0],
                           got["disease_prob"], atol=1e-4)  # fmt: skip


def test_parity_failure_raises_export_error(graphs) -> None:
    other = _tiny_screening(seed=1)  # a different model: the graph must not pass as its export
    feeds = [onnx_export.screening_feeds(2, np.random.default_rng(0))]
    with pytest.raises(ExportError, match="failed parity"):
        onnx_export.parity_check(graphs["fp32"], lambda f: _predict(other, f), feeds, onnx_export.SCREENING_TOLERANCES)


def test_ecg_encoder_export_matches_forward_tokens(model, tmp_path) -> None:
    result = onnx_export.export_ecg_encoder(model.encoder, tmp_path / "enc.onnx")
    assert result.outputs[0]["shape"] == ["batch", 600, 32]
    ecg = onnx_export.screening_feeds(2, np.random.default_rng(1))["ecg"]
    got = onnx_export.ort_session(tmp_path / "enc.onnx").run(["tokens"], {"ecg": ecg})[0]
    with torch.no_grad():
        ref = model.encoder.forward_tokens(torch.from_numpy(ecg)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_export_rejects_non_screening_model(tmp_path) -> None:
    with pytest.raises(InputError):
        onnx_export.export_screening(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


# ------------------------------------------------------------------------------------------ precision variants
def test_int8_and_fp16_variants_stay_close(graphs) -> None:
    feed = onnx_export.screening_feeds(4, np.random.default_rng(7))
    ref = onnx_export.ort_session(graphs["fp32"]).run(None, feed)
    for name, bound in (("int8", 0.05), ("fp16", 0.01)):
        got = onnx_export.ort_session(graphs[name]).run(None, feed)
        assert all(g.dtype == np.float32 for g in got)  # FP32 interface kept
        assert np.abs(got[0] - ref[0]).max() < bound, name
        assert np.abs(got[0] - ref[0]).max() > 0, f"{name} graph is identical to fp32: not converted"
    # the weights shrink (the files of these tiny graphs are mostly graph structure, so compare the weights)
    size = {k: _weight_bytes(graphs[k]) for k in ("fp32", "int8", "fp16")}
    assert size["int8"] < 0.7 * size["fp32"] and size["fp16"] < 0.6 * size["fp32"], size  # int8: MatMul/Gemm only
    int8_weights = [i for i in onnx.load(str(graphs["int8"])).graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert sum(np.prod(i.dims) for i in int8_weights) > 0.3 * size["fp32"] / 4  # a real share of the weights is INT8


def _weight_bytes(path: Path) -> int:
    return sum(onnx.numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def test_fp16_graph_keeps_norms_and_softmax_in_fp32(graphs) -> None:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(graphs["fp16"])))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    kept = [n for n in model.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert kept and all(types[n.input[0]] == onnx.TensorProto.FLOAT for n in kept)
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert matmuls and all(types[n.input[0]] == onnx.TensorProto.FLOAT16 for n in matmuls)
    assert graphs["fp16_counts"]["fp16_initializers"] > 0


def test_fp16_converter_retargets_explicit_casts_and_keeps_sinusoids_fp32(tmp_path) -> None:
    """The diffusers pattern ``Cast(to=FLOAT)`` + ``sin(t * freq)`` broke onnxconverter-common (export-notes 3)."""
    from onnx import TensorProto, helper, numpy_helper

    freq = numpy_helper.from_array(np.array([1.0, 0.37, 0.011], np.float32), "freq")
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["tf", "freq"], ["arg"]), helper.make_node("Sin", ["arg"], ["s"]),
             helper.make_node("Cast", ["s"], ["s32"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["s32", "w"], ["h"]), helper.make_node("Add", ["h", "x"], ["y"])]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("t", TensorProto.INT64, ["b", 1]),
                                           helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])], [freq, w])  # fmt: skip
    src = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(src))
    precision.convert_to_fp16(src, tmp_path / "g16.onnx")
    feed = {"t": np.array([[999], [517]], np.int64), "x": np.ones((2, 3), np.float32)}
    ref = onnx_export.ort_session(src).run(None, feed)[0]
    got = onnx_export.ort_session(tmp_path / "g16.onnx").run(None, feed)[0]
    # sin(999 * 1.0) in FP16 would be off by ~0.5; kept FP32 the error is the MatMul's FP16 rounding only
    np.testing.assert_allclose(got, ref, atol=5e-3)


def test_accuracy_cost_and_default_rule(graphs, split) -> None:
    report = precision.accuracy_cost(graphs["fp32"], {"int8": graphs["int8"], "fp16": graphs["fp16"]}, split)
    assert all(v == pytest.approx(1.0) for v in report["fp32"]["auroc"].values())  # labels come from fp32's ranking
    for name in ("int8", "fp16"):
        cost = report["variants"][name]
        assert 0.0 <= cost["max_auroc_cost"] < 0.05
        assert abs(cost["phenotype_r_cost"]) < 0.05
    # Dynamic INT8 scales its activations over the batch: its results move with the batch, FP32's and FP16's do not.
    assert report["variants"]["int8"]["batch_dependence"]["disease_prob"] > precision.MAX_BATCH_DEPENDENCE
    assert report["fp32"]["batch_dependence"]["disease_prob"] <= precision.MAX_BATCH_DEPENDENCE
    independent = {"disease_prob": 0.0}
    fake = {"split": "s", "variants": {"int8": {"max_auroc_cost": 0.0051, "batch_dependence": independent}}}
    assert precision.choose_default_variant(fake)[0] == "fp32"
    fake["variants"]["int8"]["max_auroc_cost"] = 0.0049
    assert precision.choose_default_variant(fake)[0] == "int8"
    fake["variants"]["int8"]["batch_dependence"] = {"disease_prob": 0.01}  # accurate but batch-dependent
    assert precision.choose_default_variant(fake)[0] == "fp32"
    fake["variants"]["int8"]["batch_dependence"] = independent
    fake["variants"]["int8"]["max_auroc_cost"] = None
    assert precision.choose_default_variant(fake)[0] == "fp32"


# -------------------------------------------------------------------------------------------------- bundles
def test_bundle_manifest_contents(bundle_dir) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"screening.onnx", "screening.int8.onnx", "screening.fp16.onnx"}
    spec = manifest["models"]["screening"]
    assert spec["default_variant"] == "fp32"  # the INT8 variant's results depend on the batch: never the default
    moved = spec["variants"]["int8"]["accuracy_cost"]["batch_dependence"]["disease_prob"]
    assert moved > precision.MAX_BATCH_DEPENDENCE
    assert manifest["digest"] and manifest["bundle_format_version"] == 2
    assert manifest["thresholds"]["PH"]["youden"] == pytest.approx(0.4)
    assert manifest["preprocess"]["savgol_window"] == 17  # the model's PreprocessConfig, not the default
    assert manifest["training_data"]["synthetic"] is True
    assert manifest["training_data"]["clinical_use"] == "not for clinical use"
    assert manifest["lead_sets"] == ["12", "limb6", "I+II", "I"]  # a lead-masked model's sets, from its metadata
    assert len(manifest["labels"]["phenotypes"]) == 82 and manifest["labels"]["phenotypes"][0]["unit"]
    assert {"torch", "onnx", "onnxruntime", "cardiacnets"} <= set(manifest["tools"])
    assert spec["parity"]["outputs"]["disease_prob"]["max_abs"] < 1e-4


def test_bundle_verify_and_edge_screener_match_torch(bundle_dir, model, capsys) -> None:
    from cardiacnets.edge.screen import Screener

    with pytest.raises(SystemExit) as exit_info:
        cnexport(["verify", str(bundle_dir)])
    assert exit_info.value.code in (0, None)
    assert "ok" in capsys.readouterr().out
    feed = onnx_export.screening_feeds(3, np.random.default_rng(21))
    ref = _predict(model, feed)
    for variant, atol in (("fp32", 1e-4), ("int8", 0.05), ("fp16", 0.01), (None, 0.05)):
        screener = Screener(bundle_dir, device="cpu", variant=variant)
        out = screener.infer(feed["ecg"], feed["covariates"], feed["covariate_mask"])
        np.testing.assert_allclose(out["disease_prob"], ref["disease_prob"], atol=atol)
        np.testing.assert_allclose(out["subtype_prob"], ref["subtype_prob"], atol=atol)
    assert screener.preprocess_config.savgol_window == 17


def test_tampered_bundle_fails_verify(bundle_dir, tmp_path, capsys) -> None:
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(bundle_dir, copy)
    data = bytearray((copy / "screening.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "screening.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exit_info:
        cnexport(["verify", str(copy)])
    assert exit_info.value.code == 5  # the bundle failed verification
    assert "screening.int8.onnx: sha256 does not match" in capsys.readouterr().err
    with pytest.raises(BundleIntegrityError):
        load_bundle(copy)


def test_bundle_refuses_non_empty_out_and_bad_model_dir(bundle_dir, tmp_path) -> None:
    from cardiacnets.errors import CheckpointError
    from cardiacnets.export.bundle_builder import build_bundle

    with pytest.raises(InputError, match="not empty"):
        build_bundle(bundle_dir, bundle_dir)
    with pytest.raises(CheckpointError):
        build_bundle(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out.partial").exists()


# -------------------------------------------------------------------------------------------------- TensorRT
def _have_trt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_have_trt(), reason="this machine has TensorRT and a GPU")
def test_cnexport_trt_without_tensorrt_is_one_line_exit_1(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from cardiacnets.export.cli import main; main()", "trt",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TensorRT" in lines[0] and "missing" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_engine_cache_key_depends_on_every_component() -> None:
    from cardiacnets.execution import batch_profile
    from cardiacnets.export.trt import engine_cache_key

    profile = batch_profile([{"name": "ecg", "shape": ["batch", 12, 5000]}], 1, 8, 32)
    base = {"graph_sha256": "ab" * 32, "gpu": "NVIDIA H100 sm9.0", "trt_version": "10.16.1", "optimization_level": 3,
            "workspace_bytes": 4 << 30, "profile": profile}  # fmt: skip
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base)
    variants = [{"trt_version": "11.4.0"}, {"gpu": "NVIDIA L4 sm8.9"}, {"graph_sha256": "cd" * 32},
                {"optimization_level": 5}, {"workspace_bytes": 8 << 30}, {"profile": {}}]  # fmt: skip
    assert len({key, *(engine_cache_key(**{**base, **v}) for v in variants)}) == 1 + len(variants)


def test_ort_gpu_provider_missing_is_typed_error(graphs) -> None:
    import onnxruntime as ort

    from cardiacnets.export.trt import ort_gpu_session

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(ExportError, match="CUDAExecutionProvider"):
        ort_gpu_session(graphs["fp32"], "cuda")


@pytest.mark.gpu
def test_trt_engine_builds_matches_onnx_and_is_fp16(bundle_dir, tmp_path) -> None:
    if not _have_trt():
        pytest.skip("needs TensorRT and a CUDA GPU")
    from cardiacnets.export.trt_jobs import build_for_target

    report = build_for_target(bundle_dir, cache_dir=tmp_path / "cache", max_batch=8)
    assert report["screening"]["kind"] == "screening" and report["screening"]["layer_precisions"]["FP16"] > 0
    again = build_for_target(bundle_dir, cache_dir=tmp_path / "cache", max_batch=8)
    assert again["screening"]["cached"] is True


def test_exported_graphs_carry_no_debug_metadata_or_build_paths(graphs) -> None:
    m = onnx.load(str(graphs["fp32"]))
    assert not any(n.metadata_props for n in m.graph.node)  # stack traces, FX text: half a small model's size
    assert str(Path(onnx_export.__file__).parent).encode() not in graphs["fp32"].read_bytes()


def test_fp16_weight_storage_halves_the_file_and_keeps_fp32_compute(graphs, tmp_path) -> None:
    import shutil

    compact = tmp_path / "screening.onnx"
    shutil.copy(graphs["fp32"], compact)
    info = precision.store_weights_fp16(compact)
    assert info["weights_fp16"] > 0 and info["bytes"] < 0.6 * info["bytes_fp32"]
    m = onnx.load(str(compact))
    onnx.checker.check_model(m, full_check=True)
    big = [i for i in m.graph.initializer if np.prod(i.dims) >= 256]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    assert [i.name for i in m.graph.input] == list(SCREENING_INPUTS)  # the interface is unchanged (FP32 I/O)
    feed = onnx_export.screening_feeds(4, np.random.default_rng(5))
    ref = onnx_export.ort_session(graphs["fp32"]).run(None, feed)
    got = onnx_export.ort_session(compact).run(None, feed)
    for r, g in zip(ref, got, strict=True):
        assert g.dtype == np.float32
        assert np.abs(g - r).max() <= 1e-2 * max(1.0, float(np.abs(r).max()))  # FP16 rounding of the weights only
        assert not np.array_equal(g, r)  # ... which is really there (the weights did change)


def test_cine_encoder_export_with_fp16_weights_passes_its_parity_bounds(tmp_path) -> None:
    from cardiacnets.models.registry import create_model

    torch.manual_seed(0)
    encoder = create_model("ecg-vit-tiny", embed_dim=32, depth=2, num_heads=2).eval()
    full = onnx_export.export_ecg_encoder(encoder, tmp_path / "full.onnx")
    compact = onnx_export.export_ecg_encoder(encoder, tmp_path / "compact.onnx", weights_fp16=True)
    assert compact.extra["weights_storage"]["dtype"] == "float16"
    assert compact.path.stat().st_size < 0.6 * full.path.stat().st_size
    worst = compact.parity["outputs"]["tokens"]
    assert worst["atol"] == onnx_export.ENCODER_TOLERANCES_FP16W["tokens"].atol and worst["max_abs"] > 0


# ------------------------------------------------------------------------------------------------- benchmarks
def test_bench_bundle_times_every_shipped_graph_and_names_the_bundle(bundle_dir) -> None:
    from cardiacnets.export.bench import bench_bundle

    report = bench_bundle(bundle_dir, batches=(1, 2), threads=1, rounds=1, budget_s=0.05)
    assert report["bundle"]["digest"] == load_bundle(bundle_dir).digest
    assert report["bundle"]["name"] == "tiny-export-test"
    assert report["graphs"] == {"ort_fp32": "screening.onnx", "ort_int8": "screening.int8.onnx",
                                "ort_fp16": "screening.fp16.onnx"}  # fmt: skip
    assert report["torch_model"] is None and set(report["batches"]) == {"1", "2"}
    for batch, row in report["batches"].items():
        assert set(row) == set(report["graphs"])  # no torch eager without the saved torch model
        fp32 = row["ort_fp32"]["latency_ms_median"]
        for name, timing in row.items():
            assert timing["throughput_ecg_per_s"] * timing["latency_ms_median"] / 1e3 == pytest.approx(int(batch))
            assert timing["latency_ms_p90"] >= timing["latency_ms_median"] > 0 and timing["calls"] >= 1
            assert timing["speedup_vs_fp32"] == pytest.approx(fp32 / timing["latency_ms_median"]), name
        assert row["ort_fp32"]["speedup_vs_fp32"] == 1.0


def test_bench_cli_times_the_default_bundle_and_torch_only_when_given(bundle_dir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CNS_BUNDLE", str(bundle_dir))  # the default bundle, as cnscreen resolves it
    common = ["--batches", "1", "--rounds", "1", "--threads", "1", "--out", "-"]
    with pytest.raises(SystemExit) as exit_info:
        cnexport(["bench", *common])
    assert exit_info.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["bundle"]["digest"] == load_bundle(bundle_dir).digest
    assert "torch_eager" not in report["batches"]["1"]
    with pytest.raises(SystemExit) as exit_info:
        cnexport(["bench", "--bundle", str(bundle_dir), "--screening", str(bundle_dir.parent / "run"), *common])
    assert exit_info.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    row = report["batches"]["1"]
    assert row["torch_eager"]["speedup_vs_torch"] == 1.0 and "speedup_vs_torch" in row["ort_int8"]
    assert report["torch_vs_fp32_max_abs_prob_diff"] < 1e-4  # the bundle's FP32 graph was exported from this model


def test_bench_refuses_a_tampered_bundle_and_bundle_with_model(bundle_dir, tmp_path) -> None:
    import shutil

    from cardiacnets.export.bench import bench_bundle

    copy = tmp_path / "tampered"
    shutil.copytree(bundle_dir, copy)
    data = bytearray((copy / "screening.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "screening.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError):
        bench_bundle(copy, batches=(1,), rounds=1, budget_s=0.05)
    with pytest.raises(SystemExit) as exit_info:
        cnexport(["bench", "--bundle", str(bundle_dir), "--model", "screening-ecg-tiny"])
    assert exit_info.value.code == 2


# -------------------------------------------------------------------------------------------------- diffusion
@pytest.mark.slow
def test_diffusion_parts_export_with_parity(tmp_path) -> None:
    pytest.importorskip("diffusers")
    from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
    from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D
    from cardiacnets.diffusion.vae import create_vae
    from cardiacnets.models.registry import create_model

    torch.manual_seed(0)
    encoder = create_model("ecg-vit-tiny", embed_dim=16, depth=1, num_heads=2).eval()
    config = Ecg2CmrConfig.from_preset("tiny", "sa", num_frames=4, height=16, width=16, latent_downsample=2,
                                       condition_dim=16)  # fmt: skip
    pipeline = EcgToCmrPipeline(encoder, EcgConditionedUNet3D(config), create_vae("tiny", image_size=16))
    results = onnx_export.export_pipeline(pipeline, tmp_path)
    assert set(results) == {"ecg_encoder", "unet_sa", "vae_decoder"}
    assert results["unet_sa"].parity["batches"] == [1, 3]  # batch sizes unlike the export example (2)
    # the exported denoiser reproduces CFG: null rows equal the unconditional torch call
    feed = onnx_export.unet_feeds(pipeline.denoiser, 2, 600, np.random.default_rng(0))
    got = onnx_export.ort_session(results["unet_sa"].path).run(None, feed)[0]
    with torch.no_grad():
        null = pipeline.denoiser(
            torch.from_numpy(feed["sample"][:1]),
            torch.from_numpy(feed["timestep"][:1]),
            context=pipeline.denoiser.encode_condition(None, batch_size=1).expand(1, 600, -1),
        )
    np.testing.assert_allclose(got[:1], null.numpy(), atol=1e-4, rtol=1e-4)
    precision.convert_to_fp16(results["unet_sa"].path, tmp_path / "unet.fp16.onnx")
    half = onnx_export.ort_session(tmp_path / "unet.fp16.onnx").run(None, feed)[0]
    assert np.abs(half - got).max() < 0.02 * np.abs(got).max()
