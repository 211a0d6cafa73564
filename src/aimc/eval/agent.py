"""`TextAgent`: an agent bundle (policy + embedder [+ prior]) that acts in N environments from text or video goals.

    agent = TextAgent.from_bundle("runs/goal")
    goals = agent.goal_from_text(["chop a tree"] * 4)      # (4, D); prior used when the bundle has one
    agent.start(goals, cond_scale=6.0, seed=0)              # a zero row = the unconditional policy
    actions = agent.act(povs, first)                        # uint8 (4, H, W, 3), bool (4,) -> int (4,)

Classifier-free guidance is STEVE-1's: per head ``(1 + λ)·logp_cond − λ·logp_uncond``, with the
unconditional branch keeping its own recurrent state. Sampling uses the agent's own torch Generator, so
the same seed gives the same rollout. Bundle format: see docs/architecture.md (train section).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError, CheckpointError
from aimc.policy import Agent, VPTPolicy, load_policy

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "aimc-agent"


def read_bundle(path: str | Path) -> dict[str, Any]:
    """Validated bundle.json contents; errors say what is wrong in one line."""
    path = Path(path)
    f = path / BUNDLE_FILE
    if not f.is_file():
        raise CheckpointError(f"{path} is not an agent bundle (no {BUNDLE_FILE}); pass a run dir of `aimc train policy`")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != 1:
        raise CheckpointError(f"{f}: not an {BUNDLE_FORMAT} v1 bundle (format={meta.get('format')!r}, version={meta.get('version')!r})")
    for key in ("policy", "embedder", "embed_name", "prior", "cond_scale", "world", "world_config"):
        if key not in meta:
            raise CheckpointError(f"{f}: missing field {key!r}")
    return meta


class TextAgent:
    """Text/video-goal agent over a bundle; see the module docstring."""

    def __init__(self, policy: VPTPolicy, meta: dict[str, Any], root: Path | None = None, device: str = "cpu", seed: int = 0) -> None:
        self.policy = policy.to(device).eval()
        self.meta = meta
        self.root = root
        self.device = device
        self.seed = seed
        self.cond_scale: float | None = float(meta["cond_scale"]) if meta.get("cond_scale") is not None else None
        self._embedder: Any = None
        self._prior: Any = None
        self._agent: Agent | None = None
        self._goals: np.ndarray | None = None

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", seed: int = 0) -> TextAgent:
        path = Path(path)
        meta = read_bundle(path)
        policy = load_policy(path / meta["policy"], device=device)
        return cls(policy, meta, path, device, seed)

    # ---------------------------------------------------------------------------------- goal side
    @property
    def goal_dim(self) -> int:
        return int(self.policy.config.goal_dim)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from aimc.embed.base import make_embedder

            name = self.meta.get("embedder")
            if not name:
                raise AimcError("this bundle has no embedder (an unconditional policy): it cannot embed text or video goals")
            local = self.root / name if self.root is not None else None
            self._embedder = make_embedder(local if local is not None and local.is_dir() else name, device=self.device)
            if self._embedder.dim != self.goal_dim:
                raise CheckpointError(f"embedder {name!r} gives {self._embedder.dim}-d goals but the policy expects {self.goal_dim}")
        return self._embedder

    def goal_from_text(self, texts: list[str], use_prior: bool | None = None, seed: int = 0) -> np.ndarray:
        """(N, D) float32 goals: the embedder's text side, mapped through the bundle's prior when it has one."""
        if isinstance(texts, str):
            texts = [texts]
        with torch.no_grad():
            emb = self.embedder.encode_text(list(texts)).float().cpu().numpy()
        prior_dir = self.meta.get("prior")
        if use_prior is None:
            use_prior = prior_dir is not None
        if use_prior:
            if prior_dir is None:
                raise AimcError("use_prior=True but this bundle has no prior")
            if self._prior is None:
                from aimc.prior import load_prior

                self._prior = load_prior(self.root / prior_dir if self.root is not None else prior_dir)
            emb = np.asarray(self._prior.sample(emb, seed=seed), np.float32)
        return emb.astype(np.float32)

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
            seed=self.seed if seed is None else seed,
        )

    def act(self, pov: np.ndarray, first: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """uint8 (N, H, W, 3) observations and (N,) episode-start flags -> (N,) int actions."""
        if self._agent is None or self._goals is None:
            raise AimcError("call start(goals) before act()")
        first = np.asarray(first, bool).reshape(-1)
        if first.any():
            self._agent.reset(np.flatnonzero(first))
        self._agent.deterministic = deterministic
        out = self._agent.act(pov, self._goals if self.goal_dim else None)
        if len(out) != 1:
            raise AimcError(f"TextAgent.act returns one discrete action per env; this policy has heads {sorted(out)}")
        return next(iter(out.values())).astype(np.int64)
