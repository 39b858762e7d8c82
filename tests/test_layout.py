"""Package layout: the dependency rule of docs/architecture.md and that both install modes ship every layer."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"training": "cardiacnets.training", "export": "cardiacnets.export", "edge": "cardiacnets.edge"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(folder: str, forbidden: list[str]) -> list[str]:
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(REPO)} imports {name}")
    return found


def test_library_never_imports_training_export_or_edge() -> None:
    assert _violations("cardiacnets", list(LAYERS.values())) == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_do_not_import_each_other(layer: str) -> None:
    # edge may reach export only by running the cnexport command, never by import
    others = [pkg for name, pkg in LAYERS.items() if name != layer]
    assert _violations(layer, others) == []


def test_wheel_ships_every_layer_and_entry_point(tmp_path: Path) -> None:
    """A non-editable install gets the same modules as the editable one: build the wheel and look inside."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("cardiacnets-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "cardiacnets/io/__init__.py",
        "cardiacnets/training/cli.py",
        "cardiacnets/export/cli.py",
        "cardiacnets/edge/cli.py",
        "cardiacnets/bundle.py",
    ):
        assert module in names, module
    for top in ("cardiacnets", *LAYERS):
        for init in sorted((REPO / top).rglob("__init__.py")):
            rel = init.relative_to(REPO).as_posix()
            shipped = rel if top == "cardiacnets" else f"cardiacnets/{rel}"
            assert shipped in names, f"{rel} is not packaged: add its package to pyproject.toml [tool.setuptools]"
    # the screening-only (non-editable) install finds the default bundle without flags
    assert "cardiacnets/data/default-bundle/manifest.json" in names
    assert "cardiacnets/data/default-bundle/screening.onnx" in names
    # ... and `cntrain finetune --init default` its aligned ECG encoder
    for name in ("config.json", "model.safetensors", "manifest.json"):
        assert f"cardiacnets/data/aligned-ecg-encoder/{name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in (
        "cnscreen = cardiacnets.edge.cli:main",
        "cntrain = cardiacnets.training.cli:main",
        "cnexport = cardiacnets.export.cli:main",
    ):
        assert script in text
