"""SCP-ECG reader (EN 1064 / ISO 11073-91064, protocol versions 1.x, 2.0 and 3.0), written from the standard.

Layout: a record CRC (2 bytes, CRC-CCITT over the rest of the record) and the record length (4 bytes), then
sections. Every section starts with a 16-byte header: CRC (2), section id (2), section length (4, header included),
section version (1), protocol version (1), 6 reserved bytes. Section 0 holds 10-byte pointers (id, length, 1-based
byte index) to the other sections. All integers are little-endian.

Sections used here: 1 (header tags: patient, device, acquisition date/time, filters), 2 (Huffman tables; 19999 means
the standard's default table), 3 (lead definitions: count, flags, and per lead start/end sample and lead code), 4
(reference-beat bookkeeping), 5 (reference beat) and 6 (rhythm data). Sections 5 and 6 share one layout: amplitude
value multiplier (AVM, nV per count), sample interval (us), difference encoding (0 none, 1 first, 2 second
difference), a bimodal-compression flag, one byte count per lead, then each lead's bytes: plain int16 when there is
no Section 2, otherwise a Huffman bit stream (most significant bit first).

Files this reader accepts beyond the letter of the standard, each with a warning in ``meta["warnings"]``: CRC
mismatches (also listed in ``meta["integrity"]``, see :meth:`_Reader.integrity`), Huffman streams that decode a few
more samples than Section 3 declares (truncated to Section 3's range), rhythm data shorter than Section 3 declares
(read what is present, all leads cut to the common length; e.g. writers whose 16-bit per-lead byte counts saturate at
65534), and Section 3 sample ranges numbered from 0 where Section 6 confirms the length (:func:`_lead_lengths`; some
low-cost carts). Refused with :class:`UnsupportedFormatError`: bimodal compression and reference-beat subtraction with
a decimated rhythm (both need the full reconstruction filter).
"""

from __future__ import annotations

import binascii
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CorruptFileError, UnsupportedFormatError
from cardiacnets.io.scp_huffman import HuffmanCode, decode_leads
from cardiacnets.record import EcgRecord, assemble_record

logger = logging.getLogger(__name__)

#: SCP-ECG lead codes (Section 3, standard's table of lead identifiers) -> lead names. Codes 31-38 and 111-114 are
#: the "derived" variants of the standard leads (computed by the device), which are the same signals.
LEAD_CODES: dict[int, str] = {
    0: "unspecified",
    1: "I",
    2: "II",
    3: "V1",
    4: "V2",
    5: "V3",
    6: "V4",
    7: "V5",
    8: "V6",
    9: "V7",
    10: "V2R",
    11: "V3R",
    12: "V4R",
    13: "V5R",
    14: "V6R",
    15: "V7R",
    16: "X",
    17: "Y",
    18: "Z",
    19: "CC5",
    20: "CM5",
    21: "LA",
    22: "RA",
    23: "LL",
    24: "fI",
    25: "fE",
    26: "fC",
    27: "fA",
    28: "fM",
    29: "fF",
    30: "fH",
    31: "I",
    32: "II",
    33: "V1",
    34: "V2",
    35: "V3",
    36: "V4",
    37: "V5",
    38: "V6",
    61: "III",
    62: "aVR",
    63: "aVL",
    64: "aVF",
    65: "-aVR",
    66: "V8",
    67: "V9",
    68: "V8R",
    69: "V9R",
    70: "D (Nehb)",
    71: "A (Nehb)",
    72: "J (Nehb)",
    111: "III",
    112: "aVR",
    113: "aVL",
    114: "aVF",
}

_MANUFACTURERS = {
    1: "Burdick",
    2: "Cambridge",
    3: "Compumed",
    4: "Datamed",
    5: "Fukuda",
    6: "Hewlett-Packard",
    7: "Marquette",
    8: "Mortara",
    9: "Nihon Kohden",
    10: "Okin",
    11: "Quinton",
    12: "Siemens",
    13: "Spacelabs",
    14: "Telemed",
    15: "Hellige",
    16: "ESA-OTE",
    17: "Schiller",
    18: "Picker-Schwarzer",
    19: "Elettronica-Trentina",
    20: "Zwonitz",
}

#: Default Huffman table of the standard: (prefix bits, total bits, value); codes are the stream bits, first bit first.
#: Values 0 .. +-8 are coded directly; the last two prefixes are followed by the original value in 8 or 16 bits.
_DEFAULT_TABLE_SPEC = [
    ("0", 0, 0),
    ("100", 0, 1),
    ("101", 0, -1),
    ("1100", 0, 2),
    ("1101", 0, -2),
    ("11100", 0, 3),
    ("11101", 0, -3),
    ("111100", 0, 4),
    ("111101", 0, -4),
    ("1111100", 0, 5),
    ("1111101", 0, -5),
    ("11111100", 0, 6),
    ("11111101", 0, -6),
    ("111111100", 0, 7),
    ("111111101", 0, -7),
    ("1111111100", 0, 8),
    ("1111111101", 0, -8),
    ("1111111110", 8, 0),
    ("1111111111", 16, 0),
]

_DEFAULT_TABLE_ID = 19999
# Sections the screened signal depends on: pointers (0), age and sex (1), Huffman tables (2), lead definitions (3),
# rhythm data (6). A CRC failure elsewhere (reference beat, measurements, statements) leaves the signal as written.
_SIGNAL_SECTIONS = frozenset({0, 1, 2, 3, 6})
_MAX_LEADS = 64
# Samples one lead may hold: 24 h at 1 kHz. Bounds every allocation whatever the file declares.
_MAX_SAMPLES_PER_LEAD = 86_400_000


@dataclass
class _Section:
    sid: int
    offset: int  # 0-based start of the section header in the record
    length: int
    version: int
    protocol: int

    @property
    def body(self) -> int:
        return self.offset + 16

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass
class _Leads:
    codes: list[int]
    starts: list[int]
    ends: list[int]
    flags: int
    names: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where
        self.warnings: list[str] = []
        self.crc_failed: list[int] = []  # ids of the sections whose CRC does not match
        self.record_crc_failed = False

    def fail(self, section: str, message: str) -> CorruptFileError:
        return CorruptFileError(f"{self.where}: SCP-ECG {section}: {message}")

    def unpack(self, fmt: str, offset: int, section: str, end: int | None = None) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        limit = len(self.data) if end is None else min(end, len(self.data))
        if offset < 0 or offset + size > limit:
            raise self.fail(section, f"truncated (needs bytes {offset}..{offset + size}, only {limit} available)")
        return struct.unpack_from(fmt, self.data, offset)

    # -- record and sections ----------------------------------------------------------------------------------
    def sections(self) -> dict[int, _Section]:
        data = self.data
        if len(data) < 6 + 16:
            raise self.fail("record", f"{len(data)} bytes is too short for a record header and Section 0")
        crc, record_length = self.unpack("<HI", 0, "record header")
        if record_length > len(data):
            raise self.fail(
                "record", f"truncated: the header declares {record_length} bytes, the file holds {len(data)}"
            )
        if record_length < 6 + 16:
            raise self.fail("record", f"implausible record length {record_length}")
        if record_length < len(data):
            self.warnings.append(f"SCP-ECG: {len(data) - record_length} trailing bytes after the record ignored")
        self.data = data = data[:record_length]
        if binascii.crc_hqx(data[2:], 0xFFFF) != crc:
            self.warnings.append("SCP-ECG: record CRC mismatch (file may be damaged)")
            self.record_crc_failed = True
        s0 = self.section_header(6, 0, "Section 0")
        sections = {0: s0}
        n_pointers = (s0.length - 16) // 10
        for k in range(n_pointers):
            sid, length, index = self.unpack("<HII", s0.body + 10 * k, "Section 0", s0.end)
            if length == 0 or sid == 0:
                continue
            if index < 1 or index - 1 + length > len(data):
                raise self.fail(
                    f"Section {sid}",
                    f"pointer (index {index}, length {length}) lies outside the {len(data)}-byte record",
                )
            sections[sid] = self.section_header(index - 1, sid, f"Section {sid}", length)
        return sections

    def section_header(self, offset: int, sid: int, name: str, declared: int | None = None) -> _Section:
        crc, found_id, length, version, protocol = self.unpack("<HHIBB", offset, name)
        if found_id != sid:
            raise self.fail(name, f"header carries section id {found_id}, expected {sid}")
        if length < 16 or offset + length > len(self.data):
            raise self.fail(name, f"declared length {length} exceeds the record or is below the 16-byte header")
        if declared is not None and declared != length:
            self.warnings.append(f"SCP-ECG {name}: Section 0 says {declared} bytes, the section header {length}")
        if binascii.crc_hqx(self.data[offset + 2 : offset + length], 0xFFFF) != crc:
            self.warnings.append(f"SCP-ECG {name}: CRC mismatch (section may be damaged)")
            self.crc_failed.append(sid)
        return _Section(sid, offset, length, version, protocol)

    def integrity(self) -> list[dict[str, Any]]:
        """The CRC failures as ``meta["integrity"]`` entries: unresolved when a section the screened signal depends
        on fails (:data:`_SIGNAL_SECTIONS`); resolved when only other sections fail, or only the record CRC while
        every section passes its own."""
        failed = sorted(set(self.crc_failed))
        if not failed and not self.record_crc_failed:
            return []
        problem: dict[str, Any] = {"code": "crc_mismatch", "resolved": True}
        if not failed:
            problem["detail"] = "SCP-ECG record CRC mismatch"
            problem["resolution"] = "every section passes its own CRC, so the sections' data are as written"
            return [problem]
        problem["detail"] = f"SCP-ECG Section(s) {', '.join(map(str, failed))} fail their CRC"
        if set(failed) & _SIGNAL_SECTIONS:
            problem.update(resolved=False, resolution=None)
            problem["detail"] += ": the header, lead definitions or rhythm data are not what was written"
        else:
            problem["resolution"] = "the screened signal does not depend on them; Sections 0-3 and 6 pass their CRCs"
        return [problem]

    # -- Section 1 ----------------------------------------------------------------------------------------------
    def header_tags(self, s1: _Section) -> dict[int, bytes]:
        tags: dict[int, bytes] = {}
        pos = s1.body
        while pos + 3 <= s1.end:
            tag, length = self.unpack("<BH", pos, "Section 1", s1.end)
            if tag == 255:
                break
            if pos + 3 + length > s1.end:
                raise self.fail("Section 1", f"tag {tag} declares {length} bytes beyond the section end")
            tags.setdefault(tag, self.data[pos + 3 : pos + 3 + length])
            pos += 3 + length
        return tags

    # -- Section 2 ----------------------------------------------------------------------------------------------
    def huffman_tables(self, s2: _Section) -> list[dict[str, HuffmanCode]]:
        (n_tables,) = self.unpack("<H", s2.body, "Section 2", s2.end)
        if n_tables == _DEFAULT_TABLE_ID:
            return [_default_table()]
        if n_tables == 0 or n_tables > 256:
            raise self.fail("Section 2", f"implausible number of Huffman tables {n_tables}")
        tables = []
        pos = s2.body + 2
        for t in range(n_tables):
            (n_codes,) = self.unpack("<H", pos, "Section 2", s2.end)
            pos += 2
            if n_codes == 0 or pos + 9 * n_codes > s2.end:
                raise self.fail("Section 2", f"table {t + 1} declares {n_codes} code structures beyond the section")
            table: dict[str, HuffmanCode] = {}
            for _ in range(n_codes):
                prefix_bits, total_bits, mode, value, base_code = self.unpack("<BBBhI", pos, "Section 2", s2.end)
                pos += 9
                if not 1 <= prefix_bits <= 32 or total_bits < prefix_bits or total_bits - prefix_bits > 32:
                    raise self.fail("Section 2", f"table {t + 1}: bad code lengths {prefix_bits}/{total_bits} bits")
                # The base code is stored with its first transmitted bit in the least significant position.
                code = f"{base_code:032b}"[::-1][:prefix_bits]
                if mode == 0:
                    entry = HuffmanCode(0, 0, switch_to=value - 1)
                else:
                    entry = HuffmanCode(total_bits - prefix_bits, value)
                table[code] = entry
            tables.append(table)
        for table in tables:
            for entry in table.values():
                if entry.switch_to is not None and not 0 <= entry.switch_to < len(tables):
                    raise self.fail("Section 2", f"table switch to missing table {entry.switch_to + 1}")
        return tables

    # -- Section 3 ----------------------------------------------------------------------------------------------
    def lead_definitions(self, s3: _Section) -> _Leads:
        n_leads, flags = self.unpack("<BB", s3.body, "Section 3", s3.end)
        if n_leads == 0 or n_leads > _MAX_LEADS:
            raise self.fail("Section 3", f"implausible number of leads {n_leads}")
        codes, starts, ends = [], [], []
        for k in range(n_leads):
            start, end, code = self.unpack("<IIB", s3.body + 2 + 9 * k, "Section 3", s3.end)
            # The standard numbers samples from 1; a range from 0 is settled against Section 6 (_lead_lengths).
            if end < start or end - start + 1 > _MAX_SAMPLES_PER_LEAD:
                raise self.fail("Section 3", f"lead {k + 1}: implausible sample range {start}..{end}")
            codes.append(code)
            starts.append(start)
            ends.append(end)
        names = []
        for code in codes:
            name = LEAD_CODES.get(code, f"lead code {code}")
            names.append(name if name not in names else f"{name} (lead code {code})")
        return _Leads(codes, starts, ends, flags, names)

    # -- Sections 5 and 6 ---------------------------------------------------------------------------------------
    def encoded_leads(
        self, sec: _Section, name: str, n_leads: int, tables: list[dict[str, HuffmanCode]] | None, n_max: int
    ) -> tuple[float, float, list[np.ndarray]]:
        """Decode Section 5/6: returns AVM (nV), sample interval (us) and one int array of counts per lead."""
        avm, interval, diff, bimodal = self.unpack("<HHBB", sec.body, name, sec.end)
        if bimodal:
            raise UnsupportedFormatError(
                f"{self.where}: SCP-ECG {name} uses bimodal compression, which is not supported"
            )
        if diff not in (0, 1, 2):
            raise self.fail(name, f"unknown difference-encoding code {diff}")
        if avm == 0 or interval == 0:
            raise self.fail(name, f"zero amplitude multiplier ({avm} nV) or sample interval ({interval} us)")
        counts = self.unpack(f"<{n_leads}H", sec.body + 6, name, sec.end)
        pos = sec.body + 6 + 2 * n_leads
        if pos + sum(counts) > sec.end:
            raise self.fail(name, f"lead byte counts ({sum(counts)} bytes) exceed the section ({sec.end - pos} bytes)")
        chunks = []
        for count in counts:
            chunks.append(self.data[pos : pos + count])
            pos += count
        if tables is None:
            decoded: list[np.ndarray | int] = [
                np.frombuffer(chunk[: len(chunk) // 2 * 2], dtype="<i2").astype(np.int64)[:n_max] for chunk in chunks
            ]
        else:
            decoded = decode_leads(chunks, tables, n_max)
        leads = []
        for k, values in enumerate(decoded):
            if isinstance(values, int):
                raise self.fail(name, f"lead {k + 1}: invalid Huffman code at bit {values}")
            samples = _undifference(values, diff)
            if samples is None:
                raise self.fail(name, f"lead {k + 1}: second differences add up beyond any ECG amplitude")
            leads.append(samples)
        return float(avm), float(interval), leads


def _default_table() -> dict[str, HuffmanCode]:
    return {bits: HuffmanCode(extra, value) for bits, extra, value in _DEFAULT_TABLE_SPEC}


def _undifference(values: np.ndarray, diff: int) -> np.ndarray | None:
    """Undo SCP difference encoding: 1 -> x[n] = x[n-1] + d[n]; 2 -> x[n] = d[n] + 2 x[n-1] - x[n-2]. None when the
    second-difference samples would leave int64 (a corrupt stream)."""
    if diff == 0 or len(values) == 0:
        return values
    if diff == 1:
        return np.cumsum(values)
    # x[n] - 2 x[n-1] + x[n-2] = d[n] for n >= 2, with x[0] = d[0] and x[1] = d[1]: the double integrator
    # 1 / (1 - z^-1)^2 on the excitation [d0, d1 - 2 d0, d2, d3, ...], i.e. two cumulative sums, exact in int64.
    excitation = values.astype(np.int64)
    if len(values) > 1:
        excitation[1] -= 2 * excitation[0]
    slope = np.cumsum(excitation)  # |excitation| < 2**33 (32-bit codes) and n_max < 2**27 samples: cannot wrap
    if float(np.abs(slope.astype(np.float64)).sum()) >= 2.0**62:  # the second sum could wrap: no real ECG gets near
        return None
    return np.cumsum(slope)


def _text(raw: bytes) -> str | None:
    text = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    return text or None


def _header_meta(tags: dict[int, bytes]) -> dict[str, Any]:
    meta: dict[str, Any] = {"phi": {}, "filters": {}}
    phi = meta["phi"]
    names = [_text(tags[t]) for t in (0, 1) if t in tags]
    if any(names):
        phi["name"] = "^".join(n or "" for n in names)
    if 2 in tags and _text(tags[2]):
        phi["patient_id"] = _text(tags[2])
    if 5 in tags and len(tags[5]) >= 4:
        year, month, day = struct.unpack_from("<HBB", tags[5])
        if year and 1 <= month <= 12 and 1 <= day <= 31:
            phi["birth_date"] = f"{year:04d}-{month:02d}-{day:02d}"
    if 4 in tags and len(tags[4]) >= 3:
        value, unit = struct.unpack_from("<HB", tags[4])
        per_year = {1: 1.0, 2: 12.0, 3: 52.18, 4: 365.25, 5: 8766.0}.get(unit)
        if value and per_year:
            meta["age"] = round(value / per_year, 2) if unit != 1 else int(value)
    if 8 in tags and tags[8]:
        meta["sex"] = {1: "M", 2: "F"}.get(tags[8][0])
    if 14 in tags and len(tags[14]) >= 36:
        dev = tags[14]
        model = _text(dev[8:14])
        strings = [_text(s.encode("latin-1")) for s in dev[36:].decode("latin-1").split("\x00")]
        manufacturer = strings[4] if len(strings) > 4 and strings[4] else _MANUFACTURERS.get(dev[7])
        meta["device"] = " ".join(x for x in (manufacturer, model) if x) or None
        meta["manufacturer"] = manufacturer
        meta["model"] = model
        if dev[18] in (1, 2):
            meta["mains_hz"] = {1: 50, 2: 60}[dev[18]]
    if 25 in tags and len(tags[25]) >= 4:
        year, month, day = struct.unpack_from("<HBB", tags[25])
        if year and 1 <= month <= 12 and 1 <= day <= 31:
            stamp = f"{year:04d}-{month:02d}-{day:02d}"
            if 26 in tags and len(tags[26]) >= 3:
                hour, minute, second = tags[26][:3]
                if hour < 24 and minute < 60 and second < 61:
                    stamp += f"T{hour:02d}:{minute:02d}:{second:02d}"
            meta["acquired"] = stamp
    if 27 in tags and len(tags[27]) >= 2:
        (highpass,) = struct.unpack_from("<H", tags[27])
        if highpass:
            meta["filters"]["highpass_hz"] = highpass / 100.0
    if 28 in tags and len(tags[28]) >= 2:
        (lowpass,) = struct.unpack_from("<H", tags[28])
        if lowpass:
            meta["filters"]["lowpass_hz"] = float(lowpass)
    if 29 in tags and tags[29]:
        bitmap = tags[29][0]
        notch = [hz for bit, hz in ((0, 60), (1, 50)) if bitmap & (1 << bit)]
        if notch:
            meta["filters"]["notch_hz"] = notch
    return meta


def _lead_lengths(leads: _Leads, rhythm: list[np.ndarray], huffman: bool, reader: _Reader) -> list[int]:
    """Samples per lead from Section 3's ranges ``start..end``, both ends included and numbered from 1 as the
    standard says (``1..N``). Some carts number from 0: ``0..N`` (only the start moved) or ``0..N-1``. Such a range is
    read as N samples when Section 6 holds exactly that many (raw data: N or N + 1 would tell the two apart; Huffman
    data may decode a few samples of bit padding beyond N, so ``0..N`` is taken, at worst one sample short), with a
    warning; a range from 0 that Section 6 does not confirm is refused."""
    lengths, notes = [], []
    for k, (start, end, values) in enumerate(zip(leads.starts, leads.ends, rhythm, strict=True)):
        held = len(values)
        if start >= 1:
            lengths.append(end - start + 1)
        elif held == end + 1 and not huffman:
            lengths.append(end + 1)
        elif end > 0 and (held == end or (huffman and held > end)):
            lengths.append(end)
        else:
            raise reader.fail(
                "Section 3",
                f"lead {k + 1}: implausible sample range {start}..{end} (numbered from 0, and Section 6 holds"
                f" {held if held <= end + 1 else f'more than {end + 1}'} samples, which fits neither 0-based reading)",
            )
        if start == 0:
            notes.append(f"0..{end} -> {lengths[-1]}")
    if notes:
        reader.warnings.append(
            "SCP-ECG Section 3 numbers samples from 0 (the standard counts from 1); read as 0-based where Section 6"
            f" holds that many samples: {'; '.join(sorted(set(notes)))}"
        )
    return lengths


def _reference_beat(
    reader: _Reader,
    sections: dict[int, _Section],
    leads: _Leads,
    tables: list[dict[str, HuffmanCode]] | None,
    interval: float,
) -> tuple[dict[str, np.ndarray] | None, float | None]:
    """Section 5's reference beat in mV by lead name and its rate in Hz (Section 4 gives its length), or
    ``(None, None)``; a damaged one is a warning, not an error."""
    if 5 not in sections:
        return None, None
    try:
        m_avm, m_interval, beats = reader.encoded_leads(
            sections[5], "Section 5", len(leads.codes), tables, int(10 * 1e6 / interval) + 1
        )
        n_beat = min(len(b) for b in beats)
        if 4 in sections:
            (length_ms,) = reader.unpack("<H", sections[4].body, "Section 4", sections[4].end)
            n_from_s4 = int(round(length_ms * 1000.0 / m_interval))
            if 0 < n_from_s4 <= n_beat:
                n_beat = n_from_s4
        if n_beat > 0:
            scale = m_avm / 1e6
            return {name: b[:n_beat] * scale for name, b in zip(leads.names, beats, strict=True)}, 1e6 / m_interval
    except CorruptFileError as exc:
        reader.warnings.append(f"reference beat not read: {exc}")
    return None, None


def read(path: Path, data: bytes) -> EcgRecord:
    """Read an SCP-ECG file into an :class:`EcgRecord` (``signal`` ``(12, n)`` in mV; counts x AVM nV / 1e6).

    The rhythm (Section 6) is the signal; the reference beat (Section 5), when present, becomes ``median_beat``.
    """
    reader = _Reader(data, str(path))
    sections = reader.sections()
    s0 = sections[0]
    version = {10: "1.0", 11: "1.1", 12: "1.2", 13: "1.3", 20: "2.0", 29: "3.0", 30: "3.0"}.get(s0.protocol)
    if version is None:
        reader.warnings.append(f"SCP-ECG: unknown protocol version byte {s0.protocol}; read as 2.0")
    for needed in (3, 6):
        if needed not in sections:
            raise reader.fail(f"Section {needed}", "missing (no lead definitions or no rhythm data)")
    leads = reader.lead_definitions(sections[3])
    tables = reader.huffman_tables(sections[2]) if 2 in sections else None
    declared = [end - start + 1 for start, end in zip(leads.starts, leads.ends, strict=True)]
    n_declared = max(declared)
    if tables is None and n_declared * 2 * len(declared) > 4 * len(data) + 1_000_000:
        reader.warnings.append(
            f"SCP-ECG: Section 3 declares {n_declared} samples per lead, far more than the file holds"
        )

    if leads.flags & 0x01:
        raise UnsupportedFormatError(
            f"{path}: SCP-ECG rhythm data is stored with reference-beat subtraction, which is not supported"
        )
    if not leads.flags & 0x04:
        reader.warnings.append("SCP-ECG: Section 3 says the leads were not all recorded simultaneously")

    # A range numbered from 0 is settled by Section 6's own count: decode one sample more than either reading needs.
    n_decode = n_declared + (1 if 0 in leads.starts else 0)
    avm, interval, rhythm = reader.encoded_leads(sections[6], "Section 6", len(leads.codes), tables, n_decode)
    fs = 1e6 / interval
    declared = _lead_lengths(leads, rhythm, tables is not None, reader)
    n_declared = max(declared)
    channels: dict[str, np.ndarray] = {}
    present = min(len(values) for values in rhythm)
    for name, values, n_lead in zip(leads.names, rhythm, declared, strict=True):
        channels[name] = values[:n_lead]
    common = min(len(v) for v in channels.values())
    if present < n_declared:
        reader.warnings.append(
            f"SCP-ECG Section 6 holds only {present} samples per lead where Section 3 declares {n_declared}"
            f" (per-lead byte counts {'saturated' if tables is None else 'short'}); read the {common} present samples"
        )
    if common == 0:
        raise reader.fail("Section 6", "holds no samples")
    scale = avm / 1e6  # nV per count -> mV
    channels = {name: values[:common] * scale for name, values in channels.items()}

    meta = _header_meta(reader.header_tags(sections[1])) if 1 in sections else {"phi": {}}
    meta["scp_version"] = version
    meta["resolution_uV"] = avm / 1000.0
    median_channels, median_fs = _reference_beat(reader, sections, leads, tables, interval)
    meta["warnings"] = reader.warnings
    meta["integrity"] = reader.integrity()
    return assemble_record(
        channels,
        fs,
        source_format="SCP-ECG",
        path=str(path),
        meta=meta,
        median_channels=median_channels,
        median_fs=median_fs,
    )
