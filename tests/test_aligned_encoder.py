"""The shipped aligned ECG encoder (``cntrain finetune --init default``): recovered from the default bundle's ONNX
encoder by graph structure, equal to it on real ECGs, verified on load, and the starting point of fine-tuning."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cardiacnets.bundle import default_bundle_path, load_bundle
from cardiacnets.errors import CheckpointError, ConfigError, ExportError
from cardiacnets.io import read_ecg
from cardiacnets.models.registry import from_pretrained, model_config
from cardiacnets.models.shipped import aligned_encoder_path, load_aligned_encoder, verify_checkpoint
from cardiacnets.preprocess import PreprocessConfig, preprocess_record

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from cardiacnets.export.onnx_import import ecg_vit_from_onnx, token_parity  # noqa: E402

BUNDLE_ENCODER = default_bundle_path() / "cine" / "ecg_encoder.onnx"
#: torch and onnxruntime compute with the same FP32 values (the graph's FP16-stored weights up-cast alike), so they
#: differ by summation order only: ~3e-6 measured over the corpus (tokens of magnitude ~4).
TOKENS_ATOL = 1e-4
CORPUS_FILES = ("ge_muse_xml/muse_ecg_deidentified_1.xml", "philips_sierra_xml/129DYPRG.XML")


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_shipped_encoder_tokens_match_the_bundle_graph_on_corpus_files(conformance_dir) -> None:  # noqa: ANN001
    encoder, info = load_aligned_encoder()
    bundle = load_bundle(default_bundle_path(), check_hashes=False)
    # recovered from the encoder graph of the bundle this package ships (its screening model may since have changed)
    source = verify_checkpoint(aligned_encoder_path())["source"]
    assert info["source_bundle"] == source["bundle"]
    assert source["file_sha256"] == bundle.manifest["files"]["cine/ecg_encoder.onnx"]["sha256"]
    config = PreprocessConfig.from_dict(bundle.preprocess)
    ecgs = np.stack([preprocess_record(read_ecg(conformance_dir / rel), config)[0] for rel in CORPUS_FILES])
    parity = token_parity(encoder, BUNDLE_ENCODER, ecgs)
    assert parity["n"] == len(CORPUS_FILES)
    assert parity["max_abs"] <= TOKENS_ATOL, parity
    # the comparison can fail: a 1 % change of one weight moves the tokens far beyond the tolerance
    with torch.no_grad():
        encoder.blocks[0].attn.qkv.weight.mul_(1.01)
    assert token_parity(encoder, BUNDLE_ENCODER, ecgs[:1])["max_abs"] > 10 * TOKENS_ATOL


def test_extraction_from_the_bundle_reproduces_the_shipped_weights_exactly() -> None:
    rebuilt, report = ecg_vit_from_onnx(BUNDLE_ENCODER)
    assert report["parameters"] == report["from_named_values"] + report["from_linear_structure"]
    assert report["from_linear_structure"] == 4 * 4  # qkv, proj, mlp.0, mlp.3 in each of the 4 blocks
    assert report["qkv_head_splits_checked"] == 4
    assert _equal_states(rebuilt, from_pretrained(aligned_encoder_path()))


def _shuffled_names_and_order(src, dst, seed: int = 0) -> None:  # noqa: ANN001
    """Rename every unnamed weight (``val_N__fp16`` -> a random name), reverse the initialiser and cast order and put
    a Cast between the first MatMul and its bias Add: the graph computes the same, but a mapping by position or by
    name, or one that looks only at a MatMul's direct consumers, would now go wrong."""
    model = onnx.load(str(src))
    graph = model.graph
    matmul = next(n for n in graph.node if n.op_type == "MatMul" and n.input[1].startswith("val_"))
    for node in graph.node:
        node.input[:] = [f"{matmul.output[0]}_cast" if name == matmul.output[0] else name for name in node.input]
    cast = onnx.helper.make_node("Cast", [matmul.output[0]], [f"{matmul.output[0]}_cast"], to=onnx.TensorProto.FLOAT)
    graph.node.insert(list(graph.node).index(matmul) + 1, cast)
    unnamed = [i.name for i in graph.initializer if i.name.startswith("val_") and i.name.endswith("__fp16")]
    new = [f"w{n}" for n in random.Random(seed).sample(range(1000, 9999), len(unnamed))]
    renames = dict(zip(unnamed, new, strict=True))
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    inits = list(graph.initializer)[::-1]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    casts = [n for n in graph.node if n.op_type == "Cast" and n.input[0] in {i.name for i in inits}]
    rest = [n for n in graph.node if n not in casts]
    del graph.node[:]
    graph.node.extend([*casts[::-1], *rest])
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def test_linear_weights_are_placed_by_graph_structure_not_position(tmp_path) -> None:  # noqa: ANN001
    shuffled = tmp_path / "shuffled.onnx"
    _shuffled_names_and_order(BUNDLE_ENCODER, shuffled)
    rebuilt, _ = ecg_vit_from_onnx(shuffled)
    assert _equal_states(rebuilt, from_pretrained(aligned_encoder_path()))


def _renamed_value(src, dst, old: str, new: str) -> None:  # noqa: ANN001
    model = onnx.load(str(src))
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    for init in model.graph.initializer:
        init.name = new if init.name == old else init.name
    onnx.save(model, str(dst))


def test_extraction_refuses_a_missing_parameter_a_wrong_shape_or_head_count(tmp_path) -> None:  # noqa: ANN001
    no_norm = tmp_path / "no_norm.onnx"
    _renamed_value(BUNDLE_ENCODER, no_norm, "encoder.norm.weight", "final_scale")
    with pytest.raises(ExportError, match=r"not found.*norm\.weight"):
        ecg_vit_from_onnx(no_norm)
    with pytest.raises(ExportError, match=r"mlp\.0\.bias.*shape"):
        ecg_vit_from_onnx(BUNDLE_ENCODER, model_config("ecg-vit-tiny", mlp_ratio=2.0))
    with pytest.raises(ExportError, match="3 heads; the config has 6"):  # 192 splits into 6 heads too: no shape tells
        ecg_vit_from_onnx(BUNDLE_ENCODER, model_config("ecg-vit-tiny", num_heads=6))


def test_a_changed_shipped_file_is_refused(tmp_path) -> None:  # noqa: ANN001
    copy = tmp_path / "aligned-ecg-encoder"
    shutil.copytree(aligned_encoder_path(), copy)
    manifest = verify_checkpoint(copy)
    shipped = load_bundle(default_bundle_path(), check_hashes=False).manifest["files"]["cine/ecg_encoder.onnx"]
    assert manifest["source"]["file_sha256"] == shipped["sha256"]
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_aligned_encoder(copy)


def test_fp16_exact_storage_halves_only_what_it_can_and_loads_back_identically(tmp_path) -> None:  # noqa: ANN001
    from safetensors import safe_open

    from cardiacnets.models.registry import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("ecg-vit-tiny", embed_dim=32, depth=1, num_heads=2)
    with torch.no_grad():
        model.pos_embed.copy_(model.pos_embed.half().float())  # exactly representable in FP16
    save_pretrained(model, tmp_path / "m", fp16_exact=True)
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("pos_embed").dtype == torch.float16
        assert f.get_tensor("cls_token").dtype == torch.float32  # FP32 values FP16 would round stay FP32
    assert _equal_states(from_pretrained(tmp_path / "m"), model)


def test_init_default_builds_a_screening_model_with_the_shipped_encoder() -> None:
    from cardiacnets.training.tasks.finetune import FinetuneTaskConfig, build_screening_model

    shipped = from_pretrained(aligned_encoder_path())
    model, info = build_screening_model(FinetuneTaskConfig(init="default", pool="mean"), "tiny")
    assert _equal_states(model.encoder, shipped)
    assert model.config.ecg.pool == "mean"  # pooling is the fine-tuning's choice; it changes no weight
    manifest = json.loads((aligned_encoder_path() / "manifest.json").read_text())
    assert info["init"] == "default" and info["digest"] == manifest["digest"]
    with pytest.raises(ConfigError, match="no CMR towers"):
        FinetuneTaskConfig(init="default", input="cmr")


def test_cli_refuses_init_default_with_cmr_input_in_one_line(tmp_path) -> None:  # noqa: ANN001
    from cardiacnets.training.cli import app

    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["finetune", "--input", "cmr", "--init", "default", "--out", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--init default" in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_finetune_from_default_starts_from_the_shipped_encoder_not_a_random_one(tmp_path) -> None:  # noqa: ANN001
    from cardiacnets.training.config import resolve_config
    from cardiacnets.training.tasks.finetune import FinetuneTaskConfig, build_screening_model, run_finetune

    sets = ["data.n_subjects=24", "task.ecg_preprocess=minmax", "task.max_epochs=null", "train.batch_size=4"]
    # a learning rate too small to move any weight: best/ after one step shows where the run started
    sets += ["task.task=cad", "task.init=default", "train.lr=1e-12"]
    flags = {"out": str(tmp_path / "ft"), "train.max_steps": 1, "train.progress": False}
    result = run_finetune(resolve_config("finetune", flags=flags, sets=sets), eval_splits=("val",))
    evaluation = json.loads((tmp_path / "ft" / "evaluation.json").read_text())
    assert evaluation["init"]["init"] == "default"
    assert evaluation["init"]["digest"] == verify_checkpoint(aligned_encoder_path())["digest"]
    assert result.train.step == 1
    started = from_pretrained(tmp_path / "ft" / "best").encoder.state_dict()
    shipped = from_pretrained(aligned_encoder_path()).state_dict()
    torch.manual_seed(0)
    random_model, _ = build_screening_model(FinetuneTaskConfig(init="random"), "tiny")
    random_state = random_model.encoder.state_dict()
    for key, value in shipped.items():
        torch.testing.assert_close(started[key], value, rtol=0, atol=1e-8)
    far = [key for key, value in shipped.items() if (random_state[key] - value).abs().max() > 1e-3]
    assert len(far) > len(shipped) // 2  # a random encoder is nowhere near it
