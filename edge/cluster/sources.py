"""The inputs of a cluster run, listed once on the driver, and fetched where they are read.

A local directory tree, zip archive or list file goes through the built-in engine's
:func:`~cardiacnets.edge.batch.inputs.select_inputs`, so both engines give an input the same key. A glob
(``/archive/**/*.xml``) or a URI of any filesystem ``pyarrow.fs`` or fsspec reaches (``s3://bucket/ecg/``,
``gs://bucket/ecg/**/*.hea``) is listed here with the same rules: WFDB companion files (``.dat`` beside a ``.hea``)
belong to their record, hidden files are skipped, ``--include``/``--exclude`` patterns apply to the path below the
listed folder, and files that are plainly not ECGs are set aside. A remote input is copied (with its companions) to a
worker's scratch folder by :func:`fetch_remote` before the readers open it.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.inputs import (
    InputItem,
    InputSelection,
    _is_companion,
    select_entries,
    select_inputs,
)
from cardiacnets.errors import InputError
from cardiacnets.io import max_file_bytes

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")  # two letters at least: "C:/" is a Windows drive
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class ClusterInput(InputItem):
    """An input of a cluster run. For a remote input ``fs_uri`` is the listed folder's URI and ``path`` the file's
    path on that filesystem; ``companions`` are the WFDB files read with it (paths on the same filesystem)."""

    fs_uri: str | None = None
    companions: tuple[str, ...] = ()


def restore_uri(text: str) -> str:
    """A URI as the user typed it: typer hands SOURCE over as a ``Path``, which folds ``s3://b/k`` into ``s3:/b/k``
    (and ``file:///a`` into ``file:/a``). Local paths and URIs that still have their slashes pass unchanged."""
    match = _SCHEME.match(text)
    if match is None:
        return text
    scheme, rest = match.group(1), text[match.end() :]
    if rest.startswith("/"):  # already "scheme://..."
        return text
    return f"{scheme}:///{rest}" if scheme in ("file", "local") else f"{scheme}://{rest}"


def is_uri(text: str) -> bool:
    return _SCHEME.match(text) is not None


def has_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A shell glob over ``/``-separated paths as a regex: ``*`` and ``?`` stay within one folder, ``**/`` spans any
    number of folders (none included), ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def open_filesystem(uri: str) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path on it)`` for a URI: pyarrow's own filesystems (``file``, ``s3``, ``gs``, ``hdfs``,
    ``abfs``) first, else any fsspec protocol, wrapped as a pyarrow filesystem."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{uri}: no pyarrow or fsspec filesystem for this URI ({exc})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def list_inputs(
    source: str | os.PathLike[str], *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> InputSelection:
    """The inputs of ``source`` (see the module docstring), in a stable order."""
    text = restore_uri(str(source))
    if is_uri(text):
        return _list_remote(text, include, exclude)
    if has_glob(text) and not Path(text).exists():
        return _list_local_glob(text, include, exclude)
    return select_inputs(text, include=include, exclude=exclude)


def _split_glob(text: str) -> tuple[str, str]:
    """``(folder, pattern below it)``: the folder is everything before the component holding the first glob
    character; without one, the whole text is the folder and every file below it matches."""
    first = min((text.index(c) for c in _GLOB_CHARS if c in text), default=None)
    if first is None:
        return text.rstrip("/"), "**"
    cut = text.rfind("/", 0, first)
    return text[:cut], text[cut + 1 :]


def _visible(relative: str) -> bool:
    return not any(part.startswith(".") for part in relative.split("/"))


def _list_local_glob(text: str, include: Sequence[str], exclude: Sequence[str]) -> InputSelection:
    base, pattern = _split_glob(text)
    files = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
    siblings = {str(p) for folder in {os.path.dirname(f) for f in files} for p in Path(folder or ".").iterdir()}
    entries = []
    for path in files:
        relative = os.path.relpath(path, base or ".").replace(os.sep, "/")
        if _visible(relative) and not _is_companion(path, siblings):
            entries.append((relative, ClusterInput(key=path, path=path)))
    return select_entries(entries, include, exclude, _local_head)


def _local_head(item: ClusterInput) -> bytes | None:
    try:
        with open(item.path, "rb") as handle:
            return handle.read(4096)
    except OSError:
        return None  # the reader reports it


def _list_remote(uri: str, include: Sequence[str], exclude: Sequence[str]) -> InputSelection:
    import pyarrow.fs as pafs

    base_uri, pattern = _split_glob(uri)
    fs, base = open_filesystem(base_uri)
    base = base.rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except (OSError, ValueError) as exc:
        raise InputError(f"{base_uri}: cannot list ({exc})") from None
    files = sorted(info.path for info in infos if info.type == pafs.FileType.File)
    names = set(files)
    by_stem: dict[str, list[str]] = {}
    for path in files:
        by_stem.setdefault(posixpath.splitext(path)[0], []).append(path)
    matcher = glob_regex(pattern)
    entries = []
    for path in files:
        relative = path[len(base) :].lstrip("/")
        if not matcher.match(relative) or not _visible(relative) or _is_companion(path, names):
            continue
        companions = ()
        if path.lower().endswith(".hea"):
            companions = tuple(p for p in by_stem[posixpath.splitext(path)[0]] if p != path)
        key = f"{base_uri.rstrip('/')}/{relative}"
        entries.append((relative, ClusterInput(key=key, path=path, fs_uri=base_uri, companions=companions)))
    return select_entries(entries, include, exclude, lambda item: _remote_head(fs, item.path))


def _remote_head(fs: Any, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as handle:
            return handle.read(4096)
    except OSError:
        return None  # the reader reports it


def fetch_remote(item: ClusterInput, workdir: Path) -> Path:
    """Copy a remote input and its companion files into ``workdir`` (names kept: a WFDB header names its signal
    file); refuse files over the readers' size limit. Returns the local copy of the input."""
    fs, _ = open_filesystem(item.fs_uri or "")
    limit = max_file_bytes()
    for path in (item.path, *item.companions):
        size = fs.get_file_info(path).size
        if size is not None and size > limit:
            raise InputError(f"{item.key}: file of {size} bytes is over the {limit}-byte limit")
        with fs.open_input_stream(path) as src, open(workdir / posixpath.basename(path), "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    return workdir / posixpath.basename(item.path)
