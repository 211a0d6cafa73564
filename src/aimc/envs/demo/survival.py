"""The demonstrator's survival layer: fight, dodge, drink, eat, arm, and spend nights in a sealed room.

Measured before this layer (30 free-play episodes, docs/demonstrator.md): zombies did about 70 % of the
damage, mostly at dusk, at night and to a sleeper in the open (7 damage per hit), then skeleton arrows,
then starvation. What each step does, in priority order:
  * fight a zombie within `fight_radius` (flee one when weak) and an adjacent skeleton; dodge arrows;
  * eat a cow within 3 cells; eat a cow in view (or walk back to a remembered one when hungry) before
    topping up drink, drink first only when below `drink_below`;
  * at night, when exhausted or when badly hurt: get into a sealed 2x2 room (`shelter.py`), sleep there
    while energy is below full, and stay until full morning light (zombies gather round the room at night);
  * restock food and drink in the calm of the day (no zombies spawn) and at dusk; be armed and carry a
    pickaxe and stones for the walls; search stale pasture for cows when hungry.
`current_goal` names the behaviour (drink, eat, sleep, shelter, arm, fight_zombie, fight_skeleton, flee).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aimc.envs.demo.memory import MAT_ID, VIEW_HALF_X, VIEW_HALF_Y, material_lut
from aimc.envs.demo.navigation import DIRS, UNREACHABLE, dilate4, dilate8, distance_map, first_move
from aimc.envs.demo.planner import EXPLORE, total_need
from aimc.envs.demo.shelter import (
    ROOM_KIND,
    ROOM_SIZE,
    enclosed,
    exposed,
    needs_stone,
    pocket_costs,
    room_costs,
    shelter_cells,
    shelter_walls,
)
from aimc.envs.demo.state import (
    DO,
    MAX_DRINK,
    MAX_ENERGY,
    MAX_FOOD,
    MOVES,
    NOOP,
    PLACE_STONE,
    SLEEP,
    WALK,
    State,
)

if TYPE_CHECKING:
    from aimc.envs.demo.config import DemonstratorConfig

Decision = tuple[str, int]  # (current_goal, action)
_CRITICAL = 1  # drink/food below this (none left): leave the room for it even at night (health drains)
# Cow search: pasture unseen for at least _STALE_MIN steps scores its staleness (capped at _STALE_CAP, as
# does never-seen ground) minus _STALE_PER_STEP per step of distance.
_STALE_MIN, _STALE_CAP, _STALE_PER_STEP = 150, 400, 4.0
_FRONTIER = 3  # never-seen cells this close to seen grass count as pasture
_REST_SUPPLIES = 4  # a low-health rest in the room needs this much food and drink (else restock first)
_NIGHT_REACH = 3  # cows this close are eaten first; at night only these (and water 3 further) are walked to
_AT_WATER = 2  # water this close counts as being at the water (`finish_drink`)
_KEEP_SEARCH_MARGIN = 8.0  # a cow search keeps its target unless another scores this much more (2 steps)
_SHORE, _SHORE_BONUS = 3, 6.0  # unseen ground within 3 cells of seen sand counts 6 steps closer (water search)
_ARROW_REACH = 4  # dodge arrows this close (cells)
_ARROW_FLIES = material_lut(["grass", "sand", "path", "water", "lava"], unknown=True)
_KEEP_ROOM_MARGIN = 4.0  # a chosen room is kept unless another is this much cheaper (no dithering)
_ROOM_RECHECK = 8  # steps between searches over all rooms in the window


class SurvivalMixin:
    """Survival behaviours of `CrafterDemonstrator`; uses its primitive skills (`_approach`, `_collect`, ...)."""

    config: DemonstratorConfig
    _survival: str | None
    _ties: list[int]
    _resting: bool
    _last_step: int
    _room: tuple[int, int] | None
    _room_kind: int = ROOM_KIND
    _room_step: int = -(10**6)
    _last_daylight: float | None
    _dusk: bool = False
    _rising: bool = True  # daylight grew at its last change: night to noon (a morning), else an evening
    _calm: bool = False
    _in_task: bool = False
    _search_target: tuple[int, int] | None = None  # the ground a cow search walks to (`_search_cows`)
    _water_target: tuple[int, int] | None = None  # the unseen cell a water search walks to (`_search_water`)

    # ------------------------------------------------------------------ entry
    def _survive(self, s: State, task: str | None) -> Decision | None:
        """The survival behaviour that overrides the goal this step, or None."""
        cfg = self.config
        sealed = self._enclosed(s)
        self._dusk = s.daylight < cfg.prepare_daylight and s.daylight >= cfg.night_daylight and (
            self._last_daylight is None or s.daylight <= self._last_daylight)  # evening, not morning
        if self._last_daylight is None:
            self._rising = True  # unknown (first look): treat it as a morning, the cautious reading
        elif s.daylight != self._last_daylight:
            self._rising = s.daylight > self._last_daylight  # equal (noon, midnight): keep the last reading
        self._last_daylight = s.daylight
        # No zombies spawn in full daylight: the time to restock (free play; task mode keeps to its task).
        self._calm = task is None and s.daylight >= cfg.calm_daylight
        self._in_task = task is not None
        # A cow in view (or one remembered when hungry) outranks topping up drink: cows wander off and are
        # scarce (measured: most free-play deaths were starvation), water stays where it is.
        needs = (self._eat, self._drink) if s.inv["drink"] >= cfg.drink_below else (self._drink, self._eat)
        for behaviour in (self._fight, self._dodge, self._snack, *needs):
            decision = behaviour(s, sealed)
            if decision is not None:
                return decision
        decision = self._night_and_rest(s, sealed)
        if decision is not None:
            return decision
        if cfg.arm_near_table and (task is None or self._dusk or cfg.arm_in_task_mode):
            weapon = self._weapon_to_make(s, None if task is None or self._dusk else task)
            if weapon is not None:
                return "arm", self._make(s, weapon)
        if self._hungry(s) and (not self._sheltering(s, sealed) or s.inv["food"] < _CRITICAL):
            return "eat", self._search_cows(s)  # none in view or remembered: patrol the grassland
        if (task is None or self._dusk) and not sealed:
            decision = self._prepare(s)
            if decision is not None:
                return decision
        assert self.memory is not None
        if task is None and self._calm and not self.memory.cows and s.inv["food"] < MAX_FOOD:
            return "eat", self._search_cows(s)  # free play: know where the next meal is, while it is safe
        return None

    def _cell_mask(self, cell: tuple[int, int]) -> np.ndarray:
        assert self.memory is not None
        mask = np.zeros(self.memory.area, bool)
        mask[cell] = True
        return mask

    @staticmethod
    def _within(s: State, radius: int) -> np.ndarray:
        """Window cells within Manhattan distance `radius` of the player."""
        xs = np.abs(np.arange(s.mat.shape[0]) - s.start[0])[:, None]
        ys = np.abs(np.arange(s.mat.shape[1]) - s.start[1])[None, :]
        return (xs + ys) <= radius

    def _enclosed(self, s: State) -> bool:
        return enclosed(WALK[s.mat], s.start)

    # ------------------------------------------------------------------ threats
    def _fight(self, s: State, sealed: bool) -> Decision | None:
        """Hit zombies within `fight_radius` (fleeing is only tried before contact) and adjacent skeletons."""
        cfg = self.config
        px, py = s.pos
        zombies = [(abs(p[0] - px) + abs(p[1] - py), p) for n, p, _ in s.objects if n == "Zombie"]
        # In (or sealing) the room for the night, only a zombie that got in is fought: one outside the
        # walls cannot reach the player, and stepping out to it would open the room.
        radius = 1 if self._in_room(s) and self._sheltering(s, sealed) else cfg.fight_radius
        close = [p for dist, p in zombies if dist == 1 or (dist <= radius and self._walk_within(s, p, radius))]
        if close:
            # Fleeing only pays before contact: an adjacent zombie follows and hits a fleeing back.
            if s.inv["health"] < cfg.flee_health_below and min(dist for dist, _ in zombies) > 1 and not sealed:
                action = self._flee(s, close)
                if action is not None:
                    return "flee", action
            target = np.zeros_like(s.occupied)
            for p in close:
                target[s.local(p)] = True
            action = self._approach(s, target)
            if action is not None:
                return "fight_zombie", action
        # Only adjacent skeletons: they back off when approached, and chasing them leads into their caves
        # (measured: hunting those within 3 cells cost more lives than the arrows it saved).
        skeletons = np.zeros_like(s.occupied)
        for n, p, _ in s.objects:
            if n == "Skeleton" and abs(p[0] - px) + abs(p[1] - py) == 1:
                skeletons[s.local(p)] = True
        if skeletons.any():
            action = self._approach(s, skeletons)
            if action is not None:
                return "fight_skeleton", action
        return None

    @staticmethod
    def _walk_within(s: State, p: tuple[int, int], radius: int) -> bool:
        """Whether the creature at world cell `p` is at most `radius` steps away on foot: one across a rock
        corner is close by Manhattan distance only, and stepping toward it and back (the room is the other
        way) dithered for whole dusks (measured)."""
        target = np.zeros_like(s.walk)
        target[s.local(p)] = True
        goal = dilate4(target) & s.walk
        return first_move(s.walk, goal, s.start, s.order, max_iter=max(1, radius - 1)) is not None

    def _dodge(self, s: State, sealed: bool) -> Decision | None:
        """Step out of the line of an arrow flying at the player (arrows fly straight, one cell a step, and
        the player moves first, so a side step even with the arrow adjacent makes it miss)."""
        if sealed:
            return None
        px, py = s.pos
        incoming = []
        for name, (ax, ay), obj in s.objects:
            if name != "Arrow":
                continue
            fx, fy = int(obj.facing[0]), int(obj.facing[1])
            dx, dy = px - ax, py - ay
            ahead = (fx != 0 and dy == 0 and dx * fx > 0) or (fy != 0 and dx == 0 and dy * fy > 0)
            if ahead and abs(dx) + abs(dy) <= _ARROW_REACH and self._clear_line(s, (ax, ay), s.pos):
                incoming.append((fx, fy))
        if not incoming:
            return None
        i, j = s.start
        for d in s.order:
            if any(DIRS[d] == f or DIRS[d] == (-f[0], -f[1]) for f in incoming):
                continue  # along the arrow's line: still in it
            ni, nj = i + DIRS[d][0], j + DIRS[d][1]
            if s.inside(ni, nj) and s.walk[ni, nj]:
                return "flee", MOVES[d]
        return None

    @staticmethod
    def _clear_line(s: State, a: tuple[int, int], b: tuple[int, int]) -> bool:
        """No wall (anything an arrow cannot fly over) strictly between two cells of one row or column."""
        (ax, ay), (bx, by) = s.local(a), s.local(b)
        step = (int(np.sign(bx - ax)), int(np.sign(by - ay)))
        x, y = ax + step[0], ay + step[1]
        while (x, y) != (bx, by):
            if not (s.inside(x, y) and _ARROW_FLIES[s.mat[x, y]]):
                return False
            x, y = x + step[0], y + step[1]
        return True

    def _flee(self, s: State, threats: list[tuple[int, int]]) -> int | None:
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

    # ------------------------------------------------------------------ needs
    def _sheltering(self, s: State, sealed: bool = False) -> bool:
        """A reason to be in the room now: night, exhaustion, a low-health spell, or, once sealed, a dim
        morning (zombies gather round the room at night and despawn only as the light grows). Only a
        morning: sealed in after a rest by day, the dimming afternoon is no reason to stay (measured: such
        rests turned into 200 steps in the room, and the player left it the next morning starved)."""
        cfg = self.config
        night = cfg.sleep_at_night and s.daylight < cfg.night_daylight
        morning = sealed and self._rising and (s.daylight < cfg.morning_daylight or self._besieged(s))
        return night or morning or self._resting or s.inv["energy"] < cfg.sleep_energy_below

    def _besieged(self, s: State) -> bool:
        """A zombie within `morning_zombie_radius` of the room while food and drink last: wait for full light
        to thin them out (they despawn in daylight) rather than dig out into them (measured: many task-mode
        deaths were bare-handed fights right after leaving the night's room). In task mode only when unarmed
        or hurt: armed and healthy, the wait cost task time (iron tasks succeeded less often, measured),
        while in free play leaving armed still raised zombie deaths (9 against 5 of 60)."""
        cfg = self.config
        armed = s.inv["wood_sword"] or s.inv["stone_sword"] or s.inv["iron_sword"]
        radius = cfg.morning_zombie_radius
        if (radius <= 0 or min(s.inv["food"], s.inv["drink"]) <= _CRITICAL
                or (self._in_task and armed and s.inv["health"] >= cfg.rest_health_until)):
            return False
        px, py = s.pos
        return any(n == "Zombie" and abs(p[0] - px) + abs(p[1] - py) <= radius for n, p, _ in s.objects)

    def _drink(self, s: State, sealed: bool) -> Decision | None:
        """Drink until full once below `drink_below` (in the calm of the day or at dusk, below `restock_below`;
        with no water known yet, search early). At night only water close by, unless none is left: a night
        walk to far or unknown water meets the zombies. Sealed in a room with a well, drink from inside."""
        cfg = self.config
        drink = s.inv["drink"]
        assert self.memory is not None
        if (drink < cfg.drink_below or ((self._calm or self._dusk) and drink < cfg.restock_below and not sealed)
                or (drink < MAX_DRINK - 2 and not (self.memory.known == MAT_ID["water"]).any())):
            self._survival = "drink"  # thirsty, dusk, or no water known yet: find some while there is time
        if self._survival != "drink":
            return None
        if drink >= MAX_DRINK:
            self._survival = None
            return None
        night = self._sheltering(s, sealed)
        if sealed:
            action = self._approach(s, s.mask("water"))  # walls block the path: only a well in the wall
            if action is not None:
                return "drink", action
            if night and drink >= _CRITICAL:
                return None
        water = s.mask("water")
        if night:
            water &= self._within(s, _NIGHT_REACH + 3)
        can_dig = s.inv["wood_pickaxe"] > 0
        action = self._approach(s, water, dig=sealed and can_dig, remember=None if night or can_dig else "water",
                                reroute=None if night else "water")
        if action is None and can_dig and not sealed and water.any():
            # Water in view but walled off (a closed cave): tunnel to it rather than pace the walls (measured:
            # a player with a pickaxe died of thirst in a cave 5 cells from a lake).
            action = self._approach(s, water, dig=True)
        if action is None and can_dig and not night:
            action = self._approach(s, water, dig=sealed, remember="water")
        unknown = not (self.memory.known == MAT_ID["water"]).any()
        if action is None and not night and (drink < cfg.drink_below or unknown):
            action = self._search_water(s)  # none known: search the nearest unseen ground, shores first
        if action is None:
            self._survival = None
            return None
        return "drink", action

    def _steps_away(self, s: State) -> np.ndarray:
        """Manhattan distance from the player to every cell of the world (the searches' cost of a target)."""
        assert self.memory is not None
        xs = np.arange(self.memory.area[0])[:, None]
        ys = np.arange(self.memory.area[1])[None, :]
        return np.abs(xs - s.pos[0]) + np.abs(ys - s.pos[1])

    def _search_water(self, s: State) -> int:
        """Walk toward the nearest never-seen ground (unseen cells next to seen ones), counting ground near
        seen sand `_SHORE_BONUS` steps closer (lakes are ringed with sand). A heading walked until blocked
        passed water 8 cells from the start and died of thirst 20 cells away (traced)."""
        assert self.memory is not None
        mem = self.memory
        target = self._water_target
        if target is None or mem.known[target] != 0:
            seen = mem.known > 0
            frontier = dilate4(seen) & ~seen
            if not frontier.any():
                return self._explore(s, "water")
            shore = mem.known == MAT_ID["sand"]
            for _ in range(_SHORE):
                shore = dilate4(shore)
            score = np.where(frontier, _SHORE_BONUS * shore - self._steps_away(s), -np.inf)
            best = np.unravel_index(int(np.argmax(score)), score.shape)
            target = self._water_target = (int(best[0]), int(best[1]))
        action = self._toward(s, self._cell_mask(target), False, key=("water search", target))
        if action is None:
            self._water_target = None
            return self._explore(s, "water")
        return action

    def _drinking(self, s: State) -> bool:
        """Mid-drink at the water with `finish_drink`: a hungry and thirsty player that broke off at every sip to
        search for cows paced between the two with drink at 3-4 and food at 0 until it starved (traced)."""
        return (self.config.finish_drink and self._survival == "drink" and s.inv["drink"] < MAX_DRINK
                and bool((s.mask("water") & self._within(s, _AT_WATER)).any()))

    def _hungry(self, s: State) -> bool:
        """Worth a search for cows: below `hunt_below` (`task_hunt_below` in task mode), or below `restock_below`
        in the calm of the day or at dusk (a night costs about 3 food)."""
        cfg = self.config
        food = s.inv["food"]
        below = cfg.task_hunt_below if self._in_task else cfg.hunt_below
        return food < below or ((self._calm or self._dusk) and food < cfg.restock_below)

    def _snack(self, s: State, sealed: bool) -> Decision | None:
        """A cow within reach is eaten first (a few steps), even when thirsty: cows are the scarce resource."""
        if s.inv["food"] >= self.config.eat_below or (sealed and self._sheltering(s, sealed)):
            return None
        near = self._targets(s, "Cow") & self._within(s, _NIGHT_REACH)
        action = self._approach(s, near) if near.any() else None
        return None if action is None else ("eat", action)

    def _eat(self, s: State, sealed: bool) -> Decision | None:
        """Eat a cow (or ripe plant) in view when below `eat_below`; when hungry (`_hungry`), walk back to
        where cows were last seen."""
        cfg = self.config
        food = s.inv["food"]
        if sealed and self._sheltering(s, sealed) and food >= _CRITICAL:
            return None
        if self._drinking(s):
            return None  # at the water: fill up first, or the next trip back costs more than the drink (traced)
        if food < cfg.eat_below:
            food_in_view = self._targets(s, "Cow") | self._targets(s, "Plant", ripe=True)
            if self._sheltering(s) and food >= _CRITICAL:
                food_in_view &= self._within(s, _NIGHT_REACH)
            action = self._approach(s, food_in_view)
            if action is not None:
                return "eat", action
        if self._hungry(s) and (not self._sheltering(s) or food < _CRITICAL):
            assert self.memory is not None
            while self.memory.cows:
                cow = min(self.memory.cows, key=lambda p: (abs(p[0] - s.pos[0]) + abs(p[1] - s.pos[1]), p))
                action = self._toward(s, self._cell_mask(cow), False, key=("cow", cow))
                if action is not None:
                    return "eat", action
                if sealed:
                    # Walled in, every walk is blocked by the room, not by the ground: dropping the sightings
                    # here forgot five cows 10 cells away at once (traced); keep them until the player is out.
                    break
                self.memory.cows.discard(cow)  # as close as it gets (across water, say): forget that sighting
        return None

    def _search_cows(self, s: State) -> int:
        """Walk toward the nearest grassland not seen for a while (or never seen): cows wander and respawn
        there. Routed over the remembered map, so lakes and ridges are walked round, not paced along."""
        assert self.memory is not None
        mem = self.memory
        stale = np.minimum(self._last_step - mem.last_seen, _STALE_CAP)
        grass = mem.known == MAT_ID["grass"]
        pasture = grass & (stale >= _STALE_MIN)
        frontier = grass
        for _ in range(_FRONTIER):
            frontier = dilate4(frontier)
        frontier &= mem.known == 0  # unseen ground next to grassland (not inside a mountain or a lake)
        score = np.where(pasture | frontier, stale, -np.inf)
        score = score - _STALE_PER_STEP * self._steps_away(s)
        best = np.unravel_index(int(np.argmax(score)), score.shape)
        if not np.isfinite(score[best]):
            return self._explore(s, "Cow")
        target = (int(best[0]), int(best[1]))
        kept = self._search_target
        if kept is not None and kept != target and score[kept] >= score[best] - _KEEP_SEARCH_MARGIN:
            # Two far targets of equal score swap places as the player steps toward either (the nearer one
            # wins each time): a starving player paced between two cells for 90 steps (traced). Keep heading
            # for the chosen one unless another has become clearly better.
            target = kept
        self._search_target = target
        action = self._toward(s, self._cell_mask(target), s.inv["wood_pickaxe"] > 0, key=("search", target))
        if action is None:
            # As close as it gets (water in the way): count its view as searched and pick another next time.
            x, y = target
            mem.last_seen[max(0, x - VIEW_HALF_X): x + VIEW_HALF_X + 1,
                          max(0, y - VIEW_HALF_Y): y + VIEW_HALF_Y + 1] = self._last_step
            return self._explore(s, "Cow")
        return action

    # ------------------------------------------------------------------ night, exhaustion, injury
    def _night_and_rest(self, s: State, sealed: bool) -> Decision | None:
        cfg = self.config
        health = s.inv["health"]
        if min(s.inv["food"], s.inv["drink"]) < _REST_SUPPLIES or health >= cfg.rest_health_until:
            self._resting = False  # health only regrows when fed and watered: restock before resting
        elif health < cfg.rest_health_below:
            self._resting = True
        if not self._sheltering(s, sealed):
            return None
        if sealed:
            action = self._seal_against_arrows(s)
            if action is not None:
                return "shelter", action
            return ("sleep", SLEEP) if s.inv["energy"] < MAX_ENERGY else ("shelter", NOOP)
        action = self._take_shelter(s)
        if action is not None:
            return "shelter", action
        if s.inv["energy"] < cfg.sleep_energy_below:
            return "sleep", SLEEP  # no room possible: sleep in the open rather than faint
        return None

    def _seal_against_arrows(self, s: State) -> int | None:
        """Sealed in, with a skeleton or arrow in view: wall up the water or lava walls too, which arrows fly
        over (measured: sleepers in rooms with a well shot from across the water)."""
        if s.inv["stone"] < 1 or not any(name in ("Skeleton", "Arrow") for name, _, _ in s.objects):
            return None
        # The pocket the player is sealed in, read off the map (not the room it chose), so this also works
        # from any state handed to `act` (DAgger).
        walk = WALK[s.mat]
        pocket = np.zeros_like(walk)
        pocket[s.start] = True
        for _ in range(ROOM_SIZE):
            pocket = dilate4(pocket) & walk
        ring = dilate4(pocket) & ~pocket
        cells = {(int(i), int(j)) for i, j in np.argwhere(pocket)}
        walls = {(int(i), int(j)) for i, j in np.argwhere(ring)}
        action = self._seal_from_inside(s, cells, walls, True)
        return None if action == NOOP else action

    def _take_shelter(self, s: State) -> int | None:
        """One step toward being sealed in a room: walk there, clear it, place walls; or get stones/pickaxe."""
        room = self._choose_room(s)
        if room is not None:
            action = self._build_room(s, *room)
            if action is not None:
                return action
        if s.inv["wood_pickaxe"] > 0:
            return self._gather_stone(s)
        return self._pursue(s, "make_wood_pickaxe")

    def _gather_stone(self, s: State) -> int | None:
        """Collect a stone for the walls, never one out of the walls of the room being built."""
        if s.inv["stone"] >= 9:
            return None
        walls = np.zeros_like(s.walk)
        if self._room is not None:
            for c in shelter_walls(s.local(self._room), self._room_kind):
                if s.inside(*c):
                    walls[c] = True
        self.current_step = "collect_stone"
        action = self._approach(s, s.mask("stone") & ~walls, dig=True, remember="stone", avoid=walls)
        return self._explore(s, "stone") if action is None else action

    def _choose_room(self, s: State) -> tuple[tuple[int, int], int] | None:
        """Window coordinates of the cheapest feasible shelter's anchor and its kind (a 2x2 room's top-left cell
        and ROOM_KIND, or with `pocket_shelter` a rock pocket's first cell and direction); the previous one if
        close.

        The search over all shelters in the window is redone every `_ROOM_RECHECK` steps; in between the chosen
        one is kept (building it changes its cost, not the choice)."""
        if self._room is not None and self._last_step - self._room_step < _ROOM_RECHECK:
            kept = s.local(self._room)
            if self._fits(s, kept, self._room_kind):
                return kept, self._room_kind
        self._room_step = self._last_step
        can_dig = s.inv["wood_pickaxe"] > 0
        passable = s.walk | (s.mask("stone") if can_dig else False)
        dist = distance_map(passable, s.start, max_iter=2 * self.config.nav_radius)
        weight = self.config.room_walk_weight_threatened
        if weight != 1.0 and any(name == "Zombie" for name, _, _ in s.objects):
            # Every step toward a far room is a step among the zombies: build closer while they are about.
            dist = np.where(dist < UNREACHABLE, np.round(dist * weight), UNREACHABLE).astype(np.int64)
        plants = self._targets(s, "Plant")
        costs = {ROOM_KIND: room_costs(s.mat, s.occupied & ~plants, plants, dist, s.inv["stone"], can_dig,
                                       self._world_edge(s))}
        if self.config.pocket_shelter:
            pockets = pocket_costs(s.mat, s.occupied & ~plants, plants, dist, s.inv["stone"], can_dig)
            costs.update(enumerate(pockets))
        best_cost, choice = np.inf, None
        for kind, c in costs.items():
            if np.isfinite(c).any():
                at = np.unravel_index(int(np.argmin(c)), c.shape)
                if c[at] < best_cost:
                    best_cost, choice = float(c[at]), ((int(at[0]), int(at[1])), kind)
        if choice is None:
            self._room = None
            return None
        if self._room is not None:
            kept = s.local(self._room)
            if self._fits(s, kept, self._room_kind) and costs.get(self._room_kind) is not None:
                kept_cost = costs[self._room_kind][kept]
                if kept_cost <= best_cost + _KEEP_ROOM_MARGIN:
                    choice = (kept, self._room_kind)
        (i, j), self._room_kind = choice
        self._room = (i + s.x0, j + s.y0)
        return choice

    @staticmethod
    def _fits(s: State, anchor: tuple[int, int], kind: int) -> bool:
        """Whether a shelter's cells lie inside the window (its walls may hang over its edge)."""
        return all(s.inside(*c) for c in shelter_cells(anchor, kind))

    def _build_room(self, s: State, anchor: tuple[int, int], kind: int = ROOM_KIND) -> int | None:
        """Walk into the shelter, clear its cells, then step around inside it facing and sealing each open wall.
        A pocket is walked into through an end, never dug into through the side walls it relies on."""
        cells = shelter_cells(anchor, kind)
        walls = shelter_walls(anchor, kind)
        can_dig = s.inv["wood_pickaxe"] > 0
        if s.start not in cells:
            passable = s.walk | (s.mask("stone") if can_dig else False)
            if kind != ROOM_KIND:  # (`passable` is a fresh array)
                for c in walls[2:]:  # a pocket's sides (its walls list the two ends first)
                    if s.inside(*c):
                        passable[c] = False
            goal = np.zeros_like(passable)
            for c in cells:
                goal[c] = passable[c]
            move = first_move(passable, goal, s.start, s.order, ties=self._ties)
            return None if move is None or move < 0 else self._step(s, move, can_dig)
        return self._seal_from_inside(s, set(cells), set(walls), exposed(s.mat, anchor))

    def _in_room(self, s: State) -> bool:
        return self._room is not None and s.pos in shelter_cells(self._room, self._room_kind)

    def _world_edge(self, s: State) -> tuple[bool, bool, bool, bool]:
        """Whether the window's left, right, top, bottom side is the world's edge."""
        assert self.memory is not None
        w, h = s.mat.shape
        area = self.memory.area
        return s.x0 == 0, s.x0 + w == area[0], s.y0 == 0, s.y0 + h == area[1]

    def _seal_from_inside(self, s: State, cells: set[tuple[int, int]], walls: set[tuple[int, int]],
                          shot: bool) -> int | None:
        """Inside the room: the first action of the shortest walk-and-turn sequence that faces a cell to act
        on (a room cell to clear, a wall to seal), searched over (cell, facing); None when nothing is left."""
        need = needs_stone(s.mat, shot)
        assert self.memory is not None
        area = self.memory.area

        def passable(c: tuple[int, int]) -> bool:
            return s.inside(*c) and bool(WALK[s.mat[c]]) and not s.occupied[c]

        def target(c: tuple[int, int]) -> bool:
            if c in cells:
                return not passable(c)
            if c not in walls or not (0 <= c[0] + s.x0 < area[0] and 0 <= c[1] + s.y0 < area[1]):
                return False  # beyond the world's edge: already a wall
            return not s.inside(*c) or bool(need[c])

        def in_flight(c: tuple[int, int]) -> bool:
            return self._creature_at(s, c) in ("Arrow", "Plant")  # gone soon, or never: work elsewhere first

        start = (s.start, s.facing)
        first: dict[tuple[tuple[int, int], int], int | None] = {start: None}
        queue = [start]
        blocked = False
        for pos, facing in queue:
            ahead = (pos[0] + DIRS[facing][0], pos[1] + DIRS[facing][1])
            if target(ahead):
                if in_flight(ahead):
                    blocked = True
                else:
                    action = first[(pos, facing)]
                    return self._act_on(s, ahead, cells) if action is None else action
            for d in s.order:
                nxt = (pos[0] + DIRS[d][0], pos[1] + DIRS[d][1])
                if nxt in cells and passable(nxt):
                    state = (nxt, d)  # walks in, facing on
                elif not passable(nxt):
                    state = (pos, d)  # blocked: the move only turns the player
                else:
                    continue  # an open wall: the move would walk out of the room
                if state not in first:
                    first[state] = MOVES[d] if first[(pos, facing)] is None else first[(pos, facing)]
                    queue.append(state)
        return NOOP if blocked else None

    def _act_on(self, s: State, c: tuple[int, int], cells: set[tuple[int, int]]) -> int | None:
        """Facing `c`: clear it (a room cell: dig stone, cut a tree, hit a cow) or wall it with a stone."""
        creature = self._creature_at(s, c)
        if creature is not None:
            return DO if creature in ("Cow", "Zombie") else NOOP  # an arrow in flight: wait
        if c in cells:
            return DO
        return PLACE_STONE if s.inv["stone"] > 0 else None

    @staticmethod
    def _creature_at(s: State, c: tuple[int, int]) -> str | None:
        for name, pos, _ in s.objects:
            if s.local(pos) == c:
                return name
        return None

    # ------------------------------------------------------------------ dusk
    def _prepare(self, s: State) -> Decision | None:
        """Be ready for the night (free play: always; task mode: at dusk): a wood pickaxe (to dig stone and
        out of the room), a sword (zombies take 5 bare-handed hits, 3 with wood), `shelter_stones` stones for
        the walls, and at dusk a meal (a night costs about 3 food)."""
        cfg = self.config
        if s.inv["wood_pickaxe"] < 1:
            return "shelter", self._pursue(s, "make_wood_pickaxe")
        if cfg.arm_near_table and not (s.inv["wood_sword"] or s.inv["stone_sword"] or s.inv["iron_sword"]):
            return "arm", self._pursue(s, "make_wood_sword")
        if s.inv["stone"] < cfg.shelter_stones:
            action = self._gather_stone(s)
            if action is not None:
                return "shelter", action
        if self._dusk and s.inv["food"] < cfg.restock_below:
            return "eat", self._search_cows(s)  # the night costs about 3 food
        return None

    def _weapon_to_make(self, s: State, task: str | None = None) -> str | None:
        """A better sword craftable at a table in reach (zombies take 5 bare-handed hits, 3 with wood).

        With `task`, only from wood and stone beyond what the task's own prerequisite tree still uses, so
        arming never sends the player back to the trees for the task."""
        inv = dict(s.inv)
        if task is not None and task != EXPLORE:
            need = total_need(task, inv, lambda stations: self._missing_stations(s, stations))
            for item in ("wood", "stone"):
                inv[item] -= need[item]
        if inv["wood"] < 1 or inv["stone_sword"] or inv["iron_sword"]:
            return None
        weapon = "stone_sword" if inv["stone"] >= 1 else None if inv["wood_sword"] else "wood_sword"
        if weapon is None:
            return None
        goal = s.walk & dilate8(s.mask("table"))
        return weapon if goal.any() and first_move(s.walk, goal, s.start, s.order, max_iter=8) is not None else None


