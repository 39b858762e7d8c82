"""Screening model: FiLM is the identity at initialisation, phenotypes come back in original units, save/load."""

from __future__ import annotations

from pathlib import Path

import torch

from cardiacnets.models.registry import create_model, from_pretrained, save_pretrained


def _inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ecg = torch.rand(batch, 12, 5000, generator=g) * 2 - 1
    cov = torch.tensor([[1.0, 62.0, 70.0], [0.0, 48.0, 95.0], [1.0, 75.0, 55.0]])[:batch]
    return ecg, cov, torch.ones(batch, 3)


def test_film_is_identity_at_init_and_learns_covariates() -> None:
    model = create_model("screening-ecg-tiny").eval()
    ecg, cov, mask = _inputs()
    with torch.no_grad():
        out = model(ecg, cov, mask)
        out_other = model(ecg, cov.flip(0), torch.zeros_like(mask))
        pooled = model.encoder.forward_pooled(ecg)
    torch.testing.assert_close(out["embedding"], pooled)  # identity: covariates change nothing yet
    torch.testing.assert_close(out["disease_logits"], out_other["disease_logits"])
    # one gradient step on a loss that depends on the covariates makes FiLM non-trivial
    opt = torch.optim.SGD(model.film.parameters(), lr=0.1)
    loss = model(ecg, cov, mask)["disease_logits"][:, 0].mul(cov[:, 1]).sum()
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(model(ecg, cov, mask)["embedding"], pooled)


def test_predict_returns_original_units() -> None:
    model = create_model("screening-ecg-tiny").eval()
    mean, std = torch.linspace(10, 200, 82), torch.linspace(1, 30, 82)
    model.set_phenotype_scaler(mean, std)
    ecg, cov, mask = _inputs()
    with torch.no_grad():
        z = model(ecg, cov, mask)["phenotypes_z"]
        disease, subtype, phenotypes, _ = model.predict(ecg, cov, mask)
    torch.testing.assert_close(phenotypes, z * std + mean)
    assert torch.all((disease > 0) & (disease < 1))
    torch.testing.assert_close(subtype.sum(-1), torch.ones(3))


def test_save_load_predicts_identically(tmp_path: Path) -> None:
    model = create_model("screening-ecg-tiny").eval()
    model.set_phenotype_scaler(torch.arange(82.0), torch.full((82,), 2.0))
    save_pretrained(model, tmp_path / "m", metadata={"task": "all"})
    loaded = from_pretrained(tmp_path / "m")
    ecg, cov, mask = _inputs()
    with torch.no_grad():
        for a, b in zip(model.predict(ecg, cov, mask), loaded.predict(ecg, cov, mask), strict=False):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cmr_upper_bound_model_runs() -> None:
    model = create_model("screening-cmr-tiny").eval()
    sa, la = torch.rand(2, 50, 80, 80) * 2 - 1, torch.rand(2, 50, 96, 96) * 2 - 1
    out = model((sa, la), torch.zeros(2, 3), torch.zeros(2, 3))
    assert out["disease_logits"].shape == (2, 5) and out["phenotypes_z"].shape == (2, 82)


def test_token_contributions_sum_to_the_logits() -> None:
    model = create_model("screening-ecg-tiny").eval()
    torch.nn.init.normal_(model.film.proj.weight, std=0.05)  # a non-trivial FiLM
    ecg, cov, mask = _inputs()
    with torch.no_grad():
        contrib = model.token_contributions(ecg, cov, mask, "disease")
        out = model(ecg, cov, mask)
        z = (cov - model.covariate_mean) / model.covariate_std
        _, beta = model.film.proj(torch.cat([z * mask, mask], dim=-1)).chunk(2, dim=-1)
        constant = beta @ model.disease_head.weight.T + model.disease_head.bias
    assert contrib.shape == (3, 5, 12, 50)
    torch.testing.assert_close(contrib.sum(dim=(-1, -2)) + constant, out["disease_logits"], atol=1e-4, rtol=1e-4)
