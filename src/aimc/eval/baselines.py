"""Agent factories the rollout engine runs: the text agent (any cond scale, or zero goal), the scripted
demonstrator in task mode, and uniform random play. Each is a small picklable dataclass whose call
builds the agent inside a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError
from aimc.eval.rollout import EpisodeAgent, EpisodeJob


@dataclass(frozen=True)
class RandomFactory:
    """Uniform random actions: the floor every other condition should clear."""

    n_actions: int = 17

    def __call__(self) -> EpisodeAgent:
        return _RandomAgent(self.n_actions)


class _RandomAgent:
    def __init__(self, n: int) -> None:
        self.n = n
        self.rng = np.random.default_rng(0)

    def begin(self, job: EpisodeJob, env: Any) -> None:
        self.rng = np.random.default_rng(job.agent_seed)

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return int(self.rng.integers(self.n))


@dataclass(frozen=True)
class DemonstratorFactory:
    """The scripted Crafter demonstrator in task mode, pursuing each task's `demo_task` (an upper reference)."""

    config: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> EpisodeAgent:
        return _DemoAgent(self.config)


class _DemoAgent:
    def __init__(self, config: dict[str, Any]) -> None:
        from aimc.core.config import from_dict
        from aimc.envs.demo import CrafterDemonstrator
        from aimc.envs.demo.config import DemonstratorConfig

        self.demo = CrafterDemonstrator(from_dict(DemonstratorConfig, {"mode": "task", **config}, "demonstrator"))
        self.task: str | None = None

    def begin(self, job: EpisodeJob, env: Any) -> None:
        if job.demo_task is None:
            raise AimcError(f"task {job.task!r} has no demo_task; the demonstrator baseline cannot pursue it")
        self.task = job.demo_task
        self.demo.reset(env, seed=job.agent_seed)

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return self.demo.act(env, self.task)


@dataclass(frozen=True)
class TextAgentFactory:
    """The trained agent from a bundle (`aimc.eval.agent.TextAgent`).

    `zero_goal` gives the unconditional policy (all-zeros goal, no guidance); `cond_scale` None uses
    the bundle's default; `use_prior` None uses the bundle's prior when it has one.
    """

    bundle: str
    cond_scale: float | None = None
    zero_goal: bool = False
    use_prior: bool | None = None
    device: str = "cpu"

    def __call__(self) -> EpisodeAgent:
        return _TextEpisodeAgent(self)


class _TextEpisodeAgent:
    def __init__(self, spec: TextAgentFactory) -> None:
        from aimc.eval.agent import TextAgent

        self.spec = spec
        self.agent = TextAgent.from_bundle(spec.bundle, device=spec.device)

    def begin(self, job: EpisodeJob, env: Any) -> None:
        if self.spec.zero_goal:
            goal = np.zeros((1, max(self.agent.goal_dim, 1)), np.float32)
            scale: float | None = 0.0  # guidance against the zero goal is a no-op; skip the second pass
        else:
            goal = self.agent.goal_from_text([job.prompt], use_prior=self.spec.use_prior, seed=job.agent_seed)
            scale = self.spec.cond_scale
        self.agent.start(goal, cond_scale=scale, seed=job.agent_seed)

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return int(self.agent.act(obs[keys.POV][None], np.array([first]))[0])
