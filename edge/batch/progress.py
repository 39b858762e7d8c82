"""The progress bar of a batch run (rich, on stderr): what is being done, files done out of the total, files per
second and the time left; a no-op when progress is off."""

from __future__ import annotations

import time
from typing import Any


class _progress:
    def __init__(self, enabled: bool, total: int, label: str = "screening") -> None:
        self.enabled = enabled
        self.total = total
        self.label = label

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} files/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.total, rate=0.0)
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
