"""Shared fixtures and the tier gates (slow, gpu)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _conformance_dir() -> Path:
    env = os.environ.get("CNS_CONFORMANCE_DIR")
    return Path(env) if env else REPO.parent / "shared" / "ecg-conformance"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The ECG conformance corpus. Missing corpus: skip locally, fail under CI (CI=true)."""
    path = _conformance_dir()
    if not (path / "expected.json").is_file():
        message = f"ECG conformance corpus not found at {path} (set CNS_CONFORMANCE_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def conformance_expected(conformance_dir: Path) -> dict:
    return json.loads((conformance_dir / "expected.json").read_text())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("CNS_SLOW") == "1"
    run_gpu = os.environ.get("CNS_GPU") == "1"
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow tier: set CNS_SLOW=1 to run"))
        if "gpu" in item.keywords and not run_gpu:
            item.add_marker(pytest.mark.skip(reason="GPU tier: set CNS_GPU=1 on a machine with a CUDA GPU"))
