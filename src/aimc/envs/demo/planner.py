"""Task -> next primitive step, resolving prerequisites recursively from Crafter's own recipe tables.

Reading `crafter.constants` (not a hand-copied list) keeps the planner right if the recipes change:
e.g. `make_stone_pickaxe` => wood (for it, the wood pickaxe and a table), table, wood pickaxe, stone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crafter import constants

_MAX_ITEM = 9  # Crafter clamps every inventory count at 9
TASKS: tuple[str, ...] = tuple(constants.achievements)
EXPLORE = "explore"

# Achievement -> (step kind, target). Targets are materials, items, tools or creature class names.
_PRIMITIVE: dict[str, tuple[str, str]] = {
    "collect_wood": ("collect", "tree"),
    "collect_stone": ("collect", "stone"),
    "collect_coal": ("collect", "coal"),
    "collect_iron": ("collect", "iron"),
    "collect_diamond": ("collect", "diamond"),
    "collect_drink": ("collect", "water"),
    "collect_sapling": ("collect", "grass"),
    "eat_cow": ("hunt", "Cow"),
    "defeat_zombie": ("hunt", "Zombie"),
    "defeat_skeleton": ("hunt", "Skeleton"),
    "wake_up": ("sleep", ""),
    "eat_plant": ("eat_plant", ""),
}
for _name in constants.place:
    _PRIMITIVE[f"place_{_name}"] = ("place", _name)
for _name in constants.make:
    _PRIMITIVE[f"make_{_name}"] = ("make", _name)

# Item -> the achievement that yields it.
PRODUCER: dict[str, str] = {info_item: f"collect_{info_item}" for info in constants.collect.values()
                            for info_item in info["receive"]}
PRODUCER.update({tool: f"make_{tool}" for tool in constants.make})

# Which stations are missing for a make step, given the required station names (supplied by the agent,
# which knows what it has seen).
MissingFn = Callable[[tuple[str, ...]], list[str]]


@dataclass(frozen=True)
class Step:
    """One primitive thing to do now: kind in collect|place|make|hunt|sleep|eat_plant."""

    kind: str
    target: str
    task: str


def _requirements(task: str) -> dict[str, int]:
    """Items (including tools) that must be held before `task`'s own action can succeed."""
    kind, target = _PRIMITIVE[task]
    if kind == "collect":
        return dict(constants.collect[target]["require"])
    if kind == "place":
        return dict(constants.place[target]["uses"])
    if kind == "make":
        return dict(constants.make[target]["uses"])
    return {}


def _stations(task: str) -> tuple[str, ...]:
    kind, target = _PRIMITIVE[task]
    return tuple(constants.make[target]["nearby"]) if kind == "make" else ()


def total_need(task: str, inv: Mapping[str, int], missing: MissingFn) -> Counter:
    """All items the whole prerequisite tree of `task` still consumes, so wood is cut in one visit."""
    need: Counter = Counter()
    stations: set[str] = set()

    def walk(t: str) -> None:
        for item, count in _requirements(t).items():
            need[item] += count
            if inv.get(item, 0) < count and item in PRODUCER:
                walk(PRODUCER[item])
        stations.update(_stations(t))

    walk(task)
    for station in missing(tuple(sorted(stations))):
        for item, count in constants.place[station]["uses"].items():
            need[item] += count
    return need


def next_step(task: str, inv: Mapping[str, int], missing: MissingFn) -> Step:
    """The primitive step to take now towards `task` (tools first, then materials, then stations)."""
    need = total_need(task, inv, missing)
    return _resolve(task, inv, missing, need)


def _resolve(task: str, inv: Mapping[str, int], missing: MissingFn, need: Counter) -> Step:
    reqs = _requirements(task)
    # Tools before materials: the materials for a tool are often the ones the task also uses.
    for item in sorted(reqs, key=lambda i: i not in constants.make):
        # Base materials are gathered up to the whole tree's need; tools only to what this step needs.
        want = reqs[item] if item in constants.make else min(_MAX_ITEM, max(reqs[item], need[item]))
        if inv.get(item, 0) < want:
            return _resolve(PRODUCER[item], inv, missing, need)
    stations = _stations(task)
    if stations:
        absent = missing(stations)
        if absent:
            return _resolve(f"place_{absent[0]}", inv, missing, need)
    kind, target = _PRIMITIVE[task]
    return Step(kind, target, task)
