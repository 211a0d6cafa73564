"""`TextAgent`: an agent bundle (policy + embedder [+ prior]) that acts in N environments from text or video goals.

    agent = TextAgent.from_bundle("runs/goal")
    goals = agent.goal_from_text(["chop a tree"] * 4)      # (4, D); prior used when the bundle has one
    agent.start(goals, cond_scale=6.0, seed=0)              # a zero row = the unconditional policy
    actions = agent.act(povs, first)                        # uint8 (4, H, W, 3), bool (4,) -> int (4,)
    agent.restart([2], agent.goal_from_text(["drink water"]), seeds=[5])   # env 2 alone starts a new episode
    actions = agent.act(povs[[2]], first[[2]], env_ids=[2])  # only env 2 acts

Classifier-free guidance is STEVE-1's: per head ``(1 + λ)·logp_cond − λ·logp_uncond``, with the
unconditional branch keeping its own recurrent state. Sampling uses the agent's own torch Generator, so
the same seed gives the same rollout. Bundle format: `aimc.train.bundle.AgentBundle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError, CheckpointError
from aimc.core.precision import ACTING_PRECISIONS
from aimc.envs.actions import joint_code
from aimc.policy import Agent, VPTPolicy, load_policy
from aimc.train.bundle import AgentBundle


def read_bundle(path: str | Path) -> dict[str, Any]:
    """Validated bundle.json contents as a dict; a thin alias of `AgentBundle.read(path).to_dict()`."""
    return AgentBundle.read(path).to_dict()


class TextAgent:
    """Text/video-goal agent over a bundle; see the module docstring."""

    def __init__(self, policy: VPTPolicy, bundle: AgentBundle, device: str = "cpu", seed: int = 0,
                 goal_source: str | None = None, temperature: float | None = None, precision: str = "fp32") -> None:
        self.policy = policy.to(device).eval()
        self.bundle = bundle
        self.device = device
        self.seed = seed
        self.goal_source = goal_source
        """None = the bundle's predictor when it has one, else the text side; "text"; "prior"; or a predictor
        directory (`aimc.prior.load_predictor`)."""
        self.cond_scale: float | None = float(bundle.cond_scale) if bundle.cond_scale is not None else None
        t = temperature if temperature is not None else bundle.temperature
        if t is not None and not t > 0:
            raise AimcError(f"temperature must be > 0, got {t}")
        self.temperature = 1.0 if t is None else float(t)
        """Sampling temperature of every episode (`aimc.policy.Agent`): the caller's, else the bundle's, else 1."""
        if precision not in ACTING_PRECISIONS:
            raise AimcError(f"precision must be one of {', '.join(ACTING_PRECISIONS)}, got {precision!r}")
        self.precision = precision
        """What the policy acts in: "fp32", or "bf16" where the device computes it natively (`aimc.policy.Agent`)."""
        self._embedder: Any = None
        self._predictors: dict[str, Any] = {}
        self._agent: Agent | None = None
        self._goals: np.ndarray | None = None

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", seed: int = 0, goal_source: str | None = None,
                    temperature: float | None = None, precision: str = "fp32") -> TextAgent:
        bundle = AgentBundle.read(path)
        agent = cls(load_policy(bundle.policy_dir(), device=device), bundle, device, seed, goal_source, temperature,
                    precision)
        if goal_source not in (None, "text"):
            agent.predictor(goal_source)  # a missing or mis-sized predictor fails here, before any episode
        return agent

    @property
    def meta(self) -> dict[str, Any]:
        """The bundle's bundle.json fields (world, world_config, cond_scale, ...)."""
        return self.bundle.to_dict()

    # ---------------------------------------------------------------------------------- goal side
    @property
    def goal_dim(self) -> int:
        return int(self.policy.config.goal_dim)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from aimc.embed.base import make_embedder

            ref = self.bundle.embedder_ref()
            if ref is None:
                raise AimcError("this bundle has no embedder (an unconditional policy): it cannot embed text or video goals")
            self._embedder = make_embedder(ref, device=self.device)
            if self._embedder.dim != self.goal_dim:
                raise CheckpointError(
                    f"embedder {self.bundle.embedder!r} gives {self._embedder.dim}-d goals but the policy expects {self.goal_dim}")
        return self._embedder

    def _source(self, use_prior: bool | None) -> str:
        """The goal source in effect: `use_prior` (a per-call override) wins over `goal_source`."""
        if use_prior is not None:
            if use_prior and self.bundle.prior_dir() is None:
                raise AimcError("use_prior=True but this bundle has no prior")
            return "prior" if use_prior else "text"
        if self.goal_source is not None:
            return self.goal_source
        return "prior" if self.bundle.prior_dir() is not None else "text"

    def predictor(self, source: str) -> Any:
        """The goal predictor of a source ("text", "prior" = the bundle's, or a directory), loaded once, checked
        against the policy's goal dimension."""
        from aimc.prior.base import TextSide, check_goal_dim, check_goal_space, load_predictor

        if source not in self._predictors:
            if source == "text":
                self._predictors[source] = TextSide(self._encode_text, self.embedder.dim)
            else:
                path = self.bundle.prior_dir() if source == "prior" else Path(source)
                if path is None:
                    raise AimcError("goal source 'prior' but this bundle has no goal predictor; use 'text' or a predictor directory")
                pred = load_predictor(path, device=self.device, text_encoder=self._encode_text)
                check_goal_dim(pred, self.goal_dim, str(path))
                check_goal_space(path, self.bundle.embedder_ref())
                self._predictors[source] = pred
        return self._predictors[source]

    def _encode_text(self, texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return self.embedder.encode_text(list(texts)).float().cpu().numpy()

    def goal_from_text(self, texts: list[str], use_prior: bool | None = None, seed: int = 0) -> np.ndarray:
        """(N, D) float32 goals from the agent's goal source (see `goal_source`); `use_prior` True/False forces the
        bundle's predictor / the text side for this call."""
        if isinstance(texts, str):
            texts = [texts]
        return np.asarray(self.predictor(self._source(use_prior)).sample(list(texts), seed=seed), np.float32)

    def goal_from_video(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (16, H, W, 3) clip -> (D,) visual goal (what the policy was trained on)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] != 16 or frames.dtype != np.uint8:
            raise AimcError(f"a visual goal is a uint8 clip of 16 frames (16, H, W, 3), got {frames.dtype} {frames.shape}")
        with torch.no_grad():
            return self.embedder.encode_clips(frames[None])[0].float().cpu().numpy().astype(np.float32)

    # ---------------------------------------------------------------------------------- acting
    def start(self, goals: np.ndarray, cond_scale: float | None = None, seed: int | None = None) -> None:
        """Begin N parallel episodes with goals (N, D) (zero row = unconditional); resets all memory."""
        goals = np.asarray(goals, np.float32)
        if self.goal_dim:
            if goals.ndim != 2 or goals.shape[1] != self.goal_dim:
                raise AimcError(f"goals must be (N, {self.goal_dim}), got {goals.shape}")
            scale = self.cond_scale if cond_scale is None else float(cond_scale)
        else:
            goals = goals.reshape(len(goals), -1)  # unconditional policy: only N matters
            scale = None
        self._goals = goals
        self._agent = Agent(
            self.policy, n_envs=len(goals), cond_scale=scale if scale else None, device=self.device,
            seed=self.seed if seed is None else seed, temperature=self.temperature, precision=self.precision,
        )

    def restart(self, env_ids: list[int], goals: np.ndarray, seeds: list[int]) -> None:
        """Begin new episodes in envs `env_ids` only, with goals (k, D), fresh memory and each its own sampling
        generator seeded by `seeds`: such an episode acts exactly as a 1-env `start(goal, seed=seed)` would,
        whichever envs share its batch. Envs past the N of `start` are added; `start` sets the guidance scale."""
        if self._agent is None or self._goals is None:
            raise AimcError("call start(goals) before restart()")
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        goals = np.asarray(goals, np.float32).reshape(len(ids), -1)
        if self.goal_dim and goals.shape[1] != self.goal_dim:
            raise AimcError(f"goals must be ({len(ids)}, {self.goal_dim}), got {goals.shape}")
        n = max(self._agent.n_envs, int(ids.max()) + 1 if len(ids) else 0)
        if n > self._agent.n_envs:
            self._agent.resize(n)
        table = np.zeros((n, self._goals.shape[1]), np.float32)  # a new array: `start`'s may be the caller's
        table[: len(self._goals)] = self._goals
        if self.goal_dim:
            table[ids] = goals
        self._goals = table
        self._agent.reset(ids, seeds=seeds)

    def set_goals(self, env_ids: list[int], goals: np.ndarray) -> None:
        """Change the goals (k, D) of envs `env_ids` mid-episode, keeping their memory and sampling generators:
        how a planner moves an episode on to its next sub-goal (`aimc.eval.planner`)."""
        if self._agent is None or self._goals is None:
            raise AimcError("call start(goals) before set_goals()")
        if not self.goal_dim:
            return
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        goals = np.asarray(goals, np.float32).reshape(len(ids), -1)
        if goals.shape[1] != self.goal_dim:
            raise AimcError(f"goals must be ({len(ids)}, {self.goal_dim}), got {goals.shape}")
        if len(ids) and int(ids.max()) >= len(self._goals):
            raise AimcError(f"env {int(ids.max())} has no episode (the agent holds {len(self._goals)})")
        table = self._goals.copy()  # `start`'s array may be the caller's
        table[ids] = goals
        self._goals = table

    def act(self, pov: np.ndarray, first: np.ndarray, deterministic: bool = False,
            env_ids: list[int] | None = None) -> np.ndarray:
        """uint8 (B, H, W, 3) observations and (B,) episode-start flags -> (B,) int actions, for all N envs
        (B = N) or only `env_ids` (the others' memory is left as it is). A VPT-headed policy's two heads come
        as one joint code `buttons * 121 + camera` (`aimc.envs.actions.joint_code`), the Minecraft action."""
        if self._agent is None or self._goals is None:
            raise AimcError("call start(goals) before act()")
        ids = None if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        first = np.asarray(first, bool).reshape(-1)
        if first.any():
            self._agent.reset(np.flatnonzero(first) if ids is None else ids[first])
        self._agent.deterministic = deterministic
        goals = None if not self.goal_dim else self._goals if ids is None else self._goals[ids]
        out = self._agent.act(pov, goals, env_ids=ids)
        if set(out) == {"buttons", "camera"}:  # VPT / STEVE-1 heads: the Minecraft world's joint action code
            return joint_code(out["buttons"], out["camera"])
        if len(out) != 1:
            raise AimcError(f"TextAgent.act returns one discrete action per env; this policy has heads {sorted(out)}")
        return next(iter(out.values())).astype(np.int64)
