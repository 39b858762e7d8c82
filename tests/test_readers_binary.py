"""Binary and plain-array ECG readers on files the tests build themselves (DICOM, SCP-ECG, WFDB, EDF, NPY/NPZ/CSV).

Covers what the conformance corpus does not: 8-lead files with derived limb leads, mV units, non-zero baselines,
uncompressed and first-difference SCP data, shuffled lead order, WFDB-MAT, EDF+ with annotations, both array
orientations, and every expected failure mode raising its typed error.
"""

from __future__ import annotations

import binascii
import datetime as dt
import importlib
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.errors import CorruptFileError, FileTooLargeError, UnsupportedFormatError
from cardiacnets.io import FORMATS, read_ecg
from cardiacnets.io import array as array_reader
from cardiacnets.io._detect import detect_format
from cardiacnets.record import LEADS, derive_limb_leads

EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def _ecg(n: int = 2000, fs: float = 500.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Twelve physiologically consistent leads in mV (III/aVx from I and II), smooth enough for difference coding."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(EIGHT):
        beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / (2 * 0.01**2))
        out[name] = (0.3 + 0.1 * k) * beat + 0.05 * np.sin(2 * np.pi * (0.3 + 0.05 * k) * t) + rng.normal(0, 0.005, n)
    out.update(derive_limb_leads(out["I"], out["II"]))
    return out


def _rows(record_signal: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([record_signal[LEADS.index(n)] for n in names]).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------- DICOM
def _write_dicom(path: Path, leads: dict[str, np.ndarray], *, unit: str, sensitivity: float, baseline: float) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    scp_codes = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8}
    names = list(leads)
    counts = np.stack([np.round((leads[n] - baseline) / sensitivity) for n in names]).astype("<i2")  # (8, n)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.2"  # General ECG
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-42"
    ds.PatientBirthDate = "19600102"
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.Manufacturer = "Acme"
    ds.ManufacturerModelName = "Cart 9"
    ds.AcquisitionDateTime = "20240131123456"
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.SamplingFrequency = 500
    group.NumberOfWaveformChannels = len(names)
    group.NumberOfWaveformSamples = counts.shape[1]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    channels = []
    for k, name in enumerate(names):
        ch = Dataset()
        source = Dataset()
        if k == 0:  # MDC code with a vendor meaning: the code decides
            source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning = "2:1", "MDC", "Vendor lead one"
        else:
            source.CodeValue = f"5.6.3-9-{scp_codes[name]}"
            source.CodingSchemeDesignator = "SCPECG"
            source.CodeMeaning = f"Lead {name}"
        ch.ChannelSourceSequence = [source]
        ch.ChannelSensitivity = sensitivity
        units = Dataset()
        units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = unit, "UCUM", unit
        ch.ChannelSensitivityUnitsSequence = [units]
        ch.ChannelSensitivityCorrectionFactor = 1
        ch.ChannelBaseline = baseline
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group.ChannelDefinitionSequence = channels
    group.WaveformData = counts.T.tobytes()  # interleaved by sample
    ds.WaveformSequence = [group]
    ds.save_as(path, enforce_file_format=True)


def test_dicom_eight_leads_in_mv_with_baseline(tmp_path: Path) -> None:
    leads = {n: v for n, v in _ecg().items() if n in EIGHT}
    path = tmp_path / "ecg.dcm"
    _write_dicom(path, leads, unit="mV", sensitivity=0.005, baseline=0.01)
    record = read_ecg(path)
    assert record.fs == 500.0 and record.meta["format"] == "DICOM"
    truth = np.stack([np.round((leads[n] - 0.01) / 0.005) * 0.005 + 0.01 for n in EIGHT])
    np.testing.assert_allclose(_rows(record.signal, EIGHT), truth, atol=1e-5)
    assert set(record.meta["derived_leads"]) == {"III", "aVR", "aVL", "aVF"}
    i, ii = record.signal[0].astype(np.float64), record.signal[1].astype(np.float64)
    np.testing.assert_allclose(record.signal[LEADS.index("aVF")], ii - i / 2, atol=1e-5)
    assert record.meta["sex"] == "F" and record.meta["age"] == 63
    assert record.meta["acquired"] == "2024-01-31T12:34:56" and record.meta["device"] == "Acme Cart 9"
    assert record.meta["phi"] == {"patient_id": "P-42", "name": "Doe^Jane", "birth_date": "1960-01-02"}
    assert "P-42" not in str(record.without_phi())


def test_dicom_microvolt_units_scale_by_1000(tmp_path: Path) -> None:
    leads = {n: v * 1000 for n, v in _ecg().items() if n in EIGHT}  # in uV
    path = tmp_path / "uv.dcm"
    _write_dicom(path, leads, unit="uV", sensitivity=2.5, baseline=0.0)
    record = read_ecg(path)
    truth = np.stack([np.round(leads[n] / 2.5) * 2.5 / 1000 for n in EIGHT])
    np.testing.assert_allclose(_rows(record.signal, EIGHT), truth, atol=1e-6)


def test_dicom_truncated_and_non_waveform_are_typed(tmp_path: Path) -> None:
    leads = {n: v for n, v in _ecg().items() if n in EIGHT}
    path = tmp_path / "ecg.dcm"
    _write_dicom(path, leads, unit="mV", sensitivity=0.005, baseline=0.0)
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 3000])
    with pytest.raises(CorruptFileError):
        read_ecg(cut)

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    image = Dataset()
    image.file_meta = FileMetaDataset()
    image.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT image
    image.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    image.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    image.SOPClassUID = image.file_meta.MediaStorageSOPClassUID
    image.SOPInstanceUID = image.file_meta.MediaStorageSOPInstanceUID
    ct = tmp_path / "ct.dcm"
    image.save_as(ct, enforce_file_format=True)
    with pytest.raises(UnsupportedFormatError, match="no ECG waveform"):
        read_ecg(ct)


# ------------------------------------------------------------------------------------------------------------ SCP-ECG
_SCP_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8, "III": 61, "aVR": 62, "aVL": 63}


def _section(sid: int, body: bytes, reserved: bytes = b"\x00" * 6) -> bytes:
    length = 16 + len(body)
    rest = struct.pack("<HIBB", sid, length, 20, 20) + reserved + body
    return struct.pack("<H", binascii.crc_hqx(rest, 0xFFFF)) + rest


def _default_huffman(values: np.ndarray) -> bytes:
    """Encode with the standard's default Huffman table (the inverse of what the reader decodes)."""
    bits = []
    for v in values.tolist():
        if v == 0:
            bits.append("0")
        elif -8 <= v <= 8:  # |v| ones, a zero, then the sign: 1 -> 100, -2 -> 1101, 8 -> 1111111100
            bits.append("1" * abs(v) + "0" + ("0" if v > 0 else "1"))
        elif -128 <= v <= 127:
            bits.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            bits.append("1111111111" + format(v & 0xFFFF, "016b"))
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return bytes(int(stream[i : i + 8], 2) for i in range(0, len(stream), 8))


def _write_scp(
    path: Path,
    leads: dict[str, np.ndarray],
    *,
    avm_nv: int = 5000,
    interval_us: int = 2000,
    diff: int = 0,
    huffman: bool = False,
    bimodal: int = 0,
    declared_samples: int | None = None,
) -> np.ndarray:
    """Write an SCP-ECG 2.0 record; returns the stored counts ``(n_leads, n)``."""
    names = list(leads)
    counts = np.stack([np.round(leads[n] * 1e6 / avm_nv) for n in names]).astype(np.int64)
    n = counts.shape[1]
    tags = b""
    for tag, value in (
        (0, b"Roe\x00"),
        (2, b"ID-7\x00"),
        (4, struct.pack("<HB", 57, 1)),
        (8, bytes([1])),
        (25, struct.pack("<HBB", 2023, 6, 15)),
        (26, bytes([8, 30, 5])),
    ):
        tags += struct.pack("<BH", tag, len(value)) + value
    tags += struct.pack("<BH", 255, 0)
    s1 = _section(1, tags)
    s3_body = struct.pack("<BB", len(names), 0x04 | (len(names) << 3))
    for name in names:
        s3_body += struct.pack("<IIB", 1, declared_samples or n, _SCP_CODES[name])
    s3 = _section(3, s3_body)
    encoded = []
    for row in counts:
        d = row.copy()
        if diff == 1:
            d[1:] = row[1:] - row[:-1]
        elif diff == 2:
            d[2:] = row[2:] - 2 * row[1:-1] + row[:-2]
        encoded.append(_default_huffman(d) if huffman else d.astype("<i2").tobytes())
    s6_body = struct.pack("<HHBB", avm_nv, interval_us, diff, bimodal)
    s6_body += b"".join(struct.pack("<H", len(e)) for e in encoded) + b"".join(encoded)
    s6 = _section(6, s6_body)
    others = [(1, s1), (3, s3), (6, s6)]
    if huffman:
        others.insert(1, (2, _section(2, struct.pack("<H", 19999))))
    s0_len = 16 + 10 * 12
    offset = 6 + s0_len
    pointers = struct.pack("<HII", 0, s0_len, 7)
    placed = dict(others)
    body = b""
    for sid in range(1, 12):
        if sid in placed:
            pointers += struct.pack("<HII", sid, len(placed[sid]), offset + len(body) + 1)
            body += placed[sid]
        else:
            pointers += struct.pack("<HII", sid, 0, 0)
    s0 = _section(0, pointers, reserved=b"SCPECG")
    record = s0 + body
    total = 6 + len(record)
    rest = struct.pack("<I", total) + record
    path.write_bytes(struct.pack("<H", binascii.crc_hqx(rest, 0xFFFF)) + rest)
    return counts


@pytest.mark.parametrize(("diff", "huffman"), [(0, False), (1, False), (2, True), (1, True)])
def test_scp_round_trip(tmp_path: Path, diff: int, huffman: bool) -> None:
    leads = {n: v for n, v in _ecg(n=1500).items() if n in _SCP_CODES}  # no aVF stored: it is derived
    path = tmp_path / "ecg.scp"
    counts = _write_scp(path, leads, diff=diff, huffman=huffman)
    record = read_ecg(path)
    assert record.fs == 500.0 and record.n_samples == 1500
    np.testing.assert_allclose(_rows(record.signal, tuple(leads)), counts * 0.005, atol=1e-6)
    assert record.meta["derived_leads"] == ["aVF"]
    assert record.meta["sex"] == "M" and record.meta["age"] == 57
    assert record.meta["acquired"] == "2023-06-15T08:30:05"
    assert record.meta["phi"]["patient_id"] == "ID-7" and not any("CRC" in w for w in record.warnings)


def test_scp_without_marker_is_detected_by_structure(tmp_path: Path) -> None:
    path = tmp_path / "ecg.bin"
    _write_scp(path, {n: v for n, v in _ecg(n=300).items() if n in _SCP_CODES})
    data = bytearray(path.read_bytes())
    data[16:22] = b"\x00" * 6
    assert detect_format(bytes(data)) == "scp_ecg"
    with pytest.raises(UnsupportedFormatError):
        detect_format(b"\x01\x02" * 100)


def test_scp_damage_is_typed_or_warned(tmp_path: Path) -> None:
    leads = {n: v for n, v in _ecg(n=800).items() if n in _SCP_CODES}
    path = tmp_path / "ecg.scp"
    _write_scp(path, leads, diff=1)
    data = path.read_bytes()
    for cut in (30, 100, 300, len(data) - 50):
        bad = tmp_path / f"cut{cut}.scp"
        bad.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="SCP-ECG|truncated"):
            read_ecg(bad)
    flipped = bytearray(data)
    flipped[-20] ^= 0x10  # one sample bit in Section 6
    (tmp_path / "flip.scp").write_bytes(bytes(flipped))
    record = read_ecg(tmp_path / "flip.scp")
    assert any("CRC" in w for w in record.warnings)

    _write_scp(path, leads, bimodal=1)
    with pytest.raises(UnsupportedFormatError, match="bimodal"):
        read_ecg(path)


def test_scp_declared_samples_beyond_data_are_cut_to_what_is_present(tmp_path: Path) -> None:
    leads = {n: v for n, v in _ecg(n=600).items() if n in _SCP_CODES}
    path = tmp_path / "short.scp"
    counts = _write_scp(path, leads, declared_samples=4_000_000)
    record = read_ecg(path)
    assert record.n_samples == 600
    np.testing.assert_allclose(_rows(record.signal, tuple(leads)), counts * 0.005, atol=1e-6)
    assert any("4000000" in w for w in record.warnings)
    _write_scp(path, leads, declared_samples=2**31)  # beyond any plausible recording
    with pytest.raises(CorruptFileError, match="Section 3"):
        read_ecg(path)


# --------------------------------------------------------------------------------------------------------------- WFDB
def test_wfdb_shuffled_leads_gains_units_nan_and_frank(tmp_path: Path) -> None:
    import wfdb

    ecg = _ecg()
    order = ["v3", "AVF", "i", "V6", "avl", "II", "vx", "v1", "III", "aVR", "V2", "v4", "V5"]
    data = np.stack([ecg[n] if n != "vx" else ecg["I"] * 0.7 for n in _canon(order)], axis=1)
    units = ["mV"] * len(order)
    units[0] = "uV"
    data[:, 0] *= 1000
    data[5, 3] = np.nan  # a missing sample in V6
    gains = [1000.0 + 37 * k for k in range(len(order))]
    gains[0] = 1.0
    wfdb.wrsamp(
        "rec", fs=500, units=units, sig_name=order, p_signal=data, fmt=["16"] * len(order), adc_gain=gains,
        baseline=[3 * k - 10 for k in range(len(order))], write_dir=str(tmp_path), comments=["age: 71", "sex: F"],
    )  # fmt: skip
    for given in ("rec.hea", "rec.dat"):
        record = read_ecg(tmp_path / given)
        assert record.fs == 500.0 and record.meta["format"] == "WFDB"
        for name in ("I", "II", "aVL", "aVF", "V1", "V3"):
            np.testing.assert_allclose(record.signal[LEADS.index(name)], ecg[name], atol=1e-3, err_msg=name)
        assert record.signal[LEADS.index("V6"), 5] == 0.0 and any("missing" in w for w in record.warnings)
        assert record.meta["ignored_channels"] == ["vx"]
        assert record.meta["age"] == 71 and record.meta["sex"] == "F"


def _canon(names: list[str]) -> list[str]:
    fix = {"i": "I", "avf": "aVF", "avl": "aVL", "v1": "V1", "v3": "V3", "v4": "V4", "avr": "aVR"}
    return [fix.get(n.lower(), n) if n != "vx" else n for n in names]


def test_wfdb_mat_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import wfdb
    from wfdb.io.convert.matlab import wfdb_to_mat

    ecg = _ecg(n=1200)
    data = np.stack([ecg[n] for n in LEADS], axis=1)
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=data, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    wfdb_to_mat("rec")
    record = read_ecg(tmp_path / "recm.mat")
    assert record.fs == 500.0 and record.n_samples == 1200
    np.testing.assert_allclose(record.signal, data.T, atol=6e-4)


def test_wfdb_bad_headers_are_typed(tmp_path: Path) -> None:
    (tmp_path / "big.dat").write_bytes(b"\x00" * 240)
    (tmp_path / "big.hea").write_text("big 12 500 999999999\n" + "big.dat 16 200 16 0 0 0 0 I\n" * 12)
    with pytest.raises(CorruptFileError, match="999999999"):
        read_ecg(tmp_path / "big.hea")
    (tmp_path / "gone.hea").write_text("gone 1 500 10\ngone.dat 16 200 16 0 0 0 0 I\n")
    with pytest.raises(CorruptFileError, match="missing"):
        read_ecg(tmp_path / "gone.hea")
    (tmp_path / "esc.hea").write_text("esc 1 500 10\n../../etc/passwd 16 200 16 0 0 0 0 I\n")
    with pytest.raises(CorruptFileError, match="outside"):
        read_ecg(tmp_path / "esc.hea")


# ---------------------------------------------------------------------------------------------------------------- EDF
def _write_edf(path: Path, leads: dict[str, np.ndarray], fs: float, record_duration: float) -> None:
    import edfio

    signals = [
        edfio.EdfSignal(v * 1000, fs, label=f"ECG {n}", physical_dimension="uV", physical_range=(-5000, 5000))
        for n, v in leads.items()
    ]
    edf = edfio.Edf(
        signals,
        data_record_duration=record_duration,
        starttime=dt.time(7, 8, 9),
        annotations=[edfio.EdfAnnotation(0.5, None, "start")],
    )
    edf.write(path)


@pytest.mark.parametrize("record_duration", [1.0, 0.002])
def test_edf_plus_scaling_labels_and_annotations(tmp_path: Path, record_duration: float) -> None:
    leads = {n: v for n, v in _ecg(n=1000).items() if n in EIGHT}
    path = tmp_path / "ecg.edf"
    _write_edf(path, leads, 500.0, record_duration)
    record = read_ecg(path)
    assert record.fs == 500.0 and record.n_samples == 1000
    lsb_mv = 10000 / 65535 / 1000
    np.testing.assert_allclose(_rows(record.signal, EIGHT), np.stack([leads[n] for n in EIGHT]), atol=lsb_mv)
    assert record.meta["edf_plus"] and record.meta["ignored_channels"] == []
    assert set(record.meta["derived_leads"]) == {"III", "aVR", "aVL", "aVF"}


def test_edf_truncated_and_garbled_headers(tmp_path: Path) -> None:
    leads = {n: v for n, v in _ecg(n=1000).items() if n in EIGHT}
    path = tmp_path / "ecg.edf"
    _write_edf(path, leads, 500.0, 1.0)
    data = path.read_bytes()
    (tmp_path / "cut.edf").write_bytes(data[:-100])
    with pytest.raises(CorruptFileError, match="truncated"):
        read_ecg(tmp_path / "cut.edf")
    garbled = bytearray(data)
    garbled[236:244] = b"lots    "
    (tmp_path / "garbled.edf").write_bytes(bytes(garbled))
    with pytest.raises(CorruptFileError, match="number of data records"):
        read_ecg(tmp_path / "garbled.edf")
    (tmp_path / "tail.edf").write_bytes(data + b"\x01\x00" * 800)  # bytes after the declared data records
    record = read_ecg(tmp_path / "tail.edf")
    assert record.n_samples == 1000 and any("after the last data record" in w for w in record.warnings)
    huge = bytearray(data)
    huge[236:244] = b"99999999"
    (tmp_path / "huge.edf").write_bytes(bytes(huge))
    with pytest.raises(CorruptFileError, match="truncated"):
        read_ecg(tmp_path / "huge.edf")


# ------------------------------------------------------------------------------------------------------ NPY/NPZ/CSV
@pytest.mark.parametrize("leads_first", [True, False])
def test_npz_both_orientations_with_lead_names(tmp_path: Path, leads_first: bool) -> None:
    ecg = _ecg(n=900)
    names = ["V1", "I", "II", "V2", "V3", "V4", "V5", "V6"]
    signal = np.stack([ecg[n] for n in names])
    path = tmp_path / "ecg.npz"
    np.savez_compressed(path, signal=signal if leads_first else signal.T, fs=250.0, leads=np.array(names))
    record = read_ecg(path)
    assert record.fs == 250.0 and record.n_samples == 900
    np.testing.assert_allclose(_rows(record.signal, tuple(names)), signal, atol=1e-6)
    np.testing.assert_allclose(record.signal[LEADS.index("III")], ecg["III"], atol=1e-5)


@pytest.mark.parametrize("leads_first", [True, False])
def test_npy_needs_an_explicit_rate(tmp_path: Path, leads_first: bool) -> None:
    signal = np.stack([_ecg(n=700)[n] for n in LEADS]).astype(np.float32)
    path = tmp_path / "ecg.npy"
    np.save(path, signal if leads_first else signal.T)
    with pytest.raises(CorruptFileError, match="sampling rate"):
        read_ecg(path)
    record = array_reader.read(path, path.read_bytes(), fs=500.0)
    np.testing.assert_allclose(record.signal, signal, atol=1e-6)
    path.with_suffix(".json").write_text('{"fs": 1000, "units": "uV"}')
    record = read_ecg(path)
    assert record.fs == 1000.0 and any("sidecar" in w for w in record.warnings)
    np.testing.assert_allclose(record.signal, signal / 1000, atol=1e-8)


def test_csv_rate_from_time_column_or_comment(tmp_path: Path) -> None:
    ecg = _ecg(n=400)
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6", "III", "aVR", "aVL", "aVF"]
    lines = ["# units=uV", "time;" + ";".join(names)]
    lines += [f"{k / 500:.4f};" + ";".join(f"{ecg[n][k] * 1000:.3f}" for n in names) for k in range(400)]
    path = tmp_path / "ecg.csv"
    path.write_text("\n".join(lines))
    record = read_ecg(path)
    assert record.fs == pytest.approx(500.0)
    np.testing.assert_allclose(_rows(record.signal, tuple(names)), np.stack([ecg[n] for n in names]), atol=1e-6)

    rows = ["# fs=250", ",".join(names)] + [",".join(f"{ecg[n][k]:.5f}" for n in names) for k in range(400)]
    path.write_text("\n".join(rows))
    assert read_ecg(path).fs == 250.0
    path.write_text("\n".join(rows[1:]))
    with pytest.raises(CorruptFileError, match="sampling rate"):
        read_ecg(path)
    path.write_text("\n".join(["# fs=250", rows[1], rows[2].replace(rows[2].split(",")[3], "abc", 1)]))
    with pytest.raises(CorruptFileError, match="not a number"):
        read_ecg(path)
    irregular = ["time,I,II", "0,1,2", "0.002,1,2", "0.010,1,2"]
    path.write_text("\n".join(irregular))
    with pytest.raises(CorruptFileError, match="uniform"):
        read_ecg(path)


def _watch_export(values_uv: np.ndarray, *, decimal_comma: bool = False, keys: dict[str, str] | None = None) -> str:
    """A single-lead export as the Apple Watch ECG app writes it (key-value header, blank lines, one value a line)."""
    k = {"name": "Name", "birth": "Date of Birth", "recorded": "Recorded Date", "classification": "Classification",
         "device": "Device", "rate": "Sample Rate", "lead": "Lead", "unit": "Unit", **(keys or {})}  # fmt: skip
    head = [f"{k['name']},Test Person", f'{k["birth"]},"Jan 8, 2002"', f"{k['recorded']},2026-05-30 16:32:18 -0700",
            f"{k['classification']},Sinus Rhythm", "Symptoms,", "Software Version,1.90", f'{k["device"]},"Watch7,12"',
            f"{k['rate']},512 hertz", "", "", f"{k['lead']},Lead I", f"{k['unit']},µV", "", ""]  # fmt: skip
    cells = [f"{v:.3f}".replace(".", ",") if decimal_comma else f"{v:.3f}" for v in values_uv]
    return "\n".join(head + cells) + "\n"


@pytest.mark.parametrize("variant", ["english", "decimal-comma", "other-language-keys", "re-saved"])
def test_single_lead_key_value_export_reads_lead_i_in_mv(tmp_path: Path, variant: str) -> None:
    t = np.arange(512 * 30) / 512
    lead_i_uv = np.round(400 * np.sin(2 * np.pi * 1.1 * t) - 120 * np.cos(2 * np.pi * 7 * t), 3)
    keys = {"rate": "Abtastrate", "lead": "Ableitung", "unit": "Einheit", "name": "Nom", "birth": "Geburtsdatum"}
    path = tmp_path / "ecg_2026-05-30.csv"
    text = _watch_export(lead_i_uv, decimal_comma=variant == "decimal-comma", keys=keys if "other" in variant else None)
    if variant == "re-saved":  # a spreadsheet's round trip: quoted decimal-comma values, a trailing separator
        head, _, _ = text.rpartition("\n\n\n")
        body = "\n".join(f'"{v:.3f}",'.replace(".", ",", 1) for v in lead_i_uv)
        text = f"{head}\n\n\n{body}\n"
    path.write_text(text, encoding="utf-8")
    record = read_ecg(path)
    assert record.fs == 512.0 and record.signal.shape == (12, 512 * 30)
    np.testing.assert_allclose(record.signal[LEADS.index("I")], lead_i_uv / 1000.0, atol=1e-9)
    assert record.meta["stored_leads"] == ["I"] and len(record.meta["missing_leads"]) == 11
    assert not record.signal[1:].any()  # nothing invented for the leads a single lead cannot give
    assert record.meta["device"] == "Watch7,12" and record.meta["cart_measurements"]["rhythm"] == "sinus"
    if variant == "other-language-keys":  # the patient's name is recognised by its English key only; never kept else
        assert record.meta["phi"] == {} and "Test Person" not in json.dumps(record.without_phi(), default=str)
    else:
        assert record.meta["phi"] == {"name": "Test Person", "birth_date": "Jan 8, 2002"}
        assert record.meta["acquired"] == "2026-05-30 16:32:18 -0700"
    assert "Test Person" not in " ".join(record.warnings)
    assert not any("no unit" in w or "no lead" in w for w in record.warnings)  # both read from the header


def test_single_lead_exports_refuse_what_they_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "ecg.csv"
    text = _watch_export(np.zeros(600))
    path.write_text(text.replace("Lead,Lead I", "Lead,Lead Z"), encoding="utf-8")
    with pytest.raises(CorruptFileError, match="not one of the 12 standard leads"):
        read_ecg(path)
    path.write_text(text.replace("\n0.000\n", "\n0.000\nnoise\n", 1), encoding="utf-8")
    with pytest.raises(CorruptFileError, match="not one number"):
        read_ecg(path)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorruptFileError, match="states 512 Hz"):
        array_reader.read(path, path.read_bytes(), fs=500.0)


def test_single_column_csv_with_a_lead_name_header(tmp_path: Path) -> None:
    values = np.round(np.sin(np.arange(2500) / 40.0), 4)
    path = tmp_path / "lead2.csv"
    path.write_text("\n".join(["# fs=250", "Lead II", *(f"{v:.4f}".replace(".", ",") for v in values)]))
    record = read_ecg(path)
    assert record.fs == 250.0 and record.meta["stored_leads"] == ["II"]
    np.testing.assert_allclose(record.signal[LEADS.index("II")], values, atol=1e-9)
    path.write_text("\n".join(["# fs=250", "amplitude", "0.1", "0.2"]))
    with pytest.raises(CorruptFileError, match="single column needs a lead"):
        read_ecg(path)


def test_arrays_refuse_pickle_bombs_and_huge_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obj = tmp_path / "obj.npz"
    np.savez(obj, signal=np.array([[1, "a"]], dtype=object), fs=500.0)
    with pytest.raises(UnsupportedFormatError, match="refused"):
        read_ecg(obj)

    missing_fs = tmp_path / "nofs.npz"
    np.savez(missing_fs, signal=np.zeros((12, 100)))
    with pytest.raises(CorruptFileError, match="'fs'"):
        read_ecg(missing_fs)

    bomb = tmp_path / "bomb.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((12, 400_000)))  # 38 MB of zeros compresses ~1000x
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("signal.npy", buffer.getvalue())
    with pytest.raises(FileTooLargeError):
        read_ecg(bomb)

    header = tmp_path / "huge.npy"
    fixed = np.lib.format
    buf = io.BytesIO()
    fixed.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (12, 10**10)})
    header.write_bytes(buf.getvalue() + b"\x00" * 960)
    with pytest.raises(FileTooLargeError):
        read_ecg(header)
    buf = io.BytesIO()
    fixed.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (12, 1000)})
    header.write_bytes(buf.getvalue() + b"\x00" * 960)
    with pytest.raises(CorruptFileError, match="truncated"):
        read_ecg(header)


@pytest.mark.parametrize("suffix", [".scp", ".edf", ".dcm", ".npz", ".npy"])
def test_random_bit_flips_and_truncation_raise_only_typed_errors(tmp_path: Path, suffix: str) -> None:
    leads = {n: v for n, v in _ecg(n=500).items() if n in EIGHT}
    path = tmp_path / f"ecg{suffix}"
    if suffix == ".scp":
        _write_scp(path, leads, diff=2, huffman=True)
    elif suffix == ".edf":
        _write_edf(path, leads, 500.0, 1.0)
    elif suffix == ".dcm":
        _write_dicom(path, leads, unit="uV", sensitivity=2.5, baseline=0.0)
    elif suffix == ".npz":
        np.savez_compressed(path, signal=np.stack(list(leads.values())), fs=500.0, leads=np.array(list(leads)))
    else:
        np.save(path, np.stack([_ecg(n=500)[n] for n in LEADS]))
    data = path.read_bytes()
    rng = np.random.default_rng(7)
    from cardiacnets.errors import CardiacNetsError

    for trial in range(60):
        damaged = bytearray(data)
        if trial % 2:
            damaged = damaged[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=8):
                damaged[pos] ^= 1 << int(rng.integers(0, 8))
        bad = tmp_path / f"bad{trial}{suffix}"
        bad.write_bytes(bytes(damaged))
        try:
            # The reader module itself, not read_ecg: its catch-all must not be what turns failures into typed errors.
            module = importlib.import_module(f"cardiacnets.io.{FORMATS[detect_format(bytes(damaged), bad)]}")
            record = module.read(bad, bytes(damaged))
        except CardiacNetsError:
            continue
        assert record.signal.shape[0] == 12 and record.signal.dtype == np.float32


def test_voltage_units_read_the_same_in_every_spelling():
    from cardiacnets.io._units import channel_factor, millivolts_per_unit

    assert millivolts_per_unit(" mV ") == 1.0
    assert millivolts_per_unit("\u00b5V") == millivolts_per_unit("\u03bcV") == millivolts_per_unit("UV") == 1e-3
    assert millivolts_per_unit("nV") == 1e-6 and millivolts_per_unit("V") == 1e3
    assert millivolts_per_unit("mmHg") is None
    warnings: list[str] = []
    assert channel_factor("mmHg", "signal 'ABP'", "has no unit", warnings) is None
    assert channel_factor("", "signal 'II'", "has no unit", warnings) == 1e-3
    assert warnings == [
        "signal 'ABP' in unit 'mmHg' is not an ECG voltage; ignored",
        "signal 'II' has no unit; assumed uV",
    ]
