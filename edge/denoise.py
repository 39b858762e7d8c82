"""``cnscreen denoise``: the bundle's versioned cleaning written out as an ECG file in millivolts.

One file: :func:`cardiacnets.io.read_ecg` -> :func:`cardiacnets.preprocess.clean_record` (baseline removal, wavelet
denoising, Savitzky-Golay smoothing, as the model's preprocessing does, on the whole record and without the model-input
scaling) -> :func:`cardiacnets.io.writers.write_ecg` in the format of the output's extension; optionally the raw ECG
above the cleaned one on ECG paper (:func:`plot_raw_and_cleaned`). A directory tree or zip archive
(:func:`denoise_archive`): every input the same way, written under the output folder at the input's relative path with
the chosen format's extension, one row per input in ``denoise-log.csv`` through the batch machinery
(:class:`~cardiacnets.edge.batch.RowStore`: locked, torn rows repaired, rows of another bundle refused), so a bad file
is an error row, the run goes on, and a rerun skips what is already logged. Only non-identifying metadata is written
(rate, lead names, acquisition time, device); the log's paths are relative to the source.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cardiacnets.edge.batch.inputs import InputItem, _extract_member, select_inputs
from cardiacnets.edge.batch.progress import _progress
from cardiacnets.edge.batch.rows import STATUS_ERROR, STATUS_OK, error_row
from cardiacnets.edge.batch.store import RowStore
from cardiacnets.errors import CardiacNetsError, EcgReadError, InputError, OutputError, OutputLockedError
from cardiacnets.files import atomic_write_bytes
from cardiacnets.io import read_ecg
from cardiacnets.io.writers import (
    OUTPUT_FORMATS,
    EcgFileMeta,
    OutputFormat,
    WrittenEcg,
    encode_ecg,
    output_format,
    write_ecg,
)
from cardiacnets.preprocess import PreprocessConfig, clean_record
from cardiacnets.record import EcgRecord

__all__ = ["LOG_COLUMNS", "LOG_NAME", "DenoiseJob", "DenoiseSummary", "DenoisedFile", "denoise", "denoise_archive",
           "denoise_file", "file_line", "is_archive", "load_job", "plot_raw_and_cleaned", "summary_line"]  # fmt: skip

LOG_NAME = "denoise-log.csv"
LOG_COLUMNS = ["path", "status", "reason", "output", "format", "requested_fs_hz", "input_format", "sampling_rate_hz",
               "output_rate_hz", "n_samples", "quantisation_uv", "bundle_name", "bundle_version", "bundle_digest",
               "preprocess_version"]  # fmt: skip
PLOT_EXTENSIONS = (".png", ".pdf", ".svg")
DEFAULT_ARCHIVE_FORMAT = "csv"


@dataclass(frozen=True)
class DenoiseJob:
    """The cleaning to apply (the bundle's :class:`PreprocessConfig`), the bundle it came from, the output rate."""

    config: PreprocessConfig
    identity: dict[str, Any]  # bundle_name, bundle_version, bundle_digest, preprocess_version
    out_fs: float | None = None  # None: each file's own rate

    @property
    def description(self) -> str:
        c, bundle = self.config, f"{self.identity['bundle_name']} {self.identity['bundle_version']}"
        return (f"cleaned by CardiacNets {c.version}: seasonal baseline removal, {c.wavelet} wavelet denoising,"
                f" Savitzky-Golay smoothing (bundle {bundle})")  # fmt: skip


def load_job(bundle: str | os.PathLike[str] | None = None, out_fs: float | None = None) -> DenoiseJob:
    """The cleaning of ``bundle`` (default: ``$CNS_BUNDLE`` or the shipped one); only its manifest is read."""
    from cardiacnets.bundle import default_bundle_path, load_bundle

    if out_fs is not None and not (np.isfinite(out_fs) and 0 < out_fs <= 100_000):
        raise InputError(f"--fs must be a sampling rate in Hz (0 < fs <= 100000), got {out_fs!r}")
    loaded = load_bundle(bundle or default_bundle_path(), check_hashes="on_use")
    config = PreprocessConfig.from_dict(loaded.preprocess) if loaded.preprocess else PreprocessConfig()
    identity = loaded.identity
    return DenoiseJob(
        config=config,
        identity={"bundle_name": identity.get("name"), "bundle_version": identity.get("version"),
                  "bundle_digest": identity.get("digest"), "preprocess_version": config.version},
        out_fs=out_fs,
    )  # fmt: skip


def is_archive(source: str | os.PathLike[str]) -> bool:
    """A directory or a ``.zip`` file (an ``.npz`` is a zip too, but one ECG)."""
    source = Path(source)
    return source.is_dir() or (source.suffix.lower() == ".zip" and zipfile.is_zipfile(source))


def _cleaned(record: EcgRecord, job: DenoiseJob) -> tuple[np.ndarray, float]:
    """``((12, m) mV, rate)`` of a record cleaned by ``job``."""
    return clean_record(record, job.config, out_fs=job.out_fs), float(job.out_fs or record.fs)


def _file_meta(record: EcgRecord, job: DenoiseJob) -> EcgFileMeta:
    meta = record.without_phi()  # patient identifiers never reach a writer
    return EcgFileMeta(acquired=meta.get("acquired"), device=meta.get("device"), description=job.description)


# ---------------------------------------------------------------------------------------------------- one file


@dataclass(frozen=True)
class DenoisedFile:
    """What :func:`denoise_file` did: the file written (or ``data`` for stdout), rates, length, quantisation."""

    written: WrittenEcg | None
    data: bytes | None
    fs_in: float
    fs_out: float
    n_samples: int
    step_mv: float
    plot: Path | None


def _check_plot_path(plot: Path, force: bool) -> None:
    if plot.suffix.lower() not in PLOT_EXTENSIONS:
        raise InputError(f"{plot.name}: the plot is drawn as {', '.join(PLOT_EXTENSIONS)}; choose one of those")
    if not plot.parent.is_dir():
        raise OutputError(f"output folder {plot.parent} does not exist; create it first")
    if plot.exists() and not force:
        raise OutputError(f"{plot} exists; choose another --plot or add --force to replace it")


def denoise_file(source: str | os.PathLike[str], out: str | os.PathLike[str] | None, job: DenoiseJob, *,
                 fmt: str | None = None, plot: str | os.PathLike[str] | None = None,
                 force: bool = False) -> DenoisedFile:  # fmt: skip
    """Clean one ECG file into ``out`` (format from its extension, or ``fmt``); ``out=None`` returns the file's bytes
    instead (CSV by default, or ``fmt`` ``aecg``: one text file). ``plot``: also draw raw above cleaned (.png, .pdf
    or .svg). Existing outputs are refused unless ``force``; the outputs' names, folders and existence are checked
    before the file is read."""
    if out is None:
        chosen = output_format(None, fmt or DEFAULT_ARCHIVE_FORMAT)
        if len(chosen.suffixes) != 1 or chosen.name == "edf":
            raise InputError(f"{chosen.name} cannot go to stdout; give --out a file name")
    else:
        chosen = output_format(out, fmt)
    if plot is not None:
        _check_plot_path(Path(plot), force)
    if out is not None and not Path(out).parent.is_dir():
        raise OutputError(f"output folder {Path(out).parent} does not exist; create it first")
    record = read_ecg(source)
    cleaned, fs_out = _cleaned(record, job)
    meta = _file_meta(record, job)
    if out is None:
        files, step = encode_ecg(chosen, "stdout", cleaned, fs_out, meta=meta)
        written, data = None, files[chosen.extension]
    else:
        written = write_ecg(out, cleaned, fs_out, meta=meta, fmt=chosen.name, force=force)
        step, data = written.step_mv, None
    if plot is not None:
        figure = plot_raw_and_cleaned(record.signal, record.fs, cleaned, fs_out, title=Path(source).name)
        _write_figure(figure, Path(plot))
    return DenoisedFile(written, data, float(record.fs), fs_out, int(cleaned.shape[1]), step,
                        None if plot is None else Path(plot))  # fmt: skip


def plot_raw_and_cleaned(raw_mv: np.ndarray, fs: float, cleaned_mv: np.ndarray, fs_cleaned: float, *,
                         title: str | None = None, dpi: int = 110):  # noqa: ANN201 - a matplotlib Figure  # fmt: skip
    """The raw ECG above the cleaned one on ECG paper, the same 10-s window of each (the model's: the centre of the
    record) at the same gain. ``raw_mv`` (12, n) at ``fs`` Hz, ``cleaned_mv`` (12, m) at ``fs_cleaned`` Hz."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from cardiacnets.ecgpaper.layout import WINDOW_S, choose_gain, layout_page
    from cardiacnets.ecgpaper.mpl import MM_PER_INCH, draw_page, page_axes

    duration = raw_mv.shape[1] / fs
    start = (duration - WINDOW_S) / 2.0  # the model's centre crop (negative: its zero padding)
    gain = min(choose_gain(raw_mv, fs, start), choose_gain(cleaned_mv, fs_cleaned, start))
    pages = [("raw", layout_page(raw_mv, fs, start_s=start, gain=gain)),
             ("cleaned", layout_page(cleaned_mv, fs_cleaned, start_s=start, gain=gain))]  # fmt: skip
    margin, label, head = 3.0, 6.0, 9.0
    width = pages[0][1].width + 2 * margin
    panel = pages[0][1].height + label + 4.0
    height = head + 2 * panel + margin
    fig = plt.figure(figsize=(width / MM_PER_INCH, height / MM_PER_INCH), dpi=dpi)
    for k, (name, page) in enumerate(pages):
        top = head + k * panel
        ax = page_axes(fig, margin, top, page.width, panel, width, height)
        ax.text(0, label - 1.5, f"{name} ({fs if k == 0 else fs_cleaned:g} Hz)", fontsize=8, weight="bold")
        draw_page(ax, page, y0=label)
        ax.text(page.width - 1, label + page.height + 3, page.gain_note, fontsize=6, color="#555555", ha="right")
    window = f"{max(start, 0.0):.1f}-{min(start + WINDOW_S, duration):.1f} s of {duration:.1f} s"
    fig.text(0.5, 1 - 5.5 / height, f"{title + ': ' if title else ''}raw above cleaned, {window}", fontsize=9,
             ha="center")  # fmt: skip
    return fig


def _write_figure(figure: Any, path: Path) -> None:
    from cardiacnets.ecgpaper.mpl import figure_bytes

    try:
        atomic_write_bytes(path, figure_bytes(figure, path.suffix.lower().lstrip(".")))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------------------------------- archives


@dataclass
class DenoiseSummary:
    total: int
    already_done: int
    ok: int = 0
    error: int = 0
    errors_before: int = 0  # error rows written by earlier runs of the same job
    seconds: float = 0.0
    not_ecg: int = 0  # files set aside as plainly not ECGs


def _relative(item: InputItem, source: Path) -> str | None:
    """The input's path inside the source (POSIX), or None for a zip member that would leave the output folder."""
    if item.member is None:
        return Path(item.path).relative_to(source).as_posix()
    member = PurePosixPath(item.member.replace("\\", "/"))
    if member.is_absolute() or ".." in member.parts or re.match(r"^[A-Za-z]:", item.member):
        return None
    return member.as_posix()


def _output_names(relatives: list[str | None], fmt: OutputFormat) -> list[str | None]:
    """Each input's output path (relative to the output folder): its own path with ``fmt``'s extension; names that
    two inputs would share (``a.xml``, ``a.scp``) keep their old extension in the name (``a_xml.csv``). WFDB record
    names hold only letters, digits, ``-`` and ``_``; anything else becomes ``_``."""

    def name(rel: str, keep_extension: bool) -> str:
        path = PurePosixPath(rel)
        stem = path.name.replace(".", "_") if keep_extension else path.stem
        if fmt.name == "wfdb":
            stem = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
        return (path.parent / (stem + fmt.extension)).as_posix()

    first = [None if rel is None else name(rel, False) for rel in relatives]
    taken: dict[str, int] = {}
    for out in first:
        if out is not None:
            taken[out.lower()] = taken.get(out.lower(), 0) + 1  # case-insensitive file systems too
    names = [None if rel is None else (out if taken[out.lower()] == 1 else name(rel, True))
             for rel, out in zip(relatives, first, strict=True)]  # fmt: skip
    counts: dict[str, int] = {}
    for out in names:
        if out is not None:
            counts[out.lower()] = counts.get(out.lower(), 0) + 1
    return [None if out is None or counts[out.lower()] > 1 else out for out in names]


def _prepare_folder(out_dir: Path, source: Path, force: bool) -> None:
    """Refuse an output folder inside the source (a rerun would read the outputs as inputs) or one holding other
    files without a log (unless ``force``); create it when its parent exists."""
    if source.is_dir() and out_dir.resolve().is_relative_to(source.resolve()):
        raise InputError(f"--out {out_dir} lies inside the source folder {source}; choose a folder outside it")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; for a folder or zip source --out is a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in {f.extension for f in OUTPUT_FORMATS.values()}:
        raise InputError(f"for a folder or zip source --out is a folder, not {out_dir.name}; --format picks the format")
    if out_dir.is_dir() and not (out_dir / LOG_NAME).exists() and any(out_dir.iterdir()) and not force:
        raise OutputError(f"{out_dir} holds files but no {LOG_NAME}; choose an empty or new folder, or add --force")
    try:
        out_dir.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise OutputError(f"output folder {out_dir.parent} does not exist; create it first") from None
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from None


def _check_resumed_options(log: Path, fmt: OutputFormat, job: DenoiseJob) -> None:
    """A resumed job must use the format and rate of the rows already logged."""
    with log.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    requested = "" if job.out_fs is None else f"{job.out_fs:g}"
    theirs = {(row.get("format"), row.get("requested_fs_hz") or "") for row in rows if row.get("format")}
    if theirs and theirs != {(fmt.name, requested)}:
        (f, r), *_ = sorted(theirs)
        raise OutputError(
            f"{log} holds files written as {f} at {r + ' Hz' if r else 'the native rate'}; rerun with those options"
            " to resume, or choose another --out"
        )


def denoise_archive(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], job: DenoiseJob, *,
                    fmt: str | None = None, force: bool = False, progress: bool = True) -> DenoiseSummary:  # fmt: skip
    """Clean every ECG of a directory tree or zip archive into ``out_dir`` (``fmt``: wfdb, csv, edf or aecg; default
    csv), mirroring the inputs' relative paths, with one row per input in ``out_dir/denoise-log.csv``. Resumes: inputs
    already logged are skipped. An output that cannot be written stops the run (rows written are kept)."""
    started = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    chosen = output_format(None, fmt or DEFAULT_ARCHIVE_FORMAT)
    selection = select_inputs(source)  # files that are plainly not ECGs (README, images) are counted, not logged
    items = selection.items
    _prepare_folder(out_dir, source, force)
    log = out_dir / LOG_NAME
    try:
        store = RowStore(log, LOG_COLUMNS, job.identity)
    except OutputLockedError:
        raise OutputLockedError(f"{out_dir} is being written by another cnscreen denoise run; wait for it") from None
    complete = False
    try:
        _check_resumed_options(log, chosen, job)
        relatives = [_relative(item, source) for item in items]
        names = _output_names(relatives, chosen)
        todo = [(item, rel, name) for item, rel, name in zip(items, relatives, names, strict=True)
                if (rel or item.member or item.key) not in store.done]  # fmt: skip
        summary = DenoiseSummary(len(items), len(items) - len(todo), errors_before=store.errors_before,
                                 not_ecg=sum(selection.not_ecg.values()))  # fmt: skip
        with _progress(progress, len(todo), label="denoising") as advance:
            for item, rel, name in todo:
                row = _denoise_item(item, rel, name, out_dir, chosen, job)
                store.write([row])
                summary.ok += row["status"] == STATUS_OK
                summary.error += row["status"] == STATUS_ERROR
                advance(1)
        complete = True
    finally:
        store.close(complete)
    summary.seconds = time.perf_counter() - started
    return summary


def _denoise_item(item: InputItem, rel: str | None, name: str | None, out_dir: Path, fmt: OutputFormat,
                  job: DenoiseJob) -> dict[str, Any]:  # fmt: skip
    """The log row of one input: its output written, or why not. Only an unwritable output raises (it stops the run)."""
    requested = "" if job.out_fs is None else f"{job.out_fs:g}"
    base = {"format": fmt.name, "requested_fs_hz": requested}
    if rel is None:
        where = item.member or item.key
        return error_row(where, "zip member path leaves the archive (absolute or ..); skipped", job.identity) | base
    if name is None:
        return error_row(rel, f"another input has the same {fmt.name} output name; rename one", job.identity) | base
    path = Path(item.path)
    try:
        with tempfile.TemporaryDirectory(prefix="cns-denoise-") as tmp:
            path = _extract_member(item, Path(tmp)) if item.member is not None else path
            record = read_ecg(path)
            cleaned, fs_out = _cleaned(record, job)
            target = out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            # Folder checked by _prepare_folder: a file here is this job's own, from a run stopped before its row.
            written = write_ecg(target, cleaned, fs_out, meta=_file_meta(record, job), fmt=fmt.name, force=True)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write under {out_dir}: {exc.strerror or exc}") from None
    except CardiacNetsError as exc:
        return error_row(rel, str(exc).replace(str(path), rel), job.identity) | base
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the run
        return error_row(rel, f"internal error ({type(exc).__name__}: {exc})", job.identity) | base
    return {"path": rel, "status": STATUS_OK, "reason": "", "output": name, **base,
            "input_format": record.meta.get("format"), "sampling_rate_hz": float(record.fs), "output_rate_hz": fs_out,
            "n_samples": int(cleaned.shape[1]), "quantisation_uv": round(written.step_mv * 1000.0, 6),
            **job.identity}  # fmt: skip


def summary_line(summary: DenoiseSummary, out_dir: Path) -> str:
    """What an archive run did, as the CLI prints it."""
    return (f"{summary.total} inputs: {summary.ok} written, {summary.error} error ({summary.already_done} already in"
            f" {out_dir / LOG_NAME}); {summary.seconds:.2f} s"
            + (f"; {summary.not_ecg} files skipped (not ECGs)" if summary.not_ecg else ""))  # fmt: skip


def denoise(source: str | os.PathLike[str], out: str | os.PathLike[str], job: DenoiseJob, *, fmt: str | None = None,
            plot: str | os.PathLike[str] | None = None, force: bool = False,
            progress: bool = True) -> DenoisedFile | DenoiseSummary:  # fmt: skip
    """``cnscreen denoise``: :func:`denoise_archive` for a directory or zip source, else :func:`denoise_file`
    (``out`` ``-``: the file's bytes come back for stdout)."""
    source = Path(source)
    if not source.exists():
        raise EcgReadError(f"{source}: no such file or directory")
    if is_archive(source):
        if plot is not None:
            raise InputError("--plot draws one ECG; give a single file as the source, or leave --plot out")
        if str(out) == "-":
            raise InputError("a folder or zip source writes many files; give --out a folder")
        return denoise_archive(source, out, job, fmt=fmt, force=force, progress=progress)
    return denoise_file(source, None if str(out) == "-" else out, job, fmt=fmt, plot=plot, force=force)


def file_line(result: DenoisedFile) -> str:
    """What a one-file run wrote, as the CLI prints it."""
    where = "stdout" if result.written is None else ", ".join(str(p) for p in result.written.paths)
    line = (f"wrote {where}: 12 leads x {result.n_samples} samples at {result.fs_out:g} Hz in mV (from"
            f" {result.fs_in:g} Hz; rounding <= {result.step_mv * 500:g} uV)")  # fmt: skip
    return line + (f"; plot {result.plot}" if result.plot is not None else "")
