"""UK Biobank fixture trees in the real layouts: CardioSoft ECG XML (field 20205), CMR DICOM zips with manifests
(fields 20208/20209) and the legacy showcase CSV, with the ground truth each file was built from."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from cardiacnets import synth
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
    syntax: str = "plain",
) -> bytes:
    """One MR DICOM frame. ``syntax``: ``plain`` (explicit VR little endian), ``rle`` (RLE Lossless, which pydicom
    decodes by itself) or ``jpegls`` (JPEG-LS Lossless, encapsulated: a truncated stream that no decoder can decode,
    so it stands for undecodable pixel data whether or not a plugin such as pylibjpeg is installed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, MRImageStorage, RLELossless, generate_uid

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
    if syntax == "rle":
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif syntax == "jpegls":
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + pixels.astype(np.uint16).tobytes()[:64] + b"\xff\xd9"])
        ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _embed(cine: np.ndarray, size: int, offset: tuple[int, int]) -> np.ndarray:
    """Place a cine in a larger still field (``(T, size, size)`` uint16 counts, 4000 = 1.0)."""
    out = np.zeros((cine.shape[0], size, size), dtype=np.float64)
    r, c = offset
    out[:, r : r + cine.shape[1], c : c + cine.shape[2]] = cine
    return np.rint(out * 4000).astype(np.uint16)


def _write_series(
    files: list,
    images: np.ndarray,
    series: str,
    uid: str,
    number: int,
    z: float,
    rng,
    first: int = 1,
    syntax: str = "plain",
):
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
                    syntax=syntax,
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


def ukb_participant(k: int, eid: str) -> dict:
    """The tabular truth of participant ``k``: sex code, age, imaging date, diagnoses, 82 phenotype cells."""
    pheno = [str(100.0 + k + j / 10) for j in range(82)]
    pheno[5] = ""  # a missing phenotype
    imaging = "" if eid == "1000066" else "2016-05-01"
    return {"sex": k % 2, "age": 55 + k, "imaging": imaging, "diagnoses": UKB_DIAGNOSES[eid], "phenotypes": pheno}


def write_legacy_tabular(path: Path) -> None:
    """The legacy showcase download (``ukbconv``): ``eid``, ``<field>-<instance>.<array>``, raw codes."""
    fields = [p.ukb_field for p in phenotypes()]
    header = ["eid", "31-0.0", "21003-2.0", "53-2.0"]
    header += [f"41270-0.{j}" for j in range(3)] + [f"41280-0.{j}" for j in range(3)]
    header += [f"{f}-2.0" for f in fields]
    rows = []
    for k, eid in enumerate(UKB_EIDS):
        p = ukb_participant(k, eid)
        diag = p["diagnoses"] + [("", "")] * (3 - len(p["diagnoses"]))
        rows.append([eid, str(p["sex"]), str(p["age"]), p["imaging"], *[c for c, _ in diag], *[d for _, d in diag],
                     *p["phenotypes"]])  # fmt: skip
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def best_alignment(converted: np.ndarray, truth: np.ndarray, max_shift: int = 16) -> tuple[float, tuple[int, int]]:
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


def build_ukb_tree(root: Path, *, with_cmr: bool = True, sax_syntax: dict[str, str] | None = None) -> dict:
    """Write six participants' ECG XML, CMR zips (``sax_syntax``: eid -> pixel encoding of its short-axis zip) and
    ``main.csv`` (legacy names) under ``root``; return the truth."""
    (root / "20205").mkdir(parents=True)
    (root / "cmr").mkdir()
    rng = np.random.default_rng(0)
    cine_sa, cine_la = _heart_cines(len(UKB_EIDS)) if with_cmr else (None, None)
    truth: dict = {"ecg": {}, "cine_sa": {}, "cine_la": {}}
    t = np.arange(5000) / 500
    for k, eid in enumerate(UKB_EIDS):
        counts = np.rint([200 * np.sin(2 * np.pi * (lead + 1) * 0.5 * t + k) for lead in range(12)])
        (root / "20205" / f"{eid}_20205_2_0.xml").write_text(_cardiosoft_xml(counts, 60 + k), encoding="latin-1")
        truth["ecg"][eid] = counts * 0.005
        if with_cmr:
            syntax = (sax_syntax or {}).get(eid, "plain")
            truth["cine_sa"][eid], truth["cine_la"][eid] = _write_cmr(
                root / "cmr", k, eid, cine_sa, cine_la, rng, syntax
            )
    write_legacy_tabular(root / "main.csv")
    return {"root": root, "truth": truth}


def _write_cmr(folder: Path, k: int, eid: str, cine_sa, cine_la, rng, syntax: str) -> tuple:
    # Short axis: three slices; the middle one along the normal holds the heart, the others a decoy.
    offset = (12 + 3 * k, 30 - 2 * k)
    files: list = []
    decoy = np.clip(cine_sa[(k + 1) % len(UKB_EIDS)] * 0.5, 0, 1)
    for b, z, img in ((1, 40.0, decoy), (2, 30.0, cine_sa[k]), (3, 20.0, decoy[::-1])):
        _write_series(files, _embed(img, 128, offset), f"CINE_segmented_SAX_b{b}", f"1.2.3.{k}.{b}0000{b}", 10 + b, z,
                      rng, syntax=syntax)  # fmt: skip
    _write_zip(folder / f"{eid}_20209_2_0.zip", files, misspelt=k % 2 == 0)
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
    _write_zip(folder / f"{eid}_20208_2_0.zip", files, misspelt=False)
    return (cine_sa[k], offset), (cine_la[k], offset_la)


# --------------------------------------------------------------------------------------------------- MIMIC

MIMIC_RECORDS = [  # subject, study, ecg_time
    ("10000032", "40689238", "2180-07-23 08:44:00"),
    ("10000032", "40689239", "2181-01-02 10:00:00"),
    ("10000117", "45090959", "2183-09-18 13:52:00"),
    ("10000560", "41111111", "2189-10-14 09:00:00"),
]
WFDB_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


def build_mimic_tree(base: Path) -> dict:
    """A MIMIC-IV-ECG tree (record list, WFDB records, machine measurements), an Ext-ICD table and a hosp folder."""
    import wfdb

    root = base / "mimic-iv-ecg" / "1.0"
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
