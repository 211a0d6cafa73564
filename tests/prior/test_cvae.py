"""The CVAE prior: released layout, strict loading, persistence, seeded sampling, training lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimc.core.errors import CheckpointError
from aimc.prior import CVAEPrior, PriorConfig, load_prior
from aimc.prior.cvae import released_state_dict
from aimc.prior.train import PriorTrainConfig, train_prior


def test_released_layout_param_count_on_meta():
    with torch.device("meta"):
        model = CVAEPrior()
    assert model.num_parameters() == 2_366_976
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["encoder.0.weight"] == (512, 1024)
    assert shapes["encoder.6.weight"] == (1024, 512)
    assert shapes["decoder.0.weight"] == (512, 1024)
    assert shapes["decoder.6.weight"] == (512, 512)
    assert shapes["encoder.1.weight"] == (512,)  # LayerNorm at index 1 and 4
    assert sorted({k.split(".")[1] for k in shapes}) == ["0", "1", "3", "4", "6"]


def test_load_released_pt_strictly(tmp_path):
    torch.manual_seed(0)
    src = CVAEPrior(PriorConfig(input_dim=8, hidden_dim=16, latent_dim=4))
    path = tmp_path / "steve1_prior.pt"
    torch.save(released_state_dict(src), path)
    loaded = load_prior(path)
    assert loaded.config == PriorConfig(input_dim=8, hidden_dim=16, latent_dim=4)
    text = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded.sample(text, seed=5), src.sample(text, seed=5), rtol=1e-6)
    # torch.compile'd models save an `_orig_mod.` prefix; accepted
    torch.save({f"_orig_mod.{k}": v for k, v in released_state_dict(src).items()}, path)
    np.testing.assert_allclose(load_prior(path).sample(text, seed=1), src.sample(text, seed=1), rtol=1e-6)


def test_released_mismatch_names_keys(tmp_path):
    state = released_state_dict(CVAEPrior(PriorConfig(8, 16, 4)))
    del state["decoder.3.bias"]
    state["decoder.9.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing.*decoder\.3\.bias.*unexpected.*decoder\.9\.weight"):
        load_prior(path)
    torch.save({"model": 3}, path)
    with pytest.raises(CheckpointError, match="flat state dict"):
        load_prior(path)


def test_save_pretrained_round_trip_and_seeded_sample(tmp_path):
    model = CVAEPrior(PriorConfig(8, 16, 4))
    model.save_pretrained(tmp_path / "p")
    again = load_prior(tmp_path / "p")
    text = np.ones((5, 8), np.float32)
    a, b = model.sample(text, seed=3), again.sample(text, seed=3)
    assert a.shape == (5, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, model.sample(text, seed=4))  # z is really sampled
    det = model.sample(text, seed=4, deterministic=True)
    np.testing.assert_array_equal(det, model.sample(text, seed=9, deterministic=True))


def test_training_lowers_loss_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)).astype(np.float32)
    text_c = rng.normal(size=(4, 8)).astype(np.float32)
    lab = rng.integers(0, 4, 400)
    pairs = {"text": text_c[lab], "visual": centres[lab] + 0.05 * rng.normal(size=(400, 8)).astype(np.float32),
             "label": lab.astype(str)}
    cfg = PriorTrainConfig(out=str(tmp_path / "run"), epochs=30, batch_size=64, lr=3e-3, beta=0.01,
                           hidden_dim=32, latent_dim=4, val_pairs=40)
    first = train_prior(PriorTrainConfig(**{**cfg.__dict__, "epochs": 10}), pairs=pairs, progress=False)
    assert first["epochs"] == 10
    summary = train_prior(cfg, pairs=pairs, progress=False)  # resumes at epoch 10
    assert summary["epochs"] == 30
    assert summary["last_train_loss"] < 0.5 * summary["first_train_loss"]
    prior = load_prior(tmp_path / "run" / "prior")
    out = prior.sample(text_c, seed=0, deterministic=True)
    assert out.shape == (4, 8)
    # each text's goal lands nearest to its own visual centre
    dist = ((out[:, None] - centres[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == np.arange(4)).all()


def test_loss_options_kl_reduction_and_free_bits():
    """STEVE-1's summed KL, the per-dimension mean, and free bits, against a hand computation of the KL."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = CVAEPrior(PriorConfig(input_dim=6, hidden_dim=8, latent_dim=3))
    batch = {"text": torch.randn(5, 6), "target": torch.randn(5, 6)}
    mu, logvar = model.encode(batch["target"], batch["text"])
    kl_bd = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)  # KL(N(mu, s^2) || N(0, 1)) per sample and dimension

    def loss(**kw):
        return model.loss(batch, SimpleNamespace(**{"beta": 1.0, "kl": "sum", "free_bits": 0.0, **kw}),
                          generator=torch.Generator().manual_seed(3))

    s, m = loss(), loss(kl="mean", beta=0.5)
    torch.testing.assert_close(s["kl"], kl_bd.sum())
    torch.testing.assert_close(m["kl"], kl_bd.mean())
    torch.testing.assert_close(s["mse"], m["mse"])  # same generator, same reconstruction
    torch.testing.assert_close(s["loss"], kl_bd.sum() + s["mse"])
    torch.testing.assert_close(m["loss"], 0.5 * kl_bd.mean() + m["mse"])
    floor = float(kl_bd.detach().mean(0).max()) + 1.0  # above every dimension's KL: the floor is what is charged
    fb = loss(kl="mean", free_bits=floor)
    torch.testing.assert_close(fb["loss"], torch.tensor(floor) + fb["mse"])
    fb["loss"].backward()
    dec = [p.grad for p in model.decoder.parameters()]
    assert all(g is not None for g in dec)  # reconstruction still trains; the KL under the floor adds no gradient
