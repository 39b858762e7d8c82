"""The inputs of a batch run: which files of a directory tree, zip archive or list file are ECGs to screen
(:func:`enumerate_inputs`, in a stable order, WFDB companion files folded into their record), and the extraction of a
zip member with its companions to a working folder for reading (:func:`_extract_member`, with a size limit against zip
bombs)."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cardiacnets.errors import InputError
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
