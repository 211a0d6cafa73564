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
    """The trained agent from a bundle (`aimc.eval.agent.TextAgent`), with the bundle's planner unless `planner` says.

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
    planner: str | None = None
    """Prompt chaining (`aimc.eval.planner`): "chain", "none", or None for the bundle's own setting."""
    temperature: float | None = None
    """Sampling temperature (`aimc.policy.Agent`); None for the bundle's own (1 when it sets none)."""
    precision: str = "fp32"
    """What the policy acts in: "fp32" or "bf16" (where native; `aimc.policy.Agent`)."""

    def __call__(self) -> Actor:
        from aimc.eval.agent import TextAgent
        from aimc.eval.planner import make_planner

        agent = TextAgent.from_bundle(self.bundle, device=self.device, goal_source=self.goal_source,
                                      temperature=self.temperature, precision=self.precision)
        name = agent.bundle.planner if self.planner is None else self.planner
        planner = None if self.zero_goal else make_planner(name, agent.bundle.world)
        return TextActor(agent, self.cond_scale, zero_goal=self.zero_goal, use_prior=self.use_prior, planner=planner)


class TextActor:
    """A `TextAgent` as an Actor: each episode's `prompt` becomes its goal (seeded by the episode's seed).

    `goal` (N=1, D) fixes the goal instead (play's video goal or an unconditional policy); `zero_goal` uses the
    all-zeros goal without guidance (the unconditional baseline); `cond_scale` None means the bundle's.
    `planner` (`aimc.eval.planner.GoalPlanner`) chains a prompt into sub-instructions: before every step it
    names the text to condition on, and a change moves the episode to that goal without resetting its memory.

    It is also an `aimc.envs.BatchActor`: `reset_slot` / `act_slots` play many episodes at once with one
    policy forward per step, each slot sampling from its own generator seeded by its episode's seed, so an
    episode takes the same actions as it would alone through `reset` / `act` (up to float rounding of batched
    matrix products, which can flip a near-tie; see tests/eval/test_batched_rollout.py).
    """

    def __init__(self, agent: Any, cond_scale: float | None = None, *, zero_goal: bool = False,
                 use_prior: bool | None = None, goal: np.ndarray | None = None, deterministic: bool = False,
                 planner: Any = None) -> None:
        self.agent = agent
        self.cond_scale = cond_scale
        self.zero_goal = zero_goal
        self.use_prior = use_prior
        self.goal = goal
        self.deterministic = deterministic
        self.planner = planner
        self._slots_started = False  # the agent holds per-slot episodes (reset_slot), not one (reset)
        self._plans: dict[int, Any] = {}  # slot -> its episode's Plan (only while a planner chains it)
        self._texts: dict[int, str] = {}  # slot -> the text its goal was made from
        self._goals: dict[int, dict[str, np.ndarray]] = {}  # slot -> text -> goal, for this episode
        self._seeds: dict[int, int] = {}

    def following(self, slot: int = 0) -> str | None:
        """The sub-instruction the slot's episode is conditioned on now; None unless a planner chains it."""
        return self._texts.get(slot) if slot in self._plans else None

    def sub_goal(self, slot: int = 0) -> str | None:
        """The event the slot's planner is after now (the prompt's own event once its prerequisites are in
        hand); None unless a planner chains the episode."""
        plan = self._plans.get(slot)
        if plan is None:
            return None
        night = getattr(self.planner, "night", None)
        if plan.night and night is not None:  # the night rule's instructions are its own, not the chain's events
            key = night.keys.get(self._texts.get(slot))
            if key is not None:
                return key
        return plan.current or plan.event

    def _goal(self, seed: int, prompt: str) -> tuple[np.ndarray, float | None]:
        """(1, D) goal and guidance scale of an episode."""
        if self.goal is not None:
            return self.goal, self.cond_scale
        if self.zero_goal:  # guidance against the zero goal is a no-op; skip the second pass
            return np.zeros((1, max(self.agent.goal_dim, 1)), np.float32), 0.0
        return self.agent.goal_from_text([prompt], use_prior=self.use_prior, seed=seed), self.cond_scale

    def _text_goal(self, slot: int, seed: int, text: str) -> np.ndarray:
        cache = self._goals.setdefault(slot, {})
        if text not in cache:
            cache[text] = self.agent.goal_from_text([text], use_prior=self.use_prior, seed=seed)
        return cache[text]

    def _plan(self, slot: int, env: Any, seed: int, prompt: str) -> str:
        """Start the slot's plan (when a planner chains this episode); the text to condition on first."""
        self._plans.pop(slot, None)
        self._goals.pop(slot, None)
        self._seeds[slot] = seed
        self._texts[slot] = prompt
        if self.planner is not None and self.goal is None and not self.zero_goal and prompt.strip():
            self._plans[slot] = plan = self.planner.start(prompt)
            self._texts[slot] = self.planner.prompt(plan, env)
        return self._texts[slot]

    def _replan(self, slots: list[int], envs: list[Any]) -> None:
        """Move each planned slot whose sub-instruction changed on to its new goal (memory kept)."""
        from aimc.eval.planner import advance

        for slot, text in advance(self.planner, self._plans, self._texts, slots, envs):
            self.agent.set_goals([slot], self._text_goal(slot, self._seeds[slot], text))

    def _start_goal(self, slot: int, env: Any, seed: int, prompt: str) -> tuple[np.ndarray, float | None]:
        text = self._plan(slot, env, seed, prompt)
        if slot in self._plans:
            return self._text_goal(slot, seed, text), self.cond_scale
        return self._goal(seed, prompt)

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        goal, scale = self._start_goal(0, env, seed, prompt)
        self.agent.start(goal, cond_scale=scale, seed=seed)
        self._slots_started = False

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        self._replan([0], [env])
        return int(self.agent.act(obs[keys.POV][None], np.array([first]), deterministic=self.deterministic)[0])

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        goal, scale = self._start_goal(slot, env, seed, prompt)
        if not self._slots_started:  # fixes the guidance scale (one per actor) and the goal width
            self.agent.start(np.zeros_like(goal), cond_scale=scale)
            self._slots_started = True
        self.agent.restart([slot], goal, seeds=[seed])

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        self._replan(slots, envs)
        pov = np.stack([o[keys.POV] for o in obs])  # (B, H, W, 3)
        return self.agent.act(pov, np.asarray(first, bool), deterministic=self.deterministic, env_ids=slots).tolist()
