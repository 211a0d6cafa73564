"""With a real game: a short episode in each installed backend, and a STEVE-1 play. Marked `minecraft` (deselected
by default: `pytest -m minecraft` on a machine with the game, docs/minecraft.md) and skipped where the backend's
package or game download is missing. `AIMC_STEVE1_BUNDLE` names a bundle from `aimc convert steve1` for the play
test; `AIMC_MINECRAFT_BACKENDS` (comma-separated, default both) limits the backends tried."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from aimc.envs import check_world, make
from aimc.envs.actions import JOINT_ACTION_NAMES, NULL_JOINT_CODE
from aimc.envs.minecraft.backends import BACKENDS, GameUnavailable
from aimc.envs.minecraft.events import EVENT_NAMES

pytestmark = pytest.mark.minecraft
WANTED = [b for b in os.environ.get("AIMC_MINECRAFT_BACKENDS", ",".join(BACKENDS)).split(",") if b]


def _require(backend: str) -> None:
    try:
        BACKENDS[backend].check()
    except GameUnavailable as e:
        pytest.skip(f"no {backend} game here: {e}")


@pytest.mark.parametrize("backend", WANTED)
def test_a_short_episode_in_the_game(backend):
    _require(backend)
    env = make("minecraft", backend=backend, size=[128, 128])
    try:
        obs, info = env.reset(seed=0)
        assert obs["pov"].shape == (128, 128, 3) and obs["pov"].dtype == np.uint8 and info["events"] == []
        assert obs["pov"].std() > 1.0  # a rendered world, not a blank frame
        chop = JOINT_ACTION_NAMES.index("forward+attack|cam(5,5)")
        for t in range(60):
            obs, _, terminated, truncated, info = env.step(chop if t % 2 else NULL_JOINT_CODE)
            assert set(info["events"]) <= set(EVENT_NAMES)
            assert info["action"]["forward"] == (t % 2) and info["action"]["attack"] == (t % 2)
            json.dumps(info)
            if terminated:
                break
        assert len(info["player_pos"]) == 3
        frame = env.render_frame(256)
        assert frame.shape == (256, 256, 3)
    finally:
        env.close()


@pytest.mark.parametrize("backend", WANTED)
def test_the_game_keeps_the_world_contract(backend):
    _require(backend)
    check_world("minecraft", steps=40, seed=1, backend=backend)


def test_steve1_plays_in_minecraft(tmp_path):
    bundle = os.environ.get("AIMC_STEVE1_BUNDLE")
    if not bundle:
        pytest.skip("set AIMC_STEVE1_BUNDLE to a bundle made by `aimc convert steve1`")
    from aimc.eval.agent import read_bundle
    from aimc.eval.play import play

    _require(read_bundle(bundle)["world_config"].get("backend", "minestudio"))
    r = play(bundle, "chop a tree", steps=200, seed=0, video=tmp_path / "steve1.mp4", world="minecraft")
    assert r["steps"] == 200 and (tmp_path / "steve1.mp4").stat().st_size > 0
    assert all(e in EVENT_NAMES for _, e in r["events"])
