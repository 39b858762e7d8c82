"""XML ECG readers on small hand-written documents: what the conformance corpus does not cover.

Other units and rate exponents (MUSE), uncompressed and plain Philips data, XLI decompression bombs, aECG in mV with a
non-zero origin, CardioSoft FullDisclosure-only files, text encodings, and the safety refusals (entities, external
references, DTD internal subsets) and corruption errors.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.errors import CorruptFileError, UnsafeFileError
from cardiacnets.io import aecg, cardiosoft, muse, philips, read_ecg
from cardiacnets.io._detect import detect_format
from cardiacnets.io._xml import child, local_name, parse_xml, text
from cardiacnets.record import LEADS, EcgRecord

RNG_SEED = 20240611
MUSE_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def _counts(n: int, n_leads: int, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(-2000, 2000, size=(n_leads, n), dtype=np.int16)


def read_ecg_bytes(data: bytes, name: str) -> EcgRecord:
    """Write ``data`` to a temporary file and read it through the public entry point (format detection included)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return read_ecg(path)


# ----------------------------------------------------------------------------------------------------------- MUSE
def _muse_lead(label: str, counts: np.ndarray, per_bit: str, units: str, *, crc: int | None = None, n=None) -> str:
    raw = counts.astype("<i2").tobytes()
    return f"""
      <LeadData>
        <LeadByteCountTotal>{len(raw) if n is None else 2 * n}</LeadByteCountTotal>
        <LeadSampleCountTotal>{counts.size if n is None else n}</LeadSampleCountTotal>
        <LeadAmplitudeUnitsPerBit>{per_bit}</LeadAmplitudeUnitsPerBit>
        <LeadAmplitudeUnits>{units}</LeadAmplitudeUnits>
        <LeadID>{label}</LeadID>
        <LeadSampleSize>2</LeadSampleSize>
        <LeadDataCRC32>{zlib.crc32(raw) if crc is None else crc}</LeadDataCRC32>
        <WaveFormData>{base64.encodebytes(raw).decode()}</WaveFormData>
      </LeadData>"""


def _muse_xml(
    counts: np.ndarray,
    *,
    base: str = "500",
    exponent: str = "0",
    per_bit: str = "4.88",
    units: str = "MICROVOLTS",
    median: np.ndarray | None = None,
    rhythm: bool = True,
    lead_overrides: dict[str, str] | None = None,
) -> str:
    def waveform(kind: str, data: np.ndarray) -> str:
        leads = "".join(
            (lead_overrides or {}).get(label) or _muse_lead(label, data[i], per_bit, units)
            for i, label in enumerate(MUSE_LEADS)
        )
        return f"""
  <Waveform>
    <WaveformType>{kind}</WaveformType>
    <NumberofLeads>8</NumberofLeads>
    <SampleBase>{base}</SampleBase>
    <SampleExponent>{exponent}</SampleExponent>
    <HighPassFilter>16</HighPassFilter>
    <LowPassFilter>150</LowPassFilter>
    <ACFilter>60</ACFilter>{leads}
  </Waveform>"""

    blocks = (waveform("Median", median) if median is not None else "") + (waveform("Rhythm", counts) if rhythm else "")
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE RestingECG SYSTEM "restecg.dtd">
<RestingECG>
  <MuseInfo><MuseVersion>9.0.0</MuseVersion></MuseInfo>
  <PatientDemographics>
    <PatientID>PID-4711</PatientID><PatientAge>18</PatientAge><AgeUnits>MONTHS</AgeUnits>
    <DateofBirth>03-21-1941</DateofBirth><Gender>FEMALE</Gender>
    <PatientLastName>MÜLLER</PatientLastName><PatientFirstName>JOSÉ</PatientFirstName>
  </PatientDemographics>
  <TestDemographics>
    <AcquisitionDevice>MAC5500</AcquisitionDevice>
    <AcquisitionTime>11:34:00</AcquisitionTime><AcquisitionDate>04-22-2000</AcquisitionDate>
  </TestDemographics>
  <RestingECGMeasurements><VentricularRate>61</VentricularRate></RestingECGMeasurements>{blocks}
</RestingECG>
"""


def test_muse_millivolt_units_and_sample_exponent() -> None:
    counts = _counts(1000, 8)
    record = muse.read(
        Path("m.xml"), _muse_xml(counts, base="25", exponent="1", per_bit="0.005", units="MILLIVOLTS").encode("latin-1")
    )
    assert record.fs == 250.0
    for i, lead in enumerate(MUSE_LEADS):
        np.testing.assert_allclose(record.signal[LEADS.index(lead)], counts[i] * 0.005, rtol=1e-6, atol=1e-7)
    i, ii = counts[0].astype(float) * 0.005, counts[1].astype(float) * 0.005
    np.testing.assert_allclose(record.signal[LEADS.index("III")], ii - i, atol=1e-5)
    np.testing.assert_allclose(record.signal[LEADS.index("aVR")], -(i + ii) / 2, atol=1e-5)
    assert record.meta["derived_leads"] == ["III", "aVR", "aVL", "aVF"]


def test_muse_microvolt_scaling_median_and_metadata(caplog: pytest.LogCaptureFixture) -> None:
    counts, median = _counts(5000, 8), _counts(600, 8, seed=1)
    with caplog.at_level(logging.DEBUG):
        record = read_ecg_bytes(_muse_xml(counts, median=median).encode("latin-1"), "muse.xml")
    np.testing.assert_allclose(record.signal[LEADS.index("V3")], counts[4] * 4.88e-3, rtol=1e-6)
    assert record.median_beat is not None and record.median_beat.shape == (12, 600)
    np.testing.assert_allclose(record.median_beat[LEADS.index("II")], median[1] * 4.88e-3, rtol=1e-6)
    assert record.median_fs == 500.0
    meta = record.meta
    assert meta["sex"] == "F" and meta["age"] == pytest.approx(1.5) and meta["heart_rate"] == 61.0
    assert meta["acquired"] == "2000-04-22T11:34:00" and meta["device"] == "MAC5500"
    assert meta["filters"] == {"highpass_hz": 0.16, "lowpass_hz": 150.0, "notch_hz": 60.0}
    assert meta["phi"] == {"patient_id": "PID-4711", "name": "MÜLLER, JOSÉ", "birth_date": "1941-03-21"}
    outside_phi = repr(record.without_phi())
    assert "PID-4711" not in outside_phi and "MÜLLER" not in outside_phi and "1941" not in outside_phi
    assert "PID-4711" not in caplog.text and "MÜLLER" not in caplog.text
    assert record.warnings == ["leads III, aVR, aVL, aVF derived from I and II"]


def test_muse_crc_mismatch_warns() -> None:
    counts = _counts(500, 8)
    bad = _muse_lead("V2", counts[3], "4.88", "MICROVOLTS", crc=12345)
    record = muse.read(Path("m.xml"), _muse_xml(counts, lead_overrides={"V2": bad}).encode("latin-1"))
    assert any("V2" in w and "CRC32" in w for w in record.warnings), record.warnings
    # The data itself is still read.
    np.testing.assert_allclose(record.signal[LEADS.index("V2")], counts[3] * 4.88e-3, rtol=1e-6)


def test_muse_sample_count_mismatches() -> None:
    counts = _counts(500, 8)
    longer = _muse_lead("V1", counts[2], "4.88", "MICROVOLTS", n=400)  # 500 stored, 400 declared
    record = muse.read(Path("m.xml"), _muse_xml(counts, lead_overrides={"V1": longer}).encode("latin-1"))
    assert any("V1" in w and "extra samples dropped" in w for w in record.warnings)
    assert record.n_samples == 400  # every lead cut to the shortest, with a warning from assemble_record
    shorter = _muse_lead("V1", counts[2, :300], "4.88", "MICROVOLTS", n=500)
    record = muse.read(Path("m.xml"), _muse_xml(counts, lead_overrides={"V1": shorter}).encode("latin-1"))
    assert any("only 300 of 500" in w for w in record.warnings), record.warnings


def test_muse_declared_rate_contradiction_is_flagged() -> None:
    record = muse.read(Path("m.xml"), _muse_xml(_counts(2500, 8), base="240").encode("latin-1"))
    assert record.fs == 240.0
    assert any("240" in w and "250" in w for w in record.warnings)
    record = muse.read(Path("m.xml"), _muse_xml(_counts(2500, 8), base="250").encode("latin-1"))
    assert not any("contradicts" in w for w in record.warnings)


def test_muse_without_rhythm_or_with_bad_base64_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="no Rhythm"):
        muse.read(Path("m.xml"), _muse_xml(_counts(100, 8), rhythm=False, median=_counts(100, 8)).encode("latin-1"))
    broken = _muse_lead("I", _counts(100, 1)[0], "4.88", "MICROVOLTS").replace("<WaveFormData>", "<WaveFormData>@@")
    with pytest.raises(CorruptFileError, match="base64"):
        muse.read(Path("m.xml"), _muse_xml(_counts(100, 8), lead_overrides={"I": broken}).encode("latin-1"))


# --------------------------------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("codec", ["utf-16-be", "utf-16-le", "utf-8"])
def test_text_encodings_with_bom_and_crlf(codec: str) -> None:
    counts = _counts(500, 8)
    xml_text = _muse_xml(counts).replace('encoding="ISO-8859-1"', f'encoding="{codec[:6]}"')
    xml_text = xml_text.replace("\n", "\r\n").replace("<MuseInfo>", "<MuseInfo>\r")  # CRLF and a stray CR
    bom = {"utf-16-be": b"\xfe\xff", "utf-16-le": b"\xff\xfe", "utf-8": b"\xef\xbb\xbf"}[codec]
    data = bom + xml_text.encode(codec)
    assert detect_format(data) == "ge_muse_xml"
    record = read_ecg_bytes(data, "enc.xml")
    np.testing.assert_allclose(record.signal[LEADS.index("V6")], counts[7] * 4.88e-3, rtol=1e-6)
    assert record.meta["phi"]["name"] == "MÜLLER, JOSÉ"


def test_utf16_without_bom_and_mislabelled_utf8() -> None:
    doc = parse_xml('<?xml version="1.0" encoding="UTF-16"?><a><b>é</b></a>'.encode("utf-16-be"), "t")
    assert text(doc.root, "b") == "é" and doc.encoding == "utf-16-be"
    doc = parse_xml('<?xml version="1.0" encoding="UTF-8"?><a><b>Gr\xfc\xdfe</b></a>'.encode("cp1252"), "t")
    assert text(doc.root, "b") == "Grüße" and any("Windows-1252" in w for w in doc.warnings)


def test_namespace_agnostic_lookup() -> None:
    doc = parse_xml(b'<r xmlns="urn:x"><p:a xmlns:p="urn:y"><b>1</b></p:a></r>', "t")
    assert local_name(doc.root.tag) == "r" and text(child(doc.root, "a"), "b") == "1"


# ------------------------------------------------------------------------------------------------------ safety
_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE RestingECG [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<RestingECG><MuseInfo>&lol3;</MuseInfo></RestingECG>"""
_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE restingecgdata [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<restingecgdata><documentinfo>&xxe;</documentinfo></restingecgdata>"""
_EXTERNAL_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE AnnotatedECG [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<AnnotatedECG xmlns="urn:hl7-org:v3"/>"""
_DTD_SUBSET = b"""<?xml version="1.0"?>
<!DOCTYPE CardiologyXML [<!ELEMENT CardiologyXML ANY>]>
<CardiologyXML/>"""


@pytest.mark.parametrize("payload", [_BILLION_LAUGHS, _XXE, _EXTERNAL_PARAMETER, _DTD_SUBSET])
def test_unsafe_xml_is_refused(payload: bytes) -> None:
    with pytest.raises(UnsafeFileError):
        read_ecg_bytes(payload, "unsafe.xml")


def test_bare_external_doctype_is_accepted_and_not_fetched() -> None:
    doc = parse_xml(b'<!DOCTYPE RestingECG SYSTEM "http://127.0.0.1:9/restecg.dtd"><RestingECG/>', "t")
    assert local_name(doc.root.tag) == "RestingECG"


def test_truncated_xml_is_corrupt() -> None:
    data = _muse_xml(_counts(500, 8)).encode("latin-1")
    with pytest.raises(CorruptFileError, match="malformed XML"):
        read_ecg_bytes(data[: len(data) // 2], "truncated.xml")


# ----------------------------------------------------------------------------------------------------- Philips
def _philips_xml(payload: str, *, encoding: str = "Base64", duration_ms: int = 1000, extra_attrs: str = "") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<restingecgdata xmlns="http://www3.medical.philips.com">
  <documentinfo><documenttype>PhilipsECG</documenttype><documentversion>1.04.01</documentversion></documentinfo>
  <dataacquisition date="2020-02-03" time="04:05:06">
    <machine detaildescription="Philips:TC70">PageWriter TC70</machine>
    <signalcharacteristics><samplingrate>500</samplingrate><resolution>2.5</resolution>
      <acquisitiontype>STD-12</acquisitiontype><numberchannelsallocated>12</numberchannelsallocated>
    </signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata><patientid>P1</patientid><age><years>70</years></age><sex>Female</sex>
  </generalpatientdata></patient>
  <waveforms>
    <parsedwaveforms dataencoding="{encoding}" compression="Uncompressed" numberofleads="12"
      leadlabels="I II III aVR aVL aVF V1 V2 V3 V4 V5 V6" durationperchannel="{duration_ms}"
      samplespersecond="500" resolution="2.5"{extra_attrs}>{payload}</parsedwaveforms>
  </waveforms>
</restingecgdata>"""


def test_philips_uncompressed_base64_keeps_stored_limb_leads() -> None:
    counts = _counts(500, 12)
    payload = base64.b64encode(counts.astype("<i2").tobytes()).decode()
    record = read_ecg_bytes(_philips_xml(payload).encode(), "p.xml")
    # Uncompressed leads are the leads themselves: no XLI residual arithmetic on III/aVR/aVL/aVF.
    np.testing.assert_allclose(record.signal, counts * 2.5e-3, rtol=1e-6)
    assert record.meta["stored_leads"] == list(LEADS) and record.meta["derived_leads"] == []
    assert record.meta["sex"] == "F" and record.meta["age"] == 70.0 and record.meta["phi"]["patient_id"] == "P1"
    assert not any("newer" in w for w in record.warnings)  # 1.04.01 is a known version


def test_philips_plain_text_encoding() -> None:
    counts = _counts(500, 12)
    payload = "\n".join(" ".join(str(v) for v in lead) for lead in counts)
    record = philips.read(Path("p.xml"), _philips_xml(payload, encoding="Plain").encode())
    np.testing.assert_allclose(record.signal, counts * 2.5e-3, rtol=1e-6)


def test_philips_data_shorter_than_declared_is_corrupt() -> None:
    counts = _counts(400, 12)  # 400 per lead stored, 1000 ms x 500 Hz = 500 declared
    payload = base64.b64encode(counts.astype("<i2").tobytes()).decode()
    with pytest.raises(CorruptFileError, match="declared"):
        philips.read(Path("p.xml"), _philips_xml(payload).encode())


def test_philips_residual_reconstruction_uses_floor_division() -> None:
    leads = {name: np.array([1, -3, 4], dtype=np.int64) for name in ("III", "aVR", "aVL", "aVF")}
    leads["I"], leads["II"] = np.array([1, 2, -5]), np.array([-2, 7, 0])
    philips.reconstruct_limb_leads(leads)
    lead_i, lead_ii = np.array([1, 2, -5]), np.array([-2, 7, 0])
    iii = lead_ii - lead_i - np.array([1, -3, 4])
    np.testing.assert_array_equal(leads["III"], iii)
    np.testing.assert_array_equal(leads["aVR"], -np.array([1, -3, 4]) - np.floor((lead_i + lead_ii) / 2))
    np.testing.assert_array_equal(leads["aVL"], np.floor((lead_i - iii) / 2) - np.array([1, -3, 4]))
    np.testing.assert_array_equal(leads["aVF"], np.floor((lead_ii + iii) / 2) - np.array([1, -3, 4]))


def _pack_codes(codes: list[int], bits: int = 10) -> bytes:
    value, count = 0, 0
    for code in codes:
        value, count = (value << bits) | code, count + bits
    pad = (-count) % 8
    return (value << pad).to_bytes((count + pad) // 8, "big")


def test_xli_decompression_bomb_is_refused() -> None:
    # Each new code repeats the previous string plus one byte: ~960 bytes of codes expand to ~290 kB.
    chunk = _pack_codes([0, *range(256, 1023)])
    header = len(chunk).to_bytes(4, "little", signed=True) + b"\x00\x00" + (0).to_bytes(2, "little", signed=True)
    with pytest.raises(CorruptFileError, match="expands beyond"):
        philips.xli_decode(header + chunk, n_leads=1, n_samples=5, what="bomb")
    with pytest.raises(CorruptFileError, match="declares"):
        philips.xli_decode(header[:4] + b"\x00" * 4 + chunk[:10], n_leads=1, n_samples=5, what="short")


def test_xli_decoder_matches_sierraecg(conformance_dir: Path) -> None:
    from sierraecg.xli import xli_decode as reference_decode

    from cardiacnets.io._xml import descendant

    data = (conformance_dir / "philips_sierra_xml" / "129DYPRG.XML").read_bytes()
    parsed = descendant(parse_xml(data, "t").root, "parsedwaveforms")
    raw = base64.b64decode("".join(parsed.text.split()))
    ours = philips.xli_decode(raw, 12, 5500, "t")
    reference = reference_decode(raw, [str(i) for i in range(12)])
    for mine, theirs in zip(ours, reference[:12], strict=True):
        np.testing.assert_array_equal(mine, theirs.astype(np.int64))


# --------------------------------------------------------------------------------------------------------- aECG
def _aecg_sequence(code: str, digits: np.ndarray, scale: str, origin: str) -> str:
    return f"""<component><sequence><code code="{code}" codeSystem="2.16.840.1.113883.6.24"/>
      <value xsi:type="SLIST_PQ"><origin {origin}/><scale {scale}/><digits>{" ".join(map(str, digits))}</digits></value>
    </sequence></component>"""


def _aecg_xml(counts: np.ndarray, order: list[str], *, time_seq: bool = True, beat: np.ndarray | None = None) -> str:
    def sequence_set(data: np.ndarray, time_code: str) -> str:
        time = (
            f"""<component><sequence><code code="{time_code}"/>
            <value xsi:type="GLIST_PQ"><head value="0" unit="s"/><increment value="4" unit="ms"/></value>
            </sequence></component>"""
            if time_seq
            else ""
        )
        leads = "".join(
            _aecg_sequence(f"MDC_ECG_LEAD_{name.upper()}", data[i], 'value="0.01" unit="mV"', 'value="0.5" unit="mV"')
            for i, name in enumerate(order)
        )
        return f"<component><sequenceSet>{time}{leads}</sequenceSet></component>"

    derivation = (
        f"""<derivation><derivedSeries><code code="REPRESENTATIVE_BEAT"/>{sequence_set(beat, "TIME_RELATIVE")}
        </derivedSeries></derivation>"""
        if beat is not None
        else ""
    )
    return f"""<?xml version="1.0"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <effectiveTime><center value="20240102030405"/></effectiveTime>
  <component><series><code code="RHYTHM"/>{sequence_set(counts, "TIME_ABSOLUTE")}{derivation}</series></component>
</AnnotatedECG>"""


def test_aecg_mv_scale_nonzero_origin_any_order() -> None:
    order = ["V6", "aVF", "I", "V1", "II", "V2", "III", "V3", "aVR", "V4", "aVL", "V5"]
    counts, beat = _counts(750, 12), _counts(200, 12, seed=3)
    record = read_ecg_bytes(_aecg_xml(counts, order, beat=beat).encode(), "a.xml")
    assert record.fs == pytest.approx(250.0)
    for i, name in enumerate(order):
        np.testing.assert_allclose(record.signal[LEADS.index(name)], 0.5 + 0.01 * counts[i], rtol=1e-6)
    assert record.median_beat is not None and record.median_beat.shape == (12, 200)
    np.testing.assert_allclose(record.median_beat[LEADS.index("aVL")], 0.5 + 0.01 * beat[order.index("aVL")], 1e-6)
    assert record.meta["acquired"] == "2024-01-02T03:04:05"
    assert set(record.meta["stored_leads"]) == set(LEADS)


def test_aecg_without_time_sequence_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="sampling interval"):
        aecg.read(Path("a.xml"), _aecg_xml(_counts(100, 2), ["I", "II"], time_seq=False).encode())


# --------------------------------------------------------------------------------------------------- CardioSoft
def _cardiosoft_xml(counts: np.ndarray, fs: int, *, strip: bool, full: bool) -> str:
    lines = []
    for second in range(counts.shape[1] // fs):
        for lead in range(12):
            lines.append(",".join(map(str, counts[lead, second * fs : (second + 1) * fs])) + ",")
    strip_leads = "".join(
        f'<WaveformData lead="{name}">{",".join(map(str, counts[i]))}</WaveformData>' for i, name in enumerate(LEADS)
    )
    strip_block = (
        f"""<StripData><NumberOfLeads>12</NumberOfLeads><SampleRate units="Hz">{fs}</SampleRate>
        <ChannelSampleCountTotal>{counts.shape[1]}</ChannelSampleCountTotal><Resolution units="uVperLsb">5</Resolution>
        {strip_leads}
        </StripData>"""
        if strip
        else ""
    )
    full_block = (
        f"""<FullDisclosure><NumberOfChannels>12</NumberOfChannels><SampleRate units="Hz">{fs}</SampleRate>
        <Resolution units="uVperLsb">2.5</Resolution><LeadOrder>{",".join(LEADS)}</LeadOrder>
        <FullDisclosureData>\r\n{chr(10).join(lines)}\r\n<SampleCountTotal>{counts.size}</SampleCountTotal>
        </FullDisclosureData></FullDisclosure>"""
        if full
        else ""
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<CardiologyXML>
  <ObservationDateTime><Hour>9</Hour><Minute>8</Minute><Second>7</Second><Day>6</Day><Month>5</Month><Year>2016</Year>
  </ObservationDateTime>
  <ClinicalInfo><DeviceInfo><Desc>CardioSoft</Desc><SoftwareVer>V6.73</SoftwareVer></DeviceInfo></ClinicalInfo>
  <PatientInfo><PID>UKB1</PID><Age units="YEARS">61</Age><Gender>MALE</Gender></PatientInfo>
  <FilterSetting><Filter50Hz>Yes</Filter50Hz><Filter60Hz>No</Filter60Hz><LowPass units="Hz">100</LowPass>
  <HighPass units="Hz">0.01</HighPass></FilterSetting>
  <RestingECGMeasurements><VentricularRate units="BPM">64</VentricularRate></RestingECGMeasurements>
  {strip_block}{full_block}
</CardiologyXML>"""


def test_cardiosoft_full_disclosure_fallback() -> None:
    counts = _counts(3 * 50, 12)  # 3 s at 50 Hz
    record = read_ecg_bytes(_cardiosoft_xml(counts, 50, strip=False, full=True).encode("latin-1"), "c.xml")
    np.testing.assert_allclose(record.signal, counts * 2.5e-3, rtol=1e-6)
    assert record.fs == 50.0 and record.meta["rhythm_source"] == "FullDisclosure"
    assert any("FullDisclosure" in w for w in record.warnings)
    assert record.meta["age"] == 61.0 and record.meta["sex"] == "M" and record.meta["heart_rate"] == 64.0
    assert record.meta["filters"] == {"lowpass_hz": 100.0, "highpass_hz": 0.01, "notch_hz": 50.0}
    assert record.meta["acquired"] == "2016-05-06T09:08:07" and record.meta["phi"] == {"patient_id": "UKB1"}


def test_cardiosoft_strip_data_preferred() -> None:
    counts = _counts(100, 12)
    record = cardiosoft.read(Path("c.xml"), _cardiosoft_xml(counts, 50, strip=True, full=True).encode("latin-1"))
    np.testing.assert_allclose(record.signal, counts * 5e-3, rtol=1e-6)
    assert record.meta["rhythm_source"] == "StripData" and not record.warnings


def test_cardiosoft_without_waveforms_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="no StripData or FullDisclosure"):
        cardiosoft.read(Path("c.xml"), _cardiosoft_xml(_counts(50, 12), 50, strip=False, full=False).encode())


def test_xli_delta_decoding_by_cumulative_sums_equals_the_recurrence() -> None:
    """The vectorised XLI delta decoder equals the decoder's sample-by-sample recurrence, on random planes of any
    length (odd byte counts padded, 0 to 3 samples included)."""

    def recurrence(packed: bytes, first: int) -> list[int]:
        packed = packed + (b"\x00" if len(packed) % 2 else b"")
        n = len(packed) // 2
        deltas = [int.from_bytes(bytes((packed[i], packed[n + i])), "big", signed=True) for i in range(n)]
        out = list(deltas)
        if n < 3:
            return out
        x, y, last = deltas[0], deltas[1], first
        for i in range(2, n):
            z = 2 * y - x - last
            last = deltas[i] - 64
            out[i] = z
            x, y = y, z
        return out

    rng = np.random.default_rng(8)
    for length in [0, 1, 2, 3, 4, 5, 6, 7, 101, 11000]:
        packed = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        first = int(rng.integers(-32768, 32768))
        got = philips._xli_undelta(bytearray(packed), first)
        assert got.dtype == np.int64
        assert got.tolist() == recurrence(packed, first)


def _lzw_encode(data: bytes) -> list[int]:
    """A textbook LZW encoder with XLI's parameters (10-bit codes, a dictionary of 767 strings never reset)."""
    table = {bytes((b,)): b for b in range(256)}
    codes, current = [], b""
    for byte in data:
        candidate = current + bytes((byte,))
        if candidate in table:
            current = candidate
            continue
        codes.append(table[current])
        if len(table) < 1023:
            table[candidate] = len(table)
        current = bytes((byte,))
    if current:
        codes.append(table[current])
    return codes


@pytest.mark.parametrize("kind", ["runs", "noise", "ecg planes"])
def test_lzw_round_trip(kind: str) -> None:
    """Long runs exercise codes used in the step that defines them (KwKwK) and deep strings; noise fills the
    dictionary, after which codes only refer to it; decoding what an encoder wrote gives the bytes back."""
    rng = np.random.default_rng(5)
    if kind == "runs":
        values, counts = rng.integers(0, 4, 40), rng.integers(1, 900, 40)
        data = b"".join(bytes([int(v)]) * int(n) for v, n in zip(values, counts, strict=True))
    elif kind == "noise":
        data = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    else:
        data = np.concatenate([np.repeat(rng.integers(0, 3, 55), 100), rng.integers(0, 256, 5500)]).astype(np.uint8)
        data = data.tobytes()
    codes = _lzw_encode(data)
    assert max(codes) > 256
    defined_in_step = [c == 255 + i for i, c in enumerate(codes) if 1 <= i <= 767]  # the decoder's KwKwK case
    assert any(defined_in_step) == (kind != "noise")  # runs need it; random bytes never repeat that way
    assert philips._lzw_decode(_pack_codes([*codes, 1023]), len(data), "t") == data
    with pytest.raises(CorruptFileError, match="expands beyond"):
        philips._lzw_decode(_pack_codes([*codes, 1023]), len(data) - 1, "t")


def test_lzw_stream_starting_with_a_dictionary_code_is_refused() -> None:
    with pytest.raises(CorruptFileError, match="starts with an undefined LZW code 300"):
        philips._lzw_decode(_pack_codes([300, 65, 1023]), 100, "t")
