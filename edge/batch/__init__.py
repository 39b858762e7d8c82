"""``cnscreen batch``: screen a whole archive (directory tree, zip, or list file), resumably.

Worker processes read, QC and preprocess files while the main process runs batched inference and appends one row per
input file to the output. The pool starts before the inference session is built, and inference takes whatever the
workers have ready (up to the batch size) instead of idling for a full batch. Rerunning the same command resumes:
rows already in the output are skipped, a torn last row (from a kill mid-write) is cut off and its file screened
again, so every input appears exactly once.

Output formats by extension: ``.csv``, ``.jsonl``, ``.parquet``. CSV and JSONL are appended in place; Parquet, which
cannot be appended, is journalled to ``<out>.journal.jsonl`` and written atomically when the run completes.

Modules: :mod:`.inputs` (what the inputs are), :mod:`.rows` (the columns of a row), :mod:`.store` (the resumable,
locked output), :mod:`.readers` (reader processes), :mod:`.inference` (inference streams), :mod:`.progress` (the
progress bar) and :mod:`.run` (:func:`run_batch`, which ties them together).
"""

from __future__ import annotations

from cardiacnets.edge.batch.inference import CPU_BATCH, GPU_BATCH, usable_cores
from cardiacnets.edge.batch.inputs import WFDB_COMPANIONS, InputItem, enumerate_inputs
from cardiacnets.edge.batch.rows import STATUS_ERROR, STATUS_OK, STATUS_QC, error_row, output_columns, result_row
from cardiacnets.edge.batch.run import BatchSummary, run_batch, summary_dict
from cardiacnets.edge.batch.store import RowStore

__all__ = [
    "CPU_BATCH",
    "GPU_BATCH",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_QC",
    "WFDB_COMPANIONS",
    "BatchSummary",
    "InputItem",
    "RowStore",
    "enumerate_inputs",
    "error_row",
    "output_columns",
    "result_row",
    "run_batch",
    "summary_dict",
    "usable_cores",
]
