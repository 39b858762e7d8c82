"""Models: registry, encoder API, save/load, masked image modelling and InfoNCE."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cardiacnets.errors import ConfigError, InputError
from cardiacnets.models import create_model, from_pretrained, list_models, read_pretrained_metadata, save_pretrained
from cardiacnets.models.alignment import AlignmentModel
from cardiacnets.models.cmr_mim import CmrSslModel, masked_reconstruction_loss, random_patch_mask
from cardiacnets.models.cmr_swin import CmrSwin, CmrSwinConfig
from cardiacnets.models.contrastive import clip_loss
from cardiacnets.models.ecg_vit import EcgViT, count_parameters


def _inputs(model: torch.nn.Module, b: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    if isinstance(model, EcgViT):
        return (torch.randn(b, 12, 5000, generator=g),)
    if isinstance(model, CmrSwin):
        s = model.config.image_size
        return (torch.rand(b, 50, s, s, generator=g) * 2 - 1,)
    sa = torch.rand(b, 50, 80, 80, generator=g) * 2 - 1
    la = torch.rand(b, 50, 96, 96, generator=g) * 2 - 1
    if isinstance(model, CmrSslModel):
        return (sa, la)
    if getattr(model, "model_type", "") == "screening":  # another engineer's model type, same registry
        n = model.config.n_covariates
        x = torch.randn(b, 12, 5000, generator=g) if model.config.input == "ecg" else (sa, la)
        return (x, torch.randn(b, n, generator=g), torch.ones(b, n))
    return (torch.randn(b, 12, 5000, generator=g), sa, la)


def _scalar(out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(out, dict):
        return out["loss"] if "loss" in out else sum(v.float().square().mean() for v in out.values())
    return out.square().mean()


@pytest.mark.parametrize("name", [n for n in list_models() if n.endswith("-tiny")])
def test_tiny_models_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    out = model(*_inputs(model))
    loss = _scalar(out)
    assert torch.isfinite(loss)
    loss.backward()
    # a Swin encoder uses its mask token only under masked image modelling
    trainable = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and not (n.endswith("mask_token") and not isinstance(model, CmrSslModel))
    ]
    assert trainable and all(p.grad is not None for p in trainable), "every trainable parameter gets a gradient"
    assert any(float(p.grad.abs().sum()) > 0 for p in trainable)


@pytest.mark.parametrize("name", [n for n in list_models() if not n.endswith("-tiny")])
def test_large_models_build_on_meta_device(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) > 1_000_000


def test_ecg_vit_large_matches_paper_size() -> None:
    with torch.device("meta"):
        model = create_model("ecg-vit-large")
    assert model.config.embed_dim == 1024 and model.config.depth == 24 and model.config.num_heads == 16
    assert abs(count_parameters(model) - 303e6) / 303e6 < 0.01


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        create_model("ecg-vit-gigantic")
    assert "ecg-vit-tiny" in str(info.value) and "cmr-ssl-tiny" in str(info.value)


def test_ecg_encoder_api_shapes() -> None:
    model = create_model("ecg-vit-tiny").eval()
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 601, model.embed_dim) and model.embed_dim == 192
        assert torch.equal(model.forward_pooled(x), tokens[:, 0])
        assert torch.equal(model.forward_tokens(x.unsqueeze(1)), tokens[:, 1:])  # (B, 1, 12, 5000) accepted too
    with pytest.raises(InputError):
        model(torch.randn(2, 12, 4000))


@pytest.mark.parametrize("size", [80, 96])
def test_swin_handles_cine_sizes_and_padding_does_not_leak(size: int) -> None:
    cfg = CmrSwinConfig(image_size=size, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4), window_size=7)
    model = CmrSwin(cfg).eval()
    x = torch.rand(2, 50, size, size) * 2 - 1
    tokens = model.forward_features(x)
    grid = cfg.grid_sizes[-1]
    assert tokens.shape == (2, grid * grid, cfg.out_dim)
    # Each sample is processed independently (windows never mix the batch).
    assert torch.allclose(model.forward_features(x[:1]), tokens[:1], atol=1e-5)
    with pytest.raises(InputError):
        model(torch.rand(2, 50, size + 4, size + 4))


def test_save_load_round_trip_identical_outputs(tmp_path) -> None:
    for name in ("ecg-vit-tiny", "cmr-ssl-tiny", "alignment-tiny"):
        torch.manual_seed(1)
        model = create_model(name).eval()
        inputs = _inputs(model)
        if isinstance(model, CmrSslModel):
            masks = model.draw_masks(2, generator=torch.Generator().manual_seed(3))
            inputs = (*inputs, *masks)
        with torch.no_grad():
            ref = model(*inputs)
        meta = {"labels": ["CAD", "PH", "PC", "CM", "HF"], "preprocess": {"wavelet": "db6"}}
        save_pretrained(model, tmp_path / name, metadata=meta)
        loaded = from_pretrained(tmp_path / name)
        assert type(loaded) is type(model)
        with torch.no_grad():
            out = loaded(*inputs)
        if isinstance(ref, dict):
            for key in ref:
                assert torch.equal(ref[key], out[key]), key
        else:
            assert torch.equal(ref, out)
        assert read_pretrained_metadata(tmp_path / name) == meta


def test_strict_config_loading(tmp_path) -> None:
    save_pretrained(create_model("ecg-vit-tiny"), tmp_path / "m")
    payload = json.loads((tmp_path / "m" / "config.json").read_text())
    payload["config"]["embed_dimm"] = 10
    (tmp_path / "m" / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ConfigError, match="embed_dimm"):
        from_pretrained(tmp_path / "m")
    payload["config"].pop("embed_dimm")
    payload["config"]["depth"] = "four"
    (tmp_path / "m" / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ConfigError, match="depth"):
        from_pretrained(tmp_path / "m")


def test_masked_loss_ignores_unmasked_patches() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 50, 80, 80, generator=g)
    target = torch.randn(2, 50, 80, 80, generator=g)
    mask = random_patch_mask(2, 20, 0.75, generator=g)
    assert int(mask.sum()) == 2 * 300
    loss = masked_reconstruction_loss(pred, target, mask, 4)
    pixel = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).expand_as(pred)
    changed_pred = torch.where(pixel, pred, pred + 100.0)
    changed_target = torch.where(pixel, target, torch.zeros_like(target))
    assert torch.equal(masked_reconstruction_loss(changed_pred, changed_target, mask, 4), loss)
    # ...while a change in a masked patch does change it, and the value is the mean |error| over masked pixels.
    assert not torch.equal(masked_reconstruction_loss(torch.where(pixel, pred + 1.0, pred), target, mask, 4), loss)
    expected = (pred - target).abs()[pixel].mean()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_mim_prediction_does_not_see_masked_pixels() -> None:
    torch.manual_seed(0)
    model = create_model("cmr-ssl-tiny").eval()
    sa = torch.rand(1, 50, 80, 80) * 2 - 1
    mask = random_patch_mask(1, 20, 0.75, generator=torch.Generator().manual_seed(1))
    pixel = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).expand_as(sa)
    with torch.no_grad():
        rec, _ = model.reconstruct(sa, mask, "sa")
        rec2, _ = model.reconstruct(torch.where(pixel, torch.rand_like(sa), sa), mask, "sa")
        rec3, _ = model.reconstruct(torch.where(pixel, sa, -sa), mask, "sa")
    assert torch.equal(rec, rec2), "masked pixels leaked into the reconstruction"
    assert not torch.allclose(rec, rec3), "visible pixels must drive the reconstruction"


def test_info_nce_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # unit rows
    t = 0.1
    # cosine matrix [[1, 0.6], [0, 0.8]]; row-wise CE a->b and column-wise b->a
    row0 = -math.log(math.exp(10) / (math.exp(10) + math.exp(6)))
    row1 = -math.log(math.exp(8) / (math.exp(0) + math.exp(8)))
    col0 = -math.log(math.exp(10) / (math.exp(10) + math.exp(0)))
    col1 = -math.log(math.exp(8) / (math.exp(6) + math.exp(8)))
    expected = 0.5 * ((row0 + row1) / 2 + (col0 + col1) / 2)
    assert math.isclose(float(clip_loss(a, b, t)), expected, rel_tol=1e-5)
    assert math.isclose(float(clip_loss(3 * a, 0.5 * b, t)), expected, rel_tol=1e-5)  # scale-invariant


def test_alignment_cmr_towers_frozen_and_projections_trained() -> None:
    torch.manual_seed(0)
    model = create_model("alignment-tiny")
    assert isinstance(model, AlignmentModel)
    model.train()
    assert not model.sa_encoder.training and not model.la_encoder.training and model.ecg_encoder.training
    out = model(*_inputs(model, 3))
    assert torch.allclose(out["loss"], out["loss_ecg_sa"] + out["loss_ecg_la"])
    out["loss"].backward()
    assert all(p.grad is None for p in model.sa_encoder.parameters())
    assert all(p.grad is None for p in model.la_encoder.parameters())
    for head in (model.ecg_proj, model.sa_proj, model.la_proj):
        assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
    assert model.ecg_proj.out_features == 256 and model.config.temperature == 0.1


def test_alignment_loads_cmr_towers() -> None:
    torch.manual_seed(0)
    ssl = create_model("cmr-ssl-tiny")
    align = create_model("alignment-tiny")
    align.load_cmr_towers(ssl)
    for a, b in zip(ssl.sa_encoder.state_dict().values(), align.sa_encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ssl.la_proj.weight, align.la_proj.weight)
