"""Event -> instruction paraphrases for Crafter: the caption catalogue shared by embed, prior and eval.

The first paraphrase of each event is its canonical instruction (what an eval suite would say);
the others make the text side robust to wording. `NOTHING` labels clips in which no event happens.

Other worlds keep their catalogues with their events (Minecraft: `aimc.envs.minecraft.captions`), selected by
world name through `catalogue(world)` and the optional `world` argument of the functions below; without it
they read this module's Crafter tables, so every existing caller is unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from aimc.core.errors import UnknownNameError

NOTHING = "nothing"

CAPTIONS: dict[str, tuple[str, ...]] = {
    "collect_wood": ("chop a tree", "collect wood", "cut down a tree", "get a log", "punch a tree"),
    "place_table": (
        "place a crafting table",
        "build a workbench",
        "put down a crafting table",
        "set up a table",
    ),
    "make_wood_pickaxe": ("craft a wooden pickaxe", "make a wood pickaxe", "build a wooden pickaxe"),
    "make_wood_sword": ("craft a wooden sword", "make a wood sword", "build a wooden sword"),
    "collect_stone": ("mine stone", "dig cobblestone", "collect stone", "break a stone block"),
    "place_stone": (
        "place a stone block",
        "put down stone",
        "build with stone",
        "bridge over water with stone",
    ),
    "make_stone_pickaxe": ("craft a stone pickaxe", "make a stone pickaxe", "build a stone pickaxe"),
    "make_stone_sword": ("craft a stone sword", "make a stone sword", "build a stone sword"),
    "collect_coal": ("mine coal", "collect coal", "dig up coal ore", "get some coal"),
    "place_furnace": ("place a furnace", "build a furnace", "put down a furnace"),
    "collect_iron": ("mine iron", "collect iron", "dig up iron ore", "get some iron"),
    "make_iron_pickaxe": ("craft an iron pickaxe", "make an iron pickaxe", "build an iron pickaxe"),
    "make_iron_sword": ("craft an iron sword", "make an iron sword", "build an iron sword"),
    "collect_diamond": ("mine a diamond", "collect a diamond", "dig up a diamond", "find diamonds"),
    "collect_drink": (
        "drink water",
        "take a drink from the lake",
        "quench your thirst",
        "drink from the water",
    ),
    "eat_cow": ("kill a cow", "hunt a cow and eat it", "eat a cow", "hunt a cow"),
    "defeat_zombie": ("kill a zombie", "defeat a zombie", "fight off a zombie", "slay the zombie"),
    "defeat_skeleton": ("kill a skeleton", "defeat a skeleton", "fight a skeleton", "slay the skeleton"),
    "collect_sapling": ("collect a sapling", "pick up a sapling", "gather a sapling from the grass"),
    "place_plant": ("plant a sapling", "place a plant", "put a sapling in the ground"),
    "eat_plant": ("eat a ripe plant", "harvest a crop", "eat the plant", "harvest the sapling"),
    "wake_up": ("sleep until morning", "wake up after sleeping", "rest through the night"),
    "take_damage": ("take damage", "get hurt", "lose health"),
    "fall_asleep": ("fall asleep", "go to sleep", "lie down and sleep"),
    NOTHING: ("nothing happens", "wander around", "walk around", "do nothing in particular"),
}

# The scripted demonstrator's sub-goals (its `current_goal`) as instructions: the oracle "intention" goals of
# goal-conditioned training. Sub-goals named after an event use that event's paraphrases; the survival
# behaviours and exploration get their own.
INTENTIONS: dict[str, tuple[str, ...]] = {
    **{k: v for k, v in CAPTIONS.items() if k not in (NOTHING, "take_damage")},
    "explore": ("explore the world", "look around", "wander and explore", "go exploring"),
    "drink": CAPTIONS["collect_drink"],
    "eat": ("find food and eat", "eat something", "get some food", "eat a cow"),
    "sleep": CAPTIONS["fall_asleep"],
    "shelter": ("build a shelter", "wall yourself in", "hide from the monsters", "make a safe place to sleep"),
    "arm": ("make a weapon", "arm yourself", "craft a sword"),
    "fight_zombie": CAPTIONS["defeat_zombie"],
    "fight_skeleton": CAPTIONS["defeat_skeleton"],
    "flee": ("run away", "flee from the monster", "escape danger", "get away from the enemy"),
}

# When one step fires several events, the clip is captioned by the most specific one (first in this order).
PRIORITY: tuple[str, ...] = tuple(k for k in CAPTIONS if k != NOTHING)


# World name -> module holding that world's `CAPTIONS` and `PRIORITY` (the default world's are the ones above).
WORLD_CATALOGUES: dict[str, str] = {"minecraft": "aimc.envs.minecraft.captions"}


def _tables(world: str | None) -> tuple[Mapping[str, tuple[str, ...]], tuple[str, ...]]:
    if world is None:
        return CAPTIONS, PRIORITY
    if world in WORLD_CATALOGUES:
        module = importlib.import_module(WORLD_CATALOGUES[world])
        return module.CAPTIONS, module.PRIORITY
    from aimc.envs.base import DEFAULT_WORLD

    if world == DEFAULT_WORLD:
        return CAPTIONS, PRIORITY
    raise UnknownNameError(f"no caption catalogue for world {world!r}; catalogues: {', '.join(sorted({DEFAULT_WORLD, *WORLD_CATALOGUES}))}")


def catalogue(world: str | None = None) -> Mapping[str, tuple[str, ...]]:
    """Event -> paraphrases (`NOTHING` included) of `world`'s catalogue; None = Crafter's `CAPTIONS`."""
    return _tables(world)[0]


def instruction(event: str, world: str | None = None) -> str:
    """The canonical instruction for `event`."""
    return paraphrases(event, world)[0]


def paraphrases(event: str, world: str | None = None) -> tuple[str, ...]:
    table = catalogue(world)
    if event not in table:
        raise UnknownNameError(f"no captions for event {event!r}; known: {', '.join(table)}")
    return table[event]


def caption_event(events: list[str], world: str | None = None) -> str | None:
    """The event a clip ending at a step with `events` is captioned by (None when none is captionable)."""
    present = set(events)
    return next((e for e in _tables(world)[1] if e in present), None)


def all_captions(world: str | None = None) -> list[tuple[str, str]]:
    """Every (event, paraphrase) pair, in catalogue order."""
    return [(event, text) for event, texts in catalogue(world).items() for text in texts]
