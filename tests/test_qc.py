"""Signal QC: every check fires on a constructed fault, a clean synthetic ECG passes, and the conformance corpus gets
the flags its known quirks call for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.errors import QcError
from cardiacnets.qc import QcResult, lead_peak_to_peak, run_qc
from cardiacnets.record import LEADS
from tests.synthetic_ecg import synthetic_ecg

FS = 500.0


def _clean(fs: float = FS, duration: float = 10.0, hr: float = 72.0, seed: int = 0) -> np.ndarray:
    return synthetic_ecg(fs, duration, hr, np.random.default_rng(seed), noise_mV=0.01, wander_mV=0.1)


def _codes(result: QcResult, severity: str | None = None) -> set[tuple[str, str | None]]:
    return {(f.code, f.lead) for f in result.findings if severity is None or f.severity == severity}


@pytest.mark.parametrize(("fs", "hr", "seed"), [(500.0, 72.0, 0), (1000.0, 55.0, 1), (250.0, 110.0, 2)])
def test_clean_synthetic_ecg_passes_without_findings(fs: float, hr: float, seed: int) -> None:
    result = run_qc(_clean(fs, hr=hr, seed=seed), fs)
    assert result.reliable, result.findings
    assert result.findings == []
    assert 0.5 < result.metrics["median_peak_to_peak_mV"] < 2.0
    json.dumps(result.to_dict())


def test_flat_and_missing_leads_fail() -> None:
    x = _clean()
    x[LEADS.index("V2")] = 0.05
    result = run_qc(x, FS, meta={"missing_leads": ["V6"]})
    assert not result.reliable
    assert ("flat_lead", "V2") in _codes(result, "fail")
    assert ("missing_lead", "V6") in _codes(result, "fail")
    assert not any(lead not in ("V2", "V6") for code, lead in _codes(result) if code in ("flat_lead", "missing_lead"))


def test_clipped_lead_fails() -> None:
    x = _clean()
    row = LEADS.index("V4")
    t = np.arange(x.shape[1]) / FS
    x[row] = np.clip(x[row] + 1.5 * np.sin(2 * np.pi * 0.2 * t), -3.0, 1.8)  # drift into an ADC rail at 1.8 mV
    result = run_qc(x, FS)
    assert not result.reliable
    assert _codes(result, "fail") == {("clipping", "V4")}


def test_calibration_pulse_is_not_clipping() -> None:
    x = _clean()
    x[:, 100:200] = 1.0  # a 200-ms 1-mV calibration pulse in every lead, as Philips files carry
    result = run_qc(x, FS)
    assert result.reliable
    assert [(f.code, f.lead) for f in result.findings] == [("calibration_pulse", None)]  # one finding, not twelve


@pytest.mark.parametrize(("amplitude", "severity"), [(0.3, "fail"), (0.05, "warn")])
def test_mains_50hz_detected(amplitude: float, severity: str) -> None:
    x = _clean()
    t = np.arange(x.shape[1]) / FS
    x[LEADS.index("V5")] += amplitude * np.sin(2 * np.pi * 50.0 * t)
    result = run_qc(x, FS)
    assert _codes(result, severity) == {("mains_noise", "V5")}
    assert result.reliable == (severity == "warn")
    assert "50 Hz" in result.findings[0].message


def test_mains_60hz_detected_on_all_leads() -> None:
    x = _clean(fs=1000.0)
    t = np.arange(x.shape[1]) / 1000.0
    x += 0.3 * np.sin(2 * np.pi * 60.0 * t)
    result = run_qc(x, 1000.0)
    # One record-level finding naming every lead once, at 60 Hz (not a 50-Hz twin).
    mains = [f for f in result.findings if f.code == "mains_noise"]
    assert len(mains) == 1 and mains[0].severity == "fail" and mains[0].lead is None
    assert set(result.metrics["mains_noise"]) == set(LEADS)
    assert {v["hz"] for v in result.metrics["mains_noise"].values()} == {60.0}


def test_la_ra_reversal_detected() -> None:
    x = _clean()
    i, ii, iii, avr, avl, avf = x[:6].copy()
    swapped = x.copy()
    swapped[:6] = np.stack([-i, iii, ii, avl, avr, avf])  # arm electrodes swapped
    result = run_qc(swapped, FS)
    assert not result.reliable
    assert _codes(result, "fail") == {("la_ra_reversal", "I")}
    assert "la_ra_reversal" not in run_qc(x, FS).codes


@pytest.mark.parametrize(
    ("factor", "code"), [(5.0, "amplitude_high"), (1000.0, "amplitude_high"), (1e-3, "amplitude_low")]
)
def test_unit_and_scale_errors_fail(factor: float, code: str) -> None:
    result = run_qc(_clean() * factor, FS)
    assert not result.reliable
    assert code in {c for c, _ in _codes(result, "fail")}


def test_short_recordings_and_padding() -> None:
    warn = run_qc(_clean(duration=9.0), FS)
    assert warn.reliable and {c for c, _ in _codes(warn, "warn")} == {"short_duration", "padding_needed"}
    fail = run_qc(_clean(duration=6.0), FS)
    assert not fail.reliable and ("short_duration", None) in _codes(fail, "fail")
    assert "padding_needed" not in run_qc(_clean(duration=10.0), FS).codes


@pytest.mark.parametrize(("fs", "severity"), [(50.0, "fail"), (20_000.0, "fail"), (200.0, "warn"), (500.0, None)])
def test_sampling_rate_plausibility(fs: float, severity: str | None) -> None:
    x = _clean(fs=fs) if fs <= 2000 else _clean(fs=2000.0)[:, :2000]
    result = run_qc(x, fs)
    found = [f for f in result.findings if f.code.startswith("sampling_rate")]
    assert [f.severity for f in found] == ([severity] if severity else [])


@pytest.mark.parametrize(("sway_mV", "severity"), [(3.0, "warn"), (8.0, "fail")])
def test_baseline_wander(sway_mV: float, severity: str) -> None:
    x = _clean()
    t = np.arange(x.shape[1]) / FS
    x[LEADS.index("V1")] += sway_mV / 2 * np.sin(2 * np.pi * 0.15 * t)
    result = run_qc(x, FS)
    assert _codes(result, severity) == {("baseline_wander", "V1")}


def test_lead_peak_to_peak_is_robust_to_one_artefact() -> None:
    x = _clean()
    spiky = x.copy()
    spiky[0, 2500] += 20.0
    np.testing.assert_allclose(lead_peak_to_peak(spiky, FS)[0], lead_peak_to_peak(x, FS)[0], rtol=0.05)


def test_bad_shape_raises_qc_error() -> None:
    with pytest.raises(QcError):
        run_qc(np.zeros((8, 5000)), FS)
    with pytest.raises(QcError):
        run_qc(np.zeros((12, 5000)), 0.0)


# --------------------------------------------------------------------------------------------- conformance corpus

_RELIABLE = [
    "ge_muse_xml/braveheart/example1.xml",
    "ge_muse_xml/braveheart/example2.xml",
    "ge_muse_xml/egm/muse-sinus.xml",  # the same recording as muse-sinus.hea, at the right scale
    "hl7_aecg/Example aECG.xml",
    "dicom_ecg/Example.dcm",
    "dicom_ecg/waveform_ecg.dcm",
    "scp_ecg/Example.scp",
    "wfdb/egm/ludb-ecg.hea",
]


@pytest.mark.parametrize("relpath", _RELIABLE)
def test_clean_corpus_files_are_reliable(relpath: str, conformance_dir: Path) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(conformance_dir / relpath)
    result = run_qc(record.signal, record.fs, record.meta)
    assert result.reliable, [f.message for f in result.findings]


@pytest.mark.parametrize("relpath", ["wfdb/egm/muse-sinus.hea", "wfdb/egm/muse-af.hea"])
def test_corpus_5x_amplitude_bug_flagged(relpath: str, conformance_dir: Path) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(conformance_dir / relpath)
    result = run_qc(record.signal, record.fs, record.meta)
    assert not result.reliable
    assert ("amplitude_high", None) in _codes(result, "fail")


def test_corpus_scp_flat_chest_leads(conformance_dir: Path) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(conformance_dir / "scp_ecg/0000050.ECG.scp")
    result = run_qc(record.signal, record.fs, record.meta)
    assert not result.reliable
    flat = {lead for code, lead in _codes(result, "fail") if code == "flat_lead"}
    assert flat == {"V1", "V2", "V3", "V4", "V5", "V6"}


def test_corpus_ptbxl_100hz_low_rate_warning(conformance_dir: Path) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(conformance_dir / "wfdb/ptbxl/00001_lr.hea")
    result = run_qc(record.signal, record.fs, record.meta)
    assert ("sampling_rate_low", None) in _codes(result, "warn")
    assert result.reliable


@pytest.mark.parametrize(("fs", "n"), [(500.0, 5000), (100.0, 1000), (257.3, 3001), (500.0, 20)])
def test_cached_highpass_is_sosfiltfilt_exactly(fs: float, n: int) -> None:
    from scipy import signal as sps

    from cardiacnets.qc_signal import _highpass

    x = np.random.default_rng(1).normal(size=(12, n)).cumsum(axis=-1)
    sos = sps.butter(2, 0.5, btype="highpass", fs=fs, output="sos")
    expected = sps.sosfiltfilt(sos, x, axis=-1, padlen=min(n - 1, int(3 * fs)))
    np.testing.assert_array_equal(_highpass(x, fs), expected)


@pytest.mark.parametrize(("fs", "n", "nperseg"), [(500.0, 5000, 1000), (257.3, 3001, 515), (500.0, 17, 17)])
def test_welch_matches_scipy(fs: float, n: int, nperseg: int) -> None:
    from scipy import signal as sps

    from cardiacnets.qc_signal import _welch

    x = np.random.default_rng(2).normal(size=(12, n)).cumsum(axis=-1)
    freqs, psd = _welch(x, fs, nperseg)
    ref_freqs, ref_psd = sps.welch(x, fs=fs, nperseg=nperseg, axis=-1)
    np.testing.assert_array_equal(freqs, ref_freqs)
    np.testing.assert_allclose(psd, ref_psd, rtol=1e-12, atol=0)


def test_longest_runs_per_row() -> None:
    from cardiacnets.qc_signal import _longest_runs

    rng = np.random.default_rng(3)
    mask = rng.random((40, 300)) < rng.random((40, 1))
    mask[0], mask[1], mask[2, :] = False, True, False
    mask[2, -7:] = True
    expected = [
        max((len(run) for run in "".join("1" if v else "0" for v in row).split("0")), default=0) for row in mask
    ]
    np.testing.assert_array_equal(_longest_runs(mask), expected)
    assert _longest_runs(mask)[:3].tolist() == [0, 300, 7]


@pytest.mark.parametrize("beats", [3, 4, 11, 12])
def test_median_of_few_is_numpy_median_exactly(beats: int) -> None:
    from cardiacnets.qc_signal import _median_of_few

    values = np.random.default_rng(beats).normal(size=(12, beats, 350))
    values[0, :, 0] = 1.0  # ties
    np.testing.assert_array_equal(_median_of_few(values), np.median(values, axis=1))


@pytest.mark.parametrize("n", [4999, 999, 1999, 10_000, 150])
@pytest.mark.parametrize("q", [99.0, 98.0, 100.0])
def test_upper_percentile_is_numpy_percentile_exactly(n: int, q: float) -> None:
    from cardiacnets.qc_signal import _upper_percentile

    rng = np.random.default_rng(n)
    for trial in range(20):
        x = rng.normal(size=(12, n)) ** 2
        if trial % 3 == 0:
            x[:, : n // 2] = 0.0  # many ties at the bottom
        if trial % 4 == 0:
            x = np.round(x, 1)  # ties everywhere, including at the percentile
        if trial % 5 == 0:
            x[:, -(n // 10) :] = 50.0  # the largest values all in the tail beyond the blocks
        np.testing.assert_array_equal(_upper_percentile(x, q), np.percentile(x, q, axis=-1))


def _full_rate_qc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make run_qc use the full-rate high-pass (the reference the block-rate baseline stands in for)."""
    from cardiacnets import qc_signal  # run_qc looks _baseline_split up on this module

    def full_rate(x: np.ndarray, fs: float, cutoff: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        high = qc_signal._highpass(x, fs, cutoff)
        return high, x - high

    monkeypatch.setattr(qc_signal, "_baseline_split", full_rate)


def test_block_rate_baseline_matches_the_full_rate_filter_on_the_corpus(
    conformance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The QC baseline computed at ~50 Hz equals the full-rate zero-phase high-pass to 1 uV on every corpus record
    (quantisation steps are 1-5 uV), and QC reaches the same findings either way."""
    from cardiacnets.edge.batch import enumerate_inputs
    from cardiacnets.errors import CardiacNetsError
    from cardiacnets.io import read_ecg
    from cardiacnets.qc_signal import _baseline_split, _highpass

    compared = 0
    fast_results, records = [], []
    for item in enumerate_inputs(conformance_dir):
        try:
            record = read_ecg(item.path)
        except CardiacNetsError:
            continue
        x = record.signal.astype(np.float64)
        high, low = _baseline_split(x, record.fs)
        np.testing.assert_allclose(high, _highpass(x, record.fs), rtol=0, atol=1e-3, err_msg=item.key)
        np.testing.assert_allclose(high + low, x, rtol=0, atol=1e-12)
        compared += record.fs >= 100
        fast_results.append(run_qc(record.signal, record.fs, record.meta))
        records.append(record)
    assert compared >= 20
    _full_rate_qc(monkeypatch)
    for record, fast in zip(records, fast_results, strict=True):
        reference = run_qc(record.signal, record.fs, record.meta)
        assert _codes(fast) == _codes(reference), record.meta["path"]
        assert fast.metrics["wander_mV"] == pytest.approx(reference.metrics["wander_mV"], abs=2e-3)


@pytest.mark.parametrize("fs", [250.0, 257.3, 500.0, 1000.0])
def test_block_rate_baseline_under_mains_wander_and_drift(fs: float) -> None:
    """Worst case for block averaging: 50- and 60-Hz hum, 1.5 mV of respiratory wander and a 0.8 mV/s drift on a
    10-mV-range signal. Still within 2 uV of the full-rate filter, edges included."""
    from cardiacnets.qc_signal import _baseline_split, _highpass

    rng = np.random.default_rng(0)
    x = _clean(fs)
    t = np.arange(x.shape[1]) / fs
    x = x + 1.5 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6, (12, 1))) + 0.8 * t
    x = x + 0.5 * np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 60 * t)
    high, _ = _baseline_split(x, fs)
    np.testing.assert_allclose(high, _highpass(x, fs), rtol=0, atol=2e-3)


@pytest.mark.parametrize(("fs", "n"), [(90.0, 900), (500.0, 1999), (500.0, 150), (500.0, 7)])
def test_block_rate_baseline_falls_back_to_the_exact_filter(fs: float, n: int) -> None:
    """Under 100 Hz, or under 4 s, the full-rate filter itself is used."""
    from cardiacnets.qc_signal import _baseline_split, _highpass

    x = np.random.default_rng(4).normal(size=(12, n)).cumsum(axis=-1)
    high, low = _baseline_split(x, fs)
    np.testing.assert_array_equal(high, _highpass(x, fs))
    np.testing.assert_array_equal(low, x - high)


def test_median_beat_of_chosen_leads_is_those_rows_of_the_full_median_beat() -> None:
    from cardiacnets.qc import median_beat

    x = _clean()
    full, fiducial = median_beat(x, FS)
    some, same_fiducial = median_beat(x, FS, leads=(0, 3))
    assert same_fiducial == fiducial
    np.testing.assert_array_equal(some, full[[0, 3]])


def test_runs_are_counted_only_where_a_run_can_reach_the_minimum() -> None:
    from cardiacnets.qc_signal import _longest_runs, _runs_at

    rng = np.random.default_rng(5)
    mask = rng.random((50, 400)) < rng.random((50, 1))
    mask[0] = False
    for min_run in (1, 3, 20, 200):
        expected = np.where(np.count_nonzero(mask, axis=-1) >= min_run, _longest_runs(mask), 0)
        np.testing.assert_array_equal(_runs_at(mask, min_run), expected)
        # What QC decides with it: a run of at least min_run exists exactly where the full count says so.
        assert ((_runs_at(mask, min_run) >= min_run) == (_longest_runs(mask) >= min_run)).all()


@pytest.mark.parametrize("fs", [100.0, 257.3, 500.0, 1000.0])
@pytest.mark.parametrize("seconds", [4.0, 7.3, 10.0, 10.002, 37.9])
def test_block_rate_baseline_on_any_length_and_rate(fs: float, seconds: float) -> None:
    """Lengths that are not a whole number of blocks, rates that are not a multiple of 50 Hz: same shape as the
    input and within 0.1 % of the signal's range of the full-rate filter, on a random walk (more high-frequency
    content than any ECG)."""
    from cardiacnets.qc_signal import _baseline_split, _highpass

    n = int(round(seconds * fs))
    x = np.random.default_rng(n).normal(size=(12, n)).cumsum(axis=-1)
    high, low = _baseline_split(x, fs)
    assert high.shape == low.shape == x.shape
    assert np.abs(high - _highpass(x, fs)).max() <= 1e-3 * np.ptp(x)
