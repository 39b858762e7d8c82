"""Ed25519 signatures of model bundles: who built this bundle, and has anything changed since?

A signature signs the bundle's digest (:func:`cardiacnets.bundle.manifest_digest`), which covers the manifest and,
through its file hashes, every file. It lives in ``signature.json`` beside the manifest::

    {"schema": "cardiacnets.signature/1", "algorithm": "ed25519", "digest": "<hex>", "key_id": "<16 hex>",
     "public_key": "<base64 raw 32 bytes>", "signature": "<base64>"}

``key_id`` is the first 16 hex digits of the sha256 of the raw public key. Keys are PEM files (PKCS#8 private,
SubjectPublicKeyInfo public) made by :func:`generate_keypair` (``cnexport keygen``) or by OpenSSL
(``openssl genpkey -algorithm ed25519``). Uses the ``cryptography`` package; nothing here is needed to screen with an
unsigned bundle unless trusted keys are given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cardiacnets.bundle import MANIFEST_NAME, SIGNATURE_NAME, manifest_digest
from cardiacnets.errors import BundleIntegrityError, InputError
from cardiacnets.files import atomic_write_text

SIGNATURE_SCHEMA = "cardiacnets.signature/1"

__all__ = ["SIGNATURE_SCHEMA", "check_signature", "generate_keypair", "key_id", "sign_bundle"]


def _serialization() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - a base dependency
        raise InputError("bundle signatures need the 'cryptography' package: pip install cryptography") from None
    return serialization


def key_id(public_raw: bytes) -> str:
    """First 16 hex digits of the sha256 of a raw 32-byte public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw_public(public_key: Any) -> bytes:
    serialization = _serialization()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_private(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _serialization()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: not an ed25519 private key ({type(key).__name__})")
    return key


def _load_public(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    serialization = _serialization()
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path}: not an ed25519 public key ({type(key).__name__})")
    return key


def generate_keypair(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]) -> str:
    """Write a new ed25519 key pair as PEM files (the private one readable by its owner only); return its key id.
    Refuses to overwrite an existing file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _serialization()
    for path in (private_path, public_path):
        if Path(path).exists():
            raise InputError(f"{path} exists; choose another name (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public = key.public_key()
    Path(public_path).write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key_id(_raw_public(public))


def _manifest_digest(root: Path) -> str:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleIntegrityError(f"bundle {root}: unreadable {MANIFEST_NAME} ({exc})") from None
    digest = manifest.get("digest")
    if digest != manifest_digest(manifest):
        raise BundleIntegrityError(f"bundle {root}: {MANIFEST_NAME} was edited after the bundle was built")
    return str(digest)


def sign_bundle(root: str | os.PathLike[str], private_key: str | os.PathLike[str]) -> dict[str, Any]:
    """Sign a verified bundle's digest with ``private_key`` (PEM) into ``signature.json``; return what was written."""
    from cardiacnets.bundle import verify_bundle

    root = Path(root)
    problems = verify_bundle(root)
    if problems:
        raise BundleIntegrityError(f"bundle {root} failed verification, so it cannot be signed: {problems[0]}")
    digest = _manifest_digest(root)
    key = _load_private(private_key)
    public_raw = _raw_public(key.public_key())
    entry = {"schema": SIGNATURE_SCHEMA, "algorithm": "ed25519", "digest": digest, "key_id": key_id(public_raw),
             "public_key": base64.b64encode(public_raw).decode("ascii"),
             "signature": base64.b64encode(key.sign(bytes.fromhex(digest))).decode("ascii")}  # fmt: skip
    atomic_write_text(root / SIGNATURE_NAME, json.dumps(entry, indent=2) + "\n")
    return entry


def check_signature(root: str | os.PathLike[str], digest: str, trusted_keys: Sequence[str | os.PathLike[str]]) -> str:
    """Check that the bundle at ``root`` whose manifest digest is ``digest`` is signed by one of ``trusted_keys``
    (PEM public-key files); return the signing key's id. Raises :class:`BundleIntegrityError` saying what failed."""
    from cryptography.exceptions import InvalidSignature

    root = Path(root)
    trusted = {}
    for path in trusted_keys:
        public = _load_public(path)
        trusted[key_id(_raw_public(public))] = public
    path = root / SIGNATURE_NAME
    if not path.is_file():
        raise BundleIntegrityError(
            f"bundle {root} is not signed ({SIGNATURE_NAME} missing) but a trusted key is required"
        )
    try:
        entry = json.loads(path.read_text())
        signature = base64.b64decode(entry["signature"], validate=True)
        signer = str(entry["key_id"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BundleIntegrityError(f"bundle {root}: unreadable {SIGNATURE_NAME} ({exc})") from None
    if entry.get("algorithm") != "ed25519":
        raise BundleIntegrityError(f"bundle {root}: signature algorithm {entry.get('algorithm')!r} is not ed25519")
    if signer not in trusted:
        raise BundleIntegrityError(
            f"bundle {root} is signed by key {signer}, which is not among the trusted keys"
            f" ({', '.join(sorted(trusted)) or 'none'})"
        )
    if entry.get("digest") != digest:
        raise BundleIntegrityError(
            f"bundle {root}: the signature is for another version of the bundle (digest differs)"
        )
    try:
        trusted[signer].verify(signature, bytes.fromhex(digest))
    except InvalidSignature:
        raise BundleIntegrityError(
            f"bundle {root}: the signature by key {signer} is not valid for this bundle"
        ) from None
    return signer
