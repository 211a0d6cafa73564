"""`GameManager`: builds games from page requests, holds at most `max_games`, and closes idle ones.

Limits are checked before any work: a game over the limit is refused with a message saying how many are open
and what frees one; a slot is reserved while the agent loads, so two concurrent starts cannot both squeeze in.
A game is idle when no request touched it and no viewer was streamed a frame from it for `idle_timeout_s`
(a paused game with its tab open, a running game nobody watches, an ended game); a reaper thread closes those.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError
from aimc.envs import Lockstep, make
from aimc.eval.planner import make_planner
from aimc.eval.play import OverlayHook
from aimc.serve.agents import AgentCache, GoalTableActor
from aimc.serve.catalog import Catalog
from aimc.serve.config import ServeConfig
from aimc.serve.games import HOLD, Game, GameSpec, Panel, _Recorder
from aimc.serve.goals import GoalStore


class TooManyGames(AimcError):
    """`max_games` games are open."""


class GameGone(AimcError):
    """The page asked for a game that is closed or never existed."""


class GameManager:
    """The server's games, checkpoints, agents and goal clips."""

    def __init__(self, cfg: ServeConfig, catalog: Catalog | None = None, agents: AgentCache | None = None) -> None:
        self.cfg = cfg
        self.catalog = catalog if catalog is not None else Catalog(cfg)
        self.agents = agents if agents is not None else AgentCache(cfg.device)
        self.goals = GoalStore(cfg.max_goals)
        self._games: dict[str, Game] = {}
        self._gone: OrderedDict[str, str] = OrderedDict()  # closed game id -> why (the last 256)
        self._reserved = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="aimc-serve-reaper", daemon=True)

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the idle reaper."""
        self._reaper.start()

    def shutdown(self) -> None:
        self._stop.set()
        for gid in list(self._games):
            self.close(gid, "the server stopped")

    def _reap_loop(self) -> None:
        while not self._stop.wait(min(5.0, self.cfg.idle_timeout_s / 4)):
            self.reap()

    def reap(self) -> list[str]:
        """Close the games idle for longer than `idle_timeout_s`; returns their ids."""
        now = time.monotonic()
        idle = [g.id for g in list(self._games.values()) if now - g.last_active > self.cfg.idle_timeout_s]
        for gid in idle:
            self.close(gid, f"closed after {self.cfg.idle_timeout_s:g} s without a request or a viewer; start a new game")
        return idle

    # ------------------------------------------------------------------------------------------ games
    @property
    def open_games(self) -> int:
        return len(self._games)

    def get(self, gid: str) -> Game:
        game = self._games.get(gid)
        if game is None:
            raise GameGone(f"game {gid} {self._gone.get(gid, 'does not exist (or was closed long ago)')}")
        return game

    def close(self, gid: str, reason: str = "closed by the page") -> None:
        with self._lock:
            game = self._games.pop(gid, None)
            self._gone[gid] = f"is closed: {reason}"
            while len(self._gone) > 256:
                self._gone.popitem(last=False)
        if game is not None:
            game.close(reason)

    def create(self, spec: GameSpec) -> Game:
        """Build and start a game; raises a one-line `AimcError` (over the limit, bad checkpoint, bad goal)."""
        path = self.catalog.resolve(spec.checkpoint)  # refuses names not offered, before anything else
        with self._lock:
            if len(self._games) + self._reserved >= self.cfg.max_games:
                raise TooManyGames(
                    f"too many games: {len(self._games) + self._reserved} of {self.cfg.max_games} are open "
                    f"(--max-games); reset one, or wait until an idle one closes ({self.cfg.idle_timeout_s:g} s)")
            self._reserved += 1
        try:
            game = self._build(spec, path)
            with self._lock:
                self._games[game.id] = game
        finally:
            with self._lock:
                self._reserved -= 1
        game.thread.start()
        return game

    def _build(self, spec: GameSpec, path: Path) -> Game:
        proto = self.agents.get(path)
        default_scale = proto.cond_scale
        goals, panels = {}, []
        for k, p in enumerate(spec.panels):
            scale = default_scale if p.cond_scale is None else float(p.cond_scale)
            if p.goal is not None:
                clip = self.goals.get(p.goal)
                goals[k] = self.agents.video_goal(proto, clip.frames)
                what, goal_name = f"clip {clip.name}", clip.name
            else:
                goals[k] = self.agents.text_goal(proto, p.instruction, spec.seed)
                what, goal_name = p.instruction.strip(), None
            label = what if not proto.goal_dim else f"{what} | guidance {scale or 0:g}"
            panels.append(Panel(label, p.instruction.strip(), scale, goal_name))
        scales = list(dict.fromkeys(p.cond_scale for p in panels))  # one policy forward per scale and step
        agents = self.agents.game_agents(proto, len(scales))
        meta = proto.meta
        planner = make_planner(proto.bundle.planner, meta["world"]) if proto.goal_dim else None  # as `aimc play` chains

        def text_goal(text: str) -> np.ndarray:
            return self.agents.text_goal(proto, text, spec.seed)

        actors = {s: GoalTableActor(a, {}, s, len(panels), planner, text_goal) for s, a in zip(scales, agents, strict=True)}
        lockstep = Lockstep(lambda: make(meta["world"], **meta["world_config"]), n_slots=len(panels))
        for k, panel in enumerate(panels):
            actors[panel.cond_scale].goals[k] = np.asarray(goals[k], np.float32)
            if spec.panels[k].goal is None:
                actors[panel.cond_scale].plan_slots.add(k)
            hooks = [OverlayHook(panel, panel.label, self.cfg.frame_size, HOLD), _Recorder(panel)]
            lockstep.start(k, actors[panel.cond_scale], spec.seed, spec.max_steps, actor_seed=spec.seed,
                           prompt=panel.instruction, hooks=hooks, tag=k)
        return Game(secrets.token_hex(4), spec, self.catalog_name(spec), lockstep, panels)

    def catalog_name(self, spec: GameSpec) -> str:
        return spec.checkpoint or self.catalog.default
