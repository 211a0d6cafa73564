"""Training segments: chunking, skipping bad episodes, deterministic items, resumable sharded sampling."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import torch

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
from tests.train.fixtures import EMBED_DIM, EMBED_NAME, demo_store, embed_store, task_demo_store  # noqa: F401


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
    assert item["step_ok"].tolist() == [True] * 16  # an ordinary row has no padding
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
    assert batch["step_ok"].tolist() == [[False] * 16, [True] * 16]
    assert batch["pov"].shape == (2, 16, 64, 64, 3)


def test_a_policy_reading_smaller_frames_gets_them_resized_as_when_acting(demo_store, tmp_path):  # noqa: F811
    """A student at 32x32 (`aimc.policy.vpt.student`) trained or scored on a 64x64 store: its segments' frames are
    the store's, resized exactly as `Agent` resizes the world's frames when it acts (not an unreadable segment)."""
    from aimc.policy import resize_frames

    cfg = SegmentConfig(segment_len=16, max_btwn_goals=40, embed_name=EMBED_NAME)
    index = build_segment_index([(list_episodes(demo_store), 1.0)], cfg)
    small = SegmentDataset(index, cfg, (32, 32), frame_cache=tmp_path / "cache")[(3, 1234)]
    full = SegmentDataset(index, cfg, (64, 64), frame_cache=tmp_path / "cache")[(3, 1234)]
    assert small["ok"] and small["pov"].shape == (16, 32, 32, 3)
    assert np.array_equal(small["pov"].numpy(), resize_frames(full["pov"].numpy(), (32, 32)))
    assert all(np.array_equal(small[k].numpy(), full[k].numpy()) for k in ("goal", "action", "step_ok"))


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


def _labels(ep: Episode, start: int, end: int) -> list[int]:
    return [int(ep.infos[k].get(keys.LABEL, ep.actions[k])) for k in range(start, end)]


def test_short_intention_episodes_are_indexed_from_frame_0(task_demo_store):  # noqa: F811
    """Task demonstrations without visual embeddings in an "intention" part: chunked from frame 0, and one
    shorter than a segment is the single row (e, 0, T); without the override they are all too short."""
    paths = list_episodes(task_demo_store)
    lengths = [Episode(p).length for p in paths]
    assert min(lengths) <= 8 and max(lengths) >= 16  # padded rows (one with an all-padding chunk) and chunked ones
    for embed_name in (EMBED_NAME, None):  # embeddings configured but absent, or none configured
        index = build_segment_index([(paths, 1.0, "intention")], SegmentConfig(segment_len=16, embed_name=embed_name))
        assert not index.skipped and index.episodes == paths and index.goal_sources == dict.fromkeys(range(len(paths)), "intention")
        for e, n in enumerate(lengths):
            rows = [tuple(int(v) for v in r[1:]) for r in index.rows[index.rows[:, 0] == e]]
            want = [(0, 16)] if n < 16 else [(min(s, n - 16), min(s, n - 16) + 16) for s in range(0, n, 16)]
            assert rows == want, (n, rows)
        assert index.frames == sum(min(int(end), lengths[e]) - int(s) for e, s, end in index.rows)
    plain = build_segment_index([(paths, 1.0)], SegmentConfig(segment_len=16, embed_name=None))
    assert len(plain) == 0 and set(plain.skipped) == {str(p) for p in paths}
    assert all(f"length {n} < 31 (segment_len + 15)" in plain.skipped[str(p)] for p, n in zip(paths, lengths, strict=True))


def test_episodes_with_embeddings_keep_the_visual_rule(demo_store, task_demo_store, tmp_path):  # noqa: F811
    """Rows, skips and messages of visual data do not move: a visual part chunks from frame 15 and skips short
    episodes, and so does an intention part for its episodes that have visual embeddings."""
    cfg = SegmentConfig(segment_len=16, embed_name=EMBED_NAME)
    embedded = tmp_path / "embedded"
    shutil.copytree(task_demo_store, embedded)
    embed_store(embedded)
    short = list_episodes(embedded)
    visual = list_episodes(demo_store)
    for source in (None, "visual", "intention"):
        part = (visual + short, 1.0) if source is None else (visual + short, 1.0, source)
        index = build_segment_index([part], cfg)
        assert index.episodes == visual and set(index.skipped) == {str(p) for p in short}
        for p in short:
            assert index.skipped[str(p)].endswith(f"length {Episode(p).length} < 31 (segment_len + 15)")
        for e, path in enumerate(visual):
            n = Episode(path).length
            rows = [tuple(int(v) for v in r[1:]) for r in index.rows[index.rows[:, 0] == e]]
            assert rows == [(min(s, n - 16), min(s, n - 16) + 16) for s in range(15, n, 16)]
        assert index.frames == 16 * len(index)


def test_padded_items_hold_the_real_steps_then_padding(task_demo_store, tmp_path):  # noqa: F811
    """A short episode's item: its real frames, labels and recorded-task goals, then the last frame repeated,
    action 0 and zero goals; `step_ok` marks exactly the real steps (and no step of a failed item)."""
    from aimc.data.dataset import STEP_OK
    from aimc.data.text_goals import TextGoalTable

    paths = list_episodes(task_demo_store)
    cfg = SegmentConfig(segment_len=16, embed_name=None, p_uncond=0.0)
    index = build_segment_index([(paths, 1.0, "intention")], cfg)
    table = TextGoalTable({"collect_wood": np.random.default_rng(0).standard_normal((3, 5))})
    ds = SegmentDataset(index, cfg, (64, 64), frame_cache=tmp_path / "cache", text_goals=table)
    assert ds.goal_dim == 5
    checked = {"short": 0, "full": 0}
    for i, (e, s, end) in enumerate(index.rows.tolist()):
        ep = Episode(index.episodes[e])
        n = min(end, ep.length) - s  # real steps
        for _ in range(2):  # the second read comes from the frame cache
            item = ds[(i, 100 + i)]
            assert item["ok"] and item["pov"].shape == (16, 64, 64, 3) and item["goal"].shape == (16, 5)
            assert item[STEP_OK].dtype == torch.bool and item[STEP_OK].tolist() == [True] * n + [False] * (16 - n)
            assert item["first"].tolist() == [True] + [False] * 15
            pov, goal, action = item["pov"].numpy(), item["goal"].numpy(), item["action"].tolist()
            real = ep.frames(s, s + n)
            assert np.array_equal(pov[:n], real) and action[:n] == _labels(ep, s, s + n)
            assert all(any(np.array_equal(g, row) for row in table.table["collect_wood"]) for g in goal[:n])
            assert np.array_equal(pov[n:], np.repeat(real[-1:], 16 - n, axis=0))
            assert action[n:] == [0] * (16 - n) and not goal[n:].any()
        checked["short" if n < 16 else "full"] += 1
    assert checked["short"] >= 3 and checked["full"] >= 2

    short = [i for i, (e, s, end) in enumerate(index.rows.tolist()) if end > Episode(index.episodes[e]).length]
    long_ = [i for i in range(len(index)) if i not in short]
    batch = collate_segments([ds[(short[0], 1)], ds[(long_[0], 2)]])
    n0 = Episode(index.episodes[int(index.rows[short[0], 0])]).length
    assert batch[STEP_OK].shape == (2, 16) and batch[STEP_OK].sum(1).tolist() == [n0, 16]

    # an episode that breaks after indexing: ok False and no valid step
    victim = tmp_path / "victim"
    shutil.copytree(index.episodes[int(index.rows[short[0], 0])], victim)
    (victim / "frames.mp4").write_bytes(b"")
    index.episodes[int(index.rows[short[0], 0])] = victim
    item = SegmentDataset(index, cfg, (64, 64), text_goals=table)[(short[0], 1)]
    assert not item["ok"] and not item[STEP_OK].any() and item[STEP_OK].shape == (16,)

