"""The resumable batch output: :class:`RowStore` appends rows to a CSV or JSONL file (for Parquet, to a JSONL journal
written out atomically at the end), holding an exclusive lock on it for the whole run, refusing to resume an output
written by another bundle or preprocessing version, repairing a row torn by a kill, and turning write failures into
one-line :class:`~cardiacnets.errors.OutputError` messages."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.rows import STATUS_ERROR
from cardiacnets.errors import InputError, OutputError, OutputLockedError, OutputMismatchError


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

    from cardiacnets.measure import MEASUREMENT_KEYS

    measured = {k for k in MEASUREMENT_KEYS if k.endswith(("_ms", "_bpm", "_deg"))}
    numbers = {"sampling_rate_hz", "duration_s", "ood_score"} | measured

    def kind(c: str) -> Any:
        if c in {"reliable", "in_distribution", "paced"}:
            return pa.bool_()
        if c.startswith(("p_", "pheno_")) or c in numbers:
            return pa.float64()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in columns])
