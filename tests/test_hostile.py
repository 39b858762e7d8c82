"""Hostile and broken input: every outcome of ``read_ecg`` is a valid :class:`EcgRecord` or a ``CardiacNetsError``.

Constructed attacks (XML entity expansion, external entities, huge declared sizes), deterministic damage to every
conformance file (truncation, bit flips), odd paths (empty, directory, wrong extension), and a hypothesis fuzz test
mutating the corpus: a fast tier in the default run and a long tier behind ``@pytest.mark.slow`` sized by
``CNS_FUZZ_EXAMPLES`` that writes its counts to ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import collections
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cardiacnets.io as cio
from cardiacnets.errors import CardiacNetsError, EcgReadError, FileTooLargeError, UnsafeFileError
from cardiacnets.io import read_ecg
from cardiacnets.record import EcgRecord
from tests.conftest import REPO, _conformance_dir

XML_ROOTS = ["RestingECG", "restingecgdata", "AnnotatedECG", "CardiologyXML"]


def _corpus() -> list[str]:
    expected = _conformance_dir() / "expected.json"
    if not expected.is_file():
        return []
    return sorted(json.loads(expected.read_text())["files"])


def _stage(relpath: str, workdir: Path) -> tuple[Path, list[Path]]:
    """Copy a corpus file (and, for WFDB, its record's companion files) into ``workdir``.

    Returns the path to read and the files a mutation may target (for WFDB: the header and the signal files)."""
    source = _conformance_dir() / relpath
    if source.suffix.lower() == ".hea":
        for sibling in source.parent.glob(source.stem + ".*"):
            shutil.copy(sibling, workdir / sibling.name)
        targets = [workdir / source.name] + [
            workdir / p.name for p in source.parent.glob(source.stem + ".*") if p.suffix.lower() in {".dat", ".xyz"}
        ]
        return workdir / source.name, targets
    staged = workdir / source.name
    shutil.copy(source, staged)
    return staged, [staged]


def _check_outcome(path: Path) -> str:
    """Read ``path``; return the outcome's name. Fails the test on any exception that is not a CardiacNetsError."""
    try:
        record = read_ecg(path)
    except CardiacNetsError as exc:
        assert str(exc), "a CardiacNetsError must say what is wrong"
        return type(exc).__name__
    assert isinstance(record, EcgRecord)
    assert record.signal.dtype == np.float32 and record.signal.ndim == 2 and record.signal.shape[0] == 12
    assert record.signal.shape[1] > 0 and np.all(np.isfinite(record.signal))
    assert np.isfinite(record.fs) and record.fs > 0
    return "EcgRecord"


# ------------------------------------------------------------------------------------------------ XML attacks


def _billion_laughs(root: str) -> str:
    entities = ['<!ENTITY lol0 "lollollollollollollollollollol">']
    entities += [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?>\n<!DOCTYPE {root} [\n{chr(10).join(entities)}\n]>\n<{root}>&lol9;</{root}>\n'


@pytest.mark.parametrize("root", XML_ROOTS)
def test_billion_laughs_refused_quickly(root: str, tmp_path: Path) -> None:
    path = tmp_path / "laughs.xml"
    path.write_text(_billion_laughs(root))
    start = time.perf_counter()
    with pytest.raises(CardiacNetsError) as info:
        read_ecg(path)
    assert time.perf_counter() - start < 5.0
    assert isinstance(info.value, (UnsafeFileError, EcgReadError))


@pytest.mark.parametrize("root", XML_ROOTS)
def test_external_entity_refused_and_not_resolved(root: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-4711")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file://{secret}">]>\n<{root}>&xxe;</{root}>\n'
    )
    with pytest.raises(CardiacNetsError) as info:
        read_ecg(path)
    assert "TOP-SECRET" not in str(info.value)


def test_external_dtd_reference_only_is_not_fetched(tmp_path: Path, conformance_dir: Path) -> None:
    # Real MUSE files carry <!DOCTYPE RestingECG SYSTEM "restecg.dtd">: reading must work without fetching it.
    record = read_ecg(conformance_dir / "ge_muse_xml/braveheart/example1.xml")
    assert record.n_samples == 5000


# ------------------------------------------------------------------------------------------ odd files and paths


def test_empty_file_directory_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    for path in (empty, tmp_path, tmp_path / "nope.dcm"):
        with pytest.raises(CardiacNetsError):
            read_ecg(path)


def test_file_over_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conformance_dir: Path) -> None:
    monkeypatch.setattr(cio, "MAX_FILE_BYTES", 1000)
    with pytest.raises(FileTooLargeError):
        read_ecg(conformance_dir / "ge_muse_xml/braveheart/example1.xml")


@pytest.mark.parametrize(
    ("relpath", "new_name"),
    [
        ("ge_muse_xml/braveheart/example1.xml", "muse.dcm"),
        ("dicom_ecg/Example.dcm", "dicom.xml"),
        ("scp_ecg/Example.scp", "scp.txt"),
        ("hl7_aecg/Example aECG.xml", "aecg.edf"),
        ("edf/0000050.ECG.edf", "edf.csv"),
    ],
)
def test_wrong_extension_is_read_by_content(relpath: str, new_name: str, tmp_path: Path, conformance_dir: Path) -> None:
    original = read_ecg(conformance_dir / relpath)
    renamed = tmp_path / new_name
    shutil.copy(conformance_dir / relpath, renamed)
    record = read_ecg(renamed)
    assert record.meta["format_id"] == original.meta["format_id"]
    np.testing.assert_array_equal(record.signal, original.signal)


def test_huge_declared_sizes(tmp_path: Path) -> None:
    # NPY header claiming 12 x 10^10 float64 samples with 1 KiB of data.
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 10000000000), }"
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    npy = tmp_path / "huge.npy"
    npy.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 1024)
    # WFDB header declaring 10^12 samples per signal with a tiny .dat.
    hea = tmp_path / "huge.hea"
    hea.write_text("huge 2 500 1000000000000\nhuge.dat 16 200 16 0 0 0 0 I\nhuge.dat 16 200 16 0 0 0 0 II\n")
    (tmp_path / "huge.dat").write_bytes(b"\0" * 400)
    # EDF header declaring 10^8 data records of 10^6 samples per signal.
    edf = tmp_path / "huge.edf"
    fields = [b"0".ljust(8), b"X".ljust(80), b"X".ljust(80), b"01.01.01", b"00.00.00", b"512".ljust(8)]
    fields += [b"".ljust(44), b"100000000".ljust(8), b"1".ljust(8), b"2".ljust(4)]
    per_signal = [
        [b"I".ljust(16), b"II".ljust(16)],
        [b"".ljust(80)] * 2,
        [b"mV".ljust(8)] * 2,
        [b"-10".ljust(8)] * 2,
        [b"10".ljust(8)] * 2,
        [b"-32768".ljust(8)] * 2,
        [b"32767".ljust(8)] * 2,
        [b"".ljust(80)] * 2,
        [b"1000000".ljust(8)] * 2,
        [b"".ljust(32)] * 2,
    ]
    edf.write_bytes(b"".join(fields) + b"".join(b"".join(group) for group in per_signal) + b"\0" * 2048)
    for path in (npy, hea, edf):
        start = time.perf_counter()
        with pytest.raises(CardiacNetsError):
            read_ecg(path)
        assert time.perf_counter() - start < 10.0, path


# ------------------------------------------------------------------------------ deterministic corpus damage

_DAMAGE = ["trunc_1", "trunc_third", "trunc_half", "trunc_minus1", "flip_a", "flip_b", "flip_c", "flip_header"]


def _damage(data: bytes, kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = len(data)
    if kind.startswith("trunc"):
        cut = {"trunc_1": 1, "trunc_third": n // 3, "trunc_half": n // 2, "trunc_minus1": n - 1}[kind]
        return data[:cut]
    buf = bytearray(data)
    region = min(n, 512) if kind == "flip_header" else n
    for pos in rng.integers(0, region, size=8 if kind != "flip_c" else 64):
        buf[int(pos)] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


@pytest.mark.parametrize("relpath", _corpus() or ["<corpus missing>"])
def test_damaged_corpus_files_give_record_or_typed_error(relpath: str, tmp_path: Path, conformance_dir: Path) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    for t_index, kind in enumerate(_DAMAGE):
        workdir = tmp_path / f"{kind}"
        workdir.mkdir()
        path, targets = _stage(relpath, workdir)
        target = targets[t_index % len(targets)]
        target.write_bytes(_damage(target.read_bytes(), kind, seed=t_index))
        outcomes[_check_outcome(path)] += 1
    assert sum(outcomes.values()) == len(_DAMAGE)
    assert outcomes["EcgRecord"] < len(_DAMAGE)  # truncation to one byte cannot yield a record


# -------------------------------------------------------------------------------------------------- fuzzing

_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("duplicate"), st.floats(0, 1, exclude_max=True), st.integers(1, 4096)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x3C, 0x26])),
)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        pos = int(where * len(buf)) if buf else 0
        if kind == "flip" and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << arg
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "duplicate" and buf:
            chunk = bytes(buf[pos : pos + arg])
            buf[pos:pos] = chunk
        elif kind == "set" and buf:
            buf[min(pos, len(buf) - 1)] = arg
    return bytes(buf)


class _FuzzStats:
    def __init__(self) -> None:
        self.tried = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.per_format: collections.Counter[str] = collections.Counter()

    def run_one(self, relpath: str, target_index: int, mutations: list[tuple]) -> None:
        with tempfile.TemporaryDirectory(prefix="cns-fuzz-") as tmp:
            path, targets = _stage(relpath, Path(tmp))
            target = targets[target_index % len(targets)]
            target.write_bytes(_mutate(target.read_bytes(), mutations))
            outcome = _check_outcome(path)
        self.tried += 1
        self.outcomes[outcome] += 1
        self.per_format[relpath.split("/")[0]] += 1


def _fuzz_test(stats: _FuzzStats, examples: int, derandomize: bool):
    corpus = _corpus()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        relpath=st.sampled_from(corpus),
        target_index=st.integers(0, 3),
        mutations=st.lists(_MUTATION, min_size=1, max_size=6),
    )
    def fuzz(relpath: str, target_index: int, mutations: list[tuple]) -> None:
        stats.run_one(relpath, target_index, mutations)

    return fuzz


def _report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Show the count on the terminal even under output capture."""
    with capsys.disabled():
        print(text)


def test_fuzz_corpus_fast(conformance_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = _FuzzStats()
    start = time.perf_counter()
    _fuzz_test(stats, examples=int(os.environ.get("CNS_FUZZ_FAST_EXAMPLES", "150")), derandomize=True)()
    elapsed = time.perf_counter() - start
    _report(capsys, f"\nfuzz (fast tier): {stats.tried} inputs in {elapsed:.1f} s, outcomes {dict(stats.outcomes)}")
    assert stats.tried >= 50


@pytest.mark.slow
def test_fuzz_corpus_long(conformance_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = int(os.environ.get("CNS_FUZZ_EXAMPLES", "20000"))
    stats = _FuzzStats()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        _fuzz_test(stats, examples=examples, derandomize=False)()
    except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised
        error = exc
    elapsed = time.perf_counter() - start
    result = {
        "test": "tests/test_hostile.py::test_fuzz_corpus_long",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "requested_examples": examples,
        "inputs_tried": stats.tried,
        "seconds": round(elapsed, 1),
        "outcomes": dict(stats.outcomes),
        "inputs_per_corpus_folder": dict(stats.per_format),
        "passed": error is None,
        "failure": None if error is None else f"{type(error).__name__}: {str(error)[:2000]}",
    }
    out = REPO / "benchmarks" / "results" / "fuzz.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _report(capsys, f"\nfuzz (long tier): {stats.tried} inputs in {elapsed:.0f} s, outcomes {dict(stats.outcomes)}")
    if error is not None:
        raise error
