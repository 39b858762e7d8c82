"""Typed errors. Every failure a user can cause is a :class:`CardiacNetsError` subclass.

The CLIs catch :class:`CardiacNetsError` and print its message as one line (exit 1); anything else is a bug.
"""

from __future__ import annotations


class CardiacNetsError(Exception):
    """Base of every error this toolkit raises on purpose."""


class InputError(CardiacNetsError, ValueError):
    """A user-supplied value (argument, option, array) is invalid."""


class EcgReadError(CardiacNetsError):
    """Base for errors while reading an ECG file."""


class UnsupportedFormatError(EcgReadError):
    """The file's content matches no supported ECG format."""


class CorruptFileError(EcgReadError):
    """The file claims a supported format but its content is malformed, truncated or inconsistent."""


class UnsafeFileError(CorruptFileError):
    """The file contains constructs refused for safety (XML entities, DTDs, external references)."""


class FileTooLargeError(EcgReadError):
    """The file, or a size it declares, exceeds the reader's limit."""


class QcError(CardiacNetsError):
    """Signal quality control could not be run on the record."""


class BundleError(CardiacNetsError):
    """A model bundle cannot be used."""


class BundleIntegrityError(BundleError):
    """A bundle file is missing or its sha256 does not match the manifest."""


class BundleVersionError(BundleError):
    """The bundle's format version is newer than this toolkit understands."""


class ConfigError(CardiacNetsError):
    """A configuration file or override is invalid (unknown key, wrong type)."""


class DatasetError(CardiacNetsError):
    """A dataset on disk is missing, malformed or inconsistent with its manifest."""


class CheckpointError(CardiacNetsError):
    """A checkpoint or run directory cannot be loaded."""


class ExportError(CardiacNetsError):
    """An export failed its own checks (onnx checker, parity) or a needed tool or device (TensorRT, GPU) is missing."""


class ProviderError(CardiacNetsError):
    """An execution provider (CUDA, TensorRT) was requested but is missing, or onnxruntime did not use it."""


class OutputError(CardiacNetsError):
    """An output cannot be written (missing or read-only folder, disk full) or is in use by another run."""


class OutputLockedError(OutputError):
    """Another run holds the output's lock."""


class OutputMismatchError(OutputError):
    """An existing output was written by another model bundle, preprocessing version or column set."""
