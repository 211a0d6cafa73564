"""Classifier-free guidance (STEVE-1): ``(1 + scale) * logp_cond - scale * logp_uncond`` per head.

The unconditional branch sees the all-zeros goal and keeps its own recurrent state. Unlike the official
code (batch size 1 only), any batch size works: the state has 2B rows, ``[cond rows; uncond rows]``.
The image features are computed once and shared by both branches (the goal is added after the CNN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from aimc.policy.base import PolicyOutput
from aimc.policy.vpt.model import VPTPolicy, VPTState


def guide(logp_cond: dict[str, Tensor], logp_uncond: dict[str, Tensor], scale: float) -> dict[str, Tensor]:
    """Per head ``(1 + scale) * cond - scale * uncond`` on log-softmax outputs; not renormalised (Gumbel-max
    sampling and argmax do not need it). ``scale = 0`` gives the conditional policy."""
    return {k: (1.0 + scale) * logp_cond[k] - scale * logp_uncond[k] for k in logp_cond}


def cfg_initial_state(
    policy: VPTPolicy, batch_size: int, device: torch.device | str | None = None
) -> VPTState:
    """State for :func:`cfg_forward`: 2 * batch_size rows (conditional rows first)."""
    return policy.initial_state(2 * batch_size, device)


def cfg_forward(
    policy: VPTPolicy,
    obs_pov: Tensor,
    goal: Tensor,
    first: Tensor | None,
    state: VPTState | None,
    scale: float,
) -> tuple[PolicyOutput, VPTState]:
    """Guided forward over a (B, T) chunk. ``outputs.logp`` holds the guided scores; ``extras`` keeps
    ``logp_cond`` and ``logp_uncond``; ``vpred`` is the conditional branch's value."""
    if not policy.config.goal_dim:
        raise ValueError("classifier-free guidance needs a goal-conditioned policy (goal_dim > 0)")
    x = policy.encode_images(obs_pov)
    b, t = x.shape[:2]
    g_cond = policy.embed_goal(goal, b, t, x)
    g_uncond = policy.embed_goal(torch.zeros_like(goal), b, t, x)
    assert g_cond is not None and g_uncond is not None
    feats = torch.cat([x + g_cond, x + g_uncond], dim=0)
    if first is None:
        first = torch.zeros(b, t, dtype=torch.bool, device=x.device)
    if state is None:
        state = cfg_initial_state(policy, b, x.device)
    if state.batch_size != 2 * b:
        raise ValueError(
            f"CFG state must have 2 * B = {2 * b} rows (cfg_initial_state), got {state.batch_size}"
        )
    out, new_state = policy.forward_features(feats, torch.cat([first, first], dim=0), state)
    cond = {k: v[:b] for k, v in out.logp.items()}
    uncond = {k: v[b:] for k, v in out.logp.items()}
    guided = PolicyOutput(
        logp=guide(cond, uncond, scale),
        vpred=out.vpred[:b],
        latent=None if out.latent is None else out.latent[:b],
        extras={"logp_cond": cond, "logp_uncond": uncond, "cond_scale": scale},
    )
    return guided, new_state
