"""Start states for PPO rollouts: an episode that begins k steps before the scripted demonstrator reaches a mark.

`DemoStart` wraps a world. Reset with ``options={"start": StartRequest(...)}`` it lets the demonstrator (task
mode unless configured otherwise, no noise) play the world from the reset until the mark holds at step T (the
task's success predicate, or the player walled in, at any light or in the dark), then resets the same world and replays the demonstrator's first T - k actions, so the
episode starts in the state the demonstrator was in k steps before the mark. The last `warmup` replayed frames
and actions stay on the wrapper (`warmup`): the acting policy reads them to warm its memory
(`aimc.finetune.ppo_rollout.PolicyActor`), as it would have seen them had it played there itself. A reset
without the option is the world's own.

Everything is a function of the episode's world seed (the demonstrator is deterministic without noise, the
world replays exactly), so a resumed run replays an interrupted iteration as before. A world where the
demonstrator dies, stops, or does not reach the mark within `max_demo_steps` is replaced by the next world
derived from the seed; after `tries` such worlds the episode fails with one line.

With a `lead` on the request (`StartConfig.lead` "policy") the acting policy plays the world from its reset
until the first dark step, and the demonstrator takes over from there: the start states then lie between the
policy's own dusk and a seal within the demonstrator's reach from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import EpisodeError
from aimc.core.seeding import derive_seed
from aimc.eval.planner import player_enclosed
from aimc.eval.tasks import Success
from aimc.finetune.ppo_config import StartConfig, back_range_at


def demonstrator_options(start: StartConfig) -> dict[str, Any]:
    """The start demonstrator's options: `start.demonstrator` in task mode unless it says otherwise, never noise."""
    return {"mode": "task", **start.demonstrator, "noise_prob": 0.0}


@dataclass(frozen=True)
class StartRequest:
    """What one start-state episode asks of `DemoStart.reset`."""

    back: int
    """k: steps before the mark the episode starts."""
    task: str
    """What the demonstrator pursues (the suite task's `demo_task`)."""
    success: Success | None = None
    """The task's success predicate: the mark when `StartConfig.until` is "success"."""
    lead: Callable[[Any, Any, Callable[[Any], bool]], tuple[list[int], Any] | None] | None = None
    """`StartConfig.lead` "policy": ``lead(env, obs, stop)`` plays the world from its reset (`obs`) until
    ``stop(env)`` holds and returns (its actions, the observation then), or None where the player died first;
    None = the demonstrator plays from the reset."""


def draw_back(start: StartConfig, iteration: int, seed: int, index: int, task: str) -> int | None:
    """k for episode `index` of `iteration`, or None when the episode starts from the world's reset: with
    probability `share` for the start tasks, k log-uniform over the iteration's [lo, hi] (k + 1 uniform in log
    space, so 0 is possible), from a generator seeded by the episode."""
    if start.share <= 0 or (start.tasks and task not in start.tasks):
        return None
    rng = np.random.default_rng(derive_seed(seed, "ppo-start", iteration, index))
    if rng.random() >= start.share:
        return None
    lo, hi = back_range_at(start, iteration)
    k = math.exp(rng.uniform(math.log(lo + 1), math.log(hi + 2))) - 1  # floor below gives lo..hi, log-spaced
    return int(min(hi, max(lo, math.floor(k))))


class DemoStart:
    """A world whose reset can start an episode from the demonstrator's state k steps before a mark (above)."""

    def __init__(self, env: Any, start: StartConfig) -> None:
        from aimc.envs.actor import DemonstratorActor

        self.env = env
        self.config = start
        self.demo = DemonstratorActor(demonstrator_options(start), where="start.demonstrator")
        self.dusk = float(self.demo.config.night_daylight)
        self.warmup: list[tuple[np.ndarray, int]] = []
        """The replayed (frame, action) pairs just before the start state, oldest first; [] after a plain reset."""
        self.started: dict[str, int] | None = None
        """{world_seed, mark_step, back, reached} of the last start-state reset: the world played, T, k, and
        whether the episode's own steps have reached the mark themselves (1) or not yet (0); else None."""
        self._request: StartRequest | None = None
        self._occ: dict[str, list[int]] = {}
        self._t = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        opts = dict(options or {})
        request: StartRequest | None = opts.pop("start", None)
        self.warmup, self.started, self._request, self._occ, self._t = [], None, request, {}, 0
        if request is None:
            return self.env.reset(seed=seed, options=opts or None)
        if seed is None:
            raise EpisodeError("a start-state episode needs a world seed")
        world, played = None, None
        for attempt in range(self.config.tries):
            world = seed if attempt == 0 else derive_seed(seed, "start-world", attempt)
            played = self._play_to_mark(world, request)
            if played is not None:
                break
        if played is None:
            who = "the policy's day, then the demonstrator" if request.lead is not None else "the demonstrator"
            raise EpisodeError(f"start states: {who} (task {request.task!r}) reached the mark "
                               f"{self.config.until!r} within start.max_demo_steps={self.config.max_demo_steps} in none "
                               f"of {self.config.tries} worlds from seed {seed}; raise start.max_demo_steps or leave "
                               "the task out of start.tasks")
        actions, led = played
        begin = max(0, len(actions) - request.back)
        obs, info = self.env.reset(seed=world, options=opts or None)
        for t, a in enumerate(actions[:begin]):
            if t >= begin - self.config.warmup:
                self.warmup.append((obs[keys.POV], int(a)))
            obs, _, _, _, info = self.env.step(a)
        self.started = {"world_seed": int(world), "mark_step": len(actions), "back": len(actions) - begin,
                        "reached": int(self.config.until != "success" and self._marked({}))}
        if request.lead is not None:
            self.started["lead_steps"] = led
        return obs, {**info, keys.EVENTS: []}  # the replay's last events are not the episode's

    def step(self, action: int) -> Any:
        out = self.env.step(action)
        if self.started is not None and not self.started["reached"]:
            for ev in out[4].get(keys.EVENTS, []):
                self._occ.setdefault(ev, []).append(self._t)
            self.started["reached"] = int(self._marked(self._occ))
        self._t += 1
        return out

    def _dark(self, env: Any) -> bool:
        """The light is below the demonstrator's `night_daylight`: where a leading policy hands over."""
        return float(env.world.daylight) < self.dusk

    def _marked(self, occ: dict[str, list[int]]) -> bool:
        """Whether the mark holds now (`occ`: the events so far, for the success mark)."""
        if self.config.until == "success":
            request = self._request
            return request is not None and request.success is not None and request.success.step(occ) is not None
        dark = self.config.until == "walled_in" or self._dark(self.env)
        return dark and player_enclosed(self.env)

    def _play_to_mark(self, world: int, request: StartRequest) -> tuple[list[int], int] | None:
        """The actions from the reset of `world` (a leading policy's, then the demonstrator's) up to the step the
        mark first holds and how many of them the leading policy played, or None (a player that died, or no mark
        within `max_demo_steps` of the demonstrator's)."""
        obs, _ = self.env.reset(seed=world)
        actions: list[int] = []
        if request.lead is not None:  # the policy's own day first, then the demonstrator from where it stands
            day = request.lead(self.env, obs, self._dark)
            if day is None:
                return None
            actions, obs = list(day[0]), day[1]
            if self._marked({}):
                return actions, len(actions)
        led = len(actions)
        self.demo.reset(self.env, world, request.task)
        occ: dict[str, list[int]] = {}
        for t in range(self.config.max_demo_steps):
            a = int(self.demo.act(self.env, obs, t == 0))
            actions.append(a)
            obs, _, terminated, truncated, info = self.env.step(a)
            if terminated or truncated:
                return None
            for ev in info.get(keys.EVENTS, []):
                occ.setdefault(ev, []).append(t)
            if self._marked(occ):
                return actions, led
        return None
