"""UK Biobank tabular data as researchers receive it: the fields the converter needs, for the participants it needs.

UK Biobank hands out the same data under two column-naming schemes, both read here:

* the legacy download (``ukbconv``): ``eid``, ``<field>-<instance>.<array>`` (``31-0.0``, ``21003-2.0``,
  ``41270-0.12``), coded values as raw codes;
* the Research Analysis Platform (Table Exporter, ``dx extract_dataset``): ``eid`` or ``participant.eid``, and with
  the "field name" header style ``p<field>``, ``p<field>_i<instance>``, ``p<field>_a<array>``,
  ``p<field>_i<instance>_a<array>`` (optionally prefixed ``participant.``). Coded values come out as their meanings by
  default (sex ``Female``/``Male``; an ICD-10 code as ``I21.9 Acute myocardial infarction, unspecified``) or as raw
  codes; an array field may come as one column holding the whole array, as a JSON list or ``|``-separated
  (``p41270``), beside per-item columns (``p41280_a0`` ... ``p41280_aN``).

A header that uses field *titles* ("Sex", "Age when attended assessment centre | Instance 2") cannot be mapped
reliably and is refused with the fix (export with the field-name header style).

The main dataset is 10-70 GB: :func:`read_needed` streams it, keeps only the needed columns and only the participants
in ``eids`` (those with an ECG file), so memory follows the cohort, not the file (``benchmarks/bench_ukb_tabular.py``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cardiacnets.converters._common import open_text
from cardiacnets.errors import DatasetError

logger = logging.getLogger(__name__)

__all__ = ["ColumnKey", "UkbHeader", "UkbRow", "parse_code", "parse_date", "parse_sex", "read_needed"]

#: UK Biobank's placeholder dates (unknown, or before/after a limit), never real event dates.
PLACEHOLDER_DATES = frozenset({date(1900, 1, 1), date(1901, 1, 1), date(1902, 2, 2), date(1903, 3, 3),
                               date(2037, 7, 7)})  # fmt: skip
_LEGACY = re.compile(r"(\d+)-(\d+)\.(\d+)")
_RAP = re.compile(r"p(\d+)(?:_i(\d+))?(?:_a(\d+))?")
_EID_NAMES = ("eid", "participant.eid")
_ICD10 = re.compile(r"[A-Z][0-9]{2}(?:\.?[0-9A-Z]{1,4})?")


@dataclass(frozen=True)
class ColumnKey:
    """What a column holds: field, instance (None: the field has none), array index (None: one value, or the whole
    array in one cell)."""

    field: int
    instance: int | None
    array: int | None


def column_key(name: str) -> ColumnKey | None:
    """Parse a column name in either naming scheme (``participant.`` prefix allowed); None for anything else."""
    name = name.strip()
    if name.startswith("participant."):
        name = name[len("participant.") :]
    match = _LEGACY.fullmatch(name)
    if match:
        return ColumnKey(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    match = _RAP.fullmatch(name)
    if match:
        instance, array = match.group(2), match.group(3)
        return ColumnKey(int(match.group(1)), None if instance is None else int(instance),
                         None if array is None else int(array))  # fmt: skip
    return None


@dataclass
class UkbHeader:
    """The columns of one tabular file: where the eid is and which column holds which field."""

    path: Path
    names: list[str]
    eid_index: int
    keys: dict[int, ColumnKey]  # column index -> key, for UK Biobank columns

    @classmethod
    def parse(cls, path: Path, names: Sequence[str]) -> UkbHeader:
        names = [n.strip() for n in names]
        eid = next((k for k, n in enumerate(names) if n in _EID_NAMES), None)
        keys = {k: key for k, n in enumerate(names) if (key := column_key(n)) is not None}
        others = [n for n in names if n not in _EID_NAMES]
        if not keys and others:
            raise DatasetError(
                f"{path}: no UK Biobank field columns: the header looks like field titles ({others[0][:40]!r}, ...);"
                " export with the field-name header style (p31, p21003_i2, ...) or the legacy names (31-0.0)"
            )
        if eid is None:
            raise DatasetError(f"{path}: no participant column (eid or participant.eid); found {names[:5]}...")
        return cls(path=path, names=names, eid_index=eid, keys=keys)

    def wanted(self, fields: Iterable[int], instance: int) -> dict[int, ColumnKey]:
        """Columns of ``fields`` at ``instance``, or without an instance (fields recorded once, such as 31 and 41270,
        have none in the RAP names and instance 0 in the legacy ones)."""
        fields = set(fields)
        return {k: key for k, key in self.keys.items() if key.field in fields and _at_instance(key, instance)}


#: Fields recorded once per participant (instance 0 in the legacy names): sex, hospital diagnoses and their dates.
_INSTANCE_0 = frozenset({31, 41270, 41280})


def _at_instance(key: ColumnKey, instance: int) -> bool:
    if key.instance is None:
        return True
    return key.instance == instance or (key.field in _INSTANCE_0 and key.instance == 0)


@dataclass
class UkbRow:
    """One participant's needed values: ``values[(field, array)]`` holds the cell text (array None: a single value or
    a whole array in one cell)."""

    eid: str
    values: dict[tuple[int, int | None], str] = field(default_factory=dict)

    def get(self, field_id: int) -> str | None:
        """The single value of a field (its first array item when stored per item)."""
        value = self.values.get((field_id, None))
        return value if value is not None else self.values.get((field_id, 0))

    def array(self, field_id: int) -> dict[int, str]:
        """The items of an array field by index: per-item columns, or one cell holding the array (JSON or ``|``)."""
        items = {a: v for (f, a), v in self.values.items() if f == field_id and a is not None and v.strip()}
        whole = self.values.get((field_id, None))
        if whole is not None and whole.strip():
            for k, item in enumerate(split_array(whole)):
                items.setdefault(k, item)
        return items


def split_array(cell: str) -> list[str]:
    """An array held in one cell: a JSON list (``["I21.9 Acute ...", "E11.9 ..."]``) or ``|``-separated items."""
    text = cell.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = [v.strip(" '\"") for v in text.strip("[]").split(",")]
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [v.strip() for v in text.split("|") if v.strip()]


def parse_sex(text: str | None) -> float:
    """Field 31 as 0 female / 1 male: a raw code (``0``, ``1``) or its meaning (``Female``, ``Male``); NaN else."""
    value = (text or "").strip().lower()
    return {"0": 0.0, "1": 1.0, "female": 0.0, "male": 1.0, "0.0": 0.0, "1.0": 1.0}.get(value, math.nan)


def parse_date(text: str | None) -> date | None:
    """An ISO date (a time part is ignored); None when empty, unparsable, or a UK Biobank placeholder."""
    if not text or not text.strip():
        return None
    try:
        value = date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None
    return None if value in PLACEHOLDER_DATES else value


def parse_code(text: str | None) -> str | None:
    """An ICD-10 code from a raw code (``I219``) or its meaning (``I21.9 Acute myocardial infarction``)."""
    match = _ICD10.match((text or "").strip().upper())
    return match.group(0).replace(".", "") if match else None


def read_needed(
    paths: Sequence[str | os.PathLike[str]], fields: Iterable[int], instance: int, eids: set[str] | None
) -> tuple[dict[str, UkbRow], dict[int, int]]:
    """Stream the tabular files and keep the cells of ``fields`` (at ``instance``) of the participants in ``eids``
    (None: all), merged on the eid. Returns the rows and, per field, in how many files a column for it was found.

    Memory is bounded by the participants kept, whatever the file's size: rows are parsed one at a time and only the
    needed cells are kept."""
    fields = list(fields)
    rows: dict[str, UkbRow] = {}
    found: dict[int, int] = dict.fromkeys(fields, 0)
    for path in map(Path, paths):
        with open_text(path) as handle:
            reader = csv.reader(handle)
            try:
                header = UkbHeader.parse(path, next(reader))
            except StopIteration:
                raise DatasetError(f"{path}: empty file") from None
            wanted = header.wanted(fields, instance)
            for key in wanted.values():
                found[key.field] += 1
            columns = sorted(wanted.items())
            for cells in _participants(reader, header.eid_index, eids):
                row = rows.setdefault(cells[header.eid_index].strip(), UkbRow(cells[header.eid_index].strip()))
                for k, key in columns:
                    if k < len(cells) and cells[k] != "":
                        row.values[(key.field, key.array)] = cells[k]
        logger.info("%s: %d participants kept so far", path.name, len(rows))
    return rows, found


def _participants(reader: Iterator[list[str]], eid_index: int, eids: set[str] | None) -> Iterator[list[str]]:
    for cells in reader:
        if len(cells) > eid_index and (eids is None or cells[eid_index].strip() in eids):
            yield cells


def describe_missing(found: dict[int, int], groups: dict[str, Sequence[int]], paths: Sequence[Any]) -> str | None:
    """One line naming what was looked for when none of a needed group's fields has a column, else None."""
    absent = [name for name, ids in groups.items() if not any(found.get(f) for f in ids)]
    if len(absent) < len(groups):
        return None
    return (
        f"{', '.join(str(p) for p in paths)}: none of the UK Biobank columns the converter needs ({', '.join(absent)});"
        " looked for legacy names (31-0.0, 21003-2.0, 53-2.0, 41270-0.0, 24100-2.0) and Research Analysis Platform"
        " names (p31, p21003_i2, p53_i2, p41270, p24100_i2, with or without 'participant.')"
    )
