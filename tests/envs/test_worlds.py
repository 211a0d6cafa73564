"""Every registered world keeps the contract (`check_world`), and describes itself without being built."""

from __future__ import annotations

import pytest

from aimc.core.errors import UnknownNameError
from aimc.core.registry import Registry
from aimc.envs import DEFAULT_WORLD, available_worlds, check_world, world_info
from aimc.envs.crafter import ACHIEVEMENTS, ACTION_NAMES
from aimc.eval.tasks import world_events

# Worlds that run a real game: checked only where it is installed (`-m minecraft`, deselected by default); their
# conversions are tested offline on recorded reports (tests/envs/minecraft).
GAME_WORLDS = {"minecraft"}
WORLDS = [pytest.param(n, marks=pytest.mark.minecraft) if n in GAME_WORLDS else n for n in available_worlds()]


@pytest.mark.parametrize("name", WORLDS)
def test_every_registered_world_passes_check_world(name):
    check_world(name, steps=60, seed=3)


@pytest.mark.parametrize("name", WORLDS)
def test_world_info_matches_a_built_instance(name):
    from aimc.envs import make

    info = world_info(name)
    env = make(name, **info.default_config)
    assert info.name == name
    assert list(info.action_names) == list(env.action_names) and env.action_space.n == len(info.action_names)
    assert list(info.event_names) == list(env.event_names)


def test_crafter_declares_its_names_and_extras():
    info = world_info("crafter")
    assert DEFAULT_WORLD == "crafter"
    assert info.action_names == tuple(ACTION_NAMES) and len(info.action_names) == 17
    assert info.event_names == (*ACHIEVEMENTS, "take_damage", "death", "fall_asleep") and len(info.event_names) == 25
    assert info.supports_replay and info.has_demonstrator
    assert info.default_config["size"] == 64 and info.default_config["render_size"] == 256
    info.default_config["size"] = 1  # a copy: the class's defaults stay intact
    assert world_info("crafter").default_config["size"] == 64
    assert world_events("crafter") == sorted(info.event_names)


def test_unknown_world_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown world 'nope'; available: crafter"):
        world_info("nope")


def test_registry_unregister_removes_and_rejects_unknown():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    assert "a" in reg
    reg.unregister("a")
    assert "a" not in reg and reg.names() == []
    with pytest.raises(UnknownNameError, match="thing 'a' is not registered"):
        reg.unregister("a")
