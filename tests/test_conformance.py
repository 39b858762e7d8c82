"""Every file of the ECG conformance corpus against its ground truth (``expected.json``).

For each file: sampling rate, samples per lead, first ten samples of I, II and V1, and mean/std of every lead stored in
the file, each within one least significant bit of the file's own resolution; the median beat's length where the file
stores one. Files whose quirks call for a flag are checked for that flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.io import read_ecg
from cardiacnets.record import LEADS, canonical_lead_name
from tests.conftest import _conformance_dir


def _corpus_files() -> list[str]:
    expected = _conformance_dir() / "expected.json"
    if not expected.is_file():
        return ["<corpus missing>"]
    return sorted(json.loads(expected.read_text())["files"])


def _lsb_uV(lead_truth: dict) -> float:
    """One least significant bit in uV, from the ground truth's raw and scaled first samples."""
    raw = np.asarray(lead_truth.get("first10_raw") or [], dtype=float)
    scaled = np.asarray(lead_truth["first10_uV"], dtype=float)
    for i in range(len(raw)):
        for j in range(i + 1, len(raw)):
            if raw[i] != raw[j]:
                return abs((scaled[i] - scaled[j]) / (raw[i] - raw[j]))
    return 5.0


@pytest.mark.parametrize("relpath", _corpus_files())
def test_conformance_file_matches_ground_truth(relpath: str, conformance_dir: Path, conformance_expected: dict) -> None:
    truth = conformance_expected["files"][relpath]
    record = read_ecg(conformance_dir / relpath)
    rhythm = truth["sections"][0]

    assert record.signal.dtype == np.float32 and record.signal.shape[0] == 12
    assert record.fs == pytest.approx(rhythm["sampling_rate_hz"])
    assert record.n_samples == rhythm["n_samples_per_lead"]
    assert record.leads == LEADS

    lsb = max(_lsb_uV(v) for v in rhythm["leads"].values())
    signal_uV = record.signal.astype(np.float64) * 1000.0
    for name, lead_truth in rhythm["leads"].items():
        row = LEADS.index(canonical_lead_name(name))
        np.testing.assert_allclose(signal_uV[row, :10], lead_truth["first10_uV"], atol=lsb, err_msg=f"{relpath} {name}")
    for name, (mean_uV, std_uV) in rhythm["all_leads_mean_std_uV"].items():
        if canonical_lead_name(name) is None:  # non-ECG channels (PTB Frank leads vx/vy/vz) are not in the record
            assert name in record.meta["ignored_channels"], f"{relpath} {name} neither read nor listed as ignored"
            continue
        row = LEADS.index(canonical_lead_name(name))
        assert signal_uV[row].mean() == pytest.approx(mean_uV, abs=lsb), f"{relpath} {name} mean"
        assert signal_uV[row].std() == pytest.approx(std_uV, abs=lsb), f"{relpath} {name} std"

    stored = {canonical_lead_name(n) for n in rhythm["lead_names_in_file_order"]} - {None}
    assert set(record.meta["stored_leads"]) == stored
    assert set(record.meta["derived_leads"]) == (
        {"III", "aVR", "aVL", "aVF"} - stored if {"I", "II"} <= stored else set()
    )

    medians = [
        s for s in truth["sections"][1:] if "median" in s["section"].lower() or "repbeat" in s["section"].lower()
    ]
    if medians:
        assert record.median_beat is not None, f"{relpath}: the file stores a median beat"
        assert record.median_beat.shape == (12, medians[0]["n_samples_per_lead"])
        assert record.median_fs == pytest.approx(medians[0]["sampling_rate_hz"])


def test_derived_leads_follow_einthoven_goldberger(conformance_dir: Path) -> None:
    record = read_ecg(conformance_dir / "ge_muse_xml/braveheart/example1.xml")
    i, ii, iii, avr, avl, avf = record.signal[:6].astype(np.float64)
    np.testing.assert_allclose(iii, ii - i, atol=1e-5)
    np.testing.assert_allclose(avr, -(i + ii) / 2, atol=1e-5)
    np.testing.assert_allclose(avl, i - ii / 2, atol=1e-5)
    np.testing.assert_allclose(avf, ii - i / 2, atol=1e-5)


def test_declared_rate_contradicting_sample_count_is_flagged(conformance_dir: Path) -> None:
    record = read_ecg(conformance_dir / "ge_muse_xml/muse_ecg_deidentified_1.xml")
    assert record.fs == 240.0  # the declared rate is kept ...
    assert any("240" in w and "250" in w for w in record.warnings), record.warnings  # ... and the contradiction flagged


def test_lead_order_is_by_name_not_position(conformance_dir: Path) -> None:
    # muse-af.hea stores I, II, III, AVF, AVL, AVR, V1..V6: aVL must land in row 4 whatever its position in the file.
    record = read_ecg(conformance_dir / "wfdb/egm/muse-af.hea")
    i, ii = record.signal[0].astype(np.float64), record.signal[1].astype(np.float64)
    # The file stores its own aVx (derived by EGM, rounded to whole uV at the file's 5x scale): check them by identity.
    np.testing.assert_allclose(record.signal[4], i - ii / 2, atol=0.05)
    np.testing.assert_allclose(record.signal[5], ii - i / 2, atol=0.05)
