"""Served games: one world seed, one to `max_panels` goals side by side, stepped by one worker thread.

A game is the episode loop every stage uses (`aimc.envs.Lockstep`, one slot per panel, all on the same world
seed), so a comparison of two instructions or two guidance scales steps both worlds in lockstep and the
panels stay frame-aligned. Each panel records through two hooks: `aimc play`'s overlay (instruction, step and
recent events drawn on each frame, here written into the panel as JPEG) and `_Recorder` (observations for clip
goals, the event log, how the episode ended). The thread paces the loop to the game's speed and stops at pause
or close; a failure ends only its panel (Lockstep) or its game, never the server.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError
from aimc.envs import EpisodeHook, EpisodeRecord, Lockstep, Step
from aimc.serve.media import to_jpeg

HOLD = 12
"""Steps an event stays drawn on the frames (as in `aimc play`)."""


@dataclass
class PanelSpec:
    """What one panel plays: an instruction, or a goal clip (by id) instead, at a guidance scale."""

    instruction: str = ""
    cond_scale: float | None = None
    """None = the checkpoint's default."""
    goal: str | None = None
    """Goal clip id (`GoalStore`); when set, the panel is conditioned on the clip instead of the text."""


@dataclass
class GameSpec:
    """A game as the page asks for it (validated by `aimc.serve.requests.parse_game`)."""

    panels: list[PanelSpec]
    checkpoint: str = ""
    seed: int = 0
    speed: float = 10.0
    """Steps per second; 0 = as fast as the CPU allows."""
    max_steps: int = 500


@dataclass
class Panel:
    """One goal's episode as the page sees it: JPEG frames (frame t = the state before action t, then the state
    after the last action), observations, and the event log (step s = visible after action s - 1)."""

    label: str
    instruction: str
    cond_scale: float | None
    goal_name: str | None = None
    frames: list[bytes] = field(default_factory=list)
    povs: list[np.ndarray] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)
    steps: int = 0
    status: str = "running"
    """running, ended or failed."""
    end: str = ""
    """How the episode ended ("died at step 212", "reached 500 steps", the error)."""

    def add(self, frame: np.ndarray) -> None:
        """`OverlayHook`'s writer interface: keep the annotated frame as JPEG."""
        self.frames.append(to_jpeg(frame))

    def summary(self) -> dict[str, Any]:
        """events.json: what happened, with what the panel was asked."""
        counts: dict[str, int] = {}
        for _, e in self.events:
            counts[e] = counts.get(e, 0) + 1
        return {"label": self.label, "instruction": self.instruction, "goal_clip": self.goal_name,
                "cond_scale": self.cond_scale, "steps": self.steps, "status": self.status, "end": self.end,
                "events": [{"step": s, "event": e} for s, e in self.events], "counts": counts}


class _Recorder(EpisodeHook):
    """Observations (for goal clips cut from the episode), events and the episode's end, into a `Panel`."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self._last: np.ndarray | None = None

    def before_action(self, env: Any, t: int, obs: dict[str, Any]) -> None:
        self.panel.povs.append(np.array(obs[keys.POV]))

    def on_step(self, env: Any, step: Step) -> None:
        self.panel.events += [(step.t + 1, e) for e in step.events]
        self.panel.steps = step.t + 1
        self._last = step.next_obs[keys.POV]

    def on_end(self, env: Any, record: EpisodeRecord) -> None:
        if self._last is not None:
            self.panel.povs.append(np.array(self._last))
        self.panel.end = f"died at step {record.steps}" if record.terminated else f"stopped after {record.steps} steps"
        self.panel.status = "ended"


class Game:
    """A running game: the worker thread, its pace and state, and what viewers read (`snapshot`)."""

    def __init__(self, gid: str, spec: GameSpec, checkpoint: str, lockstep: Lockstep, panels: list[Panel]) -> None:
        self.id, self.spec, self.checkpoint = gid, spec, checkpoint
        self.lockstep, self.panels = lockstep, panels
        self.speed = spec.speed
        self.status = "running"
        """running, paused, ended, failed or closed."""
        self.message = ""
        self.version = 0
        """Steps taken (all panels step together); viewers send a frame when it changes."""
        self.viewers = 0
        self.last_active = time.monotonic()
        self._run_flag = threading.Event()
        self._run_flag.set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"aimc-game-{gid}", daemon=True)

    def touch(self) -> None:
        """A request or a streamed frame: the game is in use (see `GameManager.reap`)."""
        self.last_active = time.monotonic()

    def pause(self) -> None:
        if self.status == "running":
            self._run_flag.clear()
            self.status = "paused"

    def resume(self) -> None:
        if self.status == "paused":
            self.status = "running"
            self._run_flag.set()

    def close(self, reason: str) -> None:
        """Stop the thread (after the step it is in) and mark the game closed with `reason`."""
        self._stop.set()
        self._run_flag.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout=30)
        self.status, self.message = "closed", reason

    def _loop(self) -> None:
        next_at = time.monotonic()
        try:
            while self.lockstep.active and not self._stop.is_set():
                if not self._run_flag.wait(timeout=0.5):
                    next_at = time.monotonic()
                    continue
                if self._stop.is_set():
                    break
                for outcome in self.lockstep.step():
                    if outcome.error is not None:
                        panel = self.panels[outcome.tag]
                        panel.status, panel.end = "failed", outcome.error.strip().splitlines()[-1]
                        print(f"aimc serve: game {self.id} panel {outcome.tag} failed:\n{outcome.error}", file=sys.stderr)
                self.version += 1
                if self.speed > 0:
                    next_at = max(next_at + 1.0 / self.speed, time.monotonic() - 1.0)  # catch up at most 1 s
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
        except Exception as e:  # never the server: the game fails with one line, the traceback goes to the log
            traceback.print_exc()
            self.status, self.message = "failed", f"game failed: {type(e).__name__}: {e}"
            return
        if not self._stop.is_set():
            self.status = "ended" if all(p.status != "failed" for p in self.panels) else "failed"
            self.message = "; ".join(f"{p.label}: {p.end}" for p in self.panels)

    def snapshot(self, sent_frames: list[int], sent_events: list[int]) -> dict[str, Any]:
        """What a viewer needs since it last got `sent_frames` / `sent_events` per panel (updated in place): the
        newest frame of each panel that has a new one, and every event it has not seen."""
        from aimc.serve.media import data_url

        panels = []
        for k, p in enumerate(self.panels):
            n_frames, n_events = len(p.frames), len(p.events)
            frame = data_url(p.frames[n_frames - 1]) if n_frames and n_frames != sent_frames[k] else None
            panels.append({"label": p.label, "steps": p.steps, "status": p.status, "end": p.end, "frame": frame,
                           "frames": n_frames, "events": p.events[sent_events[k]:n_events]})
            sent_frames[k], sent_events[k] = n_frames, n_events
        return {"id": self.id, "status": self.status, "message": self.message, "speed": self.speed,
                "version": self.version, "panels": panels}

    def goal_clip(self, panel: int, step: int) -> np.ndarray:
        """The 16 observations ending at `step` of a panel (frames step-15..step): a clip of what led there."""
        if not 0 <= panel < len(self.panels):
            raise AimcError(f"game {self.id} has no panel {panel}")
        povs = self.panels[panel].povs
        if not 15 <= step < len(povs):
            raise AimcError(f"a goal clip is the 16 frames up to a step; pick a step in 15..{len(povs) - 1} "
                            f"(this episode has {len(povs)} frames so far)")
        return np.stack(povs[step - 15: step + 1])
