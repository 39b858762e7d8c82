"""Bundle manifest: hashes written, verified, tampering and version skew detected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardiacnets.bundle import BUNDLE_FORMAT_VERSION, load_bundle, verify_bundle, write_manifest
from cardiacnets.errors import BundleIntegrityError, BundleVersionError


def _make_bundle(root: Path) -> Path:
    root.mkdir()
    (root / "screening.onnx").write_bytes(b"\x08\x07graph-bytes" * 10)
    (root / "cine").mkdir()
    (root / "cine" / "unet_sa.onnx").write_bytes(b"unet")
    write_manifest(
        root,
        {
            "name": "test",
            "models": {"screening": {"file": "screening.onnx"}, "unet_sa": {"file": "cine/unet_sa.onnx"}},
            "training_data": {"description": "synthetic cohort", "synthetic": True},
        },
    )
    return root


def test_round_trip_is_valid(tmp_path: Path) -> None:
    bundle = load_bundle(_make_bundle(tmp_path / "b"))
    assert bundle.is_synthetic
    assert bundle.manifest["bundle_format_version"] == BUNDLE_FORMAT_VERSION
    assert set(bundle.manifest["files"]) == {"screening.onnx", "cine/unet_sa.onnx"}
    assert bundle.path("screening.onnx").read_bytes().startswith(b"\x08\x07")


def test_one_flipped_byte_is_detected(tmp_path: Path) -> None:
    root = _make_bundle(tmp_path / "b")
    data = bytearray((root / "cine" / "unet_sa.onnx").read_bytes())
    data[0] ^= 0x01
    (root / "cine" / "unet_sa.onnx").write_bytes(bytes(data))
    assert any("sha256" in p for p in verify_bundle(root))
    with pytest.raises(BundleIntegrityError, match="unet_sa.onnx"):
        load_bundle(root)


def test_missing_and_unlisted_files_are_detected(tmp_path: Path) -> None:
    root = _make_bundle(tmp_path / "b")
    (root / "screening.onnx").unlink()
    (root / "extra.bin").write_bytes(b"x")
    problems = verify_bundle(root)
    assert any("screening.onnx" in p and "missing" in p for p in problems)
    assert any("extra.bin" in p and "not listed" in p for p in problems)
    with pytest.raises(BundleIntegrityError):
        load_bundle(root)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    root = _make_bundle(tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["bundle_format_version"] = BUNDLE_FORMAT_VERSION + 1
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVersionError, match="newer"):
        load_bundle(root)


def test_path_traversal_in_manifest_is_refused(tmp_path: Path) -> None:
    root = _make_bundle(tmp_path / "b")
    (tmp_path / "secret").write_text("x")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["../secret"] = {"sha256": "0" * 64}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert any("escapes" in p for p in verify_bundle(root))
