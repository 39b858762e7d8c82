"""The inputs of a batch run: which files of a directory tree, zip archive or list file are ECGs to screen
(:func:`enumerate_inputs`, in a stable order, WFDB companion files folded into their record; :func:`select_inputs`
adds the user's ``--include``/``--exclude`` patterns and sets aside files that are plainly not ECGs), and the
extraction of a zip member with its companions to a working folder for reading (:func:`_extract_member`, with a size
limit against zip bombs)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiacnets.errors import InputError, UnsupportedFormatError
from cardiacnets.io import max_file_bytes

WFDB_COMPANIONS = {".dat", ".mat", ".xyz", ".atr", ".qrs", ".ecg"}


@dataclass(frozen=True)
class InputItem:
    """One input file: ``key`` is what the output's ``path`` column holds."""

    key: str
    path: str
    member: str | None = None  # member name when ``path`` is a zip archive


# LUDB-style per-lead annotation files that sit beside a WFDB header.
_LEAD_ANNOTATIONS = {".i", ".ii", ".iii", ".avr", ".avl", ".avf", ".v1", ".v2", ".v3", ".v4", ".v5", ".v6"}


def _is_companion(name: str, names: set[str]) -> bool:
    """True for the signal and annotation files of a WFDB record whose ``.hea`` is also present."""
    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    return ext in WFDB_COMPANIONS | _LEAD_ANNOTATIONS and f"{stem}.hea" in names


def enumerate_inputs(source: str | os.PathLike[str]) -> list[InputItem]:
    """The input files of ``source`` in a stable order. WFDB companion files (``.dat`` beside a ``.hea``) are part of
    their record, not inputs of their own. Hidden files are skipped."""
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
        )
        names = {str(p) for p in files}
        return [InputItem(key=str(p), path=str(p)) for p in files if not _is_companion(str(p), names)]
    if not source.is_file():
        raise InputError(f"{source}: no such file or directory")
    if zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                members = sorted(i.filename for i in archive.infolist() if not i.is_dir())
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{source}: unreadable zip archive ({exc})") from exc
        visible = [m for m in members if not any(part.startswith(".") for part in m.split("/"))]
        names = set(visible)
        return [
            InputItem(key=f"{source}!{m}", path=str(source), member=m) for m in visible if not _is_companion(m, names)
        ]
    try:
        lines = source.read_text().splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{source}: not a directory, zip archive or list file of paths ({exc})") from exc
    items = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line) if Path(line).is_absolute() else source.parent / line
            items.append(InputItem(key=line, path=str(path)))
    return items


def _extract_member(item: InputItem, workdir: Path) -> Path:
    """Extract a zip member (and, for WFDB, its companion files) to ``workdir``; refuse zip bombs."""
    limit = max_file_bytes()
    with zipfile.ZipFile(item.path) as archive:
        stem = os.path.splitext(item.member)[0]
        wanted = [item.member]
        if item.member.lower().endswith(".hea"):
            wanted += [n for n in archive.namelist() if os.path.splitext(n)[0] == stem and n != item.member]
        for name in wanted:
            info = archive.getinfo(name)
            if info.file_size > limit:
                raise InputError(f"{item.key}: member of {info.file_size} bytes is over the {limit}-byte limit")
            target = workdir / Path(name).name
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
    return workdir / Path(item.member).name


# Files an archive of ECGs commonly also holds. Never matched: the extensions of supported ECG formats.
_NOT_ECG_EXTENSIONS = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".svg", ".ico"), "image"),
    **dict.fromkeys((".pdf", ".ps", ".doc", ".docx", ".odt", ".rtf", ".xls", ".xlsx", ".ppt", ".pptx"), "document"),
    **dict.fromkeys(
        (".md", ".rst", ".html", ".htm", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".log"), "text"
    ),
    **dict.fromkeys((".py", ".sh", ".bat", ".js", ".css", ".db", ".exe", ".dll", ".mp4", ".avi", ".mov"), "other"),
}
_NOT_ECG_NAMES = {"readme", "license", "licence", "changelog", "notice", "copying", "authors", "thumbs.db"}
_MAGIC = ((b"\x89PNG", "image"), (b"\xff\xd8\xff", "image"), (b"GIF8", "image"), (b"II*\x00", "image"),
          (b"MM\x00*", "image"), (b"%PDF", "document"), (b"%!PS", "document"))  # fmt: skip


def not_an_ecg(name: str, head: bytes | None) -> str | None:
    """Why the file ``name`` (first bytes ``head``, when read) is plainly not an ECG: ``"image"``, ``"document"``,
    ``"text"`` or ``"other"``; None when it may be one (the readers decide). Text files (``.txt``, no extension) count
    as text only when their content matches no ECG format (tab- or comma-separated samples are ECGs)."""
    base = os.path.basename(name).lower()
    stem, ext = os.path.splitext(base)
    if ext in _NOT_ECG_EXTENSIONS:
        return _NOT_ECG_EXTENSIONS[ext]
    if base in _NOT_ECG_NAMES or stem in _NOT_ECG_NAMES:
        return "text"
    if head is None:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if ext in (".txt", ""):
        from cardiacnets.io._detect import detect_format

        try:
            detect_format(head, None)
        except UnsupportedFormatError:
            return "text" if _is_text(head) else None
    return None


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut at the end of the head
    return b"\x00" not in head


def _matches(key: str, patterns: Sequence[str]) -> bool:
    """A pattern without a slash matches the file name; with one, the path (relative to the source)."""
    name = key.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(key if "/" in p else name, p) for p in patterns)


@dataclass
class InputSelection:
    """The inputs to screen, and what was set aside: ``not_ecg`` counts files that are plainly not ECGs by kind."""

    items: list[InputItem]
    excluded: int = 0
    not_ecg: Counter = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return self.excluded + sum(self.not_ecg.values())


def _head(item: InputItem, size: int = 4096) -> bytes | None:
    try:
        if item.member is None:
            with open(item.path, "rb") as handle:
                return handle.read(size)
        with zipfile.ZipFile(item.path) as archive, archive.open(item.member) as handle:
            return handle.read(size)
    except (OSError, zipfile.BadZipFile, KeyError):
        return None  # the reader reports it


def select_inputs(
    source: str | os.PathLike[str], *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> InputSelection:
    """:func:`enumerate_inputs`, keeping the files that match an ``include`` pattern (all when none is given) and no
    ``exclude`` pattern (shell patterns, matched case-sensitively on the path relative to the source, or on the file
    name when the pattern has no slash), and setting aside files that are plainly not ECGs (:func:`not_an_ecg`)."""
    source = Path(source)
    entries = [(_relative_key(item, source), item) for item in enumerate_inputs(source)]
    return select_entries(entries, include, exclude, _head)


def select_entries(
    entries: Sequence[tuple[str, Any]], include: Sequence[str], exclude: Sequence[str],
    head: Callable[[Any], bytes | None],
) -> InputSelection:  # fmt: skip
    """The selection rules of :func:`select_inputs` over ``(path relative to the source, input)`` pairs of any kind
    of input (``head(input)``: its first bytes, read only for files whose extension says nothing)."""
    selection = InputSelection(items=[])
    for relative, item in entries:
        if (include and not _matches(relative, include)) or (exclude and _matches(relative, exclude)):
            selection.excluded += 1
            continue
        kind = not_an_ecg(relative, None)
        if kind is None and _needs_sniff(relative):
            kind = not_an_ecg(relative, head(item))
        if kind is not None:
            selection.not_ecg[kind] += 1
            continue
        selection.items.append(item)
    return selection


def _relative_key(item: InputItem, source: Path) -> str:
    if item.member is not None:
        return item.member
    try:
        return Path(item.path).relative_to(source).as_posix()
    except ValueError:
        return item.key.replace(os.sep, "/")


def _needs_sniff(name: str) -> bool:
    """Only files whose extension says nothing (no extension, ``.txt``) are opened to look at their first bytes."""
    ext = os.path.splitext(name)[1].lower()
    return ext in ("", ".txt")
