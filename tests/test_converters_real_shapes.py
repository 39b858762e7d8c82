"""The converters on the shapes researchers actually receive (issue 24): UK Biobank Research Analysis Platform exports,
compressed CMR pixel data, MIMIC admissions without coded diagnoses, and the conversion report of every run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cardiacnets.converters.mimic import convert_mimic
from cardiacnets.converters.mimic_tables import read_tables
from cardiacnets.converters.ukb import convert_ukb
from cardiacnets.converters.ukb_tabular import parse_code, parse_sex, split_array
from cardiacnets.datasets import open_dataset
from cardiacnets.errors import DatasetError
from cardiacnets.targets import phenotypes
from tests.converter_fixtures import UKB_EIDS, best_alignment, build_mimic_tree, build_ukb_tree, ukb_participant

MEANINGS = {  # ICD-10 code -> its meaning text, as Table Exporter writes coded values by default
    "I214": "I21.4 Acute subendocardial myocardial infarction",
    "I500": "I50.0 Congestive heart failure",
    "I420": "I42.0 Dilated cardiomyopathy",
    "E854": "E85.4 Organ-limited amyloidosis",
    "I43": "I43 Cardiomyopathy in diseases classified elsewhere",
    "I27": "I27 Other pulmonary heart diseases",
    "I311": "I31.1 Chronic constrictive pericarditis",
    "I21": "I21 Acute myocardial infarction",
}


def _raw(code: str) -> str:
    return code.replace(".", "")


def write_rap_tabular(path: Path, *, prefix: str, meanings: bool, codes_as: str) -> None:
    """A Research Analysis Platform export of the fixture participants (field-name header style).

    ``prefix``: ``"participant."`` or ``""``; ``meanings``: coded values as their meanings (Table Exporter's default)
    or as raw codes; ``codes_as``: field 41270 as one ``json`` cell, one ``pipe`` cell, or per-item ``items`` columns.
    Field 41280 comes as per-item columns ``p41280_a<k>``. Unrelated fields sit between the needed ones."""
    fields = [p.ukb_field for p in phenotypes()]
    codes_columns = ["p41270"] if codes_as in ("json", "pipe") else [f"p41270_a{j}" for j in range(3)]
    names = ["eid", "p31", "p50_i2", "p21003_i2", "p53_i2", *codes_columns, *[f"p41280_a{j}" for j in range(3)]]
    names += ["p20002_i2_a0", *[f"p{f}_i2" for f in fields]]
    rows = []
    for k, eid in enumerate(UKB_EIDS):
        p = ukb_participant(k, eid)
        codes = [MEANINGS[_raw(c)] if meanings else _raw(c) for c, _ in p["diagnoses"]]
        dates = [d for _, d in p["diagnoses"]] + [""] * (3 - len(p["diagnoses"]))
        if codes_as == "json":
            code_cells = [json.dumps(codes) if codes else ""]
        elif codes_as == "pipe":
            code_cells = ["|".join(codes)]
        else:
            code_cells = codes + [""] * (3 - len(codes))
        sex = ("Female", "Male")[p["sex"]] if meanings else str(p["sex"])
        rows.append([eid, sex, "171", str(p["age"]), p["imaging"], *code_cells, *dates, "1065", *p["phenotypes"]])
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([[prefix + n for n in names], *rows])


@pytest.fixture(scope="module")
def ecg_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_ukb_tree(tmp_path_factory.mktemp("ukb_rap"), with_cmr=False)


def _contents(root: Path) -> dict[str, np.ndarray]:
    ds = open_dataset(root, "all")
    items = [ds[k] for k in range(len(ds))]
    stack = {key: np.stack([item[key].numpy() for item in items]) for key in ("ecg", "covariates", "phenotypes")}
    return {**stack, "labels": ds.labels_array(), "subtype": np.asarray([int(i["cm_subtype"]) for i in items]),
            "ids": np.asarray(ds.subject_ids), "flags": np.asarray(ds.qc_flags)}  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "meanings", "codes_as"),
    [("participant.", True, "json"), ("", False, "pipe"), ("participant.", False, "items"), ("", True, "pipe")],
)
def test_rap_exports_convert_like_the_legacy_download(ecg_tree: dict, tmp_path: Path, prefix, meanings, codes_as):
    root = ecg_tree["root"]
    legacy = tmp_path / "legacy"
    convert_ukb(legacy, ecg_dir=root / "20205", tabular=[root / "main.csv"])
    table = tmp_path / "rap.csv"
    write_rap_tabular(table, prefix=prefix, meanings=meanings, codes_as=codes_as)
    rap = tmp_path / "rap"
    convert_ukb(rap, ecg_dir=root / "20205", tabular=[table])
    expected, got = _contents(legacy), _contents(rap)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # The values a researcher expects (not only "same as legacy"): sex, age, labels of the fixture's story.
    np.testing.assert_array_equal(got["covariates"][:, :2], [[k % 2, 55 + k] for k in range(len(UKB_EIDS))])
    np.testing.assert_array_equal(got["labels"][0], [1, 0, 0, 0, 0])  # I21.4 before imaging; I50.0 after
    assert got["subtype"][2] == 0 and got["labels"][2][3] == 1  # E85.4 + I43 -> restrictive cardiomyopathy


def test_rap_export_split_across_files_is_merged_on_the_participant(ecg_tree: dict, tmp_path: Path) -> None:
    root = ecg_tree["root"]
    whole = tmp_path / "whole.csv"
    write_rap_tabular(whole, prefix="participant.", meanings=True, codes_as="json")
    with open(whole, newline="") as handle:
        rows = list(csv.reader(handle))
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"  # Table Exporter splits wide exports by column
    with open(first, "w", newline="") as handle:
        csv.writer(handle).writerows([r[:5] for r in rows])
    with open(second, "w", newline="") as handle:
        csv.writer(handle).writerows([[r[0], *r[5:]] for r in rows[:1] + rows[1:][::-1]])  # another row order
    convert_ukb(tmp_path / "merged", ecg_dir=root / "20205", tabular=[first, second])
    convert_ukb(tmp_path / "legacy", ecg_dir=root / "20205", tabular=[root / "main.csv"])
    merged, legacy = _contents(tmp_path / "merged"), _contents(tmp_path / "legacy")
    for key in legacy:
        np.testing.assert_array_equal(merged[key], legacy[key], err_msg=key)


def test_tabular_cell_parsers() -> None:
    assert parse_sex("Female") == 0 and parse_sex("Male") == 1 and parse_sex("1") == 1 and np.isnan(parse_sex(""))
    assert parse_code("I21.9 Acute myocardial infarction, unspecified") == "I219"
    assert parse_code("I219") == "I219" and parse_code("") is None and parse_code("Not a code") is None
    assert split_array('["I21.9 Acute myocardial infarction", "E11.9 Diabetes"]') == [
        "I21.9 Acute myocardial infarction",
        "E11.9 Diabetes",
    ]
    assert split_array("I219|E119") == ["I219", "E119"] and split_array("") == []


def _cli(args: list[str]):
    from cardiacnets.training.cli import app

    return CliRunner().invoke(app, args)


def test_field_title_header_is_refused_with_the_fix(ecg_tree: dict, tmp_path: Path) -> None:
    table = tmp_path / "titles.csv"
    table.write_text("Participant ID,Sex,Age when attended assessment centre | Instance 2\n1000011,Female,55\n")
    with pytest.raises(DatasetError, match="field-name header style"):
        convert_ukb(tmp_path / "out", ecg_dir=ecg_tree["root"] / "20205", tabular=[table])
    table.write_text("eid,Sex,Age when attended assessment centre | Instance 2\n1000011,Female,55\n")
    result = _cli(["convert-ukb", "--out", str(tmp_path / "o"), "--ecg-dir", str(ecg_tree["root"] / "20205"),
                   "--tabular", str(table)])  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "field-name header style" in lines[0] and "Traceback" not in result.output


def test_no_needed_column_stops_with_one_line_naming_what_was_looked_for(ecg_tree: dict, tmp_path: Path) -> None:
    table = tmp_path / "other_fields.csv"
    table.write_text("participant.eid,participant.p50_i2,participant.p12144_i2\n1000011,171,1.71\n")
    result = _cli(["convert-ukb", "--out", str(tmp_path / "o"), "--ecg-dir", str(ecg_tree["root"] / "20205"),
                   "--tabular", str(table)])  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for looked_for in ("31-0.0", "p31", "p21003_i2", "p41270", "p24100_i2", "sex (31)", "phenotypes (24100-24181)"):
        assert looked_for in lines[0]
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_undecodable_cmr_pixels_skip_the_subject_and_the_run_goes_on(tmp_path: Path) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    decoder_installed = get_decoder(JPEGLSLossless).is_available  # then the fixture's broken stream fails to decode
    jpegls, rle = UKB_EIDS[1], UKB_EIDS[2]
    tree = build_ukb_tree(tmp_path / "tree", sax_syntax={jpegls: "jpegls", rle: "rle"})
    root, out = tree["root"], tmp_path / "ukb"
    manifest = convert_ukb(out, ecg_dir=root / "20205", cmr_dir=root / "cmr", tabular=[root / "main.csv"])
    assert manifest["n_subjects"] == len(UKB_EIDS) - 1
    ds = open_dataset(out, "all")
    assert jpegls not in set(ds.subject_ids) and rle in set(ds.subject_ids)
    # RLE Lossless (compressed, decoded by pydicom itself) converts to the same cine as uncompressed pixels.
    cine = ds[list(ds.subject_ids).index(rle)]["cine_sa"].numpy()
    r, _ = best_alignment(cine, tree["truth"]["cine_sa"][rle][0])
    assert r > 0.97
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["converted"] == len(UKB_EIDS) - 1 and report["skipped"] == {"UndecodablePixelsError": 1}
    example = report["skip_examples"]["UndecodablePixelsError"]
    assert "1.2.840.10008.1.2.4.80" in example and jpegls not in example
    assert decoder_installed or "cardiacnets[dicom]" in example  # with no decoder, the hint names the extra
    assert "UndecodablePixelsError" in (out / "conversion_report.md").read_text()


def test_ukb_report_counts_labels_and_states_assumptions(ecg_tree: dict, tmp_path: Path) -> None:
    root, out = ecg_tree["root"], tmp_path / "ukb"
    convert_ukb(out, ecg_dir=root / "20205", tabular=[root / "main.csv"])
    report = json.loads((out / "conversion_report.json").read_text())
    labels = open_dataset(out, "all").labels_array()
    assert report["converted"] == len(labels) == len(UKB_EIDS) and report["skipped"] == {}
    for k, (name, counts) in enumerate(report["labels"].items()):
        assert counts["known"] == int(np.isfinite(labels[:, k]).sum())
        assert counts["positive"] == int((labels[:, k] == 1).sum())
        assert counts["known"] + counts["unknown"] == len(UKB_EIDS), name
    assert report["labels"]["CAD"]["positive"] == 1  # only 1000011 has a CAD code dated before imaging
    assert report["label_flags"] == {"no_imaging_date": 1}
    text = (out / "conversion_report.md").read_text()
    assert "InstanceNumber" in text and "SeriesNumber" in text and "12336" in text and "1900-01-01" in text


@pytest.fixture(scope="module")
def mimic_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_mimic_tree(tmp_path_factory.mktemp("mimic_real"))


def test_mimic_admission_without_coded_diagnoses_has_unknown_labels(mimic_tree: dict, tmp_path: Path) -> None:
    hosp = tmp_path / "hosp"
    shutil.copytree(mimic_tree["hosp"], hosp)
    with open(hosp / "admissions.csv", "a") as handle:  # holds the 4th ECG (2189-10-14), no diagnoses_icd rows
        handle.write("10000560,204,2189-10-13 10:00:00,2189-10-16 12:00:00,\n")
    out = tmp_path / "mimic"
    convert_mimic(out, root=mimic_tree["root"], hosp_dir=hosp)
    ds = open_dataset(out, "all")
    labels = ds.labels_array()
    assert np.isnan(labels[3]).all() and "no_coded_diagnoses" in ds.qc_flags[3]
    assert np.isnan(labels[1]).all() and "no_linked_stay" in ds.qc_flags[1]
    np.testing.assert_array_equal(labels[0], [0, 0, 0, 0, 1])  # the coded admission still gives its labels
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["label_flags"] == {"no_coded_diagnoses": 1, "no_linked_stay": 1}
    assert report["labels"]["HF"] == {"known": 2, "positive": 1, "unknown": 2}


def test_mimic_ext_icd_empty_list_with_a_stay_is_unknown_and_tables_keep_only_the_records(
    mimic_tree: dict, tmp_path: Path
) -> None:
    ext = tmp_path / "ext.csv"
    with open(mimic_tree["ext"], newline="") as handle:
        rows = list(csv.reader(handle))
    rows[4][4] = "[]"  # 4th ECG: a linked admission (hosp_hadm_id 3) without a coded diagnosis
    rows.append(["49999999", "19999999", "2190-01-01 00:00:00", "9", "['I500']", "M", "70"])  # not in record_list
    with open(ext, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    tables = read_tables(mimic_tree["root"], ext_icd=ext, limit=3)
    assert tables.studies == ["40689238", "40689239", "45090959"] and len(tables.labels) == 3
    full = read_tables(mimic_tree["root"], ext_icd=ext)
    assert "49999999" not in full.studies
    assert full.flags == ["", "no_linked_stay", "", "no_coded_diagnoses"]
    assert np.isnan(full.labels[3]).all() and np.isnan(full.labels[1]).all()
    np.testing.assert_array_equal(full.labels[2], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(full.sex, [0, 0, np.nan, 1])  # "missing" gender -> unknown
    np.testing.assert_array_equal(full.age, [52, 52, 48, 91])  # capped at 91
