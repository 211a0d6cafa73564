"""Training segments: chunking, skipping bad episodes, deterministic items, resumable sharded sampling."""

from __future__ import annotations

import itertools
import shutil

import numpy as np

from aimc.core import keys
from aimc.data.dataset import (
    SegmentConfig,
    SegmentDataset,
    SegmentSampler,
    build_segment_index,
    collate_segments,
)
from aimc.data.relabel import relabelled_goals
from aimc.data.store import Episode, list_episodes
from tests.train.fixtures import EMBED_DIM, EMBED_NAME, demo_store  # noqa: F401


def test_chunks_skip_and_items(demo_store, tmp_path):  # noqa: F811
    cfg = SegmentConfig(segment_len=16, max_btwn_goals=40, embed_name=EMBED_NAME)
    paths = list_episodes(demo_store)
    # a copy without embeddings, and a copy with a broken video (found when the index is built)
    no_emb = tmp_path / "no_emb"
    shutil.copytree(paths[0], no_emb)
    for f in no_emb.glob("embeds_*"):
        f.unlink()
    broken = tmp_path / "broken"
    shutil.copytree(paths[0], broken)
    (broken / "frames.mp4").write_bytes(b"not a video")
    index = build_segment_index([([*paths, no_emb, broken], 1.0)], cfg)
    assert set(index.skipped) == {str(no_emb), str(broken)}
    assert "no embeddings" in index.skipped[str(no_emb)]
    assert index.goal_dim == EMBED_DIM
    for e, path in enumerate(paths):
        n = Episode(path).length
        rows = index.rows[index.rows[:, 0] == e]
        want = [(min(s, n - 16), min(s, n - 16) + 16) for s in range(15, n, 16)]
        assert [tuple(r[1:]) for r in rows] == want
    assert np.isclose(index.weights.sum(), 1.0)

    ds = SegmentDataset(index, cfg, (64, 64), frame_cache=tmp_path / "cache")
    item = ds[(3, 1234)]
    e, s, t = index.rows[3]
    ep = Episode(index.episodes[e])
    assert item["ok"] and item["pov"].shape == (16, 64, 64, 3) and item["first"].tolist() == [True] + [False] * 15
    assert np.array_equal(item["pov"].numpy(), ep.frames(s, t))
    # targets are the executed actions, except where noise replaced the expert's choice (DART label)
    want_actions = [ep.infos[k].get(keys.LABEL, ep.actions[k]) for k in range(s, t)]
    assert item["action"].tolist() == [int(a) for a in want_actions]
    want, _ = relabelled_goals(ep.read_embeds(EMBED_NAME)[0], s, t, 15, 40, 0.1, np.random.default_rng(1234))
    assert np.array_equal(item["goal"].numpy(), want)
    again = ds[(3, 1234)]  # second read comes from the frame cache: identical
    assert all(np.array_equal(again[k].numpy(), item[k].numpy()) for k in ("pov", "goal", "action"))

    # an episode that breaks after indexing yields ok=False (weight 0), never an exception
    (tmp_path / "cache").rename(tmp_path / "cache_off")
    victim = tmp_path / "victim"
    shutil.copytree(index.episodes[0], victim)
    index.episodes[0] = victim
    (victim / "frames.mp4").write_bytes(b"")
    batch = collate_segments([ds[(0, 1)], ds[(int(np.flatnonzero(index.rows[:, 0] == 1)[0]), 2)]])
    assert batch["ok"].tolist() == [False, True] and batch["n_invalid"] == 1
    assert batch["pov"].shape == (2, 16, 64, 64, 3)


def test_unconditional_and_short_episodes(demo_store):  # noqa: F811
    cfg = SegmentConfig(segment_len=90, embed_name=None)
    index = build_segment_index([(list_episodes(demo_store), 1.0)], cfg)
    lengths = [Episode(p).length for p in list_episodes(demo_store)]
    assert len(index.episodes) == sum(n >= 105 for n in lengths)
    assert len(index.skipped) == sum(n < 105 for n in lengths)
    if len(index):
        assert SegmentDataset(index, cfg, (64, 64))[(0, 0)]["goal"].shape == (90, 0)


def test_sampler_resumes_and_shards(demo_store):  # noqa: F811
    index = build_segment_index([(list_episodes(demo_store), 1.0)], SegmentConfig(segment_len=16, embed_name=EMBED_NAME))
    full = list(itertools.islice(iter(SegmentSampler(index, 3, seed=5)), 3 * 40))
    resumed = list(itertools.islice(iter(SegmentSampler(index, 3, seed=5, start_batch=7)), 3 * 10))
    assert resumed == full[21:51]
    # two processes split each global batch of 2 x 3 without overlap, and together cover an epoch once
    r0 = SegmentSampler(index, 3, seed=5, rank=0, world=2)
    r1 = SegmentSampler(index, 3, seed=5, rank=1, world=2)
    n = r0.batches_per_epoch * 3
    a = list(itertools.islice(iter(r0), n))
    b = list(itertools.islice(iter(r1), n))
    ids = [i for i, _ in a + b]
    assert len(set(ids)) == len(ids) == 2 * n
    assert len({s for _, s in a + b}) == 2 * n  # every item has its own relabelling seed


def test_mixture_weights(demo_store, tmp_path):  # noqa: F811
    paths = list_episodes(demo_store)
    index = build_segment_index([(paths[:2], 0.7), (paths[2:], 0.3)], SegmentConfig(segment_len=16, embed_name=EMBED_NAME))
    first_part = np.isin(index.rows[:, 0], [0, 1])
    assert np.isclose(index.weights[first_part].sum(), 0.7)
    order = SegmentSampler(index, 1, seed=0).epoch_order(0)
    assert len(order) == len(index)


def test_dart_labels_recorded_and_trained_on(tmp_path):
    """Noise executes other actions; infos keep the expert's choice as "label" and training targets use it."""
    from aimc.core import keys
    from aimc.data.collect import CollectConfig, collect

    out = tmp_path / "noisy"
    collect(CollectConfig(out=str(out), agent="demonstrator", agent_config={"noise_prob": 0.5}, episodes=1,
                          max_steps=80, seed=5, workers=1), progress=False)
    ep = Episode(list_episodes(out)[0])
    assert ep.metadata["dart_labels"] is True
    labelled = [t for t, info in enumerate(ep.infos) if keys.LABEL in info]
    assert 5 <= len(labelled) <= 40  # about half the steps draw noise; some noise equals the expert's choice
    assert all(ep.infos[t][keys.LABEL] != ep.actions[t] for t in labelled)
    index = build_segment_index([([ep.path], 1.0)], SegmentConfig(segment_len=32, embed_name=None))
    assert len(index)
    _, start, end = (int(v) for v in index.rows[0])
    inside = [t for t in labelled if start <= t < end]
    assert inside
    for dart in (True, False):
        ds = SegmentDataset(index, SegmentConfig(segment_len=32, embed_name=None, dart_labels=dart), (64, 64))
        action = ds[(0, 0)]["action"].numpy()
        want = np.array(ep.actions[start:end], np.int64)
        if dart:
            want[[t - start for t in inside]] = [ep.infos[t][keys.LABEL] for t in inside]
        np.testing.assert_array_equal(action, want)
