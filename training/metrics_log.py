"""A run's metric logs: ``metrics.csv`` (long format: step, split, name, value) and TensorBoard, from rank 0 only.

This module owns how per-step values are recorded and how a resumed run truncates them: rows (and TensorBoard events)
after the resumed checkpoint's step are dropped, so a killed-and-resumed run writes the same log as an uninterrupted
one.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["MetricsLog"]


class MetricsLog:
    """``metrics.csv`` (long format) + TensorBoard, written by rank 0 only (``enabled``)."""

    FIELDS = ("step", "split", "name", "value")

    def __init__(self, run_dir: Path, resume_step: int | None, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        path = run_dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.fh = path.open("a", newline="")
        self.csv = csv.DictWriter(self.fh, fieldnames=self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        except ImportError:  # tensorboard is an optional extra
            logger.warning("tensorboard is not installed; writing metrics.csv only")

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.csv.writerow({"step": step, "split": split, "name": name, "value": repr(float(value))})
            if self.writer is not None:
                self.writer.add_scalar(f"{split}/{name}", float(value), step)
        self.fh.flush()

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.writer is not None:
                self.writer.close()
