"""Prior training's run directory: cached pairs keyed by what shapes them, resume, older run dirs."""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from aimc.core.errors import ConfigError
from aimc.core.rundir import read_metrics
from aimc.data.store import EpisodeWriter, list_episodes
from aimc.prior.train import PriorTrainConfig, pairs_key, read_pairs_key, train_prior


class _FakeEmbedder:
    """Clips -> their mean colour, texts -> a fixed vector per string: cheap, deterministic, 4-d."""

    def encode_clips(self, clips: np.ndarray) -> torch.Tensor:
        rgb = clips.reshape(len(clips), -1, 3).mean(axis=1) / 255.0
        return torch.tensor(np.concatenate([rgb, np.ones((len(clips), 1))], axis=1), dtype=torch.float32)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=4) for t in texts]
        return torch.tensor(np.array(rows), dtype=torch.float32)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        with EpisodeWriter(tmp_path / "store", f"ep{i}", {"world": "synthetic", "seed": i}) as w:
            for t in range(48):
                events = ["collect_wood"] * (t in (20, 21)) + ["eat_cow"] * (t == 30 + i)
                w.add(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), 0, events, {"step": t})
    return tmp_path / "store"


@pytest.fixture
def embedder_builds(monkeypatch):
    """Counts how often the prior builds its embedder, i.e. how often it cuts and embeds the pairs."""
    import aimc.embed.base

    calls: list[str] = []

    def make(name, device=None):
        calls.append(name)
        return _FakeEmbedder()

    monkeypatch.setattr(aimc.embed.base, "make_embedder", make)
    return calls


def test_resume_with_changed_clip_setting_rebuilds_pairs(store, tmp_path, embedder_builds):
    out = tmp_path / "run"
    cfg = PriorTrainConfig(out=str(out), data=str(store), embedder="fake", epochs=2, batch_size=16, hidden_dim=8,
                           latent_dim=2, val_pairs=4, nothing_per_episode=1)
    first = train_prior(cfg, progress=False)
    assert embedder_builds == ["fake"] and read_pairs_key(out / "pairs.npz")["nothing_per_episode"] == 1
    same = train_prior(replace(cfg, epochs=3), progress=False)  # same settings: the cache is reused
    assert embedder_builds == ["fake"] and same["pairs"] == first["pairs"] and same["epochs"] == 3

    more = train_prior(replace(cfg, epochs=4, nothing_per_episode=3), progress=False)
    assert len(embedder_builds) == 2 and more["epochs"] == 4  # rebuilt, and training resumed (not restarted)
    assert more["pairs"] == first["pairs"] + 3 * 2 * len(_nothing_paraphrases())  # 2 more quiet clips per episode
    assert read_pairs_key(out / "pairs.npz") == pairs_key(replace(cfg, nothing_per_episode=3), list_episodes(store))
    fewer = train_prior(replace(cfg, epochs=5, nothing_per_episode=3, max_clips_per_task=1), progress=False)
    assert len(embedder_builds) == 3 and fewer["pairs"] < more["pairs"]
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last", "step_00000005"]

    with pytest.raises(ConfigError, match=r"different lr \(saved 0.0001, now 0.001\)"):
        train_prior(replace(cfg, epochs=6, lr=1e-3), progress=False)


def _nothing_paraphrases() -> tuple[str, ...]:
    from aimc.embed.captions import NOTHING, paraphrases

    return paraphrases(NOTHING)


def test_pairs_key_follows_embedder_contents(store, tmp_path):
    emb = tmp_path / "emb"
    emb.mkdir()
    (emb / "config.json").write_text('{"type": "x"}')
    (emb / "model.safetensors").write_bytes(b"\x00" * 64)
    cfg = PriorTrainConfig(data=str(store), embedder=str(emb))
    key = pairs_key(cfg, list_episodes(store))
    assert key["episodes"] == ["ep0", "ep1", "ep2"] and key["embedder"].startswith("sha256:")
    assert pairs_key(cfg, list_episodes(store)) == key
    (emb / "model.safetensors").write_bytes(b"\x01" * 64)  # retrained into the same directory
    assert pairs_key(cfg, list_episodes(store))["embedder"] != key["embedder"]
    assert pairs_key(replace(cfg, embedder="mineclip"), None)["embedder"] == "mineclip"


def test_run_dir_of_older_version_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, 160)
    pairs = {"text": np.eye(6, dtype=np.float32)[lab], "visual": np.eye(6, dtype=np.float32)[lab + 3]
             + 0.1 * rng.normal(size=(160, 6)).astype(np.float32), "label": lab.astype(str)}
    cfg = PriorTrainConfig(epochs=4, batch_size=32, lr=3e-3, hidden_dim=16, latent_dim=4, val_pairs=20)
    full = train_prior(replace(cfg, out=str(tmp_path / "full")), pairs=pairs, progress=False)
    old = tmp_path / "old"
    train_prior(replace(cfg, out=str(old), epochs=2), pairs=pairs, progress=False)
    # rewrite it the way older versions left it: train_state.pt and log.jsonl (rows without "step") at the top
    shutil.move(old / "checkpoints" / "step_00000002" / "train_state.pt", old / "train_state.pt")
    shutil.rmtree(old / "checkpoints")
    rows = [{k: v for k, v in r.items() if k != "step"} for r in read_metrics(old)]
    (old / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (old / "metrics.jsonl").unlink()

    resumed = train_prior(replace(cfg, out=str(old)), pairs=pairs, progress=False)
    assert resumed["last_train_loss"] == full["last_train_loss"] and resumed["epochs"] == 4
    assert [r["step"] for r in read_metrics(old)] == [1, 2, 3, 4]
    assert not (old / "train_state.pt").exists() and not (old / "log.jsonl").exists()
    a, b = (torch.load(d / "checkpoints" / "step_00000004" / "train_state.pt", weights_only=True)["model"]
            for d in (tmp_path / "full", old))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pairs_carry_instructions_and_task_data_joins(store, tmp_path, embedder_builds):
    """Pairs hold each row's instruction string and its task's canonical-instruction embedding (the aligner's inputs
    and the text-goal target); a task-demonstration store adds its clips and is part of the cache key."""
    from aimc.embed.captions import instruction, paraphrases
    from aimc.prior.train import load_pairs

    rng = np.random.default_rng(1)
    with EpisodeWriter(tmp_path / "task", "t0", {"world": "synthetic", "seed": 9}) as w:
        for t in range(40):
            w.add(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), 0, ["collect_drink"] * (t == 25), {"step": t})
    out = tmp_path / "run"
    cfg = PriorTrainConfig(out=str(out), data=str(store), embedder="fake", epochs=1, batch_size=16, hidden_dim=8,
                           latent_dim=2, val_pairs=4, nothing_per_episode=0)
    train_prior(cfg, progress=False)
    assert json.loads((out / "prior" / "goal_space.json").read_text()) == {"embedder": "fake", "target": "visual"}
    pairs = load_pairs(out / "pairs.npz")
    assert set(pairs["label"]) == {"collect_wood", "eat_cow"}
    fake = _FakeEmbedder()
    for label, phrase, canon in zip(pairs["label"], pairs["phrase"], pairs["canon"], strict=True):
        assert phrase in paraphrases(label)
        np.testing.assert_allclose(canon, fake.encode_text([instruction(label)])[0].numpy(), rtol=1e-6)
    with_task = train_prior(replace(cfg, epochs=2, task_data=[str(tmp_path / "task")]), progress=False)
    assert len(embedder_builds) == 2 and read_pairs_key(out / "pairs.npz")["task_episodes"] == [["t0"]]
    grown = load_pairs(out / "pairs.npz")
    assert "collect_drink" in set(grown["label"]) and with_task["pairs"] == len(pairs["label"]) + len(paraphrases("collect_drink"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="holds no episodes"):
        train_prior(replace(cfg, epochs=3, task_data=[str(tmp_path / "empty")]), progress=False)
