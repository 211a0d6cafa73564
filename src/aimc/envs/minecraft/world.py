"""Minecraft as an aimc world: `make("minecraft", backend="minestudio" | "minerl")` (the optional `aimc[minecraft]`).

The contract of docs/architecture.md, over a real game (`backends.py`):

* action: one int, the VPT joint code `buttons * 121 + camera` (`aimc.envs.actions`, 1,045,561 codes, named by
  `JOINT_ACTION_NAMES`), i.e. the two heads of a VPT / STEVE-1 policy in one number, the same code the
  contractor converter stores. It becomes the MineRL key/camera dict as VPT's agent makes it
  (`CameraHierarchicalMapping.to_factored` + `ActionTransformer.policy2env`): mu-law camera bins to degrees,
  exclusive button groups, a camera-off combination forcing the null camera.
* observation: `{"pov": uint8 (H, W, 3)}` at `size` (the policy's input, default VPT's 128x128), resized from
  the game's 640x360 frame bit for bit like VPT's `resize_image` (`cv2.INTER_LINEAR`, aspect squashed;
  `aimc.envs.minecraft.frames.resize`), so the policy's own resize is a no-op. `render_frame(size)` draws video
  frames from the full frame.
* events: the item/statistic deltas of each step through `aimc.envs.minecraft.events` (`obtain_log`,
  `mine_leaves`, `kill_cow`, ...). The game reports `isGuiOpen` for any screen, so `open_inventory` fires when a
  screen opens on a step whose action, or the one before, pressed the inventory key (a crafting table's screen
  opened by `use` does not count).
* info (JSON-able): `events`, `inventory` (item totals), `gui_open`, `player_pos` when the game reports it, the
  executed `action` (MineRL dict, camera in degrees) and the item-level `gained` / `stat_deltas`.
* seeds: `reset(seed=s)` generates world `s` (MineRL's mission seed); `None` gives a random world. The game's
  ticks are not reproducible (mobs, threads), so `deterministic = False`: the same seed gives the same terrain,
  not the same episode, and `supports_replay` is False.
* crashes: a game that raises, hangs up or reports `info["error"]` is shut down (its process closed) and the
  call raises `GameCrashError` naming the backend, the seed and the step; the next `reset` starts a fresh game,
  trying `start_attempts` times. Evaluation's retry path therefore re-runs a crashed episode on its seed. A
  world that is garbage-collected or closed stops its game.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError, ConfigError
from aimc.envs.actions import JOINT_ACTION_NAMES, N_JOINT_CODES, joint_code_to_env
from aimc.envs.base import register_env
from aimc.envs.minecraft.backends import BACKENDS, Backend, GameUnavailable
from aimc.envs.minecraft.events import EVENT_NAMES, STAT_KINDS, GameState, events_of, state_change
from aimc.envs.minecraft.frames import resize


class GameCrashError(AimcError):
    """The game failed mid-call; it has been shut down and the next `reset` restarts it."""


@dataclass
class MinecraftConfig:
    """Options of `make("minecraft", ...)`; the defaults are STEVE-1's evaluation world through MineStudio."""

    backend: str = "minestudio"
    """Simulator package: minestudio (installed by `aimc[minecraft]`) or minerl (MineRL 1.0, what STEVE-1 ran)."""
    size: int | tuple[int, int] | list[int] = (128, 128)
    """Observation size: an int (square) or [H, W]; a policy plays at its input size (VPT/STEVE-1: 128x128).
    Normalised to an (H, W) tuple."""
    start_attempts: int = 3
    """Tries to start the game at `reset` before giving up (MineRL's launcher fails now and then)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown options land here and are refused."""

    def __post_init__(self) -> None:
        if self.extra:
            raise ConfigError(f"minecraft got unknown options {sorted(self.extra)}; it takes backend, size, start_attempts")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown minecraft backend {self.backend!r}; choose {' or '.join(BACKENDS)}")
        size = self.size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if (not isinstance(size, list | tuple) or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in size)):
            raise ConfigError(f"minecraft size must be an int or [H, W] of at least 8 pixels, got {self.size!r}")
        self.size = (int(size[0]), int(size[1]))
        if self.start_attempts < 1:
            raise ConfigError(f"minecraft start_attempts must be >= 1, got {self.start_attempts}")


class _Game:
    """Holds the running game so a finalizer can close it without keeping the world alive."""

    def __init__(self) -> None:
        self.backend: Backend | None = None

    def shutdown(self) -> None:
        game, self.backend = self.backend, None
        if game is not None:
            with contextlib.suppress(Exception):  # a crashed game may fail to close: its process is gone already
                game.close()


@register_env("minecraft")
class MinecraftWorld(gym.Env):
    """A live Minecraft game behind the world protocol; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    action_names: ClassVar[Any] = JOINT_ACTION_NAMES
    event_names: ClassVar[tuple[str, ...]] = EVENT_NAMES
    default_config: ClassVar[dict[str, Any]] = {"backend": "minestudio", "size": [128, 128], "start_attempts": 3}
    supports_replay: ClassVar[bool] = False
    has_demonstrator: ClassVar[bool] = False
    deterministic: ClassVar[bool] = False

    def __init__(self, config: MinecraftConfig | None = None, **kwargs: Any) -> None:
        if config is None:
            known = set(MinecraftConfig.__dataclass_fields__) - {"extra"}
            config = MinecraftConfig(**{k: v for k, v in kwargs.items() if k in known},
                                     extra={k: v for k, v in kwargs.items() if k not in known})
        elif kwargs:
            raise ConfigError("pass either a MinecraftConfig or keyword options, not both")
        self.config = config
        BACKENDS[config.backend].check()  # a missing package is one line now, not at the first reset
        self.render_mode = "rgb_array"
        h, w = config.size
        self.observation_space = gym.spaces.Dict({keys.POV: gym.spaces.Box(0, 255, (h, w, 3), np.uint8)})
        self.action_space = gym.spaces.Discrete(N_JOINT_CODES)
        self._game = _Game()
        self._finalizer = weakref.finalize(self, self._game.shutdown)
        self._frame: np.ndarray | None = None  # the game's last full-size frame
        self._state = GameState()
        self._seed: int | None = None
        self._t = 0
        self._inventory_pressed = False  # the previous action pressed the inventory key

    # ------------------------------------------------------------------------------------------- protocol
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._seed, self._t, self._inventory_pressed = seed, 0, False
        error: BaseException | None = None
        for _ in range(self.config.start_attempts):
            try:
                if self._game.backend is None:
                    self._game.backend = BACKENDS[self.config.backend]()
                report = self._game.backend.reset(seed)
                pov = self._native_frame(report)
                break
            except GameUnavailable:
                raise
            except Exception as e:  # the launch or the reset failed: kill what started and try a fresh game
                self._game.shutdown()
                error = e
        else:
            raise GameCrashError(
                f"the Minecraft game ({self.config.backend}) did not start in {self.config.start_attempts} "
                f"attempt(s) for seed {seed}: {type(error).__name__}: {error}") from error
        self._frame = pov
        self._state = self._read_state(report, gui_inventory=False)
        return self._observe(), {keys.EVENTS: [], **self._info(report, None)}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        if self._game.backend is None:
            raise AimcError("the Minecraft world has no running game (a crash shut it down, or it was closed); "
                            "call reset() to start one")
        try:
            env_action = joint_code_to_env(int(action), squeeze=True)
        except ValueError as e:
            raise AimcError(f"minecraft action {action!r}: {e}") from None
        try:
            report, done = self._game.backend.step(env_action)
            pov = self._native_frame(report)
        except BaseException as e:
            self._game.shutdown()
            if not isinstance(e, Exception):  # Ctrl-C / exit: the game is stopped, the interrupt goes on
                raise
            raise GameCrashError(
                f"the Minecraft game ({self.config.backend}) crashed at step {self._t} of seed {self._seed} "
                f"({type(e).__name__}: {e}); it was shut down and the next reset starts a new one") from e
        pressed = bool(env_action["inventory"])
        gui_open = bool(report.get("isGuiOpen", False))
        opened_now = gui_open and (self._state.gui_inventory or pressed or self._inventory_pressed)
        after = self._read_state(report, gui_inventory=opened_now)
        change = state_change(self._state, after)
        self._frame, self._state, self._inventory_pressed = pov, after, pressed
        self._t += 1
        info = {keys.EVENTS: events_of(change), **self._info(report, env_action), **change.to_info()}
        return self._observe(), 0.0, bool(done), False, info

    def render(self) -> np.ndarray:
        return self.render_frame(256)

    def render_frame(self, size: int) -> np.ndarray:
        """A (size, size, 3) frame from the game's full-size frame (videos; the game is not touched)."""
        if self._frame is None:
            raise AimcError("the Minecraft world has no frame yet; call reset() first")
        return np.ascontiguousarray(resize(self._frame, (size, size)))

    def close(self) -> None:
        """Stop the game process (also done when the world is garbage-collected or the interpreter exits)."""
        self._game.shutdown()

    # ------------------------------------------------------------------------------------------- helpers
    def _native_frame(self, report: Any) -> np.ndarray:
        pov = report.get("pov") if hasattr(report, "get") else None
        if not isinstance(pov, np.ndarray) or pov.dtype != np.uint8 or pov.ndim != 3 or pov.shape[2] != 3:
            got = f"{pov.dtype} {pov.shape}" if isinstance(pov, np.ndarray) else type(pov).__name__
            raise ValueError(f"the game's report has no uint8 (H, W, 3) 'pov' frame (got {got})")
        return pov

    def _observe(self) -> dict[str, np.ndarray]:
        assert self._frame is not None
        pov = resize(self._frame, self.config.size)
        return {keys.POV: pov.copy() if pov is self._frame else pov}

    @staticmethod
    def _read_state(report: Any, gui_inventory: bool) -> GameState:
        stats = {k: report[k] for k in STAT_KINDS if k in report}
        return GameState.from_report(report.get("inventory"), stats, gui_inventory)

    def _info(self, report: Any, action: dict[str, Any] | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "inventory": dict(sorted(self._state.inventory.items())),
            "gui_open": bool(report.get("isGuiOpen", False)),
        }
        loc = report.get("location_stats")
        if isinstance(loc, dict) and all(k in loc for k in ("xpos", "ypos", "zpos")):
            info["player_pos"] = [float(np.asarray(loc[k]).reshape(-1)[0]) for k in ("xpos", "ypos", "zpos")]
        if action is not None:
            info["action"] = {k: ([float(x) for x in np.asarray(v).reshape(-1)] if k == "camera" else int(v))
                              for k, v in action.items()}
        return info
