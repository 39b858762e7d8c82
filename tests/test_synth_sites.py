"""Simulated sites (issue 22): the default site is the historical cohort byte for byte, and every other site differs
the documented way (population, prevalence, sampling rate, filters, ADC, mains, placement habits)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cardiacnets.errors import InputError
from cardiacnets.synth import SITES, simulate, simulate_subjects
from cardiacnets.synth.ecg import DOWER, _reverse_limb_electrodes, _shift_precordial
from cardiacnets.synth.report_sites import cart_gains_db, mains_ratio
from cardiacnets.synth.subjects import DEFAULT_PREVALENCE

#: sha256 of (bytes + dtype + shape) of ``simulate_subjects(range(48), 3)`` arrays: the golden reference of the
#: simulator (``/work/golden/synth_ref.json``, "population/<key>", printed by ``/work/golden/synth_hash.py``), taken
#: before sites existed. The ECG and tabular outputs do not depend on rendering the cines, so no cines are drawn here.
GOLDEN = {
    "ecg": "beec807c05645953e2f04e32783c3134715085e499c4e73353359d43fce07015",
    "labels": "1308aec46234286bb3caf2b7715124a3951356c3ed6e14c9d2f0417d65557250",
    "age": "a6bf01810918cfedcfc8492a206e4be60724633b921b13c10c9eb2921ebc2001",
    "bmi": "172c2af1e864fd7507ebe0df181cd50e236660555dabd9bad2f715e167acad1e",
    "phenotypes": "c0841ed38a6da59edefa75ff343b14442afcb782052e144cc471e47280efa1aa",
}


def _hash(array: np.ndarray) -> str:
    v = np.ascontiguousarray(array)
    return hashlib.sha256(v.tobytes() + str(v.dtype).encode() + str(v.shape).encode()).hexdigest()


@pytest.mark.parametrize("site", [None, "default"])
def test_default_site_reproduces_the_golden_hashes(site: str | None) -> None:
    d = simulate_subjects(np.arange(48), 3, with_cines=False, mode="population", site=site)
    assert {k: _hash(d[k]) for k in GOLDEN} == GOLDEN
    assert "ecg_native" not in d


def test_default_population_is_the_default_prevalence() -> None:
    assert SITES["default"].population.prevalence == DEFAULT_PREVALENCE


def test_unknown_site_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="us-hospital"):
        simulate(2, 0, site="mars", with_cines=False)


@pytest.fixture(scope="module")
def cohorts() -> dict[str, dict[str, np.ndarray]]:
    return {name: simulate(160, 5, site=name, with_cines=False, native_rate=True) for name in SITES}


def test_populations_differ_as_documented(cohorts: dict[str, dict[str, np.ndarray]]) -> None:
    age = {k: float(d["age"].mean()) for k, d in cohorts.items()}
    sick = {k: float(d["labels"].any(axis=1).mean()) for k, d in cohorts.items()}
    assert age["us-hospital"] > age["default"] + 2 > age["community"] + 4
    assert sick["us-hospital"] > sick["default"] > sick["community"]
    assert cohorts["asia-tertiary"]["bmi"].mean() < cohorts["default"]["bmi"].mean() - 2
    men = cohorts["default"]["sex"] == 1
    asia_men = cohorts["asia-tertiary"]["sex"] == 1
    assert cohorts["asia-tertiary"]["height"][asia_men].mean() < cohorts["default"]["height"][men].mean() - 5


def test_records_at_the_cart_rate_on_the_cart_adc(cohorts: dict[str, dict[str, np.ndarray]]) -> None:
    for name, d in cohorts.items():
        cart = SITES[name].cart
        native = d.get("ecg_native", d["ecg"])
        assert d["ecg"].shape[1:] == (12, 5000)  # the dataset contract, whatever the cart
        assert native.shape[1:] == (12, 10 * cart.fs)
        counts = native.astype(np.float64) / cart.lsb_mv
        assert np.abs(counts - np.round(counts)).max() < 0.01, name
    assert (cohorts["community"]["ecg_native_fs"] == 250).all()


def test_mains_peak_at_the_site_frequency(cohorts: dict[str, dict[str, np.ndarray]]) -> None:
    assert mains_ratio(cohorts["us-hospital"]["ecg"], 60.0) > 5
    assert mains_ratio(cohorts["default"]["ecg"], 50.0) > 5
    assert mains_ratio(cohorts["asia-tertiary"]["ecg"], 60.0) > 3


def test_cart_filters_attenuate_injected_sines() -> None:
    monitoring = cart_gains_db(SITES["community"].cart)  # 0.5-40 Hz
    diagnostic = cart_gains_db(SITES["us-hospital"].cart)  # 0.05-150 Hz
    assert monitoring[0.1] < -12 and monitoring[100.0] < -12 and abs(monitoring[10.0]) < 0.5
    assert diagnostic[0.1] > -3 and diagnostic[100.0] > -1.5 and abs(diagnostic[10.0]) < 0.5


def test_spectra_of_site_records_show_their_bandwidth(cohorts: dict[str, dict[str, np.ndarray]]) -> None:
    def high_share(ecg: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(ecg.astype(np.float64), axis=-1)) ** 2
        freqs = np.fft.rfftfreq(ecg.shape[-1], 1 / 500)
        return float(power[..., (freqs > 70) & (freqs < 120)].sum() / power[..., (freqs > 5) & (freqs < 30)].sum())

    assert high_share(cohorts["community"]["ecg"]) < 0.1 * high_share(cohorts["us-hospital"]["ecg"])


def test_placement_habits_move_the_precordial_vectors() -> None:
    dower = np.broadcast_to(DOWER, (2, 8, 3)).copy()
    same = _shift_precordial(dower, np.zeros(2))
    np.testing.assert_allclose(same, dower)
    moved = _shift_precordial(dower, np.array([1.0, 0.5]))
    np.testing.assert_allclose(moved[0, 2:7], DOWER[3:8])  # one spacing lateral: V1 reads what V2 read
    np.testing.assert_allclose(moved[1, 2], (DOWER[2] + DOWER[3]) / 2)
    np.testing.assert_allclose(moved[:, :2], dower[:, :2])  # limb leads untouched


def test_reversed_limb_electrodes_invert_lead_i_and_swap_ii_for_iii() -> None:
    rng = np.random.default_rng(0)
    leads8 = rng.normal(size=(3, 8, 50))
    before = leads8.copy()
    _reverse_limb_electrodes(leads8, np.array([True, False, False]))
    np.testing.assert_allclose(leads8[0, 0], -before[0, 0])
    np.testing.assert_allclose(leads8[0, 1], before[0, 1] - before[0, 0])  # old III
    np.testing.assert_allclose(leads8[1:], before[1:])


def test_site_subjects_do_not_depend_on_the_batch() -> None:
    whole = simulate_subjects(np.arange(6), 2, site="community", with_cines=False)
    alone = simulate_subjects(np.array([4]), 2, site="community", with_cines=False)
    np.testing.assert_array_equal(whole["ecg"][4], alone["ecg"][0])


def test_write_synthetic_records_the_site(tmp_path) -> None:
    from cardiacnets.datasets import open_dataset, write_synthetic

    manifest = write_synthetic(tmp_path / "ds", 4, seed=1, with_cines=False, site="community", shard_size=4)
    assert manifest["source"]["site"] == "community"
    item = open_dataset(tmp_path / "ds", "all")[0]
    direct = simulate(1, 1, site="community", with_cines=False)["ecg"][0]
    np.testing.assert_allclose(item["ecg"].numpy(), direct, atol=6e-4)  # int16 storage at 1 uV
