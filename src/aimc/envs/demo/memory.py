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


def material_lut(names: list[str] | tuple[str, ...], unknown: bool = False) -> np.ndarray:
    """Boolean lookup table over material ids: `lut[mat]` masks a whole window in one indexing op."""
    lut = np.zeros(256, bool)
    lut[[MAT_ID[n] for n in names]] = True
    lut[0] = unknown
    return lut


@dataclass
class WorldMemory:
    """Material ids of every cell seen so far (0 = never seen), plus the positions of seen plants."""

    area: tuple[int, int]
    known: np.ndarray = field(init=False)
    plants: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.known = np.zeros(self.area, np.uint8)

    def observe(self, world: Any, pos: tuple[int, int]) -> list[tuple[str, tuple[int, int], Any]]:
        """Copy the 9x7 view into memory; return the visible creatures/objects as (class name, pos, obj)."""
        x, y = pos
        x0, x1 = max(0, x - VIEW_HALF_X), min(self.area[0], x + VIEW_HALF_X + 1)
        y0, y1 = max(0, y - VIEW_HALF_Y), min(self.area[1], y + VIEW_HALF_Y + 1)
        self.known[x0:x1, y0:y1] = world._mat_map[x0:x1, y0:y1]
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
        return seen
