"""UK Biobank and MIMIC-IV-ECG converters on fixture trees built here in the real layouts (domain-notes section 5)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiacnets import synth
from cardiacnets.converters.mimic import convert_mimic
from cardiacnets.converters.ukb import convert_ukb
from cardiacnets.datasets import open_dataset
from cardiacnets.record import LEADS
from cardiacnets.targets import phenotypes

# --------------------------------------------------------------------------------------------------- cine source


def _heart_cines(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 50, 80, 80)`` and ``(n, 50, 96, 96)`` cines in [0, 1]: the simulator's when it exists, else a beating
    phantom (a ring whose radius follows an asymmetric cycle plus a marker that moves with the frame index, so every
    frame is distinct)."""
    if hasattr(synth, "simulate"):
        d = synth.simulate(n, seed=7)
        return d["cine_sa"], d["cine_la"]
    t = np.arange(50)
    radius = 14 - 6 * np.where(t < 17, t / 17, np.maximum(0, 1 - (t - 17) / 25))

    def phantom(size: int, k: int) -> np.ndarray:
        yy, xx = np.mgrid[:size, :size] - size / 2
        r = np.hypot(yy, xx)[None]
        cine = 0.15 + 0.75 * (r < radius[:, None, None] + k) + 0.1 * ((r > radius[:, None, None] + k + 3) & (r < 30))
        for f in range(50):
            cine[f, 4:7, 10 + f : 13 + f] = 1.0
        return np.clip(cine, 0, 1).astype(np.float32)

    return np.stack([phantom(80, k) for k in range(n)]), np.stack([phantom(96, k) for k in range(n)])


# --------------------------------------------------------------------------------------------------- UKB fixtures


def _dicom_bytes(
    pixels: np.ndarray,
    *,
    series: str,
    uid: str,
    number: int,
    instance: int,
    trigger: float,
    position: tuple[float, float, float],
) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesDescription = series
    ds.SeriesInstanceUID = uid
    ds.SeriesNumber = number
    ds.InstanceNumber = instance
    ds.TriggerTime = trigger
    ds.CardiacNumberOfImages = 50
    ds.ImagePositionPatient = list(position)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.8, 1.8]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _embed(cine: np.ndarray, size: int, offset: tuple[int, int]) -> np.ndarray:
    """Place a cine in a larger still field (``(T, size, size)`` uint16 counts, 4000 = 1.0)."""
    out = np.zeros((cine.shape[0], size, size), dtype=np.float64)
    r, c = offset
    out[:, r : r + cine.shape[1], c : c + cine.shape[2]] = cine
    return np.rint(out * 4000).astype(np.uint16)


def _write_series(files: list, images: np.ndarray, series: str, uid: str, number: int, z: float, rng, first: int = 1):
    """One cine series: 50 DICOM files whose trigger times are written in shuffled order."""
    for f in rng.permutation(len(images)):
        files.append(
            (
                f"{uid[-6:]}_{first + f:04d}.dcm",
                series,
                _dicom_bytes(
                    images[f],
                    series=series,
                    uid=uid,
                    number=number,
                    instance=first + int(f),
                    trigger=20.0 * f + 3.0,
                    position=(0.0, 0.0, z),
                ),
            )
        )


def _write_zip(path: Path, files: list, *, misspelt: bool) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        lines = ["filename,patientid,studyid,aetitle,date,time,series discription,seriesnumber"]
        for name, series, _ in files:
            lines.append(f"{name},1,2,UKB,Mar 14, 2017,10:00,{series},1")  # the date carries an unquoted comma
        zf.writestr("manifest.cvs" if misspelt else "manifest.csv", "\n".join(lines) + "\n")
        for name, _, data in files:
            zf.writestr(name, data)


def _cardiosoft_xml(counts: np.ndarray, heart_rate: int) -> str:
    """A minimal GE CardioSoft XML in the UK Biobank 20205 layout; leads written in a shuffled order."""
    order = [5, 0, 11, 3, 1, 4, 2, 6, 8, 7, 10, 9]
    waves = "\n".join(
        f'\t\t<WaveformData lead="{LEADS[k]}">{",".join(str(int(v)) for v in counts[k])}</WaveformData>' for k in order
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<CardiologyXML>
\t<ObservationType>RestECG</ObservationType>
\t<PatientInfo><Gender>FEMALE</Gender></PatientInfo>
\t<RestingECGMeasurements>
\t\t<VentricularRate units="BPM">{heart_rate}</VentricularRate>
\t</RestingECGMeasurements>
\t<StripData>
\t\t<NumberOfLeads>12</NumberOfLeads>
\t\t<SampleRate units="Hz">500</SampleRate>
\t\t<ChannelSampleCountTotal>5000</ChannelSampleCountTotal>
\t\t<Resolution units="uVperLsb">5</Resolution>
{waves}
\t</StripData>
</CardiologyXML>
"""


UKB_EIDS = ["1000011", "1000022", "1000033", "1000044", "1000055", "1000066"]
# eid -> (codes with dates) ; imaging date 2016-05-01 for all but the last
UKB_DIAGNOSES = {
    "1000011": [("I21.4", "2015-01-02"), ("I500", "2018-03-03")],  # CAD prevalent; HF incident (after imaging)
    "1000022": [("I420", "2016-05-01")],  # DCM on the imaging day
    "1000033": [("E854", "2014-01-01"), ("I43", "2014-02-01"), ("I27", "")],  # amyloid RCM; PH undated
    "1000044": [],
    "1000055": [("I311", "1900-01-01")],  # placeholder date: unknown
    "1000066": [("I21", "2010-01-01")],
}


@pytest.fixture(scope="module")
def ukb_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ukb")
    (root / "20205").mkdir()
    (root / "cmr").mkdir()
    rng = np.random.default_rng(0)
    cine_sa, cine_la = _heart_cines(len(UKB_EIDS))
    truth: dict = {"ecg": {}, "cine_sa": {}, "cine_la": {}}
    t = np.arange(5000) / 500
    for k, eid in enumerate(UKB_EIDS):
        counts = np.rint([200 * np.sin(2 * np.pi * (lead + 1) * 0.5 * t + k) for lead in range(12)])
        (root / "20205" / f"{eid}_20205_2_0.xml").write_text(_cardiosoft_xml(counts, 60 + k), encoding="latin-1")
        truth["ecg"][eid] = counts * 0.005
        # Short axis: three slices; the middle one along the normal holds the heart, the others a decoy.
        offset = (12 + 3 * k, 30 - 2 * k)
        files: list = []
        decoy = np.clip(cine_sa[(k + 1) % len(UKB_EIDS)] * 0.5, 0, 1)
        for b, z, img in ((1, 40.0, decoy), (2, 30.0, cine_sa[k]), (3, 20.0, decoy[::-1])):
            _write_series(
                files, _embed(img, 128, offset), f"CINE_segmented_SAX_b{b}", f"1.2.3.{k}.{b}0000{b}", 10 + b, z, rng
            )
        _write_zip(root / "cmr" / f"{eid}_20209_2_0.zip", files, misspelt=k % 2 == 0)
        truth["cine_sa"][eid] = (cine_sa[k], offset)
        # Long axis: a 2Ch decoy and the 4Ch series; for one subject a single mixed LAX series (3Ch, 4Ch, 2Ch).
        offset_la = (20, 25 + k)
        four = _embed(cine_la[k], 150, offset_la)
        other = _embed(cine_la[(k + 2) % len(UKB_EIDS)][::-1], 150, offset_la)
        files = []
        if k == 3:
            for block, img in enumerate((other, four, other[::-1])):
                _write_series(files, img, "CINE_segmented_LAX", f"1.2.4.{k}.999999", 20, 0.0, rng, first=1 + 50 * block)
        else:
            _write_series(files, other, "CINE_segmented_LAX_2Ch", f"1.2.4.{k}.200002", 20, 0.0, rng)
            _write_series(files, four, "CINE_segmented_LAX_4Ch", f"1.2.4.{k}.400004", 21, 0.0, rng)
        _write_zip(root / "cmr" / f"{eid}_20208_2_0.zip", files, misspelt=False)
        truth["cine_la"][eid] = (cine_la[k], offset_la)
    # Tabular showcase CSV.
    fields = [p.ukb_field for p in phenotypes()]
    header = ["eid", "31-0.0", "21003-2.0", "53-2.0"]
    header += [f"41270-0.{j}" for j in range(3)] + [f"41280-0.{j}" for j in range(3)]
    header += [f"{f}-2.0" for f in fields]
    rows = []
    for k, eid in enumerate(UKB_EIDS):
        diag = UKB_DIAGNOSES[eid] + [("", "")] * (3 - len(UKB_DIAGNOSES[eid]))
        pheno = [str(100.0 + k + j / 10) for j in range(82)]
        pheno[5] = ""  # a missing phenotype
        imaging = "" if eid == "1000066" else "2016-05-01"
        rows.append([eid, str(k % 2), str(55 + k), imaging, *[c for c, _ in diag], *[d for _, d in diag], *pheno])
    with open(root / "main.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return {"root": root, "truth": truth}


def _best_alignment(converted: np.ndarray, truth: np.ndarray, max_shift: int = 16) -> tuple[float, tuple[int, int]]:
    """Highest correlation of ``converted`` with ``truth`` over integer shifts (the crop centre is estimated)."""
    size = converted.shape[-1]
    pad = np.pad(truth, ((0, 0), (max_shift + size, max_shift + size), (max_shift + size, max_shift + size)))
    best = (-1.0, (0, 0))
    c0 = (truth.shape[-1] - size) // 2 + max_shift + size
    for dr in range(-max_shift, max_shift + 1):
        for dc in range(-max_shift, max_shift + 1):
            window = pad[::10, c0 + dr : c0 + dr + size, c0 + dc : c0 + dc + size]  # every 10th frame: fast
            r = np.corrcoef(window.ravel(), converted[::10].ravel())[0, 1]
            if r > best[0]:
                best = (float(r), (dr, dc))
    return best


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
            r, shift = _best_alignment(cine, source)
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

MIMIC_RECORDS = [  # subject, study, ecg_time
    ("10000032", "40689238", "2180-07-23 08:44:00"),
    ("10000032", "40689239", "2181-01-02 10:00:00"),
    ("10000117", "45090959", "2183-09-18 13:52:00"),
    ("10000560", "41111111", "2189-10-14 09:00:00"),
]
WFDB_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def mimic_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import wfdb

    root = tmp_path_factory.mktemp("mimic") / "mimic-iv-ecg" / "1.0"
    root.mkdir(parents=True)
    t = np.arange(5000) / 500
    signals = {}
    lines = ["subject_id,study_id,file_name,ecg_time,path"]
    for k, (subject, study, when) in enumerate(MIMIC_RECORDS):
        sig = np.stack([np.round(60 * (j + 1) * np.sin(2 * np.pi * (1 + j / 7) * t + k)) * 0.005 for j in range(12)], 1)
        if k == 1:
            sig[100:200, WFDB_ORDER.index("V2")] = np.nan
        if k == 2:
            sig[:, WFDB_ORDER.index("V4")] = 0.0
        rel = f"files/p{subject[:4]}/p{subject}/s{study}"
        (root / rel).mkdir(parents=True)
        wfdb.wrsamp(
            study,
            fs=500,
            units=["mV"] * 12,
            sig_name=WFDB_ORDER,
            p_signal=sig,
            fmt=["16"] * 12,
            adc_gain=[200.0] * 12,
            baseline=[0] * 12,
            write_dir=str(root / rel),
        )
        signals[study] = sig
        lines.append(f"{subject},{study},{rel}/{study},{when},{rel}/{study}")
    lines_mm = [
        "subject_id,study_id,cart_id,ecg_time,rr_interval,p_onset,p_end,qrs_onset,qrs_end,t_end,p_axis,qrs_axis,t_axis"
    ]
    mm = [
        ("800", "40", "150", "29999", "250", "600", "45", "32767", "50"),
        ("65535", "40", "150", "200", "290", "600", "-32768", "30", "50"),
        ("1000", "40", "150", "200", "290", "600", "10", "20", "30"),
        ("750", "40", "150", "200", "290", "600", "10", "20", "30"),
    ]
    for (subject, study, when), values in zip(MIMIC_RECORDS, mm, strict=True):
        lines_mm.append(f"{subject},{study},cart1,{when}," + ",".join(values))
    (root / "record_list.csv").write_text("\n".join(lines) + "\n")
    (root / "machine_measurements.csv").write_text("\n".join(lines_mm) + "\n")
    ext = root.parent.parent / "records_w_diag_icd10.csv"
    with open(ext, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "subject_id", "ecg_time", "hosp_hadm_id", "all_diag_all", "gender", "age"])
        writer.writerow(["40689238", "10000032", MIMIC_RECORDS[0][2], "1", "['I2510', 'E785']", "F", "52"])
        writer.writerow(["40689239", "10000032", MIMIC_RECORDS[1][2], "", "[]", "F", "52"])
        writer.writerow(["45090959", "10000117", MIMIC_RECORDS[2][2], "2", "['I420', 'I5022', 'I10']", "missing", "48"])
        writer.writerow(["41111111", "10000560", MIMIC_RECORDS[3][2], "3", "['I311']", "M", "95"])
    hosp = root.parent.parent / "hosp"
    hosp.mkdir()
    (hosp / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "10000032,F,52,2180,2014 - 2016,\n10000117,M,48,2180,2008 - 2010,\n10000560,M,91,2189,2017 - 2019,\n"
    )
    (hosp / "admissions.csv").write_text(
        "subject_id,hadm_id,admittime,dischtime,deathtime\n"
        "10000032,201,2180-07-22 10:00:00,2180-07-25 12:00:00,\n"  # holds the first ECG
        "10000032,202,2181-03-01 10:00:00,2181-03-05 12:00:00,\n"  # after the second ECG: not linked
        "10000117,203,2183-09-18 08:00:00,2183-09-20 08:00:00,\n"
    )
    (hosp / "diagnoses_icd.csv").write_text(
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n"
        "10000032,201,1,4280,9\n10000032,202,1,I2510,10\n10000117,203,1,I421,10\n10000117,203,2,I270,10\n"
    )
    return {"root": root, "ext": ext, "hosp": hosp, "signals": signals}


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
