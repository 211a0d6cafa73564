"""Batched acting for environment loops: N envs, per-env reset, sampled or greedy actions, optional CFG."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from aimc.policy import actions as A
from aimc.policy.base import sample
from aimc.policy.cfg import cfg_forward, cfg_initial_state
from aimc.policy.vpt.model import VPTPolicy, VPTState


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, h, w, 3) -> (N, H, W, 3) with bilinear interpolation.

    Uses OpenCV's ``INTER_LINEAR`` when ``cv2`` is installed (what VPT was trained with: 640x360 squashed to
    128x128); otherwise torch's bilinear (align_corners=False, no antialias), which can differ by 1 level.
    """
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    try:
        import cv2  # type: ignore[import-not-found]

        return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])
    except ImportError:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        y = torch.nn.functional.interpolate(
            x, size=(h, w), mode="bilinear", align_corners=False, antialias=False
        )
        return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Agent:
    """Acts for ``n_envs`` environments at once.

        agent = Agent(policy, n_envs=8, cond_scale=6.0)
        agent.reset()                       # all envs start a new episode
        acts = agent.act(povs, goals)       # dict head -> (8,) int64 numpy
        agent.reset([3])                    # env 3 was reset: forget its memory

    ``cond_scale`` (goal-conditioned policies only) enables classifier-free guidance. ``seed`` makes the
    Gumbel-max sampling reproducible. ``conv_impl``: the policy's convolution algorithm while acting;
    ``"auto"`` = Winograd on CPU (faster for wide CNNs, equal up to float rounding; see
    ``VPTPolicy.set_conv_impl``), direct elsewhere.
    """

    def __init__(
        self,
        policy: VPTPolicy,
        n_envs: int = 1,
        deterministic: bool = False,
        cond_scale: float | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
        conv_impl: str = "auto",
    ) -> None:
        self.policy = policy.eval()
        self.n_envs = int(n_envs)
        self.deterministic = deterministic
        self.cond_scale = cond_scale
        self.device = torch.device(device) if device is not None else policy.net.final_ln.weight.device
        self.policy.to(self.device)
        if conv_impl == "auto":
            conv_impl = "winograd" if self.device.type == "cpu" else "direct"
        self.policy.set_conv_impl(conv_impl)
        if cond_scale is not None and not policy.config.goal_dim:
            raise ValueError("cond_scale needs a goal-conditioned policy (goal_dim > 0)")
        self.generator = torch.Generator(device=self.device)
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self.state: VPTState = self._fresh_state()
        self._first = torch.ones(self.n_envs, dtype=torch.bool, device=self.device)
        self.last_outputs: Any = None

    def _fresh_state(self) -> VPTState:
        if self.cond_scale is None:
            return self.policy.initial_state(self.n_envs, self.device)
        return cfg_initial_state(self.policy, self.n_envs, self.device)

    def reset(self, env_ids: list[int] | np.ndarray | None = None) -> None:
        """Start new episodes: all envs (None) or the listed ones; their memory is masked from the next step."""
        if env_ids is None:
            self.state = self._fresh_state()
            self._first[:] = True
        else:
            self._first[torch.as_tensor(np.asarray(env_ids, dtype=np.int64), device=self.device)] = True

    def _to_tensor(self, pov: np.ndarray | Tensor) -> Tensor:
        if isinstance(pov, Tensor):
            pov = pov.cpu().numpy()
        pov = np.asarray(pov)
        if pov.ndim == 3:
            pov = pov[None]
        if pov.shape[0] != self.n_envs:
            raise ValueError(f"expected {self.n_envs} observations, got {pov.shape[0]}")
        pov = resize_frames(pov.astype(np.uint8, copy=False), self.policy.config.img_shape)
        return torch.from_numpy(np.ascontiguousarray(pov)).to(self.device)

    @torch.inference_mode()
    def act(self, pov: np.ndarray | Tensor, goal: np.ndarray | Tensor | None = None) -> dict[str, np.ndarray]:
        """One step for every env. ``pov``: uint8 (N, H, W, 3); ``goal``: (N, goal_dim) or None."""
        x = self._to_tensor(pov)[:, None]
        g = None
        if goal is not None:
            g = torch.as_tensor(np.asarray(goal), dtype=torch.float32, device=self.device).reshape(
                self.n_envs, 1, -1
            )
        first = self._first[:, None].clone()
        if self.cond_scale is None:
            out, self.state = self.policy(x, g, first, self.state)
        else:
            if g is None:
                g = torch.zeros(self.n_envs, 1, self.policy.config.goal_dim, device=self.device)
            out, self.state = cfg_forward(self.policy, x, g, first, self.state, self.cond_scale)
        self._first[:] = False
        self.last_outputs = out
        logp = {k: v[:, 0] for k, v in out.logp.items()}
        acts = sample(logp, deterministic=self.deterministic, generator=self.generator)
        return {k: v.cpu().numpy() for k, v in acts.items()}

    def act_minerl(
        self, pov: np.ndarray | Tensor, goal: np.ndarray | Tensor | None = None
    ) -> list[dict[str, Any]]:
        """Like :meth:`act`, converted to one MineRL env action dict per env (VPT heads only)."""
        if self.policy.config.action_head != "vpt":
            raise ValueError("act_minerl needs the VPT camera/buttons heads")
        a = self.act(pov, goal)
        return [A.joint_to_env(a["buttons"][i], a["camera"][i], squeeze=True) for i in range(self.n_envs)]
