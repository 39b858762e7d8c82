"""`cnscreen batch`: one row per input (errors as rows), exactly once across kills, all output formats."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from cardiacnets.edge.batch import RowStore, enumerate_inputs, output_columns, run_batch
from tests.edge_fixtures import make_tiny_bundle
from tests.test_edge_screen import write_wfdb_ecg

CONFORMANCE_SAMPLES = ["ge_muse_xml/braveheart/example1.xml", "hl7_aecg/Example aECG.xml", "dicom_ecg/Example.dcm"]
CNSCREEN = [sys.executable, "-c", "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def build_archive(root: Path, conformance_dir: Path | None, n_good: int = 10) -> tuple[set[str], set[str]]:
    """Synthetic WFDB records, a few real vendor files, and broken files. Returns (good keys, broken keys)."""
    good, broken = set(), set()
    for i in range(n_good):
        good.add(str(write_wfdb_ecg(root / "synthetic", f"rec{i:02d}", patient=f"PATIENT^{i}", mrn=f"MRN{i:06d}")))
    if conformance_dir is not None:
        for rel in CONFORMANCE_SAMPLES:
            target = root / "vendor" / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(conformance_dir / rel, target)
            good.add(str(target))
    bad = root / "broken"
    bad.mkdir()
    (bad / "empty.xml").write_bytes(b"")
    (bad / "garbage.dcm").write_bytes(os.urandom(2048))
    (bad / "truncated.xml").write_bytes(b"<?xml version='1.0'?><RestingECG><Waveform><WaveformType>Rhythm")
    (bad / "orphan.hea").write_text("orphan 12 500 5000\n")  # no .dat beside it
    broken = {str(p) for p in bad.iterdir()}
    return good, broken


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_companion_files_are_not_inputs(tmp_path: Path) -> None:
    write_wfdb_ecg(tmp_path, "a")
    (tmp_path / "notes.txt").write_text("x")
    keys = {Path(i.key).name for i in enumerate_inputs(tmp_path)}
    assert keys == {"a.hea", "notes.txt"}


def test_one_row_per_input_with_errors_as_rows(tiny_bundle: Path, tmp_path: Path, conformance_dir: Path) -> None:
    good, broken = build_archive(tmp_path / "archive", conformance_dir)
    out = tmp_path / "out.jsonl"
    summary = run_batch(tmp_path / "archive", out, bundle=tiny_bundle, workers=2, batch_size=4, progress=False)
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(good | broken)
    by_path = {r["path"]: r for r in rows}
    assert all(by_path[k]["status"] == "error" and by_path[k]["reason"] for k in broken)
    assert all(by_path[k]["status"] in {"ok", "qc_failed"} and by_path[k]["p_CAD"] is not None for k in good)
    assert summary.error == len(broken) and summary.ok + summary.qc_failed == len(good)
    assert "PATIENT^" not in out.read_text() and "MRN0" not in out.read_text()


def test_zip_and_list_sources_give_the_same_results(tiny_bundle: Path, tmp_path: Path) -> None:
    good, _ = build_archive(tmp_path / "archive", None, n_good=4)
    archive = tmp_path / "ecgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in (tmp_path / "archive").rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(tmp_path / "archive").as_posix())
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(sorted(good)) + "\n")
    run_batch(archive, tmp_path / "zip.jsonl", bundle=tiny_bundle, workers=1, progress=False)
    run_batch(listing, tmp_path / "list.jsonl", bundle=tiny_bundle, workers=1, progress=False)
    zip_rows = {Path(r["path"].split("!")[-1]).name: r for r in read_rows(tmp_path / "zip.jsonl")}
    list_rows = {Path(r["path"]).name: r for r in read_rows(tmp_path / "list.jsonl")}
    for name, row in list_rows.items():
        assert zip_rows[name]["p_HF"] == pytest.approx(row["p_HF"], abs=1e-6)


def test_csv_and_parquet_outputs_and_phi_opt_in(tiny_bundle: Path, tmp_path: Path, conformance_dir: Path) -> None:
    import pyarrow.parquet as pq

    build_archive(tmp_path / "archive", conformance_dir, n_good=3)  # the DICOM and aECG samples name "Clark"
    run_batch(
        tmp_path / "archive", tmp_path / "out.parquet", bundle=tiny_bundle, workers=1, progress=False, include_phi=True
    )
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert not (tmp_path / "out.parquet.journal.jsonl").exists()
    assert {r["patient_name"] for r in table if r["path"].endswith("Example.dcm")} == {"Clark"}
    run_batch(tmp_path / "archive", tmp_path / "out.csv", bundle=tiny_bundle, workers=1, progress=False)
    text = (tmp_path / "out.csv").read_text()
    assert text.splitlines()[0].split(",") == output_columns(False)
    assert "Clark" not in text and "SBJ-123" not in text


def test_torn_last_row_is_cut_and_redone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    columns = output_columns(False)
    out.write_text(json.dumps({"path": "a", "status": "ok"}) + "\n" + '{"path": "b", "sta')
    store = RowStore(out, columns, {"bundle_digest": "d", "preprocess_version": "p"})
    assert store.done == {"a"}
    store.write([{"path": "b", "status": "error", "reason": "x"}])
    store.close(True)
    assert [r["path"] for r in read_rows(out)] == ["a", "b"]


def test_resume_after_kill9_is_exactly_once(tiny_bundle: Path, tmp_path: Path, conformance_dir: Path) -> None:
    good, broken = build_archive(tmp_path / "archive", conformance_dir, n_good=40)
    reference = tmp_path / "reference.jsonl"
    run_batch(tmp_path / "archive", reference, bundle=tiny_bundle, workers=1, batch_size=4, progress=False)
    expected = {r["path"]: r for r in read_rows(reference)}

    out = tmp_path / "killed.jsonl"
    command = [
        *CNSCREEN,
        "batch",
        str(tmp_path / "archive"),
        "--out",
        str(out),
        "--bundle",
        str(tiny_bundle),
        "--workers",
        "2",
        "--batch-size",
        "4",
        "--quiet",
    ]
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 3, final.stderr  # broken files are error rows -> exit 3
    assert kills >= 1, "no run was interrupted; the test proved nothing"
    rows = read_rows(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == len(good | broken)
    for row in rows:
        ref = expected[row["path"]]
        assert row["status"] == ref["status"]
        if row["status"] != "error":
            assert row["p_CAD"] == pytest.approx(ref["p_CAD"], abs=1e-6)


def test_prepared_stream_yields_every_item_once_and_stops_its_workers(tmp_path: Path) -> None:
    """The stream prepares items in this process while the pool boots, then hands the rest to the pool: each item
    must come back exactly once (good and bad alike), and close() must leave no reader process behind."""
    import multiprocessing as mp

    from cardiacnets.edge.batch import InputItem
    from cardiacnets.edge.batch.readers import _iterate_prepared
    from cardiacnets.preprocess import PreprocessConfig

    good = [write_wfdb_ecg(tmp_path, f"rec{i}") for i in range(10)]
    bad = tmp_path / "broken.xml"
    bad.write_text("<not an ecg")
    items = [InputItem(key=str(p), path=str(p)) for p in [*good, bad]]
    stream = _iterate_prepared(items, PreprocessConfig().to_dict(), workers=2)
    seen, polls_without_result = [], 0
    try:
        while True:
            try:
                entry = stream.next_ready(wait=polls_without_result % 2 == 1)
            except StopIteration:
                break
            if entry is None:
                polls_without_result += 1
                continue
            item, prepared, reason = entry
            seen.append(item.key)
            assert (prepared is None) == (item.path == str(bad)), reason
            assert prepared is None or prepared.ecg.shape == (12, 5000)
    finally:
        stream.close()
    assert sorted(seen) == sorted(item.key for item in items)
    assert not [p for p in mp.active_children() if p.is_alive()]


def test_a_reader_killed_mid_file_costs_that_file_only(tmp_path: Path) -> None:
    """A reader process that dies (a native crash, the OOM killer) turns the file it was reading into an error row;
    the files queued behind it are read by its replacement, and every item still comes back exactly once."""
    import multiprocessing as mp

    from cardiacnets.edge.batch import InputItem
    from cardiacnets.edge.batch.readers import _iterate_prepared
    from cardiacnets.preprocess import PreprocessConfig

    items = [InputItem(key=str(p), path=str(p)) for p in (write_wfdb_ecg(tmp_path, f"r{i}") for i in range(24))]
    stream = _iterate_prepared(items, PreprocessConfig().to_dict(), workers=2)
    stream.started.wait()
    seen: list[str] = []
    died: list[str] = []
    try:
        victim = stream.readers[0]
        while len(seen) < 2 or not victim.in_flight:  # let the readers get going, with work queued on the victim
            entry = stream.next_ready(wait=True)
            seen.append(entry[0].key)
        os.kill(victim.process.pid, signal.SIGKILL)
        while True:
            try:
                item, prepared, reason = stream.next_ready(wait=True)
            except StopIteration:
                break
            seen.append(item.key)
            if prepared is None:
                died.append(reason)
        assert victim not in stream.readers and len(stream.readers) == 2  # replaced
    finally:
        stream.close()
    assert sorted(seen) == sorted(item.key for item in items)  # every item once
    assert len(died) == 1 and "reader process died" in died[0] and "signal 9" in died[0]
    assert not [p for p in mp.active_children() if p.is_alive()]


def test_parallel_inference_streams_give_the_rows_of_one_stream(tiny_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for i in range(12):
        write_wfdb_ecg(root, f"rec{i:02d}", patient=f"P^{i}", mrn=f"M{i}")
    rows = {}
    for streams, batch in ((1, 32), (2, 2), (3, 1)):
        out = tmp_path / f"out-{streams}.jsonl"
        run_batch(root, out, bundle=tiny_bundle, workers=2, batch_size=batch, streams=streams, progress=False)
        rows[streams] = {r["path"]: r for r in read_rows(out)}
    assert len(rows[1]) == 12
    for streams in (2, 3):
        assert rows[streams].keys() == rows[1].keys()
        for path, row in rows[streams].items():
            assert row["status"] == rows[1][path]["status"] == "ok"
            for column in ("p_CAD", "p_HF", "pheno_LVEDV"):
                assert row[column] == pytest.approx(rows[1][path][column], abs=1e-5)


def test_readers_that_keep_dying_hand_the_work_back_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reader processes that die at start (a broken environment, not a bad file) are replaced only a few times; then
    the files are read in this process. No file is lost, and only the few handed to dying readers become errors."""
    from collections import deque

    from cardiacnets.edge.batch import InputItem, readers
    from cardiacnets.preprocess import PreprocessConfig

    def dying_reader(cls: type, context: object, config: dict) -> object:
        results_in, results_out = context.Pipe(duplex=False)
        tasks_in, tasks_out = context.Pipe(duplex=False)
        process = context.Process(target=os._exit, args=(3,), daemon=True)
        process.start()
        results_out.close()
        tasks_in.close()
        return cls(process=process, conn=results_in, tasks=tasks_out, in_flight=deque())

    monkeypatch.setattr(readers._Reader, "start", classmethod(dying_reader))
    items = [InputItem(key=str(p), path=str(p)) for p in (write_wfdb_ecg(tmp_path, f"r{i}") for i in range(12))]
    stream = readers._iterate_prepared(items, PreprocessConfig().to_dict(), workers=2)
    results = []
    try:
        while True:
            try:
                entry = stream.next_ready(wait=True)
            except StopIteration:
                break
            results.append(entry)
    finally:
        stream.close()
    assert sorted(item.key for item, _, _ in results) == sorted(item.key for item in items)
    errors = [reason for _, prepared, reason in results if prepared is None]
    assert len(errors) <= 2 + readers._PreparedStream.MAX_DEATHS_IN_A_ROW  # at most one file per dead reader
    assert all("reader process died" in e and "exit code 3" in e for e in errors), errors
    assert len(results) - len(errors) >= 6 and not stream.readers


def _batch_cli(source: Path, out: Path, bundle: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    command = [*CNSCREEN, "batch", str(source), "--out", str(out), "--bundle", str(bundle), "--quiet", *extra]
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnscreen: error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_second_run_on_the_same_output_is_refused_at_once(tiny_bundle: Path, tmp_path: Path) -> None:
    build_archive(tmp_path / "archive", None, n_good=3)
    out = tmp_path / "out.csv"
    columns = output_columns(False)
    holder = RowStore(out, columns, {"bundle_digest": "x", "preprocess_version": "y"})  # a run in progress
    try:
        started = time.perf_counter()
        proc = _batch_cli(tmp_path / "archive", out, tiny_bundle, "--workers", "1")
        assert time.perf_counter() - started < 30
        assert proc.returncode == 4 and "another cnscreen batch run" in _one_line_error(proc)
    finally:
        holder.close(False)
    assert out.read_text().splitlines() == [",".join(columns)]  # the holder's output is untouched


def test_resuming_with_another_bundle_is_refused_and_the_output_kept(tiny_bundle: Path, tmp_path: Path) -> None:
    build_archive(tmp_path / "archive", None, n_good=3)
    out = tmp_path / "out.jsonl"
    first = _batch_cli(tmp_path / "archive", out, tiny_bundle, "--workers", "1")
    assert first.returncode == 3, first.stderr  # the archive holds broken files
    rows = read_rows(out)
    assert {r["bundle_digest"] for r in rows} == {json.loads((tiny_bundle / "manifest.json").read_text())["digest"]}
    before = out.read_bytes()
    other = make_tiny_bundle(tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    from cardiacnets.bundle import write_manifest

    write_manifest(other, {k: v for k, v in manifest.items() if k not in ("files", "digest")} | {"version": "9.9"})
    (tmp_path / "archive" / "synthetic" / "new.hea").write_text((tmp_path / "archive/synthetic/rec00.hea").read_text())
    proc = _batch_cli(tmp_path / "archive", out, other, "--workers", "1")
    message = _one_line_error(proc)
    assert proc.returncode == 4 and "another model bundle" in message and "another --out" in message
    assert out.read_bytes() == before  # nothing written, nothing lost


def _make_read_only(folder: Path) -> None:
    """A folder nobody may create files in: mode 0555, and for root (who ignores modes) the immutable attribute."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is unavailable here ({done.stderr.strip()})")


@pytest.mark.parametrize("problem", ["missing folder", "read-only folder"])
def test_unwritable_output_gives_one_line_and_exit_4(tiny_bundle: Path, tmp_path: Path, problem: str) -> None:
    build_archive(tmp_path / "archive", None, n_good=2)
    folder = tmp_path / ("no-such-folder" if problem == "missing folder" else "readonly")
    out = folder / "out.csv"
    if problem == "read-only folder":
        folder.mkdir()
        _make_read_only(folder)
    try:
        proc = _batch_cli(tmp_path / "archive", out, tiny_bundle, "--workers", "1")
        message = _one_line_error(proc)
        assert proc.returncode == 4, proc.stderr
        assert ("does not exist" if problem == "missing folder" else f"cannot write {out}") in message
        assert not out.exists()
    finally:
        if folder.exists():
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
            folder.chmod(0o755)


def test_a_full_disk_stops_with_one_line_keeps_the_rows_and_resumes(tiny_bundle: Path, tmp_path: Path) -> None:
    """The output file may not grow past 24 kB (RLIMIT_FSIZE, as a full disk would stop it): the run stops with one
    line and exit 4, keeps the rows it wrote, and the same command without the limit completes exactly once."""
    import resource

    good, broken = build_archive(tmp_path / "archive", None, n_good=24)
    out = tmp_path / "out.csv"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))

    proc = _batch_cli(tmp_path / "archive", out, tiny_bundle, "--workers", "1", "--batch-size", "1",
                      preexec_fn=small_disk)  # fmt: skip
    message = _one_line_error(proc)
    assert proc.returncode == 4 and "cannot write" in message and "rerun the same command" in message
    kept = out.read_bytes()
    assert 0 < len(kept) <= 24_000
    final = _batch_cli(tmp_path / "archive", out, tiny_bundle, "--workers", "1")
    assert final.returncode == 3, final.stderr
    import csv

    rows = list(csv.DictReader(out.open()))
    paths = [r["path"] for r in rows]
    assert sorted(paths) == sorted(good | broken)  # exactly once each
    assert out.read_bytes().startswith(kept[: kept.rfind(b"\n") + 1])  # the rows written before the stop are kept


def _non_ecg_files(root: Path) -> None:
    """What archives hold beside ECGs: a README, a scanned image, a PDF, notes, a PNG without an extension."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# ECG export from ward 7\n")
    (root / "notes.txt").write_text("exported on Monday\nsee the index\n")
    (root / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    (root / "printout.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    (root / "thumbnail").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)


def test_plain_non_ecg_files_are_skipped_not_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    ecgs = {str(write_wfdb_ecg(archive / "ecg", f"rec{i}")) for i in range(2)}
    (archive / "ecg" / "samples.txt").write_text("I,II,III\n" + "0.1,0.2,0.1\n" * 10)  # a text file that may be an ECG
    _non_ecg_files(archive / "docs")
    out = tmp_path / "rows.jsonl"
    proc = _batch_cli(archive, out, tiny_bundle)
    rows = {r["path"]: r for r in read_rows(out)}
    assert set(rows) == ecgs | {str(archive / "ecg" / "samples.txt")}  # the .txt of samples is tried: not skipped
    assert proc.returncode == 3  # its row is an error (too short to screen): the exit code says so ...
    assert "1 image file" not in proc.stderr and "2 image files (not an ECG)" in proc.stderr
    assert "2 text files (not an ECG)" in proc.stderr and "1 document file (not an ECG)" in proc.stderr
    (archive / "ecg" / "samples.txt").unlink()
    out2 = tmp_path / "rows2.jsonl"
    clean = _batch_cli(archive, out2, tiny_bundle)
    assert clean.returncode == 0, clean.stderr  # ... while the non-ECG files never change it
    assert {r["status"] for r in read_rows(out2)} == {"ok"} and len(read_rows(out2)) == 2


def test_include_and_exclude_patterns_select_the_inputs(tiny_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    for folder in ("ward", "ward/test", "clinic"):
        for i in range(2):
            write_wfdb_ecg(archive / folder, f"rec{i}")
    out = tmp_path / "rows.jsonl"
    proc = _batch_cli(
        archive, out, tiny_bundle, "--include", "ward/*", "--exclude", "ward/test/*", "--exclude", "rec1*"
    )
    assert proc.returncode == 0, proc.stderr
    assert [Path(r["path"]).relative_to(archive).as_posix() for r in read_rows(out)] == ["ward/rec0.hea"]
    assert "5 by --include/--exclude" in proc.stderr


def test_column_names_have_no_spaces() -> None:
    columns = output_columns(include_phi=True)
    assert all(c.replace("_", "").isalnum() for c in columns) and len(set(columns)) == len(columns)
    assert "pheno_LAV_max" in columns and "pheno_AAo_distensibility_high" in columns
