"""Minecraft events: a finite vocabulary read from inventory and statistics deltas, the same for recordings and games.

Crafter reports achievements; Minecraft reports state. Both OpenAI's contractor recordings (one jsonl line per
frame: `inventory` as a list of `{type, quantity}` slots, `stats` as cumulative counters keyed
`minecraft.<kind>:minecraft.<item>`, `isGuiInventory`) and the simulators (MineRL/MineStudio infos: inventory
per slot or per item, statistics grouped by kind) give the player's state, so an event is a change between two
states (`state_change`) mapped through fixed rules (`EVENT_RULES`) onto names the caption catalogue, the text
relabelling and the task suites use, as Crafter's achievement names are used:

* `obtain_<x>`: the inventory count of an item of group x rose (crafted, picked up or smelted alike): MineDojo's
  harvest check (`simple_inventory_based_check`: the target's summed quantity rose), here per step.
* `mine_<x>` / `craft_<x>` / `place_<x>` / `kill_<x>`: the `mine_block` / `craft_item` / `use_item` (a placed
  block item) / `kill_entity` statistic of a matching item or entity rose.
* `open_inventory`: the inventory screen opened (recordings report `isGuiInventory`).

An event fires once per unit of increase (4 planks crafted at once = 4 `obtain_planks`), as Crafter fires its
achievement on every counter increase, so `count: n` success predicates mean n items. Counters that fall (items
used, dropped) fire nothing. Item names are matched without the `minecraft:` namespace; 1.16 names (the
recordings, MineRL 1.0, MineStudio) and the obvious MineDojo 1.11 names (`log`, `log2`, `planks`, `sapling`) are
both known. `log` follows STEVE-1's programmatic evaluation (any item named `*_log`), so acacia and dark oak
count, unlike MineDojo's 1.11 `log`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Statistic kinds kept from the reports (others, e.g. `custom:walk_one_cm`, change every tick and are dropped).
STAT_KINDS: tuple[str, ...] = ("mine_block", "craft_item", "use_item", "kill_entity", "pickup", "drop", "break_item")
GAIN = "gain"
OPEN_INVENTORY = "open_inventory"
_EMPTY_SLOTS = frozenset({"air", "none", ""})


@dataclass(frozen=True)
class EventRule:
    """An event fires per unit increase of `source` (`gain` = inventory count, else a statistic kind) for an item
    named in `names` or ending with one of `suffixes`."""

    source: str
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    def matches(self, item: str) -> bool:
        return item in self.names or (bool(self.suffixes) and item.endswith(self.suffixes))


def _rule(source: str, *names: str, suffixes: tuple[str, ...] = ()) -> EventRule:
    return EventRule(source, frozenset(names), suffixes)


_FLOWERS = ("dandelion", "poppy", "blue_orchid", "allium", "azure_bluet", "red_tulip", "orange_tulip", "white_tulip",
            "pink_tulip", "oxeye_daisy", "cornflower", "lily_of_the_valley", "wither_rose", "sunflower", "lilac",
            "rose_bush", "peony", "yellow_flower", "red_flower")

#: Event name -> rule, in catalogue order (the order events appear in within one step).
EVENT_RULES: dict[str, EventRule] = {
    "obtain_log": _rule(GAIN, "log", "log2", suffixes=("_log",)),
    "obtain_planks": _rule(GAIN, "planks", suffixes=("_planks",)),
    "obtain_stick": _rule(GAIN, "stick"),
    "obtain_crafting_table": _rule(GAIN, "crafting_table"),
    "obtain_wooden_pickaxe": _rule(GAIN, "wooden_pickaxe"),
    "obtain_cobblestone": _rule(GAIN, "cobblestone"),
    "obtain_stone_pickaxe": _rule(GAIN, "stone_pickaxe"),
    "obtain_furnace": _rule(GAIN, "furnace"),
    "obtain_coal": _rule(GAIN, "coal"),
    "obtain_iron_ore": _rule(GAIN, "iron_ore"),
    "obtain_iron_ingot": _rule(GAIN, "iron_ingot"),
    "obtain_iron_pickaxe": _rule(GAIN, "iron_pickaxe"),
    "obtain_diamond": _rule(GAIN, "diamond"),
    "obtain_dirt": _rule(GAIN, "dirt"),
    "obtain_seeds": _rule(GAIN, "wheat_seeds"),
    "obtain_sapling": _rule(GAIN, "sapling", suffixes=("_sapling",)),
    "mine_log": _rule("mine_block", "log", "log2", suffixes=("_log",)),
    "mine_leaves": _rule("mine_block", "leaves", "leaves2", suffixes=("_leaves",)),
    "mine_grass": _rule("mine_block", "grass", "tall_grass", "short_grass", "tallgrass"),
    "mine_flower": _rule("mine_block", *_FLOWERS),
    "mine_dirt": _rule("mine_block", "dirt", "grass_block", "coarse_dirt", "podzol"),
    "mine_stone": _rule("mine_block", "stone", "cobblestone"),
    "mine_coal_ore": _rule("mine_block", "coal_ore"),
    "mine_iron_ore": _rule("mine_block", "iron_ore"),
    "mine_diamond_ore": _rule("mine_block", "diamond_ore"),
    "craft_planks": _rule("craft_item", "planks", suffixes=("_planks",)),
    "craft_stick": _rule("craft_item", "stick"),
    "craft_crafting_table": _rule("craft_item", "crafting_table"),
    "craft_wooden_pickaxe": _rule("craft_item", "wooden_pickaxe"),
    "craft_stone_pickaxe": _rule("craft_item", "stone_pickaxe"),
    "craft_furnace": _rule("craft_item", "furnace"),
    "craft_iron_pickaxe": _rule("craft_item", "iron_pickaxe"),
    "place_crafting_table": _rule("use_item", "crafting_table"),
    "place_furnace": _rule("use_item", "furnace"),
    **{f"kill_{mob}": _rule("kill_entity", mob)
       for mob in ("cow", "pig", "sheep", "chicken", "zombie", "skeleton", "spider", "creeper")},
    OPEN_INVENTORY: _rule(OPEN_INVENTORY),
}
EVENT_NAMES: tuple[str, ...] = tuple(EVENT_RULES)


def item_name(raw: Any) -> str:
    """`minecraft:oak_log` / `minecraft.oak_log` / `Oak Log` -> `oak_log` (one spelling for every source)."""
    name = str(raw).strip()
    for prefix in ("minecraft:", "minecraft."):
        name = name.removeprefix(prefix)
    return name.lower().replace(" ", "_")


def _count(value: Any) -> int:
    """A reported count (int, float, numpy scalar or 1-element array) as an int."""
    return int(round(float(np.asarray(value, dtype=np.float64).reshape(-1)[0])))


def inventory_counts(report: Any) -> dict[str, int]:
    """Total count per item from any reported inventory layout (empty slots dropped):

    a list of slots `[{"type": item, "quantity": n}, ...]` (recordings), a mapping slot -> such a slot
    (MineStudio), a mapping item -> count (MineRL), or `{"name": [...], "quantity": [...]}` (MineDojo)."""
    out: dict[str, int] = {}

    def add(item: Any, n: Any) -> None:
        name = item_name(item)
        if name not in _EMPTY_SLOTS:
            out[name] = out.get(name, 0) + _count(n)

    slots: Iterable[Any] = ()
    if report is None:
        pass
    elif isinstance(report, Mapping) and "name" in report and "quantity" in report:  # MineDojo
        names, counts = np.asarray(report["name"]).reshape(-1), np.asarray(report["quantity"]).reshape(-1)
        for item, n in zip(names, counts, strict=True):
            add(item, n)
    elif isinstance(report, Mapping) and not all(isinstance(v, Mapping) for v in report.values()):
        for item, n in report.items():  # MineRL: item -> count
            add(item, n)
    else:
        slots = report.values() if isinstance(report, Mapping) else report
    for slot in slots:
        if not isinstance(slot, Mapping):
            raise ValueError(f"inventory slot {slot!r} is not a {{type, quantity}} mapping")
        add(slot.get("type", "none"), slot.get("quantity", 0))
    return {k: v for k, v in out.items() if v}


def stat_counters(report: Any) -> dict[str, int]:
    """`{"kind:item": counter}` for the kinds in `STAT_KINDS`, from a flat mapping keyed
    `minecraft.mine_block:minecraft.oak_log` (recordings) or one grouped by kind (`{"mine_block": {...}}`),
    whose inner keys are full statistic names or, as MineRL 1.0 and MineStudio report them (one observation
    per kind, `obs["mine_block"]["oak_log"]`), bare item names."""
    out: dict[str, int] = {}
    if not report:
        return out
    for key, value in report.items():
        if isinstance(value, Mapping):  # grouped by kind: bare item names get the kind from the outer key
            out.update(stat_counters({_full_stat_name(key, k): v for k, v in value.items()}))
            continue
        kind, sep, item = str(key).partition(":")
        kind = kind.rsplit(".", 1)[-1]
        if sep and kind in STAT_KINDS:
            out[f"{kind}:{item_name(item)}"] = _count(value)
    return out


def _full_stat_name(kind: Any, key: Any) -> str:
    """`oak_log` / `minecraft:oak_log` under group `mine_block` -> `mine_block:oak_log`; a full statistic name
    (`minecraft.mine_block:minecraft.oak_log`) stays as it is."""
    head, sep, _ = str(key).partition(":")
    return str(key) if sep and head.rsplit(".", 1)[-1] in STAT_KINDS else f"{kind}:{key}"


@dataclass(frozen=True)
class GameState:
    """What events are read from: item totals, statistic counters and whether the inventory screen is open."""

    inventory: Mapping[str, int] = field(default_factory=dict)
    stats: Mapping[str, int] = field(default_factory=dict)
    gui_inventory: bool = False

    @classmethod
    def from_report(cls, inventory: Any = None, stats: Any = None, gui_inventory: bool = False) -> GameState:
        """Normalise a source's raw inventory and statistics (see `inventory_counts`, `stat_counters`)."""
        return cls(inventory_counts(inventory), stat_counters(stats), bool(gui_inventory))


@dataclass
class StateChange:
    """Increases between two states: items gained, statistic counters risen, the inventory screen opened."""

    gained: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    opened_inventory: int = 0

    def add(self, other: StateChange) -> None:
        """Accumulate `other` (changes seen over several recorded lines belong to one stored step)."""
        for mine, theirs in ((self.gained, other.gained), (self.stats, other.stats)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.opened_inventory += other.opened_inventory

    def to_info(self) -> dict[str, Any]:
        """The raw, item-level change for infos.jsonl (only what is non-empty)."""
        out: dict[str, Any] = {}
        if self.gained:
            out["gained"] = dict(sorted(self.gained.items()))
        if self.stats:
            out["stat_deltas"] = dict(sorted(self.stats.items()))
        return out


def state_change(before: GameState, after: GameState) -> StateChange:
    """Only increases count: a falling counter (an item used or dropped, a statistic reset) changes nothing."""
    gained = {k: n - before.inventory.get(k, 0) for k, n in after.inventory.items() if n > before.inventory.get(k, 0)}
    stats = {k: n - before.stats.get(k, 0) for k, n in after.stats.items() if n > before.stats.get(k, 0)}
    return StateChange(gained, stats, int(after.gui_inventory and not before.gui_inventory))


def events_of(change: StateChange) -> list[str]:
    """Event names of a change, in `EVENT_NAMES` order, each repeated once per unit of increase."""
    out: list[str] = []
    for name, rule in EVENT_RULES.items():
        if rule.source == OPEN_INVENTORY:
            n = change.opened_inventory
        elif rule.source == GAIN:
            n = sum(v for k, v in change.gained.items() if rule.matches(k))
        else:
            prefix = rule.source + ":"
            n = sum(v for k, v in change.stats.items() if k.startswith(prefix) and rule.matches(k[len(prefix):]))
        out += [name] * n
    return out


def events_between(before: GameState, after: GameState) -> list[str]:
    return events_of(state_change(before, after))
