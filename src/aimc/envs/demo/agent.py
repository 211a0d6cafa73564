"""`CrafterDemonstrator`: a scripted Crafter player for data collection (free play) and labelling (task mode).

Each `act()` call looks only at the player's 9x7 view, its memory of cells seen earlier this episode
and its own inventory/status (all visible on screen), then picks, in priority order: a survival
behaviour, the next primitive step of the task (prerequisites resolved by `planner`), or exploration.
All randomness comes from the demonstrator's own seeded numpy Generator, so the same seed and world give
the same actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from crafter import constants

from aimc.core.errors import ConfigError
from aimc.envs.demo.config import DemonstratorConfig, check_task
from aimc.envs.demo.memory import MAT_ID, WorldMemory, material_lut
from aimc.envs.demo.navigation import DIRS, dilate4, dilate8, first_move, shifted
from aimc.envs.demo.planner import EXPLORE, next_step

ACTION = {name: i for i, name in enumerate(constants.actions)}
NOOP, DO, SLEEP = ACTION["noop"], ACTION["do"], ACTION["sleep"]
MOVES = tuple(ACTION[f"move_{d}"] for d in ("left", "right", "up", "down"))  # same order as DIRS
NOISE_ACTIONS = (NOOP, *MOVES, DO)
MINERALS = ("stone", "coal", "iron", "diamond")
UNDERGROUND = (*MINERALS, "Skeleton")  # goals found inside mountains: explore by tunnelling
_WALK = material_lut(constants.walkable, unknown=True)  # unseen cells are assumed walkable (optimism)
_BLOCK = material_lut([m for m in constants.materials if m not in constants.walkable])  # seen, not walkable
_DOOR = material_lut(["grass", "sand", "path"])  # where a stone can seal a shelter entrance
_BIOME = {"underground": material_lut(["stone", "path", "coal", "iron", "diamond"]),
          "grassland": material_lut(["grass", "tree"])}
_MAX_ENERGY = constants.items["energy"]["max"]
_MAX_DRINK = constants.items["drink"]["max"]


@dataclass
class _State:
    """One step's view of the world, in window coordinates (window = seen map around the player)."""

    pos: tuple[int, int]
    facing: int  # index into DIRS
    inv: dict[str, int]
    achievements: dict[str, int]
    sleeping: bool
    daylight: float
    objects: list[tuple[str, tuple[int, int], Any]]
    x0: int
    y0: int
    mat: np.ndarray  # uint8 material ids, 0 = never seen
    occupied: np.ndarray  # bool, a visible creature/plant/arrow stands there
    walk: np.ndarray  # bool, can step there (player cell included)
    start: tuple[int, int]
    order: tuple[int, ...]  # directions, faced one first

    def mask(self, material: str) -> np.ndarray:
        return self.mat == MAT_ID[material]

    def local(self, pos: tuple[int, int]) -> tuple[int, int]:
        return pos[0] - self.x0, pos[1] - self.y0

    def inside(self, i: int, j: int) -> bool:
        return 0 <= i < self.mat.shape[0] and 0 <= j < self.mat.shape[1]


class CrafterDemonstrator:
    """Scripted player: `act(env)` (free play) or `act(env, task)` (pursue one achievement) -> action index.

    `act` is a function of the env state and the demonstrator's memory only, so it can label any state
    (DAgger). `current_goal` names what the last action served: a task, "explore", or a survival
    behaviour ("drink", "eat", "sleep", "shelter", "arm", "fight_zombie", "fight_skeleton", "flee").
    """

    def __init__(self, config: DemonstratorConfig | None = None, seed: int = 0) -> None:
        self.config = config or DemonstratorConfig()
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.current_goal = ""
        self.current_step = ""
        self._clear()

    def _clear(self) -> None:
        self.memory: WorldMemory | None = None
        self._episode_key: tuple | None = None
        self._last_step = -1
        self._goal: str | None = None
        self._goal_start = 0
        self._goal_steps = 0
        self._survival: str | None = None
        self._heading: int | None = None

    def reset(self, env: Any, seed: int | None = None) -> None:
        """Forget the previous episode; with `seed`, also restart the random stream (one seed per episode)."""
        if seed is not None:
            self.seed = int(seed)
            self.rng = np.random.default_rng(self.seed)
        self._clear()
        self._sync(env)

    def _sync(self, env: Any) -> None:
        """Start a fresh memory when the env is a new episode (so a forgotten reset() cannot leak maps)."""
        key = (id(env.world), env.raw._seed, env.raw._episode)
        step = int(env.raw._step)
        if self.memory is None or key != self._episode_key or step < self._last_step:
            self._clear()
            self.memory = WorldMemory(tuple(env.world.area))
            self._episode_key = key
        self._last_step = step

    # ------------------------------------------------------------------ public entry
    def act(self, env: Any, task: str | None = None) -> int:
        """The action to execute now; in task mode `task` defaults to `config.task`."""
        cfg = self.config
        if task is None and cfg.mode == "task":
            if cfg.task is None:
                raise ConfigError("demonstrator task mode needs a task: pass act(env, task) or set config.task")
            task = cfg.task
        if task is not None:
            check_task(task)
        self._sync(env)
        s = self._observe(env)
        action = self._decide(s, task)
        if cfg.noise_prob > 0 and not s.sleeping and self.rng.random() < cfg.noise_prob:
            action = NOISE_ACTIONS[int(self.rng.integers(len(NOISE_ACTIONS)))]
        return int(self._safe(s, action))

    def _observe(self, env: Any) -> _State:
        player, world = env.player, env.world
        pos = (int(player.pos[0]), int(player.pos[1]))
        assert self.memory is not None
        objects = self.memory.observe(world, pos)
        r = self.config.nav_radius
        x0, y0 = max(0, pos[0] - r), max(0, pos[1] - r)
        x1, y1 = min(world.area[0], pos[0] + r + 1), min(world.area[1], pos[1] + r + 1)
        mat = self.memory.known[x0:x1, y0:y1]
        occupied = np.zeros(mat.shape, bool)
        for _, (ox, oy), _ in objects:
            occupied[ox - x0, oy - y0] = True
        walk = _WALK[mat] & ~occupied
        start = (pos[0] - x0, pos[1] - y0)
        walk[start] = True
        facing = DIRS.index((int(player.facing[0]), int(player.facing[1])))
        order = (facing, *(i for i in range(4) if i != facing))
        return _State(pos, facing, player.inventory, player.achievements, bool(player.sleeping),
                      float(world.daylight), objects, x0, y0, mat, occupied, walk, start, order)

    def _decide(self, s: _State, task: str | None) -> int:
        if s.sleeping:
            self.current_goal = task or "sleep"
            return SLEEP
        if task is None or self.config.survival_in_task_mode:
            urgent = self._survive(s, free_play=task is None)
            if urgent is not None:
                self.current_goal, action = urgent
                return action
        if task is None:
            task = self._free_goal(s)
        self.current_goal = task
        if task == EXPLORE:
            self.current_step = EXPLORE
            return self._explore(s, None)
        return self._pursue(s, task)

    # ------------------------------------------------------------------ goals
    def _free_goal(self, s: _State) -> str:
        cfg = self.config
        goal = self._goal
        done = goal is not None and goal != EXPLORE and s.achievements[goal] > self._goal_start
        budget = cfg.explore_steps if goal == EXPLORE else cfg.max_goal_steps
        if goal is None or done or self._goal_steps >= budget:
            names = list(cfg.catalogue)
            weights = np.array([cfg.catalogue[n] for n in names], float)
            if goal in cfg.catalogue and len(names) > 1 and weights.sum() > cfg.catalogue[goal]:
                weights[names.index(goal)] = 0.0  # never the same sub-goal twice in a row
            goal = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            self._goal, self._goal_steps = goal, 0
            self._goal_start = s.achievements.get(goal, 0)
        self._goal_steps += 1
        return goal

    def _pursue(self, s: _State, task: str) -> int:
        if task == "eat_plant":
            self.current_step = task
            return self._eat_plant(s)
        step = next_step(task, s.inv, lambda stations: self._missing_stations(s, stations))
        self.current_step = step.task
        if step.kind == "collect":
            return self._collect(s, step.target)
        if step.kind == "place":
            return self._place(s, step.target)
        if step.kind == "make":
            return self._make(s, step.target)
        if step.kind == "hunt":
            return self._hunt(s, step.target)
        return self._sleep(s)

    def _missing_stations(self, s: _State, stations: tuple[str, ...]) -> list[str]:
        """Stations to place before crafting: unseen nearby ones, or the last if they are not side by side."""
        masks = [s.mask(name) for name in stations]
        absent = [name for name, m in zip(stations, masks, strict=True) if not m.any()]
        if absent or len(stations) < 2:
            return absent
        together = s.walk.copy()
        for m in masks:
            together &= dilate8(m)
        return [] if together.any() else [stations[-1]]

    # ------------------------------------------------------------------ primitive skills
    def _collect(self, s: _State, material: str) -> int:
        if material == "grass":
            return self._sapling(s)
        dig = material in MINERALS and s.inv["wood_pickaxe"] > 0
        action = self._approach(s, s.mask(material), dig=dig, remember=material)
        return self._explore(s, material) if action is None else action

    def _approach(self, s: _State, targets: np.ndarray, dig: bool = False, remember: str | None = None) -> int | None:
        """Walk next to a target cell, face it, then `do`; None when no target is known or reachable."""
        i, j = s.start
        for d in s.order:
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            if s.inside(ni, nj) and targets[ni, nj]:
                return DO if d == s.facing else MOVES[d]
        passable = s.walk | (s.mat == MAT_ID["stone"]) if dig else s.walk
        if targets.any():
            move = first_move(passable, dilate4(targets) & passable, s.start, s.order)
            if move is not None and move >= 0:
                return self._step(s, move, dig)
        if remember is not None:
            return self._toward_remembered(s, remember, passable, dig)
        return None

    def _toward_remembered(self, s: _State, material: str, passable: np.ndarray, dig: bool) -> int | None:
        """Head for the nearest cell of `material` seen earlier but now beyond the search window."""
        assert self.memory is not None
        cells = np.argwhere(self.memory.known == MAT_ID[material])
        if len(cells) == 0:
            return None
        dist = np.abs(cells - np.array(s.pos)).sum(1)
        tx, ty = cells[int(dist.argmin())]
        xs = np.arange(s.mat.shape[0])[:, None] + s.x0
        ys = np.arange(s.mat.shape[1])[None, :] + s.y0
        far = np.abs(xs - tx) + np.abs(ys - ty)
        far = np.where(passable, far, np.iinfo(far.dtype).max)
        move = first_move(passable, far == far.min(), s.start, s.order)
        return None if move is None or move < 0 else self._step(s, move, dig)

    def _step(self, s: _State, d: int, dig: bool) -> int:
        """Move in direction d; in dig mode, mine the stone in the way first (face it, then `do`)."""
        i, j = s.start[0] + DIRS[d][0], s.start[1] + DIRS[d][1]
        if dig and s.inside(i, j) and s.mat[i, j] == MAT_ID["stone"] and d == s.facing:
            return DO
        return MOVES[d]

    def _sapling(self, s: _State) -> int:
        """Saplings drop (p=0.1) from `do` on grass: face grass and hit it, walking on when none is faced."""
        grass = s.mask("grass") & ~s.occupied
        i, j = s.start
        fi, fj = i + DIRS[s.facing][0], j + DIRS[s.facing][1]
        if s.inside(fi, fj) and grass[fi, fj]:
            return DO
        for d in s.order:
            ai, aj = i + DIRS[d][0], j + DIRS[d][1]
            bi, bj = ai + DIRS[d][0], aj + DIRS[d][1]
            if s.inside(bi, bj) and s.walk[ai, aj] and grass[bi, bj]:
                return MOVES[d]
        return self._explore(s, "grass")

    def _place(self, s: _State, item: str) -> int:
        """Place `item` on a valid faced cell; a furnace goes next to a seen table so crafting can use both."""
        info = constants.place[item]
        near = np.ones_like(s.walk)
        if item == "furnace" and s.mask("table").any():
            near = dilate8(s.mask("table"))
        valid = material_lut(info["where"])[s.mat] & ~s.occupied
        valid[s.start] = False
        blocked = valid & ~s.walk  # e.g. water for stone: facing it needs only a turn
        i, j = s.start
        fi, fj = i + DIRS[s.facing][0], j + DIRS[s.facing][1]
        if near[i, j] and s.inside(fi, fj) and valid[fi, fj]:
            return ACTION[f"place_{item}"]
        goal = np.zeros_like(valid)
        for d, (dx, dy) in enumerate(DIRS):
            turn = near & shifted(blocked, (dx, dy))
            walk_in = shifted(s.walk & near, (dx, dy)) & shifted(valid, (2 * dx, 2 * dy))
            if turn[i, j] or walk_in[i, j]:
                return MOVES[d]
            goal |= turn | walk_in
        move = first_move(s.walk, goal, s.start, s.order)
        return MOVES[move] if move is not None and move >= 0 else self._explore(s, None)

    def _make(self, s: _State, tool: str) -> int:
        goal = s.walk.copy()
        for station in constants.make[tool]["nearby"]:
            goal &= dilate8(s.mask(station))
        move = first_move(s.walk, goal, s.start, s.order)
        if move == -1:
            return ACTION[f"make_{tool}"]
        return self._explore(s, None) if move is None else MOVES[move]

    def _targets(self, s: _State, kind: str, ripe: bool = False) -> np.ndarray:
        out = np.zeros_like(s.occupied)
        for name, pos, obj in s.objects:
            if name == kind and (not ripe or obj.ripe):
                out[s.local(pos)] = True
        return out

    def _hunt(self, s: _State, kind: str) -> int:
        action = self._approach(s, self._targets(s, kind), dig=kind == "Skeleton" and s.inv["wood_pickaxe"] > 0)
        return self._explore(s, kind) if action is None else action

    def _sleep(self, s: _State) -> int:
        if s.inv["energy"] < _MAX_ENERGY:
            return SLEEP
        return self._explore(s, None)  # not tired yet: keep busy until energy drops

    def _eat_plant(self, s: _State) -> int:
        """Eat a ripe plant; else guard a seen sapling until it ripens; else plant one."""
        action = self._approach(s, self._targets(s, "Plant", ripe=True))
        if action is not None:
            return action
        assert self.memory is not None
        planted = np.zeros_like(s.occupied)
        for p in self.memory.plants:
            i, j = s.local(p)
            if s.inside(i, j):
                planted[i, j] = True
        if planted.any():
            action = self._approach(s, planted)
            return NOOP if action == DO else (self._explore(s, None) if action is None else action)
        if s.inv["sapling"] > 0:
            return self._place(s, "plant")
        return self._sapling(s)

    # ------------------------------------------------------------------ exploration
    def _explore(self, s: _State, hint: str | None) -> int:
        """Walk a persistent heading toward unseen (and, with a hint, likely) ground, turning at obstacles."""
        dig = (hint in UNDERGROUND or self._sheltered(s)) and s.inv["wood_pickaxe"] > 0
        i, j = s.start

        def open_dir(d: int) -> bool:
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            return s.inside(ni, nj) and bool(s.walk[ni, nj] or (dig and s.mat[ni, nj] == MAT_ID["stone"]))

        heading = self._heading
        if heading is None or not open_dir(heading) or self.rng.random() < self.config.explore_turn_prob:
            options = [d for d in range(4) if open_dir(d)]
            if not options:
                return NOOP  # boxed in (e.g. by water or lava): wait for a creature to move
            if heading is not None and len(options) > 1 and (heading ^ 1) in options:
                options.remove(heading ^ 1)  # DIRS pairs opposite directions as (0,1) and (2,3)
            biome = _BIOME["underground"] if hint in UNDERGROUND else _BIOME["grassland"] if hint else None
            scores = [self._strip_score(s, d, biome) + self.rng.random() for d in options]
            heading = options[int(np.argmax(scores))]
            self._heading = heading
        return self._step(s, heading, dig)

    @staticmethod
    def _strip_score(s: _State, d: int, biome: np.ndarray | None) -> float:
        """How promising the window half in direction d is: unseen cells, plus the hinted biome."""
        i, j = s.start
        strip = {0: s.mat[:i], 1: s.mat[i + 1:], 2: s.mat[:, :j], 3: s.mat[:, j + 1:]}[d]
        score = float((strip == 0).sum())
        if biome is not None:
            score += 3.0 * float(biome[strip].sum())
        return score

    # ------------------------------------------------------------------ survival
    def _survive(self, s: _State, free_play: bool) -> tuple[str, int] | None:
        cfg = self.config
        px, py = s.pos
        zombies = [(abs(p[0] - px) + abs(p[1] - py), p) for n, p, _ in s.objects if n == "Zombie"]
        close = [p for dist, p in zombies if dist <= cfg.fight_radius]
        if close:
            # Fleeing only pays before contact: an adjacent zombie follows and hits a fleeing back.
            if s.inv["health"] < cfg.flee_health_below and min(dist for dist, _ in zombies) > 1:
                action = self._flee(s, close)
                if action is not None:
                    return "flee", action
            target = np.zeros_like(s.occupied)
            for p in close:
                target[s.local(p)] = True
            action = self._approach(s, target)
            if action is not None:
                return "fight_zombie", action
        skeletons = np.zeros_like(s.occupied)
        for n, p, _ in s.objects:
            if n == "Skeleton" and abs(p[0] - px) + abs(p[1] - py) == 1:
                skeletons[s.local(p)] = True
        if skeletons.any():
            action = self._approach(s, skeletons)
            if action is not None:
                return "fight_skeleton", action
        if s.inv["drink"] < cfg.drink_below:
            self._survival = "drink"
        if self._survival == "drink":
            action = None if s.inv["drink"] >= _MAX_DRINK else self._approach(s, s.mask("water"), remember="water")
            if action is not None:
                return "drink", action
            self._survival = None
        if s.inv["food"] < cfg.eat_below:
            action = self._approach(s, self._targets(s, "Cow") | self._targets(s, "Plant", ripe=True))
            if action is not None:
                return "eat", action
        weapon = self._weapon_to_make(s) if cfg.arm_near_table and free_play else None
        if weapon is not None:
            return "arm", self._make(s, weapon)
        if s.inv["food"] < cfg.hunt_below:
            return "eat", self._explore(s, "Cow")  # no cow in view: roam the grassland for one
        tired = s.inv["energy"] < cfg.sleep_energy_below
        night = cfg.sleep_at_night and s.daylight < cfg.night_daylight and s.inv["energy"] < _MAX_ENERGY
        if (tired or night) and not any(dist <= 4 for dist, _ in zombies):
            if self._sheltered(s):
                return "sleep", SLEEP
            action = self._shelter(s)
            if action is not None:
                return "shelter", action
            if tired:
                return "sleep", SLEEP  # no shelter in reach: sleep in the open rather than faint
        return None

    @staticmethod
    def _weapon_to_make(s: _State) -> str | None:
        """A better sword craftable at a table in reach (zombies take 5 bare-handed hits, 3 with wood)."""
        inv = s.inv
        if inv["wood"] < 1 or inv["stone_sword"] or inv["iron_sword"]:
            return None
        weapon = "stone_sword" if inv["stone"] >= 1 else None if inv["wood_sword"] else "wood_sword"
        if weapon is None:
            return None
        goal = s.walk & dilate8(s.mask("table"))
        return weapon if goal.any() and first_move(s.walk, goal, s.start, s.order, max_iter=8) is not None else None

    @staticmethod
    def _sheltered(s: _State, door: tuple[int, int] | None = None) -> bool:
        """True when the walkable pocket around the player (with `door` sealed) has at most 3 cells."""
        walk = s.walk
        if door is not None:
            walk = walk.copy()
            walk[door] = False
        region = np.zeros_like(walk)
        region[s.start] = True
        for _ in range(3):
            grown = dilate4(region) & walk
            if grown.sum() > 3:
                return False
            if (grown == region).all():
                return True
            region = grown
        return False

    def _shelter(self, s: _State) -> int | None:
        """Seal a 2-cell pocket (dug into stone or found) for the night: walk to its dead end, step back, and
        place a stone on the entrance now faced. None when no pocket is known or no stone can be had."""
        dig = s.inv["wood_pickaxe"] > 0
        if s.inv["stone"] < 1 and not dig:
            return None
        i, j = s.start
        fi, fj = i + DIRS[s.facing][0], j + DIRS[s.facing][1]
        door = _DOOR[s.mat] & ~s.occupied
        if s.inv["stone"] >= 1 and s.inside(fi, fj) and door[fi, fj] and self._sheltered(s, (fi, fj)):
            return ACTION["place_stone"]
        open_ = s.walk | (s.mat == MAT_ID["stone"]) if dig else s.walk
        blocked = _BLOCK[s.mat]
        pockets = []
        for dx, dy in DIRS:
            side1, side2 = (dy, dx), (-dy, -dx)
            end = (open_ & shifted(blocked, (dx, dy)) & shifted(blocked, side1) & shifted(blocked, side2)
                   & shifted(open_, (-dx, -dy)) & shifted(blocked, (side1[0] - dx, side1[1] - dy))
                   & shifted(blocked, (side2[0] - dx, side2[1] - dy)) & shifted(door, (-2 * dx, -2 * dy)))
            pockets.append(end)
        for d, end in enumerate(pockets):
            if end[i, j]:
                return MOVES[d ^ 1]  # back out of the dead end: now facing the entrance
        goal = pockets[0] | pockets[1] | pockets[2] | pockets[3]
        move = first_move(open_, goal, s.start, s.order)
        if move is not None and move >= 0:
            return self._step(s, move, dig)
        # No pocket in reach: head for the nearest stone seen (a mountain edge yields one once dug into).
        return self._approach(s, s.mask("stone"), dig=True, remember="stone") if dig else None

    def _flee(self, s: _State, threats: list[tuple[int, int]]) -> int | None:
        i, j = s.start
        best, best_dist = None, min(abs(t[0] - s.pos[0]) + abs(t[1] - s.pos[1]) for t in threats)
        for d in s.order:
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            if not (s.inside(ni, nj) and s.walk[ni, nj]):
                continue
            x, y = s.pos[0] + DIRS[d][0], s.pos[1] + DIRS[d][1]
            dist = min(abs(t[0] - x) + abs(t[1] - y) for t in threats)
            if dist > best_dist:
                best, best_dist = d, dist
        return None if best is None else MOVES[best]

    @staticmethod
    def _safe(s: _State, action: int) -> int:
        """Never step into lava (the player walks onto it and dies), whatever chose the action."""
        if action in MOVES:
            dx, dy = DIRS[MOVES.index(action)]
            i, j = s.start[0] + dx, s.start[1] + dy
            if s.inside(i, j) and s.mat[i, j] == MAT_ID["lava"]:
                return NOOP
        return action
