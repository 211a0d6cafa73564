"""The demonstrator's survival layer on constructed situations: rooms, sleep, fights, arrows, water, cows."""

from __future__ import annotations

import numpy as np
import pytest
from crafter import objects

from aimc.core.errors import ConfigError
from aimc.envs import make
from aimc.envs.demo import CrafterDemonstrator, DemonstratorConfig
from aimc.envs.demo.memory import MAT_ID, WorldMemory
from aimc.envs.demo.shelter import enclosed, pocket_costs, pocket_size, room_costs, shelter_walls

NOOP, LEFT, RIGHT, UP, DOWN, DO, SLEEP = 0, 1, 2, 3, 4, 5, 6
MAKE_WOOD_PICKAXE, MAKE_WOOD_SWORD, MAKE_STONE_SWORD = 11, 14, 15
NIGHT_STEP = 190  # Crafter's clock: daylight is ~0.06 at step 190 of every 300
DAY_STEP = 60


def _clearing(seed: int, half: int = 6) -> object:
    """A Crafter world with an empty grass square round the player and no creatures in it."""
    env = make("crafter")
    env.reset(seed=seed)
    x, y = (int(v) for v in env.player.pos)
    for obj in list(env.world.objects):
        if obj is not env.player and abs(obj.pos[0] - x) <= half + 3 and abs(obj.pos[1] - y) <= half + 3:
            env.world.remove(obj)
    for i in range(x - half, x + half + 1):
        for j in range(y - half, y + half + 1):
            env.world[(i, j)] = "grass"
    return env

def _in_rock(seed: int) -> object:
    """A 5x5 grass pocket round the player inside solid rock (a cave, or a room dug into a hillside)."""
    env = _clearing(seed=seed, half=2)
    x, y = (int(v) for v in env.player.pos)
    for i in range(x - 8, x + 9):
        for j in range(y - 8, y + 9):
            if max(abs(i - x), abs(j - y)) > 2:
                env.world[(i, j)] = "stone"
    return env

def _play_until(env, demo: CrafterDemonstrator, done, steps: int) -> bool:
    """Let the demonstrator act for up to `steps` steps, stopping once `done()` holds; whether it did."""
    for _ in range(steps):
        env.step(demo.act(env))
        if done():
            return True
    return False


def _set_clock(env, step: int) -> None:
    """Jump Crafter's clock (daylight follows the step count) before the demonstrator first looks."""
    env.raw._step = step
    progress = (step / 300) % 1 + 0.3
    env.world.daylight = 1 - np.abs(np.cos(np.pi * progress)) ** 3


def _player_enclosed(env) -> bool:
    world = env.world
    walk = np.isin(world._mat_map, [world._mat_ids[m] for m in ("grass", "sand", "path") if m in world._mat_ids])
    return enclosed(walk, tuple(int(v) for v in env.player.pos))


def _walk(env, demo, actions) -> None:
    """Execute `actions` (not the demonstrator's), letting it look at every step as it would when playing."""
    for action in actions:
        demo.act(env)
        env.step(action)


def _zombie(env, pos) -> objects.Zombie:
    env.world[pos] = "grass"
    zombie = objects.Zombie(env.world, pos, env.player)
    env.world.add(zombie)
    return zombie


def test_tired_at_night_builds_a_room_on_open_grass_then_sleeps_in_it():
    env = _clearing(seed=3)
    _set_clock(env, NIGHT_STEP)
    inv = env.player.inventory
    inv.update(wood_pickaxe=1, stone=9, energy=2, wood_sword=1)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    goals = []
    for _ in range(40):
        action = demo.act(env)
        goals.append(demo.current_goal)
        if env.player.sleeping:
            assert _player_enclosed(env)  # never asleep in the open
        env.step(action)
        if env.player.sleeping:
            break
    assert env.player.sleeping, goals
    assert _player_enclosed(env)
    assert goals[0] == "shelter" and "sleep" in goals
    assert 1 <= 9 - env.player.inventory["stone"] <= 8  # walls placed (some may be trees at the clearing edge)


def test_night_room_uses_the_rock_it_is_dug_into():
    """Against rock the walls are mostly there: fewer stones go into the room than on open grass."""
    env = _in_rock(seed=3)
    _set_clock(env, NIGHT_STEP)
    env.player.inventory.update(wood_pickaxe=1, stone=2, energy=2)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert _play_until(env, demo, lambda: env.player.sleeping, 60) and _player_enclosed(env)


def test_stays_in_the_room_until_full_light_then_digs_out():
    env = _clearing(seed=5)
    _set_clock(env, NIGHT_STEP)
    env.player.inventory.update(wood_pickaxe=1, stone=9, energy=8)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    _play_until(env, demo, lambda: _player_enclosed(env) and not env.player.sleeping, 40)
    assert _player_enclosed(env)
    _set_clock(env, 280)  # dawn: daylight ~0.59, below morning_daylight
    for _ in range(5):
        action = demo.act(env)
        assert demo.current_goal in ("shelter", "sleep") and action in (NOOP, SLEEP), demo.current_goal
        env.step(action)
    _set_clock(env, 330)  # full day
    env.player.sleeping = False
    for _ in range(30):
        env.step(demo.act(env))
    assert not _player_enclosed(env)


def test_zombie_adjacent_is_fought_and_a_close_one_fled_when_weak():
    env = _clearing(seed=1)
    x, y = (int(v) for v in env.player.pos)
    _zombie(env, (x + 1, y))
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert demo.act(env) in (RIGHT, DO)
    assert demo.current_goal == "fight_zombie"

    env = _clearing(seed=1)
    _zombie(env, (x + 2, y))
    env.player.inventory["health"] = 2
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    action = demo.act(env)
    assert demo.current_goal == "flee" and action in (LEFT, UP, DOWN)


def test_zombie_across_a_rock_corner_is_not_chased():
    """Two cells away by Manhattan distance but five on foot: not worth leaving the way for (it dithered)."""
    env = _clearing(seed=1)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x - 1, y)] = "stone"
    env.world[(x, y + 1)] = "stone"
    _zombie(env, (x - 1, y + 1))
    _set_clock(env, DAY_STEP)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    demo.act(env)
    assert demo.current_goal != "fight_zombie"
    env.world[(x, y + 1)] = "grass"  # the corner opens: now it is two steps away and fought
    demo.act(env)
    assert demo.current_goal == "fight_zombie"


def test_sealed_room_with_a_well_is_walled_up_when_a_skeleton_shows():
    """Arrows fly over water: with a skeleton in view, the water wall of the room gets a stone."""
    env = _clearing(seed=7)
    x, y = (int(v) for v in env.player.pos)
    room = [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
    walls = [(x - 1, y), (x - 1, y + 1), (x + 2, y), (x + 2, y + 1), (x, y - 1), (x + 1, y - 1), (x, y + 2), (x + 1, y + 2)]
    for cell in walls:
        env.world[cell] = "stone"
    env.world[(x - 1, y)] = "water"
    env.world[(x - 2, y)] = "water"
    env.world[(x - 3, y)] = "path"
    _set_clock(env, NIGHT_STEP)
    env.player.inventory.update(stone=3, wood_pickaxe=1, energy=9)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert demo.act(env) in (NOOP, SLEEP)  # sealed, no skeleton: the well stays open
    env.world.add(objects.Skeleton(env.world, (x - 3, y), env.player))
    for _ in range(6):
        action = demo.act(env)
        assert demo.current_goal == "shelter"
        env.step(action)
        if env.world[(x - 1, y)][0] == "stone":
            break
    assert env.world[(x - 1, y)][0] == "stone"
    assert tuple(int(v) for v in env.player.pos) in room and _player_enclosed(env)


def test_a_cow_in_view_comes_before_topping_up_drink():
    env = _clearing(seed=8, half=8)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x - 3, y)] = "water"
    env.world.add(objects.Cow(env.world, (x + 4, y)))
    _set_clock(env, DAY_STEP)  # the calm of the day: drink 6 would be topped up
    env.player.inventory.update(food=4, drink=6)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert demo.act(env) == RIGHT and demo.current_goal == "eat"
    env.player.inventory["drink"] = 2  # really thirsty: water first
    demo.act(env)
    assert demo.current_goal == "drink"


@pytest.mark.parametrize("finish", [True, False])
def test_at_the_water_drinks_up_before_walking_off_to_a_remembered_cow(finish):
    """Hungry and thirsty at the water: with `finish_drink` it drinks to full before the cow search; without,
    it leaves after the first sips (drink 4 puts the remembered cow first), the pacing traced in starvations."""
    env = _clearing(seed=8, half=10)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x - 1, y)] = "water"
    _set_clock(env, DAY_STEP)
    env.player.inventory.update(food=3, drink=3)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0, finish_drink=finish), seed=0)
    demo.reset(env)
    demo.act(env)
    demo.memory.cows.add((x + 8, y))  # seen earlier, beyond the view now
    for _ in range(12):
        action = demo.act(env)
        if action == RIGHT:
            break
        env.step(action)
    assert action == RIGHT and demo.current_goal == "eat"  # off to the cow, full or not
    drink = env.player.inventory["drink"]
    assert drink == 9 if finish else 4 <= drink < 9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_thirsty_with_no_water_seen_searches_the_nearest_unseen_ground(seed):
    """No water seen yet and a lake just beyond the view: the search walks to the nearest never-seen ground
    (shores first), so it is found within a few dozen steps whatever heading the demonstrator would draw
    (traced: a heading walked until blocked passed a lake 8 cells from the start and died of thirst)."""
    env = _clearing(seed=3, half=16)
    x, y = (int(v) for v in env.player.pos)
    for i in range(x - 14, x - 7):
        for j in range(y - 2, y + 3):
            env.world[(i, j)] = "water"
    _set_clock(env, DAY_STEP)
    env.player.inventory["drink"] = 3
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=seed)
    demo.reset(env)
    for _ in range(40):
        _, _, _, _, info = env.step(demo.act(env))
        if "collect_drink" in info["events"]:
            break
    assert "collect_drink" in info["events"] and demo.current_goal == "drink"


def test_a_cow_search_keeps_its_target_between_two_equal_ones():
    """Two unseen cells of equal score, each nearer after the first step toward the other (stones make each way
    start toward the other's row): the search keeps the one it chose instead of pacing between the two (traced:
    a starving player stepped up and down between two cells for 90 steps)."""
    env = _clearing(seed=6, half=12)
    x, y = (int(v) for v in env.player.pos)
    for cell in ((x - 1, y), (x, y - 1), (x + 1, y + 1)):
        env.world[cell] = "stone"
    _set_clock(env, DAY_STEP)
    env.player.inventory["food"] = 2
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    demo.act(env)
    mem = demo.memory
    mem.known[:] = env.world._mat_map  # the whole map seen just now (no stale pasture) ...
    mem.last_seen[:] = env.raw._step
    mem.known[x - 6, y] = mem.known[x + 6, y + 1] = 0  # ... but two cells, 6 and 7 steps away
    visited = set()
    for _ in range(8):
        action = demo.act(env)
        assert demo.current_goal == "eat"
        env.step(action)
        visited.add(tuple(int(v) for v in env.player.pos))
    assert (x - 2, y + 1) in visited  # on its way to the first (until it comes into view), not pacing by the start


@pytest.mark.parametrize("world", [21046, 21170, 21189, 35056])
def test_free_play_never_paces_between_two_cells(world):
    """Worlds where the demonstrator once stepped back and forth between two cells for 37-56 steps (a route
    inside the search window that was a detour only because the window cropped the direct one, against the
    route over the remembered map; two cow-search targets trading places; a remembered stone that was a wall of
    the room being built): it never does so for more than a few steps now."""
    env = make("crafter")
    env.reset(seed=world)
    demo = CrafterDemonstrator(seed=world)
    demo.reset(env)
    cells: list[tuple[int, int]] = []
    run = longest = 0
    for _ in range(1000):
        terminated = env.step(demo.act(env))[2]
        cells.append((int(env.player.pos[0]), int(env.player.pos[1])))
        run = run + 1 if len(cells) >= 3 and cells[-1] == cells[-3] != cells[-2] else 0
        longest = max(longest, run)
        if terminated:
            break
    assert longest <= 10


def test_sealed_in_and_hungry_the_remembered_cows_are_kept_until_out():
    """By day in a sealed room, hungry, with a cow remembered 10 cells away: the room's walls block every walk, which
    is no reason to forget the cow (it once dropped five sightings at once); the player digs out and heads for it."""
    env = _clearing(seed=7, half=12)
    x, y = (int(v) for v in env.player.pos)
    _sealed_room(env)
    _set_clock(env, DAY_STEP)
    env.player.inventory.update(food=2, wood_pickaxe=1, stone=2)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    demo.act(env)
    demo.memory.cows.add((x + 10, y))
    env.step(demo.act(env))
    assert (x + 10, y) in demo.memory.cows
    for _ in range(30):
        env.step(demo.act(env))
        if not _player_enclosed(env) and int(env.player.pos[0]) >= x + 4:
            break
    assert int(env.player.pos[0]) >= x + 4 and demo.current_goal == "eat"


def test_steps_out_of_the_line_of_an_incoming_arrow():
    env = _clearing(seed=2)
    x, y = (int(v) for v in env.player.pos)
    env.world.add(objects.Arrow(env.world, (x + 3, y), (-1, 0)))
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    action = demo.act(env)
    assert demo.current_goal == "flee" and action in (UP, DOWN)
    health = env.player.health
    for _ in range(4):
        env.step(action if _ == 0 else NOOP)
    assert env.player.health == health  # the arrow flew past


def test_never_steps_into_the_cell_an_arrow_flies_into_next():
    """The player moves before the arrow: walking into its next cell is a hit (2 health); waiting is not."""
    env = _clearing(seed=2)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 3, y)] = "water"
    env.player.inventory["drink"] = 2  # thirsty: the water to the right is the way
    env.world.add(objects.Arrow(env.world, (x + 1, y - 2), (0, 1)))  # flying down, into (x+1, y) in 2 steps
    _set_clock(env, DAY_STEP)
    plain = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0, avoid_arrows=False), seed=0)
    plain.reset(env)
    assert plain.act(env) == RIGHT  # not yet in its next cell: the move is allowed either way
    env.step(NOOP)  # the arrow is now at (x+1, y-1): its next cell is the one to the right
    assert plain.act(env) == RIGHT
    careful = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    careful.reset(env)
    assert careful.act(env) == NOOP and careful.expert_action == NOOP
    health = env.player.health
    for _ in range(2):
        env.step(NOOP)  # the arrow passes in front of the player
    assert env.player.health == health
    assert careful.act(env) == RIGHT  # the way is clear again


def test_thirsty_by_day_goes_to_remembered_water_beyond_the_view():
    env = _clearing(seed=4, half=8)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 6, y)] = "water"
    env.player.inventory["drink"] = 8
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    _set_clock(env, DAY_STEP)
    demo.act(env)
    assert not (demo.memory.known == MAT_ID["water"]).any()  # 6 cells away: outside the 9x7 view
    _walk(env, demo, [RIGHT, RIGHT, LEFT, LEFT, LEFT, LEFT])  # it comes into view, then out of it again
    assert (demo.memory.known == MAT_ID["water"]).any()
    env.player.inventory["drink"] = 2
    drank = False
    for _ in range(20):
        action = demo.act(env)
        _, _, _, _, info = env.step(action)
        if "collect_drink" in info["events"]:
            assert demo.current_goal == "drink"
            drank = True
            break
    assert drank


def test_hungry_walks_back_to_a_cow_seen_earlier():
    env = _clearing(seed=6, half=10)
    x, y = (int(v) for v in env.player.pos)
    cow = objects.Cow(env.world, (x + 3, y))
    env.world.add(cow)
    _set_clock(env, DAY_STEP)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    demo.act(env)
    assert (x + 3, y) in demo.memory.cows or any(abs(c[0] - x - 3) + abs(c[1] - y) <= 1 for c in demo.memory.cows)
    _walk(env, demo, [LEFT, LEFT, LEFT, LEFT])  # the cow is now out of view
    env.world.move(cow, (x + 6, y + 1))  # and wanders a little, as cows do
    env.player.inventory["food"] = 2
    ate = False
    for _ in range(40):
        _, _, _, _, info = env.step(demo.act(env))
        if "eat_cow" in info["events"]:
            ate = True
            break
    assert ate


def test_cow_sightings_are_kept_until_explained_or_checked():
    mem = WorldMemory((64, 64))
    mem.cows = {(40, 40), (12, 12), (30, 31)}
    view = (26, 35, 27, 34)  # x0, x1, y0, y1 of a 9x7 view round (30, 30)
    mem._track_cows([(31, 29)], (30, 30), view)
    # (40, 40) is out of view: kept; (30, 31) is next to the player and explained by the cow at (31, 29).
    assert mem.cows == {(40, 40), (12, 12), (31, 29)}
    mem.cows = {(33, 32)}
    mem._track_cows([], (30, 30), view)
    assert mem.cows == {(33, 32)}  # in view, no cow, not checked up close: it may have walked just out
    mem._track_cows([], (33, 31), view)
    assert mem.cows == set()


def _far_room_in_rock(env) -> tuple[int, int]:
    """A ready-made room in a rock face 10 cells right of the player, its only gap facing a grass corridor:
    one stone seals it. Returns its top-left cell."""
    x, y = (int(v) for v in env.player.pos)
    for i in range(x + 7, x + 14):
        for j in range(y - 3, y + 5):
            env.world[(i, j)] = "stone"
    for cell in [(x + 7, y), (x + 8, y), (x + 9, y), (x + 10, y), (x + 11, y), (x + 10, y + 1), (x + 11, y + 1)]:
        env.world[cell] = "grass"
    return x + 10, y


@pytest.mark.parametrize("zombie", [False, True])
def test_with_zombies_about_the_night_room_is_built_close(zombie):
    """Alone, the ready room 10 cells away is cheapest (one stone against eight); with a zombie in view, the
    walk counts three times over and the room is built where the player stands."""
    env = _clearing(seed=3, half=12)  # open grass all over the window, but for the rock face
    far = _far_room_in_rock(env)
    x, y = (int(v) for v in env.player.pos)
    if zombie:
        _zombie(env, (x - 3, y - 2))  # in view, five cells away: not a fight yet
    _set_clock(env, NIGHT_STEP)
    env.player.inventory.update(stone=9, wood_sword=1, energy=5)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    demo.memory.observe(env.world, (x + 9, y))  # it passed the rock face earlier: the room is known
    demo.act(env)
    assert demo.current_goal == "shelter"
    if zombie:
        assert abs(demo._room[0] - x) <= 2 and abs(demo._room[1] - y) <= 2, demo._room
    else:
        assert demo._room == far


def test_room_costs_count_the_walls_to_seal():
    grass, stone = MAT_ID["grass"], MAT_ID["stone"]
    mat = np.full((12, 12), grass, np.uint8)
    free = np.zeros_like(mat, bool)
    dist = np.zeros(mat.shape, np.int32)
    # On open grass a room needs 8 stones: 7 are not enough.
    assert np.isfinite(room_costs(mat, free, free, dist, stones=8, can_dig=False)).any()
    assert not np.isfinite(room_costs(mat, free, free, dist, stones=7, can_dig=False)).any()
    # A 2x2 pocket cut into rock needs none, and with a pickaxe rock itself can be dug into a room.
    rock = np.full((12, 12), stone, np.uint8)
    rock[5:7, 5:7] = grass
    costs = room_costs(rock, free, free, dist, stones=0, can_dig=False)
    assert np.isfinite(costs[5, 5]) and np.isinf(np.delete(costs.ravel(), 5 * 11 + 5)).all()
    assert np.isfinite(room_costs(np.full((12, 12), stone, np.uint8), free, free, dist, 0, True)).all()
    # The world's edge walls a room like rock.
    edge = room_costs(mat, free, free, dist, stones=6, can_dig=False, world_edge=(True, False, True, False))
    assert np.isfinite(edge[0, 0]) and np.isinf(edge[5, 5])


def test_pocket_costs_need_solid_sides_and_count_the_ends():
    grass, stone, water = MAT_ID["grass"], MAT_ID["stone"], MAT_ID["water"]
    free = np.zeros((12, 12), bool)
    dist = np.full((12, 12), 3, np.int64)
    # A rock face at x >= 6 with open grass in front: a pocket dug straight in (A = (6, 5), d = right) takes one
    # stone (the entrance; the far end is rock), with two cells to dig; without a pickaxe it cannot be dug.
    mat = np.full((12, 12), grass, np.uint8)
    mat[6:, :] = stone
    right = 1
    costs = pocket_costs(mat, free, free, dist, stones=1, can_dig=True)
    assert costs[right, 6, 5] == 3 + 1 + 2 * 2 + 2 * 1 + 0.25 * 24  # walk, step in, dig 2, seal 1, grass round it
    assert np.isinf(pocket_costs(mat, free, free, dist, stones=1, can_dig=False)).all()
    assert np.isfinite(pocket_costs(mat, free, free, dist, stones=0, can_dig=True)[right, 6, 5])  # dug stone seals
    # Along the face (d = down), A's left side would be open grass, which cannot be sealed from inside.
    assert np.isinf(costs[3, 6, 5])
    # An open 1x2 corridor through rock: both ends take a stone; a water side counts as solid away from
    # skeletons (no path near), and the walls list the ends first.
    mat = np.full((12, 12), stone, np.uint8)
    mat[3:9, 5] = grass
    mat[5, 4] = water
    costs = pocket_costs(mat, free, free, dist, stones=2, can_dig=False)
    assert np.isfinite(costs[right, 5, 5]) and np.isinf(costs[right, 2, 5])  # (2, 5): its first cell is rock
    assert np.isinf(pocket_costs(mat, free, free, dist, stones=1, can_dig=False)[right, 5, 5])
    assert shelter_walls((5, 5), right)[:2] == [(4, 5), (7, 5)]


def test_at_night_by_a_rock_face_a_pocket_is_dug_and_slept_in():
    """With `pocket_shelter` the player digs two cells into the rock, walls the entrance and sleeps: fewer
    steps and stones than the 2x2 room it builds there otherwise."""
    used = {}
    for pocket in (False, True):
        env = _clearing(seed=3)
        x, y = (int(v) for v in env.player.pos)
        for i in range(x + 2, x + 9):
            for j in range(y - 8, y + 9):
                env.world[(i, j)] = "stone"
        _set_clock(env, NIGHT_STEP)
        env.player.inventory.update(wood_pickaxe=1, stone=3, energy=2, wood_sword=1)
        demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0, pocket_shelter=pocket), seed=0)
        demo.reset(env)
        assert _play_until(env, demo, lambda env=env: env.player.sleeping, 40) and _player_enclosed(env)
        used[pocket] = env.player._hunger  # steps awake since reset: hunger grows 1 per step awake
        if pocket:
            walk = np.isin(env.world._mat_map, [env.world._mat_ids[m] for m in ("grass", "sand", "path")])
            assert pocket_size(walk, tuple(int(v) for v in env.player.pos)) == 2
    assert used[True] < used[False]


def test_pocket_size_and_enclosed():
    walk = np.zeros((8, 8), bool)
    walk[2:4, 2:4] = True
    assert pocket_size(walk, (2, 2)) == 4 and enclosed(walk, (2, 2))
    walk[4, 2] = True
    assert not enclosed(walk, (2, 2))


def test_survival_run_is_deterministic_through_dusk_and_night():
    def run(seed: int) -> list[tuple[int, str]]:
        env = make("crafter")
        env.reset(seed=seed)
        demo = CrafterDemonstrator(seed=seed)
        demo.reset(env)
        out = []
        for _ in range(260):
            action = demo.act(env)
            out.append((action, demo.current_goal))
            if env.step(action)[2]:
                break
        return out

    first = run(11)
    assert first == run(11)
    assert {"shelter", "sleep"} & {goal for _, goal in first}


@pytest.mark.parametrize(
    "kwargs", [{"rest_health_below": 7, "rest_health_until": 5}, {"shelter_stones": 10}, {"rest_health_until": 10}]
)
def test_bad_survival_config_is_rejected(kwargs):
    with pytest.raises(ConfigError):
        DemonstratorConfig(**kwargs)


def _sealed_room(env) -> list[tuple[int, int]]:
    """Wall a 2x2 room with stone round the player (top-left cell); returns its cells."""
    x, y = (int(v) for v in env.player.pos)
    for dx, dy in ((-1, 0), (-1, 1), (2, 0), (2, 1), (0, -1), (1, -1), (0, 2), (1, 2)):
        env.world[(x + dx, y + dy)] = "stone"
    return [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]


def _look(env, demo, steps) -> int:
    """Let the demonstrator look at the clock steps in `steps` (so it sees the light grow or fade); the last action."""
    action = NOOP
    for step in steps:
        _set_clock(env, step)
        action = demo.act(env)
    return action


def _at_table(task: str, **cfg) -> tuple[object, CrafterDemonstrator]:
    """Daytime, a table next to the player, one wood held, and a task-mode demonstrator for `task`."""
    env = _clearing(seed=9)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 1, y)] = "table"
    _set_clock(env, DAY_STEP)
    env.player.inventory.update(wood=1)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0, mode="task", task=task, **cfg), seed=0)
    demo.reset(env)
    return env, demo


def test_task_mode_crafts_a_sword_at_a_table_from_spare_wood_only():
    env, demo = _at_table("collect_drink")
    assert demo.act(env) == MAKE_WOOD_SWORD and demo.current_goal == "arm"
    env.step(MAKE_WOOD_SWORD)
    assert env.player.inventory["wood_sword"] == 1
    env.player.inventory.update(wood=1, stone=1)
    assert demo.act(env) == MAKE_STONE_SWORD and demo.current_goal == "arm"  # then the stone one
    # The task's own wood is not spent: make_wood_pickaxe needs this one.
    env, demo = _at_table("make_wood_pickaxe")
    assert demo.act(env) == MAKE_WOOD_PICKAXE and demo.current_goal == "make_wood_pickaxe"
    env, demo = _at_table("collect_drink", arm_in_task_mode=False)
    demo.act(env)
    assert demo.current_goal != "arm"


def test_a_rest_sealed_in_by_day_ends_in_the_afternoon_not_the_next_morning():
    env = _clearing(seed=5)
    room = _sealed_room(env)
    env.player.inventory.update(wood_pickaxe=1, energy=9, health=9)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    _look(env, demo, (120, 125))  # the light fades (~0.79 to 0.75): an afternoon, not a morning
    assert demo.current_goal not in ("shelter", "sleep")
    for _ in range(20):
        env.step(demo.act(env))
    assert tuple(int(v) for v in env.player.pos) not in room


def test_stays_sealed_in_the_morning_while_a_zombie_waits_outside():
    env = _clearing(seed=5)
    room = _sealed_room(env)
    x, y = room[0]
    env.player.inventory.update(wood_pickaxe=1, energy=9)
    zombie = _zombie(env, (x - 2, y))
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    assert _look(env, demo, (310, 315)) == NOOP and demo.current_goal == "shelter"  # full light, zombie by the wall
    env.world.remove(zombie)
    _look(env, demo, (316,))
    assert demo.current_goal != "shelter"  # gone: out to the day's work


def test_thirsty_in_a_closed_cave_tunnels_to_water_in_view():
    env = _in_rock(seed=4)
    x, y = (int(v) for v in env.player.pos)
    env.world[(x + 4, y)] = "water"  # two cells of rock away, in view
    _set_clock(env, DAY_STEP)
    env.player.inventory.update(wood_pickaxe=1, drink=2)
    demo = CrafterDemonstrator(DemonstratorConfig(noise_prob=0.0), seed=0)
    demo.reset(env)
    for _ in range(10):
        action = demo.act(env)
        assert demo.current_goal == "drink"
        if "collect_drink" in env.step(action)[4]["events"]:
            break
    assert env.player.inventory["drink"] == 3
