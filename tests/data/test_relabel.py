"""Relabelling against a direct transcription of STEVE-1's loop (same draws from the same rng)."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.core.errors import ConfigError
from aimc.data.relabel import goal_timesteps, relabel, relabelled_goals


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
