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
    passable: np.ndarray, goal: np.ndarray, start: tuple[int, int], order: tuple[int, ...], max_iter: int = 64
) -> int | None:
    """Index into DIRS of the first move on a shortest path from `start` to a goal cell.

    Paths run over `passable` cells (goal cells must be passable too); returns -1 when `start` is a goal,
    None when no goal is reachable. Ties go to the first direction in `order` (e.g. the one faced), so
    the demonstrator keeps walking straight when it can, which is easier to imitate than zig-zags.
    """
    sx, sy = start
    if goal[sx, sy]:
        return -1
    frontier = goal & passable
    visited = frontier.copy()
    w, h = passable.shape
    for _ in range(max_iter):
        if not frontier.any():
            return None
        grown = dilate4(frontier) & ~visited
        if grown[sx, sy]:
            for i in order:
                nx, ny = sx + DIRS[i][0], sy + DIRS[i][1]
                if 0 <= nx < w and 0 <= ny < h and frontier[nx, ny]:
                    return i
        frontier = grown & passable
        visited |= frontier
    return None
