"""What the demonstrator may know: the cells it has seen this episode and the creatures in view now.

Restricting targets to this knowledge keeps the demonstrator imitable from pixels: a policy that sees
the 9x7 local view (plus its own recurrent memory) can in principle predict every move it makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from crafter import constants

# Local view: 9x7 cells, player at column 4, row 3 (Crafter's LocalView offset is grid // 2).
VIEW_HALF_X, VIEW_HALF_Y = 4, 3
MAT_ID: dict[str, int] = {name: i + 1 for i, name in enumerate(constants.materials)}  # 0 = never seen
_SAME_COW = 4  # a cow seen this close to an earlier sighting is taken to be the same one


def material_lut(names: list[str] | tuple[str, ...], unknown: bool = False) -> np.ndarray:
    """Boolean lookup table over material ids: `lut[mat]` masks a whole window in one indexing op."""
    lut = np.zeros(256, bool)
    lut[[MAT_ID[n] for n in names]] = True
    lut[0] = unknown
    return lut


@dataclass
class WorldMemory:
    """Material ids of every cell seen so far (0 = never seen), when each was last in view, and where
    plants and cows were last seen.

    A cow seen earlier is remembered where it stood (cows wander slowly), so a hungry player can walk back
    to the herd it passed, as a person would; see `_track_cows` for when a sighting is dropped.
    """

    area: tuple[int, int]
    known: np.ndarray = field(init=False)
    plants: set[tuple[int, int]] = field(default_factory=set)
    cows: set[tuple[int, int]] = field(default_factory=set)

    last_seen: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.known = np.zeros(self.area, np.uint8)
        self.last_seen = np.full(self.area, -(10**6), np.int64)  # step each cell was last in view

    def observe(self, world: Any, pos: tuple[int, int], step: int = 0) -> list[tuple[str, tuple[int, int], Any]]:
        """Copy the 9x7 view into memory; return the visible creatures/objects as (class name, pos, obj)."""
        x, y = pos
        x0, x1 = max(0, x - VIEW_HALF_X), min(self.area[0], x + VIEW_HALF_X + 1)
        y0, y1 = max(0, y - VIEW_HALF_Y), min(self.area[1], y + VIEW_HALF_Y + 1)
        self.known[x0:x1, y0:y1] = world._mat_map[x0:x1, y0:y1]
        self.last_seen[x0:x1, y0:y1] = step
        ids = world._obj_map[x0:x1, y0:y1]
        self.plants = {p for p in self.plants if not (x0 <= p[0] < x1 and y0 <= p[1] < y1)}
        seen = []
        for i, j in zip(*np.nonzero(ids), strict=True):
            obj = world._objects[ids[i, j]]
            name = type(obj).__name__
            if name == "Player":
                continue
            p = (int(x0 + i), int(y0 + j))
            if name == "Plant":
                self.plants.add(p)
            seen.append((name, p, obj))
        self._track_cows([p for name, p, _ in seen if name == "Cow"], pos, (x0, x1, y0, y1))
        return seen

    def _track_cows(self, visible: list[tuple[int, int]], pos: tuple[int, int], view: tuple[int, ...]) -> None:
        """Keep a sighting until it is explained (a cow in view near it, taken to be the same one, which
        wandered) or checked (the player stood next to the spot and saw none): a cow that walked out of view
        is still close to where it was, so the hungry player goes there and looks round."""
        x0, x1, y0, y1 = view
        def explained(c: tuple[int, int]) -> bool:
            if not (x0 <= c[0] < x1 and y0 <= c[1] < y1):
                return False
            near_cow = any(abs(c[0] - v[0]) + abs(c[1] - v[1]) <= _SAME_COW for v in visible)
            return near_cow or abs(c[0] - pos[0]) + abs(c[1] - pos[1]) <= 1

        self.cows = {c for c in self.cows if not explained(c)} | set(visible)
