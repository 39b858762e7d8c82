"""Lead sets (issue 22): the set definitions, the edge's choice from the leads a file holds, lead masking in the
fine-tuning data path, and the declaration a lead-masked model carries into its bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiacnets.errors import ConfigError, InputError
from cardiacnets.leadsets import LEAD_SETS, apply_lead_set, choose_lead_set, lead_set_mask, sample_lead_masks
from cardiacnets.record import LEADS
from cardiacnets.training.data import mask_leads_batch


def test_sets_are_nested_and_named_by_their_leads() -> None:
    assert LEAD_SETS["12"] == tuple(LEADS)
    assert set(LEAD_SETS["I"]) < set(LEAD_SETS["I+II"]) < set(LEAD_SETS["limb6"]) < set(LEAD_SETS["12"])
    assert lead_set_mask("limb6").tolist() == [1.0] * 6 + [0.0] * 6
    with pytest.raises(InputError, match="limb6"):
        lead_set_mask("V1")


def test_apply_lead_set_zeroes_only_the_other_leads() -> None:
    ecg = np.random.default_rng(0).normal(size=(2, 12, 100)).astype(np.float32)
    out = apply_lead_set(ecg, "I+II")
    np.testing.assert_array_equal(out[:, :2], ecg[:, :2])
    assert not out[:, 2:].any() and out.dtype == np.float32
    np.testing.assert_array_equal(apply_lead_set(ecg, "12"), ecg)


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (LEADS, "12"),
        (LEAD_SETS["limb6"], "limb6"),  # a 6-lead device, or I and II with the 4 derived leads
        (("I", "II", "V1"), "I+II"),
        (("I",), "I"),
        (("II", "III"), None),  # no declared set fits
    ],
)
def test_choose_the_richest_declared_set_the_file_holds(available: tuple[str, ...], expected: str | None) -> None:
    assert choose_lead_set(available, list(LEAD_SETS)) == expected


def test_choose_only_among_declared_sets() -> None:
    assert choose_lead_set(LEAD_SETS["limb6"], ["12", "I"]) == "I"
    assert choose_lead_set(LEADS, ["I"]) == "I"
    with pytest.raises(InputError):
        choose_lead_set(LEADS, ["12", "V1-V6"])


def test_sampled_masks_follow_the_probabilities() -> None:
    masks, choice = sample_lead_masks(4000, np.random.default_rng(1), {"12": 0.5, "I": 0.5, "limb6": 0.0})
    assert set(np.unique(choice)) == {0, 1}
    assert abs(float((choice == 0).mean()) - 0.5) < 0.04
    np.testing.assert_array_equal(masks[choice == 1][0], lead_set_mask("I"))


def test_mask_leads_batch_keeps_one_whole_set_per_ecg() -> None:
    torch.manual_seed(0)
    ecg = torch.randn(256, 12, 50)
    out = mask_leads_batch(ecg, {"12": 1.0, "limb6": 1.0, "I+II": 1.0, "I": 1.0})
    patterns = {tuple((row.abs().sum(-1) > 0).int().tolist()) for row in out}
    allowed = {tuple(int(v) for v in lead_set_mask(name)) for name in LEAD_SETS}
    assert patterns == allowed  # every set drawn, nothing else
    kept = out != 0
    assert torch.equal(out[kept], ecg[kept])  # kept leads are untouched
    only_i = mask_leads_batch(ecg, {"I": 1.0})
    assert only_i[:, 1:].abs().sum() == 0 and torch.equal(only_i[:, 0], ecg[:, 0])
    with pytest.raises(ConfigError):
        mask_leads_batch(ecg, {"12": 0.0})


def test_mask_leads_batch_is_reproducible_from_torch_seed() -> None:
    ecg = torch.randn(32, 12, 10)
    torch.manual_seed(3)
    a = mask_leads_batch(ecg, {"12": 1.0, "I": 1.0})
    torch.manual_seed(3)
    b = mask_leads_batch(ecg, {"12": 1.0, "I": 1.0})
    assert torch.equal(a, b)


def test_finetune_config_and_declared_sets() -> None:
    from cardiacnets.training.tasks.finetune import (
        DEFAULT_LEAD_MASKING,
        FinetuneTaskConfig,
        _declared_lead_sets,
    )

    with pytest.raises(ConfigError, match="lead_masking"):
        FinetuneTaskConfig(input="cmr", lead_masking=True)
    with pytest.raises(ConfigError, match="V2"):
        FinetuneTaskConfig(lead_masking=True, lead_sets={"12": 1.0, "V2": 1.0})
    assert _declared_lead_sets(FinetuneTaskConfig(lead_masking=True)) == list(DEFAULT_LEAD_MASKING)
    assert _declared_lead_sets(FinetuneTaskConfig(lead_masking=True, lead_sets={"I": 1.0, "12": 2.0})) == ["12", "I"]


def test_training_forward_masks_leads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task's forward sees masked ECGs when lead masking is on, the full ECG otherwise."""
    from cardiacnets.training.tasks import finetune

    seen: list[torch.Tensor] = []

    class Probe:
        options = finetune.FinetuneTaskConfig(lead_masking=True, lead_sets={"I": 1.0})

        def forward_model(self, x: torch.Tensor, covariates: torch.Tensor, mask: torch.Tensor) -> dict:
            seen.append(x)
            return {}

        def losses(self, out: dict, batch: dict) -> dict:
            return {"loss": torch.zeros(())}

    batch = {"ecg": torch.randn(4, 12, 20), "covariates": torch.zeros(4, 3), "covariate_mask": torch.ones(4, 3)}
    finetune.FinetuneTask.training_forward(Probe(), batch)
    assert seen[-1][:, 1:].abs().sum() == 0 and torch.equal(seen[-1][:, 0], batch["ecg"][:, 0])
    Probe.options = finetune.FinetuneTaskConfig()
    finetune.FinetuneTask.training_forward(Probe(), batch)
    assert torch.equal(seen[-1], batch["ecg"])
