"""Deterministic Crafter as a Gymnasium env with the aimc obs/info contract.

Upstream crafter 1.8.3 is not reproducible for a fixed seed (danijar/crafter#31): chunk object sets
iterate in `id()` order, and night noise draws from the world RNG, so render sizes and extra renders
change the dynamics. We fix both on *our instances only* (class swap), never by patching crafter itself.
"""

from __future__ import annotations

import collections
import types
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import crafter
import gymnasium as gym
import numpy as np
from crafter import engine

from aimc.core import keys
from aimc.core.errors import ConfigError
from aimc.envs.base import register_env
from aimc.envs.crafter_worldgen import generate_world

ACTION_NAMES: list[str] = list(crafter.constants.actions)
ACHIEVEMENTS: list[str] = list(crafter.constants.achievements)
INVENTORY_ITEMS: list[str] = list(crafter.constants.items)
# Events beyond the 22 achievement names, derived from inventory / status diffs.
EXTRA_EVENTS: list[str] = ["take_damage", "death", "fall_asleep"]
EVENT_NAMES: list[str] = ACHIEVEMENTS + EXTRA_EVENTS


class _OrderedSet(dict):
    """Insertion-ordered replacement for the per-chunk `set`s, so iteration order is reproducible."""

    def add(self, item: Any) -> None:
        self[item] = None

    def remove(self, item: Any) -> None:
        del self[item]


class _DeterministicWorld(engine.World):
    """World whose chunk containers iterate in insertion order."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._chunks = collections.defaultdict(_OrderedSet)
        self._aimc_seed = 0 if seed is None else int(seed)


class _DeterministicLocalView(engine.LocalView):
    """Night noise from an RNG keyed by (world seed, env step, canvas shape), never from world.random.

    Keying by step and shape makes every frame's noise a pure function of the state: rendering a video
    frame at any size, any number of times, changes neither the world nor the observation.
    """

    _aimc_env: Any = None

    def _noise(self, canvas: np.ndarray, amount: float, stddev: float) -> np.ndarray:
        world = self._world
        step = self._aimc_env._step if self._aimc_env is not None else 0
        rng = np.random.default_rng((getattr(world, "_aimc_seed", 0), step, canvas.shape[0], canvas.shape[1]))
        saved = world.random
        world.random = _UniformOnly(rng)
        try:
            return super()._noise(canvas, amount, stddev)
        finally:
            world.random = saved


class _FastLocalView(_DeterministicLocalView):
    """`_DeterministicLocalView` drawn with array operations (`CrafterConfig.fast`)."""

    def __call__(self, player: Any, unit: Any) -> np.ndarray:
        """The local view, pixel for pixel what `engine.LocalView` draws, in a few array operations.

        Upstream looks up and copies one texture per grid cell and alpha-blends every object in the world
        that falls in the grid: about 0.8 ms of the 1.2 ms a step costs at 64x64. Here the material tiles
        come from one gather over the visible window of the material map, and only objects on the visible
        cells are blended, with upstream's float32 arithmetic, so the frames are byte-identical (tested
        against upstream on random and scripted trajectories, by day, by night and asleep)."""
        self._unit = np.array(unit)
        self._center = np.array(player.pos)
        ux, uy = int(self._unit[0]), int(self._unit[1])
        (gx, gy), (ox, oy) = (int(v) for v in self._grid), (int(v) for v in self._offset)
        world = self._world
        canvas = np.full((gx * ux, gy * uy, 3), 127, np.uint8)
        x0, y0 = int(self._center[0]) - ox, int(self._center[1]) - oy
        ax0, ay0 = max(x0, 0), max(y0, 0)
        ax1, ay1 = min(x0 + gx, int(self._area[0])), min(y0 + gy, int(self._area[1]))
        if ax0 < ax1 and ay0 < ay1:
            ids = world._mat_map[ax0:ax1, ay0:ay1]
            tiles = self._material_tiles(ux, uy)[ids]  # (w, h, ux, uy, 3)
            w, h = ax1 - ax0, ay1 - ay0
            block = tiles.transpose(0, 2, 1, 3, 4).reshape(w * ux, h * uy, 3)
            cx, cy = (ax0 - x0) * ux, (ay0 - y0) * uy
            canvas[cx: cx + w * ux, cy: cy + h * uy] = block
            for i, j in zip(*np.nonzero(world._obj_map[ax0:ax1, ay0:ay1]), strict=True):
                obj = world._objects[world._obj_map[ax0 + i, ay0 + j]]
                px, py = (int(i) + ax0 - x0) * ux, (int(j) + ay0 - y0) * uy
                self._blend(canvas, px, py, obj.texture, ux, uy)
        canvas = self._light(canvas, world.daylight)
        if player.sleeping:
            canvas = self._sleep(canvas)
        return canvas

    def _material_tiles(self, ux: int, uy: int) -> np.ndarray:
        """(material id, ux, uy, 3) opaque tiles (upstream draws materials without their alpha channel)."""
        names = self._world._mat_names
        key = (ux, uy, len(names))
        cache = self.__dict__.setdefault("_aimc_tiles", {})
        if key not in cache:
            size = np.array((ux, uy))
            cache[key] = np.stack([self._textures.get(names[i], size)[..., :3] for i in range(len(names))])
        return cache[key]

    def _blend(self, canvas: np.ndarray, px: int, py: int, name: str, ux: int, uy: int) -> None:
        """Upstream's `_draw_alpha` of texture `name` at pixel (px, py), with its exact float32 steps."""
        cache = self.__dict__.setdefault("_aimc_sprites", {})
        key = (name, ux, uy)
        if key not in cache:
            texture = self._textures.get(name, np.array((ux, uy)))
            if texture.shape[-1] == 4:
                alpha = texture[..., 3:].astype(np.float32) / 255
                cache[key] = (alpha, texture[..., :3].astype(np.float32) / 255, 1 - alpha)
            else:
                cache[key] = (None, texture, None)
        alpha, rgb, rest = cache[key]
        w, h = rgb.shape[:2]
        region = canvas[px: px + w, py: py + h]
        if alpha is None:
            region[...] = rgb
            return
        current = region.astype(np.float32) / 255
        region[...] = (255 * (alpha * rgb + rest * current)).astype(np.uint8)


class _CachedItemView(engine.ItemView):
    """The inventory strip, drawn once per (inventory, unit): it changes a few times per episode, and
    upstream redraws it (16 alpha blends) every step."""

    def __call__(self, inventory: dict, unit: Any) -> np.ndarray:
        key = (tuple(inventory.items()), tuple(int(u) for u in np.atleast_1d(unit)))
        cache = self.__dict__.setdefault("_aimc_cache", {})
        if key not in cache:
            if len(cache) >= 512:
                cache.clear()
            canvas = super().__call__(inventory, unit)
            canvas.flags.writeable = False
            cache[key] = canvas
        return cache[key]


class _UniformOnly:
    """Adapter exposing RandomState.uniform over a numpy Generator (the only call night noise makes)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def uniform(self, low: float, high: float, size: Any = None) -> np.ndarray:
        return self._rng.uniform(low, high, size)


def _grid_distance(self: Any, target: Any) -> int:
    """Upstream's `Object.distance` (Manhattan, to an object or a cell) in integers. Upstream's env step measures
    the player's distance to every object in the world each step, to pick the ones that update, with a numpy
    reduction per object: about a sixth of the env step in a crowded world (profiled)."""
    pos = target.pos if hasattr(target, "pos") else target
    return abs(int(pos[0]) - int(self.pos[0])) + abs(int(pos[1]) - int(self.pos[1]))


class _FastResetEnv(crafter.Env):
    """crafter.Env whose `reset` builds the world with `crafter_worldgen.generate_world` (the same world,
    about 4x faster) and gives the player an integer `distance`; every other step of upstream's reset is
    kept as it is."""

    def reset(self) -> np.ndarray:
        area = self._world.area
        self._episode += 1
        self._step = 0
        self._world.reset(seed=hash((self._seed, self._episode)) % (2**31 - 1))
        self._update_time()
        self._player = crafter.objects.Player(self._world, (area[0] // 2, area[1] // 2))
        self._player.distance = types.MethodType(_grid_distance, self._player)  # this player only; same type
        self._last_health = self._player.health
        self._world.add(self._player)
        self._unlocked = set()
        generate_world(self._world, self._player)
        return self._obs()


def _no_semantic_map() -> None:
    return None


def make_deterministic(raw: crafter.Env, fast: bool = True) -> crafter.Env:
    """Apply both determinism fixes to one crafter.Env instance (no global monkeypatching); with `fast`, also
    the array world generator and renderer (same worlds and frames, see `CrafterConfig.fast`)."""
    raw._world.__class__ = _DeterministicWorld
    raw._local_view.__class__ = _FastLocalView if fast else _DeterministicLocalView
    raw._local_view._aimc_env = raw
    if fast:
        raw.__class__ = _FastResetEnv
        raw._item_view.__class__ = _CachedItemView
    return raw


@dataclass
class CrafterConfig:
    """Crafter world settings; defaults give the standard 64x64 observation and 9x9 grid."""

    size: int = 64
    """Observation side in pixels (square). 63/126/252 tile exactly; others get a black border."""
    render_size: int = 256
    """Side of frames from `render()` / `render_frame()` for videos; independent of `size`."""
    area: tuple[int, int] = (64, 64)
    """World size in tiles."""
    view: tuple[int, int] = (9, 9)
    """Rendered grid in cells: the top view[1]-2 rows are the local view, the bottom 2 the inventory."""
    length: int = 10000
    """Episode step limit (truncation)."""
    reward: bool = True
    """Return Crafter's reward (+1 per first unlock, health delta); info['reward'] always has it."""
    fast: bool = True
    """Generate worlds and draw frames with aimc's array code (`crafter_worldgen`, the local view and the
    inventory strip): the same worlds and byte-identical frames as upstream crafter (tested world by world),
    about 2x faster per step and 4x per reset. False runs upstream's own code, for comparison."""
    semantic: bool = False
    """Include the whole-world semantic map in info['semantic'] (costs a copy per step)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Reserved for backend-specific options; must be empty for crafter."""

    def __post_init__(self) -> None:
        if self.size < 9 or self.render_size < 9:
            raise ConfigError(f"crafter size/render_size must be >= 9 pixels, got {self.size}/{self.render_size}")
        if self.length <= 0:
            raise ConfigError(f"crafter length must be positive, got {self.length}")
        if self.extra:
            raise ConfigError(f"crafter got unknown options {sorted(self.extra)}")


@register_env("crafter")
class CrafterEnv(gym.Env):
    """Crafter with the aimc contract: obs {"pov"}, info["events"], deterministic per (seed, episode)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    # The World declaration (aimc.envs.base.World), readable without building an instance.
    action_names: ClassVar[list[str]] = ACTION_NAMES
    event_names: ClassVar[list[str]] = EVENT_NAMES
    default_config: ClassVar[dict[str, Any]] = {k: v for k, v in asdict(CrafterConfig()).items() if k != "extra"}
    supports_replay: ClassVar[bool] = True  # deterministic per (seed, actions); render_frame leaves dynamics alone
    has_demonstrator: ClassVar[bool] = True  # aimc.envs.demo plays Crafter

    def __init__(self, config: CrafterConfig | None = None, **kwargs: Any) -> None:
        if config is None:
            known = set(CrafterConfig.__dataclass_fields__)
            extra = {k: v for k, v in kwargs.items() if k not in known}
            cfg_kwargs = {k: v for k, v in kwargs.items() if k in known}
            if "area" in cfg_kwargs:
                cfg_kwargs["area"] = tuple(cfg_kwargs["area"])
            if "view" in cfg_kwargs:
                cfg_kwargs["view"] = tuple(cfg_kwargs["view"])
            config = CrafterConfig(**cfg_kwargs, extra=extra)
        elif kwargs:
            raise ConfigError("pass either a CrafterConfig or keyword options, not both")
        self.config = config
        self.render_mode = "rgb_array"
        size = (config.size, config.size)
        self.raw = make_deterministic(
            crafter.Env(area=config.area, view=config.view, size=size, reward=True, length=config.length, seed=0),
            fast=config.fast,
        )
        if config.fast and not config.semantic:
            # Upstream builds the whole-world semantic map every step whether or not anyone reads it.
            self.raw._sem_view = _no_semantic_map
        self.observation_space = gym.spaces.Dict(
            {keys.POV: gym.spaces.Box(0, 255, (config.size, config.size, 3), np.uint8)}
        )
        self.action_space = gym.spaces.Discrete(len(ACTION_NAMES))
        self._seed: int | None = None
        self._prev_ach: dict[str, int] = {}
        self._prev_health = 0
        self._prev_sleeping = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """`reset(seed=s)` starts world (s, episode 1); later `reset()` calls give (s, 2), (s, 3), ..."""
        super().reset(seed=seed)
        if seed is not None:
            self._seed = int(seed)
            self.raw._seed = self._seed
            self.raw._episode = 0
        elif self._seed is None:
            self._seed = int(self.np_random.integers(0, 2**31 - 1))
            self.raw._seed = self._seed
            self.raw._episode = 0
        pov = self.raw.reset()
        player = self.raw._player
        self._prev_ach = dict(player.achievements)
        self._prev_health = player.health
        self._prev_sleeping = player.sleeping
        info = self._info(player, self.raw._player.inventory.copy(), self._prev_ach.copy(), [])
        return {keys.POV: pov}, info

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        pov, reward, done, raw_info = self.raw.step(int(action))
        player = self.raw._player
        ach = raw_info["achievements"]
        inv = raw_info["inventory"]
        events = [name for name, count in ach.items() if count > self._prev_ach.get(name, 0)]
        if player.health < self._prev_health:
            events.append("take_damage")
        if player.sleeping and not self._prev_sleeping:
            events.append("fall_asleep")
        dead = raw_info["discount"] == 0.0
        if dead:
            events.append("death")
        self._prev_ach = ach
        self._prev_health = player.health
        self._prev_sleeping = player.sleeping
        info = self._info(player, inv, ach, events)
        info["reward"] = raw_info["reward"]
        if self.config.semantic:
            info["semantic"] = raw_info["semantic"]
        terminated = bool(dead)
        truncated = bool(done and not dead)
        return {keys.POV: pov}, float(reward if self.config.reward else 0.0), terminated, truncated, info

    def _info(self, player: Any, inv: dict, ach: dict, events: list[str]) -> dict[str, Any]:
        return {
            keys.EVENTS: events,
            keys.INVENTORY: inv,
            keys.ACHIEVEMENTS: ach,
            keys.PLAYER_POS: (int(player.pos[0]), int(player.pos[1])),
            keys.DAYLIGHT: float(self.raw._world.daylight),
            "facing": (int(player.facing[0]), int(player.facing[1])),
            "sleeping": bool(player.sleeping),
            "step": int(self.raw._step),
            "world_seed": self._seed,
            "episode": int(self.raw._episode),
        }

    def render(self) -> np.ndarray:
        return self.render_frame(self.config.render_size)

    def render_frame(self, size: int) -> np.ndarray:
        """A square RGB frame of side `size` for videos; does not affect dynamics or observations."""
        return self.raw.render((int(size), int(size)))

    # ------------------------------------------------------------------ world-state access
    @property
    def world(self) -> engine.World:
        """Full world state, for scripted demonstrators and tests (not part of the pixel contract)."""
        return self.raw._world

    @property
    def player(self) -> Any:
        return self.raw._player

    def _local_view(self) -> tuple[int, int, np.ndarray]:
        """(x0, y0, material ids) of the local view, the part of the world the frame shows (`view` cells wide,
        `view[1]-2` high, centred on the player; clipped at the world's edge)."""
        world = self.raw._world
        half_x, half_y = self.config.view[0] // 2, (self.config.view[1] - 2) // 2
        x, y = (int(v) for v in self.raw._player.pos)
        w, h = world._mat_map.shape
        x0, y0 = max(0, x - half_x), max(0, y - half_y)
        return x0, y0, world._mat_map[x0: min(w, x + half_x + 1), y0: min(h, y + half_y + 1)]

    def visible_materials(self) -> tuple[str, ...]:
        """Materials in the local view: what a goal planner may know of the surroundings, nothing hidden."""
        names = self.raw._world._mat_names
        return tuple(str(names[int(i)]) for i in np.unique(self._local_view()[2]) if names.get(int(i)))

    def visible_cells(self, material: str) -> list[tuple[int, int]]:
        """World cells of `material` in the local view (a planner remembers where it saw its stations)."""
        ids = [i for i, n in self.raw._world._mat_names.items() if n == material]
        if not ids:
            return []
        x0, y0, view = self._local_view()
        return [(x0 + int(i), y0 + int(j)) for i, j in zip(*np.nonzero(view == ids[0]), strict=True)]

    def world_hash(self) -> str:
        """md5 of materials, objects and player inventory: equal hashes mean equal worlds."""
        import hashlib

        h = hashlib.md5()
        h.update(np.ascontiguousarray(self.raw._world._mat_map).tobytes())
        for obj in self.raw._world.objects:
            h.update(f"{type(obj).__name__}{tuple(obj.pos)}{getattr(obj, 'health', '')}".encode())
        h.update(repr(sorted(self.raw._player.inventory.items())).encode())
        return h.hexdigest()
