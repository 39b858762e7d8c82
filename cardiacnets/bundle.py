"""The model bundle: a directory of ONNX graphs plus a ``manifest.json`` that pins everything needed to use them.

Layout (docs/architecture.md, "The bundle")::

    bundle/
      manifest.json          # format version, models and tensor specs, PreprocessConfig, labels, phenotypes,
                             # thresholds, training-data description, tool versions, sha256 of every other file
      screening.onnx         # ECG + covariates -> probabilities, subtype probabilities, 82 phenotypes, embedding
      screening.int8.onnx    # optional precision variants
      cine/...               # optional diffusion parts

Identity and integrity: the manifest lists the sha256 of every other file and carries its own ``digest``, the sha256
of its canonical JSON without that field. That one digest therefore covers the decisions in the manifest (thresholds,
preprocessing, labels) and, through the file hashes, every graph and ``trust.json``; every screening output names it.
An edited manifest, a changed, missing or extra file all fail verification. A bundle may also carry
``signature.json``, an ed25519 signature of the digest (:mod:`cardiacnets.signing`); ``cnscreen --trusted-key``
accepts only bundles signed by a trusted key.

Loading verifies the manifest before anything else: a missing file, a hash or digest mismatch raises
:class:`~cardiacnets.errors.BundleIntegrityError`, a newer format version
:class:`~cardiacnets.errors.BundleVersionError`.
This module needs only the standard library and numpy: the screening edge imports it without torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cardiacnets.errors import BundleError, BundleIntegrityError, BundleVersionError
from cardiacnets.files import atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

#: 2: the manifest carries its own digest (format 1 bundles have none and are refused: their decisions are unprotected).
BUNDLE_FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
#: Files that live beside the manifest but are not listed in it (the signature signs the manifest's digest).
_UNLISTED = frozenset({MANIFEST_NAME, SIGNATURE_NAME})

#: The screening graph's contract, shared by the exporter and the edge runtime. Inputs: ``ecg`` (B, 12, 5000) float32
#: preprocessed to [-1, 1]; ``covariates`` (B, 3) float32 raw values (sex 0 F / 1 M, age in years, heart rate in bpm);
#: ``covariate_mask`` (B, 3) float32, 1 where the covariate is known. Outputs: ``disease_prob`` (B, 5) in the order of
#: ``cardiacnets.targets.DISEASES``, ``subtype_prob`` (B, 3) (RCM, DCM, HCM), ``phenotypes`` (B, 82) in original units,
#: ``embedding`` (B, D).
SCREENING_INPUTS = ("ecg", "covariates", "covariate_mask")
SCREENING_OUTPUTS = ("disease_prob", "subtype_prob", "phenotypes", "embedding")
#: Optional output: ``saliency`` (B, 5, 12, 50), each disease logit's exact share per (lead, 0.2-s patch).
SCREENING_OPTIONAL_OUTPUTS = ("saliency",)
#: The manifest key of a bundle's screening model for its reduced lead sets, when it keeps another for 12-lead ECGs
#: (``models.screening``); same inputs and outputs (``cnexport bundle-add-lead-sets``).
LEAD_SET_MODEL = "screening_lead_sets"

#: Manifest keys every bundle must have.
REQUIRED_KEYS = ("bundle_format_version", "name", "files", "models", "training_data", "digest")


def _bundle_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in _UNLISTED
    )


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace, ASCII) without its ``digest`` field."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_manifest(root: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` into ``root`` with the sha256 of every other file there; return what was written.

    ``manifest`` holds everything but ``files``, ``bundle_format_version`` and ``digest``, which are filled in here. The
    write is atomic (temp file + rename) so an interrupted export never leaves a half-written manifest. A
    ``signature.json`` left from before is removed: it signed another digest.
    """
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory does not exist")
    full = dict(manifest)
    full["bundle_format_version"] = BUNDLE_FORMAT_VERSION
    full["files"] = {
        rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size} for rel in _bundle_files(root)
    }
    full.pop("digest", None)
    full["digest"] = manifest_digest(full)
    missing = [k for k in REQUIRED_KEYS if k not in full]
    if missing:
        raise BundleError(f"manifest lacks required keys: {', '.join(missing)}")
    (root / SIGNATURE_NAME).unlink(missing_ok=True)
    atomic_write_text(root / MANIFEST_NAME, json.dumps(full, indent=2, sort_keys=True) + "\n")
    return full


def verify_bundle(root: str | os.PathLike[str], *, check_hashes: bool = True) -> list[str]:
    """Return the problems found in a bundle directory (empty list: valid). Never raises for a bad bundle."""
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        return [f"{root}: not a directory"]
    if not manifest_path.is_file():
        return [f"{root}: no {MANIFEST_NAME}"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{MANIFEST_NAME}: unreadable ({exc})"]
    if not isinstance(manifest, dict):
        return [f"{MANIFEST_NAME}: not a JSON object"]
    version = manifest.get("bundle_format_version")
    if isinstance(version, int) and version < 2:
        return [
            f"bundle format version {version} has no manifest digest, so its thresholds and settings are not"
            " integrity-protected; rebuild it with this toolkit (cnexport bundle) or re-fit it (cnexport trust)"
        ]
    problems = [f"{MANIFEST_NAME}: missing key {k!r}" for k in REQUIRED_KEYS if k not in manifest]
    if not isinstance(version, int):
        problems.append(f"{MANIFEST_NAME}: bundle_format_version is {version!r}, expected an integer")
    elif version > BUNDLE_FORMAT_VERSION:
        problems.append(
            f"bundle format version {version} is newer than this toolkit supports ({BUNDLE_FORMAT_VERSION}); upgrade"
            " cardiacnets"
        )
    if "digest" in manifest:
        try:
            actual = manifest_digest(manifest)
        except (TypeError, ValueError) as exc:
            actual = f"unhashable ({exc})"
        if manifest["digest"] != actual:
            problems.append(
                f"{MANIFEST_NAME}: edited after the bundle was built (its digest does not match its content)"
            )
    files = manifest.get("files")
    if not isinstance(files, dict):
        return problems + [f"{MANIFEST_NAME}: 'files' must map paths to hashes"]
    for rel, entry in sorted(files.items()):
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            problems.append(f"{rel}: path escapes the bundle directory")
            continue
        if not target.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if check_hashes and sha256_file(target) != expected:
            problems.append(f"{rel}: sha256 does not match the manifest (file changed or corrupted)")
    for rel in _bundle_files(root):
        if rel not in files:
            problems.append(f"{rel}: present but not listed in the manifest")
    for model, spec in (manifest.get("models") or {}).items():
        for rel in _model_files(spec):
            if rel not in files:
                problems.append(f"model {model!r}: file {rel} is not listed in the manifest")
    return problems


def _model_files(spec: Any) -> Iterable[str]:
    if not isinstance(spec, dict):
        return []
    out = [spec["file"]] if isinstance(spec.get("file"), str) else []
    variants = spec.get("variants") or {}
    out += [v["file"] for v in variants.values() if isinstance(v, dict) and isinstance(v.get("file"), str)]
    return out


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory and its manifest."""

    root: Path
    manifest: dict[str, Any]
    #: ``True`` when files are hashed on first use (:func:`load_bundle` with ``check_hashes="on_use"``).
    hash_on_use: bool = False
    _hashed: set[str] = field(default_factory=set, repr=False, compare=False)

    def path(self, rel: str) -> Path:
        """Absolute path of a file listed in the manifest (hashed against it first, once, when ``hash_on_use``)."""
        if rel not in self.manifest["files"]:
            raise BundleIntegrityError(f"{rel}: not part of bundle {self.root}")
        target = self.root / rel
        if self.hash_on_use and rel not in self._hashed:
            entry = self.manifest["files"][rel]
            if sha256_file(target) != (entry.get("sha256") if isinstance(entry, dict) else None):
                raise BundleIntegrityError(
                    f"bundle {self.root} failed verification: {rel}: sha256 does not match the manifest"
                    " (file changed or corrupted)"
                )
            self._hashed.add(rel)
        return target

    def model(self, name: str) -> dict[str, Any]:
        models = self.manifest["models"]
        if name not in models:
            raise BundleError(f"bundle {self.root} has no model {name!r} (has: {', '.join(sorted(models))})")
        return models[name]

    @property
    def digest(self) -> str:
        """The bundle's identity: sha256 of its manifest, which lists the sha256 of every file."""
        return str(self.manifest["digest"])

    @property
    def identity(self) -> dict[str, Any]:
        """What every output says about the model: name, version, digest, trained on synthetic data or not."""
        return {"name": self.manifest.get("name"), "version": self.manifest.get("version"), "digest": self.digest,
                "trained_on_synthetic": self.is_synthetic}  # fmt: skip

    @property
    def is_synthetic(self) -> bool:
        return bool(self.manifest["training_data"].get("synthetic", False))

    @property
    def preprocess(self) -> dict[str, Any]:
        return dict(self.manifest.get("preprocess") or {})

    @property
    def thresholds(self) -> dict[str, Any]:
        return dict(self.manifest.get("thresholds") or {})

    @property
    def lead_sets(self) -> list[str] | None:
        """The lead sets the screening model was trained for (``manifest["lead_sets"]``, names of
        :data:`cardiacnets.leadsets.LEAD_SETS`), or None for a bundle that declares none (12-lead only)."""
        from cardiacnets.leadsets import LEAD_SETS

        declared = self.manifest.get("lead_sets")
        if declared is None:
            return None
        if not isinstance(declared, list) or not declared or any(name not in LEAD_SETS for name in declared):
            raise BundleError(
                f"bundle {self.root} declares lead sets {declared!r}; expected a list of {', '.join(LEAD_SETS)}"
            )
        return list(declared)


def load_bundle(
    root: str | os.PathLike[str],
    *,
    check_hashes: bool | Literal["on_use"] = True,
    trusted_keys: Sequence[str | os.PathLike[str]] = (),
) -> Bundle:
    """Open and verify a bundle; raise a typed error naming the first problems found.

    ``check_hashes``: ``True`` hashes every file now; ``"on_use"`` checks the manifest and the file list now and hashes
    each file when :meth:`Bundle.path` first hands it out (what ``cnscreen`` does: a screening run never reads, and so
    never pays for hashing, the cine graphs); ``False`` skips hashing. ``trusted_keys``: public-key files (PEM); when
    given, the bundle must carry a valid signature by one of them (:func:`cardiacnets.signing.check_signature`).
    """
    root = Path(root)
    problems = verify_bundle(root, check_hashes=check_hashes is True)
    if problems:
        version = next((p for p in problems if p.startswith("bundle format version")), None)
        if version is not None:
            raise BundleVersionError(f"bundle {root}: {version}")
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        raise BundleIntegrityError(f"bundle {root} failed verification: {shown}")
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    if trusted_keys:
        from cardiacnets.signing import check_signature

        check_signature(root, manifest["digest"], trusted_keys)
    logger.debug("loaded bundle %s (%d files)", root, len(manifest["files"]))
    return Bundle(root=root, manifest=manifest, hash_on_use=check_hashes == "on_use")


def default_bundle_path() -> Path:
    """The bundle ``cnscreen`` uses without ``--bundle``: ``$CNS_BUNDLE`` or the one shipped in the package."""
    env = os.environ.get("CNS_BUNDLE")
    return Path(env) if env else Path(__file__).resolve().parent / "data" / "default-bundle"
