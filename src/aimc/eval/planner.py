"""Prompt chaining: one instruction becomes the sequence of sub-instructions the policy was trained on.

Why it exists. The goal policy learned from *intention* labels (docs/goals.md): each frame carries the
demonstrator's current primitive step ("chop a tree", "place a crafting table", "craft a wooden pickaxe",
"mine coal"), so "mine coal" was only ever seen once a pickaxe was in hand. Told "mine coal" in a fresh
world, the policy has to guess the prerequisites it never saw under that instruction, and the long chains
(mine stone, place stone, collect coal) were the tasks it did worst (docs/results.md). STEVE-1 chains prompts
by hand for such tasks; a planner does it from the world's recipe table and what the screen shows:

    planner = make_planner("chain", "crafter")       # None when planner is "none"
    plan = planner.start("dig for coal")             # plan.event == "collect_coal" (matched by meaning)
    text = planner.prompt(plan, env)                 # "chop a tree", ..., then "dig for coal" itself

The instruction is matched to a world event by its nearest caption in the catalogue (frozen sentence
embeddings, cosine >= `threshold`); a prompt that matches nothing is followed as it is. While a prerequisite is
missing, the policy gets that prerequisite's canonical instruction; once the last step is next it gets the
user's own words, so wording still reaches the policy. The planner reads only what a player sees and
remembers: the inventory bar, and where it saw a table or furnace in the local view (`CrafterEnv.visible_cells`,
with the player's position as its sense of place); acting stays the policy's. Worlds without a recipe planner have no `chain` planner (asking for one is a clear error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aimc.core.errors import AimcError, UnknownNameError

PLANNER_NAMES = ("none", "chain", "chain-event", "chain-night", "chain-rest", "chain-prepare")
"""`none`: the instruction is the goal on every step; `chain`: `ChainPlanner` for the bundle's world;
`chain-event`: the same, but the last step too is said with the matched event's canonical caption instead of the
user's words (a policy that misreads an unseen wording at that step, e.g. "plant a tree seedling", still gets
the instruction it was trained on; the user's words then only choose the event);
`chain-night`: the same, and from dusk to morning the survival instructions the demonstrator follows at night
(`NightRule`: "build a shelter", then "fall asleep"); `chain-rest`: the same, but the night's one instruction is
the world's wake-up task ("sleep until morning"), which a policy fine-tuned on wake-up demonstrations follows
as one behaviour (wall in, then sleep; docs/task-finetune.md); `chain-prepare`: as `chain-rest`, and in the
afternoon (daylight below `PREPARE_DAYLIGHT`, falling) the chain toward the night's kit first (`NightRule`)."""
CHAIN_PLANNERS = ("chain", "chain-event", "chain-night", "chain-rest", "chain-prepare")
NIGHT_PLANNERS = ("chain-night", "chain-rest", "chain-prepare")
PREPARE_DAYLIGHT = 0.92
"""`chain-prepare` starts the night's preparation when the falling light passes this (about step 100 of each
300-step day, 60 steps before dusk). The demonstrator's own `prepare_daylight` (0.75) leaves about 35 steps,
which the shipped agent needs for one stone (traced: with "collect stone" from 0.75, 5 of 24 agents held
stones at nightfall; from 0.92, 10 of 12 did). DAgger under this planner gives its labeller the same
threshold, so the labels of those steps prepare too."""
NIGHT_TASKS = frozenset({"defeat_zombie"})
"""Events the night rule leaves alone: their task needs the night (zombies come out in the dark; told to shelter
all night, the agent's defeat_zombie success fell from 0.93 to 0.47, docs/evaluation.md)."""
CHAIN_WORLDS = ("crafter",)
"""Worlds with a recipe planner (`aimc.envs.demo.planner`); Minecraft has none yet."""
MATCH_THRESHOLD = 0.5
"""Cosine (MiniLM sentence embeddings) above which an instruction is taken to name a catalogue event. On the
held-out wordings of `crafter-heldout` the nearest caption scored 0.59-0.95 (23 of 24 to the right event; the
other, "get some rock", to coal, whose prerequisites are the same), prompts about nothing in the world
("hello", "fly to the moon", "build a house") 0.28-0.40."""

TextEncoder = Callable[[list[str]], np.ndarray]
"""(N,) strings -> (N, D) embeddings; rows are normalised before use."""


@dataclass
class Plan:
    """One episode's plan: the instruction, the event it names (None: follow the instruction as it is), the
    similarity of that match, and the sub-goal event pursued now."""

    prompt: str
    event: str | None
    similarity: float
    current: str | None = None
    seen: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    """Station -> world cells where the planner has seen one this episode."""
    light: float | None = None
    """Daylight at the last step (`NightRule`: rising or falling)."""
    night: bool = False
    """`NightRule`: between dusk and full morning light."""


class GoalPlanner(Protocol):
    """Chooses, each step, the text the policy should be conditioned on for an episode's instruction."""

    def start(self, prompt: str) -> Plan:
        """A new episode's plan for `prompt`."""
        ...

    def prompt(self, plan: Plan, env: Any) -> str:
        """The text to condition on now, given the world `env` as its player sees it; updates `plan.current`."""
        ...


class EventMatcher:
    """Instruction -> the catalogue event whose caption is nearest in meaning (or None below `threshold`).

    Uses the raw sentence encoder, not the bundle's embedder: the video-text model's text side is trained to
    separate the events it saw and maps unrelated text ("hello") close to them (cosine 0.95+ against 0.28 here).
    """

    def __init__(self, captions: dict[str, tuple[str, ...]], encoder: TextEncoder | None = None,
                 threshold: float = MATCH_THRESHOLD) -> None:
        self.encoder = encoder or _minilm
        self.threshold = float(threshold)
        self.events = [e for e, texts in captions.items() for _ in texts]
        self._captions = self._unit([t for texts in captions.values() for t in texts])

    def _unit(self, texts: list[str]) -> np.ndarray:
        x = np.asarray(self.encoder(texts), np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)

    def match(self, prompt: str) -> tuple[str | None, float]:
        """(event, cosine) of the nearest caption; event None when the cosine is below the threshold."""
        sims = self._captions @ self._unit([prompt])[0]
        best = int(np.argmax(sims))
        score = float(sims[best])
        return (self.events[best] if score >= self.threshold else None), score


def _minilm(texts: list[str]) -> np.ndarray:
    from aimc.embed.text import shared_text_encoder

    return shared_text_encoder("minilm").encode(list(texts)).numpy()


class ChainPlanner:
    """Prompt chaining over a world's recipe table (`aimc.envs.demo.planner.next_step` for Crafter).

    The next sub-goal is the demonstrator planner's: tools first, then materials up to the whole chain's need,
    then a missing station (none seen this episode within `reach` cells, as the demonstrator judges it), then
    the task's own step. Each
    sub-goal is said with its event's canonical caption, the words the policy saw for it most; the last one
    with the user's words, or with `own_words` False with that event's caption too.
    """

    def __init__(self, world: str = "crafter", encoder: TextEncoder | None = None,
                 threshold: float = MATCH_THRESHOLD, night: NightRule | None = None, own_words: bool = True) -> None:
        from aimc.embed.captions import NOTHING, catalogue, instruction
        from aimc.envs.demo.planner import TASKS

        check_planner("chain", world)
        from crafter import constants

        from aimc.envs.demo import DemonstratorConfig

        self.tasks = set(TASKS)
        self.stations = tuple(sorted({n for m in constants.make.values() for n in m["nearby"]}))
        self.reach = DemonstratorConfig().nav_radius
        """A station seen within this many cells (either axis) counts as at hand, as the demonstrator judges it
        (its path search radius): it walks back to such a table rather than placing a new one."""
        captions = {e: p for e, p in catalogue(world).items() if e != NOTHING}
        self.matcher = EventMatcher(captions, encoder, threshold)
        self._instruction = lambda event: instruction(event, world)
        self.night = night
        self.own_words = own_words

    def start(self, prompt: str) -> Plan:
        event, score = self.matcher.match(prompt)
        return Plan(prompt, event if event in self.tasks else None, score)

    def prompt(self, plan: Plan, env: Any) -> str:
        if plan.event is None:
            return plan.prompt
        from aimc.envs.demo.planner import next_step

        inventory = {k: int(v) for k, v in env.player.inventory.items()}
        for station in self.stations:
            plan.seen.setdefault(station, set()).update(env.visible_cells(station))
        x, y = (int(v) for v in env.player.pos)

        def missing(stations: tuple[str, ...]) -> list[str]:
            return [s for s in stations
                    if not any(abs(sx - x) <= self.reach and abs(sy - y) <= self.reach for sx, sy in plan.seen[s])]

        sub = next_step(plan.event, inventory, missing).task
        plan.current = sub
        if self.night is not None:
            text = self.night.prompt(plan, env, lambda event: next_step(event, inventory, missing).task)
            if text is not None:
                return text
        return plan.prompt if sub == plan.event and self.own_words else self._instruction(sub)


class NightRule:
    """From dusk until the light is back, the instructions the scripted demonstrator's night follows: "build a
    shelter" until the player stands in a pocket of at most 2x2 walkable cells (its view shows walls all round),
    then "fall asleep"; afterwards the chain again.

    Why: the agents die at the first night (every one of the shipped agent's 480 evaluation episodes ended in
    death within 500 steps; 21 of rung 9's 22 collect_coal failures were deaths, mostly at night), while the
    policy was trained on free-play frames labelled with exactly these two intentions (`INTENTIONS["shelter"]`,
    `["sleep"]`). Darkness is on the screen, so this reads nothing a player could not see. The thresholds are the
    demonstrator's (`night_daylight`, `morning_daylight`)."""

    def __init__(self, dusk: float | None = None, morning: float | None = None, rest: bool = False,
                 prepare: float | None = None) -> None:
        from aimc.embed.captions import INTENTIONS, instruction
        from aimc.envs.demo import DemonstratorConfig

        cfg = DemonstratorConfig()
        self.dusk = cfg.night_daylight if dusk is None else float(dusk)
        self.morning = cfg.morning_daylight if morning is None else float(morning)
        self.prepare = None if prepare is None else float(prepare)
        """With a value: from the falling light below it until dusk, the chain toward the demonstrator's night
        kit (`prepare_step`); None: the day's chain until dusk."""
        self.stones = cfg.shelter_stones
        self.restock_below = cfg.restock_below
        self._said = lambda event: instruction(event, "crafter")
        if rest:  # `chain-rest`: one instruction all night, the task that ends in waking up after a night's sleep
            self.shelter = self.sleep = instruction("wake_up", "crafter")
            self.keys = {self.sleep: "wake_up"}
        else:
            self.shelter, self.sleep = INTENTIONS["shelter"][0], INTENTIONS["sleep"][0]
            self.keys = {self.shelter: "shelter", self.sleep: "sleep"}
        """Night text -> the intention or event it names (what `sub_goal` reports)."""

    def texts(self) -> list[str]:
        """Every instruction the rule can give (PPO embeds them before its rollouts)."""
        return list(self.keys)

    def prompt(self, plan: Plan, env: Any, step: Callable[[str], str] | None = None) -> str | None:
        """The night instruction now, or None (day: the chain's). `step(event)` is the chain's next sub-goal
        toward `event` (the preparation says that sub-goal's instruction)."""
        light = float(env.world.daylight)
        rising = plan.light is not None and light > plan.light
        falling = plan.light is not None and light < plan.light
        plan.light = light
        if light < self.dusk:
            plan.night = True
        elif plan.night and (light >= self.morning or not rising):
            plan.night = False  # full light again
        if plan.event in NIGHT_TASKS:
            return None
        if not plan.night:
            if self.prepare is None or step is None or not (falling and light < self.prepare):
                return None
            kit = self.prepare_step({k: int(v) for k, v in env.player.inventory.items()})
            if kit is None:
                return None
            plan.current = step(kit)  # the event pursued now (what DAgger records as the step's goal)
            return self._said(plan.current)
        if self.shelter == self.sleep:  # one instruction all night: no need to look at the walls
            return self.sleep
        return self.sleep if player_enclosed(env) else self.shelter

    def prepare_step(self, inventory: dict[str, int]) -> str | None:
        """The event the preparation pursues next, in the demonstrator's order (`SurvivalLayer._prepare`): a
        wood pickaxe (to dig stone, and out of the room), a sword, `shelter_stones` stones, a meal below
        `restock_below` food; None once the kit is complete (the day's chain goes on until dusk)."""
        if inventory.get("wood_pickaxe", 0) < 1:
            return "make_wood_pickaxe"
        if not any(inventory.get(k, 0) for k in ("wood_sword", "stone_sword", "iron_sword")):
            return "make_wood_sword"
        if inventory.get("stone", 0) < self.stones:
            return "collect_stone"
        if inventory.get("food", 0) < self.restock_below:
            return "eat_cow"
        return None


def player_enclosed(env: Any) -> bool:
    """Whether the player's walkable pocket in its view is at most a 2x2 room (creatures ignored)."""
    from aimc.envs.demo.memory import VIEW_HALF_X, VIEW_HALF_Y
    from aimc.envs.demo.shelter import enclosed
    from aimc.envs.demo.state import WALK

    x, y = (int(v) for v in env.player.pos)
    area = env.world.area
    x0, y0 = max(0, x - VIEW_HALF_X), max(0, y - VIEW_HALF_Y)
    mat = np.asarray(env.world._mat_map[x0: min(area[0], x + VIEW_HALF_X + 1), y0: min(area[1], y + VIEW_HALF_Y + 1)])
    return enclosed(WALK[mat], (x - x0, y - y0))


def advance(planner: GoalPlanner, plans: dict[int, Plan], texts: dict[int, str], slots: list[int],
            envs: list[Any]) -> list[tuple[int, str]]:
    """One step of the planned `slots` (those in `plans`): ask for each one's text and return (slot, text) where it
    changed, updating `texts`; the one loop every actor that plays a planner runs before acting."""
    changed = []
    for slot, env in zip(slots, envs, strict=True):
        if slot in plans:
            text = planner.prompt(plans[slot], env)
            if text != texts.get(slot):
                texts[slot] = text
                changed.append((slot, text))
    return changed


def make_planner(name: str | None, world: str, encoder: TextEncoder | None = None) -> GoalPlanner | None:
    """The planner `name` ("none"/None: no planner, "chain": `ChainPlanner`, "chain-event": one that says the
    matched event's caption at the last step too, "chain-night"/"chain-rest"/"chain-prepare": with a `NightRule`)
    for `world`."""
    check_planner(name, world)
    if name in NIGHT_PLANNERS:
        return ChainPlanner(world, encoder, night=_night_rule(name))
    if name == "chain-event":
        return ChainPlanner(world, encoder, own_words=False)
    return ChainPlanner(world, encoder) if name == "chain" else None


def night_texts(name: str | None) -> list[str]:
    """The instructions planner `name`'s night rule can give (none without one), without building the planner."""
    if name not in NIGHT_PLANNERS:
        return []
    return _night_rule(name).texts()


def _night_rule(name: str) -> NightRule:
    return NightRule(rest=name != "chain-night", prepare=PREPARE_DAYLIGHT if name == "chain-prepare" else None)


def check_planner(name: str | None, world: str | None = None) -> None:
    """Fail early (before any rollout) on an unknown planner name, or one that `world` does not have."""
    if name is not None and name not in PLANNER_NAMES:
        raise UnknownNameError(f"unknown planner {name!r}; choose one of: {', '.join(PLANNER_NAMES)}")
    if name in CHAIN_PLANNERS and world is not None and world not in CHAIN_WORLDS:
        raise AimcError(f"no chain planner for world {world!r} (it needs the world's recipe table); use planner none")


def resolve_planner(name: str | None, bundle: Any) -> str:
    """The planner a run plays `bundle` with: `name` when given, else the bundle's own ("none" when it has
    none); checked against the bundle's world. Fine-tunes and studies use it so that every policy they make is
    played the way the agent they start from is."""
    planner = name if name is not None else (bundle.planner or "none")
    check_planner(planner, bundle.world)
    return planner
