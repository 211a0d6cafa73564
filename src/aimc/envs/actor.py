"""The one agent shape every stage drives (`Actor`), and the two actors that need no training.

Collection, evaluation, play and DAgger all run `aimc.envs.episode.run_episode`, which calls
`actor.reset(env, seed, task, prompt)` once after the world is reset and `actor.act(env, obs, first)` before
every step. The env is passed so scripted actors may read the world state; learned ones only use `obs`.

    >>> from aimc.envs import make, run_episode, RandomActor
    >>> record = run_episode(make("crafter"), RandomActor(), world_seed=0, max_steps=10, actor_seed=1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from aimc.core.errors import AimcError


class Actor(Protocol):
    """Chooses actions for one episode at a time.

    Optional attributes read with `getattr`: `current_goal` (str | None: what the last action served, written
    into collected infos as "goal" for labelling) and `config` (dataclass or dict, saved in episode metadata).
    """

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        """Start an episode in the freshly reset `env`: `seed` restarts the actor's randomness, `task` names
        what a scripted actor pursues (None: free play), `prompt` is the instruction a text agent follows."""
        ...

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        """The action index for `obs` (`first` is True on the episode's first step)."""
        ...


class RandomActor:
    """Uniform random actions from a generator seeded per episode: the floor every agent should clear."""

    current_goal: str | None = None

    def __init__(self, n_actions: int | None = None) -> None:
        self.n_actions = n_actions  # None: the world's action_space.n, read at every reset
        self.config: dict[str, Any] = {}
        self.rng = np.random.default_rng(0)
        self._n = n_actions or 0

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        self.rng = np.random.default_rng(seed)
        self._n = self.n_actions or int(env.action_space.n)

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return int(self.rng.integers(self._n))


class DemonstratorActor:
    """The scripted demonstrator (`aimc.envs.demo`) as an Actor, in either of its modes.

    Free play (`mode: free`, data collection) picks its own sub-goals and ignores `task`; task mode
    (`mode: task`, the evaluation baseline and DAgger labels) pursues the `task` given to `reset`, else
    `options["task"]`. `options` are `DemonstratorConfig` fields; `where` names them in errors.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, where: str = "demonstrator") -> None:
        from aimc.core.config import from_dict
        from aimc.envs.demo import CrafterDemonstrator, DemonstratorConfig

        self.demo = CrafterDemonstrator(from_dict(DemonstratorConfig, dict(options or {}), where=where))
        self.task: str | None = None

    @property
    def config(self) -> Any:
        return self.demo.config

    @property
    def current_goal(self) -> str:
        return self.demo.current_goal

    @property
    def label_action(self) -> int | None:
        """DART label: the expert's action for the last state, before the executed noise."""
        return self.demo.expert_action

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        if not getattr(env, "has_demonstrator", False):
            raise AimcError(f"the scripted demonstrator cannot play {type(env).__name__} "
                            "(its world does not declare has_demonstrator); use another agent")
        self.task = None
        if self.demo.config.mode == "task":
            self.task = task or self.demo.config.task
            if self.task is None:
                raise AimcError("the demonstrator in task mode needs a task (give the suite task a demo_task)")
        self.demo.reset(env, seed=seed)

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        return self.demo.act(env, self.task)

    @property
    def label_set(self) -> tuple[int, ...]:
        """The last action and the moves equally good as it (`CrafterDemonstrator.label_set`)."""
        return self.demo.label_set

    @property
    def explored(self) -> bool:
        """Whether the last action came from exploring (no target known or reachable)."""
        return self.demo.explored
