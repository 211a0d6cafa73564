"""STEVE-1's packed hindsight relabelling, as pure functions of an explicit numpy Generator.

Every timestep of an episode is conditioned on the embedding of a clip from its own future:

1. goal timesteps: start at 0, repeatedly advance by a gap uniform in [min_btwn_goals, max_btwn_goals)
   (upper bound exclusive, like ``np.random.randint``); when fewer than ``min_btwn_goals`` frames would
   remain, jump to N-1, so the last goal is always the last frame;
2. timestep t takes goal g_k, and moves on to g_{k+1} only after t == g_k + 1 (so the step right after a
   goal frame still sees that goal);
3. with probability ``p_uncond`` the whole segment's goals become zeros (one draw per segment).

Event anchoring (``anchor_to_events``; not in STEVE-1, off by default) moves a timestep's goal to the clip that ends one frame
after its next event, when that event comes within ``max_btwn_goals`` frames: the goal then shows what the
coming actions achieve, the way an instruction describes an event, instead of a random moment.

The rng is a parameter (not numpy's global state) so a data-loader item is a function of its seed alone,
which makes training resumable bit-for-bit regardless of how many worker processes decode the data.
"""

from __future__ import annotations

import numpy as np

from aimc.core.errors import ConfigError

EMBED_OFFSET = 15  # rows 0..14 have no full 16-frame window (STEVE-1's NONE_EMBED_OFFSET)


def check_goal_gaps(min_btwn_goals: int, max_btwn_goals: int) -> None:
    """The reference asserts: goals index full windows (>= 15) and the gap range is non-empty."""
    if min_btwn_goals < EMBED_OFFSET:
        raise ConfigError(f"min_btwn_goals must be >= {EMBED_OFFSET} (rows below have no full window), got {min_btwn_goals}")
    if max_btwn_goals <= min_btwn_goals:
        raise ConfigError(f"max_btwn_goals ({max_btwn_goals}) must be > min_btwn_goals ({min_btwn_goals})")


def min_episode_length(min_btwn_goals: int, segment_len: int) -> int:
    """Shortest episode usable for training (reference: max(min_btwn_goals + 15, T + 15))."""
    return max(min_btwn_goals + EMBED_OFFSET, segment_len + EMBED_OFFSET)


def goal_timesteps(n: int, min_btwn_goals: int, max_btwn_goals: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted goal frame indices for an episode of `n` frames; the last one is always n-1."""
    check_goal_gaps(min_btwn_goals, max_btwn_goals)
    if n < 2:
        raise ConfigError(f"an episode needs at least 2 frames to relabel, got {n}")
    goals = []
    pos = 0
    while pos < n - 1:
        pos += int(rng.integers(min_btwn_goals, max_btwn_goals))
        if n - pos < min_btwn_goals:
            pos = n - 1
        goals.append(pos)
    return np.asarray(goals, np.int64)


def goal_index_per_timestep(goals: np.ndarray, n: int) -> np.ndarray:
    """(n,) frame index of each timestep's goal: t uses the first g_k with t <= g_k + 1."""
    k = np.searchsorted(goals + 1, np.arange(n), side="left")
    return goals[np.minimum(k, len(goals) - 1)]


def relabel(
    n: int, min_btwn_goals: int, max_btwn_goals: int, p_uncond: float, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """-> ((n,) goal frame index per timestep, unconditional?) for one episode and one segment draw.

    The draws happen in the reference order: all gaps first, then the single p_uncond draw.
    """
    if not 0.0 <= p_uncond <= 1.0:
        raise ConfigError(f"p_uncond must be in [0, 1], got {p_uncond}")
    goals = goal_timesteps(n, min_btwn_goals, max_btwn_goals, rng)
    uncond = bool(rng.random() < p_uncond)
    return goal_index_per_timestep(goals, n), uncond


def anchor_to_events(idx: np.ndarray, events: list[list[str]], max_btwn_goals: int, ignore: tuple[str, ...]) -> np.ndarray:
    """Per-timestep goal indices with each timestep's next event clip (within ``max_btwn_goals``) taking over.

    An event of step s shows in frame s+1, so its clip ends there (as the embedder's event captions do);
    events whose clip has no full window (frame < 15) or whose name is in ``ignore`` are not anchors.
    """
    n = len(idx)
    anchors = np.asarray(
        [s + 1 for s, evs in enumerate(events) if any(e not in ignore for e in evs) and EMBED_OFFSET <= s + 1 < n],
        np.int64,
    )
    if not len(anchors):
        return idx
    t = np.arange(n)
    k = np.searchsorted(anchors + 1, t, side="left")  # same "t <= goal + 1" rule as the reference
    ok = k < len(anchors)
    nxt = anchors[np.minimum(k, len(anchors) - 1)]
    use = ok & (nxt - t < max_btwn_goals)
    return np.where(use, nxt, idx)


def relabelled_goals(
    embeds: np.ndarray,
    start: int,
    end: int,
    min_btwn_goals: int,
    max_btwn_goals: int,
    p_uncond: float,
    rng: np.random.Generator,
    events: list[list[str]] | None = None,
    ignore_events: tuple[str, ...] = (),
) -> tuple[np.ndarray, bool]:
    """float32 (end-start, D) goals for frames [start, end) of an episode with per-frame `embeds` (N, D).

    Goals are drawn over the whole episode (as the reference does on every item) and then sliced.
    ``events`` (per step, the episode's events.jsonl): anchor goals on events (see `anchor_to_events`); the
    random draws are the same either way.
    """
    idx, uncond = relabel(len(embeds), min_btwn_goals, max_btwn_goals, p_uncond, rng)
    if events is not None:
        idx = anchor_to_events(idx, events, max_btwn_goals, ignore_events)
    if uncond:
        return np.zeros((end - start, embeds.shape[1]), np.float32), True
    return embeds[idx[start:end]].astype(np.float32), False
