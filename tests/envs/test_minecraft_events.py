"""Minecraft events from constructed inventories and statistics, their caption catalogue, and the task suite's
success predicates on them."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import aimc.eval.tasks as tasks_mod
from aimc.core.errors import UnknownNameError
from aimc.data.text_goals import event_text_targets
from aimc.embed import captions
from aimc.envs.minecraft import EVENT_NAMES, GameState, events_between, state_change
from aimc.envs.minecraft.captions import CAPTIONS as MC_CAPTIONS
from aimc.envs.minecraft.events import inventory_counts, stat_counters
from aimc.eval.tasks import check_events, load_suite

SUITE = Path(tasks_mod.__file__).parent / "suites" / "minecraft-early.yaml"


def test_every_reported_inventory_layout_gives_the_same_totals() -> None:
    want = {"oak_log": 3, "dirt": 64}
    recording = [{"type": "oak_log", "quantity": 2}, {"type": "dirt", "quantity": 64}, {"type": "air", "quantity": 0},
                 {"type": "oak_log", "quantity": 1}]
    minestudio = {i: slot for i, slot in enumerate(recording)}
    minerl = {"oak_log": np.array(3), "dirt": np.array(64), "stone": np.array(0)}
    minedojo = {"name": np.array(["oak log", "dirt", "air", "oak log"]), "quantity": np.array([2, 64, 0, 1])}
    for report in (recording, minestudio, minerl, minedojo):
        assert inventory_counts(report) == want
    assert inventory_counts(None) == {} and inventory_counts([]) == {}
    with pytest.raises(ValueError, match="not a {type, quantity} mapping"):
        inventory_counts([3])


def test_statistics_flat_or_grouped_and_only_item_kinds() -> None:
    flat = {"minecraft.mine_block:minecraft.oak_log": 2, "minecraft.custom:minecraft.jump": 9,
            "minecraft.kill_entity:minecraft.cow": 1.0}
    grouped = {"mine_block": {"minecraft.mine_block:minecraft.oak_log": np.array(2.0)},
               "kill_entity": {"minecraft.kill_entity:minecraft.cow": np.array([1.0])}, "custom": {"minecraft.custom:minecraft.jump": 9}}
    assert stat_counters(flat) == stat_counters(grouped) == {"mine_block:oak_log": 2, "kill_entity:cow": 1}


def test_events_fire_per_unit_increase_and_never_on_a_fall() -> None:
    before = GameState.from_report([{"type": "oak_log", "quantity": 2}, {"type": "acacia_log", "quantity": 1}],
                                   {"minecraft.mine_block:minecraft.birch_leaves": 4})
    after = GameState.from_report(
        [{"type": "oak_log", "quantity": 1}, {"type": "acacia_log", "quantity": 3}, {"type": "birch_planks", "quantity": 4},
         {"type": "crafting_table", "quantity": 1}],
        {"minecraft.mine_block:minecraft.birch_leaves": 5, "minecraft.craft_item:minecraft.crafting_table": 1,
         "minecraft.use_item:minecraft.crafting_table": 2, "minecraft.kill_entity:minecraft.zombie": 1},
        gui_inventory=True)
    # oak_log fell (no event), acacia_log +2 (STEVE-1 counts every *_log), planks +4, table crafted, placed twice
    assert events_between(before, after) == [
        "obtain_log", "obtain_log", *["obtain_planks"] * 4, "obtain_crafting_table", "mine_leaves",
        "craft_crafting_table", "place_crafting_table", "place_crafting_table", "kill_zombie", "open_inventory"]
    change = state_change(before, after)
    assert change.to_info() == {
        "gained": {"acacia_log": 2, "birch_planks": 4, "crafting_table": 1},
        "stat_deltas": {"craft_item:crafting_table": 1, "kill_entity:zombie": 1, "mine_block:birch_leaves": 1,
                        "use_item:crafting_table": 2}}
    # backwards only oak_log rises; every counter that falls, and the inventory screen closing, fire nothing
    assert events_between(after, before) == ["obtain_log"]
    old = GameState.from_report({"log": 1, "log2": 1, "sapling": 0})  # MineDojo's 1.11 names
    assert events_between(GameState(), old) == ["obtain_log", "obtain_log"]


def _episode_events(states: list[GameState]) -> list[list[str]]:
    """events[t] = what happened between state t and t+1 (the store's convention: caused by action t)."""
    return [events_between(a, b) for a, b in zip(states[:-1], states[1:], strict=True)]


def test_suite_success_predicates_on_constructed_episodes() -> None:
    suite = load_suite(SUITE)
    check_events(suite, list(EVENT_NAMES))  # every success event is one the Minecraft events can fire
    assert suite.world == "minecraft" and len(suite.tasks) == 12 and suite.max_steps == 3000
    inv = [{}, {"oak_log": 2}, {"oak_log": 2, "dirt": 1}, {"oak_log": 1, "dirt": 1, "oak_planks": 4},
           {"oak_log": 3, "dirt": 1, "oak_planks": 4}, {"oak_log": 4, "dirt": 1, "oak_planks": 4}]
    stats = [{}, {}, {}, {}, {}, {"minecraft.kill_entity:minecraft.cow": 1}]
    states = [GameState.from_report(i, s) for i, s in zip(inv, stats, strict=True)]
    occ: dict[str, list[int]] = {}
    for t, evs in enumerate(_episode_events(states)):
        for e in evs:
            occ.setdefault(e, []).append(t)
    steps = {t.name: t.success.step(occ) for t in suite.tasks}
    # logs gained: 2 by action 0, 2 more by action 3 (one was made into planks at 2): the 4th gain is at step 3
    assert steps["harvest_1_log"] == 0 and steps["harvest_4_log"] == 3
    assert steps["harvest_1_dirt"] == 1 and steps["harvest_1_planks"] == 2 and steps["hunt_cow"] == 4
    assert steps["harvest_1_seeds"] is None and steps["harvest_1_wooden_pickaxe"] is None
    assert suite.task("harvest_1_log").prompts[0] == "obtain log"


def test_caption_catalogue_per_world_leaves_crafter_alone() -> None:
    crafter_before = copy.deepcopy(captions.CAPTIONS)
    mc = captions.catalogue("minecraft")
    assert mc is MC_CAPTIONS and set(mc) == {*EVENT_NAMES, captions.NOTHING}
    assert all(len(v) >= 3 and len(set(v)) == len(v) for v in mc.values())
    assert captions.catalogue() is captions.catalogue("crafter") is captions.CAPTIONS == crafter_before
    assert captions.instruction("obtain_log", "minecraft") == "obtain log"
    assert captions.instruction("collect_wood") == "chop a tree"  # the default is still Crafter's
    assert captions.caption_event(["obtain_planks", "craft_planks", "open_inventory"], world="minecraft") == "craft_planks"
    assert captions.caption_event(["obtain_log"]) is None  # not a Crafter event
    assert ("kill_cow", "hunt a cow") in captions.all_captions("minecraft")
    with pytest.raises(UnknownNameError, match="no caption catalogue for world 'nether'; catalogues: crafter, minecraft"):
        captions.catalogue("nether")


def test_event_text_relabelling_runs_unchanged_on_minecraft_events() -> None:
    events = [[], ["mine_log"], ["obtain_log"], [], [], ["obtain_planks"] * 4 + ["craft_planks"] * 4, []]
    targets = event_text_targets(events, horizon=10, p_later=0.0, rng=np.random.default_rng(0),
                                 known=captions.catalogue("minecraft"))
    assert targets.names == ["mine_log", "mine_log", "obtain_log", "obtain_planks", "obtain_planks", "obtain_planks", None]
