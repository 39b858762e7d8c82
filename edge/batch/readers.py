"""Reader processes for a batch run: :class:`_PreparedStream` reads, QCs and preprocesses the inputs in a pool of
reader processes (:func:`_reader_main`, each with its own widened result pipe and glibc ``mallopt`` settings) and
yields ``(item, PreparedEcg | None, error)`` in completion order, replacing a reader that dies mid-file and reading in
this process while the pool boots or when readers keep dying. :func:`_prepare_one` is the work done per input (looked
up at call time, so a diagnostic may replace it)."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import multiprocessing.connection
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.inputs import InputItem, _extract_member
from cardiacnets.errors import CardiacNetsError
from cardiacnets.preprocess import PreprocessConfig

logger = logging.getLogger(__name__)


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
