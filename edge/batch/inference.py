"""Batched inference for a batch run: :class:`_InferenceStreams` runs batches of prepared ECGs on one or more threads
sharing one onnxruntime session and hands the outputs back in submission order; with the defaults it sizes itself
from the usable cores (:func:`usable_cores`) and the execution provider (:data:`CPU_BATCH`, :data:`GPU_BATCH`)."""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np

# Default ECGs per inference call. On the CPU the screener runs each ECG of a call alone (so its result is the same as
# screening the file by itself), and a call of 2 only saves a hand-over; a GPU wants large batches.
CPU_BATCH, GPU_BATCH = 2, 32


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _InferenceStreams:
    """Batched inference on ``count`` threads sharing one onnxruntime session (``session.run`` is thread-safe and
    releases the GIL). Results come back in submission order, so rows are written in the order batches were formed;
    a batch still running when the process dies has written nothing and is screened again on resume."""

    def __init__(
        self, bundle: Any, device: str, count: int | None, batch_size: int | None, *, spin: bool,
        operating_point: str | None = None, allow_fallback: bool = False,
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
                                 operating_point=operating_point, allow_fallback=allow_fallback,
                                 max_batch=max(GPU_BATCH, self.batch_size))  # fmt: skip
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
