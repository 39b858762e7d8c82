"""`cnscreen batch --engine ray`: inputs listed as the built-in engine lists them, Parquet parts with a manifest that
survive any kill, and, on a real two-node Ray cluster on this machine, the built-in engine's rows exactly
once across a killed driver and a lost node.

The Ray tests start real Ray processes (a head and a second node, one CPU each). One runs in the default tier; the
fault tests are long on two cores and run with ``CNS_CLUSTER=1`` (CI sets it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cardiacnets.edge.batch import output_columns, run_batch
from cardiacnets.edge.cluster import PartStore, list_inputs
from cardiacnets.edge.cluster.parts import COMPACT_PREFIX, MANIFEST, TEMP_PREFIX, keys_name
from cardiacnets.edge.cluster.sources import ClusterInput, fetch_remote, glob_regex, restore_uri
from cardiacnets.edge.screen import prepare_file
from cardiacnets.errors import OutputLockedError, OutputMismatchError
from cardiacnets.preprocess import PreprocessConfig
from tests.edge_fixtures import make_tiny_bundle
from tests.test_edge_batch import build_archive
from tests.test_edge_screen import write_wfdb_ecg

JOB = {"bundle_name": "b", "bundle_version": "1", "bundle_digest": "d" * 64, "preprocess_version": "p1"}
COLUMNS = output_columns(False)
# The driver as a child process; the flush knobs are lowered so that parts are written (and kills land between
# them) within seconds on the small test archive.
DRIVER = [
    sys.executable,
    "-c",
    "import sys; import cardiacnets.edge.cluster.run as run; run.ROWS_PER_PART, run.FLUSH_SECONDS = 4, 0.0;"
    " from cardiacnets.edge.cli import main; main(sys.argv[1:])",
]
# Each Ray node of the test cluster: one CPU and a small object store. The nodes take this machine's own address, as a
# driver started without options expects (pinned to 127.0.0.1 they are unreachable for a driver that is not).
NODE = {"num_cpus": 1, "object_store_memory": 200 * 1024 * 1024}
heavy = pytest.mark.skipif(os.environ.get("CNS_CLUSTER") != "1", reason="cluster fault tier: set CNS_CLUSTER=1")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _table(keys: list[str], status: str = "ok") -> Any:
    import pyarrow as pa

    from cardiacnets.edge.batch.store import _arrow_schema

    rows = [{"path": k, "status": status, "p_CAD": 0.5, **JOB} for k in keys]
    return pa.Table.from_pylist(rows, schema=_arrow_schema(COLUMNS))


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines() if line.strip()]


# ---- the part store: what a kill can leave behind, repaired on reopening


def test_parts_resume_from_the_manifest_and_repair_what_a_kill_leaves(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = PartStore(out, COLUMNS, JOB)
    assert len(store.write(_table(["a", "b", "a"]))) == 2  # a key twice in one block: written once
    assert store.write(_table(["b"])).num_rows == 0  # finished keys are never written again
    store.close()
    # What kills leave: a temporary file (before the rename), a part the manifest does not list (between the rename
    # and the append), and a torn last manifest line (mid-append).
    import pyarrow.parquet as pq

    (out / f"{TEMP_PREFIX}123-part-x.parquet").write_bytes(b"half a file")
    orphan = out / keys_name("part-", ["c", "d"])
    pq.write_table(_table(["c", "d"], status="error"), orphan)
    stale = out / keys_name("part-", ["a", "e"])  # overlaps a finished key: must not be adopted
    pq.write_table(_table(["a", "e"]), stale)
    with (out / MANIFEST).open("a") as handle:
        handle.write('{"part": "part-torn.parquet", "keys": ["z"')
    store = PartStore(out, COLUMNS, JOB)
    assert store.done == {"a", "b", "c", "d"} and store.errors_before == 2
    assert not stale.exists() and not any(p.name.startswith(TEMP_PREFIX) for p in out.iterdir())
    assert [entry["keys"] for entry in _manifest(out)] == [["a", "b"], ["c", "d"]]
    store.close()


def test_a_second_writer_and_another_bundle_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = PartStore(out, COLUMNS, JOB)
    with pytest.raises(OutputLockedError):
        PartStore(out, COLUMNS, JOB)
    store.write(_table(["a"]))
    store.close()
    with pytest.raises(OutputMismatchError, match="another model bundle"):
        PartStore(out, COLUMNS, {**JOB, "bundle_digest": "e" * 64})
    with pytest.raises(OutputMismatchError, match="other columns"):
        PartStore(out, output_columns(True), JOB)
    assert PartStore(out, COLUMNS, JOB).done == {"a"}  # nothing was lost by the refusals


def test_compaction_leaves_one_row_per_key_even_when_killed_midway(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    store = PartStore(out, COLUMNS, JOB)
    for i in range(5):
        store.write(_table([f"k{i}a", f"k{i}b"]))
    # A duplicate a buggy writer might have left: a second part listing a finished key.
    pq.write_table(_table(["k0a"], status="error"), out / "part-dup.parquet")
    store._append_manifest("part-dup.parquet", ["k0a"], 1)

    def killed(written: list) -> None:
        raise KeyboardInterrupt  # the compacted files exist, the manifest still lists the old parts

    store._swap_manifest = killed  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        store.compact(rows_per_file=4)
    store.close()
    assert any(p.name.startswith(COMPACT_PREFIX) for p in out.iterdir())
    store = PartStore(out, COLUMNS, JOB)  # the compacted files overlap finished keys: deleted, nothing lost
    assert not any(p.name.startswith(COMPACT_PREFIX) for p in out.iterdir()) and len(store.done) == 10
    store.compact(rows_per_file=4)
    store.close()
    table = pq.read_table(out)
    paths = table.column("path").to_pylist()
    assert sorted(paths) == sorted(f"k{i}{s}" for i in range(5) for s in "ab") and len(paths) == len(set(paths))
    assert dict(zip(paths, table.column("status").to_pylist(), strict=True))["k0a"] == "ok"  # the first one written
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(e["part"] for e in _manifest(out))
    assert len(_manifest(out)) == 3  # 10 rows, 4 per file


# ---- listing: the built-in engine's keys for local sources, the same rules for globs and URIs


def _tree(root: Path) -> None:
    write_wfdb_ecg(root / "a", "rec1")
    write_wfdb_ecg(root / "b", "rec2")
    (root / "b" / "notes.txt").write_text("not an ECG\n")
    (root / "b" / "scan.png").write_bytes(b"\x89PNG....")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.xml").write_text("<x/>")
    (root / "b" / "c.xml").write_text("<x/>")


def test_local_sources_keep_the_builtin_keys_and_globs_follow_the_same_rules(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    _tree(root)
    tree = list_inputs(root)
    assert [i.key for i in tree.items] == [str(root / "a/rec1.hea"), str(root / "b/c.xml"), str(root / "b/rec2.hea")]
    assert tree.not_ecg == {"text": 1, "image": 1}
    everything = list_inputs(f"{root}/**/*")
    assert [i.key for i in everything.items] == [i.key for i in tree.items]  # companions and hidden files left out
    assert [Path(i.key).name for i in list_inputs(f"{root}/*/*.hea").items] == ["rec1.hea", "rec2.hea"]
    assert [Path(i.key).name for i in list_inputs(root, exclude=["b/*"]).items] == ["rec1.hea"]
    archive = tmp_path / "ecgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(root / "a/rec1.hea", "a/rec1.hea")
        zf.write(root / "a/rec1.dat", "a/rec1.dat")
    assert [i.key for i in list_inputs(archive).items] == [f"{archive}!a/rec1.hea"]


def test_uris_list_through_pyarrow_or_fsspec_and_fetch_with_their_companions(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    _tree(root)
    listed = list_inputs(f"file://{root}/")  # pyarrow's own filesystem
    assert [i.key for i in listed.items] == [f"file://{root}/{r}" for r in ("a/rec1.hea", "b/c.xml", "b/rec2.hea")]
    assert listed.not_ecg == {"text": 1, "image": 1}
    first = listed.items[0]
    assert isinstance(first, ClusterInput) and [Path(c).name for c in first.companions] == ["rec1.dat"]
    (tmp_path / "work").mkdir()
    fetched = fetch_remote(first, tmp_path / "work")
    config = PreprocessConfig()
    assert (prepare_file(fetched, config).ecg == prepare_file(root / "a/rec1.hea", config).ecg).all()
    # An fsspec-only protocol (pyarrow has no "local" filesystem), with a glob and an include pattern.
    hea = list_inputs(f"local://{root}/**/rec*.hea", include=["b/*"])
    assert [Path(i.path).name for i in hea.items] == ["rec2.hea"] and hea.excluded == 1
    assert [Path(c).name for c in hea.items[0].companions] == ["rec2.dat"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("s3:/bucket/ecg/*.xml", "s3://bucket/ecg/*.xml"),  # what typer's Path makes of s3://bucket/...
        ("file:/data/ecg", "file:///data/ecg"),
        ("gs://bucket/x", "gs://bucket/x"),
        ("/data/ecg", "/data/ecg"),
        ("C:/data", "C:/data"),
    ],
)
def test_uris_folded_by_the_command_line_are_restored(typed: str, meant: str) -> None:
    assert restore_uri(typed) == meant


def test_glob_patterns_span_folders_only_with_a_double_star() -> None:
    assert glob_regex("*.xml").match("a.xml") and not glob_regex("*.xml").match("d/a.xml")
    assert glob_regex("**/*.xml").match("a.xml") and glob_regex("**/*.xml").match("d/e/a.xml")
    assert glob_regex("rec[0-9].hea").match("rec1.hea") and not glob_regex("rec[!0-9].hea").match("rec1.hea")


# ---- the command line: the built-in engine stays the default and never imports Ray


def test_the_builtin_engine_never_imports_ray(tiny_bundle: Path, tmp_path: Path) -> None:
    write_wfdb_ecg(tmp_path / "archive", "rec")
    code = (
        "import sys\nfrom cardiacnets.edge.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print('exit', e.code, 'ray' in sys.modules)"
    )
    args = ["batch", str(tmp_path / "archive"), "--out", str(tmp_path / "o.csv"), "--bundle", str(tiny_bundle)]
    proc = subprocess.run([sys.executable, "-c", code, *args, "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["exit", "0", "False"], proc.stderr
    assert (tmp_path / "o.csv").read_text().count("\n") == 2


def test_engine_options_are_checked(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cardiacnets.edge.cli import app

    runner = CliRunner()
    base = ["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--bundle", str(tiny_bundle)]
    assert runner.invoke(app, [*base, "--actors", "2"]).exit_code == 2  # a Ray option without --engine ray
    assert runner.invoke(app, [*base, "--engine", "spark"]).exit_code == 2
    refused = runner.invoke(app, [*base, "--engine", "ray", "--streams", "2"])
    assert refused.exit_code == 1 and "--streams" in refused.output and "Traceback" not in refused.output
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    missing = runner.invoke(app, [*base, "--engine", "ray"])
    assert missing.exit_code == 1 and "cardiacnets[cluster]" in missing.output


# ---- a real two-node Ray cluster on this machine


def _start_cluster() -> Any:
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Ray is not installed: scripts/install.sh installs the [cluster] extra")
        pytest.skip("Ray is not installed (pip install -e '.[cluster]')")
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    worker = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    return cluster, worker


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    cluster, worker = _start_cluster()
    yield cluster, worker
    cluster.shutdown()


@pytest.fixture(scope="module")
def mixed_archive(
    tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, conformance_dir: Path
) -> tuple[Path, Path, int]:
    """Synthetic WFDB records, conformance files and broken files; the built-in engine's rows for them (Parquet);
    how many inputs."""
    root = tmp_path_factory.mktemp("cluster")
    good, broken = build_archive(root / "archive", conformance_dir, n_good=24)
    run_batch(root / "archive", root / "reference.parquet", bundle=tiny_bundle, workers=1, progress=False)
    return root / "archive", root / "reference.parquet", len(good | broken)


def _rows(path: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = table.to_pylist()
    assert table.column_names == COLUMNS
    assert len(rows) == len({r["path"] for r in rows}), "an input has more than one row"
    return {r["path"]: r for r in rows}


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _assert_rows_equal(out: Path, reference_file: Path) -> None:
    """``out`` holds the built-in engine's rows (``reference_file``): same schema, same inputs, equal values."""
    import pyarrow.parquet as pq

    for part in out.glob("*.parquet"):
        assert pq.read_schema(part).remove_metadata() == pq.read_schema(reference_file).remove_metadata()
    rows, reference = _rows(out), _rows(reference_file)
    assert rows.keys() == reference.keys()
    differing = {(key, c) for key, row in rows.items() for c in COLUMNS if not _same(row[c], reference[key][c])}
    assert not differing, sorted(differing)[:5]


def _driver(source: Path | str, out: Path, bundle: Path, address: str, *extra: str) -> subprocess.Popen:
    """The driver in a child process (two ECGs per inference call: many small parts, so kills land between them)."""
    command = [*DRIVER, "batch", str(source), "--out", str(out), "--bundle", str(bundle), "--engine", "ray",
               "--address", address, "--batch-size", "2", "--quiet", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def _finished_keys(out: Path) -> int:
    try:
        return sum(len(e["keys"]) for e in _manifest(out))
    except (OSError, json.JSONDecodeError):
        return 0


def test_the_reading_runs_as_tasks_apart_from_the_inference_actors(ray_cluster: Any, tiny_bundle: Path) -> None:
    """Ray Data fuses consecutive stages whose resource requests agree; fused, each actor would read its own inputs."""
    import contextlib
    import io

    import ray

    from cardiacnets.edge.cluster.run import _build_dataset

    cluster, _ = ray_cluster
    stages = {"config": {}, "workers": None, "batch_size": 4, "bundle_ref": [None], "digest": "", "job": {},
              "actor_options": {}, "actors": 1, "cpus_per_actor": 0.0, "gpus_per_actor": 0.0}  # fmt: skip
    ray.init(address=cluster.address, logging_level=logging.ERROR)
    try:
        plan = io.StringIO()
        with contextlib.redirect_stdout(plan):
            _build_dataset(ray, [ClusterInput("k", "p")], stages).explain()
    finally:
        ray.shutdown()
    optimized = plan.getvalue().split("Physical Plan (Optimized)")[-1]
    assert "TaskPoolMapOperator[" in optimized and "MapBatches(prepare_batch)]" in optimized
    assert "ActorPoolMapOperator[MapBatches(InferenceActor)]" in optimized


def test_two_nodes_give_the_builtin_rows_once_and_resume_from_the_manifest(
    ray_cluster: Any, mixed_archive: tuple[Path, Path, int], tiny_bundle: Path, tmp_path: Path
) -> None:
    cluster, _ = ray_cluster
    archive, reference, inputs = mixed_archive
    out = tmp_path / "rows"
    code, stderr = _finish(_driver(archive, out, tiny_bundle, cluster.address))
    assert code == 3, stderr  # the broken files are error rows, as with the built-in engine
    assert f"{inputs} inputs:" in stderr and "Traceback" not in stderr
    _assert_rows_equal(out, reference)
    assert [p.name[: len(COMPACT_PREFIX)] for p in out.glob("*.parquet")] == [COMPACT_PREFIX]  # compacted
    assert "PATIENT^" not in stderr and "MRN0" not in stderr
    # Rerun: everything is in the manifest, so nothing is read, screened or written again.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, stderr = _finish(_driver(archive, out, tiny_bundle, cluster.address))
    assert code == 3 and f"({inputs} already in" in stderr, stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }


@heavy
def test_a_driver_killed_at_random_points_then_rerun_writes_each_row_once(
    ray_cluster: Any, mixed_archive: tuple[Path, Path, int], tiny_bundle: Path, tmp_path: Path
) -> None:
    cluster, _ = ray_cluster
    archive, reference, inputs = mixed_archive
    out = tmp_path / "rows"
    rng = random.Random(21)
    mid_run_kills = 0
    for _ in range(3):
        proc = _driver(archive, out, tiny_bundle, cluster.address)
        before = _finished_keys(out)
        deadline = time.monotonic() + 300
        while proc.poll() is None and _finished_keys(out) == before and time.monotonic() < deadline:
            time.sleep(0.2)  # until this run has written a part
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            done = _finished_keys(out)
            os.killpg(proc.pid, 9)
            mid_run_kills += before < done < inputs
        proc.wait()
    assert mid_run_kills >= 1, "no kill landed while rows were being written; the test proved nothing"
    code, stderr = _finish(_driver(archive, out, tiny_bundle, cluster.address))
    assert code == 3, stderr
    _assert_rows_equal(out, reference)


@heavy
def test_a_node_lost_mid_run_costs_no_row_and_duplicates_none(
    ray_cluster: Any, mixed_archive: tuple[Path, Path, int], tiny_bundle: Path, tmp_path: Path
) -> None:
    """Last in this module: it takes the cluster's second node away (and adds a fresh one back afterwards)."""
    cluster, worker = ray_cluster
    archive, reference, inputs = mixed_archive
    out = tmp_path / "rows"
    proc = _driver(archive, out, tiny_bundle, cluster.address, "--actors", "2")
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and _finished_keys(out) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        done_at_loss = _finished_keys(out)
        assert proc.poll() is None and 0 < done_at_loss < inputs, "the node was not lost mid-run"
        cluster.remove_node(worker, allow_graceful=False)
        code, stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        cluster.add_node(**NODE)
    assert code == 3, stderr
    _assert_rows_equal(out, reference)
