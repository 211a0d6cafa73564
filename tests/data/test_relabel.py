"""Relabelling against a direct transcription of STEVE-1's loop (same draws from the same rng)."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.core.errors import ConfigError
from aimc.data.relabel import anchor_to_events, goal_timesteps, relabel, relabelled_goals


def reference_relabel(n: int, lo: int, hi: int, p_uncond: float, rng: np.random.Generator) -> tuple[list[int], bool]:
    """The reference algorithm step by step: a while loop of gaps, then a per-timestep walk."""
    goals = []
    cur = 0
    while cur < n - 1:
        cur += int(rng.integers(lo, hi))
        if n - cur < lo:
            cur = n - 1
        goals.append(cur)
    per_t = []
    k = 0
    for t in range(n):
        per_t.append(goals[k])
        if t == goals[k] + 1:
            k += 1
    return per_t, bool(rng.random() < p_uncond)


@pytest.mark.parametrize("n,lo,hi", [(100, 15, 200), (655, 15, 200), (1000, 15, 64), (31, 15, 16), (300, 20, 21)])
def test_matches_reference_loop(n, lo, hi):
    for seed in range(50):
        idx, uncond = relabel(n, lo, hi, 0.3, np.random.default_rng(seed))
        ref_idx, ref_uncond = reference_relabel(n, lo, hi, 0.3, np.random.default_rng(seed))
        assert idx.tolist() == ref_idx
        assert uncond == ref_uncond


def test_gap_bounds_and_last_goal():
    lo, hi, n = 15, 200, 5000
    gaps = []
    for seed in range(200):
        g = goal_timesteps(n, lo, hi, np.random.default_rng(seed))
        assert g[-1] == n - 1
        assert np.all(np.diff(g) > 0)
        d = np.diff(np.concatenate([[0], g]))
        assert d[:-1].min() >= lo and d[:-1].max() <= hi - 1  # interior gaps uniform in [lo, hi)
        assert d[-1] >= lo - 1  # the merged tail: at least lo - 1 to the last frame
        gaps += d[:-1].tolist()
    assert min(gaps) == lo and max(gaps) == hi - 1  # both ends of the range are reached
    # every timestep's goal lies in its future, except the step right after a goal frame
    idx, _ = relabel(n, lo, hi, 0.0, np.random.default_rng(1))
    ahead = idx - np.arange(n)
    assert ahead.min() == -1 and ahead.max() <= hi - 1


def test_p_uncond_zeroes_whole_segments_at_the_rate():
    emb = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float16)
    emb[:15] = np.nan  # rows without a full window must never be used
    zero = 0
    for seed in range(2000):
        goals, uncond = relabelled_goals(emb, 15, 79, 15, 64, 0.1, np.random.default_rng(seed))
        assert goals.shape == (64, 4) and goals.dtype == np.float32
        assert not np.isnan(goals).any()
        if uncond:
            assert not goals.any()
            zero += 1
        else:
            assert (np.abs(goals).sum(1) > 0).all()
    assert 0.08 < zero / 2000 < 0.12


def test_rejects_bad_gaps():
    with pytest.raises(ConfigError, match="min_btwn_goals"):
        goal_timesteps(100, 10, 50, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="max_btwn_goals"):
        goal_timesteps(100, 20, 20, np.random.default_rng(0))


def test_event_anchors_take_over_within_the_gap() -> None:
    n, max_gap = 120, 20
    events: list[list[str]] = [[] for _ in range(n)]
    events[5] = ["collect_sapling"]  # its clip (ending at frame 6) has no full window: not an anchor
    events[30] = ["collect_wood"]  # shows in frame 31
    events[50] = ["take_damage"]  # ignored
    events[70] = ["place_table", "take_damage"]  # frame 71
    idx = np.full(n, n - 1)  # a stand-in random schedule
    got = anchor_to_events(idx, events, max_gap, ("take_damage", "death"))
    want = idx.copy()
    t = np.arange(n)
    want[(t <= 32) & (31 - t < max_gap)] = 31  # "t <= goal + 1", as the reference moves on
    want[(t > 32) & (t <= 72) & (71 - t < max_gap)] = 71
    assert np.array_equal(got, want)
    assert got[11] == n - 1 and got[12] == got[32] == 31 and got[51] == n - 1 and got[52] == got[72] == 71 and got[73] == n - 1


def test_event_anchoring_keeps_the_random_draws() -> None:
    emb = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    events: list[list[str]] = [[] for _ in range(200)]
    events[99] = ["collect_wood"]
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    plain, u1 = relabelled_goals(emb, 0, 200, 15, 64, 0.0, r1)
    anch, u2 = relabelled_goals(emb, 0, 200, 15, 64, 0.0, r2, events=events)
    assert u1 == u2 and r1.random() == r2.random()  # same number of draws
    assert np.array_equal(anch[40:101], np.repeat(emb[100][None], 61, 0))  # 100 - t < 64 and t <= 101
    assert np.array_equal(anch[102:], plain[102:])
    assert relabelled_goals(emb, 0, 200, 15, 64, 1.0, np.random.default_rng(3), events=events)[1]  # p_uncond still zeroes


def test_unknown_goal_anchor_is_refused() -> None:
    from aimc.data.dataset import SegmentConfig

    with pytest.raises(ConfigError, match="goal_anchor"):
        SegmentConfig(goal_anchor="nearest")
