"""``cnscreen batch``: screen a whole archive (directory tree, zip, or list file), resumably.

Worker processes read, QC and preprocess files while the main process runs batched inference and appends one row per
input file to the output. The pool starts before the inference session is built, and inference takes whatever the
workers have ready (up to the batch size) instead of idling for a full batch. Rerunning the same command resumes:
rows already in the output are skipped, a torn last row (from a kill mid-write) is cut off and its file screened
again, so every input appears exactly once.

Output formats by extension: ``.csv``, ``.jsonl``, ``.parquet``. CSV and JSONL are appended in place; Parquet, which
cannot be appended, is journalled to ``<out>.journal.jsonl`` and written atomically when the run completes.
"""

from __future__ import annotations

import csv
import ctypes
import io
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CardiacNetsError, InputError
from cardiacnets.preprocess import PreprocessConfig
from cardiacnets.targets import DISEASES, SUBTYPES, phenotype_names

logger = logging.getLogger(__name__)

WFDB_COMPANIONS = {".dat", ".mat", ".xyz", ".atr", ".qrs", ".ecg"}
STATUS_OK, STATUS_QC, STATUS_ERROR = "ok", "qc_failed", "error"


@dataclass(frozen=True)
class InputItem:
    """One input file: ``key`` is what the output's ``path`` column holds."""

    key: str
    path: str
    member: str | None = None  # member name when ``path`` is a zip archive


# LUDB-style per-lead annotation files that sit beside a WFDB header.
_LEAD_ANNOTATIONS = {".i", ".ii", ".iii", ".avr", ".avl", ".avf", ".v1", ".v2", ".v3", ".v4", ".v5", ".v6"}


def _is_companion(name: str, names: set[str]) -> bool:
    """True for the signal and annotation files of a WFDB record whose ``.hea`` is also present."""
    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    return ext in WFDB_COMPANIONS | _LEAD_ANNOTATIONS and f"{stem}.hea" in names


def enumerate_inputs(source: str | os.PathLike[str]) -> list[InputItem]:
    """The input files of ``source`` in a stable order. WFDB companion files (``.dat`` beside a ``.hea``) are part of
    their record, not inputs of their own. Hidden files are skipped."""
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
        )
        names = {str(p) for p in files}
        return [InputItem(key=str(p), path=str(p)) for p in files if not _is_companion(str(p), names)]
    if not source.is_file():
        raise InputError(f"{source}: no such file or directory")
    if zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                members = sorted(i.filename for i in archive.infolist() if not i.is_dir())
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{source}: unreadable zip archive ({exc})") from exc
        visible = [m for m in members if not any(part.startswith(".") for part in m.split("/"))]
        names = set(visible)
        return [
            InputItem(key=f"{source}!{m}", path=str(source), member=m) for m in visible if not _is_companion(m, names)
        ]
    try:
        lines = source.read_text().splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{source}: not a directory, zip archive or list file of paths ({exc})") from exc
    items = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line) if Path(line).is_absolute() else source.parent / line
            items.append(InputItem(key=line, path=str(path)))
    return items


def _extract_member(item: InputItem, workdir: Path) -> Path:
    """Extract a zip member (and, for WFDB, its companion files) to ``workdir``; refuse zip bombs."""
    limit = int(os.environ.get("CNS_MAX_FILE_BYTES", 64 * 1024 * 1024))
    with zipfile.ZipFile(item.path) as archive:
        stem = os.path.splitext(item.member)[0]
        wanted = [item.member]
        if item.member.lower().endswith(".hea"):
            wanted += [n for n in archive.namelist() if os.path.splitext(n)[0] == stem and n != item.member]
        for name in wanted:
            info = archive.getinfo(name)
            if info.file_size > limit:
                raise InputError(f"{item.key}: member of {info.file_size} bytes is over the {limit}-byte limit")
            target = workdir / Path(name).name
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
    return workdir / Path(item.member).name


def _reader_process_init() -> None:
    """Reader worker start-up: keep freed memory in the heap (glibc ``mallopt``).

    Every file allocates and frees the same few ~1-MB float64 temporaries (filters, QC windows). With glibc's
    defaults each of them is a fresh ``mmap`` (or a heap that is trimmed and regrown) whose pages fault in again on
    every file; that costs about a third of the per-file time. Raising the mmap and trim thresholds lets the worker
    reuse them. Elsewhere (other C libraries) nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: allocations under 32 MiB come from the heap
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: keep up to 128 MiB of freed heap for the next file
    except (OSError, AttributeError):
        logger.debug("mallopt unavailable; reader workers keep the C library's default allocator settings")


def _prepare(args: tuple[InputItem, dict[str, Any]]) -> tuple[InputItem, Any, str | None]:
    """Worker: read, QC and preprocess one input; never raises."""
    from cardiacnets.edge.screen import prepare_file

    item, config_dict = args
    try:
        config = PreprocessConfig.from_dict(config_dict)
        if item.member is None:
            prepared = prepare_file(item.path, config)
        else:
            with tempfile.TemporaryDirectory(prefix="cns-") as tmp:
                prepared = prepare_file(_extract_member(item, Path(tmp)), config)
        prepared.path = item.key
        return item, prepared, None
    except CardiacNetsError as exc:
        return item, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the batch
        logger.debug("unexpected error on an input", exc_info=True)
        return item, None, f"internal error ({type(exc).__name__}: {exc})"


def output_columns(include_phi: bool) -> list[str]:
    cols = ["path", "status", "reason", "reliable", "qc_findings", "format", "sampling_rate_hz", "duration_s"]
    cols += [f"p_{d}" for d in DISEASES] + [f"flag_{d}" for d in DISEASES] + [f"p_{s}" for s in SUBTYPES]
    cols += [f"pheno_{name}" for name in phenotype_names()]
    if include_phi:
        cols += ["patient_id", "patient_name", "birth_date"]
    return cols


def result_row(result: dict[str, Any], include_phi: bool) -> dict[str, Any]:
    qc = result.get("qc", {})
    fails = [f["message"] for f in qc.get("findings", []) if f.get("severity") == "fail"]
    row: dict[str, Any] = {
        "path": result["path"],
        "status": STATUS_OK if result["reliable"] else STATUS_QC,
        "reason": "; ".join(fails),
        "reliable": result["reliable"],
        "qc_findings": "; ".join(
            f"{f.get('code')}{'@' + f['lead'] if f.get('lead') else ''}" for f in qc.get("findings", [])
        ),
        "format": result["record"].get("format"),
        "sampling_rate_hz": result["record"].get("sampling_rate_hz"),
        "duration_s": result["record"].get("duration_s"),
    }
    for d in DISEASES:
        row[f"p_{d}"] = result["diseases"][d]["probability"]
        row[f"flag_{d}"] = result["diseases"][d]["flagged"]
    for s in SUBTYPES:
        row[f"p_{s}"] = result["subtype"]["probabilities"][s]
    for name, value in result["phenotypes"].items():
        row[f"pheno_{name}"] = value
    if include_phi:
        phi = result.get("patient") or {}
        row.update(patient_id=phi.get("patient_id"), patient_name=phi.get("name"), birth_date=phi.get("birth_date"))
    return row


def error_row(key: str, reason: str) -> dict[str, Any]:
    return {"path": key, "status": STATUS_ERROR, "reason": reason.replace("\n", " ")}


class RowStore:
    """Append-only rows with crash-safe resume. ``done`` holds the keys already written."""

    def __init__(self, out: Path, columns: list[str]) -> None:
        self.out = out
        self.columns = columns
        self.kind = out.suffix.lower().lstrip(".")
        if self.kind not in {"csv", "jsonl", "parquet"}:
            raise InputError(f"{out}: output must end in .csv, .jsonl or .parquet")
        self.journal = out.with_name(out.name + ".journal.jsonl") if self.kind == "parquet" else out
        self.done: set[str] = set()
        self.errors_before = 0  # error rows already in the output when this run started
        self.rows_written = 0
        self._open()

    def _repair_and_load(self) -> None:
        path = self.journal
        if not path.exists():
            return
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a torn last row from a kill mid-write: drop it, its file is screened again
            with path.open("r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
        text = data.decode("utf-8")
        if self.kind == "csv":
            reader = csv.DictReader(io.StringIO(text))
            if reader.fieldnames and reader.fieldnames != self.columns:
                raise InputError(f"{path}: existing output has other columns; use another --out or the same options")
            rows = [(row["path"], row["status"]) for row in reader]
        else:
            rows = [(r["path"], r["status"]) for r in map(json.loads, filter(str.strip, text.splitlines()))]
        self.done = {path for path, _ in rows}
        self.errors_before = sum(status == STATUS_ERROR for _, status in rows)

    def _open(self) -> None:
        if self.kind == "parquet" and self.out.exists() and not self.journal.exists():
            import pyarrow.parquet as pq

            table = pq.read_table(self.out, columns=["path", "status"])
            self.done = set(table.column("path").to_pylist())
            self.errors_before = table.column("status").to_pylist().count(STATUS_ERROR)
            self.handle = None
            return
        self._repair_and_load()
        new = not self.journal.exists() or self.journal.stat().st_size == 0
        self.handle = self.journal.open("a", encoding="utf-8", newline="")
        if self.kind == "csv":
            self.writer = csv.DictWriter(
                self.handle, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n"
            )
            if new:
                self.writer.writeheader()
                self.handle.flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.handle is None:
            raise InputError(f"{self.out} is complete; remove it to screen again")
        for row in rows:
            clean = {k: (v.replace("\n", " ").replace("\r", " ") if isinstance(v, str) else v) for k, v in row.items()}
            if self.kind == "csv":
                self.writer.writerow(clean)
            else:
                self.handle.write(json.dumps({c: clean.get(c) for c in self.columns}, default=str) + "\n")
            self.done.add(row["path"])
            self.rows_written += 1
        self.handle.flush()

    def close(self, complete: bool) -> None:
        if self.handle is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if complete and self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = [json.loads(line) for line in self.journal.read_text().splitlines() if line.strip()]
            table = pa.Table.from_pylist(rows, schema=_arrow_schema(self.columns))
            tmp = self.out.with_name(self.out.name + ".tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, self.out)
            self.journal.unlink()


def _arrow_schema(columns: list[str]) -> Any:
    import pyarrow as pa

    def kind(c: str) -> Any:
        if c in {"reliable"} or c.startswith("flag_"):
            return pa.bool_()
        if c.startswith(("p_", "pheno_")) or c in {"sampling_rate_hz", "duration_s"}:
            return pa.float64()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in columns])


@dataclass
class BatchSummary:
    total: int
    skipped_done: int
    ok: int = 0
    qc_failed: int = 0
    error: int = 0
    errors_before: int = 0  # error rows written by earlier (interrupted) runs of the same job
    seconds: float = 0.0

    @property
    def processed(self) -> int:
        return self.ok + self.qc_failed + self.error


def run_batch(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    include_phi: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Screen every input of ``source`` into ``out``; resumes when ``out`` already holds rows.

    ``batch_size`` is the most ECGs per inference call: whenever the workers have nothing ready, what is pending is
    inferred at once rather than waiting for a full batch, so inference overlaps reading from the first file to the
    last (on the CPU the cost per ECG hardly depends on the batch size)."""
    from cardiacnets.bundle import default_bundle_path, load_bundle
    from cardiacnets.edge.screen import Screener, build_result

    started = time.perf_counter()
    out = Path(out)
    items = enumerate_inputs(source)
    loaded = load_bundle(bundle or default_bundle_path(), check_hashes="on_use")
    store = RowStore(out, output_columns(include_phi))
    todo = [item for item in items if item.key not in store.done]
    summary = BatchSummary(total=len(items), skipped_done=len(items) - len(todo), errors_before=store.errors_before)
    config = (PreprocessConfig.from_dict(loaded.preprocess) if loaded.preprocess else PreprocessConfig()).to_dict()
    workers = max(1, workers if workers is not None else (os.cpu_count() or 2))
    complete = False
    # The workers start (and import the readers) while this process builds the inference session.
    prepared_stream = _iterate_prepared(todo, config, workers)
    try:
        # Workers share the CPU with inference: ORT must not busy-wait for work between batches (its default
        # spinning burns a core the readers need).
        screener = Screener(loaded, device=device, allow_spinning=workers <= 1)
        with _progress(progress, len(todo)) as advance:
            pending: list[Any] = []

            def flush() -> None:
                if not pending:
                    return
                outputs = screener.infer_prepared(pending)
                rows = []
                for prepared, output in zip(pending, outputs, strict=False):
                    result = build_result(screener.bundle, prepared, output, include_phi=include_phi)
                    row = result_row(result, include_phi)
                    summary.ok += row["status"] == STATUS_OK
                    summary.qc_failed += row["status"] == STATUS_QC
                    rows.append(row)
                store.write(rows)
                advance(len(rows))
                pending.clear()

            while True:
                try:
                    # Block only when there is nothing to infer; otherwise take what the workers have ready.
                    entry = prepared_stream.next_ready(wait=not pending)
                except StopIteration:
                    break
                if entry is None:  # the workers are busy and nothing is ready: infer what is pending meanwhile
                    flush()
                    continue
                item, prepared, reason = entry
                if prepared is None:
                    store.write([error_row(item.key, reason or "unknown error")])
                    summary.error += 1
                    advance(1)
                    continue
                prepared.signal_mv = None
                pending.append(prepared)
                if len(pending) >= batch_size:
                    flush()
            flush()
        complete = True
    finally:
        prepared_stream.close()  # stops the worker pool at once if inference or output failed
        store.close(complete)
    summary.seconds = time.perf_counter() - started
    return summary


class _PreparedStream:
    """``(item, PreparedEcg | None, error)`` for every item, in completion order, from a pool of reader processes.

    The pool is started in a background thread at construction, so it boots (the forkserver imports the screening
    path) while the caller builds its inference session; until it is up, :meth:`next_ready` prepares items in this
    process instead of idling. ``close`` stops the pool.
    """

    def __init__(self, items: list[InputItem], config: dict[str, Any], workers: int) -> None:
        self.todo = deque((item, config) for item in items)  # not yet handed to the pool
        self.pool: Any = None
        self.results: Any = None
        self.started = threading.Event()
        if workers <= 1 or len(items) < 4:
            self.results = map(_prepare, list(self.todo))
            self.todo.clear()
            return
        # forkserver/spawn: the parent holds onnxruntime threads, which fork would copy in a locked state. The
        # forkserver imports the screening path once (besides its default, the main module) and every worker forked
        # from it inherits it. Workers still re-run the main script's top level, so that should stay light.
        if "forkserver" in mp.get_all_start_methods():
            context = mp.get_context("forkserver")
            context.set_forkserver_preload(["__main__", "cardiacnets.edge.screen"])
        else:
            context = mp.get_context("spawn")
        self.start_error: BaseException | None = None
        threading.Thread(target=self._start_pool, args=(context, workers), daemon=True).start()

    def _start_pool(self, context: Any, workers: int) -> None:
        try:
            self.pool = context.Pool(workers, initializer=_reader_process_init)
        except BaseException as exc:  # noqa: BLE001 - reported to the consuming thread by next_ready
            self.start_error = exc
        finally:
            self.started.set()

    def next_ready(self, *, wait: bool) -> tuple[Any, Any, Any] | None:
        """The next result; with ``wait=False``, None when the workers have none ready yet. Raises StopIteration
        after the last one."""
        if self.results is None:
            if not self.started.is_set() and self.todo:
                return _prepare(self.todo.popleft())  # the pool is still booting: do the work here meanwhile
            self.started.wait()
            if self.pool is None:
                logger.warning("reader processes failed to start (%s); reading in this process", self.start_error)
                self.results = map(_prepare, list(self.todo))
            else:
                # One file per task: both workers stay busy to the end, and (unlike chunked imap) the iterator can
                # be polled without blocking. Task traffic is small next to a file's processing.
                self.results = self.pool.imap_unordered(_prepare, list(self.todo), chunksize=1)
            self.todo.clear()
        if self.pool is None or wait:
            return next(self.results)
        try:
            return self.results.next(timeout=0)  # IMapUnorderedIterator
        except mp.TimeoutError:
            return None

    def close(self) -> None:
        if self.results is None and not self.started.is_set():
            self.started.wait()
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _iterate_prepared(items: list[InputItem], config: dict[str, Any], workers: int) -> _PreparedStream:
    return _PreparedStream(items, config, workers)


class _progress:
    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("screening"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} files/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("screening", total=self.total, rate=0.0)
        self.t0 = time.perf_counter()
        self.count = 0

        def advance(n: int) -> None:
            self.count += n
            rate = self.count / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=n, rate=rate)

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()


def summary_dict(summary: BatchSummary) -> dict[str, Any]:
    rate = summary.processed / summary.seconds if summary.seconds else float("nan")
    return {
        "inputs": summary.total,
        "already_done": summary.skipped_done,
        "ok": summary.ok,
        "qc_failed": summary.qc_failed,
        "error": summary.error,
        "errors_in_output": summary.error + summary.errors_before,
        "seconds": round(summary.seconds, 2),
        "files_per_second": round(rate, 2) if np.isfinite(rate) else None,
    }
