"""Bounded path search: numpy wavefronts over a small window of the *seen* map around the player.

A wavefront grows from the goal cells one ring per iteration (a handful of array ops on a ~25x25
window), and stops as soon as it touches the player, so the cost scales with the distance to the
nearest goal, never with the 64x64 world.
"""

from __future__ import annotations

import numpy as np

# Move actions in Crafter's order: move_left, move_right, move_up, move_down (x right, y down).
DIRS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))


def dilate4(a: np.ndarray) -> np.ndarray:
    """Cells equal to or 4-adjacent to a True cell."""
    out = a.copy()
    out[1:, :] |= a[:-1, :]
    out[:-1, :] |= a[1:, :]
    out[:, 1:] |= a[:, :-1]
    out[:, :-1] |= a[:, 1:]
    return out


def dilate8(a: np.ndarray) -> np.ndarray:
    """Cells whose 3x3 square holds a True cell (Crafter's `nearby(pos, 1)` for crafting stations)."""
    rows = a.copy()
    rows[1:, :] |= a[:-1, :]
    rows[:-1, :] |= a[1:, :]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def shifted(a: np.ndarray, d: tuple[int, int]) -> np.ndarray:
    """`out[c] = a[c + d]` (False where c + d leaves the array)."""
    dx, dy = d
    out = np.zeros_like(a)
    w, h = a.shape
    out[max(0, -dx): w - max(0, dx), max(0, -dy): h - max(0, dy)] = a[
        max(0, dx): w - max(0, -dx), max(0, dy): h - max(0, -dy)
    ]
    return out


def first_move(
    passable: np.ndarray, goal: np.ndarray, start: tuple[int, int], order: tuple[int, ...], max_iter: int = 64,
    ties: list[int] | None = None, length: list[int] | None = None,
) -> int | None:
    """Index into DIRS of the first move on a shortest path from `start` to a goal cell.

    Paths run over `passable` cells (goal cells must be passable too); returns -1 when `start` is a goal,
    None when no goal is reachable. Ties go to the first direction in `order` (e.g. the one faced), so
    the demonstrator keeps walking straight when it can, which is easier to imitate than zig-zags.
    With `ties`, the list is set to every direction that starts a shortest path (the returned one first);
    with `length`, to the path's length in steps.
    """
    sx, sy = start
    if goal[sx, sy]:
        return -1
    frontier = goal & passable
    visited = frontier.copy()
    w, h = passable.shape
    for steps in range(max_iter):
        if not frontier.any():
            return None
        grown = dilate4(frontier) & ~visited
        if grown[sx, sy]:
            best = [i for i in order if 0 <= sx + DIRS[i][0] < w and 0 <= sy + DIRS[i][1] < h
                    and frontier[sx + DIRS[i][0], sy + DIRS[i][1]]]
            if ties is not None:
                ties[:] = best
            if length is not None:
                length[:] = [steps + 1]
            return best[0]
        frontier = grown & passable
        visited |= frontier
    return None


UNREACHABLE = np.iinfo(np.int32).max


def distance_map(passable: np.ndarray, start: tuple[int, int], max_iter: int = 64,
                 stop: np.ndarray | None = None) -> np.ndarray:
    """Steps from `start` to every `passable` cell (UNREACHABLE elsewhere), by a wavefront from the player.

    Used to rank candidate shelter rooms by how far they are and to route over the remembered map; one
    array op per ring, like `first_move`. With `stop`, the wave ends at the first ring that reaches it.
    """
    dist = np.full(passable.shape, UNREACHABLE, np.int32)
    frontier = np.zeros(passable.shape, bool)
    frontier[start] = True
    dist[start] = 0
    visited = frontier.copy()
    for k in range(1, max_iter + 1):
        frontier = dilate4(frontier) & ~visited & passable
        if not frontier.any():
            break
        dist[frontier] = k
        visited |= frontier
        if stop is not None and (frontier & stop).any():
            break
    return dist


def backtrack(dist: np.ndarray, goal: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells of a shortest path from the wave's start (excluded) to `goal` (included), read off `dist`."""
    path = [goal]
    x, y = goal
    w, h = dist.shape
    for k in range(int(dist[goal]) - 1, 0, -1):
        for dx, dy in DIRS:
            nx, ny = x + dx, y + dy
            if 0 <= nx < w and 0 <= ny < h and dist[nx, ny] == k:
                x, y = nx, ny
                break
        path.append((x, y))
    return path[::-1]
