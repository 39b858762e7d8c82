"""The driver of a cluster run: :func:`run_ray_batch` lists the inputs once, skips those the output's manifest already
holds, connects to Ray (or starts it on this machine), streams the unfinished inputs through the two stages of
:mod:`.pipeline`, and writes the rows that come back as Parquet parts (:class:`~.parts.PartStore`); when every input
has its row it compacts the folder to one row per input."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardiacnets.edge.batch.inference import GPU_BATCH, usable_cores
from cardiacnets.edge.batch.progress import _progress
from cardiacnets.edge.batch.rows import STATUS_ERROR, STATUS_OK, STATUS_QC, _model_columns, output_columns
from cardiacnets.edge.batch.run import BatchSummary
from cardiacnets.edge.cluster.parts import PartStore
from cardiacnets.edge.cluster.pipeline import InferenceActor, bundle_files, input_rows, prepare_batch
from cardiacnets.edge.cluster.sources import list_inputs
from cardiacnets.errors import CardiacNetsError, InputError
from cardiacnets.preprocess import PreprocessConfig

logger = logging.getLogger(__name__)

#: Inputs per reading task: what Ray retries together when a node dies, and what one task's overhead is spread over.
READ_BATCH = 8
#: Memory a reading task reserves (bytes): a batch of ECG files (each at most 64 MiB) and the QC and filter temporaries.
READ_TASK_MEMORY = 512 * 1024 * 1024
#: ECGs per inference call on the CPU (each is still run alone, so its row is the one `cnscreen FILE` gives; a larger
#: call only spreads Ray's per-call overhead).
RAY_CPU_BATCH = 16
#: Times Ray retries a reading task or an inference call whose worker died (a lost node, the OOM killer, a native
#: crash); Ray Data's default is forever, which a file that always kills its reader would turn into a run that never
#: ends. A block still failing is skipped, and its inputs are tried again one per task (see :func:`_stream_all`).
RETRIES = 3
#: Rows per part file, and the longest the driver holds rows before writing them (s): what a kill can cost.
ROWS_PER_PART, FLUSH_SECONDS = 1000, 10.0


class ClusterError(CardiacNetsError):
    """Ray is missing, the cluster cannot be reached, or the Ray run stopped (the rows written so far are kept)."""


@dataclass
class ClusterSummary(BatchSummary):
    """:class:`~cardiacnets.edge.batch.run.BatchSummary` plus ``startup_seconds``, from the call to the first rows back
    from Ray (listing, Ray's start or connection, workers and actors starting, the first block through both stages),
    and the cluster's ``nodes``."""

    startup_seconds: float | None = None
    nodes: int = 0


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ClusterError(
            "--engine ray needs Ray: install the cluster extra (pip install 'cardiacnets[cluster]')"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected to the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or started on this
    machine for the run (``None``); shut down afterwards unless it was already initialised by the caller."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = {} if address else {"num_cpus": usable_cores(), "include_dashboard": False}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ClusterError(f"cannot start or reach {where} ({str(exc).splitlines()[0]}); check --address") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _data_context(ray: Any) -> None:
    """Ray Data settings of this driver: no progress bars or execution banners of its own (we show one), order not
    kept (rows are keyed), a block still failing after its retries skipped (its inputs are retried one by one)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.execution_options.preserve_order = False
    context.max_errored_blocks = -1
    from ray.util import log_once

    log_once("ray_data_progress_manager_disabled")  # Ray Data's notice that its own bars are off: they are, by design
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # and its per-run "execution finished" banners


def _build_dataset(ray: Any, todo: list[Any], stages: dict[str, Any], read_batch: int = READ_BATCH) -> Any:
    """The lazy Ray Data pipeline: inputs -> reading tasks (``read_batch`` inputs each) -> inference actors."""
    import warnings

    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    dataset = ray.data.from_items(input_rows(todo), override_num_blocks=max(1, math.ceil(len(todo) / read_batch)))
    with warnings.catch_warnings():
        # Retry bounds are still passed as Ray remote arguments (deprecated, without a named replacement yet in 2.60).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        # The reading tasks' memory reservation also keeps Ray Data from fusing them into the inference actors (it
        # fuses stages whose resource requests agree), which would leave each actor's one process to read too.
        dataset = dataset.map_batches(
            prepare_batch, batch_size=read_batch, batch_format="pyarrow", fn_kwargs={"config": stages["config"]},
            num_cpus=1, memory=READ_TASK_MEMORY, compute=TaskPoolStrategy(size=stages["workers"]),
            max_retries=RETRIES,
        )  # fmt: skip
        return dataset.map_batches(
            InferenceActor, batch_size=stages["batch_size"], batch_format="pyarrow",
            fn_constructor_args=(stages["bundle_ref"], stages["digest"], stages["job"]),
            fn_constructor_kwargs=stages["actor_options"], compute=ActorPoolStrategy(size=stages["actors"]),
            num_cpus=stages["cpus_per_actor"], num_gpus=stages["gpus_per_actor"] or None, max_task_retries=RETRIES,
            scheduling_strategy="SPREAD",  # actors that reserve no CPU would otherwise all start on one node
        )  # fmt: skip


def _alive_nodes(ray: Any) -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


def run_ray_batch(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    streams: int | None = None,
    device: str = "auto",
    allow_fallback: bool = False,
    include_phi: bool = False,
    progress: bool = True,
    operating_point: str | None = None,
    trusted_keys: Sequence[str | os.PathLike[str]] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> ClusterSummary:
    """Screen every input of ``source`` on Ray into the Parquet dataset folder ``out``; resumes when ``out`` holds
    rows. The rows are the built-in engine's (:func:`~cardiacnets.edge.batch.run_batch`), one per input.

    ``address``: the Ray cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None starts Ray on this machine.
    ``workers``: most reading tasks at once (default: as many as the cluster's free CPUs allow, one CPU each).
    ``actors``: inference actors (default: one per CPU of the cluster, each with one onnxruntime thread, as the
    built-in engine runs one stream per core; with ``gpus_per_actor``, as many as the cluster's GPUs hold).
    ``cpus_per_actor``: CPUs each actor reserves, and its onnxruntime threads on the CPU (default: none on the CPU,
    with one thread; 1 with a GPU).
    ``batch_size``: most ECGs per inference call (default 16 on the CPU, where each is still run alone; 32 on a GPU).
    ``streams`` is the built-in engine's and refused here. The other arguments are
    :func:`~cardiacnets.edge.batch.run_batch`'s."""
    from cardiacnets.bundle import default_bundle_path, load_bundle

    started = time.perf_counter()
    _import_ray()  # before listing what may be a million inputs
    gpus_per_actor = gpus_per_actor or 0.0
    if streams is not None:
        raise InputError("--streams is the built-in engine's; with --engine ray inference runs in --actors")
    if gpus_per_actor < 0 or (cpus_per_actor is not None and cpus_per_actor < 0) or (actors is not None and actors < 1):
        raise InputError("--actors must be at least 1, and --gpus-per-actor and --cpus-per-actor not negative")
    selection = list_inputs(source, include=include, exclude=exclude)
    loaded = load_bundle(bundle or default_bundle_path(), check_hashes=True, trusted_keys=trusted_keys)
    config = (PreprocessConfig.from_dict(loaded.preprocess) if loaded.preprocess else PreprocessConfig()).to_dict()
    job = {**_model_columns(loaded.identity), "preprocess_version": config.get("version")}
    store = PartStore(Path(out), output_columns(include_phi), job)
    todo = [item for item in selection.items if item.key not in store.done]
    summary = ClusterSummary(total=len(selection.items), skipped_done=len(selection.items) - len(todo),
                             errors_before=store.errors_before, excluded=selection.excluded,
                             not_ecg=dict(selection.not_ecg))  # fmt: skip
    try:
        if todo:
            with ray_session(address) as ray:
                summary.nodes = len(_alive_nodes(ray))
                stages = _stages(ray, loaded, config, job, actors=actors, gpus_per_actor=gpus_per_actor,
                                 cpus_per_actor=cpus_per_actor, workers=workers, batch_size=batch_size, device=device,
                                 operating_point=operating_point, include_phi=include_phi,
                                 allow_fallback=allow_fallback)  # fmt: skip
                _stream_all(ray, todo, stages, store, summary, progress, started)
        missing = sum(item.key not in store.done for item in todo)
        if missing:
            raise ClusterError(
                f"{missing} inputs got no row: Ray failed them {RETRIES + 1} times, each alone at the end (their worker"
                " died or raised; Ray's log says why); the other rows are written. Rerun to retry them, or leave them"
                " out with --exclude"
            )
        store.compact()
    finally:
        store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _stages(ray: Any, loaded: Any, config: dict[str, Any], job: dict[str, Any], **options: Any) -> dict:
    """What :func:`_build_dataset` needs: the bundle in the object store, resources and sizes with their defaults."""
    gpus = options["gpus_per_actor"]
    actors = options["actors"]
    if actors is None:  # as the built-in engine runs one inference stream per core, or one per GPU
        resources = ray.cluster_resources()
        actors = max(1, int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1)))
    on_gpu = gpus > 0 and options["device"] != "cpu"
    # On the CPU an actor reserves nothing by default: it shares the cores with the reading tasks as the built-in
    # engine's inference streams share them with its readers, and no node size can leave the reading without a CPU.
    cpus = options["cpus_per_actor"] if options["cpus_per_actor"] is not None else (1.0 if on_gpu else 0.0)
    return {
        "config": config,
        "workers": options["workers"],
        "batch_size": options["batch_size"] or (GPU_BATCH if on_gpu else RAY_CPU_BATCH),
        "bundle_ref": [ray.put(bundle_files(loaded.root))],
        "digest": loaded.digest,
        "job": job,
        "actors": actors,
        "cpus_per_actor": cpus,
        "gpus_per_actor": gpus,
        "actor_options": {
            "device": options["device"],
            "threads": None if on_gpu else max(1, round(cpus)),
            "operating_point": options["operating_point"],
            "include_phi": options["include_phi"],
            "allow_fallback": options["allow_fallback"],
        },
    }


def _stream_all(
    ray: Any, todo: list[Any], stages: dict[str, Any], store: PartStore, summary: ClusterSummary, progress: bool,
    started: float,
) -> None:  # fmt: skip
    """Every input through Ray; those of blocks Ray gave up on again, one input per reading task, so that an input
    that kills its worker costs only itself."""
    _data_context(ray)
    with _progress(progress, len(todo)) as advance:
        _stream_rows(ray, todo, stages, store, summary, advance, started, READ_BATCH)
        missing = [item for item in todo if item.key not in store.done]
        if missing:
            logger.warning("%d inputs got no row; trying them again, one per reading task", len(missing))
            _stream_rows(ray, missing, stages, store, summary, advance, started, 1)


def _stream_rows(
    ray: Any, todo: list[Any], stages: dict[str, Any], store: PartStore, summary: ClusterSummary,
    advance: Callable[[int], None], started: float, read_batch: int,
) -> None:  # fmt: skip
    """Drive the dataset and write its rows as parts (every :data:`ROWS_PER_PART` rows or :data:`FLUSH_SECONDS`)."""
    import pyarrow as pa

    dataset = _build_dataset(ray, todo, stages, read_batch)
    pending: list[Any] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        table = pa.concat_tables(pending)
        pending.clear()
        last_flush = time.monotonic()
        statuses = store.write(table).column("status").to_pylist()  # a row Ray computed twice is written once
        summary.ok += statuses.count(STATUS_OK)
        summary.qc_failed += statuses.count(STATUS_QC)
        summary.error += statuses.count(STATUS_ERROR)

    try:
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            if summary.startup_seconds is None:
                summary.startup_seconds = time.perf_counter() - started
            pending.append(table)
            advance(table.num_rows)
            if sum(t.num_rows for t in pending) >= ROWS_PER_PART or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
    except ray.exceptions.RayError as exc:
        raise _explain(exc) from None
    if pending:
        flush()


def _explain(exc: BaseException) -> CardiacNetsError:
    """A Ray failure as one line: the toolkit's own error when a stage raised one (a bundle that fails verification
    on a worker), else what Ray said first."""
    cause: BaseException | None = exc
    for _ in range(8):  # RayTaskError.cause, then the chain of causes
        if cause is None or isinstance(cause, CardiacNetsError):
            break
        cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(cause, CardiacNetsError):
        return cause
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return ClusterError(f"the Ray run stopped ({first[:300]}); the rows written so far are kept; rerun to resume")
