"""The two stages of a cluster run, as Ray Data runs them.

1. :func:`prepare_batch` (Ray tasks, one CPU each): read, QC and preprocess a batch of inputs with the built-in
   engine's per-input work (:func:`cardiacnets.edge.batch.readers._prepare_one`: zip members extracted to a scratch
   folder, every failure an error reason, never an exception), fetching remote inputs first. Each prepared ECG travels
   pickled in the ``prepared`` column; an input that could not be prepared has its reason in ``error``.
2. :class:`InferenceActor` (an actor pool, each with its own onnxruntime session through
   :class:`cardiacnets.edge.screen.Screener`): inference on the prepared ECGs and the rows of
   :func:`cardiacnets.edge.batch.rows.result_row` / :func:`~cardiacnets.edge.batch.rows.error_row`, as an Arrow table
   of the built-in engine's Parquet schema.

The bundle travels with the job (:func:`bundle_files`, put in Ray's object store once) and each actor checks that
what it loaded has the driver's digest, so every row of a run comes from the same model whatever node computed it.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.inputs import InputItem
from cardiacnets.edge.batch.readers import _prepare_one
from cardiacnets.edge.batch.rows import error_row, output_columns, result_row
from cardiacnets.edge.batch.store import _arrow_schema, _one_line
from cardiacnets.edge.cluster.sources import ClusterInput, fetch_remote
from cardiacnets.errors import BundleIntegrityError, CardiacNetsError
from cardiacnets.preprocess import PreprocessConfig

#: The columns of the table the driver hands to Ray Data, one row per input.
INPUT_COLUMNS = ("key", "path", "member", "fs_uri", "companions")


def input_rows(items: list[InputItem]) -> list[dict[str, Any]]:
    """The inputs as plain rows for :func:`ray.data.from_items` (empty strings for what an input lacks)."""
    return [
        {
            "key": item.key,
            "path": item.path,
            "member": item.member or "",
            "fs_uri": getattr(item, "fs_uri", None) or "",
            "companions": list(getattr(item, "companions", ())),
        }
        for item in items
    ]


def _prepare_row(row: dict[str, Any], config: PreprocessConfig) -> tuple[Any, str | None]:
    """``(PreparedEcg, None)`` or ``(None, reason)`` for one input row; never raises."""
    if not row["fs_uri"]:
        _, prepared, reason = _prepare_one(InputItem(row["key"], row["path"], row["member"] or None), config)
        return prepared, reason
    item = ClusterInput(row["key"], row["path"], fs_uri=row["fs_uri"], companions=tuple(row["companions"] or ()))
    with tempfile.TemporaryDirectory(prefix="cns-fetch-") as tmp:
        try:
            local = fetch_remote(item, Path(tmp))
        except CardiacNetsError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"cannot fetch {item.key} ({exc})"
        _, prepared, reason = _prepare_one(InputItem(item.key, str(local)), config)
    return prepared, reason


def prepare_batch(batch: Any, config: dict[str, Any]) -> dict[str, list[Any]]:
    """Ray Data task: a pyarrow table of :data:`INPUT_COLUMNS` -> ``key``, ``prepared`` (pickled
    :class:`~cardiacnets.edge.screen.PreparedEcg`, empty on error) and ``error`` (the reason, empty when prepared)."""
    preprocess = PreprocessConfig.from_dict(config)
    keys, blobs, errors = [], [], []
    for row in batch.to_pylist():
        prepared, reason = _prepare_row(row, preprocess)
        keys.append(row["key"])
        if prepared is None:
            blobs.append(b"")
            errors.append(reason or "unknown error")
        else:
            prepared.signal_mv = None  # what the built-in engine hands to inference, too
            blobs.append(pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL))
            errors.append("")
    return {"key": keys, "prepared": blobs, "error": errors}


def bundle_files(root: Path) -> dict[str, bytes]:
    """Every file of a bundle folder, by its path relative to the folder (what an actor rebuilds it from)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class InferenceActor:
    """Ray Data actor: one onnxruntime session; prepared ECGs in, the built-in engine's rows out."""

    def __init__(
        self,
        bundle_ref: list[Any],
        digest: str,
        job: dict[str, Any],
        *,
        device: str,
        threads: int | None,
        operating_point: str | None,
        include_phi: bool,
        allow_fallback: bool = False,
    ) -> None:
        """``bundle_ref``: ``[ObjectRef of bundle_files(...)]`` (in a list, so Ray hands the reference over rather
        than the bytes); ``digest``: the bundle the driver verified; ``job``: the run's model columns."""
        import ray

        from cardiacnets.bundle import load_bundle
        from cardiacnets.edge.screen import Screener

        self.root = Path(tempfile.mkdtemp(prefix="cns-bundle-"))
        for rel, data in ray.get(bundle_ref[0]).items():
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_bytes(data)
        bundle = load_bundle(self.root, check_hashes=True)
        if bundle.digest != digest:
            raise BundleIntegrityError(
                f"the bundle rebuilt on a worker has digest {bundle.digest[:16]}, not the driver's {digest[:16]}"
            )
        self.screener = Screener(bundle, device=device, threads=threads, allow_spinning=False,
                                 operating_point=operating_point, allow_fallback=allow_fallback)  # fmt: skip
        self.job = {**job, "execution_provider": self.screener.execution_provider}  # error rows name it too
        self.include_phi = include_phi
        self.columns = output_columns(include_phi)
        self.schema = _arrow_schema(self.columns)

    def __call__(self, batch: Any) -> Any:
        """A pyarrow table of ``key``, ``prepared``, ``error`` -> the rows (pyarrow table, built-in schema)."""
        import pyarrow as pa

        rows, prepared = [], []
        for entry in batch.to_pylist():
            if entry["error"]:
                rows.append(error_row(entry["key"], entry["error"], self.job))
            else:
                prepared.append(pickle.loads(entry["prepared"]))
        outputs = self.screener.infer_prepared(prepared) if prepared else []
        for item, output in zip(prepared, outputs, strict=True):
            rows.append(result_row(self.screener.result(item, output, include_phi=self.include_phi), self.include_phi))
        clean = [{c: _one_line(v) if isinstance(v := row.get(c), str) else v for c in self.columns} for row in rows]
        return pa.Table.from_pylist(clean, schema=self.schema)
