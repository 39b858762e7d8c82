"""``cnexport bundle-update-cine``: one view's cine graphs replaced, everything else kept byte for byte, the manifest
re-hashed and verified, and a generator conditioned on another ECG encoder refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from cardiacnets.bundle import default_bundle_path, load_bundle, verify_bundle  # noqa: E402
from cardiacnets.diffusion.pipeline import EcgToCmrPipeline, load_ecg_encoder  # noqa: E402
from cardiacnets.diffusion.unet import Ecg2CmrConfig, EcgConditionedUNet3D  # noqa: E402
from cardiacnets.diffusion.vae import create_vae  # noqa: E402
from cardiacnets.errors import InputError  # noqa: E402
from cardiacnets.export.bundle_update import update_bundle_cine  # noqa: E402
from cardiacnets.models.shipped import aligned_encoder_path  # noqa: E402


def _la_pipeline(encoder: torch.nn.Module, directory: Path) -> Path:
    """An untrained tiny 4-chamber generator (8 frames at 16 x 16) on ``encoder``, with the frame-position embedding
    (issue 23), so its export and parity check are exercised too."""
    torch.manual_seed(0)
    config = Ecg2CmrConfig.from_preset("tiny", "la", num_frames=8, height=16, width=16, latent_downsample=2,
                                       condition_dim=192, condition_tokens=12, global_condition=True,
                                       frame_position="sinusoidal")  # fmt: skip
    pipeline = EcgToCmrPipeline(encoder, EcgConditionedUNet3D(config), create_vae("tiny", image_size=16))
    return pipeline.save_pretrained(directory)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.fail("the default bundle is missing: run `make demo-model`")
    root = tmp_path_factory.mktemp("bundle") / "old"
    shutil.copytree(default_bundle_path(), root)
    return root


def test_one_view_is_replaced_and_the_rest_kept(source: Path, tmp_path: Path) -> None:
    pipe = _la_pipeline(load_ecg_encoder(aligned_encoder_path()), tmp_path / "pipe-la")
    old = load_bundle(source).manifest
    manifest = update_bundle_cine(source, pipe, tmp_path / "new", version="9.9.9")
    assert verify_bundle(tmp_path / "new") == [] and manifest["version"] == "9.9.9"
    assert manifest["digest"] != old["digest"]
    for rel, entry in old["files"].items():  # screening, trust, the short axis and the shared encoder: unchanged
        if not rel.startswith("cine/la/"):
            assert manifest["files"][rel]["sha256"] == entry["sha256"], rel
    assert manifest["files"]["cine/la/unet.onnx"]["sha256"] != old["files"]["cine/la/unet.onnx"]["sha256"]
    la = manifest["cine"]["views"]["la"]
    assert la["cine_shape"] == [8, 16, 16] and la["latent_shape"] == [4, 8, 8, 8]
    assert la["ecg_encoder"] == "cine/ecg_encoder.onnx"
    unet = manifest["models"]["cine_la_unet"]
    assert unet["weights_storage"]["dtype"] == "float16"  # stored as the replaced graph was
    assert unet["encoder_parity"]["max_abs"] < 0.02
    assert manifest["history"][-1]["from_version"] == old["version"]
    assert json.loads((source / "manifest.json").read_text())["digest"] == old["digest"]  # the source is untouched


def test_a_generator_on_another_ecg_encoder_is_refused(source: Path, tmp_path: Path) -> None:
    from cardiacnets.models.registry import create_model

    torch.manual_seed(1)
    other = create_model("ecg-vit-tiny").eval()  # same shape as the aligned encoder, other weights
    pipe = _la_pipeline(other, tmp_path / "pipe-other")
    with pytest.raises(InputError, match="ECG encoder differs"):
        update_bundle_cine(source, pipe, tmp_path / "new", version="9.9.9")
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.partial").exists()


# ------------------------------------------------------------------------------------- bundle-update-screening
def _screening_run(directory: Path, preprocess: dict, lead_sets: list[str] | None) -> Path:
    from cardiacnets.models.registry import save_pretrained
    from cardiacnets.targets import DISEASES
    from tests.test_export import _tiny_screening

    thresholds = {d: {"youden": 0.5, "high_specificity": 0.8, "default": "youden"} for d in DISEASES}
    metadata = {"thresholds": thresholds, "preprocess": preprocess, "lead_sets": lead_sets,
                "training_data": {"description": "tiny test model", "synthetic": True}}  # fmt: skip
    save_pretrained(_tiny_screening(seed=4), directory / "best", metadata=metadata)
    return directory


def test_the_screening_model_is_replaced_trust_refitted_per_lead_set_and_cines_kept(
    source: Path, tmp_path: Path
) -> None:
    from cardiacnets.export.bundle_update import update_bundle_screening
    from cardiacnets.export.trust_fit import TrustData

    old = load_bundle(source).manifest
    preprocess = {"kind": "full", "config": old["preprocess"]}
    run = _screening_run(tmp_path / "run", preprocess, ["12", "I"])
    manifest, evaluation = update_bundle_screening(source, run, tmp_path / "new", version="9.9.8",
                                                   trust_data=TrustData(n_subjects=600))  # fmt: skip
    assert verify_bundle(tmp_path / "new") == [] and manifest["version"] == "9.9.8"
    for rel, entry in old["files"].items():  # the cine graphs stay byte for byte
        if rel.startswith("cine/"):
            assert manifest["files"][rel]["sha256"] == entry["sha256"], rel
    assert manifest["files"]["screening.onnx"]["sha256"] != old["files"]["screening.onnx"]["sha256"]
    assert manifest["lead_sets"] == ["12", "I"] and manifest["cine"] == old["cine"]
    assert manifest["training_data"]["description"] == "tiny test model"
    trust = json.loads((tmp_path / "new" / "trust.json").read_text())
    assert set(trust["lead_sets"]) == {"I"} and evaluation is not None and "I" in evaluation["lead_sets"]
    assert all(entry["scale"] == "calibrated" for entry in manifest["thresholds"].values())
    assert manifest["history"][-1]["from_version"] == old["version"]
    assert json.loads((source / "manifest.json").read_text())["digest"] == old["digest"]  # the source is untouched

    # The lead-masked model added to the original bundle for the reduced sets only: 12-lead results stay the same.
    from cardiacnets.edge.screen import Screener
    from cardiacnets.export.bundle_update import add_lead_set_model
    from tests.test_edge_leadsets import write_single_lead_wfdb
    from tests.test_edge_screen import write_wfdb_ecg

    combined = add_lead_set_model(source, tmp_path / "new", tmp_path / "combined", version="9.9.9")
    assert verify_bundle(tmp_path / "combined") == [] and combined["lead_sets"] == ["12", "I"]
    assert combined["models"]["screening"] == old["models"]["screening"] and combined["thresholds"] == old["thresholds"]
    added = combined["models"]["screening_lead_sets"]
    assert added["lead_sets"] == ["I"] and combined["files"][added["file"]]["sha256"] == manifest["files"][
        "screening.onnx"]["sha256"]  # fmt: skip
    spec = json.loads((tmp_path / "combined" / "trust.json").read_text())
    old_spec = json.loads((source / "trust.json").read_text())
    assert spec["calibration"] == old_spec["calibration"] and spec["ood"] == old_spec["ood"]
    assert spec["lead_sets"]["I"]["calibration"] == trust["lead_sets"]["I"]["calibration"]
    # a single-lead file runs on the added graph and is decided with its artefacts; a 12-lead file as before
    both, donor = Screener(tmp_path / "combined", device="cpu"), Screener(tmp_path / "new", device="cpu")
    original = Screener(source, device="cpu")
    single = write_single_lead_wfdb(tmp_path)
    got, want = both.screen_file(single)[0], donor.screen_file(single)[0]
    assert got["lead_set"] == "I" and got["diseases"] == want["diseases"] and got["phenotypes"] == want["phenotypes"]
    twelve = write_wfdb_ecg(tmp_path / "twelve")
    got, want = both.screen_file(twelve)[0], original.screen_file(twelve)[0]
    assert got["lead_set"] == "12" and got["diseases"] == want["diseases"] and got["phenotypes"] == want["phenotypes"]
    from tests.edge_fixtures import make_tiny_bundle

    with pytest.raises(InputError, match="no reduced lead set"):  # a donor without a lead-masked model
        add_lead_set_model(source, make_tiny_bundle(tmp_path / "plain"), tmp_path / "refused", version="1")


def test_screening_update_refusals(source: Path, tmp_path: Path) -> None:
    from cardiacnets.export.bundle_update import update_bundle_screening

    old = load_bundle(source).manifest
    run = _screening_run(tmp_path / "run", {"kind": "full", "config": old["preprocess"]}, None)
    with pytest.raises(InputError, match="trust artefacts"):  # old artefacts would describe the old model
        update_bundle_screening(source, run, tmp_path / "new", version="1")
    changed = {**old["preprocess"], "savgol_window": int(old["preprocess"].get("savgol_window") or 15) + 2}
    other = _screening_run(tmp_path / "other", {"kind": "full", "config": changed}, None)
    with pytest.raises(InputError, match="preprocesses ECGs differently"):
        update_bundle_screening(source, other, tmp_path / "new", version="1", trust_data=object())
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.partial").exists()
