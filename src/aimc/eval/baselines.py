"""Agent factories the rollout engine runs: the text agent (any cond scale, or zero goal), the scripted
demonstrator in task mode, and uniform random play. Each is a small picklable dataclass whose call
builds an `aimc.envs.Actor` inside a worker process; `TextActor` is also what `aimc play` drives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.envs import Actor, DemonstratorActor, RandomActor


@dataclass(frozen=True)
class RandomFactory:
    """Uniform random actions: the floor every other condition should clear."""

    n_actions: int | None = None
    """Draw from this many actions; None: all of the world's actions."""

    def __call__(self) -> Actor:
        return RandomActor(self.n_actions)


@dataclass(frozen=True)
class DemonstratorFactory:
    """The scripted demonstrator in task mode, pursuing each task's `demo_task` (an upper reference)."""

    config: dict[str, Any] = field(default_factory=dict)
    """DemonstratorConfig fields (mode is task)."""

    def __call__(self) -> Actor:
        return DemonstratorActor({"mode": "task", **self.config})


@dataclass(frozen=True)
class TextAgentFactory:
    """The trained agent from a bundle (`aimc.eval.agent.TextAgent`).

    `zero_goal` gives the unconditional policy (all-zeros goal, no guidance); `cond_scale` None uses
    the bundle's default; `use_prior` None uses the bundle's prior when it has one; `goal_source` ("text",
    "prior" or a predictor directory) picks how prompts become goals (`TextAgent.goal_source`).
    """

    bundle: str
    cond_scale: float | None = None
    zero_goal: bool = False
    use_prior: bool | None = None
    device: str = "cpu"
    goal_source: str | None = None

    def __call__(self) -> Actor:
        from aimc.eval.agent import TextAgent

        agent = TextAgent.from_bundle(self.bundle, device=self.device, goal_source=self.goal_source)
        return TextActor(agent, self.cond_scale, zero_goal=self.zero_goal, use_prior=self.use_prior)


class TextActor:
    """A `TextAgent` as an Actor: each episode's `prompt` becomes its goal (seeded by the episode's seed).

    `goal` (N=1, D) fixes the goal instead (play's video goal or an unconditional policy); `zero_goal` uses the
    all-zeros goal without guidance (the unconditional baseline); `cond_scale` None means the bundle's.

    It is also an `aimc.envs.BatchActor`: `reset_slot` / `act_slots` play many episodes at once with one
    policy forward per step, each slot sampling from its own generator seeded by its episode's seed, so an
    episode takes the same actions as it would alone through `reset` / `act` (up to float rounding of batched
    matrix products, which can flip a near-tie; see tests/eval/test_batched_rollout.py).
    """

    def __init__(self, agent: Any, cond_scale: float | None = None, *, zero_goal: bool = False,
                 use_prior: bool | None = None, goal: np.ndarray | None = None, deterministic: bool = False) -> None:
        self.agent = agent
        self.cond_scale = cond_scale
        self.zero_goal = zero_goal
        self.use_prior = use_prior
        self.goal = goal
        self.deterministic = deterministic
        self._slots_started = False  # the agent holds per-slot episodes (reset_slot), not one (reset)

    def _goal(self, seed: int, prompt: str) -> tuple[np.ndarray, float | None]:
        """(1, D) goal and guidance scale of an episode."""
        if self.goal is not None:
            return self.goal, self.cond_scale
        if self.zero_goal:  # guidance against the zero goal is a no-op; skip the second pass
            return np.zeros((1, max(self.agent.goal_dim, 1)), np.float32), 0.0
        return self.agent.goal_from_text([prompt], use_prior=self.use_prior, seed=seed), self.cond_scale

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        goal, scale = self._goal(seed, prompt)
        self.agent.start(goal, cond_scale=scale, seed=seed)
        self._slots_started = False

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return int(self.agent.act(obs[keys.POV][None], np.array([first]), deterministic=self.deterministic)[0])

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        goal, scale = self._goal(seed, prompt)
        if not self._slots_started:  # fixes the guidance scale (one per actor) and the goal width
            self.agent.start(np.zeros_like(goal), cond_scale=scale)
            self._slots_started = True
        self.agent.restart([slot], goal, seeds=[seed])

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        pov = np.stack([o[keys.POV] for o in obs])  # (B, H, W, 3)
        return self.agent.act(pov, np.asarray(first, bool), deterministic=self.deterministic, env_ids=slots).tolist()
