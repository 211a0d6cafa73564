"""The goal-predictor registry and the language-model aligner (note 001), on a tiny randomly initialised BERT built
from a config in a temp dir (`tiny_lm`, tests/conftest.py): no network, no download."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aimc.core.errors import AimcError, CheckpointError
from aimc.prior.aligner import Aligner
from aimc.prior.base import TextSide, check_goal_dim, check_texts, load_predictor, predictor_type
from aimc.prior.config import AlignerConfig
from aimc.prior.cvae import CVAEPrior, PriorConfig, released_state_dict
from aimc.prior.train import PriorTrainConfig, train_prior

TASKS = {
    "wood": ["chop a tree", "collect wood", "get a log"],
    "drink": ["drink water", "quench thirst", "drink from the lake"],
    "stone": ["mine stone", "dig rock", "collect stone"],
    "cow": ["kill a cow", "hunt a cow", "eat a cow"],
    "table": ["place a table", "put down a table", "build a bench"],
    "sleep": ["sleep", "rest", "go to sleep"],
}
DIM = 12


def _pairs(per_phrase: int = 8, seed: int = 0):
    """Each task's phrases paired with noisy copies of that task's goal centroid (its "clips")."""
    rng = np.random.default_rng(seed)
    cents = {t: rng.normal(size=DIM).astype(np.float32) for t in TASKS}
    phrase, label, visual = [], [], []
    for t, texts in TASKS.items():
        for p in texts:
            for _ in range(per_phrase):
                phrase.append(p)
                label.append(t)
                visual.append(cents[t] + 0.3 * rng.normal(size=DIM))
    n = len(phrase)
    return cents, {"phrase": np.asarray(phrase), "label": np.asarray(label), "visual": np.asarray(visual, np.float32),
                   "text": rng.normal(size=(n, DIM)).astype(np.float32),
                   "canon": np.stack([cents[t] for t in label]).astype(np.float32)}


def _small(tiny_lm, **kw) -> AlignerConfig:
    return AlignerConfig(backbone=str(tiny_lm), out_dim=DIM, n_queries=4, width=32, layers=1, heads=2, **kw)


def _nearest(goals, cents):
    names = list(cents)
    c = np.stack([cents[t] for t in names])
    g = goals / np.linalg.norm(goals, axis=1, keepdims=True)
    return [names[i] for i in (g @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T).argmax(axis=1)]


def test_aligner_maps_each_instruction_to_its_own_cluster(tiny_lm):
    torch.manual_seed(0)
    cents, pairs = _pairs()
    model = Aligner(_small(tiny_lm))
    history = model.fit(pairs, epochs=40, batch_size=32, lr=3e-3, seed=0)
    assert history[-1] < 0.5 * history[0]
    phrases = [p for texts in TASKS.values() for p in texts]
    want = [t for t, texts in TASKS.items() for _ in texts]
    goals = model.sample(phrases)
    assert _nearest(goals, cents) == want  # a value check: every phrase lands nearest its own task's centroid
    cos = np.sum(goals * np.stack([cents[t] for t in want]), 1) / (
        np.linalg.norm(goals, axis=1) * np.linalg.norm(np.stack([cents[t] for t in want]), axis=1))
    assert cos.min() > 0.8


def test_aligner_round_trips_exactly_and_loads_strictly(tiny_lm, tmp_path):
    torch.manual_seed(1)
    _, pairs = _pairs(per_phrase=2)
    model = Aligner(_small(tiny_lm))
    model.fit(pairs, epochs=2, batch_size=16, lr=1e-3)
    model.save_pretrained(tmp_path / "al")
    saved = json.loads((tmp_path / "al" / "config.json").read_text())
    assert saved["type"] == "aligner" and saved["config"]["backbone"] == str(tiny_lm)
    from safetensors.torch import load_file

    keys = set(load_file(tmp_path / "al" / "model.safetensors"))
    assert keys and not any(k.startswith("lm.") for k in keys)  # the frozen backbone is named, not copied
    again = load_predictor(tmp_path / "al")
    assert predictor_type(tmp_path / "al") == "aligner" and again.dim == DIM
    texts = ["chop a tree", "unknown words here"]
    np.testing.assert_array_equal(again.sample(texts), model.sample(texts))
    # A weight of another shape: one error naming the key.
    from safetensors.torch import save_file

    bad = load_file(tmp_path / "al" / "model.safetensors")
    bad["head.weight"] = torch.zeros(DIM + 1, 32)
    save_file(bad, tmp_path / "al" / "model.safetensors")
    with pytest.raises(CheckpointError, match="head.weight"):
        load_predictor(tmp_path / "al")


def test_lora_adapters_train_and_round_trip(tiny_lm, tmp_path):
    pytest.importorskip("peft")
    torch.manual_seed(2)
    _, pairs = _pairs(per_phrase=2)
    model = Aligner(_small(tiny_lm, lora_rank=2))
    lora = [n for n, p in model.named_parameters() if p.requires_grad and "lora" in n]
    assert lora and not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("lm.") and "lora" not in n)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n in lora}
    model.fit(pairs, epochs=2, batch_size=16, lr=1e-2)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    model.save_pretrained(tmp_path / "lora")
    np.testing.assert_allclose(load_predictor(tmp_path / "lora").sample(["dig rock"]), model.sample(["dig rock"]),
                               rtol=1e-5, atol=1e-6)


def test_registry_loads_every_kind(tmp_path):
    torch.manual_seed(0)
    cvae = CVAEPrior(PriorConfig(input_dim=DIM, hidden_dim=16, latent_dim=4))
    cvae.save_pretrained(tmp_path / "cvae")
    torch.save(released_state_dict(cvae), tmp_path / "steve1_prior.pt")
    table = {"drink water": np.ones(DIM, np.float32), "mine stone": -np.ones(DIM, np.float32)}

    def encode(texts):
        return np.stack([table[t] for t in texts])

    for path in (tmp_path / "cvae", tmp_path / "steve1_prior.pt"):
        pred = load_predictor(path, text_encoder=encode)
        assert predictor_type(path) == "cvae_prior"
        # instructions through the bound text side == the released call on text embeddings
        np.testing.assert_allclose(pred.sample(["drink water", "mine stone"], seed=3),
                                   cvae.sample(encode(["drink water", "mine stone"]), seed=3), rtol=1e-6)
    side = TextSide(encode, DIM)
    np.testing.assert_array_equal(side.sample(["mine stone"]), encode(["mine stone"]))
    with pytest.raises(AimcError, match="no text encoder bound"):
        load_predictor(tmp_path / "cvae").sample(["drink water"])
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "config.json").write_text(json.dumps({"type": "videotext", "config": {}}))
    with pytest.raises(CheckpointError, match="not a goal predictor"):
        load_predictor(tmp_path / "emb")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_predictor(tmp_path / "nope")


def test_bad_inputs_give_one_clear_error(tiny_lm, tmp_path):
    with pytest.raises(AimcError, match="does not exist"):
        Aligner(AlignerConfig(backbone=str(tmp_path / "missing"), out_dim=DIM))
    (tmp_path / "notlm").mkdir()
    (tmp_path / "notlm" / "config.json").write_text(json.dumps({"type": "videotext", "config": {}}))
    with pytest.raises(AimcError, match="not a Hugging Face model directory"):
        Aligner(AlignerConfig(backbone=str(tmp_path / "notlm"), out_dim=DIM))
    model = Aligner(_small(tiny_lm))
    for empty in ([""], ["chop a tree", "   "]):
        with pytest.raises(AimcError, match="empty"):
            model.sample(empty)
    with pytest.raises(AimcError, match="empty"):
        check_texts([None])
    with pytest.raises(AimcError, match=f"outputs {DIM}-d goals but the policy expects 8-d"):
        check_goal_dim(model, 8, "runs/al")
    with pytest.raises(AimcError, match="CUDA|bitsandbytes"):
        Aligner(_small(tiny_lm, load_in_4bit=True))


def test_train_prior_trains_an_aligner_and_resumes(tiny_lm, tmp_path):
    _, pairs = _pairs(per_phrase=4)
    cfg = PriorTrainConfig(kind="aligner", target="instruction", aligner=_small(tiny_lm), out=str(tmp_path / "run"),
                           epochs=3, batch_size=32, lr=3e-3, val_pairs=20)
    s = train_prior(cfg, pairs=pairs, progress=False)
    assert s["kind"] == "aligner" and s["target"] == "instruction" and s["epochs"] == 3
    assert predictor_type(tmp_path / "run" / "prior") == "aligner"
    s2 = train_prior(PriorTrainConfig(**{**cfg.__dict__, "epochs": 5}), pairs=pairs, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert s2["epochs"] == 5 and [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert s2["last_train_loss"] < s["first_train_loss"]
