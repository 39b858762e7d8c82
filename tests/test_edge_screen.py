"""`cnscreen FILE`: end-to-end screening on a tiny bundle (numbers checked against numpy), CLI, PHI, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.edge.batch import result_row
from cardiacnets.edge.screen import Screener, prepare_file
from cardiacnets.synth.writers import write_wfdb
from tests.edge_fixtures import make_tiny_bundle, reference_outputs
from tests.synthetic_ecg import synthetic_ecg

REPO = Path(__file__).resolve().parents[1]
CNSCREEN = [sys.executable, "-c", "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"]


def write_wfdb_ecg(directory: Path, name: str = "rec", *, patient: str = "DOE^JANE", mrn: str = "MRN-123456") -> Path:
    """A 10-s synthetic WFDB record at 500 Hz whose header comments hold patient identifiers (for the PHI tests)."""
    signal = synthetic_ecg(fs=500.0, duration_s=10.0, rng=np.random.default_rng(3))
    comments = [f"patient: {patient}", f"mrn: {mrn}", "age: 61", "sex: F"]
    return write_wfdb(directory / name, signal, comments=comments)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def test_screen_result_matches_the_graph_in_numpy(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path)
    screener = Screener(tiny_bundle, device="cpu")
    result, prepared = screener.screen_file(path)
    expected = reference_outputs(prepared.ecg[None], prepared.covariates[None], prepared.covariate_mask[None])
    for i, disease in enumerate(("CAD", "PH", "PC", "CM", "HF")):
        p = float(expected["disease_prob"][0, i])
        assert result["diseases"][disease]["probability"] == pytest.approx(p, abs=1e-4)
        assert result["diseases"][disease]["flagged"] == (p >= 0.5)
        assert result["diseases"][disease]["decision"] == ("flagged" if p >= 0.5 else "clear")
    assert result["phenotypes"]["LVEDV"]["value"] == pytest.approx(float(expected["phenotypes"][0, 0]), abs=1e-2)
    assert result["key_phenotypes"]["LVEF"]["unit"] == "%"
    assert result["model"]["trained_on_synthetic"] is True and "SYNTHETIC" in result["note"]
    assert result["model"]["digest"] == screener.bundle.digest and len(result["model"]["digest"]) == 64
    assert result["schema"] == "cardiacnets.screening/2"
    # A bundle without trust data says so, and its results carry no interval or distribution check.
    assert result["distribution"] is None and "no calibration" in result["note_trust"]


def test_batch_of_prepared_equals_one_by_one(tiny_bundle: Path, tmp_path: Path) -> None:
    screener = Screener(tiny_bundle, device="cpu")
    items = [prepare_file(write_wfdb_ecg(tmp_path / str(i)), screener.preprocess_config) for i in range(3)]
    batched = screener.infer_prepared(items)
    for item, out in zip(items, batched, strict=False):
        single = screener.infer_prepared([item])[0]
        np.testing.assert_allclose(out["disease_prob"], single["disease_prob"], atol=1e-6)


def test_cli_json_no_phi_and_no_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path)
    code = (
        "import sys, json; from cardiacnets.edge.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'the screening path imported torch'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), "--bundle", str(tiny_bundle), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["diseases"]) == {"CAD", "PH", "PC", "CM", "HF"}
    assert "DOE" not in proc.stdout + proc.stderr and "MRN-123456" not in proc.stdout + proc.stderr


def test_cli_summary_and_out_file(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path)
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [*CNSCREEN, str(path), "--bundle", str(tiny_bundle), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "coronary artery disease" in proc.stdout and "SYNTHETIC" in proc.stdout
    assert json.loads(out.read_text())["path"] == str(path)


def test_tampered_bundle_is_refused_with_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "screening.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "screening.onnx").write_bytes(bytes(data))
    proc = subprocess.run(
        [*CNSCREEN, str(write_wfdb_ecg(tmp_path / "e")), "--bundle", str(copy)], capture_output=True, text=True
    )
    assert proc.returncode == 5  # the bundle failed verification
    assert "sha256" in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_gpu_provider_is_a_clear_error(tiny_bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    proc = subprocess.run(
        [*CNSCREEN, str(write_wfdb_ecg(tmp_path)), "--bundle", str(tiny_bundle), "--device", "cuda"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "CUDAExecutionProvider" in proc.stderr and "Traceback" not in proc.stderr


def _wfdb_records(conformance_dir: Path, tmp_path: Path) -> list[Path]:
    files = sorted(conformance_dir.glob("wfdb/**/*.hea"))
    assert files, "the conformance corpus holds WFDB records"
    return files + [write_wfdb_ecg(tmp_path)]


def test_native_wfdb_path_reads_exactly_what_wfdb_reads(
    conformance_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cardiacnets.io import read_ecg, wfdb_reader

    files = _wfdb_records(conformance_dir, tmp_path)
    for path in files:  # every record here is format 16 with complete signal lines: none may fall back to wfdb
        _, _, body = wfdb_reader._check_header(path, 1 << 30)
        assert wfdb_reader._read_simple(path, body) is not None, path.name
    native = [read_ecg(path) for path in files]
    monkeypatch.setattr(wfdb_reader, "_read_simple", lambda header, body: None)
    for path, fast in zip(files, native, strict=True):
        slow = read_ecg(path)
        assert fast.signal.dtype == slow.signal.dtype and np.array_equal(fast.signal, slow.signal), path.name
        assert fast.fs == slow.fs and fast.meta == slow.meta, path.name


def test_native_wfdb_path_leaves_odd_records_to_wfdb(tmp_path: Path) -> None:
    from cardiacnets.io import wfdb_reader

    header = write_wfdb_ecg(tmp_path)
    lines = header.read_text().splitlines()
    variants = {
        "format 212": lines[1].replace(" 16 ", " 212 ", 1),
        "samples per frame": lines[1].replace(" 16 ", " 16x2 ", 1),
        "uncalibrated gain": lines[1].replace(" 1000.0(0)/mV ", " 0(0)/mV ", 1),
    }
    for what, line in variants.items():
        assert wfdb_reader._read_simple(header, [lines[0], line] + lines[2:13]) is None, what
    assert wfdb_reader._read_simple(header, [lines[0].replace(" 500 ", " 500/1000 ")] + lines[1:13]) is None


def test_screening_a_wfdb_file_imports_neither_wfdb_nor_pandas(tiny_bundle: Path, tmp_path: Path) -> None:
    """Cold start: wfdb's import pulls in pandas (~0.3 s); the native path for common records needs neither."""
    path = write_wfdb_ecg(tmp_path)
    code = (
        "import sys\nfrom cardiacnets.edge.screen import Screener\n"
        f"Screener({str(tiny_bundle)!r}, device='cpu').screen_file({str(path)!r})\n"
        "print(sorted(m for m in ('wfdb', 'pandas') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "[]"


def test_result_carries_measurements_and_the_carts_own(tiny_bundle: Path, conformance_dir: Path) -> None:
    from cardiacnets.measure import MEASUREMENT_KEYS

    screener = Screener(tiny_bundle, device="cpu")
    result, _ = screener.screen_file(conformance_dir / "ge_muse_xml" / "braveheart" / "example1.xml")
    measured, cart = result["measurements"], result["cart_measurements"]
    assert tuple(measured) == MEASUREMENT_KEYS and tuple(cart) == MEASUREMENT_KEYS
    assert (
        abs(measured["heart_rate_bpm"] - cart["heart_rate_bpm"]) <= 2 and abs(measured["qrs_ms"] - cart["qrs_ms"]) <= 15
    )
    row = result_row(result, include_phi=False)
    assert {k: row[k] for k in MEASUREMENT_KEYS} == measured


def test_a_paced_ecg_is_screened_but_not_reliable(tiny_bundle: Path, tmp_path: Path) -> None:
    from scipy.signal import find_peaks

    from tests.test_measurements import _with_spikes

    ecg = synthetic_ecg(fs=500.0, duration_s=10.0, rng=np.random.default_rng(5))
    peaks, _ = find_peaks(ecg[1], height=0.6 * ecg[1].max(), distance=150)
    onsets = [p / 500.0 - 0.04 for p in peaks if p > 50]  # a ventricular pacing spike 40 ms before each R peak
    path = write_wfdb(tmp_path / "paced", _with_spikes(ecg, onsets, 500.0))
    result, _ = Screener(tiny_bundle, device="cpu").screen_file(path)
    assert result["measurements"]["paced"] is True and result["measurements"]["rhythm"] == "paced"
    assert result["reliable"] is False and "Pacemaker" in result["note_paced"]
    assert result["qc"]["reliable"] is True  # the signal is fine: it is the model that has never seen pacing
