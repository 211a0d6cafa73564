"""The game behind the Minecraft world: one small adapter per simulator package, imported only when used.

Both packages run MineRL 1.0's `HumanSurvival` task (Minecraft 1.16.5, a survival world from a seed) with the
settings VPT's `agent.ENV_KWARGS` fixes and STEVE-1's `make_env` uses (`GAME_SETTINGS`: a 640x360 frame, field of
view 70, gamma 2, GUI scale 1, a 16-pixel cursor, no frame skip), so a policy sees the frames it was trained on:

* `minerl` (MineRL 1.0.x, what STEVE-1 ran): `HumanSurvival(**settings).make()`; `env.seed(s)` before every
  `env.reset()` (MineRL forgets the seed after each reset); `step` returns `(obs, reward, done, info)` where obs
  holds `pov`, `inventory` (item -> count, plus `air` = empty slots), `location_stats` and one mapping per
  statistic kind (`obs["mine_block"]["oak_log"]`), and info the `isGuiOpen` monitor.
* `minestudio` (MineStudio's `MinecraftSim`, a vendored MineRL with a prebuilt game download instead of a
  Gradle build): built with `action_type="env"` so it takes the same key/camera dicts; its `info` merges the
  observation in (`pov`, `inventory` per slot, the statistics, `isGuiOpen`). Its `reset()` takes no seed, so
  the inner MineRL env is seeded the MineRL way before each reset; it plays 20 no-op ticks after every reset
  (its fix for the black first frames). Its key set has no `drop`, `ESC` or `swapHands`: VPT's drop button is
  ignored there.

An adapter returns the merged report (a dict with `pov` and whatever the game reported) and whether the game
ended the episode. A game that answers with MineRL's `info["error"]` (it does so, with a random observation,
when its socket times out) is treated as a crash: `GameError` is raised and the world shuts the process down.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any, Protocol

from aimc.core.errors import AimcError

GAME_RESOLUTION = (640, 360)
"""(width, height) of the game's frame, as MineRL takes it (VPT's and STEVE-1's)."""
GAME_SETTINGS: dict[str, Any] = {
    "fov_range": [70, 70], "gamma_range": [2, 2], "guiscale_range": [1, 1], "cursor_size_range": [16.0, 16.0],
    "frameskip": 1,
}
"""VPT's `ENV_KWARGS` (STEVE-1 reuses them) besides the resolution."""
INSTALL = {
    "minestudio": "pip install 'aimc[minecraft]' (MineStudio), then its game download once: "
                  "python -m minestudio.simulator.entry -y",
    "minerl": "MineRL 1.0.2 installed from its git tag (not on PyPI; `pip install 'aimc[minecraft]'` brings the "
              "minestudio backend instead)",
}
MINESTUDIO_ENGINE = ("engine", "build", "libs", "mcprec-6.13.jar")
"""Where MineStudio keeps its downloaded game, under `minestudio.utils.get_mine_studio_dir()`."""


class GameUnavailable(AimcError):
    """The backend's package (or its game download) is not installed: nothing to restart, the user must install."""


class GameError(RuntimeError):
    """The game reported a failure instead of an observation (MineRL's `info["error"]`)."""


class Backend(Protocol):
    """One running game. Built (and its process started) by the world when an episode needs it."""

    name: str

    def reset(self, seed: int | None) -> Mapping[str, Any]:
        """Start an episode in world `seed` (None: a random world); the report holds `pov`."""
        ...

    def step(self, action: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """Execute one MineRL action dict; (report, the game ended the episode)."""
        ...

    def close(self) -> None:
        """Stop the game process."""
        ...


def _load(module: str, attr: str, backend: str) -> Any:
    """`module.attr` of the backend's package, or one line saying how to install it."""
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise GameUnavailable(
            f"the minecraft world's {backend} backend needs {INSTALL[backend]}; see docs/minecraft.md "
            f"(import of {module} failed: {e})") from None


def _merged(*parts: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        if part:
            out.update(part)
    if "error" in out:
        raise GameError(f"the game reported {out['error']!r}")
    return out


class MineRLBackend:
    """MineRL 1.0's `HumanSurvival`, created as STEVE-1's `make_env` creates it."""

    name = "minerl"

    @staticmethod
    def check() -> None:
        """Import the package (fast failure with the install line, before any game starts)."""
        _load("minerl.herobraine.env_specs.human_survival_specs", "HumanSurvival", "minerl")

    def __init__(self) -> None:
        spec = _load("minerl.herobraine.env_specs.human_survival_specs", "HumanSurvival", "minerl")
        self.env = spec(resolution=list(GAME_RESOLUTION), **GAME_SETTINGS).make()

    def reset(self, seed: int | None) -> Mapping[str, Any]:
        if seed is not None:
            self.env.seed(int(seed))  # applies to the next reset only; MineRL clears it afterwards
        return _merged(self.env.reset())

    def step(self, action: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
        obs, _reward, done, info = self.env.step(action)
        return _merged(obs, info), bool(done)

    def close(self) -> None:
        self.env.close()


class MineStudioBackend:
    """MineStudio's `MinecraftSim` taking MineRL action dicts (`action_type="env"`), frames at the game's size."""

    name = "minestudio"

    @staticmethod
    def check() -> None:
        """Import the package and find its game download; neither starts a game."""
        _load("minestudio.simulator", "MinecraftSim", "minestudio")
        studio_dir = _load("minestudio.utils", "get_mine_studio_dir", "minestudio")()
        if not os.path.exists(os.path.join(studio_dir, *MINESTUDIO_ENGINE)):
            # MinecraftSim would ask on stdin whether to download it, which hangs a batch run
            raise GameUnavailable(
                f"MineStudio's game is not downloaded ({os.path.join(studio_dir, *MINESTUDIO_ENGINE)} is missing): "
                "run `python -m minestudio.simulator.entry -y` once (set MINESTUDIO_DIR to keep it outside the "
                "temp dir); see docs/minecraft.md")

    def __init__(self) -> None:
        self.check()
        sim = _load("minestudio.simulator", "MinecraftSim", "minestudio")
        # obs_size = the game's size: its own cv2 resize is then the identity and the world resizes the frame
        self.sim = sim(action_type="env", obs_size=GAME_RESOLUTION, render_size=GAME_RESOLUTION, callbacks=[])

    def reset(self, seed: int | None) -> Mapping[str, Any]:
        # MinecraftSim seeds its MineRL env once, at construction; MineRL forgets a seed after each reset
        self.sim.env.seed(None if seed is None else int(seed))
        _obs, info = self.sim.reset()
        return _merged(info)

    def step(self, action: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
        _obs, _reward, terminated, truncated, info = self.sim.step(action)
        return _merged(info), bool(terminated or truncated)

    def close(self) -> None:
        self.sim.close()


BACKENDS: dict[str, type] = {"minestudio": MineStudioBackend, "minerl": MineRLBackend}
"""Backend name -> adapter class (`MinecraftConfig.backend`)."""
