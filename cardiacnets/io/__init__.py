"""ECG file readers: ``read_ecg(path) -> EcgRecord`` for every supported clinical format.

The format is detected from the file's content (magic numbers, XML root element), never from its name. Each format
lives in its own module with a ``read(path, data) -> EcgRecord`` function; this module only detects and dispatches, and
guarantees that whatever goes wrong surfaces as a :class:`~cardiacnets.errors.CardiacNetsError`.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from cardiacnets.errors import (
    CardiacNetsError,
    CorruptFileError,
    EcgReadError,
    FileTooLargeError,
    UnsupportedFormatError,
)
from cardiacnets.io._detect import FORMATS, detect_format
from cardiacnets.record import LEADS, EcgRecord

__all__ = ["FORMATS", "LEADS", "EcgRecord", "MAX_FILE_BYTES", "detect_format", "max_file_bytes", "read_ecg"]

logger = logging.getLogger(__name__)

#: Default of the largest ECG file read (bytes). A 10-minute 12-lead 1 kHz int16 recording is ~14 MB; Holter files
#: are out of scope.
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024


def max_file_bytes() -> int:
    """The largest ECG file (or archive member) read, in bytes: ``CNS_MAX_FILE_BYTES`` now, else 64 MiB."""
    return int(os.environ.get("CNS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES))


#: The limit the readers apply, read from the environment once at import (tests patch it).
MAX_FILE_BYTES = max_file_bytes()


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise EcgReadError(f"{path}: no such file")
    if path.is_dir():
        raise UnsupportedFormatError(f"{path}: is a directory, not an ECG file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FileTooLargeError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit (CNS_MAX_FILE_BYTES)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EcgReadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise CorruptFileError(f"{path}: the file is empty")
    return data


def read_ecg(path: str | os.PathLike[str]) -> EcgRecord:
    """Read a 12-lead ECG file of any supported format.

    Returns an :class:`EcgRecord`: ``signal`` float32 ``(12, n)`` in mV, canonical lead order, at the file's own
    sampling rate ``fs``. Raises :class:`UnsupportedFormatError` when the content matches no format,
    :class:`CorruptFileError` when it is malformed, :class:`FileTooLargeError` over :data:`MAX_FILE_BYTES`.
    """
    path = Path(path)
    data = _read_bytes(path)
    fmt = detect_format(data, path)
    module = importlib.import_module(f"cardiacnets.io.{FORMATS[fmt]}")
    try:
        record = module.read(path, data)
    except CardiacNetsError:
        raise
    except MemoryError as exc:
        raise FileTooLargeError(f"{path}: declared sizes exceed available memory while reading {fmt}") from exc
    except RecursionError as exc:
        raise CorruptFileError(f"{path}: {fmt} structure is nested too deeply") from exc
    except Exception as exc:  # noqa: BLE001 - the contract is "typed error, never another exception"
        logger.debug("unexpected %s while reading %s", type(exc).__name__, fmt, exc_info=True)
        raise CorruptFileError(f"{path}: malformed {fmt} file ({type(exc).__name__}: {exc})") from exc
    record.meta.setdefault("format_id", fmt)
    return record
