"""Grad-CAM saliency: agreement with the exact token contributions, localisation on a constructed task, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiacnets.errors import InputError
from cardiacnets.models.ecg_vit import EcgViTConfig
from cardiacnets.models.screening import ScreeningConfig, ScreeningModel
from cardiacnets.record import LEADS
from cardiacnets.saliency import grad_cam, grad_cam_tokens, lead_shares, plot_saliency, save_saliency


def _model(pool: str, seed: int = 0) -> ScreeningModel:
    torch.manual_seed(seed)
    ecg = EcgViTConfig(embed_dim=32, depth=1, num_heads=2, pool=pool)
    model = ScreeningModel(ScreeningConfig(input="ecg", ecg=ecg, head_dropout=0.0))
    torch.nn.init.normal_(model.film.proj.weight, std=0.3)  # a non-identity FiLM scale, so it must be accounted for
    return model.eval()


def _inputs(b: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ecg = torch.rand(b, 12, 5000, generator=g) * 2 - 1
    cov = torch.tensor([[1.0, 55.0, 70.0]]).repeat(b, 1) + torch.randn(b, 3, generator=g)
    mask = torch.ones(b, 3)
    mask[0, 1] = 0.0
    return ecg, cov, mask


@pytest.mark.parametrize(("head", "target", "k"), [("disease", "CM", 3), ("subtype", "DCM", 1), ("phenotype", 5, 5)])
def test_grad_cam_equals_token_contributions_for_mean_pooling(head: str, target: object, k: int) -> None:
    model = _model("mean")
    ecg, cov, mask = _inputs()
    cam = grad_cam_tokens(model, ecg, cov, mask, head, target, layer="final")  # (B, 12, 50)
    with torch.no_grad():
        exact = model.token_contributions(ecg, cov, mask, head)[:, k]  # (B, 12, 50)
    assert cam.shape == exact.shape == (3, 12, 50)
    assert float(exact.abs().max()) > 1e-4  # a non-trivial map
    # Grad-CAM's alpha is the per-token gradient (identical for every token under mean pooling), so the signed maps
    # agree exactly, hence their positive parts too.
    torch.testing.assert_close(torch.relu(cam), torch.relu(exact), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cam, exact, rtol=1e-4, atol=1e-6)


def test_grad_cam_cls_pooling() -> None:
    model = _model("cls")
    ecg, cov, mask = _inputs(2)
    cam = grad_cam_tokens(model, ecg, cov, mask, "disease", "HF", layer="last_block")
    assert cam.shape == (2, 12, 50)
    assert torch.isfinite(cam).all() and float(cam.abs().max()) > 0
    with pytest.raises(InputError, match="mean-pooled"):  # final patch tokens do not reach a CLS-pooled output
        grad_cam_tokens(model, ecg, cov, mask, "disease", "HF", layer="final")
    sal = grad_cam(model, ecg, cov, mask, "disease", "HF")
    assert sal.shape == (2, 12, 5000) and sal.min() >= 0 and np.isclose(sal.max(), 1.0)


def test_unknown_target_is_a_typed_error() -> None:
    model = _model("mean")
    ecg, cov, mask = _inputs(1)
    with pytest.raises(InputError, match="unknown disease output"):
        grad_cam(model, ecg, cov, mask, "disease", "XYZ")
    with pytest.raises(InputError, match="unknown head"):
        grad_cam(model, ecg, cov, mask, "risk", 0)


def _v1_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise on every lead of a 2-s strip; positives carry a 10 Hz oscillation on V1 only."""
    x = 0.3 * torch.randn(n, 12, 1000, generator=g)
    y = torch.randint(0, 2, (n,), generator=g).float()
    x[y > 0, LEADS.index("V1")] += 0.6 * torch.sin(2 * torch.pi * 10 * torch.arange(1000) / 500.0)
    return x, y


def test_saliency_concentrates_on_the_only_informative_lead() -> None:
    torch.manual_seed(3)
    ecg = EcgViTConfig(n_samples=1000, patch_samples=50, embed_dim=32, depth=1, num_heads=2, pool="mean")
    model = ScreeningModel(ScreeningConfig(input="ecg", ecg=ecg, head_dropout=0.0)).train()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    cov, mask = torch.zeros(32, 3), torch.zeros(32, 3)
    for _ in range(30):
        x, y = _v1_batch(32, g)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, cov, mask)["disease_logits"][:, 3], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = _v1_batch(64, g)
    with torch.no_grad():
        logits = model(x, torch.zeros(64, 3), torch.zeros(64, 3))["disease_logits"][:, 3]
    accuracy = float(((logits > 0).float() == y).float().mean())
    assert accuracy > 0.9, f"the model did not learn the V1 task (accuracy {accuracy:.2f})"
    positives = x[y > 0]
    zeros = torch.zeros(len(positives), 3)
    sal = grad_cam(model, positives, zeros, zeros, "disease", "CM")
    assert sal.shape == (len(positives), 12, 1000)
    shares = lead_shares(sal).mean(axis=0)  # (12,)
    assert int(np.argmax(shares)) == LEADS.index("V1"), shares
    assert shares[LEADS.index("V1")] > 0.4, shares  # chance would be 1/12


def test_saliency_files(tmp_path) -> None:  # noqa: ANN001
    model = _model("mean")
    ecg, cov, mask = _inputs(1)
    sal = grad_cam(model, ecg, cov, mask, "phenotype", 0)[0]
    path = save_saliency(tmp_path / "cm.npy", sal)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), sal)
    png = plot_saliency(ecg[0].numpy(), 500.0, sal, tmp_path / "cm.png", title="saliency")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
