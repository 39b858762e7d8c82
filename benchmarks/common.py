"""What the benchmark scripts share: a description of the machine a run was measured on, and the opening lines of
their Markdown reports (command, date, machine), so every result file says where its numbers come from."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """CPU, visible cores, OS, Python and numpy versions of this machine."""
    return {
        "cpu": cpu_name(),
        "cpus_visible": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def report_header(title: str, result: dict[str, Any]) -> list[str]:
    """The first lines of a benchmark report: ``# title``, then the command, date and machine of ``result`` (which
    holds ``command``, ``date`` and ``machine`` from :func:`machine_info`)."""
    machine = result["machine"]
    return [
        f"# {title}",
        "",
        f"- command: `{result['command'].strip()}`",
        f"- date: {result['date']}",
        f"- machine: {machine['cpu']}, {machine['cpus_visible']} CPUs visible (shared with other jobs),"
        f" {machine.get('os', '')}, Python {machine.get('python', '')}",
    ]
