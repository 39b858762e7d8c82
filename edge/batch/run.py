"""The batch run itself: :func:`run_batch` loads the bundle, opens the output, starts the readers and the inference
streams, and drives them (:class:`_BatchLoop`) until every input has its row; :class:`BatchSummary` counts what it
did and :func:`summary_dict` is that count as the CLI prints it."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.edge.batch.inference import _InferenceStreams, usable_cores
from cardiacnets.edge.batch.inputs import InputItem, select_inputs
from cardiacnets.edge.batch.progress import _progress
from cardiacnets.edge.batch.readers import _iterate_prepared, _PreparedStream
from cardiacnets.edge.batch.rows import STATUS_OK, STATUS_QC, _model_columns, error_row, output_columns, result_row
from cardiacnets.edge.batch.store import RowStore
from cardiacnets.preprocess import PreprocessConfig


@dataclass
class BatchSummary:
    total: int
    skipped_done: int
    ok: int = 0
    qc_failed: int = 0
    error: int = 0
    errors_before: int = 0  # error rows written by earlier (interrupted) runs of the same job
    seconds: float = 0.0
    excluded: int = 0  # left out by --include/--exclude
    not_ecg: dict[str, int] = field(default_factory=dict)  # files set aside as plainly not ECGs, by kind

    @property
    def processed(self) -> int:
        return self.ok + self.qc_failed + self.error


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
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    allow_fallback: bool = False,
    fhir_transaction: bool | None = None,
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
    second run on the same output while one is running. ``include``/``exclude``: shell patterns selecting the inputs
    (:func:`~cardiacnets.edge.batch.inputs.select_inputs`); files that are plainly not ECGs (images, documents, text)
    are counted in the summary, not screened and not rows. Every row names the execution provider the screening
    graph ran on; ``allow_fallback`` lets a run whose requested GPU provider failed to load go on with a warning.
    ``fhir_transaction`` not None: ``out`` is FHIR NDJSON, one Bundle per input (transaction Bundles when True;
    :mod:`cardiacnets.edge.hospital.fhir_store`) instead of rows."""
    from cardiacnets.bundle import default_bundle_path, load_bundle

    started = time.perf_counter()
    out = Path(out)
    selection = select_inputs(source, include=include, exclude=exclude)
    items = selection.items
    loaded = load_bundle(bundle or default_bundle_path(), check_hashes="on_use", trusted_keys=trusted_keys)
    config = (PreprocessConfig.from_dict(loaded.preprocess) if loaded.preprocess else PreprocessConfig()).to_dict()
    job = {**_model_columns(loaded.identity), "preprocess_version": config.get("version")}
    make_row: Callable[[dict[str, Any], bool], dict[str, Any]] = result_row
    if fhir_transaction is not None:
        from cardiacnets.edge.hospital.fhir_store import FhirStore, fhir_row

        store: RowStore = FhirStore(out, job, include_phi)
        make_row = functools.partial(fhir_row, transaction=fhir_transaction)
    else:
        store = RowStore(out, output_columns(include_phi), job)
    todo = [item for item in items if item.key not in store.done]
    summary = BatchSummary(total=len(items), skipped_done=len(items) - len(todo), errors_before=store.errors_before,
                           excluded=selection.excluded, not_ecg=dict(selection.not_ecg))  # fmt: skip
    workers = max(1, workers if workers is not None else usable_cores())
    complete = False
    prepared_stream: _PreparedStream | None = None
    inference: _InferenceStreams | None = None
    try:
        # The workers start (and import the readers) while this process builds the inference session.
        prepared_stream = _iterate_prepared(todo, config, workers)
        inference = _InferenceStreams(loaded, device, streams, batch_size, spin=workers <= 1,
                                      operating_point=operating_point, allow_fallback=allow_fallback)  # fmt: skip
        job["execution_provider"] = inference.screener.execution_provider  # the run's provider, error rows included
        with _progress(progress, len(todo)) as advance:
            loop = _BatchLoop(prepared_stream, inference, store, summary, job, include_phi, advance)
            loop.make_row = make_row
            loop.run()
        complete = True
    finally:
        if prepared_stream is not None:
            prepared_stream.close()  # stops the worker pool at once if inference or output failed
        if inference is not None:
            inference.close()
        store.close(complete)
    summary.seconds = time.perf_counter() - started
    return summary


class _BatchLoop:
    """The main loop of :func:`run_batch`: takes prepared ECGs from the readers as they come, forms batches for the
    inference streams, and writes each input's row (results in the order batches were formed, error rows as soon as
    the readers report them), counting them in ``summary``."""

    def __init__(
        self,
        prepared_stream: _PreparedStream,
        inference: _InferenceStreams,
        store: RowStore,
        summary: BatchSummary,
        job: dict[str, Any],
        include_phi: bool,
        advance: Callable[[int], None],
    ) -> None:
        """``job``: the run's model and preprocessing columns; ``advance(n)``: n more inputs done (progress)."""
        self.prepared_stream = prepared_stream
        self.inference = inference
        self.store = store
        self.summary = summary
        self.job = job
        self.include_phi = include_phi
        self.advance = advance
        self.make_row: Callable[[dict[str, Any], bool], dict[str, Any]] = result_row  # FHIR output: fhir_row
        self.pending: list[Any] = []  # prepared ECGs not yet submitted
        self.exhausted = False  # the readers have handed over every input

    def run(self) -> None:
        while True:
            self._write_finished(self.inference.completed())
            entry = self._next_entry()
            if entry is not None:
                self._take(*entry)
                continue
            # Nothing ready from the readers: put what is pending on a free stream, else wait a moment for one.
            if self.pending and self.inference.free:
                self._submit_pending()
            elif self.inference.busy:
                timeout = None if self.exhausted and not self.pending else 0.005
                self._write_finished(self.inference.wait(timeout=timeout))
            elif self.exhausted:
                break

    def _next_entry(self) -> tuple[InputItem, Any, str | None] | None:
        """The next reader result, or None when none is ready (or none is left)."""
        if self.exhausted:
            return None
        try:
            # Block on the readers only when nothing else can happen; otherwise take what is ready.
            return self.prepared_stream.next_ready(wait=not self.pending and not self.inference.busy)
        except StopIteration:
            self.exhausted = True
            return None

    def _take(self, item: InputItem, prepared: Any, reason: str | None) -> None:
        """Write the error row of an input the readers could not prepare, or queue its ECG (submitting a full batch)."""
        if prepared is None:
            self.store.write([error_row(item.key, reason or "unknown error", self.job)])
            self.summary.error += 1
            self.advance(1)
            return
        prepared.signal_mv = None
        self.pending.append(prepared)
        if len(self.pending) >= self.inference.batch_size:
            self._submit_pending()

    def _submit_pending(self) -> None:
        self._write_finished(self.inference.submit(self.pending))
        self.pending = []

    def _write_finished(self, finished: list[tuple[list[Any], list[dict[str, np.ndarray]]]]) -> None:
        """Write the rows of finished batches, ``(prepared ECGs, their model outputs)``, oldest first."""
        for batch, outputs in finished:
            rows = []
            for prepared, output in zip(batch, outputs, strict=True):
                result = self.inference.screener.result(prepared, output, include_phi=self.include_phi)
                row = self.make_row(result, self.include_phi)
                self.summary.ok += row["status"] == STATUS_OK
                self.summary.qc_failed += row["status"] == STATUS_QC
                rows.append(row)
            self.store.write(rows)
            self.advance(len(rows))


def summary_dict(summary: BatchSummary) -> dict[str, Any]:
    rate = summary.processed / summary.seconds if summary.seconds else float("nan")
    return {
        "inputs": summary.total,
        "already_done": summary.skipped_done,
        "ok": summary.ok,
        "qc_failed": summary.qc_failed,
        "error": summary.error,
        "errors_in_output": summary.error + summary.errors_before,
        "excluded": summary.excluded,
        "not_ecg": dict(sorted(summary.not_ecg.items())),
        "seconds": round(summary.seconds, 2),
        "files_per_second": round(rate, 2) if np.isfinite(rate) else None,
    }
