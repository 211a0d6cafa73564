"""The Minecraft world's conversions (observations, actions, events, seeds) and its crash handling, on scripted
games in MineRL's and MineStudio's formats (tests/envs/minecraft/fakes.py); no game runs here."""

from __future__ import annotations

import gc
import json
import sys

import numpy as np
import pytest

from aimc.core.errors import AimcError, ConfigError
from aimc.envs import check_world, make, world_info
from aimc.envs.actions import (
    INVENTORY_BUTTON_IDX,
    JOINT_ACTION_NAMES,
    N_CAMERA_COMBOS,
    N_JOINT_CODES,
    NULL_JOINT_CODE,
    joint_code_to_env,
)
from aimc.envs.minecraft.backends import GAME_RESOLUTION, GAME_SETTINGS, GameUnavailable
from aimc.envs.minecraft.events import EVENT_NAMES
from aimc.envs.minecraft.frames import resize
from aimc.envs.minecraft.world import GameCrashError, MinecraftWorld
from tests.envs.minecraft import fakes

BACKENDS = ("minerl", "minestudio")
INVENTORY = INVENTORY_BUTTON_IDX * N_CAMERA_COMBOS + 60
FORWARD_ATTACK_LOOK = JOINT_ACTION_NAMES.index("forward+attack+camera|cam(8,4)")
FORWARD_ATTACK_NO_CAMERA = JOINT_ACTION_NAMES.index("forward+attack|cam(8,4)")
# the script's actions: the third opens the inventory, the others move and look
ACTIONS = [FORWARD_ATTACK_LOOK, NULL_JOINT_CODE, INVENTORY, FORWARD_ATTACK_NO_CAMERA, NULL_JOINT_CODE, 12345, 70000]


def _log(games, backend):
    return games[BACKENDS.index(backend)]


def _same_action(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_scripted_episode_converts_observations_actions_and_events(games, backend):
    env = make("minecraft", backend=backend, size=[128, 96])
    log = _log(games, backend)
    obs, info = env.reset(seed=7)
    assert obs["pov"].shape == (128, 96, 3) and env.observation_space["pov"].shape == (128, 96, 3)
    np.testing.assert_array_equal(obs["pov"], resize(fakes.frame(0, 7), (128, 96)))
    assert info == {"events": [], "inventory": {}, "gui_open": False, "player_pos": [0.5, 64.0, 0.5]}
    for t, code in enumerate(ACTIONS, start=1):
        obs, reward, terminated, truncated, info = env.step(code)
        assert info["events"] == fakes.SCRIPT_EVENTS[t], t
        np.testing.assert_array_equal(obs["pov"], resize(fakes.frame(t, 7), (128, 96)))
        assert _same_action(log.actions[-1], joint_code_to_env(code, squeeze=True))
        assert (reward, terminated, truncated) == (0.0, False, False)
        json.dumps(info)  # collection writes it as it is
        if t == 4:
            assert info["gained"] == {"oak_planks": 4} and info["stat_deltas"] == {"craft_item:oak_planks": 4}
            assert info["inventory"] == {"oak_planks": 4} and info["gui_open"] is True
    # the executed actions are VPT's: forward + attack with the camera at bins (8, 4) = (+3.215, -0.615) degrees
    first = log.actions[0]
    assert (first["forward"], first["attack"], first["jump"], first["ESC"], first["inventory"]) == (1, 1, 0, 0, 0)
    np.testing.assert_allclose(first["camera"], [3.2154, -0.6154], atol=1e-4)
    np.testing.assert_array_equal(log.actions[3]["camera"], [0.0, 0.0])  # no camera meta action: camera off
    assert log.actions[2]["inventory"] == 1 and sum(v for k, v in log.actions[2].items() if k != "camera") == 1
    env.close()
    assert log.closes == 1


def test_the_game_is_built_with_vpts_settings(games):
    for backend in BACKENDS:
        make("minecraft", backend=backend).reset(seed=1)
    minerl, studio = games
    assert minerl.spec_kwargs == [{"resolution": [640, 360], **GAME_SETTINGS}]
    assert GAME_SETTINGS == {"fov_range": [70, 70], "gamma_range": [2, 2], "guiscale_range": [1, 1],
                             "cursor_size_range": [16.0, 16.0], "frameskip": 1}  # VPT's agent.ENV_KWARGS
    assert studio.sim_kwargs == [{"action_type": "env", "obs_size": GAME_RESOLUTION,
                                  "render_size": GAME_RESOLUTION, "callbacks": []}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeds_reach_every_reset(games, backend):
    env = make("minecraft", backend=backend)
    log = _log(games, backend)
    env.reset(seed=3)
    env.reset(seed=3)
    env.reset()  # a random world, also for MineStudio, which seeds its env once at construction
    env.reset(seed=11)
    assert log.world_seeds == [3, 3, None, 11] and log.launches == 1
    np.testing.assert_array_equal(env.render_frame(40), resize(fakes.frame(0, 11), (40, 40)))


@pytest.mark.parametrize("kind", ["raise", "error"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crash_shuts_the_game_down_and_the_next_reset_restarts_it(games, backend, kind):
    log = _log(games, backend)
    log.crash_at, log.crash_kind = 1, kind
    env = make("minecraft", backend=backend)
    env.reset(seed=5)
    env.step(NULL_JOINT_CODE)
    with pytest.raises(GameCrashError, match=f"Minecraft game \\({backend}\\) crashed at step 1 of seed 5") as e:
        env.step(NULL_JOINT_CODE)
    assert ("Connection reset" if kind == "raise" else "Connection timed out") in str(e.value)
    assert log.closes == 1  # the dead process was closed, not leaked
    with pytest.raises(AimcError, match="no running game"):
        env.step(NULL_JOINT_CODE)
    obs, info = env.reset(seed=5)  # the retry path: the same episode again, in a fresh game
    assert log.launches == 2 and log.world_seeds == [5, 5] and info["events"] == []
    assert env.step(NULL_JOINT_CODE)[4]["events"] == ["mine_log"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_game_that_fails_to_start_is_retried_then_reported(games, backend):
    log = _log(games, backend)
    log.fail_starts = 2
    env = make("minecraft", backend=backend, start_attempts=3)
    env.reset(seed=2)
    assert (log.launches, log.closes) == (3, 2)  # two failed launches closed, the third plays
    log.fail_starts, log.resets = 10, 0
    env.close()
    with pytest.raises(GameCrashError, match=f"\\({backend}\\) did not start in 3 attempt\\(s\\) for seed 4"):
        env.reset(seed=4)
    assert log.closes == 3 + 3


def test_a_world_that_is_dropped_stops_its_game(games):
    log = games[0]
    env = make("minecraft", backend="minerl")
    env.reset(seed=0)
    del env
    gc.collect()
    assert log.closes == 1


def test_the_game_ending_the_episode_terminates_it(games):
    games[0].done_at = 2
    env = make("minecraft", backend="minerl")
    env.reset(seed=0)
    assert env.step(NULL_JOINT_CODE)[2] is False
    assert env.step(NULL_JOINT_CODE)[2] is True


def test_bad_actions_and_options_are_one_line(games):
    env = make("minecraft", backend="minerl")
    env.reset(seed=0)
    with pytest.raises(AimcError, match="minecraft action 1045561: joint action code out of range 0..1045560"):
        env.step(N_JOINT_CODES)
    with pytest.raises(ConfigError, match="unknown minecraft backend 'nope'; choose minestudio or minerl"):
        make("minecraft", backend="nope")
    with pytest.raises(ConfigError, match=r"unknown options \['fov'\]"):
        make("minecraft", backend="minerl", fov=90)
    with pytest.raises(ConfigError, match="size must be an int or \\[H, W\\]"):
        make("minecraft", backend="minerl", size=[128])
    assert make("minecraft", backend="minerl", size=64).observation_space["pov"].shape == (64, 64, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_package_is_one_install_line(monkeypatch, backend):
    for name in ("minerl", "minerl.herobraine.env_specs.human_survival_specs", "minestudio", "minestudio.simulator"):
        monkeypatch.setitem(sys.modules, name, None)  # what `import` sees when the package is not installed
    with pytest.raises(GameUnavailable) as e:
        make("minecraft", backend=backend)
    msg = str(e.value)
    assert "\n" not in msg and "docs/minecraft.md" in msg and "pip install 'aimc[minecraft]'" in msg


def test_minestudio_without_its_game_download_is_one_line(monkeypatch, tmp_path):
    fakes.install(monkeypatch, engine_dir=None)
    with pytest.raises(GameUnavailable, match="python -m minestudio.simulator.entry -y"):
        make("minecraft", backend="minestudio")


def test_world_info_needs_no_game_and_the_contract_holds(games):
    info = world_info("minecraft")
    assert len(info.action_names) == N_JOINT_CODES and info.action_names is JOINT_ACTION_NAMES
    assert info.event_names == EVENT_NAMES and "obtain_log" in info.event_names
    assert (info.deterministic, info.supports_replay, info.has_demonstrator) == (False, False, False)
    assert info.default_config == {"backend": "minestudio", "size": [128, 128], "start_attempts": 3}
    assert isinstance(make("minecraft", **info.default_config), MinecraftWorld)
    check_world("minecraft", steps=6, seed=1, backend="minerl", size=32)  # one run: spaces, obs, events, infos
    check_world("minecraft", steps=6, seed=1, backend="minestudio", size=32)


def test_statistics_grouped_by_kind_with_bare_item_names():
    """MineRL 1.0 and MineStudio report one mapping per kind keyed by bare item names (`obs["mine_block"]["oak_log"]`)."""
    from aimc.envs.minecraft.events import stat_counters

    report = {"mine_block": {"oak_log": np.array(2), "stone": np.array(0)}, "kill_entity": {"minecraft:cow": 1},
              "custom": {"jump": np.array(3)}, "full_stats": {"oak_log": np.array(9)}}
    assert stat_counters(report) == {"mine_block:oak_log": 2, "mine_block:stone": 0, "kill_entity:cow": 1}
