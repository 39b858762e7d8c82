"""The GPU paths' logic on the CPU (issue 19): engine job kinds, FP16 detection from the inspector's JSON, provider
chains and the active-provider check (through onnxruntime's real fallback), TensorRT provider options and cache keys,
variant choice, the [cine] guard, the GPU install pins, and the GPU check's statuses, exit code and result files.
What needs a GPU is in the gpu tier at the end (CNS_GPU=1)."""

from __future__ import annotations

import ast
import copy
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.bundle import default_bundle_path, load_bundle
from cardiacnets.errors import BundleError, ExportError, InputError, ProviderError
from cardiacnets.execution import (
    CPU,
    CUDA,
    TRT,
    _ort_cuda_major,
    batch_profile,
    check_active_provider,
    compatibility_problems,
    engine_cache_key,
    provider_chain,
    torch_info,
    trt_cache_dir,
    trt_provider_options,
    user_cache_dir,
)
from tests.edge_fixtures import make_tiny_bundle

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ecg" / "synthetic_hcm.hea"


@pytest.fixture
def default_manifest() -> dict:
    return copy.deepcopy(load_bundle(default_bundle_path()).manifest)  # a copy per test: tests edit it


# ------------------------------------------------------------------------------------------------- 1: job kinds
def _with_fp16(manifest: dict, *names: str) -> dict:
    for name in names:
        entry = manifest["models"][name]
        entry["variants"] = {
            **(entry.get("variants") or {}),
            "fp16": {"file": entry["file"].replace(".onnx", ".fp16.onnx")},
        }
    return manifest


def test_engine_jobs_carry_the_manifest_kind_and_only_ask_graphs_for_their_own_outputs(default_manifest) -> None:
    from cardiacnets.export.trt_jobs import plan_jobs

    manifest = _with_fp16(default_manifest, "screening", "cine_sa_unet")  # la's UNet keeps only its FP32 graph
    jobs = {j.name: j for j in plan_jobs(manifest, Path, max_batch=16)}
    assert {n: j.kind for n, j in jobs.items()} == {
        "screening": "screening", "cine_ecg_encoder": "ecg_encoder", "cine_sa_unet": "unet",
        "cine_sa_vae_decoder": "vae_decoder", "cine_la_unet": "unet", "cine_la_vae_decoder": "vae_decoder",
    }  # fmt: skip
    assert jobs["cine_sa_unet"].precision == "fp16" and jobs["cine_sa_unet"].onnx.name == "unet.fp16.onnx"
    assert jobs["cine_la_unet"].precision == "fp32" and jobs["cine_la_unet"].onnx == jobs["cine_la_unet"].reference
    for job in jobs.values():
        assert set(job.tolerances()) <= set(job.outputs), job.name  # a UNet is never asked for disease_prob
        entry = manifest["models"][job.name]
        for feed in job.feeds:
            assert list(feed) == [i["name"] for i in entry["inputs"]]
    assert set(jobs["cine_sa_unet"].tolerances()) == {"noise_pred"}
    batches = {n: [int(next(iter(f.values())).shape[0]) for f in j.feeds] for n, j in jobs.items()}
    frames = manifest["cine"]["views"]["sa"]["latent_shape"][1]
    assert batches["screening"] == [1, 8, 16] and batches["cine_sa_unet"] == [2]
    assert batches["cine_ecg_encoder"] == [1] and batches["cine_sa_vae_decoder"] == [frames]
    assert jobs["cine_sa_unet"].profile["sample"][0] == jobs["cine_sa_unet"].profile["sample"][2]  # static CFG pair
    assert jobs["screening"].profile["ecg"] == ((1, 12, 5000), (8, 12, 5000), (16, 12, 5000))


def test_planning_refuses_what_it_cannot_check(default_manifest) -> None:
    from cardiacnets.export.trt_jobs import engine_tolerances, plan_jobs

    with pytest.raises(ExportError, match="fp16 screening variant"):
        plan_jobs(default_manifest, Path)
    with pytest.raises(ExportError, match="noise_pred"):
        engine_tolerances("unet", "fp16", ["disease_prob"])
    with pytest.raises(InputError, match="graph kind"):
        engine_tolerances("segmenter", "fp16")
    assert (
        engine_tolerances("unet", "fp32")["noise_pred"].range_rel
        < engine_tolerances("unet", "fp16")["noise_pred"].range_rel
    )


# --------------------------------------------------------------------------------------------- 2: FP16 layers
def _layer(name: str, *formats: str) -> dict:
    return {"Name": name, "LayerType": "CaskConvolution",
            "Inputs": [{"Name": f"{name}_in", "Format/Datatype": formats[0]}],
            "Outputs": [{"Name": f"{name}_out", "Format/Datatype": f} for f in formats[1:]]}  # fmt: skip


def test_fp16_layers_are_counted_per_layer_in_either_wording() -> None:
    from cardiacnets.export.trt import parse_layer_precisions, tensor_precision

    info = {"Layers": [
        _layer("conv_a", "Half", "Half"),                                                  # TensorRT 8.x wording
        _layer("conv_b", "Row major linear FP16 format", "Channel major FP16 format where channel % 8 == 0"),
        _layer("cast_out", "Row major linear FP16 format", "Row major linear FP32"),       # a cast: both
        _layer("Half_branch/norm", "Float", "Float"),                                      # "Half" only in its name
        _layer("q", "Thirty-two wide channel vectorized row major Int8 format.", "Int8"),
        _layer("shuffle", "N/A due to dynamic shapes", "N/A due to dynamic shapes"),
    ], "Bindings": ["ecg", "disease_prob"]}  # fmt: skip
    counts = parse_layer_precisions(json.dumps(info))
    assert counts["layers"] == 6 and counts["FP16"] == 3 and counts["FP32"] == 2 and counts["INT8"] == 1
    assert counts["unknown"] == 1
    fp32_engine = {"Layers": [_layer("Half_precision_block", "Float", "Row major linear FP32")]}
    assert parse_layer_precisions(json.dumps(fp32_engine)).get("FP16", 0) == 0  # the old substring count said 1
    assert tensor_precision("BFloat16") == "BF16" and tensor_precision("Row major linear FP16 format") == "FP16"
    with pytest.raises(ExportError, match="layer names only"):
        parse_layer_precisions(json.dumps({"Layers": ["conv_a", "conv_b"], "Bindings": []}))


# --------------------------------------------------------------------------------- 3: providers, active provider
def test_provider_chains_register_cuda_after_tensorrt() -> None:
    everything = [TRT, CUDA, CPU]
    assert provider_chain("trt", everything) == [TRT, CUDA, CPU]
    assert provider_chain("cuda", everything) == [CUDA, CPU]
    assert provider_chain("auto", everything) == [TRT, CUDA, CPU]
    assert provider_chain("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert provider_chain("cpu", everything) == [CPU]
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider.*onnxruntime-gpu"):
        provider_chain("trt", [CPU])
    with pytest.raises(InputError, match="unknown device"):
        provider_chain("tpu", everything)


def test_the_active_provider_must_be_the_requested_one(caplog) -> None:
    assert check_active_provider(TRT, [TRT, CUDA, CPU]) == TRT
    with pytest.raises(ProviderError, match=r"asked onnxruntime for TensorrtExecutionProvider but it runs on CUDA"):
        check_active_provider(TRT, [CUDA, CPU], graph="screening.onnx")
    with caplog.at_level(logging.WARNING):
        assert check_active_provider(CUDA, [CPU], allow_fallback=True) == CPU
    assert "allow-fallback" in caplog.text and "onnxruntime" in caplog.text


def test_screener_refuses_a_silent_cpu_fallback_and_reports_what_ran(tmp_path, monkeypatch) -> None:
    """onnxruntime without CUDA, asked for [CUDA, CPU], warns and runs on the CPU: a real fallback, caught."""
    import onnxruntime as ort

    from cardiacnets.edge import screen
    from cardiacnets.edge.batch.rows import output_columns, result_row

    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    bundle = make_tiny_bundle(tmp_path / "bundle")
    monkeypatch.setattr(screen, "select_providers", lambda device: [CUDA, CPU])
    with pytest.raises(ProviderError, match="CUDAExecutionProvider.*runs on CPUExecutionProvider"):
        screen.Screener(bundle, device="cuda")
    screener = screen.Screener(bundle, device="cuda", allow_fallback=True)
    assert screener.execution_provider == CPU and screener.per_record  # CPU semantics once it runs on the CPU
    from tests.test_edge_screen import write_wfdb_ecg

    result, _ = screener.screen_file(write_wfdb_ecg(tmp_path))
    assert result["model"]["execution_provider"] == CPU
    row = result_row(result, include_phi=False)
    assert row["execution_provider"] == CPU and "execution_provider" in output_columns(False)
    assert output_columns(True).index("execution_provider") < output_columns(True).index("patient_id")


# --------------------------------------------------------------------------- 4 and 8: TensorRT options, cache keys
def test_cache_folder_follows_the_user_cache_conventions(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CNS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "cardiacnets"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "cardiacnets"
    monkeypatch.setenv("CNS_CACHE_DIR", str(tmp_path / "mine"))
    assert user_cache_dir() == tmp_path / "mine"
    assert trt_cache_dir("ab" * 32).parent == tmp_path / "mine" / "ort-trt"


def test_engine_cache_key_changes_with_every_component() -> None:
    base = {"graph_sha256": "ab" * 32, "gpu": "NVIDIA H100 80GB HBM3", "trt_version": "10.16.1.11",
            "optimization_level": 3, "workspace_bytes": 4 << 30,
            "profile": batch_profile([{"name": "ecg", "shape": ["batch", 12, 5000]}], 1, 8, 32)}  # fmt: skip
    changed = {"graph_sha256": "cd" * 32, "gpu": "NVIDIA A100-SXM4-80GB", "trt_version": "10.15.1.29",
               "optimization_level": 5, "workspace_bytes": 8 << 30,
               "profile": batch_profile([{"name": "ecg", "shape": ["batch", 12, 5000]}], 1, 8, 64)}  # fmt: skip
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**copy.deepcopy(base))
    keys = {engine_cache_key(**{**base, name: value}) for name, value in changed.items()}
    assert len(keys) == len(changed) and key not in keys


def test_tensorrt_provider_options_cache_engines_and_profile_the_batch_axis(tmp_path, monkeypatch) -> None:
    from cardiacnets.edge.screen import _screening_trt_options

    monkeypatch.setenv("CNS_CACHE_DIR", str(tmp_path))
    bundle = load_bundle(default_bundle_path())
    spec = bundle.model("screening")
    options = _screening_trt_options(bundle, spec, spec["file"], 32)
    cache = Path(options["trt_engine_cache_path"])
    assert cache.is_dir() and cache.parent == tmp_path / "ort-trt" and options["trt_timing_cache_path"] == str(cache)
    assert options["trt_engine_cache_enable"] is True and options["trt_timing_cache_enable"] is True
    assert options["trt_builder_optimization_level"] == 3 and options["trt_max_workspace_size"] == 4 << 30
    assert options["trt_profile_min_shapes"] == "ecg:1x12x5000,covariates:1x3,covariate_mask:1x3"
    assert options["trt_profile_opt_shapes"] == "ecg:8x12x5000,covariates:8x3,covariate_mask:8x3"
    assert options["trt_profile_max_shapes"] == "ecg:32x12x5000,covariates:32x3,covariate_mask:32x3"
    assert "trt_fp16_enable" not in options  # an FP16 graph builds strongly typed; FP32 stays FP32
    other = _screening_trt_options(bundle, spec, "cine/ecg_encoder.onnx", 32)  # another graph digest
    assert Path(other["trt_engine_cache_path"]) != cache
    assert trt_provider_options(tmp_path / "x", optimization_level=5)["trt_builder_optimization_level"] == 5
    with pytest.raises(InputError):
        batch_profile(spec["inputs"], 4, 2, 8)


def test_gpu_warm_up_runs_outside_the_sampling_and_does_not_change_the_cine(monkeypatch) -> None:
    pytest.importorskip("diffusers")
    from cardiacnets.edge import cine
    from cardiacnets.edge.screen import Screener

    _, prepared = Screener(device="cpu").screen_file(EXAMPLE)
    bundle = load_bundle(default_bundle_path())
    calls: dict[str, int] = {}
    real_session = cine._session

    def counting(bundle, rel, providers, **kwargs):
        session, active = real_session(bundle, rel, providers, **kwargs)

        class Counted:
            def run(self, names, feeds):
                calls[rel] = calls.get(rel, 0) + 1
                return session.run(names, feeds)

        return Counted(), active

    monkeypatch.setattr(cine, "_session", counting)
    plain, info = cine.sample_view(bundle, "sa", prepared.ecg, providers=[CPU], steps=2, seed=4)
    assert info["providers"] == {"ecg_encoder": CPU, "unet": CPU, "vae_decoder": CPU}
    unet_rel = bundle.manifest["cine"]["views"]["sa"]["unet"]
    assert calls[unet_rel] == 2 and not cine.needs_warmup(CPU) and cine.needs_warmup(CUDA)
    calls.clear()
    monkeypatch.setattr(cine, "needs_warmup", lambda provider: True)  # what a GPU provider does
    warmed, _ = cine.sample_view(bundle, "sa", prepared.ecg, providers=[CPU], steps=2, seed=4)
    assert calls[unet_rel] == 3 and calls[bundle.manifest["cine"]["views"]["sa"]["vae_decoder"]] == 2
    np.testing.assert_array_equal(plain, warmed)


# ------------------------------------------------------------------------------------------------ 5: variants
def test_a_gpu_takes_the_fp16_graph_never_the_cpu_int8_default() -> None:
    from cardiacnets.edge.screen import choose_variant

    spec = {"file": "screening.onnx", "default_variant": "int8",
            "variants": {"int8": {"file": "screening.int8.onnx"}, "fp16": {"file": "screening.fp16.onnx"}}}  # fmt: skip
    assert choose_variant(spec, CPU) == "int8"
    assert choose_variant(spec, CUDA) == "fp16" and choose_variant(spec, TRT) == "fp16"
    no_fp16 = {**spec, "variants": {"int8": {"file": "screening.int8.onnx"}}}
    assert choose_variant(no_fp16, CUDA) == "fp32" and choose_variant({"file": "s.onnx"}, CPU) == "fp32"
    assert choose_variant(spec, CUDA, "int8") == "int8"  # asked for explicitly
    with pytest.raises(BundleError, match="bf16"):
        choose_variant(spec, CUDA, "bf16")


# ------------------------------------------------------------------------------------------- 6: the [cine] guard
def _cnscreen_without(module: str, *args: str) -> subprocess.CompletedProcess:
    code = (  # a finder that answers for <module> as an environment without it does
        "import importlib.abc, sys\n"
        "class Absent(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] == {module!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from cardiacnets.edge.cli import main; main(sys.argv[1:])"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("module", ["torch", "diffusers"])
def test_cine_without_its_extra_says_in_one_line_what_to_install(module, tmp_path) -> None:
    proc = _cnscreen_without(module, str(EXAMPLE), "--cine", "--cine-dir", str(tmp_path / "c"), "--device", "cpu")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "[cine]" in lines[0] and module in lines[0] and "pip install" in lines[0]
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_the_cine_extra_declares_what_cine_imports_and_admits_the_pinned_torch() -> None:
    from packaging.requirements import Requirement

    from cardiacnets.edge.cine import CINE_MODULES

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cine = {Requirement(r).name: Requirement(r) for r in extras["cine"]}
    assert set(CINE_MODULES.values()) <= set(cine)
    pinned = re.search(r"torch==([0-9.]+)", (REPO / "scripts" / "install.sh").read_text()).group(1)
    assert cine["torch"].specifier.contains(pinned)


# ------------------------------------------------------------------------------------------ 7: the GPU install
def _install_pins() -> dict[str, str]:
    text = (REPO / "scripts" / "install_gpu.sh").read_text()
    return dict(re.findall(r"^\s*(cu1[23])\) ORT_GPU=\"onnxruntime-gpu\[cuda,cudnn\]==([0-9.]+)\"", text, re.MULTILINE))


def test_gpu_pins_load_each_other_and_never_sit_beside_the_cpu_onnxruntime() -> None:
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(Requirement(r).name == "onnxruntime-gpu" for reqs in extras.values() for r in reqs)
    pins = _install_pins()
    assert set(pins) == {"cu12", "cu13"}
    readme = (REPO / "README.md").read_text()
    for cuda, ort_version in pins.items():
        major = int(cuda[2:])
        trt = {Requirement(r).name: Requirement(r) for r in extras[f"gpu-{cuda}"]}
        (trt_version,) = [s.version for s in trt[f"tensorrt-{cuda}"].specifier]
        assert "torch" in trt and _ort_cuda_major(ort_version) == major
        versions = {"onnxruntime": {"packages": ["onnxruntime-gpu"], "cuda_major": major}, "tensorrt": trt_version,
                    "tensorrt_cuda_major": major, "torch": {"cuda": f"{major}.0"}}  # fmt: skip
        assert compatibility_problems(versions) == [], cuda
        assert f"bash scripts/install_gpu.sh {cuda}" in readme and ort_version in readme and trt_version in readme


def test_compatibility_problems_name_each_mismatch() -> None:
    good = {"onnxruntime": {"packages": ["onnxruntime-gpu"], "cuda_major": 13}, "tensorrt": "10.16.1.11",
            "tensorrt_cuda_major": 13, "torch": {"cuda": "13.0"}}  # fmt: skip
    assert compatibility_problems(good) == []
    both = copy.deepcopy(good)
    both["onnxruntime"]["packages"] = ["onnxruntime", "onnxruntime-gpu"]
    assert "both installed" in compatibility_problems(both)[0]
    assert "loads TensorRT 10" in compatibility_problems({**good, "tensorrt": "11.4.0.106"})[0]
    assert "CUDA 12" in compatibility_problems({**good, "tensorrt_cuda_major": 12})[0]
    assert "torch is built for CUDA 12.8" in compatibility_problems({**good, "torch": {"cuda": "12.8"}})[0]
    assert _ort_cuda_major("1.26.0") == 12 and _ort_cuda_major("1.27.0") == 13 and _ort_cuda_major("1.18.1") is None


def test_trt_errors_name_the_versions_and_tell_a_cpu_torch_from_a_missing_gpu(monkeypatch) -> None:
    import importlib.metadata

    from cardiacnets.export import trt

    if trt._cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    torch_version = importlib.metadata.version("torch")
    with pytest.raises(ExportError) as caught:
        trt.require_trt_and_gpu()
    message = str(caught.value)
    assert "\n" not in message and f"torch {torch_version}" in message
    assert f"onnxruntime {importlib.metadata.version('onnxruntime')}" in message and "TensorRT" in message
    if torch_info()["cuda"] is None:
        monkeypatch.setattr(trt, "nvidia_gpus", lambda: ("NVIDIA H100 80GB HBM3",))
        pieces = " ".join(trt._missing_pieces())
        assert "a CUDA build of PyTorch" in pieces and "CPU build" in pieces and "NVIDIA H100" in pieces
        assert "finds no GPU" not in pieces


def test_torch_cuda_version_is_read_without_importing_torch() -> None:
    import torch

    code = (
        "import sys; from cardiacnets.execution import torch_info; print(torch_info()['cuda'], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(torch.version.cuda), "False"]


# -------------------------------------------------------------------------------------- 10: IOBinding, parity
def test_iobinding_runs_give_the_plain_run_outputs(tmp_path) -> None:
    from cardiacnets.export.gpu_bench import parity_and_timing
    from cardiacnets.export.gpu_check import CheckFailed
    from cardiacnets.export.onnx_export import Tolerance, ort_session
    from cardiacnets.export.trt import IoBoundSession

    bundle = make_tiny_bundle(tmp_path / "bundle")
    session = ort_session(bundle / "screening.onnx")
    rng = np.random.default_rng(0)
    feed = {
        "ecg": rng.uniform(-1, 1, (3, 12, 5000)).astype(np.float32),
        "covariates": np.array([[1, 60, 70]] * 3, np.float32),
        "covariate_mask": np.ones((3, 3), np.float32),
    }
    bound = IoBoundSession(session, feed, device="cpu")
    plain = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))
    got = bound.outputs()
    assert set(got) == set(plain)
    for name in plain:
        np.testing.assert_array_equal(got[name], plain[name])
    tolerances = {"disease_prob": Tolerance(1e-6)}
    report = parity_and_timing({3: feed}, {3: plain}, tolerances, lambda f: (bound.run, bound.outputs))
    assert report["3"]["parity"]["disease_prob"]["ok"] and report["3"]["median_ms"] > 0
    shifted = {3: {**plain, "disease_prob": plain["disease_prob"] + 0.01}}
    with pytest.raises(CheckFailed, match="disease_prob at batch 3") as caught:
        parity_and_timing({3: feed}, shifted, tolerances, lambda f: (bound.run, bound.outputs))
    assert caught.value.result["3"]["parity"]["disease_prob"]["max_abs"] == pytest.approx(0.01, abs=1e-6)


# ------------------------------------------------------------------------- 11 and 12: statuses, result files
def _run(tmp_path: Path, budget: float = 60.0):
    from cardiacnets.export.gpu_check import CheckRun

    return CheckRun(tmp_path / "out", budget, log=lambda line: None)


def _stages(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "gpu_check.json").read_text())["stages"]


def test_a_stage_that_did_not_run_is_never_ok(tmp_path) -> None:
    from cardiacnets.export.gpu_check import FAILED, OK, PARTIAL, SKIPPED_BUDGET, SKIPPED_MISSING, NotInstalled

    def missing(stage):
        raise NotInstalled("TensorRT (No module named 'tensorrt')")

    def half(stage):
        stage.part("torch", lambda: {"ms": 1.0})
        stage.part("tensorrt", lambda: missing(stage))

    run = _run(tmp_path)
    run.stage("ran", lambda s: {"available": True})
    run.stage("tensorrt", missing)
    run.stage("half", half)
    assert run.exit_code() == 1 and run.exit_code(allow_missing=True) == 0
    run.stage("broken", lambda s: 1 / 0)
    run.stage("needs_broken", lambda s: {}, requires=("broken",))
    run.stage("too_long", lambda s: {}, needs_s=1e6)
    stages = _stages(tmp_path)
    assert [stages[n]["status"] for n in stages] == [OK, SKIPPED_MISSING, PARTIAL, FAILED,
                                                     "skipped (prerequisite not ok)", SKIPPED_BUDGET]  # fmt: skip
    assert "tensorrt" in stages["tensorrt"]["reason"] and "ZeroDivisionError" in stages["broken"]["error"]
    assert "result" not in stages["too_long"] and "result" not in stages["tensorrt"]
    assert run.exit_code() == 1 and run.exit_code(allow_missing=True) == 1  # a failure is never excused


def test_results_are_on_disk_after_every_stage_and_part(tmp_path) -> None:
    from cardiacnets.export.gpu_check import CheckFailed

    seen = {}

    def second(stage):
        seen["after_first_stage"] = _stages(tmp_path)["first"]["status"]
        stage.part("ddim", lambda: {"seconds_per_cine": 1.5})
        seen["after_part"] = _stages(tmp_path)["second"]["parts"]["ddim"]
        stage.part("parity", lambda: (_ for _ in ()).throw(CheckFailed("bound exceeded", {"max_abs": 0.3})))
        stage.part("tensorrt", lambda: (_ for _ in ()).throw(RuntimeError("builder crashed")))
        return {"done": True}

    def killed(stage):
        raise KeyboardInterrupt  # what a timeout does mid-stage

    run = _run(tmp_path)
    run.stage("first", lambda s: {"x": 1})
    run.stage("second", second)
    assert seen == {"after_first_stage": "ok", "after_part": {"result": {"seconds_per_cine": 1.5}, "status": "ok",
                                                               "seconds": 0.0}}  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run.stage("third", killed)
    stages = _stages(tmp_path)
    parts = stages["second"]["parts"]
    assert stages["second"]["status"] == "failed" and parts["ddim"]["result"] == {"seconds_per_cine": 1.5}
    assert parts["parity"]["result"] == {"max_abs": 0.3} and "builder crashed" in parts["tensorrt"]["error"]
    assert stages["first"]["status"] == "ok" and stages["third"]["status"] == "running (did not finish)"
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "**second**: failed" in md and "ddim: ok" in md


def _fp16_tiny_bundle(root: Path) -> Path:
    """The tiny test bundle plus an FP16 screening variant and input specs (what the screening stage reads)."""
    from cardiacnets.bundle import write_manifest
    from cardiacnets.export.precision import convert_to_fp16

    bundle = make_tiny_bundle(root)
    convert_to_fp16(bundle / "screening.onnx", bundle / "screening.fp16.onnx")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["models"]["screening"].update(
        variants={"fp16": {"file": "screening.fp16.onnx"}},
        inputs=[{"name": "ecg", "shape": ["batch", 12, 5000]}, {"name": "covariates", "shape": ["batch", 3]},
                {"name": "covariate_mask", "shape": ["batch", 3]}],
    )  # fmt: skip
    write_manifest(bundle, manifest)
    return bundle


def test_screening_stage_on_a_cpu_machine_is_skipped_not_ok(tmp_path) -> None:
    """The real stage function on this machine: every GPU backend is missing, so nothing is ok."""
    import onnxruntime as ort

    from cardiacnets.export import gpu_bench

    if CUDA in ort.get_available_providers() or torch_info()["cuda"] is not None:
        pytest.skip("this machine has GPU packages")
    bundle = _fp16_tiny_bundle(tmp_path / "bundle")
    run = _run(tmp_path, budget=600)
    run.stage("screening", lambda s: gpu_bench.screening_backends(s, bundle, tmp_path / "model", tmp_path / "trt"))
    stages = _stages(tmp_path)
    parts = stages["screening"]["parts"]
    assert stages["screening"]["status"] == "skipped (not installed)"
    assert {p["status"] for p in parts.values()} == {"skipped (not installed)"} and len(parts) == 7
    assert "onnxruntime-gpu" in parts["ort_cuda_fp16"]["reason"] and "TensorRT" in parts["tensorrt_fp16"]["reason"]
    assert "CUDA build of torch" in parts["torch_fp32"]["reason"]
    assert stages["screening"]["result"]["bounds"]["fp16"]["disease_prob"]["atol"] == 0.01
    assert run.exit_code() == 1 and run.exit_code(allow_missing=True) == 0


def test_gpu_check_on_a_cpu_machine_exits_1_with_one_line() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "no NVIDIA GPU" in lines[0], proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------- 13: the probe
def test_probe_names_each_missing_import(tmp_path) -> None:
    from cardiacnets.export.gpu_check import check_imports, probe

    found = check_imports({"numpy": True, "cns_no_such_module": True})
    assert found["numpy"] == np.__version__ and found["cns_no_such_module"].startswith("missing: ModuleNotFoundError")
    run = _run(tmp_path)
    run.stage("probe", lambda s: probe(s, {"numpy": True, "cns_no_such_module": True, "cns_optional_gpu": False}))
    entry = _stages(tmp_path)["probe"]
    assert entry["status"] == "failed" and "cns_no_such_module" in entry["parts"]["imports"]["error"]
    assert "numpy" not in entry["parts"]["imports"]["error"]
    assert entry["result"]["versions"]["onnxruntime"]["version"]


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith("cardiacnets")}


def test_the_probe_checks_every_import_the_stages_need() -> None:
    import importlib.metadata

    from cardiacnets.export.gpu_check import PROBE_IMPORTS

    stage_modules = ("gpu_check.py", "gpu_bench.py", "trt.py", "trt_jobs.py")
    files = [REPO / "scripts" / "gpu_check.py", *(REPO / "export" / f for f in stage_modules)]
    needed = {n.split(".")[0] for f in files for n in _third_party_imports(f)}
    assert needed <= set(PROBE_IMPORTS), needed - set(PROBE_IMPORTS)
    # diffusers is carried without its dependencies: the probe imports each of them
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    providers = {norm(d): m for m, dists in importlib.metadata.packages_distributions().items() for d in dists}
    for requirement in importlib.metadata.requires("diffusers") or []:
        if "extra ==" in requirement:
            continue
        dist = norm(re.split(r"[<>=!~;\[ ]", requirement)[0])
        assert providers.get(dist) in PROBE_IMPORTS, dist


# ----------------------------------------------------------------------------------- the GPU tier (CNS_GPU=1)
@pytest.mark.gpu
def test_trt_runner_uses_its_own_stream_and_finds_fp16_layers(tmp_path) -> None:
    from cardiacnets.export.gpu_bench import build_test_bundle, require_cuda_torch, require_tensorrt
    from cardiacnets.export.gpu_check import NotInstalled
    from cardiacnets.export.trt import TrtRunner, build_engine
    from cardiacnets.export.trt_jobs import plan_target

    try:
        torch = require_cuda_torch()
        require_tensorrt()
    except NotInstalled as exc:
        pytest.fail(f"the GPU tier needs {exc}")
    build_test_bundle(tmp_path)
    (job,) = [j for j in plan_target(tmp_path / "bundle", max_batch=8) if j.name == "screening"]
    engine, _ = build_engine(job.onnx, job.profile, cache_dir=tmp_path / "cache")
    runner = TrtRunner(engine)
    assert runner.stream.cuda_stream != torch.cuda.default_stream().cuda_stream
    runner.run(job.feeds[0])
    assert runner.layer_precisions()["FP16"] > 0


@pytest.mark.gpu
def test_cuda_session_runs_on_cuda_through_iobinding(tmp_path) -> None:
    from cardiacnets.export.gpu_bench import require_provider
    from cardiacnets.export.onnx_export import ort_session, screening_feeds
    from cardiacnets.export.trt import IoBoundSession, ort_gpu_session

    require_provider("cuda")
    bundle = make_tiny_bundle(tmp_path / "bundle")
    session = ort_gpu_session(bundle / "screening.onnx", "cuda")
    assert session.get_providers()[0] == CUDA
    feed = screening_feeds(4, np.random.default_rng(0))
    want = ort_session(bundle / "screening.onnx").run(["disease_prob"], feed)[0]
    got = IoBoundSession(session, feed, device="cuda").outputs()["disease_prob"]
    np.testing.assert_allclose(got, want, atol=1e-3)
