"""`cnscreen --cine`: the default bundle's ECG2CMR graphs generate labelled, seeded cines on onnxruntime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from cardiacnets.bundle import default_bundle_path, load_bundle  # noqa: E402
from cardiacnets.edge.cine import generate_cines, sample_view  # noqa: E402
from cardiacnets.edge.screen import Screener  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ecg" / "synthetic_hcm.hea"


@pytest.fixture(scope="module")
def prepared():
    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.fail("the default bundle is missing: run `make demo-model`")
    _, prepared = Screener(device="cpu").screen_file(EXAMPLE, keep_signal=True)
    return prepared


def test_same_seed_same_cine_other_seed_other_cine(prepared) -> None:
    bundle = load_bundle(default_bundle_path())
    spec = bundle.manifest["cine"]["views"]["sa"]
    providers = ["CPUExecutionProvider"]
    a, info = sample_view(bundle, "sa", prepared.ecg, providers=providers, steps=3, seed=1)
    b, _ = sample_view(bundle, "sa", prepared.ecg, providers=providers, steps=3, seed=1)
    c, _ = sample_view(bundle, "sa", prepared.ecg, providers=providers, steps=3, seed=2)
    assert a.shape == tuple(spec["cine_shape"]) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3
    assert info["steps"] == 3 and info["scheduler"] == "dpm"


def _sampler(noise_views: set[str]):
    """A stand-in for ``sample_view``: a real synthetic cine of the bundle's shape, or noise for ``noise_views``."""
    from cardiacnets.diffusion.data import resample_cine
    from cardiacnets.synth import simulate

    subject = simulate(1, seed=11, mode="balanced")
    rng = np.random.default_rng(0)

    def sample(bundle, view, ecg, **kwargs):
        shape = bundle.manifest["cine"]["views"][view]["cine_shape"]
        cine = resample_cine(subject[f"cine_{view}"], *shape).numpy()[0]
        if view in noise_views:
            cine = rng.random(shape).astype(np.float32)
        return cine, {"view": view, "steps": kwargs.get("steps"), "seed": kwargs.get("seed")}

    return sample


def test_generate_writes_every_format_labelled_as_ai_generated(prepared, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("cardiacnets.edge.cine.sample_view", _sampler(set()))
    bundle = load_bundle(default_bundle_path())
    info, gifs = generate_cines(bundle, prepared, out_dir=tmp_path, stem="ecg", device="cpu")
    assert set(info["views"]) == {"sa", "la"} and set(gifs) == {"short axis", "4-chamber long axis"}
    for view, entry in info["views"].items():
        assert entry["frames_with_heart"] == "8/8" and "refused" not in entry
        for kind in ("gif", "nii.gz", "npy"):
            path = Path(entry["files"][kind])
            assert path.is_file(), path
            sidecar = json.loads(Path(str(path) + ".json").read_text())
            assert "AI-generated" in json.dumps(sidecar)
        cine = np.load(entry["files"]["npy"])
        assert cine.shape == tuple(bundle.manifest["cine"]["views"][view]["cine_shape"])


def test_a_cine_without_a_heart_is_neither_written_nor_shown(prepared, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("cardiacnets.edge.cine.sample_view", _sampler({"la"}))
    info, gifs = generate_cines(
        load_bundle(default_bundle_path()), prepared, out_dir=tmp_path, stem="ecg", device="cpu"
    )
    la, sa = info["views"]["la"], info["views"]["sa"]
    assert la["files"] == {} and la["frames_with_heart"] == "0/8"
    assert la["refused"].startswith("not shown: no heart found in 8 of 8 frames")
    assert "refused" not in sa and set(sa["files"]) >= {"gif", "npy"}
    assert sorted(p.name for p in tmp_path.iterdir() if "cine_la" in p.name) == []  # nothing of the LA cine on disk
    caption = next(k for k in gifs if k.startswith("4-chamber long axis"))
    assert la["refused"] in caption and gifs[caption].startswith(b"GIF")  # the report shows the line, not the cine
    assert gifs["short axis"].startswith(b"GIF")


def _cnscreen(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_cines_go_where_the_user_asked_never_beside_the_input(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for suffix in (".hea", ".dat"):
        shutil.copy(EXAMPLE.with_suffix(suffix), inputs / EXAMPLE.with_suffix(suffix).name)
    ecg = inputs / EXAMPLE.name
    before = sorted(p.name for p in inputs.iterdir())
    refused = _cnscreen(str(ecg), "--cine", "--device", "cpu")
    assert refused.returncode == 2 and "--cine-dir" in refused.stderr
    cines = tmp_path / "cines"
    report = tmp_path / "report.html"
    done = _cnscreen(str(ecg), "--cine", "--cine-steps", "2", "--cine-dir", str(cines), "--report", str(report),
                     "--out", str(tmp_path / "result.json"), "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in inputs.iterdir()) == before  # nothing written beside the input
    written = {line.removeprefix("wrote ").strip() for line in done.stderr.splitlines() if line.startswith("wrote ")}
    on_disk = {str(p) for p in cines.iterdir() if not p.name.endswith(".json")} | {
        str(report),
        str(tmp_path / "result.json"),
    }
    assert on_disk <= written  # every file written is listed
    result = json.loads((tmp_path / "result.json").read_text())
    html = report.read_text()
    for entry in result["cine"]["views"].values():  # 2 denoising steps: noise, refused; or a heart, written
        shown = "refused" not in entry
        assert (set(entry["files"]) >= {"gif", "nii.gz", "npy"}) if shown else entry["files"] == {}
        assert shown or html_escape(entry["refused"]) in html  # the report escapes text it shows
    assert html.count("data:image/gif;base64,") == 2  # each view: its cine, or the still saying why not
