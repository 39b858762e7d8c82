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


def test_an_edited_manifest_fails_verification_and_is_refused_in_one_line(tmp_path: Path) -> None:
    """Thresholds are decisions: a copy whose manifest was edited (thresholds all 0.99) must not verify."""
    import subprocess
    import sys

    from tests.edge_fixtures import make_tiny_bundle

    root = make_tiny_bundle(tmp_path / "b")
    assert verify_bundle(root) == []
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["thresholds"].values():
        entry["youden"] = entry["high_specificity"] = 0.99
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert any("edited" in p for p in verify_bundle(root))
    with pytest.raises(BundleIntegrityError, match="edited"):
        load_bundle(root)
    proc = subprocess.run(
        [sys.executable, "-c", "from cardiacnets.export.cli import main; main()", "verify", str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 5 and "edited after the bundle was built" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_digest_covers_the_manifest_and_changes_with_any_file(tmp_path: Path) -> None:
    first = load_bundle(_make_bundle(tmp_path / "a")).digest
    root = _make_bundle(tmp_path / "b")
    assert load_bundle(root).digest == first  # same content, same identity
    (root / "cine" / "unet_sa.onnx").write_bytes(b"other unet")
    manifest = json.loads((root / "manifest.json").read_text())
    write_manifest(root, {k: v for k, v in manifest.items() if k not in ("files", "digest")})
    assert load_bundle(root).digest != first


def test_format_1_bundles_are_refused_with_the_fix(tmp_path: Path) -> None:
    root = _make_bundle(tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["bundle_format_version"] = 1
    del manifest["digest"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVersionError, match="no manifest digest.*cnexport"):
        load_bundle(root)


def test_signatures_accept_the_trusted_key_and_say_what_failed_otherwise(tmp_path: Path) -> None:
    from cardiacnets.signing import generate_keypair, sign_bundle

    root = _make_bundle(tmp_path / "b")
    team = generate_keypair(tmp_path / "team.key", tmp_path / "team.pub")
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    assert (tmp_path / "team.key").stat().st_mode & 0o077 == 0  # the private key is its owner's only
    with pytest.raises(BundleIntegrityError, match="not signed"):
        load_bundle(root, trusted_keys=[tmp_path / "team.pub"])
    entry = sign_bundle(root, tmp_path / "team.key")
    assert entry["key_id"] == team and verify_bundle(root) == []  # signature.json is not an unlisted file
    assert load_bundle(root, trusted_keys=[tmp_path / "team.pub"]).digest == entry["digest"]
    with pytest.raises(BundleIntegrityError, match=f"signed by key {team}, which is not among the trusted keys"):
        load_bundle(root, trusted_keys=[tmp_path / "other.pub"])
    forged = json.loads((root / "signature.json").read_text())
    other = json.loads(json.dumps(forged))
    other["signature"] = forged["signature"][:-4] + ("AAAA" if not forged["signature"].endswith("AAAA") else "BBBB")
    (root / "signature.json").write_text(json.dumps(other))
    with pytest.raises(BundleIntegrityError, match="not valid"):
        load_bundle(root, trusted_keys=[tmp_path / "team.pub"])
    # Re-writing the manifest (a rebuilt bundle) drops the old signature: it signed another digest.
    (root / "signature.json").write_text(json.dumps(forged))
    manifest = json.loads((root / "manifest.json").read_text())
    write_manifest(root, {k: v for k, v in manifest.items() if k not in ("files", "digest")} | {"version": "2"})
    assert not (root / "signature.json").exists()
    with pytest.raises(BundleIntegrityError, match="not signed"):
        load_bundle(root, trusted_keys=[tmp_path / "team.pub"])
