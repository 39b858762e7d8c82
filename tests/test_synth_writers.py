"""Simulated ECGs written to vendor formats read back through cardiacnets.io.read_ecg within one LSB."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.errors import InputError
from cardiacnets.synth import simulate
from cardiacnets.synth.writers import write_cardiosoft_xml, write_hl7_aecg, write_wfdb

REPO = Path(__file__).resolve().parents[1]


def _needs(module: str):  # noqa: ANN202
    missing = importlib.util.find_spec(f"cardiacnets.io.{module}") is None
    return pytest.mark.skipif(missing, reason=f"reader cardiacnets.io.{module} does not exist yet")


@pytest.fixture(scope="module")
def subject() -> dict:
    d = simulate(1, seed=11, with_cines=False)
    return {k: v[0] for k, v in d.items()}


@_needs("cardiosoft")
def test_cardiosoft_round_trip(tmp_path: Path, subject: dict) -> None:
    from cardiacnets.io import read_ecg

    path = write_cardiosoft_xml(tmp_path / "x.xml", subject["ecg"], sex=1, qrs_onsets=subject["qrs_onsets"])
    record = read_ecg(path)
    assert record.meta["format_id"] == "ge_cardiosoft_xml" and record.fs == 500
    assert np.abs(record.signal - subject["ecg"]).max() <= 0.005 + 1e-6
    assert record.median_beat is not None and record.median_beat.shape == (12, 600)


@_needs("aecg")
def test_aecg_round_trip(tmp_path: Path, subject: dict) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(write_hl7_aecg(tmp_path / "a.xml", subject["ecg"]))
    assert record.meta["format_id"] == "hl7_aecg" and record.fs == 500
    assert np.abs(record.signal - subject["ecg"]).max() <= 0.0025 + 1e-6


@_needs("wfdb_reader")
def test_wfdb_round_trip(tmp_path: Path, subject: dict) -> None:
    from cardiacnets.io import read_ecg

    record = read_ecg(write_wfdb(tmp_path / "rec", subject["ecg"]))
    assert record.fs == 500
    assert np.abs(record.signal - subject["ecg"]).max() <= 0.001 + 1e-6


def test_writer_rejects_bad_signal(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        write_cardiosoft_xml(tmp_path / "x.xml", np.zeros((8, 100)))
    with pytest.raises(InputError):
        write_hl7_aecg(tmp_path / "a.xml", np.full((12, 100), np.nan))


@_needs("cardiosoft")
def test_committed_examples_are_reproducible_and_readable(tmp_path: Path) -> None:
    from cardiacnets.io import read_ecg

    subprocess.run([sys.executable, str(REPO / "scripts" / "make_examples.py"), "--out", str(tmp_path)], check=True)
    for name in ("synthetic_ukb_cardiosoft.xml", "synthetic_dcm_aecg.xml", "synthetic_hcm.hea", "synthetic_hcm.dat"):
        committed = REPO / "examples" / "ecg" / name
        assert committed.read_bytes() == (tmp_path / name).read_bytes(), name
    record = read_ecg(REPO / "examples" / "ecg" / "synthetic_ukb_cardiosoft.xml")
    assert record.signal.shape == (12, 5000) and 0.3 < np.abs(record.signal).max() < 5.0
