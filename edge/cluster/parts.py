"""The output of a cluster run: a folder of Parquet part files and a manifest of the keys each part holds.

Only the driver writes here, one part at a time: the rows go to a hidden temporary file (written and fsynced), which
is renamed to ``part-<hash of its keys>.parquet``; then one line naming the part and its keys is appended to
``_manifest.jsonl`` and fsynced. The manifest is the record of what is finished: a resumed run skips its keys without
reading any part. A kill can leave three things behind, each repaired when the folder is opened again:

- a temporary file (killed before the rename): deleted;
- a torn last manifest line (killed mid-append): cut off;
- a part the manifest does not list (killed between the rename and the append, or a compaction stopped part way):
  adopted (its keys appended to the manifest) when none of its keys is finished yet, else deleted. Parts are taken in
  name order, so the outcome does not depend on timing.

:meth:`PartStore.compact` rewrites the listed parts as ``rows-<hash>.parquet`` files with one row per key (the first
written), swaps in a manifest listing only them (temporary file and rename), then deletes the old parts. Files whose
names start with ``_`` or ``.`` (manifest, job description, lock, temporaries) are ignored by Parquet dataset readers,
so ``pyarrow.parquet.read_table(DIR)`` reads the rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.rows import STATUS_ERROR
from cardiacnets.edge.batch.store import _arrow_schema, _lock_exclusive
from cardiacnets.errors import InputError, OutputError, OutputLockedError, OutputMismatchError

MANIFEST, JOB, LOCK = "_manifest.jsonl", "_job.json", ".lock"
PART_PREFIX, COMPACT_PREFIX, TEMP_PREFIX = "part-", "rows-", ".tmp-"
OUTPUT_FORMAT = "cardiacnets.batch-parts/1"
#: Rows per file written by compaction.
COMPACT_ROWS = 1_000_000


def keys_name(prefix: str, keys: Iterable[str]) -> str:
    """The file name of a part holding ``keys``: the same keys always give the same name."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:24]
    return f"{prefix}{digest}.parquet"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_line(name: str, keys: list[str], errors: int) -> str:
    """One manifest line: a part file, the keys of its rows, how many of them are error rows."""
    return json.dumps({"part": name, "keys": keys, "errors": errors}, ensure_ascii=False) + "\n"


def _first_unseen(keys: list[str], seen: set[str], also: Collection[str] = ()) -> list[bool]:
    """Per key: True for its first occurrence when it is in neither ``seen`` nor ``also`` (``seen`` grows)."""
    keep = []
    for key in keys:
        keep.append(key not in seen and key not in also)
        seen.add(key)
    return keep


class PartStore:
    """A locked, resumable Parquet dataset folder. ``done`` holds the finished keys, ``errors_before`` the error rows
    finished before this run; rows come in as Arrow tables of :func:`cardiacnets.edge.batch.store._arrow_schema`."""

    def __init__(self, out: Path, columns: list[str], job: dict[str, Any]) -> None:
        self.out = out
        self.columns = columns
        self.schema = _arrow_schema(columns)
        self.job = job  # bundle_name, bundle_version, bundle_digest, preprocess_version of this run
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: with --engine ray the output is a folder (a Parquet dataset); choose a new name")
        if not out.parent.is_dir():
            raise OutputError(f"output folder {out.parent} does not exist; create it first")
        self.parts: dict[str, list[str]] = {}  # part file -> its keys, in manifest order
        self.errors: dict[str, int] = {}  # part file -> its error rows
        self.done: set[str] = set()
        self.rows_written = 0
        self.lock_handle: Any = None
        self.manifest_handle: Any = None
        try:
            out.mkdir(exist_ok=True)
            self._lock()
            self._check_job()
            self._load_manifest()
            self._repair()
        except OSError as exc:
            self.close()
            raise self._fail_write(exc) from None
        except BaseException:
            self.close()
            raise
        self.errors_before = sum(self.errors.values())

    def _fail_write(self, exc: OSError) -> OutputError:
        what = os.strerror(exc.errno) if exc.errno else str(exc)
        kept = f"; the {self.rows_written} rows written by this run are kept" if self.rows_written else ""
        return OutputError(f"cannot write {self.out}: {what}{kept}; fix it and rerun the same command to resume")

    def _lock(self) -> None:
        self.lock_handle = (self.out / LOCK).open("a+")
        try:
            _lock_exclusive(self.lock_handle)
        except BlockingIOError:
            self.lock_handle.close()
            self.lock_handle = None
            raise OutputLockedError(
                f"{self.out} is being written by another cnscreen batch run; wait for it to finish or use another --out"
            ) from None

    def _check_job(self) -> None:
        """Write the job description into a new folder; refuse to resume one written by another bundle,
        preprocessing version or column set."""
        path = self.out / JOB
        mine = {"format": OUTPUT_FORMAT, **self.job, "columns": self.columns}
        if not path.exists():
            if any(p.suffix == ".parquet" or p.name == MANIFEST for p in self.out.iterdir()):
                raise OutputMismatchError(f"{self.out} holds Parquet files of another writer; use another --out")
            from cardiacnets.files import atomic_write_text

            atomic_write_text(path, json.dumps(mine, indent=1) + "\n")
            return
        theirs = json.loads(path.read_text())
        for key, what in (("bundle_digest", "model bundle"), ("preprocess_version", "preprocessing version")):
            if theirs.get(key) != self.job[key]:
                raise OutputMismatchError(
                    f"{self.out} holds rows from another {what} ({key} {str(theirs.get(key))[:16]}; this run:"
                    f" {str(self.job[key])[:16]}); screen into another --out, or resume with the same bundle"
                )
        if theirs.get("columns") != self.columns or theirs.get("format") != OUTPUT_FORMAT:
            raise OutputMismatchError(
                f"{self.out}: the existing output has other columns (another toolkit version, or --include-phi"
                " differs); use another --out or the same options"
            )

    def _load_manifest(self) -> None:
        """Read the manifest, cutting a torn last line; open it for appending."""
        path = self.out / MANIFEST
        self.manifest_handle = path.open("ab")
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            self.manifest_handle.truncate(cut)
        for line in data[:cut].decode("utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                self.parts[entry["part"]] = entry["keys"]
                self.errors[entry["part"]] = entry["errors"]

    def _repair(self) -> None:
        """Delete temporaries, forget listed parts that are gone, adopt or delete unlisted parts (name order)."""
        for gone in [name for name in self.parts if not (self.out / name).is_file()]:
            del self.parts[gone], self.errors[gone]  # their inputs are screened again
        self.done = {key for keys in self.parts.values() for key in keys}
        for path in sorted(self.out.iterdir()):
            if path.name.startswith(TEMP_PREFIX):
                path.unlink()
            elif path.suffix == ".parquet" and path.name not in self.parts:
                self._adopt_or_delete(path)

    def _adopt_or_delete(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["path", "status"])
            whole = pq.read_schema(path).names == self.columns
        except (OSError, pa.ArrowException):
            table, whole = None, False
        keys = [] if table is None else table.column("path").to_pylist()
        if whole and keys and len(set(keys)) == len(keys) and self.done.isdisjoint(keys):
            errors = sum(status == STATUS_ERROR for status in table.column("status").to_pylist())
            self._append_manifest(path.name, keys, errors)
        else:
            path.unlink()

    def _append_manifest(self, name: str, keys: list[str], errors: int) -> None:
        self.manifest_handle.write(_manifest_line(name, keys, errors).encode("utf-8"))
        self.manifest_handle.flush()
        os.fsync(self.manifest_handle.fileno())
        self.parts[name] = keys
        self.errors[name] = errors
        self.done.update(keys)

    def _write_file(self, table: Any, name: str) -> None:
        """Write ``table`` as ``name`` atomically: a hidden temporary file, fsync, rename, fsync of the folder."""
        import pyarrow.parquet as pq

        tmp = self.out / f"{TEMP_PREFIX}{os.getpid()}-{name}"
        try:
            with pq.ParquetWriter(tmp, self.schema) as writer:
                writer.write_table(table)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.out / name)
            _fsync_dir(self.out)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def write(self, table: Any) -> Any:
        """Write the rows of ``table`` whose keys are not finished (the first of each key) as one part; returns the
        rows written (a table, empty when every key was finished). Raises :class:`~cardiacnets.errors.OutputError`
        when the disk refuses."""
        import pyarrow as pa

        if self.manifest_handle is None:
            raise InputError(f"{self.out} is closed")
        keys = table.column("path").to_pylist()
        keep = _first_unseen(keys, set(), also=self.done)
        table = table.filter(pa.array(keep, pa.bool_())).cast(self.schema)
        if not table.num_rows:
            return table
        kept = [key for key, k in zip(keys, keep, strict=True) if k]
        errors = sum(status == STATUS_ERROR for status in table.column("status").to_pylist())
        name = keys_name(PART_PREFIX, kept)
        try:
            self._write_file(table, name)
            self._append_manifest(name, kept, errors)
        except OSError as exc:
            raise self._fail_write(exc) from None
        self.rows_written += len(kept)
        return table

    def compact(self, rows_per_file: int = COMPACT_ROWS) -> None:
        """One row per key in as few files as ``rows_per_file`` allows (see the module docstring)."""
        if all(name.startswith(COMPACT_PREFIX) for name in self.parts) and len(self.parts) <= 1:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        seen: set[str] = set()
        pending: list[Any] = []
        written: list[tuple[str, list[str], int]] = []

        def flush() -> None:
            table = pa.concat_tables(pending)
            keys = table.column("path").to_pylist()
            errors = sum(s == STATUS_ERROR for s in table.column("status").to_pylist())
            name = keys_name(COMPACT_PREFIX, keys)
            self._write_file(table, name)
            written.append((name, keys, errors))
            pending.clear()

        try:
            for name in list(self.parts):
                table = pq.read_table(self.out / name, schema=self.schema)
                keys = table.column("path").to_pylist()
                keep = _first_unseen(keys, seen)
                pending.append(table.filter(pa.array(keep, pa.bool_())))
                if sum(t.num_rows for t in pending) >= rows_per_file:
                    flush()
            if pending:
                flush()
            self._swap_manifest(written)
        except OSError as exc:
            raise self._fail_write(exc) from None

    def _swap_manifest(self, written: list[tuple[str, list[str], int]]) -> None:
        """Make ``written`` the whole manifest (temporary file, rename), then delete the parts it replaced."""
        from cardiacnets.files import atomic_write_text

        old = set(self.parts)
        text = "".join(_manifest_line(n, k, e) for n, k, e in written)
        self.manifest_handle.close()
        atomic_write_text(self.out / MANIFEST, text)
        _fsync_dir(self.out)
        self.manifest_handle = (self.out / MANIFEST).open("ab")
        self.parts = {n: k for n, k, _ in written}
        self.errors = {n: e for n, _, e in written}
        for name in sorted(old - set(self.parts)):
            (self.out / name).unlink(missing_ok=True)

    def close(self) -> None:
        for handle in (self.manifest_handle, self.lock_handle):
            if handle is not None:
                handle.close()
        self.manifest_handle = self.lock_handle = None
