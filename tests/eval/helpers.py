"""Picklable agents and envs for rollout tests (a module, so spawned worker processes can import them)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.seeding import derive_seed
from aimc.eval.rollout import EnvSpec

GOAL_DIM = 8


@dataclass(frozen=True)
class TinyPolicyFactory:
    """A random-weight 18x18 VPT policy with an 8-d goal; the goal is a fixed random vector per prompt."""

    cond_scale: float = 0.0
    zero_goal: bool = False
    weights_seed: int = 0

    def __call__(self) -> TinyPolicyAgent:
        return TinyPolicyAgent(self)


class TinyPolicyAgent:
    def __init__(self, spec: TinyPolicyFactory) -> None:
        from aimc.policy.vpt import VPTPolicy, get_config

        torch.manual_seed(spec.weights_seed)
        self.spec = spec
        self.policy = VPTPolicy(get_config("test-tiny", img_shape=(18, 18), goal_dim=GOAL_DIM, action_head="categorical", n_actions=17)).eval()

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        rng = np.random.default_rng(derive_seed(0, prompt))
        goal = np.zeros(GOAL_DIM, np.float32) if self.spec.zero_goal else rng.normal(size=GOAL_DIM).astype(np.float32)
        # row 0 conditioned, row 1 zero goal: classifier-free guidance as STEVE-1 does it
        self.goal = torch.from_numpy(np.stack([goal, np.zeros_like(goal)]))[:, None]  # (2, 1, D)
        self.state = self.policy.initial_state(2)
        self.gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        pov = torch.from_numpy(obs["pov"])[None, None].expand(2, 1, *obs["pov"].shape)  # (2, 1, H, W, 3)
        out, self.state = self.policy(pov, self.goal, torch.tensor([[first], [first]]), self.state)
        lam = self.spec.cond_scale
        logp = {k: (1 + lam) * v[:1] - lam * v[1:] for k, v in out.logp.items()}
        return int(self.policy.sample(type(out)(logp=logp, vpred=out.vpred[:1]), generator=self.gen)["action"][0, 0])


@dataclass(frozen=True)
class FaultyEnvSpec(EnvSpec):
    """Crafter whose episode with world seed s fails once, at step 5, as `faults` says for s.

    "raise": an exception; "exit": the worker process dies; "hang": the step never returns.
    A marker file per (mode, seed) makes the failure happen only on the first attempt.
    """

    marker_dir: str = ""
    faults: tuple[tuple[int, str], ...] = ()

    def make(self) -> Any:
        return _Faulty(super().make(), self)


class _Faulty:
    def __init__(self, env: Any, spec: FaultyEnvSpec) -> None:
        self.env, self.spec, self.t, self.seed = env, spec, 0, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> Any:
        self.t, self.seed = 0, seed
        return self.env.reset(seed=seed)

    def step(self, action: int) -> Any:
        self.t += 1
        mode = dict(self.spec.faults).get(self.seed)
        marker = Path(self.spec.marker_dir) / f"{mode}-{self.seed}"
        if self.t == 5 and mode is not None and not marker.exists():
            marker.touch()
            if mode == "exit":
                os._exit(3)
            if mode == "hang":
                time.sleep(3600)
            raise RuntimeError("injected env failure")
        return self.env.step(action)
