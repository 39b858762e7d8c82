"""``cnscreen batch --format fhir``: one FHIR resource per line (NDJSON, as in FHIR bulk data), resumable.

Each screened input is a Bundle (:func:`~cardiacnets.edge.hospital.fhir.fhir_bundle`); each input that could not be
screened is an OperationOutcome saying why. Both carry the SHA-256 of the input's key as their ``id`` (never the path,
which may hold a patient's name) and the model bundle digest and preprocessing version as ``meta.tag``: a rerun skips
the inputs already written, cuts a line torn by a kill, and refuses an output written by another model, like the row
outputs (:class:`~cardiacnets.edge.batch.store.RowStore`, whose locking and write-failure handling this reuses).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.rows import STATUS_OK, STATUS_QC
from cardiacnets.edge.batch.store import RowStore
from cardiacnets.edge.hospital import codes
from cardiacnets.errors import InputError, OutputError

__all__ = ["FhirStore", "fhir_row", "input_digest"]

PREPROCESS_TAG_SYSTEM = f"{codes.CANONICAL_BASE}/NamingSystem/preprocess-version"


def input_digest(key: str) -> str:
    """The id of an input's line: SHA-256 (hex) of its key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class _HashedKeys(set):
    """The keys already written, held as their digests: ``key in done`` and ``done.add(key)`` take plain keys."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(input_digest(key))

    def add(self, key: str) -> None:
        super().add(input_digest(key))


def _tags(job: dict[str, Any]) -> list[dict[str, str]]:
    return [{"system": codes.MODEL_DIGEST_SYSTEM, "code": str(job.get("bundle_digest"))},
            {"system": PREPROCESS_TAG_SYSTEM, "code": str(job.get("preprocess_version"))}]  # fmt: skip


def fhir_row(result: dict[str, Any], include_phi: bool, *, transaction: bool = False) -> dict[str, Any]:
    """The batch row of a screening result for :class:`FhirStore`: its key, status and Bundle (a JSON line)."""
    from cardiacnets.edge.hospital.fhir import fhir_bundle, fhir_json

    key = str(result["path"])
    bundle = fhir_bundle(result, include_phi=include_phi, transaction=transaction, identifier=input_digest(key))
    line = json.loads(fhir_json(bundle))
    line = {"resourceType": "Bundle", "id": input_digest(key), **{k: v for k, v in line.items() if k != "resourceType"}}
    model = result.get("model") or {}
    job = {"bundle_digest": model.get("digest"), "preprocess_version": (result.get("preprocess") or {}).get("version")}
    line["meta"] = {"tag": _tags(job)}
    status = STATUS_OK if (result.get("qc") or {}).get("reliable") else STATUS_QC
    return {"path": key, "status": status, "resource": line}


class FhirStore(RowStore):
    """NDJSON of FHIR resources with the resume, lock and model check of :class:`RowStore`. ``done`` holds the keys
    already written (tested by digest)."""

    def __init__(self, out: Path, job: dict[str, Any], include_phi: bool) -> None:
        if out.suffix.lower() != ".ndjson":
            raise InputError(f"{out}: --format fhir writes NDJSON; name the output X.ndjson")
        if not out.parent.is_dir():
            raise OutputError(f"output folder {out.parent} does not exist; create it first")
        self.out = self.journal = out
        self.columns: list[str] = []
        self.job = job
        self.kind = "ndjson"
        self.include_phi = include_phi
        self.done: set[str] = _HashedKeys()
        self.errors_before = 0
        self.rows_written = 0
        self.handle: Any = None
        self._open()

    def _repair_and_load(self) -> None:
        data = self.journal.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a line torn by a kill: drop it, its input is screened again
            self.handle.truncate(cut)
            data = data[:cut]
        rows = []
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            resource = json.loads(line)
            tags = {t.get("system"): t.get("code") for t in (resource.get("meta") or {}).get("tag") or []}
            rows.append({"id": resource.get("id"), "error": resource.get("resourceType") == "OperationOutcome",
                         "bundle_digest": tags.get(codes.MODEL_DIGEST_SYSTEM),
                         "preprocess_version": tags.get(PREPROCESS_TAG_SYSTEM)})  # fmt: skip
        self._check_job(rows)
        self.done = _HashedKeys(row["id"] for row in rows if row["id"])
        self.errors_before = sum(row["error"] for row in rows)

    def _line(self, row: dict[str, Any]) -> dict[str, Any]:
        if "resource" in row:
            return row["resource"]
        reason = str(row.get("reason") or "unknown error")
        if not self.include_phi:  # reader messages start with the path, which may hold a name
            key = str(row["path"])
            for text in sorted({key, Path(key).name}, key=len, reverse=True):
                reason = reason.replace(text, "<input>") if text else reason
        return {"resourceType": "OperationOutcome", "id": input_digest(str(row["path"])),
                "meta": {"tag": _tags(self.job)},
                "issue": [{"severity": "error", "code": "processing", "diagnostics": reason}]}  # fmt: skip

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.handle is None:
            raise InputError(f"{self.out} is complete; remove it to screen again")
        try:
            for row in rows:
                self.handle.write(json.dumps(self._line(row), separators=(",", ":")) + "\n")
            self.handle.flush()
        except OSError as exc:
            self._drop_handle()
            raise self._fail_write(exc) from None
        for row in rows:
            self.done.add(row["path"])
        self.rows_written += len(rows)
