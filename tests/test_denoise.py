"""``cnscreen denoise``: the model's cleaning kept in mV, written in four formats that read back within their
quantisation, archives with error rows and exactly-once resume, and one-line CLI errors."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cardiacnets.edge.cli import app
from cardiacnets.edge.denoise import LOG_NAME, load_job
from cardiacnets.io import read_ecg
from cardiacnets.io.writers import EcgFileMeta, write_ecg
from cardiacnets.preprocess import PreprocessConfig, clean_ecg, clean_record, minmax_scale, preprocess_ecg
from cardiacnets.record import LEADS
from tests.synthetic_ecg import synthetic_ecg

AECG = "hl7_aecg/Example aECG.xml"  # 500 Hz, 10 s, with patient name, ID, birth date, acquisition time and device
PTBXL = "wfdb/ptbxl/00001_lr.hea"  # 100 Hz, 10 s
#: extension -> largest |read back - cleaned| in mV: half the format's step, plus float32 rounding of the reader.
BOUND_MV = {".csv": 0.05e-3, ".hea": 0.5e-3, ".edf": 0.5e-3, ".xml": 0.5e-3}
F32_SLACK = 1e-6


def cnscreen(*args: str | Path):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, [str(a) for a in args])


def qrs_amplitudes(signal: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    """Peak-to-peak of each lead within +-60 ms of each R peak: ``(12, beats)`` mV."""
    half = int(0.06 * fs)
    return np.stack([np.ptp(signal[:, p - half : p + half], axis=1) for p in peaks], axis=1)


@pytest.fixture(scope="module")
def clean_truth() -> tuple[np.ndarray, np.ndarray]:
    """A noise-free synthetic ECG (500 Hz, 10 s) and its R peaks in lead II (away from the edges)."""
    from scipy.signal import find_peaks

    truth = synthetic_ecg(fs=500.0, duration_s=10.0, noise_mV=0.0, rng=np.random.default_rng(1))
    peaks, _ = find_peaks(truth[1], height=0.8)
    return truth, peaks[(peaks > 250) & (peaks < truth.shape[1] - 250)]


# ------------------------------------------------------------------------------------------------ the cleaning


@pytest.mark.parametrize("fs", [500.0, 250.0, 1000.0])
def test_model_input_is_the_cleaning_scaled(fs: float) -> None:
    """On a 10-s record the model input is exactly clean_ecg at the model's rate, min-max scaled: one cleaning."""
    signal = synthetic_ecg(fs=fs, duration_s=10.0, noise_mV=0.03, wander_mV=0.4, rng=np.random.default_rng(5))
    config = PreprocessConfig()
    for heart_rate in (None, 80.0):
        cleaned = clean_ecg(signal, fs, config, heart_rate, out_fs=config.target_fs)
        expected = preprocess_ecg(signal, fs, config, heart_rate)
        assert np.array_equal(minmax_scale(cleaned).astype(np.float32), expected)


def test_rate_length_and_lead_order() -> None:
    signal = synthetic_ecg(fs=257.0, duration_s=9.3, rng=np.random.default_rng(2))  # (12, 2390)
    native = clean_ecg(signal, 257.0)
    assert native.shape == signal.shape and native.dtype == np.float64
    for out_fs in (500.0, 100.0, 1000.0):
        assert clean_ecg(signal, 257.0, out_fs=out_fs).shape == (12, int(np.ceil(2390 * out_fs / 257.0)))
    # Leads stay in place: a lead of zeros stays (near) zero, the others keep their own morphology.
    signal[4] = 0.0
    cleaned = clean_ecg(signal, 257.0)
    assert np.abs(cleaned[4]).max() < 1e-9
    correlations = [np.corrcoef(cleaned[k], signal[k])[0, 1] for k in range(12) if k != 4]
    assert min(correlations) > 0.9
    batch = clean_ecg(np.stack([signal, signal]), 257.0)
    assert batch.shape == (2, 12, 2390) and np.allclose(batch[0], cleaned)


def test_baseline_wander_is_removed_and_qrs_kept(clean_truth: tuple[np.ndarray, np.ndarray]) -> None:
    """A 1-mV 0.3-Hz drift on every lead comes out more than 20 dB down (measured 22.4 dB); QRS amplitudes stay
    within 2 % of the drift-free truth (measured 0.987-1.003)."""
    truth, peaks = clean_truth
    t = np.arange(truth.shape[1]) / 500.0
    drift = np.sin(2 * np.pi * 0.3 * t + 0.4)
    residual = clean_ecg(truth + drift, 500.0) - clean_ecg(truth, 500.0)
    basis = np.exp(-2j * np.pi * 0.3 * t)
    left = 2 * np.abs(residual @ basis) / t.size  # (12,) amplitude of the 0.3-Hz component left, mV
    assert np.all(20 * np.log10(1.0 / left) > 20.0), left
    ratio = np.median(
        qrs_amplitudes(clean_ecg(truth + drift, 500.0), peaks, 500.0) / qrs_amplitudes(truth, peaks, 500.0), axis=1
    )
    assert np.all(np.abs(ratio - 1) < 0.02), ratio


def test_high_frequency_noise_is_removed_and_qrs_kept(clean_truth: tuple[np.ndarray, np.ndarray]) -> None:
    """White noise of 10 uV (a quiet cart): its power above 100 Hz falls by more than 30 dB (measured 35-57 dB) and
    the QRS complexes of the leads taller than 1 mV keep their amplitude within 6 % (measured 3.3-4.4 % smaller).
    (Soft wavelet thresholding shrinks QRS amplitude more as the noise grows: 10-14 % at 50 uV.)"""
    from scipy.signal import welch

    truth, peaks = clean_truth
    noise = 0.01 * np.random.default_rng(2).standard_normal(truth.shape)
    cleaned = clean_ecg(truth + noise, 500.0)
    freqs, before = welch(noise, 500.0, nperseg=1024)
    _, after = welch(cleaned - clean_ecg(truth, 500.0), 500.0, nperseg=1024)
    high = freqs > 100
    assert np.all(10 * np.log10(before[:, high].sum(1) / after[:, high].sum(1)) > 30.0)
    tall = qrs_amplitudes(truth, peaks, 500.0).min(axis=1) > 1.0
    assert tall.sum() >= 6
    ratio = np.median(qrs_amplitudes(cleaned, peaks, 500.0) / qrs_amplitudes(truth, peaks, 500.0), axis=1)
    assert np.all(np.abs(ratio[tall] - 1) < 0.06), ratio


# --------------------------------------------------------------------------------------------- files, one by one


@pytest.mark.parametrize("extension", [".csv", ".hea", ".edf", ".xml"])
@pytest.mark.parametrize("rel", [AECG, PTBXL])
def test_round_trip_in_every_format(tmp_path: Path, conformance_dir: Path, rel: str, extension: str) -> None:
    source = conformance_dir / rel
    result = cnscreen("denoise", source, "--out", tmp_path / f"clean{extension}")
    assert result.exit_code == 0, result.output
    record = read_ecg(source)
    expected = clean_record(record, load_job().config)
    back = read_ecg(tmp_path / f"clean{extension}")
    assert back.fs == record.fs and back.leads == LEADS and back.signal.shape == expected.shape
    assert np.abs(back.signal - expected).max() <= BOUND_MV[extension] + F32_SLACK
    if extension != ".csv":  # the CSV reader keeps no acquisition time
        assert back.meta.get("acquired") == record.meta.get("acquired")
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for value in record.meta["phi"].values():  # patient identifiers never reach the file
        assert isinstance(value, list) or str(value).encode() not in written


def test_fs_resamples_the_cleaned_ecg(tmp_path: Path, conformance_dir: Path) -> None:
    record = read_ecg(conformance_dir / AECG)
    for out_fs in (250, 1000):
        out = tmp_path / f"clean{out_fs}.hea"
        assert cnscreen("denoise", conformance_dir / AECG, "--out", out, "--fs", out_fs).exit_code == 0
        back = read_ecg(out)
        expected = clean_record(record, load_job().config, out_fs=out_fs)
        assert back.fs == out_fs and back.signal.shape == (12, record.n_samples * out_fs // 500)
        assert np.abs(back.signal - expected).max() <= BOUND_MV[".hea"] + F32_SLACK


def test_quantisation_of_large_signals(tmp_path: Path) -> None:
    """Beyond 32.767 mV WFDB keeps 1 uV (32-bit samples) and EDF says its coarser step."""
    signal = synthetic_ecg(fs=500.0, duration_s=2.0) * 40.0  # R waves of ~50 mV
    wfdb_file = write_ecg(tmp_path / "big.hea", signal, 500.0)
    assert wfdb_file.step_mv == 1e-3
    assert np.abs(read_ecg(tmp_path / "big.hea").signal - signal).max() <= 0.5e-3 + 1e-5
    edf_file = write_ecg(tmp_path / "big.edf", signal, 500.0, meta=EcgFileMeta(acquired="2001-02-03T04:05:06"))
    assert 1e-3 < edf_file.step_mv < 2e-3
    back = read_ecg(tmp_path / "big.edf")
    assert np.abs(back.signal - signal).max() <= edf_file.max_error_mv + 1e-5
    assert back.meta["acquired"] == "2001-02-03T04:05:06"


def test_stdout_and_plot(tmp_path: Path, conformance_dir: Path) -> None:
    result = cnscreen("denoise", conformance_dir / AECG, "--out", "-", "--plot", tmp_path / "p.png")
    assert result.exit_code == 0
    text = result.stdout_bytes.decode()
    assert text.splitlines()[1:3] == ["# fs=500", "# units=mV"] and "time_s,I,II,III,aVR" in text
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        cnscreen("denoise", conformance_dir / AECG, "--out", tmp_path / "c.xml", "--plot", tmp_path / "p.pdf").exit_code
        == 0
    )
    assert (tmp_path / "p.pdf").read_bytes()[:5] == b"%PDF-"


def test_refuses_to_overwrite_unless_forced(tmp_path: Path, conformance_dir: Path) -> None:
    out = tmp_path / "clean.hea"
    assert cnscreen("denoise", conformance_dir / AECG, "--out", out).exit_code == 0
    before = (tmp_path / "clean.dat").read_bytes()
    (tmp_path / "clean.dat").write_bytes(b"x")
    again = cnscreen("denoise", conformance_dir / AECG, "--out", out)
    assert again.exit_code == 4 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert (tmp_path / "clean.dat").read_bytes() == b"x"
    assert cnscreen("denoise", conformance_dir / AECG, "--out", out, "--force").exit_code == 0
    assert (tmp_path / "clean.dat").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["missing.xml", "--out", "x.csv"], 3, "missing.xml: no such file"),
        ([AECG, "--out", "x.txt"], 1, "unknown output extension '.txt'"),
        ([AECG, "--out", "x.csv", "--format", "edf"], 1, "is csv, not edf"),
        ([AECG, "--out", "x.csv", "--fs", "-5"], 1, "--fs must be"),
        ([AECG, "--out", "x.csv", "--plot", "x.gif"], 1, "the plot is drawn as"),
        ([AECG, "--out", "no/such/folder/x.csv"], 4, "does not exist"),
        ([AECG, "--out", "my ecg.hea"], 1, "WFDB record names hold only"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, conformance_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                 args: list[str], code: int, says: str) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNS_DEBUG", raising=False)
    args = [str(conformance_dir / a) if a == AECG else a for a in args]
    result = cnscreen("denoise", *args)
    assert result.exit_code == code, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_edf_rate_it_cannot_state_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="resample"):
        write_ecg(tmp_path / "x.edf", synthetic_ecg(fs=257.0, duration_s=9.3), 257.0)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------ archives


def build_source(root: Path, conformance_dir: Path) -> None:
    (root / "vendor").mkdir(parents=True)
    shutil.copy(conformance_dir / AECG, root / "vendor" / "Example aECG.xml")
    for rel in ("wfdb/ptbxl/00001_lr.hea", "wfdb/ptbxl/00001_lr.dat"):
        shutil.copy(conformance_dir / rel, root / Path(rel).name)
    nested = root / "ward" / "day1"
    nested.mkdir(parents=True)
    write_ecg(nested / "syn.csv", synthetic_ecg(fs=250.0, duration_s=8.0), 250.0)
    (root / "ward" / "broken.xml").write_text("<?xml version='1.0'?><RestingECG><Waveform>")


def read_log(out: Path) -> list[dict[str, str]]:
    with (out / LOG_NAME).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_archive_mirrors_paths_logs_errors_and_resumes_exactly_once(tmp_path: Path, conformance_dir: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "clean"
    build_source(source, conformance_dir)
    first = cnscreen("denoise", source, "--out", out, "--format", "edf", "--quiet")
    assert first.exit_code == 3 and "3 written, 1 error" in first.stderr
    rows = {row["path"]: row for row in read_log(out)}
    assert set(rows) == {"vendor/Example aECG.xml", "00001_lr.hea", "ward/day1/syn.csv", "ward/broken.xml"}
    assert rows["ward/broken.xml"]["status"] == "error" and str(source) not in rows["ward/broken.xml"]["reason"]
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == {LOG_NAME, "vendor/Example aECG.edf", "00001_lr.edf", "ward/day1/syn.edf"}
    syn = read_ecg(out / "ward/day1/syn.edf")
    assert syn.fs == 250.0 and syn.n_samples == 2000
    assert np.abs(syn.signal - clean_record(read_ecg(source / "ward/day1/syn.csv"))).max() <= 0.5e-3 + F32_SLACK
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.edf")}
    log_before = (out / LOG_NAME).read_bytes()
    again = cnscreen("denoise", source, "--out", out, "--format", "edf", "--quiet")
    assert again.exit_code == 3 and "0 written, 0 error (4 already in" in again.stderr
    assert (out / LOG_NAME).read_bytes() == log_before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.edf")} == stamps
    other = cnscreen("denoise", source, "--out", out, "--format", "csv", "--quiet")
    assert other.exit_code == 4 and "rerun with those options" in other.stderr


def test_a_row_lost_to_a_kill_is_redone_once(tmp_path: Path, conformance_dir: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "clean"
    build_source(source, conformance_dir)
    assert cnscreen("denoise", source, "--out", out, "--quiet").exit_code == 3
    lines = (out / LOG_NAME).read_text().splitlines(keepends=True)
    lost = next(line for line in lines if line.startswith("vendor/"))
    (out / LOG_NAME).write_text("".join(line for line in lines if line is not lost) + lost[:20])  # torn row
    assert cnscreen("denoise", source, "--out", out, "--quiet").exit_code == 3
    paths = [row["path"] for row in read_log(out)]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == 4
    assert read_ecg(out / "vendor" / "Example aECG.csv").n_samples == 5000


def test_zip_source_and_unsafe_members(tmp_path: Path, conformance_dir: Path) -> None:
    archive = tmp_path / "ecgs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(conformance_dir / AECG, "a/Example aECG.xml")
        bundle.write(conformance_dir / AECG, "a/Example aECG.scp.xml")
        bundle.write(conformance_dir / PTBXL, "00001_lr.hea")
        bundle.write(conformance_dir / "wfdb/ptbxl/00001_lr.dat", "00001_lr.dat")
        bundle.writestr("../escape.csv", "# fs=500\nI,II\n1,2\n3,4\n")  # '..' is hidden: not an input
        bundle.writestr("/abs/escape.csv", "# fs=500\nI,II\n1,2\n3,4\n")
    out = tmp_path / "clean"
    result = cnscreen("denoise", archive, "--out", out, "--format", "wfdb", "--quiet")
    assert result.exit_code == 3
    rows = {row["path"]: row for row in read_log(out)}
    assert set(rows) == {"a/Example aECG.xml", "a/Example aECG.scp.xml", "00001_lr.hea", "/abs/escape.csv"}
    assert rows["/abs/escape.csv"]["status"] == "error" and "leaves the archive" in result.stderr + str(rows)
    assert not list(tmp_path.glob("**/escape*")) and not Path("/abs/escape.hea").exists()
    assert {rows[k]["output"] for k in ("a/Example aECG.xml", "a/Example aECG.scp.xml", "00001_lr.hea")} == {
        "a/Example_aECG.hea", "a/Example_aECG_scp.hea", "00001_lr.hea"}  # fmt: skip
    assert read_ecg(out / "00001_lr.hea").fs == 100.0


def test_archive_output_folder_rules(tmp_path: Path, conformance_dir: Path) -> None:
    source = tmp_path / "src"
    build_source(source, conformance_dir)
    inside = cnscreen("denoise", source, "--out", source / "clean")
    assert inside.exit_code == 1 and "inside the source folder" in inside.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = cnscreen("denoise", source, "--out", busy)
    assert (
        refused.exit_code == 4
        and "no denoise-log.csv" in refused.stderr
        and list(busy.iterdir()) == [busy / "keep.txt"]
    )
    named = cnscreen("denoise", source, "--out", tmp_path / "clean.csv")
    assert named.exit_code == 1 and "--out is a folder" in named.stderr and not (tmp_path / "clean.csv").exists()
    plot = cnscreen("denoise", source, "--out", tmp_path / "x", "--plot", tmp_path / "p.png")
    assert plot.exit_code == 1 and "--plot draws one ECG" in plot.stderr
