"""`DemonstratorConfig`: every knob of the scripted Crafter player, with the recipe as defaults.

The defaults are what `aimc collect` records with, so they are saved in each episode's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aimc.core.errors import ConfigError, UnknownNameError
from aimc.envs.demo.planner import EXPLORE, TASKS

# Free-play sub-goal weights: early tech-tree goals dominate, as in contractor play; every one of
# the 22 achievements appears so the relabelled data covers the whole instruction set.
DEFAULT_CATALOGUE: dict[str, float] = {
    "collect_wood": 3.0,
    "place_table": 2.0,
    "make_wood_pickaxe": 2.0,
    "make_wood_sword": 1.0,
    "collect_stone": 2.0,
    "place_stone": 1.0,
    "make_stone_pickaxe": 1.5,
    "make_stone_sword": 1.0,
    "collect_coal": 1.5,
    "place_furnace": 1.0,
    "collect_iron": 1.0,
    "make_iron_pickaxe": 0.5,
    "make_iron_sword": 0.5,
    "collect_diamond": 0.3,
    "collect_drink": 1.5,
    "eat_cow": 1.5,
    "collect_sapling": 1.0,
    "place_plant": 1.0,
    "eat_plant": 0.2,
    "defeat_zombie": 1.0,
    "defeat_skeleton": 0.5,
    "wake_up": 0.5,
    EXPLORE: 1.0,
}


@dataclass
class DemonstratorConfig:
    """How the scripted demonstrator plays; see docs/demonstrator.md for the behaviours."""

    mode: Literal["free", "task", "chain"] = "free"
    """"free": random sub-goals from `catalogue` (data collection); "task": pursue `task` (eval, DAgger);
    "chain": a chain of tasks drawn from `catalogue` (the next one on success or after `max_goal_steps`), each
    pursued exactly as in task mode. Chains are instruction data shaped like evaluation episodes: a fresh world,
    one instruction followed from scratch, survival only as much as a task needs (free play spends most of
    its frames restocking and sheltering, measured in docs/results.md)."""
    task: str | None = None
    """Achievement pursued in task mode when `act()` is called without one."""
    goal_label: Literal["task", "step"] = "task"
    """What `current_goal` (collection records it as each step's goal) names while a task is pursued: "task" the
    task itself (collect_coal from the first log on), "step" the planner step the action serves (collect_wood,
    place_table, make_wood_pickaxe, then collect_coal). "step" labels are the sub-instructions a chaining agent
    (`planner: chain`) is told at play time, so task demonstrations labelled so train it in the regime it plays.
    Survival behaviours keep their own names either way."""
    catalogue: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CATALOGUE))
    """Free-play sub-goals and chain tasks (achievement names or "explore") and their sampling weights."""
    max_goal_steps: int = 300
    """Steps a free-play sub-goal (or chain task) is pursued before giving up and drawing another."""
    explore_steps: int = 40
    """Length of an "explore" free-play sub-goal."""
    drink_below: int = 4
    """Go drinking (until full) when drink falls below this, at any time but the night."""
    eat_below: int = 7
    """Hunt a visible cow (or eat a ripe plant) when food falls below this."""
    hunt_below: int = 6
    """Search the grassland for cows when food falls below this and none is in view (cows are scarce and
    far apart: searching from 5 left starvation the main cause of free-play deaths, measured)."""
    task_hunt_below: int = 4
    """`hunt_below` in task mode: a 500-step task starts fed, and every search step is taken from the task."""
    calm_daylight: float = 0.85
    """Daylight above which no zombies spawn (Crafter steps ~5-115 of every 300): free play restocks then."""
    restock_below: int = 7
    """In that calm (free play) and at dusk (both modes), drink up and search for cows already below this
    level, so the trips to water and pasture fall in the safe hours rather than at night and dawn."""
    finish_drink: bool = True
    """Once drinking at the water (water within two cells), drink until full before a cow search or a
    remembered cow takes the player away; a cow within reach is still eaten first. Without it a player both
    hungry and thirsty paced between the water and its cow search, drinking one or two each visit (traced;
    starvation deaths on 1,600 free-play worlds 188 -> 138, docs/demonstrator.md "Finishing the drink")."""
    sleep_energy_below: int = 3
    """Sleep when energy falls below this, whatever the time of day."""
    sleep_at_night: bool = True
    """Spend the night (daylight below `night_daylight`) sealed in a 2x2 room, asleep whenever energy is not full."""
    night_daylight: float = 0.35
    """Daylight level under which it counts as night (Crafter steps 160-260 of every 300)."""
    morning_daylight: float = 0.85
    """After a night sealed in, stay in the room until daylight reaches this (zombies gather round the room
    at night and despawn only in full light; leaving at first light meets them all)."""
    morning_zombie_radius: int = 4
    """After that, stay sealed in while a zombie is within this many cells and the light still grows (0 = off;
    task mode: only when unarmed or hurt): daylight thins them out, and the fight after digging out was the
    main morning death (measured)."""
    prepare_daylight: float = 0.75
    """Under this daylight (dusk, from step ~125 of 300) get ready for the night: drink and eat up, craft a
    sword at a table in reach, and hold a wood pickaxe and `shelter_stones` stones."""
    shelter_stones: int = 8
    """Stones carried at dusk for the room's walls (a room on open grass needs 8, against rock or trees fewer;
    with 6, rooms on grass ran short and the player dug its half-built room open again for another, measured)."""
    pocket_shelter: bool = False
    """Also consider a 1x2 pocket for the night: two cells in a line (dug into rock, or a dead end) whose four
    side cells are already solid, so at most its two ends take a stone, sealed in about six steps; the cheaper of
    it and the best 2x2 room is built."""
    room_walk_weight_threatened: float = 3.0
    """With a zombie in view, each step of the walk to a candidate room counts this many times in its cost."""
    rest_health_below: int = 5
    """With health below this, rest sealed in a room (asleep when energy allows; 0 = never) ..."""
    rest_health_until: int = 6
    """... until health is back at this level (or food or drink runs critically low)."""
    fight_radius: int = 2
    """Attack zombies within this Manhattan distance (skeletons when adjacent)."""
    flee_health_below: int = 3
    """With health below this, walk away from close (not yet adjacent) zombies instead of fighting them."""
    avoid_arrows: bool = True
    """Never step into the cell an arrow in view flies into next (a move there becomes `noop`)."""
    arm_near_table: bool = True
    """Free play: craft a wood/stone sword when a table is within reach and the materials are held."""
    arm_in_task_mode: bool = True
    """Task mode: craft one too, all day, from wood (and stone) the task itself does not need (otherwise only
    at dusk); a wood sword cuts a zombie from 5 hits to 3, a stone one to 2 (zombie fights were the main
    cause of task-mode deaths, measured)."""
    survival_in_task_mode: bool = True
    """Apply the survival behaviours in task mode too (off gives pure task labels for DAgger)."""
    noise_prob: float = 0.05
    """Probability of executing a random safe action (noop, move, do) instead; the recording keeps it."""
    noise_radius: int = 3
    """No noise while a zombie is within this many cells (Manhattan), or a skeleton or arrow is in view
    (0 = noise everywhere). A random step next to a zombie doubled the health lost in the next 10 steps
    (0.35-0.45 against 0.16-0.23 for the expert's own step, traced), and this alone raised free play alive at
    1000 from 1,668 to 1,761 of 2,200 worlds (docs/demonstrator.md "Noise next to a threat"). The random
    number is still drawn, so every other step keeps the noise it had; the label is the expert's action."""
    explore_turn_prob: float = 0.05
    """Per-step probability of picking a new exploration heading even when not blocked."""
    explore_follow_facing: bool = False
    """Explore along the direction the player faces (its last move or turn, whoever chose it) instead of the
    demonstrator's remembered heading. For labelling a learner's states (DAgger): the label then continues
    the learner's motion rather than a heading the demonstrator drew in states it never chose."""
    nav_radius: int = 12
    """Path search covers the seen map within this many cells of the player (bounds act() cost)."""

    def __post_init__(self) -> None:
        if self.mode not in ("free", "task", "chain"):
            raise ConfigError(f"demonstrator mode must be 'free', 'task' or 'chain', got {self.mode!r}")
        if self.goal_label not in ("task", "step"):
            raise ConfigError(f"demonstrator goal_label must be 'task' or 'step', got {self.goal_label!r}")
        if self.task is not None:
            check_task(self.task)
        unknown = sorted(set(self.catalogue) - set(TASKS) - {EXPLORE})
        if unknown:
            raise ConfigError(f"demonstrator catalogue has unknown goals {unknown}; valid: {', '.join(TASKS)}, {EXPLORE}")
        if not self.catalogue or min(self.catalogue.values()) < 0 or sum(self.catalogue.values()) <= 0:
            raise ConfigError("demonstrator catalogue needs at least one goal with a positive weight")
        if not 0.0 <= self.noise_prob <= 1.0 or not 0.0 <= self.explore_turn_prob <= 1.0:
            raise ConfigError("demonstrator noise_prob and explore_turn_prob must lie in [0, 1]")
        if self.max_goal_steps <= 0 or self.explore_steps <= 0:
            raise ConfigError("demonstrator max_goal_steps and explore_steps must be positive")
        if not 0 <= self.rest_health_below <= self.rest_health_until <= 9:
            raise ConfigError("demonstrator needs 0 <= rest_health_below <= rest_health_until <= 9, got "
                              f"{self.rest_health_below} and {self.rest_health_until}")
        if not 0 <= self.shelter_stones <= 9:
            raise ConfigError(f"demonstrator shelter_stones must lie in [0, 9], got {self.shelter_stones}")
        if self.morning_zombie_radius < 0:
            raise ConfigError(f"demonstrator morning_zombie_radius must be >= 0 (0 = off), got {self.morning_zombie_radius}")
        if self.noise_radius < 0:
            raise ConfigError(f"demonstrator noise_radius must be >= 0 (0 = noise everywhere), got {self.noise_radius}")
        if self.nav_radius < 4:
            raise ConfigError(f"demonstrator nav_radius must be >= 4 (the view), got {self.nav_radius}")


def check_task(task: str) -> str:
    """Return `task` if the demonstrator can pursue it, else raise one line listing the tasks."""
    if task not in TASKS:
        raise UnknownNameError(f"unknown demonstrator task {task!r}; available: {', '.join(TASKS)}")
    return task
