"""The dataset format and the synthetic dataset: determinism, splits, round trips, tamper detection, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiacnets.datasets import (
    DatasetSpec,
    ShardedDataset,
    ShardWriter,
    open_dataset,
    stratified_group_splits,
    write_synthetic,
)
from cardiacnets.datasets.shards import decode_ecg, encode_ecg
from cardiacnets.datasets.splits import hash_splits
from cardiacnets.datasets.synthetic import synthetic_batch
from cardiacnets.errors import DatasetError, InputError


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "synth"
    write_synthetic(out, 12, seed=3, shard_size=5)
    return out


def test_synthetic_items_follow_the_contract_and_are_deterministic() -> None:
    a = open_dataset("synthetic", "all", n_subjects=6, seed=1)
    b = open_dataset("synthetic", "all", n_subjects=6, seed=1)
    item = a[2]
    assert item["ecg"].shape == (12, 5000) and item["ecg"].dtype == torch.float32
    assert item["cine_sa"].shape == (50, 80, 80) and item["cine_la"].shape == (50, 96, 96)
    assert 0.0 <= float(item["cine_sa"].min()) and float(item["cine_sa"].max()) <= 1.0
    assert item["phenotypes"].shape == (82,) and item["labels"].shape == (5,) and item["labels"].dtype == torch.float32
    assert item["cm_subtype"].dtype == torch.int64 and item["cm_subtype"].ndim == 0
    assert item["covariates"].shape == (3,) and torch.equal(item["covariate_mask"], torch.ones(3))
    assert int(item["index"]) == 2
    assert a.modalities == ("ecg", "cine_sa", "cine_la", "phenotypes", "labels")
    for key, value in item.items():
        assert torch.equal(value, b[2][key]), key
    other_seed = open_dataset("synthetic", "all", n_subjects=6, seed=2)[2]
    assert not torch.equal(item["ecg"], other_seed["ecg"])
    # A subject does not depend on the cohort size or on which split view it is read from.
    bigger = open_dataset("synthetic", "all", n_subjects=40, seed=1)
    assert torch.equal(bigger[2]["ecg"], item["ecg"])


def test_synthetic_without_cines_has_no_cine_keys() -> None:
    ds = open_dataset("synthetic", "train", n_subjects=20, seed=0, modalities=["ecg", "labels"])
    item = ds[0]
    assert set(item) == {"ecg", "labels", "cm_subtype", "covariates", "covariate_mask", "index"}
    assert ds.modalities == ("ecg", "labels")


def test_splits_are_disjoint_cover_everything_and_are_70_10_20() -> None:
    n = 20000
    parts = {s: set(open_dataset("synthetic", s, n_subjects=n, seed=5).rows.tolist()) for s in ("train", "val", "test")}
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"] and not parts["val"] & parts["test"]
    assert set().union(*parts.values()) == set(range(n))
    fractions = [len(parts[s]) / n for s in ("train", "val", "test")]
    assert np.allclose(fractions, [0.7, 0.1, 0.2], atol=0.012)
    # The split of a subject is the same in a smaller cohort (pure function of seed and index).
    small = set(open_dataset("synthetic", "test", n_subjects=1000, seed=5).rows.tolist())
    assert small == {i for i in parts["test"] if i < 1000}


def test_hash_split_is_stratified_by_label() -> None:
    """Every label keeps the 70/10/20 proportions: the split ignores the subject's data."""
    from cardiacnets.synth._random import SubjectRandom
    from cardiacnets.synth.subjects import labels_of, sample_subjects

    n = 30000
    indices = np.arange(n)
    # The simulator's latent disease draw (what simulate() labels come from), without rendering 30,000 subjects.
    labels = labels_of(sample_subjects(SubjectRandom(11, indices), mode="balanced")).astype(bool)
    split = hash_splits(indices, 11)
    for k in range(5):
        positives = split[labels[:, k]]
        assert positives.size > 2000
        fractions = np.bincount(positives, minlength=3) / positives.size
        assert np.allclose(fractions, [0.7, 0.1, 0.2], atol=0.025), (k, fractions)


def test_stratified_group_splits_keep_subjects_together_and_strata_in_proportion() -> None:
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, 400, 1500)  # several records per subject
    positive = (subjects % 7 == 0).astype(int)  # label is a property of the subject
    strata = [(int(p),) for p in positive]
    split = stratified_group_splits(subjects.tolist(), strata, seed=1)
    for s in np.unique(subjects):
        assert len(set(split[subjects == s].tolist())) == 1
    for value in (0, 1):
        groups = np.unique(subjects[positive == value])
        per_group = np.array([split[subjects == g][0] for g in groups])
        fractions = np.bincount(per_group, minlength=3) / len(groups)
        assert np.allclose(fractions, [0.7, 0.1, 0.2], atol=0.02), fractions


def test_write_read_round_trip(written: Path) -> None:
    ds = open_dataset(written, "all")
    manifest = json.loads((written / "manifest.json").read_text())
    assert manifest["n_subjects"] == 12 and len(manifest["shards"]) == 3
    assert manifest["source"]["kind"] == "synthetic" and manifest["source"]["seed"] == 3
    assert sum(manifest["split_counts"].values()) == 12
    assert len(manifest["phenotype_names"]) == 82 and manifest["label_names"] == ["CAD", "PH", "PC", "CM", "HF"]
    truth = synthetic_batch(np.arange(12), 3, with_cines=True, mode="population")
    lsb = manifest["arrays"]["ecg"]["lsb_mv"]
    for i in (0, 4, 5, 11):  # both sides of a shard boundary
        item = ds[i]
        assert int(item["index"]) == i
        assert np.max(np.abs(item["ecg"].numpy() - truth["ecg"][i])) <= lsb / 2 + 1e-6
        for name in ("cine_sa", "cine_la"):
            assert np.max(np.abs(item[name].numpy() - truth[name][i])) <= 0.5 / 255 + 1e-6
        np.testing.assert_array_equal(item["phenotypes"].numpy(), truth["phenotypes"][i])
        np.testing.assert_array_equal(item["labels"].numpy(), truth["labels"][i].astype(np.float32))
        assert int(item["cm_subtype"]) == int(truth["cm_subtype"][i])
        np.testing.assert_array_equal(item["covariates"].numpy(), truth["covariates"][i])
    # The on-the-fly dataset with the same seed holds the same subjects in the same splits.
    for split in ("train", "val", "test"):
        on_disk = open_dataset(written, split)
        fly = open_dataset("synthetic", split, n_subjects=12, seed=3)
        assert on_disk.rows.tolist() == fly.rows.tolist()
    fly_item = open_dataset("synthetic", "all", n_subjects=12, seed=3)[4]
    assert torch.equal(fly_item["cine_sa"], ds[4]["cine_sa"])


def test_dataloader_batches_items(written: Path) -> None:
    ds = open_dataset(written, "all", modalities=["ecg", "labels"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=0)))
    assert batch["ecg"].shape == (4, 12, 5000) and batch["labels"].shape == (4, 5) and "cine_sa" not in batch


def test_ecg_int16_encoding_keeps_nan_and_flags_clipping() -> None:
    ecg = np.array([[0.0, 1.2345, -3.0, np.nan, 40.0]], dtype=np.float32)
    counts, clipped = encode_ecg(ecg, 0.001)
    back = decode_ecg(counts, 0.001)
    assert clipped
    assert np.isnan(back[0, 3])
    np.testing.assert_allclose(back[0, :3], [0.0, 1.2345, -3.0], atol=0.0005)
    assert back[0, 4] == pytest.approx(32.767)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_missing_or_unknown_version_raise_dataset_error(written: Path, tmp_path: Path) -> None:
    tampered = _copy(written, tmp_path / "tampered")
    shard = tampered / "shards" / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256"):
        open_dataset(tampered, "all")

    missing = _copy(written, tmp_path / "missing")
    (missing / "shards" / "shard-00002.npz").unlink()
    with pytest.raises(DatasetError, match="missing"):
        open_dataset(missing, "train")

    future = _copy(written, tmp_path / "future")
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["format_version"] = 99
    (future / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="version"):
        open_dataset(future, "train")

    with pytest.raises(DatasetError):
        open_dataset(tmp_path / "nowhere", "train")
    ecg_only = tmp_path / "ecg_only"
    write_synthetic(ecg_only, 3, seed=0, with_cines=False, shard_size=2)
    assert ShardedDataset(ecg_only, "all").modalities == ("ecg", "phenotypes", "labels")
    with pytest.raises(DatasetError, match="lacks modalities"):
        open_dataset(ecg_only, "all", modalities=["cine_sa"])


def test_interrupted_write_resumes_to_the_same_dataset(written: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    calls = {"n": 0}

    def crash_after_two_shards(done: int, total: int) -> None:
        calls["n"] += 1
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_synthetic(out, 12, seed=3, shard_size=5, progress=crash_after_two_shards)
    # A crash in the middle of writing a shard leaves a temporary file and an incomplete manifest.
    (out / "shards" / "shard-00002.npz.tmp").write_bytes(b"partial")
    with pytest.raises(DatasetError, match="interrupted"):
        open_dataset(out, "all")
    with pytest.raises(DatasetError, match="different"):
        write_synthetic(out, 12, seed=4, shard_size=5)
    seen: list[int] = []
    write_synthetic(out, 12, seed=3, shard_size=5, progress=lambda done, total: seen.append(done))
    assert seen[0] == 10  # resumed after the two complete shards
    assert not list((out / "shards").glob("*.tmp"))
    a, b = open_dataset(out, "all"), open_dataset(written, "all")
    for i in range(12):
        for key in ("ecg", "cine_la", "labels"):
            assert torch.equal(a[i][key], b[i][key])
    assert (
        json.loads((out / "manifest.json").read_text())["shards"][2]["sha256"]
        == json.loads((written / "manifest.json").read_text())["shards"][2]["sha256"]
    )
    with pytest.raises(DatasetError, match="complete"):
        write_synthetic(out, 12, seed=3, shard_size=5)


def test_writer_rejects_bad_batches(tmp_path: Path) -> None:
    spec = DatasetSpec(n_subjects=2, modalities=("ecg",), source={"kind": "test"}, shard_size=2)
    writer = ShardWriter(tmp_path / "w", spec)
    batch = {
        "ecg": np.zeros((2, 12, 4000), np.float32),
        "covariates": np.zeros((2, 3), np.float32),
        "split": [0, 0],
        "subject_id": ["a", "b"],
    }
    with pytest.raises(InputError, match="shape"):
        writer.write_shard(batch)
    batch["ecg"] = np.zeros((2, 12, 5000), np.float32)
    batch["split"] = [0, 3]
    with pytest.raises(InputError, match="split"):
        writer.write_shard(batch)


def test_cntrain_generate_writes_a_dataset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cardiacnets.training.cli import app

    out = tmp_path / "gen"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--n-subjects",
            "5",
            "--seed",
            "2",
            "--no-cines",
            "--mode",
            "balanced",
            "--shard-size",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 subjects" in result.output
    ds = open_dataset(out, "all")
    assert ds.modalities == ("ecg", "phenotypes", "labels") and len(ds) == 5
    assert json.loads((out / "manifest.json").read_text())["source"]["mode"] == "balanced"
    again = CliRunner().invoke(app, ["generate", "--n-subjects", "5", "--seed", "2", "--out", str(out)])
    assert again.exit_code == 1 and "error:" in again.output
    bad = CliRunner().invoke(app, ["generate", "--n-subjects", "5", "--mode", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
