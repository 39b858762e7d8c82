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
import errno
import io
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.errors import CardiacNetsError, InputError, OutputError, OutputLockedError, OutputMismatchError
from cardiacnets.preprocess import PreprocessConfig
from cardiacnets.targets import DISEASES, SUBTYPES, phenotype_names

logger = logging.getLogger(__name__)

WFDB_COMPANIONS = {".dat", ".mat", ".xyz", ".atr", ".qrs", ".ecg"}
STATUS_OK, STATUS_QC, STATUS_ERROR = "ok", "qc_failed", "error"
# Default ECGs per inference call. On the CPU the screener runs each ECG of a call alone (so its result is the same as
# screening the file by itself), and a call of 2 only saves a hand-over; a GPU wants large batches.
CPU_BATCH, GPU_BATCH = 2, 32


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


def _prepare_one(item: InputItem, config: PreprocessConfig) -> tuple[InputItem, Any, str | None]:
    """Read, QC and preprocess one input: ``(item, PreparedEcg, None)`` or ``(item, None, reason)``; never raises."""
    from cardiacnets.edge.screen import prepare_file

    try:
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
    cols = ["path", "status", "reason", "reliable", "in_distribution", "ood_score", "qc_findings", "format",
            "sampling_rate_hz", "duration_s"]  # fmt: skip
    cols += [f"p_{d}" for d in DISEASES] + [f"decision_{d}" for d in DISEASES] + [f"p_{s}" for s in SUBTYPES]
    for name in phenotype_names():
        cols += [f"pheno_{name}", f"pheno_{name}_low", f"pheno_{name}_high"]
    cols += ["bundle_name", "bundle_version", "bundle_digest", "preprocess_version"]
    if include_phi:
        cols += ["patient_id", "patient_name", "birth_date"]
    return cols


def result_row(result: dict[str, Any], include_phi: bool) -> dict[str, Any]:
    """The batch row of a screening result (``docs/screening-output.md``)."""
    qc = result.get("qc", {})
    fails = [f["message"] for f in qc.get("findings", []) if f.get("severity") == "fail"]
    distribution = result.get("distribution")
    row: dict[str, Any] = {
        "path": result["path"],
        "status": STATUS_OK if qc.get("reliable") else STATUS_QC,
        "reason": "; ".join(fails),
        "reliable": result["reliable"],
        "in_distribution": None if distribution is None else distribution["in_distribution"],
        "ood_score": None if distribution is None else distribution["score"],
        "qc_findings": "; ".join(
            f"{f.get('code')}{'@' + f['lead'] if f.get('lead') else ''}" for f in qc.get("findings", [])
        ),
        "format": result["record"].get("format"),
        "sampling_rate_hz": result["record"].get("sampling_rate_hz"),
        "duration_s": result["record"].get("duration_s"),
    }
    for d in DISEASES:
        row[f"p_{d}"] = result["diseases"][d]["probability"]
        row[f"decision_{d}"] = result["diseases"][d]["decision"]
    for s in SUBTYPES:
        row[f"p_{s}"] = result["subtype"]["probabilities"][s]
    for name, entry in result["phenotypes"].items():
        interval = entry["interval"] or (None, None)
        row[f"pheno_{name}"], row[f"pheno_{name}_low"], row[f"pheno_{name}_high"] = entry["value"], *interval
    row.update(_model_columns(result["model"]), preprocess_version=result["preprocess"].get("version"))
    if include_phi:
        phi = result.get("patient") or {}
        row.update(patient_id=phi.get("patient_id"), patient_name=phi.get("name"), birth_date=phi.get("birth_date"))
    return row


def _model_columns(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundle_name": model.get("name"),
        "bundle_version": model.get("version"),
        "bundle_digest": model.get("digest"),
    }


def error_row(key: str, reason: str, job: dict[str, Any]) -> dict[str, Any]:
    """The row of an input that could not be screened; ``job`` holds the run's model and preprocessing columns."""
    return {"path": key, "status": STATUS_ERROR, "reason": reason.replace("\n", " "), **job}


class RowStore:
    """Append-only rows with crash-safe, exclusive, model-checked resume. ``done`` holds the keys already written.

    The output (CSV/JSONL; for Parquet its journal) is opened and locked (``flock``) before anything is read, so a
    second run on the same output stops at once. Existing rows must come from the same bundle digest and
    preprocessing version as this run (``job``), else the run is refused. Write failures (read-only folder, disk full)
    raise :class:`~cardiacnets.errors.OutputError` naming the output; rows already written stay, and a torn last row
    is cut off on the next run.
    """

    def __init__(self, out: Path, columns: list[str], job: dict[str, Any]) -> None:
        self.out = out
        self.columns = columns
        self.job = job  # bundle_name, bundle_version, bundle_digest, preprocess_version of this run
        self.kind = out.suffix.lower().lstrip(".")
        if self.kind not in {"csv", "jsonl", "parquet"}:
            raise InputError(f"{out}: output must end in .csv, .jsonl or .parquet")
        if not out.parent.is_dir():
            raise OutputError(f"output folder {out.parent} does not exist; create it first")
        self.journal = out.with_name(out.name + ".journal.jsonl") if self.kind == "parquet" else out
        self.done: set[str] = set()
        self.errors_before = 0  # error rows already in the output when this run started
        self.rows_written = 0
        self.handle: Any = None
        self._open()

    def _fail_write(self, exc: OSError) -> OutputError:
        what = os.strerror(exc.errno) if exc.errno else str(exc)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        hint = "free some space" if full else "choose a writable --out"
        kept = f"; the {self.rows_written} rows written by this run are kept" if self.rows_written else ""
        return OutputError(f"cannot write {self.out}: {what}{kept}; {hint} and rerun the same command to resume")

    def _lock(self) -> None:
        """Open the journal for appending and take an exclusive lock on it, or refuse at once."""
        existed = self.journal.exists()
        try:
            self.handle = self.journal.open("a+", encoding="utf-8", newline="")
        except OSError as exc:
            raise self._fail_write(exc) from None
        try:
            _lock_exclusive(self.handle)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            raise OutputLockedError(
                f"{self.out} is being written by another cnscreen batch run; wait for it to finish or use another --out"
            ) from None
        self._created = not existed

    def _check_job(self, rows: list[dict[str, Any]]) -> None:
        for key, what in (("bundle_digest", "model bundle"), ("preprocess_version", "preprocessing version")):
            theirs = {row.get(key) for row in rows if row.get(key)}
            if theirs and theirs != {self.job[key]}:
                shown = ", ".join(sorted(str(t)[:16] for t in theirs))
                raise OutputMismatchError(
                    f"{self.out} holds rows from another {what} ({key} {shown}; this run: {str(self.job[key])[:16]});"
                    " screen into another --out, or resume with the same bundle"
                )

    def _repair_and_load(self) -> None:
        data = self.journal.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a torn last row from a kill mid-write: drop it, its file is screened again
            self.handle.truncate(cut)
            data = data[:cut]
        text = data.decode("utf-8")
        if self.kind == "csv":
            reader = csv.DictReader(io.StringIO(text))
            if reader.fieldnames and reader.fieldnames != self.columns:
                raise OutputMismatchError(
                    f"{self.out}: the existing output has other columns (another toolkit version, or --include-phi"
                    " differs); use another --out or the same options"
                )
            rows = list(reader)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        self._check_job(rows)
        self.done = {row["path"] for row in rows}
        self.errors_before = sum(row["status"] == STATUS_ERROR for row in rows)

    def _open(self) -> None:
        if self.kind == "parquet" and self.out.exists() and not self.journal.exists():
            import pyarrow.parquet as pq

            names = set(pq.read_schema(self.out).names)
            wanted = ["path", "status", *[k for k in ("bundle_digest", "preprocess_version") if k in names]]
            rows = pq.read_table(self.out, columns=wanted).to_pylist()
            self._check_job(rows)
            self.done = {row["path"] for row in rows}
            self.errors_before = sum(row["status"] == STATUS_ERROR for row in rows)
            return
        self._lock()
        try:
            self._repair_and_load()
            new = self.journal.stat().st_size == 0
            if self.kind == "csv":
                self.writer = csv.DictWriter(
                    self.handle, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n"
                )
                if new:
                    self.writer.writeheader()
                    self.handle.flush()
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Close without writing; remove the journal if this run created it and it is still empty."""
        if self.handle is None:
            return
        self.handle.close()
        self.handle = None
        try:
            if self._created and self.journal.stat().st_size == 0:
                self.journal.unlink()
        except OSError:
            pass

    def _drop_handle(self) -> None:
        """Close after a failed write: what could not be written is dropped (a torn last row is cut on resume)."""
        try:
            self.handle.close()  # the file is closed (and unlocked) even when the final flush fails
        except OSError:
            pass
        self.handle = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.handle is None:
            raise InputError(f"{self.out} is complete; remove it to screen again")
        try:
            for row in rows:
                clean = {k: (_one_line(v) if isinstance(v, str) else v) for k, v in row.items()}
                if self.kind == "csv":
                    self.writer.writerow(clean)
                else:
                    self.handle.write(json.dumps({c: clean.get(c) for c in self.columns}, default=str) + "\n")
            self.handle.flush()
        except OSError as exc:
            self._drop_handle()
            raise self._fail_write(exc) from None
        for row in rows:
            self.done.add(row["path"])
        self.rows_written += len(rows)

    def close(self, complete: bool) -> None:
        if self.handle is None:
            return
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as exc:
            self._drop_handle()
            raise self._fail_write(exc) from None
        try:
            if complete and self.kind == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                rows = [json.loads(line) for line in self.journal.read_text().splitlines() if line.strip()]
                table = pa.Table.from_pylist(rows, schema=_arrow_schema(self.columns))
                tmp = self.out.with_name(self.out.name + ".tmp")
                try:
                    pq.write_table(table, tmp)
                    os.replace(tmp, self.out)
                except OSError as exc:
                    tmp.unlink(missing_ok=True)
                    raise self._fail_write(exc) from None
                self.journal.unlink()
        finally:
            self.handle.close()  # releases the lock
            self.handle = None


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def _lock_exclusive(handle: Any) -> None:
    """Non-blocking exclusive lock on an open file (raises BlockingIOError when another process holds it)."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from None
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _arrow_schema(columns: list[str]) -> Any:
    import pyarrow as pa

    def kind(c: str) -> Any:
        if c in {"reliable", "in_distribution"}:
            return pa.bool_()
        if c.startswith(("p_", "pheno_")) or c in {"sampling_rate_hz", "duration_s", "ood_score"}:
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


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_batch(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    streams: int | None = None,
    device: str = "auto",
    include_phi: bool = False,
    progress: bool = True,
    operating_point: str | None = None,
    trusted_keys: Sequence[str | os.PathLike[str]] = (),
) -> BatchSummary:
    """Screen every input of ``source`` into ``out``; resumes when ``out`` already holds rows.

    ``workers`` reader processes (default: one per usable core) read, QC and preprocess. Inference runs in
    ``streams`` threads at once, each calling the same onnxruntime session: on the CPU the default is one stream per
    usable core with one ORT thread each, so no inference thread ever waits at a parallel-operator barrier for a
    sibling that the scheduler has given to a reader (ORT's intra-op threads do); on a GPU one stream.
    ``batch_size`` is the most ECGs per inference call (default: 2 on the CPU, where each is still run alone so that
    its result is the same as screening the file by itself; 32 on a GPU): whenever the readers have nothing ready,
    what is pending goes to a free stream at once rather than waiting for a full batch. Every row names the bundle
    (digest and version) and the preprocessing version; resuming an output written with others is refused, as is a
    second run on the same output while one is running."""
    from cardiacnets.bundle import default_bundle_path, load_bundle

    started = time.perf_counter()
    out = Path(out)
    items = enumerate_inputs(source)
    loaded = load_bundle(bundle or default_bundle_path(), check_hashes="on_use", trusted_keys=trusted_keys)
    config = (PreprocessConfig.from_dict(loaded.preprocess) if loaded.preprocess else PreprocessConfig()).to_dict()
    job = {**_model_columns(loaded.identity), "preprocess_version": config.get("version")}
    store = RowStore(out, output_columns(include_phi), job)
    todo = [item for item in items if item.key not in store.done]
    summary = BatchSummary(total=len(items), skipped_done=len(items) - len(todo), errors_before=store.errors_before)
    workers = max(1, workers if workers is not None else usable_cores())
    complete = False
    prepared_stream: _PreparedStream | None = None
    inference: _InferenceStreams | None = None
    try:
        # The workers start (and import the readers) while this process builds the inference session.
        prepared_stream = _iterate_prepared(todo, config, workers)
        inference = _InferenceStreams(loaded, device, streams, batch_size, spin=workers <= 1,
                                      operating_point=operating_point)  # fmt: skip
        with _progress(progress, len(todo)) as advance:

            def write(batch: list[Any], outputs: list[dict[str, np.ndarray]]) -> None:
                rows = []
                for prepared, output in zip(batch, outputs, strict=True):
                    result = inference.screener.result(prepared, output, include_phi=include_phi)
                    row = result_row(result, include_phi)
                    summary.ok += row["status"] == STATUS_OK
                    summary.qc_failed += row["status"] == STATUS_QC
                    rows.append(row)
                store.write(rows)
                advance(len(rows))

            pending: list[Any] = []
            exhausted = False
            while True:
                for done in inference.completed():
                    write(*done)
                entry = None
                if not exhausted:
                    try:
                        # Block on the readers only when nothing else can happen; otherwise take what is ready.
                        entry = prepared_stream.next_ready(wait=not pending and not inference.busy)
                    except StopIteration:
                        exhausted = True
                if entry is not None:
                    item, prepared, reason = entry
                    if prepared is None:
                        store.write([error_row(item.key, reason or "unknown error", job)])
                        summary.error += 1
                        advance(1)
                        continue
                    prepared.signal_mv = None
                    pending.append(prepared)
                    if len(pending) >= inference.batch_size:
                        for done in inference.submit(pending):
                            write(*done)
                        pending = []
                    continue
                # Nothing ready from the readers: put what is pending on a free stream, else wait a moment for one.
                if pending and inference.free:
                    for done in inference.submit(pending):
                        write(*done)
                    pending = []
                elif inference.busy:
                    for done in inference.wait(timeout=None if exhausted and not pending else 0.005):
                        write(*done)
                elif exhausted:
                    break
        complete = True
    finally:
        if prepared_stream is not None:
            prepared_stream.close()  # stops the worker pool at once if inference or output failed
        if inference is not None:
            inference.close()
        store.close(complete)
    summary.seconds = time.perf_counter() - started
    return summary


class _InferenceStreams:
    """Batched inference on ``count`` threads sharing one onnxruntime session (``session.run`` is thread-safe and
    releases the GIL). Results come back in submission order, so rows are written in the order batches were formed;
    a batch still running when the process dies has written nothing and is screened again on resume."""

    def __init__(
        self, bundle: Any, device: str, count: int | None, batch_size: int | None, *, spin: bool,
        operating_point: str | None = None,
    ) -> None:  # fmt: skip
        """``spin``: let ORT's threads busy-wait between runs (only when no reader process shares the cores)."""
        from concurrent.futures import ThreadPoolExecutor

        from cardiacnets.edge.screen import Screener, select_providers

        on_cpu = select_providers(device)[0] == "CPUExecutionProvider"
        self.count = max(1, count if count is not None else (usable_cores() if on_cpu else 1))
        self.batch_size = max(1, batch_size if batch_size is not None else (CPU_BATCH if on_cpu else GPU_BATCH))
        # Several streams: one ORT thread each (the streams are the parallelism).
        threads = 1 if on_cpu and self.count > 1 else None
        self.screener = Screener(bundle, device=device, threads=threads, allow_spinning=spin and self.count == 1,
                                 operating_point=operating_point)  # fmt: skip
        self.executor = ThreadPoolExecutor(self.count, thread_name_prefix="cns-infer") if self.count > 1 else None
        self.running: deque[tuple[list[Any], Any]] = deque()

    @property
    def busy(self) -> bool:
        return bool(self.running)

    @property
    def free(self) -> bool:
        return len(self.running) < self.count

    def submit(self, batch: list[Any]) -> list[tuple[list[Any], list[dict[str, np.ndarray]]]]:
        """Start ``batch`` (a copy is kept), first waiting for the oldest running batch while every stream is busy.
        Returns the batches that finished meanwhile, oldest first (with one stream: ``batch`` itself, run here)."""
        batch = list(batch)
        if self.executor is None:
            return [(batch, self.screener.infer_prepared(batch))]
        finished = self.completed()
        while not self.free:
            finished += self.wait(timeout=None)
        self.running.append((batch, self.executor.submit(self.screener.infer_prepared, batch)))
        return finished

    def completed(self) -> list[tuple[list[Any], list[dict[str, np.ndarray]]]]:
        """The finished batches at the head of the queue (submission order)."""
        done = []
        while self.running and self.running[0][1].done():
            batch, future = self.running.popleft()
            done.append((batch, future.result()))
        return done

    def wait(self, timeout: float | None) -> list[tuple[list[Any], list[dict[str, np.ndarray]]]]:
        """Wait up to ``timeout`` s (None: until it finishes) for the oldest running batch; the finished ones."""
        from concurrent.futures import TimeoutError as FutureTimeout

        if not self.running:
            return []
        try:
            self.running[0][1].result(timeout=timeout)
        except FutureTimeout:
            return []
        return self.completed()

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


class _PreparedStream:
    """``(item, PreparedEcg | None, error)`` for every item, in completion order, from reader processes.

    Each reader process has its own pipe and at most :attr:`DEPTH` items in flight, so a reader never idles waiting
    for work and the main process polls the pipes directly (:func:`multiprocessing.connection.wait`): no helper
    threads. (``multiprocessing.Pool`` was used before; its worker-handler thread also wakes on the shared result
    pipe and spins while a large result is being read: about 1.6 ms of CPU per ECG here, read from per-thread CPU
    counters in an ad-hoc run.) A reader that dies mid-file (a crash in a native library, the OOM killer) turns that
    file into an error row and is replaced; the files queued behind it are handed out again.

    The processes are started in a background thread at construction, so they boot (the forkserver imports the
    screening path) while the caller builds its inference session; until they are up, :meth:`next_ready` prepares
    items in this process instead of idling. ``close`` stops them.
    """

    DEPTH = 2  # items in flight per reader
    MAX_DEATHS_IN_A_ROW = 3  # then stop replacing readers (something is wrong with them) and read in this process

    def __init__(self, items: list[InputItem], config: dict[str, Any], workers: int) -> None:
        self.todo = deque(items)  # not yet handed out
        self.config = config  # as a dict: what reader processes are started with
        self.preprocess = PreprocessConfig.from_dict(config)  # for the items prepared in this process
        self.ready: deque[tuple[InputItem, Any, str | None]] = deque()
        self.readers: list[_Reader] = []
        self.started = threading.Event()
        self.start_error: BaseException | None = None
        self.context: Any = None
        self.deaths_in_a_row = 0
        if workers <= 1 or len(items) < 4:
            self.started.set()  # no processes: everything is prepared in this process
            return
        # forkserver/spawn: the parent holds onnxruntime threads, which fork would copy in a locked state. The
        # forkserver imports the screening path once (besides its default, the main module) and every reader forked
        # from it inherits it. Readers still re-run the main script's top level, so that should stay light.
        if "forkserver" in mp.get_all_start_methods():
            self.context = mp.get_context("forkserver")
            self.context.set_forkserver_preload(["__main__", "cardiacnets.edge.screen"])
        else:
            self.context = mp.get_context("spawn")
        threading.Thread(target=self._start_readers, args=(workers,), daemon=True).start()

    def _start_readers(self, workers: int) -> None:
        try:
            for _ in range(workers):
                self.readers.append(_Reader.start(self.context, self.config))
        except BaseException as exc:  # noqa: BLE001 - reported to the consuming thread by next_ready
            self.start_error = exc
        finally:
            self.started.set()

    def next_ready(self, *, wait: bool) -> tuple[InputItem, Any, str | None] | None:
        """The next result; with ``wait=False``, None when none is ready yet. Raises StopIteration after the last."""
        if not self.started.is_set():
            if self.todo:
                return _prepare_one(self.todo.popleft(), self.preprocess)  # the readers are still booting: work here
            self.started.wait()
        while True:
            if self.ready:
                return self.ready.popleft()
            if not self.readers:  # none started, or they kept dying: read here
                if self.start_error is not None:
                    logger.warning("reader processes failed to start (%s); reading in this process", self.start_error)
                    self.start_error = None
                if self.todo:
                    return _prepare_one(self.todo.popleft(), self.preprocess)
                raise StopIteration
            self._hand_out()
            busy = [reader for reader in self.readers if reader.in_flight]
            if not busy and not self.todo:
                raise StopIteration
            # Results from busy readers, and the death of any reader (one that died idle is replaced too).
            handles = [reader.conn for reader in busy] + [reader.process.sentinel for reader in self.readers]
            signalled = mp.connection.wait(handles, timeout=None if wait else 0)
            if not signalled:
                return None
            for reader in list(self.readers):
                died = reader.process.sentinel in signalled
                if died or reader.conn in signalled:
                    self._collect(reader, died=died)

    def _hand_out(self) -> None:
        for reader in self.readers:
            while self.todo and len(reader.in_flight) < self.DEPTH:
                item = self.todo.popleft()
                try:
                    reader.tasks.send(item)
                except (OSError, ValueError):  # the reader is gone; the sentinel reports it
                    self.todo.appendleft(item)
                    break
                reader.in_flight.append(item)

    def _collect(self, reader: _Reader, *, died: bool) -> None:
        """Take ``reader``'s finished results; if it died, its current file becomes an error row, the files queued
        behind that one go back to the queue, and a new reader takes its place."""
        try:
            while reader.in_flight and reader.conn.poll():
                result = reader.conn.recv()
                reader.in_flight.popleft()
                self.ready.append(result)
                self.deaths_in_a_row = 0
        except (EOFError, OSError):
            died = True
        if not died:
            return
        reader.process.join(timeout=5)
        code = reader.process.exitcode
        if reader.in_flight:
            item = reader.in_flight.popleft()
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self.ready.append((item, None, f"the reader process died while reading this file ({how})"))
            self.todo.extendleft(reversed(reader.in_flight))
        reader.close()
        self.readers.remove(reader)
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row >= self.MAX_DEATHS_IN_A_ROW:
            logger.warning(
                "%d reader processes died in a row without a result; %s",
                self.deaths_in_a_row,
                f"{len(self.readers)} left" if self.readers else "reading in this process from now on",
            )
            return
        try:
            self.readers.append(_Reader.start(self.context, self.config))
        except OSError as exc:
            logger.warning("could not replace a reader process (%s); %d left", exc, len(self.readers))

    def close(self) -> None:
        """Stop the readers at once (terminate, then join); safe to call twice."""
        self.started.wait()
        for reader in self.readers:
            reader.process.terminate()
        for reader in self.readers:
            reader.process.join(timeout=5)
            if reader.process.is_alive():
                reader.process.kill()
                reader.process.join()
            reader.close()
        self.readers = []


@dataclass
class _Reader:
    """One reader process, the main process's ends of its two pipes (items out, results in), and the items it holds
    (in order)."""

    process: Any
    conn: Any  # results from the reader
    tasks: Any  # items to the reader
    in_flight: deque[InputItem]

    @classmethod
    def start(cls, context: Any, config: dict[str, Any]) -> _Reader:
        results_in, results_out = context.Pipe(duplex=False)
        tasks_in, tasks_out = context.Pipe(duplex=False)
        _widen_pipe(results_out)
        process = context.Process(
            target=_reader_main, args=(tasks_in, results_out, config), daemon=True, name="cns-reader"
        )
        process.start()
        results_out.close()
        tasks_in.close()
        return cls(process=process, conn=results_in, tasks=tasks_out, in_flight=deque())

    def close(self) -> None:
        self.conn.close()
        self.tasks.close()


def _widen_pipe(conn: Any) -> None:
    """Give a result pipe room for a whole prepared ECG (~250 kB): with Linux's default 64 kB the reader blocks
    mid-message and the two processes take turns four times per ECG. Best effort (Linux 2.6.35+ only)."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        logger.debug("could not widen a reader's result pipe; keeping the system default")


def _reader_main(tasks: Any, results: Any, config: dict[str, Any]) -> None:
    """Reader process: prepare each item received until the pipe closes. Ctrl-C is the main process's to handle."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reader_process_init()
    preprocess = PreprocessConfig.from_dict(config)
    while True:
        try:
            item = tasks.recv()
            result = _prepare_one(item, preprocess)
            results.send(result)
        except (EOFError, OSError):  # the main process is gone (or closed the pipes): nothing left to do
            return


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
