"""The world contract (`World`), what a registered world says about itself (`WorldInfo`), and `make(name)`.

Contract (docs/architecture.md), so a real-Minecraft or toy backend can implement it too:
  * Gymnasium API: `reset(seed=None) -> (obs, info)`, `step(action) -> (obs, reward, terminated, truncated, info)`.
  * `obs = {"pov": uint8 (H, W, 3)}`; `action_space` is `Discrete(len(action_names))`.
  * `info["events"]`: list[str] of normalized events caused by this step (e.g. "collect_wood"), each one of the
    class's `event_names`; empty after `reset`. Success predicates of task suites only look at these names.
  * `reset(seed=s)` followed by the same actions gives the same observations and events (collection resumes,
    evaluation pairs conditions on the same worlds, and `aimc video` replays episodes on this promise); a
    world that cannot promise it (a real game) says so with `deterministic = False`.
  * Every info value is JSON-serialisable (collection writes infos.jsonl).
`check_world(name)` (aimc.envs.check) tests all of this on a live instance.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from aimc.core import keys
from aimc.core.errors import UnknownNameError
from aimc.core.registry import Registry

if TYPE_CHECKING:
    import gymnasium as gym

DEFAULT_WORLD = "crafter"
"""The world every stage uses when a config does not name one."""


class World(Protocol):
    """What every backend provides. Declared on the *class*, so `world_info(name)` needs no instance.

    Optional class attributes (read with defaults, so a minimal world leaves them out):
      * `default_config: dict` — the keyword options `make(name)` uses when given none (default {}).
      * `supports_replay: bool` — `reset(seed)` + the stored actions re-create an episode exactly and
        `render_frame` draws any size without changing the dynamics, so `aimc video` re-renders episodes
        crisply instead of upscaling the stored frames (default False).
      * `has_demonstrator: bool` — the scripted demonstrator (`aimc.envs.demo`) can play it (default False).
      * `deterministic: bool` — same seed + same actions give the same episode (default True). Minecraft's
        seed fixes the generated world, not the game's ticks, so it is False there and `check_world` checks
        such a world's contract without comparing two runs.
    `action_names` is a list or tuple, or, for a space too large to hold as strings (the VPT joint action:
    a million codes), another `Sequence` of distinct names generated on demand.
    Optional method: `render_frame(size) -> uint8 (size, size, 3)`, a video frame of any size that never
    changes the world (without it, videos upscale `obs["pov"]`, see `video_frame`).
    """

    action_names: ClassVar[Sequence[str]]
    """Name of each discrete action, in index order."""
    event_names: ClassVar[Sequence[str]]
    """Every event name `info["events"]` can hold (suites are checked against it)."""
    observation_space: gym.spaces.Dict
    action_space: gym.spaces.Discrete

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]: ...

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]: ...


@dataclass(frozen=True)
class WorldInfo:
    """What a registered world declares about itself, read from its class without building it."""

    name: str
    action_names: Sequence[str]
    """A tuple, or the world's own generated sequence when it declares one (see `World`)."""
    event_names: tuple[str, ...]
    default_config: dict[str, Any] = field(default_factory=dict)
    has_demonstrator: bool = False
    supports_replay: bool = False
    deterministic: bool = True


ENVS: Registry[Any] = Registry("world")

# Backends are imported lazily so optional ones (real Minecraft) never slow down or break `import aimc`.
_LAZY = {"crafter": "aimc.envs.crafter", "minecraft": "aimc.envs.minecraft.world"}


def register_env(name: str) -> Callable[[type], type]:
    """Class decorator registering a world backend under `name`; fails at once if the class does not declare
    its `action_names` and `event_names` (so a half-described world never reaches a collection run)."""

    def deco(cls: type) -> type:
        for attr in ("action_names", "event_names"):
            names = getattr(cls, attr, None)
            if attr == "action_names" and _generated(names):
                names = [names[0], names[-1]]  # too many to list: distinct by construction, spot-checked
            if (not isinstance(names, list | tuple) or not names or len(set(names)) != len(names)
                    or not all(isinstance(n, str) and n for n in names)):
                raise TypeError(f"world {name!r} ({cls.__name__}) must declare the class attribute {attr!r}: "
                                f"a non-empty list of distinct names, got {names!r}")
        return ENVS.register(name)(cls)

    return deco


def _generated(names: Any) -> bool:
    """A non-empty name sequence that is neither a list nor a tuple (generated on demand, e.g. the joint action)."""
    return (isinstance(names, Sequence) and not isinstance(names, list | tuple | str) and len(names) > 0)


def world_class(name: str) -> type:
    """The class registered as `name` (importing a lazy backend); an unknown name lists the choices."""
    if name in _LAZY and name not in ENVS:
        importlib.import_module(_LAZY[name])
    if name not in ENVS:
        raise UnknownNameError(f"unknown world {name!r}; available: {', '.join(available_worlds())}")
    return ENVS.get(name)


def make(name: str, **cfg: Any) -> gym.Env:
    """Build world `name` with keyword config; an unknown name raises an error listing the choices."""
    return world_class(name)(**cfg)


def world_info(name: str) -> WorldInfo:
    """What world `name` declares (action and event names, defaults, extras), without building it."""
    cls = world_class(name)
    return WorldInfo(
        name=name,
        action_names=cls.action_names if _generated(cls.action_names) else tuple(cls.action_names),
        event_names=tuple(cls.event_names),
        default_config=copy.deepcopy(dict(getattr(cls, "default_config", {}))),
        has_demonstrator=bool(getattr(cls, "has_demonstrator", False)),
        supports_replay=bool(getattr(cls, "supports_replay", False)),
        deterministic=bool(getattr(cls, "deterministic", True)),
    )


def available_worlds() -> list[str]:
    """Every world name `make` accepts (registered plus not-yet-imported built-in backends)."""
    return sorted(set(ENVS.names()) | set(_LAZY))


def video_frame(env: Any, obs: dict[str, Any], size: int) -> np.ndarray:
    """A uint8 (size, size, 3) frame for videos: the world's `render_frame` when it has one, else `obs["pov"]`
    resized by nearest neighbour (a world needs no renderer to be evaluated or played)."""
    if hasattr(env, "render_frame"):
        return env.render_frame(size)
    pov = obs[keys.POV]
    rows = np.arange(size) * pov.shape[0] // size
    cols = np.arange(size) * pov.shape[1] // size
    return np.ascontiguousarray(pov[rows][:, cols])
