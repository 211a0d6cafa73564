"""Test doubles for the two simulator packages: modules put into `sys.modules` under the real names
(`minerl.herobraine.env_specs.human_survival_specs`, `minestudio.simulator`, `minestudio.utils`) whose classes
replay a scripted game in the upstream formats, so the world's real backend adapters run against them.

The formats follow the upstream code: MineRL 1.0 returns `(obs, reward, done, info)` with `obs["inventory"]` as
item -> count (plus `air` = empty slots), one mapping per statistic kind (`obs["mine_block"]["oak_log"]`) and
`location_stats`, and `info["isGuiOpen"]` from its monitor; MineStudio's `MinecraftSim` returns
`(obs, reward, terminated, truncated, info)` where `info` holds the observation too (`pov`, `inventory` as
slot -> {type, quantity}, the statistics, `isGuiOpen`). Nothing here is a game: it only replays dicts.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

H, W = 360, 640  # the game's frame (MineRL resolution 640x360)


@dataclass
class State:
    """One moment of the scripted game: item totals, statistic counters by kind, an open screen."""

    inventory: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    gui: bool = False
    pos: tuple[float, float, float] = (0.5, 64.0, 0.5)


def frame(t: int, seed: int = 0) -> np.ndarray:
    """The game frame after `t` actions: noise keyed by (seed, t), so resizes can be compared pixel for pixel."""
    return np.random.default_rng((seed, t)).integers(0, 256, (H, W, 3), dtype=np.uint8)


# The scripted episode: the state after reset, then after each action.
SCRIPT: list[State] = [
    State(),
    State(stats={"mine_block": {"oak_log": 1}}),                                      # a log block broken
    State({"oak_log": 1}, {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}}),  # picked up
    State({"oak_log": 1}, {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}}, gui=True),  # E pressed
    State({"oak_planks": 4},
          {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}, "craft_item": {"oak_planks": 4}}, gui=True),
    State({"oak_planks": 4},
          {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}, "craft_item": {"oak_planks": 4}}),
    State({"oak_planks": 4},
          {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}, "craft_item": {"oak_planks": 4},
           "kill_entity": {"cow": 1}}),
    State({"oak_planks": 4},  # a screen opens without the inventory key (a crafting table used)
          {"mine_block": {"oak_log": 1}, "pickup": {"oak_log": 1}, "craft_item": {"oak_planks": 4},
           "kill_entity": {"cow": 1}}, gui=True),
]
SCRIPT_EVENTS = [[], ["mine_log"], ["obtain_log"], ["open_inventory"], ["obtain_planks"] * 4 + ["craft_planks"] * 4,
                 [], ["kill_cow"], []]
"""What the world must report after each scripted action (the first entry: after reset)."""


def _stats_minerl(state: State) -> dict[str, dict[str, np.ndarray]]:
    # MineRL observes every statistic of a kind; zeros included (a few stand for the thousands it sends)
    kinds = ("use_item", "drop", "pickup", "break_item", "craft_item", "mine_block", "damage_dealt",
             "entity_killed_by", "kill_entity")
    out = {k: {"stone": np.array(0), "dirt": np.array(0)} for k in kinds}
    for kind, items in state.stats.items():
        out[kind].update({item: np.array(n) for item, n in items.items()})
    return out


def minerl_report(state: State, t: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(obs, info) as MineRL 1.0's HumanSurvival returns them."""
    inventory = {"air": np.array(36 - len(state.inventory)), "dirt": np.array(0),
                 **{k: np.array(v) for k, v in state.inventory.items()}}
    loc = {"xpos": np.array(state.pos[0]), "ypos": np.array(state.pos[1]), "zpos": np.array(state.pos[2]),
           "pitch": np.array(0.0), "yaw": np.array(0.0)}
    obs = {"pov": frame(t, seed), "inventory": inventory, "equipped_items": {"mainhand": {"type": "air"}},
           "life_stats": {"life": np.array(20.0), "food": np.array(20)}, "location_stats": loc,
           **_stats_minerl(state), "full_stats": {"jump": np.array(t), "oak_log": np.array(7)}}
    return obs, {"isGuiOpen": state.gui, "location_stats": loc}


def minestudio_info(state: State, t: int, seed: int) -> dict[str, Any]:
    """`info` as MineStudio's MinecraftSim returns it (the observation merged in)."""
    slots: dict[int, dict[str, Any]] = {i: {"type": "air", "quantity": 0} for i in range(36)}
    for i, (item, n) in enumerate(state.inventory.items()):
        slots[i] = {"type": item, "quantity": n}
    stats = {k: dict(v) for k, v in _stats_minerl(state).items() if k not in ("drop", "entity_killed_by")}
    return {"pov": frame(t, seed), "inventory": slots, **stats, "custom": {"walk_one_cm": np.array(100 * t)},
            "isGuiOpen": state.gui, "location_stats": {"xpos": state.pos[0], "ypos": state.pos[1], "zpos": state.pos[2]}}


@dataclass
class GameLog:
    """What the doubles were asked to do, and how they should fail."""

    launches: int = 0
    closes: int = 0
    seeds: list[Any] = field(default_factory=list)
    """Every `env.seed(...)` call."""
    world_seeds: list[Any] = field(default_factory=list)
    """The seed each reset generated its world from (None: random)."""
    resets: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    spec_kwargs: list[dict[str, Any]] = field(default_factory=list)
    sim_kwargs: list[dict[str, Any]] = field(default_factory=list)
    fail_starts: int = 0
    """The first n resets raise (the launcher failing)."""
    crash_at: int | None = None
    """The step (0-based, counted over the whole log) that fails."""
    crash_kind: str = "raise"
    """raise: the call raises; error: MineRL's `info["error"]` with a random observation."""
    done_at: int | None = None
    script: list[State] = field(default_factory=lambda: list(SCRIPT))


class _Episode:
    """The scripted game shared by both doubles."""

    def __init__(self, log: GameLog) -> None:
        self.log = log
        self.seed: int | None = None
        self.pending_seed: int | None = None
        self.t = 0

    def reset(self) -> State:
        self.log.resets += 1
        if self.log.resets <= self.log.fail_starts:
            raise ConnectionRefusedError("Minecraft process failed to start")
        self.seed, self.pending_seed, self.t = self.pending_seed, None, 0  # MineRL forgets the seed
        self.log.world_seeds.append(self.seed)
        return self.log.script[0]

    def step(self, action: dict[str, Any]) -> tuple[State, bool, bool]:
        """(state, done, errored)."""
        self.log.actions.append(action)
        n = len(self.log.actions) - 1
        if self.log.crash_at is not None and n == self.log.crash_at:
            if self.log.crash_kind == "raise":
                raise ConnectionResetError("[Errno 104] Connection reset by peer")
            return self.log.script[0], True, True
        self.t += 1
        state = self.log.script[min(self.t, len(self.log.script) - 1)]
        return state, self.log.done_at is not None and self.t >= self.log.done_at, False


class FakeMineRLEnv:
    def __init__(self, log: GameLog) -> None:
        self.game = _Episode(log)
        log.launches += 1

    def seed(self, seed: Any = None, seed_spaces: bool = True) -> None:
        assert isinstance(seed, int) or seed is None, "Seed must be an int!"  # MineRL's own check
        self.game.log.seeds.append(seed)
        self.game.pending_seed = seed

    def reset(self) -> dict[str, Any]:
        state = self.game.reset()
        return minerl_report(state, 0, self.game.seed or 0)[0]  # MineRL's reset returns the observation only

    def step(self, action: dict[str, Any]) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        state, done, errored = self.game.step(action)
        if errored:  # MineRL on a socket timeout: a sampled observation and an error in info
            return {"pov": np.zeros((H, W, 3), np.uint8)}, 0.0, True, {"error": "Connection timed out!"}
        obs, info = minerl_report(state, self.game.t, self.game.seed or 0)
        return obs, 0.0, done, info

    def close(self) -> None:
        self.game.log.closes += 1


class FakeHumanSurvival:
    """Stands in for `minerl.herobraine.env_specs.human_survival_specs.HumanSurvival`."""

    log = GameLog()

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        FakeHumanSurvival.log.spec_kwargs.append(kwargs)

    def make(self) -> FakeMineRLEnv:
        return FakeMineRLEnv(FakeHumanSurvival.log)


class FakeMinecraftSim:
    """Stands in for `minestudio.simulator.MinecraftSim` (its `env` is the inner MineRL env)."""

    log = GameLog()

    def __init__(self, action_type: str = "agent", obs_size: Any = (224, 224), render_size: Any = (640, 360),
                 seed: int = 0, callbacks: Any = (), **kwargs: Any) -> None:
        FakeMinecraftSim.log.sim_kwargs.append({"action_type": action_type, "obs_size": obs_size,
                                                "render_size": render_size, "callbacks": callbacks, **kwargs})
        self.env = FakeMineRLEnv(FakeMinecraftSim.log)
        self.env.game.pending_seed = seed  # MinecraftSim calls self.env.seed(seed) once, at construction

    def reset(self) -> tuple[dict[str, Any], dict[str, Any]]:
        state = self.env.game.reset()
        info = minestudio_info(state, 0, self.env.game.seed or 0)
        return {"image": info["pov"]}, info

    def step(self, action: dict[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        game = self.env.game
        state, done, errored = game.step(action)
        if errored:
            return {"image": np.zeros((H, W, 3), np.uint8)}, 0.0, True, True, {"error": "Connection timed out!"}
        info = minestudio_info(state, game.t, game.seed or 0)
        return {"image": info["pov"]}, 0.0, done, done, info

    def close(self) -> None:
        self.env.close()


def install(monkeypatch: Any, engine_dir: Any = None) -> tuple[GameLog, GameLog]:
    """Put both doubles into `sys.modules` with fresh logs; returns (minerl log, minestudio log).

    `engine_dir`: MineStudio's directory; the game download (the engine jar) is created in it unless None."""
    FakeHumanSurvival.log, FakeMinecraftSim.log = GameLog(), GameLog()
    specs = types.ModuleType("minerl.herobraine.env_specs.human_survival_specs")
    specs.HumanSurvival = FakeHumanSurvival  # type: ignore[attr-defined]
    sim = types.ModuleType("minestudio.simulator")
    sim.MinecraftSim = FakeMinecraftSim  # type: ignore[attr-defined]
    utils = types.ModuleType("minestudio.utils")
    studio_dir = str(engine_dir) if engine_dir is not None else "/nonexistent-minestudio"
    utils.get_mine_studio_dir = lambda: studio_dir  # type: ignore[attr-defined]
    if engine_dir is not None:
        jar = engine_dir / "engine" / "build" / "libs" / "mcprec-6.13.jar"
        jar.parent.mkdir(parents=True, exist_ok=True)
        jar.write_bytes(b"")
    for name in ("minerl", "minerl.herobraine", "minerl.herobraine.env_specs", "minestudio"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, specs.__name__, specs)
    monkeypatch.setitem(sys.modules, sim.__name__, sim)
    monkeypatch.setitem(sys.modules, utils.__name__, utils)
    return FakeHumanSurvival.log, FakeMinecraftSim.log
