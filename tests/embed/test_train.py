"""Training the video-text embedder: the loss falls, resume continues, save/load round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aimc.core.errors import CheckpointError, ConfigError
from aimc.embed.base import make_embedder
from aimc.embed.clips import clip_ends, load_clips
from aimc.embed.train import EmbedderTrainConfig, contrastive_loss, train_embedder
from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder

TINY = VideoTextConfig(frame_size=32, channels=[8, 16], frame_dim=32, embed_dim=32, temporal_heads=2)


def _cfg(store, out, **kw):
    base = dict(
        data=str(store),
        out=str(out),
        model=TINY,
        steps=30,
        batch_size=16,
        lr=3e-3,
        warmup=3,
        checkpoint_every=10,
        val_fraction=0.25,
        nothing_per_episode=2,
    )
    return EmbedderTrainConfig(**{**base, **kw})


def test_clip_ends_follow_events():
    events = [[] for _ in range(40)]
    events[20] = ["collect_wood"]
    events[5] = ["eat_cow"]  # too early for a full window: dropped
    events[39] = ["collect_drink"]  # its result frame (40) is past the end: dropped
    ends = clip_ends(events, 40, nothing_per_episode=3, rng=np.random.default_rng(0))
    assert (21, "collect_wood") in ends and all(label != "eat_cow" for _, label in ends)
    quiet = [e for e, label in ends if label == "nothing"]
    assert len(quiet) == 3 and all(not any(events[a] for a in range(e - 15, e)) for e in quiet)


def test_clips_from_store(synthetic_store):
    clips = load_clips(sorted(synthetic_store.iterdir()), nothing_per_episode=1)
    assert clips.frames.shape[1:] == (16, 32, 32, 3) and clips.frames.dtype == np.uint8
    assert set(clips.tasks()) == {"collect_wood", "collect_drink", "eat_cow", "nothing"}
    i = clips.labels.index("collect_wood")
    assert clips.frames[i, -1, :, :, 1].mean() > 150  # the clip ends on the green cue frame


def test_contrastive_loss_targets():
    v = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    # Matching pairs score far above mismatches -> near-zero loss; shuffled texts -> large loss.
    good = contrastive_loss(v, v, np.array(["a", "b", "c", "d"]), torch.tensor(50.0))
    bad = contrastive_loss(v, v.roll(1, 0), np.array(["a", "b", "c", "d"]), torch.tensor(50.0))
    assert good < 0.1 < bad
    # Two clips of one task: both texts are right answers, so the loss sits at its floor, the entropy
    # of the 50/50 target (log 2), instead of punishing one of them as a negative.
    same = contrastive_loss(v[[0, 0]], v[[0, 0]], np.array(["a", "a"]), torch.tensor(50.0))
    assert same == pytest.approx(np.log(2), abs=1e-5)


def test_training_lowers_loss_and_resumes(synthetic_store, tmp_path):
    run = tmp_path / "run"
    s = train_embedder(_cfg(synthetic_store, run, steps=20), progress=False)
    assert s["last_loss"] < s["first_loss"] - 0.3
    assert (run / "checkpoints" / "last").read_text().strip() == "step_0000020"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [10, 20] and "val/clip_to_text_top1" in lines[-1]

    s2 = train_embedder(_cfg(synthetic_store, run, steps=30), progress=False)
    assert s2["resumed_from"] == 20 and (run / "checkpoints" / "step_0000030").is_dir()
    with pytest.raises(ConfigError, match="different config.*lr"):
        train_embedder(_cfg(synthetic_store, run, steps=30, lr=1e-4), progress=False)

    emb = make_embedder(run / "model", device="cpu")
    assert isinstance(emb, VideoTextEmbedder) and emb.dim == 32
    frames = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    again = VideoTextEmbedder.from_pretrained(run / "model", device="cpu")
    torch.testing.assert_close(emb.window_embeddings(frames)[0], again.window_embeddings(frames)[0])
    fast, _ = emb.window_embeddings(frames)
    slow, _ = emb.naive_window_embeddings(frames)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    text = emb.encode_text(["chop a tree", "drink water"])
    assert text.shape == (2, 32) and torch.allclose(text.norm(dim=1), torch.ones(2))


def test_strict_load_names_mismatched_keys(tmp_path):
    emb = VideoTextEmbedder(TINY, device="cpu")
    emb.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["embed_dim"] = 16
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="mis-shaped.*temporal.out.weight"):
        VideoTextEmbedder.from_pretrained(tmp_path / "m")


def test_early_stopping_keeps_the_best_validated_model(synthetic_store, tmp_path, monkeypatch):
    """Held-out top-1 (scripted) 0.5, 0.7, 0.702, 0.6: with min_delta 0.005 and patience 2 the run stops at the
    4th validation, `model/` is the step-20 weights (the best), and a resume does not train on; raising the
    patience on resume does."""
    from safetensors.torch import load_file

    import aimc.embed.train as train_mod

    scores = iter([0.5, 0.7, 0.702, 0.6, 0.65, 0.66, 0.67, 0.68, 0.69])
    real = train_mod.validate

    def scripted(emb, clips):
        return {**real(emb, clips), "val/clip_to_text_top1": next(scores)}

    monkeypatch.setattr(train_mod, "validate", scripted)
    run = tmp_path / "run"
    cfg = _cfg(synthetic_store, run, steps=100, early_stop_patience=2)
    s = train_embedder(cfg, progress=False)
    assert s["early_stopped"] and s["trained_to"] == 40 and s["best_step"] == 20
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40] and rows[-1]["val/best_clip_to_text_top1"] == 0.7
    best = load_file(run / "checkpoints" / "step_0000020" / "model.safetensors")
    shipped = load_file(run / "model" / "model.safetensors")
    assert best.keys() == shipped.keys() and all(torch.equal(best[k], shipped[k]) for k in best)
    assert not all(torch.equal(best[k], v) for k, v in load_file(run / "checkpoints" / "step_0000040" / "model.safetensors").items())
    assert (run / "tensorboard").is_dir()

    again = train_embedder(cfg, progress=False)  # patience spent: nothing more to train
    assert again["trained_to"] == 40 and again["resumed_from"] == 40
    more = train_embedder(_cfg(synthetic_store, run, steps=100, early_stop_patience=4), progress=False)
    assert more["trained_to"] == 60 and more["early_stopped"]  # 0.65 and 0.66 are two more validations without gain
    with pytest.raises(ConfigError, match="held-out split"):
        _cfg(synthetic_store, run, early_stop_patience=2, val_fraction=0.0)
