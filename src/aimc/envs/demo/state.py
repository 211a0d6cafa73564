"""What one `act()` call sees: action ids, material lookup tables and the per-step `State` snapshot.

Shared by the agent's primitive skills (`agent.py`) and its survival layer (`survival.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from crafter import constants

from aimc.envs.demo.memory import MAT_ID, material_lut
from aimc.envs.demo.navigation import DIRS

ACTION = {name: i for i, name in enumerate(constants.actions)}
NOOP, DO, SLEEP = ACTION["noop"], ACTION["do"], ACTION["sleep"]
PLACE_STONE = ACTION["place_stone"]
MOVES = tuple(ACTION[f"move_{d}"] for d in ("left", "right", "up", "down"))  # same order as navigation.DIRS
NOISE_ACTIONS = (NOOP, *MOVES, DO)
MINERALS = ("stone", "coal", "iron", "diamond")
UNDERGROUND = (*MINERALS, "Skeleton")  # goals found inside mountains: explore by tunnelling
WALK = material_lut(constants.walkable, unknown=True)  # unseen cells are assumed walkable (optimism)
BLOCK = material_lut([m for m in constants.materials if m not in constants.walkable])  # seen, not walkable
DOOR = material_lut(["grass", "sand", "path"])  # where a placed stone turns a walkable cell into a wall
BIOME = {"underground": material_lut(["stone", "path", "coal", "iron", "diamond"]),
         "grassland": material_lut(["grass", "tree"]),
         "shore": material_lut(["water", "sand"])}
MAX_ENERGY = constants.items["energy"]["max"]
MAX_DRINK = constants.items["drink"]["max"]
MAX_FOOD = constants.items["food"]["max"]
MAX_HEALTH = constants.items["health"]["max"]
MAX_ITEM = 9  # Crafter clamps every inventory count at 9


@dataclass
class State:
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

    def ahead(self) -> tuple[int, int]:
        """Window coordinates of the faced cell."""
        return self.start[0] + DIRS[self.facing][0], self.start[1] + DIRS[self.facing][1]
