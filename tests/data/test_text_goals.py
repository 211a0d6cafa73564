"""Text goals: event-text and intention relabelling on constructed episodes, and their use in training items."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.core.errors import ConfigError
from aimc.data.dataset import SegmentConfig, SegmentDataset, build_segment_index
from aimc.data.relabel import relabelled_goals
from aimc.data.store import Episode, list_episodes
from aimc.data.text_goals import TextGoalTable, TextTargets, event_text_targets, intention_targets
from tests.train.fixtures import EMBED_DIM, EMBED_NAME, demo_store  # noqa: F401


def _events(n: int, at: dict[int, list[str]]) -> list[list[str]]:
    return [list(at.get(s, [])) for s in range(n)]


def test_next_event_goal_holds_until_the_step_that_causes_it() -> None:
    ev = _events(30, {5: ["collect_wood"], 12: ["place_table"], 25: ["collect_wood"]})
    t = event_text_targets(ev, horizon=100, p_later=0.0, rng=np.random.default_rng(0))
    assert t.names[:6] == ["collect_wood"] * 6  # steps 0..5: action 5 chops the tree
    assert t.names[6:13] == ["place_table"] * 7
    assert t.names[13:26] == ["collect_wood"] * 13
    assert t.names[26:] == [None] * 4  # nothing happens after step 25
    # one paraphrase draw per stretch
    assert len(set(t.draws[:6])) == 1 and t.draws[0] != t.draws[6]


def test_horizon_bounds_how_far_ahead_a_goal_may_be() -> None:
    ev = _events(40, {30: ["collect_stone"]})
    t = event_text_targets(ev, horizon=10, p_later=0.0, rng=np.random.default_rng(0))
    # s - t < 10: timesteps 21..30 see the event, 0..20 have no goal
    assert t.names[:21] == [None] * 21
    assert t.names[21:31] == ["collect_stone"] * 10


def test_later_events_carry_the_prerequisite_steps() -> None:
    ev = _events(20, {3: ["collect_wood"], 9: ["place_table"]})
    names = set()
    for seed in range(50):
        t = event_text_targets(ev, horizon=50, p_later=0.5, rng=np.random.default_rng(seed))
        names.add(t.names[0])
        if t.names[0] == "place_table":  # the later goal covers the wood chopping that serves it
            assert t.names[:10] == ["place_table"] * 10
    assert names == {"collect_wood", "place_table"}


def test_p_later_rate_and_unknown_events() -> None:
    ev = _events(10, {2: ["collect_wood"], 4: ["mystery"], 6: ["place_table"]})
    known = {"collect_wood": 0, "place_table": 0}
    later = sum(
        event_text_targets(ev, 50, 0.3, np.random.default_rng(s), known=known).names[0] == "place_table"
        for s in range(2000)
    )
    assert abs(later / 2000 - 0.3) < 0.04  # ~3.5 sigma
    t = event_text_targets(ev, 50, 0.0, np.random.default_rng(0), known=known)
    assert "mystery" not in t.names


def test_intention_targets_follow_the_recorded_sub_goal() -> None:
    infos = [{"goal": "collect_wood"}] * 3 + [{"goal": "place_table"}] * 2 + [{}]
    t = intention_targets(infos, np.random.default_rng(0))
    assert t.names == ["collect_wood"] * 3 + ["place_table"] * 2 + [None]
    assert t.draws[0] == t.draws[2] != t.draws[3]


def test_intention_interrupts_take_the_instruction_they_interrupt() -> None:
    g = [None, "drink", "collect_wood", "collect_wood", "eat", "sleep", "collect_wood", "place_table", "shelter", None]
    t = intention_targets([{"goal": x} if x else {} for x in g], np.random.default_rng(0), {"drink", "eat", "sleep", "shelter"})
    # before the first instruction -> the next one; in the middle -> the resumed one; after the last -> the last one
    assert t.names == [None, "collect_wood", "collect_wood", "collect_wood", "collect_wood", "collect_wood",
                       "collect_wood", "place_table", "place_table", None]
    assert len(set(t.draws[1:7])) == 1  # one stretch, one paraphrase
    only = intention_targets([{"goal": "sleep"}] * 3, np.random.default_rng(0), {"sleep"})
    assert only.names == ["sleep"] * 3  # no instruction in the episode: the recorded names stay
    assert intention_targets([{"goal": "eat"}], np.random.default_rng(0)).names == ["eat"]  # off by default


def test_table_lookup_picks_the_drawn_paraphrase_and_round_trips(tmp_path) -> None:
    table = TextGoalTable({"a": np.eye(3)[:2], "b": np.eye(3)[2:]})
    targets = TextTargets(["a", "a", "b", None, "zzz"], np.array([0.1, 0.9, 0.5, 0.0, 0.0]))
    goals, has = table.lookup(targets, 0, 5)
    assert has.tolist() == [True, True, True, False, False]
    assert np.array_equal(goals[:3], np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    assert not goals[3:].any()
    table.save(tmp_path / "t.npz")
    again = TextGoalTable.load(tmp_path / "t.npz")
    assert again.names() == ["a", "b"] and np.array_equal(again.table["a"], table.table["a"])
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a text goal table"):
        TextGoalTable.load(tmp_path / "bad.npz")


def _table(seed: int = 0) -> TextGoalTable:
    from aimc.envs.crafter import EVENT_NAMES

    rng = np.random.default_rng(seed)
    names = [*EVENT_NAMES, "explore", "drink", "eat", "sleep"]
    return TextGoalTable({n: rng.standard_normal((3, EMBED_DIM)) for n in names})


def test_dataset_event_text_goals_mix_and_p_uncond(demo_store) -> None:  # noqa: F811
    paths = list_episodes(demo_store)
    base = dict(segment_len=16, max_btwn_goals=40, embed_name=EMBED_NAME, text_horizon=200, p_later_event=0.0)
    table = _table()
    text_rows = {tuple(r) for rows in table.table.values() for r in rows.astype(np.float32)}

    def item_kinds(cfg: SegmentConfig, n: int = 300) -> tuple[int, int, int]:
        index = build_segment_index([(paths, 1.0)], cfg)
        ds = SegmentDataset(index, cfg, (64, 64), text_goals=table)
        zero = text = visual = 0
        for k in range(n):
            g = ds._goals(Episode(index.episodes[index.rows[k % len(index)][0]]), *index.rows[k % len(index)][1:], np.random.default_rng(k))
            if not g.any():
                zero += 1
            elif any(tuple(r) in text_rows for r in g):
                text += 1
            else:
                visual += 1
        return zero, text, visual

    z, t, v = item_kinds(SegmentConfig(**base, goal_source="event_text", text_fraction=0.5, p_uncond=0.2))
    assert abs(z / 300 - 0.2) < 0.09  # p_uncond still zeroes whole segments
    assert t > 0 and v > 0 and abs(t / (t + v) - 0.5) < 0.15  # the mix ratio (segments without events stay visual)
    z, t, v = item_kinds(SegmentConfig(**base, goal_source="event_text", text_fraction=1.0, p_uncond=0.0))
    assert z == 0 and t > v

    # the visual stream of a seed is the same in every mode: only timesteps with a text goal differ
    cfg = SegmentConfig(**base, goal_source="event_text", p_uncond=0.0)
    index = build_segment_index([(paths, 1.0)], cfg)
    e, s, end = (int(x) for x in index.rows[2])
    ep = Episode(index.episodes[e])
    got = SegmentDataset(index, cfg, (64, 64), text_goals=table)._goals(ep, s, end, np.random.default_rng(7))
    vis, _ = relabelled_goals(ep.read_embeds(EMBED_NAME)[0], s, end, 15, 40, 0.0, np.random.default_rng(7))
    same = (got == vis).all(1)
    for i in np.flatnonzero(~same):
        assert tuple(got[i]) in text_rows
    targets = event_text_targets(ep.events, 200, 0.0, np.random.default_rng(0), known=table)
    assert (~same).sum() == sum(n is not None for n in targets.names[s:end])


def test_dataset_intention_goals_are_the_recorded_sub_goal(demo_store) -> None:  # noqa: F811
    paths = list_episodes(demo_store)
    table = _table(1)
    cfg = SegmentConfig(segment_len=16, max_btwn_goals=40, embed_name=None, goal_source="intention", p_uncond=0.0)
    index = build_segment_index([(paths, 1.0)], cfg)
    ds = SegmentDataset(index, cfg, (64, 64), text_goals=table)
    assert ds.goal_dim == EMBED_DIM
    item = ds[(1, 5)]
    e, s, end = (int(x) for x in index.rows[1])
    recorded = [info.get("goal") for info in Episode(index.episodes[e]).infos[s:end]]
    for row, name in zip(item["goal"].numpy(), recorded, strict=True):
        if name in table:
            assert any(np.allclose(row, r) for r in table.table[name])
        else:
            assert not row.any()
    with pytest.raises(ConfigError, match="text goal table"):
        SegmentDataset(index, cfg, (64, 64))
    with pytest.raises(ConfigError, match="goal_source"):
        SegmentConfig(goal_source="telepathy")
