"""Format detection from file content."""

from __future__ import annotations

import re
from pathlib import Path

from cardiacnets.errors import UnsupportedFormatError

#: format id -> module in :mod:`cardiacnets.io` implementing ``read(path, data)``.
FORMATS: dict[str, str] = {
    "ge_muse_xml": "muse",
    "philips_sierra_xml": "philips",
    "hl7_aecg": "aecg",
    "ge_cardiosoft_xml": "cardiosoft",
    "dicom": "dicom",
    "scp_ecg": "scp",
    "wfdb": "wfdb_reader",
    "edf": "edf",
    "npy": "array",
    "npz": "array",
    "csv": "array",
}

_XML_ROOTS = {
    "restingecg": "ge_muse_xml",
    "restingecgdata": "philips_sierra_xml",
    "annotatedecg": "hl7_aecg",
    "cardiologyxml": "ge_cardiosoft_xml",
}


def _decode_head(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
        return head[3:].decode("utf-8", errors="ignore")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="ignore")
    if len(head) > 3 and head[0] == 0 and head[1] != 0:
        return head[: len(head) // 2 * 2].decode("utf-16-be", errors="ignore")
    if len(head) > 3 and head[0] != 0 and head[1] == 0:
        return head[: len(head) // 2 * 2].decode("utf-16-le", errors="ignore")
    return head.decode("latin-1")


def _xml_root_name(text: str) -> str | None:
    # Skip declaration, comments, processing instructions and DOCTYPE; return the first element's local name.
    pos = 0
    text = text.lstrip("\ufeff \t\r\n")
    while True:
        match = re.compile(r"\s*<([!?]?)").match(text, pos)
        if not match:
            return None
        if match.group(1) == "?":
            end = text.find("?>", match.end())
        elif match.group(1) == "!":
            end = text.find("-->", match.end()) if text.startswith("--", match.end()) else text.find(">", match.end())
            bracket = text.find("[", match.end())
            if text.startswith("DOCTYPE", match.end()) and 0 <= bracket < end:  # internal subset: skip to "]>"
                end = text.find("]", bracket)
        else:
            name = re.compile(r"([\w.:-]+)").match(text, match.end())
            return name.group(1).split(":")[-1].lower() if name else None
        if end < 0 or text.find(">", end) < 0:
            return None
        pos = text.find(">", end) + 1  # past the whole terminator ("?>", "-->", "]>", ">")


def _looks_like_scp(data: bytes) -> bool:
    # SCP-ECG: CRC(2) + record length(4), then Section 0 header: CRC(2), id(2)=0, length(4), version, protocol, and
    # six reserved bytes that most writers fill with "SCPECG" (the standard does not require it). Without the marker,
    # detect by structure: a Section 0 whose length is 16 + 10 x pointers and whose first pointer (to Section 0
    # itself: id 0, same length, byte index 7) agrees, inside a plausible record length.
    if len(data) < 22 or int.from_bytes(data[8:10], "little") != 0:
        return False
    if data[16:22] == b"SCPECG":
        return True
    if len(data) < 32:
        return False
    record_length = int.from_bytes(data[2:6], "little")
    s0_length = int.from_bytes(data[10:14], "little")
    plausible = 16 + 10 * 3 <= s0_length <= 16 + 10 * 1000 and (s0_length - 16) % 10 == 0
    self_pointer = (
        int.from_bytes(data[22:24], "little") == 0
        and int.from_bytes(data[24:28], "little") == s0_length
        and int.from_bytes(data[28:32], "little") == 7
    )
    return plausible and self_pointer and 6 + s0_length <= record_length <= 16 * len(data)


def _single_column(text: str) -> bool:
    """A one-column CSV: a header word (a lead name such as ``I`` or ``Lead II``; the reader refuses others with the
    fix), then one number a line."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")][:3]
    return (
        len(lines) == 3
        and re.match(r"^\"?[A-Za-z][\w ()-]{0,40}\"?$", lines[0]) is not None
        and all(re.match(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$", line) for line in lines[1:])
    )


def detect_format(data: bytes, path: Path | None = None) -> str:
    """Return the format id of an ECG file's content (a key of :data:`FORMATS`)."""
    head = data[:4096]
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if _looks_like_scp(data):
        return "scp_ecg"
    if head[:8] == b"0       " and len(head) >= 256 and head[184:192].strip().isdigit():
        return "edf"
    # A WFDB signal file is raw binary: recognise it by its header sidecar before any text sniffing.
    if path is not None and path.suffix.lower() in {".dat", ".mat", ".xyz"} and path.with_suffix(".hea").is_file():
        return "wfdb"
    text = _decode_head(head)
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("<"):
        root = _xml_root_name(stripped)
        if root in _XML_ROOTS:
            return _XML_ROOTS[root]
        raise UnsupportedFormatError(f"{path or 'input'}: XML with root element <{root}> is not a supported ECG format")
    first = next((line for line in stripped.splitlines() if line.strip() and not line.startswith("#")), "")
    if re.match(r"^[\w.-]+(/\d+)?\s+\d+(\s+[\d.]+(/[\d.]+)?(\(\-?\d+\))?)?(\s+\d+)?", first) and not re.match(
        r"^[-\d.eE+]+\s*[,;\t]", first
    ):
        return "wfdb"
    if re.match(r"^\s*[A-Za-z\"#]?[\w\s\"',;.\t-]*$", first) and ("," in first or ";" in first or "\t" in first):
        return "csv"
    if _single_column(stripped):
        return "csv"
    raise UnsupportedFormatError(
        f"{path or 'input'}: content matches no supported ECG format (MUSE/Philips/aECG/CardioSoft XML, DICOM, SCP-ECG,"
        " WFDB, EDF, CSV/NPY/NPZ)"
    )
