"""Shelter geometry: a 2x2 room whose 8 wall cells the player can seal from inside.

Crafter turns the player toward a cell only by trying to walk into it: a move into a free cell walks. So a
wall cell W can be faced only from the room cell next to it, right after stepping into that cell from the
room cell on the opposite side. In a 2x2 room every wall cell has such a pair (walking around the room one
way faces four walls, the other way the other four), so the room is sealable anywhere with at most 8
stones, and needs fewer where trees, water, stone or tables already wall it in. A 1- or 2-cell pocket has
walls that can only be faced from outside, which is why the room is 2x2.

Zombies spawn at least 6 cells from the player and only walk on grass, sand and path, so a sealed room is
safe for the night; sleeping outside one is not (a zombie hits a sleeper for 7 of 9 health).
"""

from __future__ import annotations

import numpy as np

from aimc.envs.demo.memory import MAT_ID, material_lut
from aimc.envs.demo.navigation import DIRS, UNREACHABLE, dilate4

ROOM: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1))
WALLS: tuple[tuple[int, int], ...] = ((-1, 0), (-1, 1), (2, 0), (2, 1), (0, -1), (1, -1), (0, 2), (1, 2))
ROOM_SIZE = len(ROOM)

_OPEN = material_lut(["grass", "sand", "path"])  # a zombie can walk there: a room cell, or a wall still to seal
# Wall cells a stone must seal: walkable ones and never-seen ones; where skeletons are about (path, their
# ground, within _ARROW_RADIUS of the room), water and lava too, which arrows fly over. A water wall left
# open is a well: the player drinks from inside the room.
_NEEDS_STONE = material_lut(["grass", "sand", "path"], unknown=True)
_NEEDS_STONE_SHOT = material_lut(["grass", "sand", "path", "water", "lava"], unknown=True)
_ARROW_RADIUS = 6
_WATER_BONUS = 6.0  # a well in the wall saves the walks to water
_SHOT_COST = 10.0  # building next to skeleton ground means building under fire
_CLEARABLE = material_lut(["tree"])  # `do` turns a tree into grass: a room cell cleared without a pickaxe
_DIG_COST = 2.0  # actions to clear a room cell (face it, `do`), per cell
_STONE_COST = 2.0  # actions to seal a wall cell (step to face it, place), per cell
# Zombies spawn on grass (in grass-rich 12x12 chunks) and gather round the room all night, to be fought in
# the morning; skeletons spawn on path (caves, tunnels) and shoot: a room costs this much more per grass or
# path cell within `_PASTURE_RADIUS` of it.
_PASTURE_RADIUS, _PASTURE_COST = 4, 0.25


def pocket_size(walkable: np.ndarray, start: tuple[int, int], limit: int = ROOM_SIZE) -> int:
    """Cells in the walkable region around `start`, counted up to `limit + 1` (more means "open")."""
    region = np.zeros_like(walkable)
    region[start] = True
    count = 1
    while count <= limit:
        grown = dilate4(region) & walkable
        grown_count = int(grown.sum())
        if grown_count == count:
            return count
        region, count = grown, grown_count
    return count


def enclosed(walkable: np.ndarray, start: tuple[int, int]) -> bool:
    """True when the player's walkable region (creatures ignored: they move) is at most a 2x2 room."""
    return pocket_size(walkable, start) <= ROOM_SIZE


def needs_stone(mat: np.ndarray, shot: bool = True) -> np.ndarray:
    """Wall cells a zombie could walk through or never seen, and with `shot` water and lava (arrows fly
    over them): each takes one placed stone."""
    return (_NEEDS_STONE_SHOT if shot else _NEEDS_STONE)[mat]


def exposed(mat: np.ndarray, top_left: tuple[int, int]) -> bool:
    """Whether skeleton ground (path) lies within `_ARROW_RADIUS` of the room (same box as `room_costs`)."""
    i, j = top_left
    r = _ARROW_RADIUS
    box = mat[max(0, i - r + 1): i + r + 1, max(0, j - r + 1): j + r + 1]
    return bool((box == MAT_ID["path"]).any())


def room_costs(mat: np.ndarray, occupied: np.ndarray, plants: np.ndarray, dist: np.ndarray, stones: int,
               can_dig: bool, world_edge: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> np.ndarray:
    """Cost of sheltering in the room with top-left cell (i, j), for every (i, j); inf where infeasible.

    A room is feasible when its cells are open ground (or stone with a pickaxe, or trees, both cleared by
    `do`), no plant sits on it or its walls, and the stones held plus those dug out of the room cover the
    walls to seal. Cost ~ actions: walking distance + 2 per cell to clear + 2 per stone to place, plus a
    little per grass or path cell around it (zombie and skeleton ground), minus a bonus for a well. `world_edge` (left, right, top, bottom): the window
    ends at the world's edge there, which walls a room like rock (nothing walks or flies beyond it).
    """
    w, h = mat.shape
    stone = mat == MAT_ID["stone"]
    free = ~occupied
    cell_ok = (_OPEN[mat] & free) | _CLEARABLE[mat] | (stone & can_dig)

    def view(a: np.ndarray, dx: int, dy: int, fill: object) -> np.ndarray:
        """a[i + dx, j + dy] for every top-left (i, j); walls may hang one cell over the window's edge."""
        p = np.pad(a, 1, constant_values=fill)
        return p[1 + dx: w + dx, 1 + dy: h + dy]  # (w-1, h-1)

    ok = np.ones((w - 1, h - 1), bool)
    dug = np.zeros((w - 1, h - 1), np.int32)
    cleared = np.zeros((w - 1, h - 1), np.int32)
    near = np.full((w - 1, h - 1), UNREACHABLE, np.int64)
    for dx, dy in ROOM:
        ok &= view(cell_ok, dx, dy, False) & ~view(plants, dx, dy, False)
        dug += view(stone & can_dig, dx, dy, False)
        cleared += view(_CLEARABLE[mat] | (stone & can_dig), dx, dy, False)
        near = np.minimum(near, view(dist, dx, dy, UNREACHABLE))
    shot = _box_sum(mat == MAT_ID["path"], _ARROW_RADIUS)[: w - 1, : h - 1] > 0
    need = np.zeros((w - 1, h - 1), np.int32)
    well = np.zeros((w - 1, h - 1), bool)
    for always, table in ((True, _NEEDS_STONE), (False, _NEEDS_STONE_SHOT & ~_NEEDS_STONE)):
        outside = np.pad(table[mat], 1, constant_values=always)
        for side, edge in zip((np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]), world_edge, strict=True):
            if edge:
                outside[side] = False
        for dx, dy in WALLS:
            cells = outside[1 + dx: w + dx, 1 + dy: h + dy]
            need += cells if always else cells & shot
    for dx, dy in WALLS:
        ok &= ~view(plants, dx, dy, False)
        well |= view(mat == MAT_ID["water"], dx, dy, False)
    ok &= (need <= np.minimum(9, stones + dug)) & (near < UNREACHABLE)
    pasture = _box_sum((mat == MAT_ID["grass"]) | (mat == MAT_ID["path"]), _PASTURE_RADIUS)[: w - 1, : h - 1]
    cost = (near + _DIG_COST * cleared + _STONE_COST * need + _PASTURE_COST * pasture
            - _WATER_BONUS * (well & ~shot) + _SHOT_COST * shot)
    return np.where(ok, cost.astype(float), np.inf)


# A pocket: two cells A, B = A + d in a line, whose four side cells are already solid, so that only its two ends
# (E = A - d, F = B + d) can need a stone, and both can be faced from inside: walking from B back into A faces E,
# walking from A into B faces F. The side cells cannot be faced from inside while open (a move toward a free cell
# walks), which is why they must be solid before the pocket is chosen. Lava never counts as a side (a move into
# it kills); water only where no skeleton shoots across it.
_SIDE = material_lut(["stone", "tree", "table", "furnace", "coal", "iron", "diamond"])
_SIDE_DRY = material_lut(["stone", "tree", "table", "furnace", "coal", "iron", "diamond", "water"])
ROOM_KIND = -1
"""`kind` of a 2x2 room; a pocket's kind is its direction d (an index into navigation.DIRS)."""


def pocket_costs(mat: np.ndarray, occupied: np.ndarray, plants: np.ndarray, dist: np.ndarray, stones: int,
                 can_dig: bool) -> np.ndarray:
    """Cost of sheltering in the pocket with first cell A = (i, j) and direction d, as `costs[d, i, j]`; inf where
    infeasible. Costed like `room_costs` (walk + 2 per cell to clear + 2 per stone, plus the grass and path
    around it), with the walk counted to an end cell the player can step in from (E or F, open ground), so the
    approach never digs through a side wall. Pockets lie wholly inside the window (no world-edge case)."""
    w, h = mat.shape
    free = ~occupied
    dug_cell = (mat == MAT_ID["stone"]) & can_dig
    cleared_cell = _CLEARABLE[mat] | dug_cell
    cell_ok = ((_OPEN[mat] & free) | cleared_cell) & ~plants
    shot = _box_sum(mat == MAT_ID["path"], _ARROW_RADIUS) > 0
    open_end = _OPEN[mat] & free & ~plants
    pasture = _box_sum((mat == MAT_ID["grass"]) | (mat == MAT_ID["path"]), _PASTURE_RADIUS)

    def at(a: np.ndarray, ox: int, oy: int, fill: object) -> np.ndarray:
        """a[i + ox, j + oy] for every first cell (i, j), `fill` beyond the window."""
        p = np.pad(a, 3, constant_values=fill)
        return p[3 + ox: 3 + ox + w, 3 + oy: 3 + oy + h]

    out = np.full((4, w, h), np.inf)
    for k, (dx, dy) in enumerate(DIRS):
        px, py = dy, dx  # perpendicular
        ok = cell_ok & at(cell_ok, dx, dy, False)
        for ox, oy in ((px, py), (-px, -py), (dx + px, dy + py), (dx - px, dy - py)):
            ok &= np.where(shot, at(_SIDE[mat], ox, oy, False), at(_SIDE_DRY[mat], ox, oy, False))
        need = np.zeros((w, h), np.int32)
        near = np.full((w, h), UNREACHABLE, np.int64)
        for ox, oy in ((-dx, -dy), (2 * dx, 2 * dy)):  # the two ends
            end_mat = at(mat, ox, oy, 0)
            need += np.where(shot, _NEEDS_STONE_SHOT[end_mat], _NEEDS_STONE[end_mat])
            ok &= ~at(plants, ox, oy, True) & (end_mat != MAT_ID["lava"]) & (end_mat != 0)
            near = np.minimum(near, np.where(at(open_end, ox, oy, False), at(dist, ox, oy, UNREACHABLE), UNREACHABLE))
        dug = dug_cell.astype(np.int32) + at(dug_cell, dx, dy, False)
        cleared = cleared_cell.astype(np.int32) + at(cleared_cell, dx, dy, False)
        ok &= (need <= np.minimum(9, stones + dug)) & (near < UNREACHABLE)
        cost = near + 1 + _DIG_COST * cleared + _STONE_COST * need + _PASTURE_COST * pasture + _SHOT_COST * shot
        out[k] = np.where(ok, cost.astype(float), np.inf)
    return out


def shelter_cells(anchor: tuple[int, int], kind: int) -> list[tuple[int, int]]:
    """The cells of a room (`kind` ROOM_KIND, `anchor` its top-left) or of a pocket (`kind` d, `anchor` A)."""
    if kind == ROOM_KIND:
        return room_cells(anchor)
    dx, dy = DIRS[kind]
    return [anchor, (anchor[0] + dx, anchor[1] + dy)]


def shelter_walls(anchor: tuple[int, int], kind: int) -> list[tuple[int, int]]:
    """The cells round a room or a pocket that keep zombies out (for a pocket: both ends, then the four sides)."""
    if kind == ROOM_KIND:
        return wall_cells(anchor)
    (ax, ay), (dx, dy) = anchor, DIRS[kind]
    px, py = dy, dx
    return [(ax - dx, ay - dy), (ax + 2 * dx, ay + 2 * dy), (ax + px, ay + py), (ax - px, ay - py),
            (ax + dx + px, ay + dy + py), (ax + dx - px, ay + dy - py)]


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """out[i, j] = number of True cells in a[i-r+1 .. i+r, j-r+1 .. j+r] (a box round the room at (i, j))."""
    w, h = a.shape
    c = np.zeros((w + 2 * r + 1, h + 2 * r + 1), np.int32)
    c[r + 1: r + 1 + w, r + 1: r + 1 + h] = a
    c = c.cumsum(0).cumsum(1)
    lo_x, hi_x = np.arange(w) + 1, np.arange(w) + 2 * r + 1
    lo_y, hi_y = np.arange(h) + 1, np.arange(h) + 2 * r + 1
    return (c[hi_x][:, hi_y] - c[lo_x][:, hi_y] - c[hi_x][:, lo_y] + c[lo_x][:, lo_y])


def room_cells(top_left: tuple[int, int]) -> list[tuple[int, int]]:
    i, j = top_left
    return [(i + dx, j + dy) for dx, dy in ROOM]


def wall_cells(top_left: tuple[int, int]) -> list[tuple[int, int]]:
    i, j = top_left
    return [(i + dx, j + dy) for dx, dy in WALLS]

