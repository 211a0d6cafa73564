"""`CrafterDemonstrator`: a scripted Crafter player for data collection (free play) and labelling (task mode).

Each `act()` call looks only at the player's 9x7 view, its memory of cells seen earlier this episode
and its own inventory/status (all visible on screen), then picks, in priority order: a survival
behaviour, the next primitive step of the task (prerequisites resolved by `planner`), or exploration.
All randomness comes from the demonstrator's own seeded numpy Generator, so the same seed and world give
the same actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from crafter import constants

from aimc.core.errors import ConfigError
from aimc.envs.demo.config import DemonstratorConfig, check_task
from aimc.envs.demo.memory import MAT_ID, WorldMemory, material_lut
from aimc.envs.demo.navigation import (
    DIRS,
    UNREACHABLE,
    backtrack,
    dilate4,
    dilate8,
    distance_map,
    first_move,
    shifted,
)
from aimc.envs.demo.planner import EXPLORE, TASKS, next_step
from aimc.envs.demo.shelter import pocket_size
from aimc.envs.demo.state import (
    ACTION,
    BIOME,
    DO,
    MAX_ENERGY,
    MINERALS,
    MOVES,
    NOISE_ACTIONS,
    NOOP,
    SLEEP,
    UNDERGROUND,
    WALK,
    State,
)
from aimc.envs.demo.survival import SurvivalMixin

_REPLAN = 12  # steps a route over the remembered map is followed before it is planned again
_DETOUR = 8  # a path in the search window this much longer than the straight line may be cropped (`_approach`)
_BOXED = 24  # a walkable region this small (seen so far) counts as boxed in: exploring may tunnel out


class CrafterDemonstrator(SurvivalMixin):
    """Scripted player: `act(env)` (free play or a chain of tasks) or `act(env, task)` (pursue one achievement).

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
        self.expert_action: int | None = None
        """The action the last `act` chose before noise (equal to the executed one when no noise fired)."""
        self.label_set: tuple[int, ...] = ()
        """The last `act`'s expert action and the other moves that start an equally short path to the same target
        (ties the path search broke by the facing): any of them is what the expert would do."""
        self._ties: list[int] = []
        self.explored = False
        """Whether the last `act` chose its action by exploring (no target known, or none reachable): such a label
        says where to look next, a choice a learner's own search makes as well (the expert labeller of
        `aimc train ppo` can leave these steps out)."""
        self._clear()

    def _clear(self) -> None:
        self.memory: WorldMemory | None = None
        self._episode_key: tuple | None = None
        self._last_step = -1
        self._goal: str | None = None
        self._goal_start = 0
        self._goal_steps = 0
        self._survival: str | None = None
        self._step_goal: str | None = None  # the last planner step pursued (goal_label "step": a sleeper's label)
        self._resting = False
        self._last_daylight: float | None = None
        self._room: tuple[int, int] | None = None  # world coordinates of the shelter room being built
        self._room_kind = -1  # shelter.ROOM_KIND (a 2x2 room, `_room` its top-left) or a pocket's direction
        self._room_step = -(10**6)  # step the room was last chosen
        self._heading: int | None = None
        self._water_target = None
        self._search_target = None
        self._path: list[tuple[int, int]] = []  # route over the remembered map (`_toward`)
        self._path_key: object = None
        self._path_step = -_REPLAN

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
        self.explored = False
        self._ties = []
        if task is None and cfg.mode == "chain":
            task = self._free_goal(s)  # drawn as in free play, then pursued (survival included) as in task mode
        action = self._decide(s, task)
        # DART: the action the expert would take here, whatever noise executes instead (the training label)
        self.expert_action = int(self._safe(s, action))
        tied = [MOVES[i] for i in self._ties]
        self.label_set = ((self.expert_action, *(m for m in tied if m != self.expert_action))
                          if tied and tied[0] == self.expert_action else (self.expert_action,))
        if cfg.noise_prob > 0 and not s.sleeping and self.rng.random() < cfg.noise_prob:
            # Sealed in a room, a random `do` would only break a wall: moves and noop stay harmless there.
            choices = NOISE_ACTIONS[:-1] if self._enclosed(s) else NOISE_ACTIONS
            noisy = choices[int(self.rng.integers(len(choices)))]
            if not self._threatened(s):
                action = noisy
        return int(self._safe(s, action))

    def _threatened(self, s: State) -> bool:
        """A zombie within `noise_radius` cells, or a skeleton or arrow in view (`noise_radius` > 0)."""
        radius = self.config.noise_radius
        if radius <= 0:
            return False
        px, py = s.pos
        return any((n == "Zombie" and abs(p[0] - px) + abs(p[1] - py) <= radius) or n in ("Skeleton", "Arrow")
                   for n, p, _ in s.objects)

    def _observe(self, env: Any) -> State:
        player, world = env.player, env.world
        pos = (int(player.pos[0]), int(player.pos[1]))
        assert self.memory is not None
        objects = self.memory.observe(world, pos, int(env.raw._step))
        r = self.config.nav_radius
        x0, y0 = max(0, pos[0] - r), max(0, pos[1] - r)
        x1, y1 = min(world.area[0], pos[0] + r + 1), min(world.area[1], pos[1] + r + 1)
        mat = self.memory.known[x0:x1, y0:y1]
        occupied = np.zeros(mat.shape, bool)
        for _, (ox, oy), _ in objects:
            occupied[ox - x0, oy - y0] = True
        walk = WALK[mat] & ~occupied
        start = (pos[0] - x0, pos[1] - y0)
        walk[start] = True
        facing = DIRS.index((int(player.facing[0]), int(player.facing[1])))
        order = (facing, *(i for i in range(4) if i != facing))
        return State(pos, facing, player.inventory, player.achievements, bool(player.sleeping),
                      float(world.daylight), objects, x0, y0, mat, occupied, walk, start, order)

    def _decide(self, s: State, task: str | None) -> int:
        if s.sleeping:
            self.current_goal = (self._step_goal or task) if task and self.config.goal_label == "step" else (task or "sleep")
            return SLEEP
        if task is None or self.config.survival_in_task_mode:
            self.current_step = ""
            urgent = self._survive(s, task)
            if urgent is not None:
                self.current_goal, action = urgent
                self.current_step = self.current_step or self.current_goal
                return action
        if task is None:
            task = self._free_goal(s)
        self.current_goal = task
        if task == EXPLORE:
            self.current_step = EXPLORE
            return self._explore(s, None)
        action = self._pursue(s, task)
        if self.config.goal_label == "step" and self.current_step in TASKS:
            self.current_goal = self._step_goal = self.current_step
        return action

    # ------------------------------------------------------------------ goals
    def _free_goal(self, s: State) -> str:
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

    def _pursue(self, s: State, task: str) -> int:
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

    def _missing_stations(self, s: State, stations: tuple[str, ...]) -> list[str]:
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
    def _collect(self, s: State, material: str) -> int:
        if material == "grass":
            return self._sapling(s)
        dig = material in MINERALS and s.inv["wood_pickaxe"] > 0
        action = self._approach(s, s.mask(material), dig=dig, remember=material)
        return self._explore(s, material) if action is None else action

    def _approach(self, s: State, targets: np.ndarray, dig: bool = False, remember: str | None = None,
                  avoid: np.ndarray | None = None, reroute: str | None = None) -> int | None:
        """Walk next to a target cell, face it, then `do`; None when no target is known or reachable.

        `remember`: a material whose remembered cells beyond the window are headed for when no target in it is
        reachable. `reroute` (default: `remember`): a material whose remembered route is taken instead of a
        long detour inside the window. `avoid`: cells never walked or dug through (e.g. the walls of the room
        being built)."""
        reroute = reroute or remember
        i, j = s.start
        for d in s.order:
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            if s.inside(ni, nj) and targets[ni, nj]:
                return DO if d == s.facing else MOVES[d]
        passable = s.walk | (s.mat == MAT_ID["stone"]) if dig else s.walk
        if avoid is not None:
            passable = passable & ~avoid
        if targets.any():
            length: list[int] = []
            move = first_move(passable, dilate4(targets) & passable, s.start, s.order, ties=self._ties, length=length)
            if move is not None and move >= 0:
                if reroute is not None and length[0] > self._straight(s, targets) + _DETOUR:
                    # A long way round inside the search window can be a detour only because the window
                    # crops the direct route: one step along it drops the target out of the window, the
                    # remembered route leads straight back, and the player paced between the two for 60
                    # steps (traced). The route over the whole remembered map is never longer.
                    action = self._toward_remembered(s, reroute, passable, dig, avoid)
                    if action is not None:
                        return action
                return self._step(s, move, dig)
        if remember is not None:
            return self._toward_remembered(s, remember, passable, dig, avoid)
        return None

    @staticmethod
    def _straight(s: State, targets: np.ndarray) -> int:
        """Manhattan distance from the player to the nearest `targets` cell of the window."""
        cells = np.argwhere(targets)
        return int(np.min(np.abs(cells[:, 0] - s.start[0]) + np.abs(cells[:, 1] - s.start[1])))

    def _toward_remembered(self, s: State, material: str, passable: np.ndarray, dig: bool,
                           avoid: np.ndarray | None = None) -> int | None:
        """Head for the nearest cell of `material` seen earlier but now beyond the search window, never one of the
        window's `avoid` cells: heading for a wall of the room being built as the nearest stone, the player reached
        it, found it excluded, explored a step away and was led back, 48 steps of pacing (traced)."""
        assert self.memory is not None
        targets = self.memory.known == MAT_ID[material]
        if avoid is not None:
            w, h = avoid.shape
            targets[s.x0:s.x0 + w, s.y0:s.y0 + h] &= ~avoid
        return self._toward(s, targets, dig, key=material)

    def _toward(self, s: State, targets: np.ndarray, dig: bool, key: object = None) -> int | None:
        """First step of a shortest path over the remembered map (unseen cells assumed walkable) to a cell
        next to or on a `targets` cell (world-sized mask). The path is kept for `_REPLAN` steps under `key`
        (re-planned sooner when it is left or blocked): lakes and ridges beyond the window need a global
        route, a greedy step toward the target paces along their near shore."""
        assert self.memory is not None
        mem = self.memory
        path = self._path if key is not None and self._path_key == key else []
        if path and path[0] == s.pos:
            path.pop(0)
        fresh = self._last_step - self._path_step < _REPLAN
        if not (fresh and path and abs(path[0][0] - s.pos[0]) + abs(path[0][1] - s.pos[1]) == 1
                and self._routable(path[0], dig)):
            walk = WALK[mem.known] | ((mem.known == MAT_ID["stone"]) if dig else False)
            walk[s.pos] = True
            goal = (targets | dilate4(targets)) & walk
            if not goal.any():
                return None
            dist = distance_map(walk, s.pos, max_iter=walk.size, stop=goal)
            reached = goal & (dist < UNREACHABLE)
            if not reached.any():
                return None
            cells = np.argwhere(reached)
            best = cells[int(np.argmin(dist[reached]))]
            path = backtrack(dist, (int(best[0]), int(best[1]))) if dist[best[0], best[1]] > 0 else []
            self._path_key, self._path_step = key, self._last_step
        self._path = path
        if not path:
            return None
        d = DIRS.index((path[0][0] - s.pos[0], path[0][1] - s.pos[1]))
        return self._step(s, d, dig)

    def _routable(self, cell: tuple[int, int], dig: bool) -> bool:
        assert self.memory is not None
        mat = int(self.memory.known[cell])
        return bool(WALK[mat] or (dig and mat == MAT_ID["stone"]))

    def _step(self, s: State, d: int, dig: bool) -> int:
        """Move in direction d; in dig mode, mine the stone in the way first (face it, then `do`)."""
        i, j = s.start[0] + DIRS[d][0], s.start[1] + DIRS[d][1]
        if dig and s.inside(i, j) and s.mat[i, j] == MAT_ID["stone"] and d == s.facing:
            return DO
        return MOVES[d]

    def _sapling(self, s: State) -> int:
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

    def _place(self, s: State, item: str) -> int:
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
        move = first_move(s.walk, goal, s.start, s.order, ties=self._ties)
        return MOVES[move] if move is not None and move >= 0 else self._explore(s, None)

    def _make(self, s: State, tool: str) -> int:
        goal = s.walk.copy()
        for station in constants.make[tool]["nearby"]:
            goal &= dilate8(s.mask(station))
        move = first_move(s.walk, goal, s.start, s.order, ties=self._ties)
        if move == -1:
            return ACTION[f"make_{tool}"]
        return self._explore(s, None) if move is None else MOVES[move]

    def _targets(self, s: State, kind: str, ripe: bool = False) -> np.ndarray:
        out = np.zeros_like(s.occupied)
        for name, pos, obj in s.objects:
            if name == kind and (not ripe or obj.ripe):
                out[s.local(pos)] = True
        return out

    def _hunt(self, s: State, kind: str) -> int:
        action = self._approach(s, self._targets(s, kind), dig=kind == "Skeleton" and s.inv["wood_pickaxe"] > 0)
        if action is None and kind == "Cow":
            return self._search_cows(s)
        return self._explore(s, kind) if action is None else action

    def _sleep(self, s: State) -> int:
        """Sleep sealed in a room when one can be had (a zombie hits a sleeper for 7), else where it stands."""
        if s.inv["energy"] < MAX_ENERGY:
            if self._enclosed(s):
                return SLEEP
            action = self._take_shelter(s)
            return SLEEP if action is None else action
        return self._explore(s, None)  # not tired yet: keep busy until energy drops

    def _eat_plant(self, s: State) -> int:
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
    def _explore(self, s: State, hint: str | None) -> int:
        """Walk a persistent heading toward unseen (and, with a hint, likely) ground, turning at obstacles."""
        self.explored = True
        # Tunnel through stone when the goal lies underground, or when boxed in (a room, a small pocket
        # between water and rock) where walking alone only paces back and forth.
        dig = s.inv["wood_pickaxe"] > 0 and (hint in UNDERGROUND or pocket_size(WALK[s.mat], s.start, _BOXED) <= _BOXED)
        i, j = s.start

        def open_dir(d: int) -> bool:
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            return s.inside(ni, nj) and bool(s.walk[ni, nj] or (dig and s.mat[ni, nj] == MAT_ID["stone"]))

        # Following the facing makes the heading a function of what the player just did, which a policy can
        # read from its recent frames; the remembered heading is the demonstrator's own hidden choice, so in
        # a learner's states (DAgger labels) it points anywhere and the labels contradict the learner's motion.
        heading = s.facing if self.config.explore_follow_facing else self._heading
        if heading is None or not open_dir(heading) or self.rng.random() < self.config.explore_turn_prob:
            options = [d for d in range(4) if open_dir(d)]
            if not options:
                return NOOP  # boxed in (e.g. by water or lava): wait for a creature to move
            if heading is not None and len(options) > 1 and (heading ^ 1) in options:
                options.remove(heading ^ 1)  # DIRS pairs opposite directions as (0,1) and (2,3)
            biome = (BIOME["underground"] if hint in UNDERGROUND else BIOME["shore"] if hint == "water"
                     else BIOME["grassland"] if hint else None)
            scores = [self._strip_score(s, d, biome) + self.rng.random() for d in options]
            heading = options[int(np.argmax(scores))]
            self._heading = heading
        return self._step(s, heading, dig)

    @staticmethod
    def _strip_score(s: State, d: int, biome: np.ndarray | None) -> float:
        """How promising the window half in direction d is: unseen cells, plus the hinted biome."""
        i, j = s.start
        strip = {0: s.mat[:i], 1: s.mat[i + 1:], 2: s.mat[:, :j], 3: s.mat[:, j + 1:]}[d]
        score = float((strip == 0).sum())
        if biome is not None:
            score += 3.0 * float(biome[strip].sum())
        return score

    def _safe(self, s: State, action: int) -> int:
        """Never step into lava (the player walks onto it and dies), whatever chose the action; with
        `avoid_arrows`, never step into the cell an arrow in view flies into next (the player moves before
        the arrow, so it would be hit: most arrow damage by day came from walking into an arrow's path)."""
        if action in MOVES:
            dx, dy = DIRS[MOVES.index(action)]
            i, j = s.start[0] + dx, s.start[1] + dy
            if s.inside(i, j) and s.mat[i, j] == MAT_ID["lava"]:
                return NOOP
            if self.config.avoid_arrows and s.inside(i, j) and s.walk[i, j]:
                cell = (s.pos[0] + dx, s.pos[1] + dy)
                for name, (ax, ay), obj in s.objects:
                    if name == "Arrow" and (ax + int(obj.facing[0]), ay + int(obj.facing[1])) == cell:
                        return NOOP
        return action
