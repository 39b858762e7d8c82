"""Real-file quirks (issue 18, item 5), each on a constructed file or record: SCP-ECG sample ranges numbered from 0,
the Philips calibration pulse on an offset baseline, copied leads, mains noise reported once per lead, and the file
integrity problems (CRC failures, contradicting sampling rates) that make a record unreliable unless resolved."""

from __future__ import annotations

import binascii
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.errors import CorruptFileError
from cardiacnets.inspect import inspect_file
from cardiacnets.io import read_ecg
from cardiacnets.qc import QcResult, run_qc
from cardiacnets.record import LEADS, derive_limb_leads
from tests.synthetic_ecg import synthetic_ecg

FS = 500.0
_PHILIPS_UTF8 = "philips_sierra_xml/sierraecg-js_fixture/3191723_ZZDEMOPTONLY_1-04_orig.xml"


def _clean(fs: float = FS, duration: float = 10.0, seed: int = 0) -> np.ndarray:
    return synthetic_ecg(fs, duration, 72.0, np.random.default_rng(seed), noise_mV=0.01, wander_mV=0.1)


def _found(result: QcResult, code: str) -> list:
    return [f for f in result.findings if f.code == code]


# ------------------------------------------------------------------------------------- SCP-ECG ranges numbered from 0
def _with_section3_ranges(data: bytes, ranges: Callable[[int, int], tuple[int, int]]) -> bytes:
    """``data`` (an SCP-ECG record) with every Section 3 range ``start..end`` replaced by ``ranges(start, end)``, and
    the Section 3 and record CRCs made right again (the file is otherwise untouched)."""
    out = bytearray(data)
    (s0_length,) = struct.unpack_from("<I", out, 6 + 4)
    pointers = [struct.unpack_from("<HII", out, 6 + 16 + 10 * k) for k in range((s0_length - 16) // 10)]
    offset = next(index - 1 for sid, _, index in pointers if sid == 3)
    (length,) = struct.unpack_from("<I", out, offset + 4)
    for lead in range(out[offset + 16]):
        at = offset + 18 + 9 * lead
        struct.pack_into("<II", out, at, *ranges(*struct.unpack_from("<II", out, at)))
    struct.pack_into("<H", out, offset, binascii.crc_hqx(bytes(out[offset + 2 : offset + length]), 0xFFFF))
    struct.pack_into("<H", out, 0, binascii.crc_hqx(bytes(out[2:]), 0xFFFF))
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "ranges"),
    [("0..N", lambda start, end: (0, 32767)), ("0..N-1", lambda start, end: (0, 32766))],
)
def test_scp_ranges_from_zero_read_the_same_samples(
    name: str, ranges: Callable[[int, int], tuple[int, int]], conformance_dir: Path, tmp_path: Path
) -> None:
    """0000050.ECG.scp holds 32767 raw samples per lead (Section 3 says 1..37855; the byte counts saturated). Rewritten
    to the 0-based ranges of low-cost carts, it reads the same samples, with a warning."""
    original = read_ecg(conformance_dir / "scp_ecg/0000050.ECG.scp")
    assert original.n_samples == 32767
    path = tmp_path / "zero_based.scp"
    path.write_bytes(_with_section3_ranges((conformance_dir / "scp_ecg/0000050.ECG.scp").read_bytes(), ranges))
    record = read_ecg(path)
    np.testing.assert_array_equal(record.signal, original.signal)
    assert record.fs == original.fs
    assert any("numbers samples from 0" in w for w in record.warnings), record.warnings
    assert record.meta["integrity"] == []  # the CRCs were made right: nothing else is wrong with the file


def test_scp_huffman_range_from_zero_reads_the_same_samples(conformance_dir: Path, tmp_path: Path) -> None:
    """Example.scp (default Huffman table, second differences, 5000 samples, 1..5000) rewritten as 0..5000."""
    source = conformance_dir / "scp_ecg/Example.scp"
    original = read_ecg(source)
    path = tmp_path / "zero_based_huffman.scp"
    path.write_bytes(_with_section3_ranges(source.read_bytes(), lambda start, end: (0, end)))
    record = read_ecg(path)
    assert record.n_samples == original.n_samples == 5000
    np.testing.assert_array_equal(record.signal, original.signal)
    assert any("numbers samples from 0" in w for w in record.warnings)


@pytest.mark.parametrize("end", [30000, 40000])
def test_scp_range_from_zero_that_section6_contradicts_is_refused(
    end: int, conformance_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad_range.scp"
    path.write_bytes(
        _with_section3_ranges((conformance_dir / "scp_ecg/0000050.ECG.scp").read_bytes(), lambda s, e: (0, end))
    )
    with pytest.raises(CorruptFileError, match="implausible sample range 0"):
        read_ecg(path)


def _section_body(data: bytes, sid: int) -> tuple[int, int]:
    """``(start, stop)`` byte offsets of SCP-ECG section ``sid``'s data (after its 16-byte header)."""
    (s0_length,) = struct.unpack_from("<I", data, 6 + 4)
    for k in range((s0_length - 16) // 10):
        found, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * k)
        if found == sid and length:
            return index - 1 + 16, index - 1 + length
    raise AssertionError(f"no Section {sid}")


@pytest.mark.parametrize(("sid", "reliable"), [(6, False), (3, False), (7, True)])
def test_scp_crc_failure_fails_the_record_when_the_signal_depends_on_the_section(
    sid: int, reliable: bool, conformance_dir: Path, tmp_path: Path
) -> None:
    """A flipped bit in the rhythm data (6) or lead definitions (3) makes the record unreliable; in the measurements
    (7) it is resolved: the screened signal does not come from there."""
    data = bytearray((conformance_dir / "scp_ecg/Example.scp").read_bytes())
    start, stop = _section_body(bytes(data), sid)
    data[stop - 1] ^= 0x01  # the last byte: padding or a value, never a length that would stop the reader
    path = tmp_path / "damaged.scp"
    path.write_bytes(bytes(data))
    record = read_ecg(path)
    [problem] = record.meta["integrity"]
    assert problem["code"] == "crc_mismatch" and problem["resolved"] is reliable
    assert f"Section(s) {sid} " in problem["detail"]
    result = run_qc(record.signal, record.fs, record.meta)
    assert result.reliable is reliable
    assert [f.severity for f in _found(result, "crc_mismatch")] == ["warn" if reliable else "fail"]


# --------------------------------------------------------------------------------------------- calibration pulse
def _philips_like(offsets_mV: dict[str, float]) -> np.ndarray:
    """An 11-s 500-Hz record ending as Philips records do: 100 ms at 0 mV, 200 ms at 1 mV, 100 ms at 0 mV in every
    lead, whatever the lead's baseline (given per lead in ``offsets_mV``)."""
    x = _clean(duration=10.6)
    for lead, offset in offsets_mV.items():
        x[LEADS.index(lead)] += offset
    pulse = np.concatenate((np.zeros(50), np.ones(100), np.zeros(50)))
    return np.concatenate((x, np.tile(pulse, (12, 1))), axis=-1)  # (12, 5500)


def test_calibration_pulse_on_offset_baseline_is_one_finding_not_clipping() -> None:
    # V2 and V3 sit 1.5 mV up (their minimum is the pulse's 0-mV shoulders), V5 1.8 mV down (its maximum is the top).
    x = _philips_like({"V2": 1.5, "V3": 1.5, "V5": -1.8})
    result = run_qc(x, FS)
    assert result.reliable, [f.message for f in result.findings]
    assert [(f.code, f.severity, f.lead) for f in result.findings] == [("calibration_pulse", "warn", None)]
    assert "all 12 leads" in result.findings[0].message and "at the end" in result.findings[0].message
    [where] = result.metrics["calibration_pulse"]
    assert where["edge"] == "end" and where["leads"] == list(LEADS)
    assert where["start_s"] == pytest.approx(10.6, abs=0.01) and where["stop_s"] == pytest.approx(11.0)
    assert result.metrics["duration_s"] == 11.0  # the record keeps its length; only the checks skip the pulse


def test_offset_pulse_would_read_as_clipping_without_the_pulse_finder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The property the finder exists for: the same record, with pulse finding disabled, fails as clipping (on the
    pulse's 0-mV shoulders in the offset leads, on its top in the others)."""
    from cardiacnets import qc_signal

    monkeypatch.setattr(qc_signal, "find_calibration_pulses", lambda *args, **kwargs: [])
    result = run_qc(_philips_like({"V2": 1.5, "V3": 1.5}), FS)
    assert not result.reliable
    assert {"V2", "V3"} <= {f.lead for f in _found(result, "clipping")}


def test_real_clipping_next_to_a_calibration_pulse_still_fails() -> None:
    x = _philips_like({})
    row = LEADS.index("V4")
    t = np.arange(x.shape[1]) / FS
    x[row, :5300] = np.clip(x[row, :5300] + 1.5 * np.sin(2 * np.pi * 0.2 * t[:5300]), -3.0, 1.8)  # an ADC rail
    result = run_qc(x, FS)
    assert [f.lead for f in _found(result, "clipping")] == ["V4"] and not result.reliable
    assert len(_found(result, "calibration_pulse")) == 1


def test_corpus_philips_files_get_one_pulse_finding(conformance_dir: Path) -> None:
    for path in sorted((conformance_dir / "philips_sierra_xml").rglob("*")):
        if not path.is_file():
            continue
        record = read_ecg(path)
        result = run_qc(record.signal, record.fs, record.meta)
        pulses = _found(result, "calibration_pulse")
        assert len(pulses) == 1, (path.name, [f.message for f in result.findings])
        assert not _found(result, "clipping"), path.name
        assert result.metrics["calibration_pulse"][0]["leads"] == list(LEADS)


def test_a_plateau_in_the_middle_of_the_record_is_not_a_pulse() -> None:
    x = _clean()
    x[:, 2400:2500] = 1.0  # 1 mV, 200 ms, every lead: but 4.8 s in, not at an edge
    result = run_qc(x, FS)
    assert not _found(result, "calibration_pulse")


# ----------------------------------------------------------------------------------------------- duplicated leads
def test_identical_chest_leads_fail_and_are_named() -> None:
    x = _clean()
    x[LEADS.index("V1") : LEADS.index("V6") + 1] = x[LEADS.index("V3")]  # a monitor export: one chest lead, six times
    result = run_qc(x, FS)
    [finding] = _found(result, "duplicate_leads")
    assert finding.severity == "fail" and not result.reliable
    assert result.metrics["duplicate_leads"] == [["V1", "V2", "V3", "V4", "V5", "V6"]]
    assert "identical samples" in finding.message


def test_one_nearly_identical_pair_warns() -> None:
    x = _clean()
    v4, v5 = LEADS.index("V4"), LEADS.index("V5")
    x[v5] = x[v4] + 0.002 * np.random.default_rng(1).standard_normal(x.shape[1])
    result = run_qc(x, FS)
    [finding] = _found(result, "duplicate_leads")
    assert finding.severity == "warn" and result.reliable
    assert result.metrics["duplicate_leads"] == [["V4", "V5"]] and "nearly identical" in finding.message


def test_a_limb_lead_copied_into_the_chest_leads_is_caught() -> None:
    x = _clean()
    x[LEADS.index("V1") : LEADS.index("V3") + 1] = x[LEADS.index("II")]
    result = run_qc(x, FS)
    assert result.metrics["duplicate_leads"] == [["II", "V1", "V2", "V3"]] and not result.reliable


def test_derived_limb_leads_alike_by_construction_are_not_flagged() -> None:
    """With lead I near isoelectric (a vertical heart axis), II, III and aVF are nearly the same signal by
    Einthoven's law."""
    x = _clean()
    lead_i = 0.006 * np.random.default_rng(2).standard_normal(x.shape[1])  # live: about 0.04 mV peak to peak
    lead_ii = x[LEADS.index("II")]
    for name, values in {"I": lead_i, **derive_limb_leads(lead_i, lead_ii)}.items():
        x[LEADS.index(name)] = values
    ii, iii = x[LEADS.index("II")], x[LEADS.index("III")]
    assert np.corrcoef(ii, iii)[0, 1] > 0.999 and abs(ii.std() / iii.std() - 1) < 0.02  # alike, as a copy would be
    result = run_qc(x, FS, meta={"derived_leads": ["III", "aVR", "aVL", "aVF"]})
    assert not _found(result, "duplicate_leads"), [f.message for f in result.findings]


def test_zeroed_leads_are_flat_not_duplicates() -> None:
    x = _clean()
    x[LEADS.index("V1")] = 0.0
    x[LEADS.index("V2")] = 0.0
    result = run_qc(x, FS)
    assert {f.lead for f in _found(result, "flat_lead")} == {"V1", "V2"}
    assert not _found(result, "duplicate_leads")


# -------------------------------------------------------------------------------------------------- mains noise
@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_is_reported_once_per_lead_at_the_detected_frequency(mains_hz: float) -> None:
    fs = 1000.0
    x = _clean(fs=fs)
    t = np.arange(x.shape[1]) / fs
    x += 0.05 * np.sin(2 * np.pi * mains_hz * t)  # every lead; visible (warn), under the fail limit
    x[LEADS.index("V2")] += 0.3 * np.sin(2 * np.pi * mains_hz * t)  # one lead badly (fail)
    result = run_qc(x, fs)
    [finding] = _found(result, "mains_noise")
    assert finding.severity == "fail" and finding.lead is None
    flagged = result.metrics["mains_noise"]
    assert set(flagged) == set(LEADS) and {v["hz"] for v in flagged.values()} == {mains_hz}
    other = 110.0 - mains_hz
    assert f"{mains_hz:g} Hz" in finding.message and f"{other:g} Hz" not in finding.message
    for lead in LEADS:  # each lead named exactly once
        assert len(re.findall(rf"(?<![\w]){re.escape(lead)} \(", finding.message)) == 1, lead


def test_mains_in_one_lead_names_that_lead() -> None:
    x = _clean()
    t = np.arange(x.shape[1]) / FS
    x[LEADS.index("V5")] += 0.05 * np.sin(2 * np.pi * 50.0 * t)
    [finding] = _found(run_qc(x, FS), "mains_noise")
    assert (finding.lead, finding.severity) == ("V5", "warn")


# ------------------------------------------------------------------------------------------ integrity: MUSE CRC
def _damage_rhythm_lead(text: str, lead: str) -> str:
    """Change one base64 character of ``lead``'s WaveFormData in the Rhythm waveform (its CRC32 stays as written)."""
    rhythm = text.index("<WaveformType>Rhythm</WaveformType>")
    start = text.index(f"<LeadID>{lead}</LeadID>", rhythm)
    data = text.index("<WaveFormData>", start) + len("<WaveFormData>") + 40
    replacement = "B" if text[data] != "B" else "C"
    return text[:data] + replacement + text[data + 1 :]


def test_muse_crc_failure_makes_the_record_unreliable(conformance_dir: Path, tmp_path: Path) -> None:
    source = conformance_dir / "ge_muse_xml/braveheart/example1.xml"
    assert read_ecg(source).meta["integrity"] == []
    path = tmp_path / "damaged.xml"
    path.write_text(_damage_rhythm_lead(source.read_text("latin-1"), "V3"), "latin-1")
    record = read_ecg(path)
    [problem] = record.meta["integrity"]
    assert problem["code"] == "crc_mismatch" and not problem["resolved"] and "V3" in problem["detail"]
    result = run_qc(record.signal, record.fs, record.meta)
    assert not result.reliable and [f.severity for f in _found(result, "crc_mismatch")] == ["fail"]
    # The same verdict through the command-line path (cnscreen inspect).
    assert inspect_file(path)["qc"]["reliable"] is False


def test_muse_median_beat_crc_failure_is_resolved(conformance_dir: Path, tmp_path: Path) -> None:
    text = (conformance_dir / "ge_muse_xml/braveheart/example1.xml").read_text("latin-1")
    median = text.index("<WaveformType>Median</WaveformType>")
    crc = text.index("<LeadDataCRC32>", median) + len("<LeadDataCRC32>")
    text = text[:crc] + ("1" if text[crc] != "1" else "2") + text[crc + 1 :]
    path = tmp_path / "median_crc.xml"
    path.write_text(text, "latin-1")
    record = read_ecg(path)
    [problem] = record.meta["integrity"]
    assert problem["resolved"] and "median" in problem["resolution"]
    result = run_qc(record.signal, record.fs, record.meta)
    assert result.reliable and [f.severity for f in _found(result, "crc_mismatch")] == ["warn"]


# ------------------------------------------------------------------------------- integrity: contradicting rates
def test_muse_rate_contradiction_is_unresolved(conformance_dir: Path) -> None:
    """SampleBase 240 Hz but 2500 samples (10.42 s; 250 Hz would give 10 s): MUSE states no duration to decide."""
    record = read_ecg(conformance_dir / "ge_muse_xml/muse_ecg_deidentified_1.xml")
    [problem] = record.meta["integrity"]
    assert problem["code"] == "sampling_rate_conflict" and not problem["resolved"]
    result = run_qc(record.signal, record.fs, record.meta)
    [finding] = _found(result, "sampling_rate_conflict")
    assert finding.severity == "fail" and not result.reliable
    assert "240" in finding.message and "250" in finding.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<samplingrate>500</samplingrate>", b"<samplingrate>250</samplingrate>"),
        (b'samplespersecond="500"', b'samplespersecond="250"'),  # the field read by default is the wrong one
    ],
)
def test_philips_rate_contradiction_resolved_by_the_stated_duration(
    old: bytes, new: bytes, conformance_dir: Path, tmp_path: Path
) -> None:
    source = conformance_dir / _PHILIPS_UTF8
    original = read_ecg(source)
    data = source.read_bytes()
    assert data.count(old) == 1
    path = tmp_path / "two_rates.xml"
    path.write_bytes(data.replace(old, new))
    record = read_ecg(path)
    assert record.fs == 500.0  # 5500 samples over durationperchannel 11000 ms
    np.testing.assert_array_equal(record.signal, original.signal)
    [problem] = record.meta["integrity"]
    assert problem["resolved"] and "11000 ms" in problem["resolution"]
    result = run_qc(record.signal, record.fs, record.meta)
    [finding] = _found(result, "sampling_rate_conflict")
    assert finding.severity == "warn" and result.reliable
    assert "resolved: 5500 samples per lead over durationperchannel 11000 ms is 500 Hz" in finding.message


def test_philips_rate_contradiction_the_duration_cannot_settle_fails(conformance_dir: Path, tmp_path: Path) -> None:
    data = (conformance_dir / _PHILIPS_UTF8).read_bytes()
    data = data.replace(b'samplespersecond="500"', b'samplespersecond="250"')
    data = data.replace(b'durationperchannel="11000"', b'durationperchannel="10000"')  # 5500 samples: 550 Hz
    path = tmp_path / "two_rates.xml"
    path.write_bytes(data)
    record = read_ecg(path)
    [problem] = record.meta["integrity"]
    assert not problem["resolved"]
    result = run_qc(record.signal, record.fs, record.meta)
    assert not result.reliable and [f.severity for f in _found(result, "sampling_rate_conflict")] == ["fail"]


def test_integrity_problems_from_any_reader_reach_qc() -> None:
    """run_qc takes the reader's ``meta["integrity"]`` as it is: unresolved fails, resolved warns with the note."""
    x = _clean()
    resolved = {"code": "sampling_rate_conflict", "detail": "d", "resolved": True, "resolution": "the count agrees"}
    unresolved = {"code": "crc_mismatch", "detail": "lead V1", "resolved": False, "resolution": None}
    assert run_qc(x, FS, meta={"integrity": [resolved]}).reliable
    assert "resolved: the count agrees" in run_qc(x, FS, meta={"integrity": [resolved]}).findings[0].message
    assert not run_qc(x, FS, meta={"integrity": [resolved, unresolved]}).reliable
    assert run_qc(x, FS, meta={"integrity": []}).findings == []
