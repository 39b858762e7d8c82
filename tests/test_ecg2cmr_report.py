"""ECG2CMR faithfulness report: runs on a saved pipeline and writes the published results shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from cardiacnets.diffusion.unet import EcgConditionedUNet3D  # noqa: E402
from cardiacnets.diffusion.vae import create_vae  # noqa: E402
from cardiacnets.training.ecg2cmr_report import ecg2cmr_report  # noqa: E402
from tests.test_diffusion import SIZE, tiny_config, tiny_encoder  # noqa: E402


def test_report_shape_and_synthetic_label(tmp_path: Path) -> None:
    from cardiacnets import EcgToCmrPipeline

    torch.manual_seed(0)
    pipeline = EcgToCmrPipeline(
        tiny_encoder(), EcgConditionedUNet3D(tiny_config()), create_vae("tiny", image_size=SIZE)
    )
    pipeline.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "report"
    # few steps keep the test fast; the published report uses the defaults (DPM-Solver++ 20, DDIM 100)
    results = ecg2cmr_report(
        tmp_path / "pipe", "synthetic", out, n_subjects=60, max_items=8, ddim_items=8, dpm_steps=2, ddim_steps=6
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_subjects"] == 8 and saved["synthetic"] is True
    for condition in ("conditional", "shuffled_ecg", "unconditional", "autoencoder"):
        for phenotype in ("LVEDV", "LVM", "RVEDV"):
            assert set(saved["r"][condition][phenotype]) >= {"value", "ci"}
    for control in ("shuffled_ecg", "unconditional"):
        assert set(saved["conditional_minus"][control]["LVEDV"]) >= {"value", "ci"}
    assert set(saved["seconds_per_cine"]) == {"dpm2", "ddim6"} and set(saved["ssim"]) == {"dpm2", "ddim6"}
    assert 0 < saved["seconds_per_cine"]["dpm2"] < saved["seconds_per_cine"]["ddim6"]  # 2 steps vs 6
    for condition in ("conditional", "shuffled_ecg", "unconditional"):
        value = results["r"][condition]["LVEDV"]["value"]
        assert saved["r"][condition]["LVEDV"]["value"] == (value if value == value else None)  # NaN -> null
    json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert "SYNTHETIC" in (out / "report.md").read_text()


def test_both_views_share_one_results_file(tmp_path: Path) -> None:
    from cardiacnets import EcgToCmrPipeline
    from cardiacnets.diffusion.measure_la import LA_PHENOTYPES
    from cardiacnets.diffusion.unet import Ecg2CmrConfig

    torch.manual_seed(0)
    for view in ("sa", "la"):
        config = Ecg2CmrConfig.from_dict({**tiny_config().to_dict(), "view": view})
        pipe = EcgToCmrPipeline(tiny_encoder(), EcgConditionedUNet3D(config), create_vae("tiny", image_size=SIZE))
        pipe.save_pretrained(tmp_path / f"pipe-{view}")
    out = tmp_path / "report"
    kwargs = {"n_subjects": 60, "max_items": 8, "ddim_items": 0, "dpm_steps": 2}
    ecg2cmr_report(tmp_path / "pipe-sa", "synthetic", out, **kwargs)
    sa_only = json.loads((out / "results.json").read_text())
    ecg2cmr_report(tmp_path / "pipe-la", "synthetic", out, **kwargs)
    saved = json.loads((out / "results.json").read_text())
    assert saved["r"] == sa_only["r"] and saved["view"] == "sa"  # the short axis is kept as it was
    for condition in ("conditional", "shuffled_ecg", "unconditional", "autoencoder"):
        assert set(saved["r_la"][condition]) == set(LA_PHENOTYPES)
        assert set(saved["r_la"][condition]["LVEDV"]) >= {"value", "ci"}
    assert saved["la"]["view"] == "la" and saved["la"]["r"] == saved["r_la"]
    assert set(saved["frames_with_heart"]) == {"sa", "la"}
    # the published share is the ECG-conditioned samples' (the frame check itself: tests/test_frame_quality.py; these
    # 16 x 16 cines are below the resolution its ranges hold for)
    for view, section in (("sa", saved), ("la", saved["la"])):
        shares = section["frames_with_heart_by_condition"]
        assert set(shares) == {"real", "conditional", "shuffled_ecg", "unconditional", "autoencoder"}
        assert saved["frames_with_heart"][view] == shares["conditional"] and 0.0 <= shares["conditional"] <= 1.0
    report = (out / "report.md").read_text()
    assert "## Short axis" in report and "## 4-chamber long axis" in report and "| LAV_max |" in report
