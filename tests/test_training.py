"""Training framework: schedule, sampler, config layering, best-checkpoint selection, stage smoke runs through the
CLI on the synthetic cohort, exact resume after a kill, and torchrun DDP on CPU (gloo)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from cardiacnets.errors import CheckpointError, ConfigError
from cardiacnets.models import from_pretrained, read_pretrained_metadata
from cardiacnets.models.ecg_vit import EcgViT, EcgViTConfig
from cardiacnets.training.cli import app
from cardiacnets.training.config import RunConfig, TrainConfig, resolve_config
from cardiacnets.training.data import augment_ecg_batch
from cardiacnets.training.loop import StatefulBatchSampler, Task, lr_at, run_training

REPO = Path(__file__).resolve().parents[1]
FAST = ["--set", "train.progress=false", "--set", "train.log_every=1", "--set", "train.warmup_steps=2"]


def _rows(run_dir: Path, split: str = "train", name: str = "loss") -> dict[int, float]:
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return {
            int(r["step"]): float(r["value"]) for r in csv.DictReader(fh) if r["split"] == split and r["name"] == name
        }


def _invoke(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


# --- pure parts ------------------------------------------------------------------------------------------------------


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    assert math.isclose(lr_at(0, cfg), 1e-4)
    assert math.isclose(lr_at(4, cfg), 5e-4)
    assert math.isclose(lr_at(9, cfg), 1e-3)
    assert math.isclose(lr_at(10, cfg), 1e-3)  # cosine starts at the peak
    assert math.isclose(lr_at(60, cfg), (1e-3 + 1e-5) / 2)  # half way through the cosine
    assert math.isclose(lr_at(110, cfg), 1e-5)
    values = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_sampler_shards_disjoint_and_resumes() -> None:
    a = list(StatefulBatchSampler(23, 4, seed=3, epoch=1, rank=0, world_size=2))
    b = list(StatefulBatchSampler(23, 4, seed=3, epoch=1, rank=1, world_size=2))
    assert len(a) == len(b) == 2  # 23 // (4 * 2)
    flat_a, flat_b = sum(a, []), sum(b, [])
    assert not set(flat_a) & set(flat_b) and len(set(flat_a + flat_b)) == 16
    assert list(StatefulBatchSampler(23, 4, seed=3, epoch=1, start_batch=1, rank=0, world_size=2)) == a[1:]
    assert list(StatefulBatchSampler(23, 4, seed=3, epoch=2, rank=0, world_size=2)) != a  # a new order per epoch
    with pytest.raises(ConfigError):
        StatefulBatchSampler(5, 4, seed=0, world_size=2)


def test_config_layers_and_strict_keys(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("train:\n  lr: 0.002\n  batch_size: 3\ndata:\n  n_subjects: 40\n")
    cfg = resolve_config(
        "cmr-ssl", config_file=user, flags={"train.batch_size": 5, "model": None}, sets=["train.betas=[0.8,0.9]"]
    )
    assert cfg.train.lr == 0.002 and cfg.train.batch_size == 5 and cfg.data.n_subjects == 40
    assert cfg.train.betas == (0.8, 0.9) and cfg.model == "tiny"  # untouched default from cmr-ssl.yaml
    with pytest.raises(ConfigError, match="lrr"):
        resolve_config("cmr-ssl", sets=["train.lrr=1"])
    with pytest.raises(ConfigError, match="batch_size"):
        resolve_config("cmr-ssl", sets=["train.batch_size=many"])
    assert resolve_config("cmr-ssl", sets=["train.lr=5e-4"]).train.lr == 5e-4  # YAML 1.1 reads 5e-4 as a string
    with pytest.raises(ConfigError, match="train.lr"):
        resolve_config("cmr-ssl", sets=["train.lr=fast"])


# --- best-checkpoint selection on a toy task --------------------------------------------------------------------------


class _Items(torch.utils.data.Dataset):
    def __init__(self, n: int, split: str) -> None:
        self.n, self.split = n, split

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(12, 200, generator=g), "split": self.split}


class _ScriptedTask(Task):
    """Validation metric follows a script, so the best step is known in advance."""

    name = "toy"
    selection_metric = "val_score"
    selection_mode = "max"

    def __init__(self, scores: list[float]) -> None:
        cfg = EcgViTConfig(n_samples=200, patch_samples=100, embed_dim=16, depth=1, num_heads=2)
        self.model = EcgViT(cfg)
        self.forward_model = self.model
        self.scores = list(scores)
        self.seen_splits: set[str] = set()

    def train_dataset(self) -> _Items:
        return _Items(16, "train")

    def val_dataset(self) -> _Items:
        return _Items(4, "val")

    def training_forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": self.forward_model(batch["x"]).square().mean()}

    def evaluate(self, loader: Any) -> dict[str, float]:
        for batch in loader:
            self.seen_splits.update(batch["split"])
        return {"val_score": self.scores.pop(0)}


def test_best_checkpoint_follows_validation_metric(tmp_path: Path) -> None:
    cfg = RunConfig(stage="toy", out=str(tmp_path / "run"))
    cfg.train = TrainConfig(max_steps=4, batch_size=4, eval_every=1, ckpt_every=2, warmup_steps=1, progress=False)
    task = _ScriptedTask([0.2, 0.9, 0.5, 0.7])
    result = run_training(task, cfg)
    assert result.best_step == 2 and result.best_value == 0.9
    meta = read_pretrained_metadata(tmp_path / "run" / "best")
    assert meta["step"] == 2 and meta["selection_metric"] == "val_score" and meta["split"] == "val"
    assert task.seen_splits == {"val"}
    assert isinstance(from_pretrained(tmp_path / "run" / "best"), EcgViT)
    with pytest.raises(CheckpointError, match="--resume"):  # never silently overwrite a run
        run_training(_ScriptedTask([0.0]), cfg)


# --- stages through the CLI on the synthetic cohort -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cmr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cmr") / "run"
    args = ["cmr-ssl", "--data", "synthetic", "--n-subjects", "16", "--model", "tiny", "--max-steps", "2"]
    summary = _invoke([*args, "--batch-size", "2", "--out", str(out), *FAST, "--set", "train.eval_batch_size=2"])
    assert summary["step"] == 2
    return out


def test_cmr_ssl_smoke_run_writes_run_dir(cmr_run: Path) -> None:
    for rel in ("config.yaml", "metrics.csv", "checkpoints/last.pt", "best/config.json", "best/model.safetensors"):
        assert (cmr_run / rel).is_file(), rel
    assert any((cmr_run / "tb").iterdir())
    pngs = sorted((cmr_run / "reconstructions").glob("*.png"))
    assert pngs and pngs[-1].stat().st_size > 1000
    saved = yaml.safe_load((cmr_run / "config.yaml").read_text())
    assert saved["train"]["max_steps"] == 2 and saved["data"]["n_subjects"] == 16 and saved["stage"] == "cmr-ssl"
    losses = _rows(cmr_run)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    assert "val_loss" in {r for r in _val_names(cmr_run)}


def _val_names(run_dir: Path) -> set[str]:
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return {r["name"] for r in csv.DictReader(fh) if r["split"] == "val"}


def test_align_smoke_run_with_frozen_cmr_towers(cmr_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "align"
    args = ["align", "--cmr", str(cmr_run), "--data", "synthetic", "--n-subjects", "16", "--model", "tiny"]
    summary = _invoke([*args, "--max-steps", "2", "--batch-size", "2", "--out", str(out), *FAST])
    assert summary["step"] == 2
    assert {"val_loss", "val_ecg_to_cmr_top1", "val_ecg_to_cmr_top5", "val_ecg_to_cmr_chance_top1"} <= _val_names(out)
    best = from_pretrained(out / "best")
    ssl = from_pretrained(cmr_run / "best")
    for key, value in ssl.sa_encoder.state_dict().items():  # the CMR towers stayed frozen at the cmr-ssl weights
        assert torch.equal(best.sa_encoder.state_dict()[key], value), key
    assert read_pretrained_metadata(out / "best")["ecg_preprocess"]["kind"] == "full"


def test_align_smoke_run_with_paper_augmentation(cmr_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "align-aug"
    args = ["align", "--cmr", str(cmr_run), "--data", "synthetic", "--n-subjects", "16", "--model", "tiny"]
    summary = _invoke(
        [*args, "--max-steps", "2", "--batch-size", "2", "--out", str(out), *FAST, "--set", "task.augment=true"]
    )
    assert summary["step"] == 2
    assert all(math.isfinite(v) for v in _rows(out).values())
    assert yaml.safe_load((out / "config.yaml").read_text())["task"]["augment"] is True


def test_align_with_cached_cmr_features_reproduces_the_cine_run(cmr_run: Path, tmp_path: Path) -> None:
    args = ["align", "--cmr", str(cmr_run), "--data", "synthetic", "--n-subjects", "16", "--model", "tiny"]
    args += ["--max-steps", "2", "--batch-size", "4", *FAST]
    _invoke([*args, "--out", str(tmp_path / "cines")])
    _invoke([*args, "--out", str(tmp_path / "feats"), "--set", "task.cache_cmr_features=true"])
    cines, feats = _rows(tmp_path / "cines"), _rows(tmp_path / "feats")
    assert cines.keys() == feats.keys() == {1, 2}
    for step in cines:  # the frozen towers' features do not depend on being computed per subject or per batch
        assert math.isclose(cines[step], feats[step], rel_tol=1e-4), (step, cines[step], feats[step])
    val = _rows(tmp_path / "feats", "val", "val_ecg_to_cmr_top5")
    assert val and math.isclose(val[2], _rows(tmp_path / "cines", "val", "val_ecg_to_cmr_top5")[2])


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    return 2 * (x - lo) / (hi - lo) - 1


def test_augment_ecg_batch_identity_and_flips() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 12, 500)
    same = augment_ecg_batch(x, min_crop_fraction=1.0, p_time_flip=0.0, p_sign_flip=0.0)
    torch.testing.assert_close(same, _minmax(x), atol=1e-5, rtol=0)
    flipped = augment_ecg_batch(x, min_crop_fraction=1.0, p_time_flip=1.0, p_sign_flip=0.0)
    torch.testing.assert_close(flipped, _minmax(x.flip(-1)), atol=1e-5, rtol=0)
    negated = augment_ecg_batch(x, min_crop_fraction=1.0, p_time_flip=0.0, p_sign_flip=1.0)
    torch.testing.assert_close(negated, _minmax(-x), atol=1e-5, rtol=0)


def test_augment_ecg_batch_crop_resize_stretches_time() -> None:
    # 20 cycles of a sine across the record: a crop keeping a fraction f leaves about 20 f cycles after resizing
    n, cycles = 2000, 20
    t = torch.arange(n) / n
    x = torch.sin(2 * math.pi * cycles * t).expand(64, 12, n).clone()
    torch.manual_seed(1)
    y = augment_ecg_batch(x, min_crop_fraction=0.5, p_time_flip=0.0, p_sign_flip=0.0)
    crossings = ((y[:, 0, 1:] > 0) != (y[:, 0, :-1] > 0)).sum(-1).float() / 2  # cycles per output record
    assert crossings.min() >= 0.5 * cycles - 1 and crossings.max() <= cycles + 1
    assert 0.65 * cycles < crossings.mean() < 0.85 * cycles  # E[f] = 0.75 for f ~ U(0.5, 1)
    assert torch.equal(y[:, 0], y[:, 11])  # one crop for all leads: they stay synchronous
    assert torch.allclose(y.amin(-1), torch.tensor(-1.0)) and torch.allclose(y.amax(-1), torch.tensor(1.0))


def test_augment_ecg_batch_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        augment_ecg_batch(torch.zeros(12, 100))
    with pytest.raises(ConfigError):
        augment_ecg_batch(torch.zeros(1, 12, 100), min_crop_fraction=0.0)


def test_align_without_cmr_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["align", "--out", str(tmp_path / "a"), "--max-steps", "1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    message = result.output.strip()
    assert message.startswith("cntrain: error:") and "--cmr" in message and "\n" not in message


class _FakeCohort(torch.utils.data.Dataset):
    """Same item contract as ``cardiacnets.datasets.open_dataset`` (random content, deterministic per index)."""

    def __init__(self, split: str, n_subjects: int, seed: int) -> None:
        sizes = {"train": int(n_subjects * 0.8), "val": max(2, n_subjects // 10)}
        self.n, self.offset = sizes.get(split, 2), {"train": 0, "val": 10_000}.get(split, 20_000) + seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.offset + i)
        return {"ecg": torch.randn(12, 5000, generator=g), "cine_sa": torch.rand(50, 80, 80, generator=g),
                "cine_la": torch.rand(50, 96, 96, generator=g), "phenotypes": torch.randn(82, generator=g),
                "index": torch.tensor(i)}  # fmt: skip


@pytest.fixture
def fake_cohort(monkeypatch: pytest.MonkeyPatch) -> None:
    import cardiacnets.datasets

    def fake_open(source: str, split: str, *, n_subjects: int | None = None, seed: int = 0, modalities=None):
        return _FakeCohort(split, n_subjects or 16, seed)

    monkeypatch.setattr(cardiacnets.datasets, "open_dataset", fake_open)


def test_killed_run_resumes_with_identical_losses(tmp_path: Path, fake_cohort: None) -> None:
    base = ["cmr-ssl", "--data", "fake", "--n-subjects", "5", "--max-steps", "4", "--batch-size", "2", *FAST]
    base += ["--set", "train.ckpt_every=2", "--set", "train.eval_every=100", "--set", "train.max_eval_batches=1"]
    base += ["--set", "task.reconstruction_images=false", "--set", "data.cache=true"]
    _invoke([*base, "--out", str(tmp_path / "straight")])
    # "kill" after step 3: the last checkpoint is step 2, so step 3 is recomputed after the resume
    stopped = _invoke([*base, "--out", str(tmp_path / "killed"), "--set", "train.stop_after_step=3"])
    assert stopped["stopped_early"] and stopped["step"] == 3
    assert not (tmp_path / "killed" / "best").exists()
    _invoke(["cmr-ssl", "--out", str(tmp_path / "killed"), "--resume", "--set", "train.stop_after_step=null"])
    straight, resumed = _rows(tmp_path / "straight"), _rows(tmp_path / "killed")
    assert sorted(resumed) == [1, 2, 3, 4]  # 4 train subjects / batch 2: steps 3-4 are in the second epoch
    assert resumed == straight
    assert _rows(tmp_path / "killed", "val", "val_loss") == _rows(tmp_path / "straight", "val", "val_loss")


def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cardiacnets.training.cli", "cmr-ssl", "--data", "synthetic", "--n-subjects", "16",
           "--max-steps", "2", "--batch-size", "2", "--out", str(out), *FAST,
           "--set", "task.reconstruction_images=false"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["step"] == 2
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # per-rank masks differ
    assert sorted(_rows(out)) == [1, 2] and (out / "best" / "model.safetensors").is_file()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_command_twice_gives_byte_identical_weights(tmp_path: Path, fake_cohort: None, precision: str) -> None:
    """The demo recipe's promise: a stage rerun with the same seed and precision writes the same model, bit for bit
    (bf16 autocast included: the recipe's alignment and fine-tuning use it)."""
    base = ["cmr-ssl", "--data", "fake", "--n-subjects", "5", "--max-steps", "3", "--batch-size", "2", *FAST]
    base += [
        "--set",
        "train.eval_every=3",
        "--set",
        "train.max_eval_batches=1",
        "--set",
        f"train.precision={precision}",
    ]
    base += ["--set", "task.reconstruction_images=false"]
    first = _invoke([*base, "--out", str(tmp_path / "a")])
    _invoke([*base, "--out", str(tmp_path / "b")])
    weights = [(tmp_path / run / "best" / "model.safetensors").read_bytes() for run in ("a", "b")]
    assert first["step"] == 3 and weights[0] == weights[1]
    other_seed = _invoke([*base, "--out", str(tmp_path / "c"), "--seed", "1"])
    assert other_seed["step"] == 3
    assert (tmp_path / "c" / "best" / "model.safetensors").read_bytes() != weights[0]  # the check can fail
