"""ECG file writers: a ``(leads, n)`` signal in mV to WFDB, CSV, EDF or HL7 aECG, the format chosen from the output's
extension (:data:`OUTPUT_FORMATS`, one registry line per format); :func:`cardiacnets.io.read_ecg` reads each back.

Each format quantises; the step (mV) comes back in :class:`WrittenEcg`, and reading a file back gives the signal
within half a step:

======  ===========  =========================================================================================
format  extension    storage and quantisation step
======  ===========  =========================================================================================
wfdb    ``.hea``     header + ``.dat`` (``wfdb.wrsamp``): format 16 at 1000 adu/mV (1 uV); format 32 beyond 32.767 mV
csv     ``.csv``     ``# fs=``, ``# units=mV`` lines, header ``time_s,I,II,...``; 4 decimals (0.1 uV)
edf     ``.edf``     EDF (``edfio``), 16-bit, physical dimension mV; 1 uV while every lead stays within 32.767 mV,
                     else ``2R / 65535`` mV for the smallest whole ``R`` mV holding the largest sample; the samples
                     must split into data records whose duration the header states exactly (else an error, e.g.
                     2500 samples at 240 Hz: resample, or choose another format)
aecg    ``.xml``     HL7 aECG ``AnnotatedECG``: one RHYTHM series, SLIST_PQ digits at scale 1 uV (1 uV)
======  ===========  =========================================================================================

Only what :class:`EcgFileMeta` holds is written besides the samples: the rate, the lead names, the acquisition time, the
device and a description. It has no field for a patient identifier, so none can be written. Writes are atomic (each
file to a temporary name, fsync, rename; a WFDB header last) and never replace an existing file unless ``force``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import math
import re
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from cardiacnets.errors import InputError, OutputError
from cardiacnets.files import atomic_write_bytes
from cardiacnets.record import LEADS

__all__ = ["OUTPUT_FORMATS", "EcgFileMeta", "OutputFormat", "WrittenEcg", "encode_ecg", "output_format", "write_ecg"]


@dataclass(frozen=True)
class EcgFileMeta:
    """What is written besides the samples. ``acquired``: ISO 8601 (``2000-01-01T09:00:00`` or a date alone)."""

    acquired: str | None = None
    device: str | None = None
    description: str = ""


@dataclass(frozen=True)
class WrittenEcg:
    """The files written (the main file first) and the quantisation step in mV."""

    format: str
    paths: tuple[Path, ...]
    step_mv: float

    @property
    def max_error_mv(self) -> float:
        """The largest difference between a sample written and the sample read back (rounding), mV."""
        return self.step_mv / 2.0


#: encode(stem, signal (leads, n) mV, fs Hz, lead names, meta) -> ({suffix: file bytes}, step in mV)
Encoder = Callable[[str, np.ndarray, float, Sequence[str], EcgFileMeta], tuple[dict[str, bytes], float]]


@dataclass(frozen=True)
class OutputFormat:
    name: str
    extension: str
    encode: Encoder
    suffixes: tuple[str, ...]  # every file one record takes, the main file (``extension``) last: written last


def _acquired(meta: EcgFileMeta) -> tuple[_dt.date | None, _dt.time | None]:
    """The acquisition date and time of day (None where unknown or unparseable)."""
    text = (meta.acquired or "").strip()
    try:
        stamp = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None, None
    return stamp.date(), (stamp.time().replace(microsecond=0, tzinfo=None) if "T" in text or " " in text else None)


def _number(value: float) -> str:
    """A rate or duration as text that reads back to the same float (``500``, ``257.5``, ``333.3333333333333``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _free_text(text: str | None) -> str:
    """One line without ``=`` (a CSV comment's ``key=value`` is read as a setting) and without ``--`` (XML comments)."""
    return " ".join(str(text or "").replace("=", ":").replace("--", "-").split())


# ------------------------------------------------------------------------------------------------------- WFDB


def _check_wfdb_name(stem: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", stem):
        raise InputError(f"WFDB record names hold only letters, digits, '-' and '_': {stem!r}; choose another name")


def _encode_wfdb(
    stem: str, signal: np.ndarray, fs: float, leads: Sequence[str], meta: EcgFileMeta
) -> tuple[dict[str, bytes], float]:
    import wfdb

    _check_wfdb_name(stem)
    # Format 16 keeps -32768 for "no sample"; beyond +-32.767 mV the samples take 32 bits, still at 1 uV.
    fmt = "16" if np.max(np.abs(np.round(signal * 1000.0))) <= 32767 else "32"
    date, time = _acquired(meta)
    comments = [_free_text(meta.description)] + ([f"device: {_free_text(meta.device)}"] if meta.device else [])
    comments = [line for line in comments if line]
    if date is not None and time is None:
        comments.append(f"acquired: {date.isoformat()}")  # a WFDB base date needs a base time; none is made up
    with tempfile.TemporaryDirectory(prefix="cns-wfdb-") as tmp:
        wfdb.wrsamp(
            stem,
            fs=fs,
            units=["mV"] * len(leads),
            sig_name=list(leads),
            p_signal=signal.T,
            fmt=[fmt] * len(leads),
            adc_gain=[1000.0] * len(leads),
            baseline=[0] * len(leads),
            comments=comments or None,
            base_time=time,
            base_date=date if time is not None else None,
            write_dir=tmp,
        )
        files = {suffix: (Path(tmp) / f"{stem}{suffix}").read_bytes() for suffix in (".dat", ".hea")}
    return files, 1e-3


# -------------------------------------------------------------------------------------------------------- CSV


def _encode_csv(
    stem: str, signal: np.ndarray, fs: float, leads: Sequence[str], meta: EcgFileMeta
) -> tuple[dict[str, bytes], float]:
    # The layout cardiacnets.io.array reads: "# fs=" and "# units=" settings, then a header row with a time column.
    lines = [f"# {_free_text(meta.description) or 'ECG'}", f"# fs={_number(fs)}", "# units=mV"]
    lines += [f"# {key}: {_free_text(value)}" for key, value in (("acquired", meta.acquired), ("device", meta.device))
              if value]  # fmt: skip
    buffer = io.StringIO()
    buffer.write("\n".join(lines) + "\n" + ",".join(["time_s", *leads]) + "\n")
    time_decimals = max(6, math.ceil(math.log10(fs)) + 3)  # the time column stays uniform to 0.1 % of a sample
    table = np.column_stack([np.arange(signal.shape[1]) / fs, signal.T])  # (n, 1 + leads)
    np.savetxt(buffer, table, fmt=[f"%.{time_decimals}f"] + ["%.4f"] * len(leads), delimiter=",")
    return {".csv": buffer.getvalue().encode("utf-8")}, 1e-4


# -------------------------------------------------------------------------------------------------------- EDF

_EDF_MAX_RECORD_BYTES = 61440  # the EDF specification's advice for one data record


def _edf_record_duration(n: int, fs: float, n_signals: int) -> float:
    """A data record duration (s) whose samples divide ``n`` and that the 8-character header field states exactly
    (the reader's rate, samples per record / duration, is ``fs`` again); the longest within the advised size."""
    for per_record in range(min(n, _EDF_MAX_RECORD_BYTES // (2 * n_signals)), 0, -1):
        duration = per_record / fs
        text = _number(duration)
        if n % per_record == 0 and len(text) <= 8 and per_record / float(text) == fs:
            return float(text)
    raise InputError(
        f"EDF stores whole data records, and {n} samples at {fs:g} Hz split into none whose duration its header can"
        " state exactly; resample (e.g. to 500 Hz) or choose another format"
    )


def _encode_edf(
    stem: str, signal: np.ndarray, fs: float, leads: Sequence[str], meta: EcgFileMeta
) -> tuple[dict[str, bytes], float]:
    import edfio

    duration = _edf_record_duration(signal.shape[1], fs, len(leads))
    peak = float(np.max(np.abs(signal)))
    if peak <= 32.767:  # digital -32768..32767 <-> -32.768..32.767 mV: 1 uV per step, digital 0 at 0 mV
        physical, step = (-32.768, 32.767), 1e-3
    else:
        limit = float(math.ceil(peak))
        physical, step = (-limit, limit), 2.0 * limit / 65535.0
    prefilter = _free_text(meta.description).encode("ascii", "replace").decode()[:80]
    signals = [
        edfio.EdfSignal(signal[k], fs, label=f"ECG {lead}"[:16], physical_dimension="mV", physical_range=physical,
                        prefiltering=prefilter)
        for k, lead in enumerate(leads)
    ]  # fmt: skip
    date, time = _acquired(meta)
    edf = edfio.Edf(
        signals,
        patient=edfio.Patient(),  # "X X X X": anonymous
        recording=edfio.Recording(startdate=date),
        starttime=time,
        data_record_duration=duration,
    )
    buffer = io.BytesIO()
    edf.write(buffer)
    return {".edf": buffer.getvalue()}, step


# --------------------------------------------------------------------------------------------------- HL7 aECG


def _encode_aecg(
    stem: str, signal: np.ndarray, fs: float, leads: Sequence[str], meta: EcgFileMeta
) -> tuple[dict[str, bytes], float]:
    digits = np.round(signal * 1000.0).astype(np.int64)  # scale 1 uV
    date, time = _acquired(meta)
    identity = uuid.UUID(bytes=hashlib.sha256(digits.tobytes() + repr(fs).encode()).digest()[:16])  # reproducible
    act = 'codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode"'
    if date is not None and time is not None:
        start = _dt.datetime.combine(date, time)
        end = start + _dt.timedelta(seconds=signal.shape[1] / fs)
        times = f'<low value="{start:%Y%m%d%H%M%S}" inclusive="true"/><high value="{end:%Y%m%d%H%M%S}"/>'
        head = f'<code code="TIME_ABSOLUTE" {act}/><value xsi:type="GLIST_TS"><head value="{start:%Y%m%d%H%M%S}"/>'
    else:  # no acquisition time: a time axis relative to the first sample
        times = '<low nullFlavor="UNK"/>'
        head = f'<code code="TIME_RELATIVE" {act}/><value xsi:type="GLIST_PQ"><head value="0" unit="s"/>'
    axis = f'{head}<increment value="{_number(1.0 / fs)}" unit="s"/></value>'
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- {_free_text(meta.description) or 'ECG'} -->",
        '<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        f'  <id root="2.25.{identity.int}"/>',
        '  <code code="93000" codeSystem="2.16.840.1.113883.6.12" codeSystemName="CPT-4"/>',
        f"  <effectiveTime>{times}</effectiveTime>",
        f'  <component><series><code code="RHYTHM" {act}/>',
        f"    <effectiveTime>{times}</effectiveTime>",
    ]
    if meta.device:
        parts.append(
            "    <author><seriesAuthor><manufacturedSeriesDevice><manufacturerModelName>"
            f"{escape(_free_text(meta.device))}</manufacturerModelName></manufacturedSeriesDevice></seriesAuthor></author>"
        )
    parts += [
        "    <component><sequenceSet>",
        f"      <component><sequence>{axis}</sequence></component>",
    ]
    mdc = 'codeSystem="2.16.840.1.113883.6.24" codeSystemName="MDC"'
    scale = '<origin value="0" unit="uV"/><scale value="1" unit="uV"/>'
    for k, lead in enumerate(leads):
        code = quoteattr(f"MDC_ECG_LEAD_{lead.upper()}")
        values = " ".join(map(str, digits[k].tolist()))
        parts.append(
            f'      <component><sequence><code code={code} {mdc}/><value xsi:type="SLIST_PQ">{scale}'
            f"<digits>{values}</digits></value></sequence></component>"
        )
    parts += ["    </sequenceSet></component>", "  </series></component>", "</AnnotatedECG>", ""]
    return {".xml": "\n".join(parts).encode("utf-8")}, 1e-3


# ----------------------------------------------------------------------------------------------- registry, API

OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "wfdb": OutputFormat("wfdb", ".hea", _encode_wfdb, (".dat", ".hea")),
    "csv": OutputFormat("csv", ".csv", _encode_csv, (".csv",)),
    "edf": OutputFormat("edf", ".edf", _encode_edf, (".edf",)),
    "aecg": OutputFormat("aecg", ".xml", _encode_aecg, (".xml",)),
}


def output_format(path: str | Path | None = None, name: str | None = None) -> OutputFormat:
    """The format named ``name``, else the one ``path``'s extension stands for; :class:`InputError` lists the known
    ones, and a name that contradicts the extension, or a file name the format cannot take, is an error too."""
    known = ", ".join(f"{f.extension} ({f.name})" for f in OUTPUT_FORMATS.values())
    by_name = None
    if name is not None:
        by_name = OUTPUT_FORMATS.get(name.lower())
        if by_name is None:
            raise InputError(f"unknown output format {name!r}; choose {', '.join(OUTPUT_FORMATS)}")
    if path is None:
        if by_name is None:
            raise InputError("no output format given")
        return by_name
    suffix = Path(path).suffix.lower()
    by_ext = next((f for f in OUTPUT_FORMATS.values() if suffix == f.extension), None)
    if by_ext is None:
        raise InputError(f"{Path(path).name}: unknown output extension {suffix or '(none)'!r}; use {known}")
    if by_name is not None and by_name is not by_ext:
        raise InputError(f"{Path(path).name}: the extension {suffix} is {by_ext.name}, not {by_name.name}")
    if by_ext.name == "wfdb":
        _check_wfdb_name(Path(path).name[: -len(suffix)])
    return by_ext


def _checked_signal(signal: np.ndarray, fs: float, leads: Sequence[str]) -> tuple[np.ndarray, float]:
    sig = np.asarray(signal, dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] != len(leads) or sig.shape[1] < 1:
        raise InputError(f"signal must be ({len(leads)}, n) mV with n >= 1 for leads {list(leads)}, got {sig.shape}")
    if not np.all(np.isfinite(sig)):
        raise InputError("signal contains NaN or infinite values")
    if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
        raise InputError(f"sampling rate must be a positive number of Hz, got {fs!r}")
    return sig, float(fs)


def encode_ecg(fmt: OutputFormat, stem: str, signal: np.ndarray, fs: float, *, leads: Sequence[str] = LEADS,
               meta: EcgFileMeta | None = None) -> tuple[dict[str, bytes], float]:  # fmt: skip
    """The bytes of each file of one record (``{suffix: bytes}``) and the quantisation step in mV; ``stem``: the
    record's file name without extension (WFDB headers name their signal file)."""
    sig, fs = _checked_signal(signal, fs, leads)
    return fmt.encode(stem, sig, fs, tuple(leads), meta or EcgFileMeta())


def write_ecg(
    path: str | Path,
    signal: np.ndarray,
    fs: float,
    *,
    leads: Sequence[str] = LEADS,
    meta: EcgFileMeta | None = None,
    fmt: str | None = None,
    force: bool = False,
) -> WrittenEcg:
    """Write ``signal`` ``(leads, n)`` mV at ``fs`` Hz to ``path`` in the format of its extension (or ``fmt``, which
    must agree with it). An existing file is an :class:`OutputError` unless ``force``; so is a missing folder."""
    path = Path(path)
    chosen = output_format(path, fmt)
    stem = path.name[: -len(path.suffix)]
    targets = [path.with_name(stem + suffix) for suffix in chosen.suffixes]
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist; create it first")
    existing = [t.name for t in targets if t.exists()]
    if existing and not force:
        raise OutputError(f"{path.parent / existing[0]} exists; choose another output or add --force to replace it")
    files, step = encode_ecg(chosen, stem, signal, fs, leads=leads, meta=meta)
    try:
        for target in targets:  # the main file last: a reader never finds a header without its samples
            atomic_write_bytes(target, files[target.suffix])
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return WrittenEcg(format=chosen.name, paths=(targets[-1], *targets[:-1]), step_mv=step)
