"""The observation/info contract every world backend implements, and the `make(name)` factory.

Contract (documented in docs/architecture.md, so a real-Minecraft backend can implement it too):
  * `reset(seed=None) -> (obs, info)`, `step(action) -> (obs, reward, terminated, truncated, info)`.
  * `obs = {"pov": uint8 (H, W, 3)}`.
  * `info["events"]`: list[str] of normalized events caused by this step (e.g. "collect_wood").
    After `reset` it is empty. Success predicates of task suites only look at these names.
  * `info["inventory"]`, `info["achievements"]` (counters), `info["player_pos"]`, `info["daylight"]`.
  * `render_frame(size) -> uint8 (size, size, 3)`: a video frame, independent of the observation size,
    that must not change the world's dynamics.
  * `action_names`: list[str] naming each discrete action (or the backend's action keys).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from aimc.core.errors import UnknownNameError
from aimc.core.registry import Registry

ENVS: Registry[Any] = Registry("world")

# Backends are imported lazily so optional ones (real Minecraft) never slow down or break `import aimc`.
_LAZY = {"crafter": "aimc.envs.crafter"}


def register_env(name: str):
    """Class decorator registering a world backend under `name`."""
    return ENVS.register(name)


def make(name: str, **cfg: Any) -> gym.Env:
    """Build world `name` with keyword config; an unknown name raises an error listing the choices."""
    if name in _LAZY and name not in ENVS:
        importlib.import_module(_LAZY[name])
    if name not in ENVS:
        raise UnknownNameError(f"unknown world {name!r}; available: {', '.join(available_worlds())}")
    cls = ENVS.get(name)
    return cls(**cfg)


def available_worlds() -> list[str]:
    return sorted(set(ENVS.names()) | set(_LAZY))
