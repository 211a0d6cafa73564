"""The fast world generator and renderer give exactly upstream crafter's worlds and frames.

Each test builds the reference with upstream's own code on the same env instance (its `reset`, its
`LocalView.__call__` and `ItemView.__call__`), so a difference in any material, creature, random draw or pixel
fails; nothing here is a stored snapshot.
"""

from __future__ import annotations

import crafter
import numpy as np
import pytest
from crafter import engine

from aimc.envs import make
from aimc.envs.crafter import _DeterministicLocalView, _FastResetEnv
from aimc.envs.demo import CrafterDemonstrator


class _UpstreamLocalView(_DeterministicLocalView):
    """Upstream's per-cell drawing, with the same deterministic night noise as ours."""

    __call__ = engine.LocalView.__call__


def _upstream_render(raw, size=None) -> np.ndarray:
    local, items = raw._local_view, raw._item_view
    saved = local.__class__, items.__class__
    local.__class__, items.__class__ = _UpstreamLocalView, engine.ItemView
    try:
        return crafter.Env.render(raw, size)
    finally:
        local.__class__, items.__class__ = saved


def _world_state(raw) -> tuple:
    world = raw._world
    creatures = [(type(o).__name__, tuple(int(v) for v in o.pos), o.health) for o in world.objects]
    _, keys, pos, *_ = world.random.get_state()
    return world._mat_map.tobytes(), creatures, keys.tobytes(), pos, tuple(int(v) for v in raw._player.pos)


@pytest.mark.parametrize("first", [0, 1000, 2**30])
def test_worlds_match_upstream_generation(first):
    """Materials, creatures (kinds, cells, order) and the world's random state after generation, per world."""
    raw = make("crafter").raw
    assert isinstance(raw, _FastResetEnv)
    for seed in range(first, first + 25):
        raw._seed, raw._episode = seed, 0
        _FastResetEnv.reset(raw)
        ours = _world_state(raw)
        raw._seed, raw._episode = seed, 0
        crafter.Env.reset(raw)
        assert _world_state(raw) == ours, f"world seed {seed} differs from upstream's generation"
    # Episodes after the first draw their world from (seed, episode) as upstream does.
    raw._seed, raw._episode = 7, 3
    _FastResetEnv.reset(raw)
    ours = _world_state(raw)
    raw._seed, raw._episode = 7, 3
    crafter.Env.reset(raw)
    assert _world_state(raw) == ours


def test_frames_match_upstream_on_random_play_at_several_sizes():
    env = make("crafter")
    rng = np.random.default_rng(0)
    checked = 0
    for seed in (11, 12):
        obs, _ = env.reset(seed=seed)
        assert np.array_equal(obs["pov"], _upstream_render(env.raw))
        for _ in range(250):
            obs, _, term, trunc, _ = env.step(int(rng.integers(0, env.action_space.n)))
            assert np.array_equal(obs["pov"], _upstream_render(env.raw))
            for size in ((256, 256), (100, 100), (64, 40)):
                assert np.array_equal(env.raw.render(size), _upstream_render(env.raw, size)), size
            checked += 1
            if term or trunc:
                break
    assert checked > 100


def test_frames_match_upstream_at_night_asleep_and_at_the_world_edge():
    """A demonstrator episode through the first night (noise, sleeping tint, creatures round the room), then
    the player moved to each corner of the world (cells outside the world stay grey)."""
    env = make("crafter")
    demo = CrafterDemonstrator(seed=0)
    obs, info = env.reset(seed=21003)
    demo.reset(env)
    seen = {"night": False, "asleep": False}
    for _ in range(330):
        obs, _, term, trunc, info = env.step(demo.act(env))
        seen["night"] |= info["daylight"] < 0.3
        seen["asleep"] |= info["sleeping"]
        assert np.array_equal(obs["pov"], _upstream_render(env.raw))
        if term or trunc:
            break
    assert seen == {"night": True, "asleep": True}, seen
    world, player = env.raw._world, env.raw._player
    for corner in ((0, 0), (63, 0), (0, 63), (63, 63), (2, 40)):
        occupant = world[corner][1]
        if occupant is not None and occupant is not player:
            world.remove(occupant)
        world.move(player, corner)
        assert np.array_equal(env.raw.render(), _upstream_render(env.raw)), corner
        assert np.array_equal(env.raw.render((256, 256)), _upstream_render(env.raw, (256, 256))), corner


def test_semantic_map_only_when_asked():
    env = make("crafter")
    env.reset(seed=0)
    assert "semantic" not in env.step(0)[4]
    env = make("crafter", semantic=True)
    env.reset(seed=0)
    semantic = env.step(0)[4]["semantic"]
    assert semantic.shape == (64, 64) and semantic.max() > 0


def test_fast_false_runs_upstream_code_with_the_same_trajectory():
    fast, slow = make("crafter"), make("crafter", fast=False)
    assert isinstance(fast.raw, _FastResetEnv) and not isinstance(slow.raw, _FastResetEnv)
    rng = np.random.default_rng(3)
    for env in (fast, slow):
        env.reset(seed=5)
    for _ in range(120):
        action = int(rng.integers(0, fast.action_space.n))
        a, b = fast.step(action), slow.step(action)
        assert np.array_equal(a[0]["pov"], b[0]["pov"]) and a[1:4] == b[1:4]
        assert fast.world_hash() == slow.world_hash()
        if a[2] or a[3]:
            break
