"""UK Biobank and MIMIC-IV-ECG converters on fixture trees built here in the real layouts (domain-notes section 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cardiacnets.converters.mimic import convert_mimic
from cardiacnets.converters.ukb import convert_ukb
from cardiacnets.datasets import open_dataset
from cardiacnets.record import LEADS
from tests.converter_fixtures import (
    MIMIC_RECORDS,
    UKB_EIDS,
    WFDB_ORDER,
    best_alignment,
    build_mimic_tree,
    build_ukb_tree,
)


@pytest.fixture(scope="module")
def ukb_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_ukb_tree(tmp_path_factory.mktemp("ukb"))


def test_ukb_converter_matches_the_fixture(ukb_tree: dict, tmp_path: Path) -> None:
    root, truth = ukb_tree["root"], ukb_tree["truth"]
    out = tmp_path / "ukb"
    manifest = convert_ukb(out, ecg_dir=root / "20205", cmr_dir=root / "cmr", tabular=[root / "main.csv"], shard_size=4)
    assert manifest["source"]["kind"] == "ukbiobank" and manifest["n_subjects"] == 6
    ds = open_dataset(out, "all")
    assert ds.modalities == ("ecg", "cine_sa", "cine_la", "phenotypes", "labels")
    ids = list(ds.subject_ids)
    assert ids == UKB_EIDS
    for k, eid in enumerate(UKB_EIDS):
        item = ds[k]
        # ECG: counts x 5 uV, leads by name (the XML lists them shuffled).
        np.testing.assert_allclose(item["ecg"].numpy(), truth["ecg"][eid], atol=0.0006)
        # Covariates: sex, age at imaging, heart rate from the XML.
        np.testing.assert_allclose(item["covariates"].numpy(), [k % 2, 55 + k, 60 + k])
        assert torch.equal(item["covariate_mask"], torch.ones(3))
        # Phenotypes in field order, a missing one is NaN.
        assert float(item["phenotypes"][0]) == pytest.approx(100.0 + k)
        assert float(item["phenotypes"][81]) == pytest.approx(100.0 + k + 8.1, abs=1e-4)
        assert torch.isnan(item["phenotypes"][5])
        for name in ("cine_sa", "cine_la"):
            cine = item[name].numpy()
            assert cine.shape == ((50, 80, 80) if name == "cine_sa" else (50, 96, 96))
            assert cine.min() >= 0 and cine.max() <= 1
            source, _ = truth[name][eid]
            r, shift = best_alignment(cine, source)
            assert r > (0.97 if name == "cine_sa" else 0.9), (eid, name, r)  # the right slice/series, around the heart
            # Frames in trigger-time order: each converted frame is closest to the same source frame.
            crop = np.pad(source, ((0, 0), (60, 60), (60, 60)))
            size = cine.shape[-1]
            c0 = (source.shape[-1] - size) // 2 + 60
            aligned = crop[:, c0 + shift[0] : c0 + shift[0] + size, c0 + shift[1] : c0 + shift[1] + size]
            frame_corr = np.corrcoef(cine.reshape(50, -1), aligned.reshape(50, -1))[:50, 50:]
            assert np.array_equal(frame_corr.argmax(axis=1), np.arange(50)), (eid, name)
    labels = {eid: ds[k]["labels"].numpy() for k, eid in enumerate(UKB_EIDS)}
    subtype = {eid: int(ds[k]["cm_subtype"]) for k, eid in enumerate(UKB_EIDS)}
    nan = np.nan
    np.testing.assert_array_equal(labels["1000011"], [1, 0, 0, 0, 0])  # HF after imaging: negative by default
    np.testing.assert_array_equal(labels["1000022"], [0, 0, 0, 1, 0])
    assert subtype["1000022"] == 1  # DCM
    np.testing.assert_array_equal(labels["1000033"], [0, nan, 0, 1, 0])  # undated I27 -> unknown
    assert subtype["1000033"] == 0  # E85 + I43 -> RCM
    np.testing.assert_array_equal(labels["1000044"], [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(labels["1000055"], [0, 0, nan, 0, 0])  # placeholder date -> unknown
    assert np.isnan(labels["1000066"]).all() and "no_imaging_date" in ds.qc_flags[5]
    assert "lax_mixed_series" in ds.qc_flags[3]


def test_ukb_incident_unknown_and_window(ukb_tree: dict, tmp_path: Path) -> None:
    root = ukb_tree["root"]
    out = tmp_path / "ukb2"
    convert_ukb(out, ecg_dir=root / "20205", tabular=[root / "main.csv"], incident="unknown")
    ds = open_dataset(out, "all")
    assert ds.modalities == ("ecg", "phenotypes", "labels") and "cine_sa" not in ds[0]
    assert np.isnan(ds[0]["labels"][4]) and float(ds[0]["labels"][0]) == 1.0
    wide = tmp_path / "ukb3"
    convert_ukb(wide, ecg_dir=root / "20205", tabular=[root / "main.csv"], window_days=3 * 365)
    assert float(open_dataset(wide, "all")[0]["labels"][4]) == 1.0  # HF 22 months after imaging is inside the window


# --------------------------------------------------------------------------------------------------- MIMIC fixtures


@pytest.fixture(scope="module")
def mimic_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_mimic_tree(tmp_path_factory.mktemp("mimic"))


def test_mimic_converter_with_ext_icd(mimic_tree: dict, tmp_path: Path) -> None:
    out = tmp_path / "mimic"
    manifest = convert_mimic(
        out, root=mimic_tree["root"], ext_icd=mimic_tree["ext"], hosp_dir=mimic_tree["hosp"], shard_size=3
    )
    assert manifest["source"]["kind"] == "mimic-iv-ecg"
    ds = open_dataset(out, "all")
    assert ds.modalities == ("ecg", "labels")
    item = ds[0]
    assert "cine_sa" not in item and "phenotypes" not in item
    for k, (_, study, _) in enumerate(MIMIC_RECORDS):
        ecg = ds[k]["ecg"].numpy()
        stored = mimic_tree["signals"][study]
        for row, lead in enumerate(LEADS):  # canonical order by name: aVL is row 4 although stored 6th
            np.testing.assert_allclose(ecg[row], stored[:, WFDB_ORDER.index(lead)], atol=1e-5, equal_nan=True)
    assert ds.qc_flags[0] == ""
    assert "nan_samples" in ds.qc_flags[1] and np.isnan(ds[1]["ecg"][LEADS.index("V2"), 150])
    assert "flat_lead:V4" in ds.qc_flags[2]
    # Labels from all_diag_all; an empty list is unknown, not negative.
    np.testing.assert_array_equal(ds[0]["labels"].numpy(), [1, 0, 0, 0, 0])
    assert torch.isnan(ds[1]["labels"]).all() and "no_linked_stay" in ds.qc_flags[1]
    np.testing.assert_array_equal(ds[2]["labels"].numpy(), [0, 0, 0, 1, 1])
    assert int(ds[2]["cm_subtype"]) == 1
    np.testing.assert_array_equal(ds[3]["labels"].numpy(), [0, 0, 1, 0, 0])
    # Machine measurements: sentinels are NaN; heart rate from RR.
    mm = ds.extra("machine_measurements")
    assert np.isnan(mm[0, 3]) and np.isnan(mm[0, 7]) and np.isnan(mm[1, 0]) and np.isnan(mm[1, 6])
    assert mm[0, 0] == 800 and mm[2, 8] == 30
    # Covariates from hosp/patients: age = anchor_age + years since anchor_year, capped at 91.
    np.testing.assert_allclose(ds[0]["covariates"].numpy(), [0, 52, 75])
    np.testing.assert_allclose(ds[1]["covariates"].numpy()[:2], [0, 53])
    assert float(ds[1]["covariate_mask"][2]) == 0  # RR sentinel -> heart rate missing
    np.testing.assert_allclose(ds[2]["covariates"].numpy(), [1, 51, 60])
    assert float(ds[3]["covariates"][1]) == 91
    # Both ECGs of patient 10000032 land in the same split.
    assert ds.split_codes[0] == ds.split_codes[1]
    clean = open_dataset(out, "all", exclude_qc=["nan_samples", "flat_lead"])
    assert list(clean.subject_ids) == ["p10000032/s40689238", "p10000560/s41111111"]


def test_mimic_converter_with_hosp_admissions(mimic_tree: dict, tmp_path: Path) -> None:
    out = tmp_path / "mimic_hosp"
    convert_mimic(out, root=mimic_tree["root"], hosp_dir=mimic_tree["hosp"])
    ds = open_dataset(out, "all")
    labels = ds.labels_array()
    np.testing.assert_array_equal(labels[0], [0, 0, 0, 0, 1])  # ICD-9 428.0 of the admission around the ECG
    assert np.isnan(labels[1]).all()  # no admission contains the second ECG
    np.testing.assert_array_equal(labels[2], [0, 1, 0, 1, 0])
    assert int(ds[2]["cm_subtype"]) == 2  # I42.1 -> HCM
    assert np.isnan(labels[3]).all()


def test_mimic_converter_without_labels_and_missing_record(mimic_tree: dict, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(mimic_tree["root"], root)
    for path in root.rglob("45090959.dat"):
        path.unlink()
    out = tmp_path / "mimic_plain"
    convert_mimic(out, root=root)
    ds = open_dataset(out, "all")
    assert ds.modalities == ("ecg",) and "labels" not in ds[0]
    assert "unreadable" in ds.qc_flags[2] and torch.isnan(ds[2]["ecg"]).all()
    assert float(ds[0]["covariate_mask"][0]) == 0 and float(ds[0]["covariate_mask"][2]) == 1
