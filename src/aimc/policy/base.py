"""Policy interface shared by the VPT network and anything trained or evaluated like it.

A policy maps a (B, T) chunk of observations, goals and episode-start flags plus a recurrent state to
per-head log-probabilities and a value, and returns the new state:

    outputs, state = policy(obs_pov, goal, first, state)
    loss = -policy.log_prob(outputs, actions).mean()

Actions are dicts ``{head_name: LongTensor (B, T)}`` (VPT: ``camera``, ``buttons``; Crafter: ``action``);
a plain tensor is accepted for single-head policies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class PolicyOutput:
    """What one forward pass returns.

    ``logp``: per head, fp32 log-softmax of ``logits / temperature``, shape (B, T, n) (the official code
    has an extra singleton axis (B, T, 1, n); it is dropped here). ``vpred``: (B, T) *normalised* value
    prediction (denormalise with ``policy.value_head.denormalize``); ``latent``: (B, T, hidsize) features.
    """

    logp: dict[str, Tensor]
    vpred: Tensor
    latent: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def fp32(self) -> PolicyOutput:
        """The same outputs in fp32 (under bf16 autocast the heads may come out bf16; sampling, log-ratios and
        losses are computed in fp32). Tensors inside ``extras`` dicts (guidance's branch scores) too."""
        def f(v: Any) -> Any:
            if isinstance(v, Tensor) and v.is_floating_point():
                return v.float()
            return {k: f(x) for k, x in v.items()} if isinstance(v, dict) else v

        return PolicyOutput(logp=f(self.logp), vpred=self.vpred.float(),
                            latent=None if self.latent is None else self.latent.float(), extras=f(self.extras))


def as_action_dict(actions: dict[str, Tensor] | Tensor, head_names: list[str]) -> dict[str, Tensor]:
    if isinstance(actions, Tensor):
        if len(head_names) != 1:
            raise ValueError(f"this policy has heads {head_names}; pass actions as a dict")
        return {head_names[0]: actions}
    missing = [h for h in head_names if h not in actions]
    if missing:
        raise ValueError(f"actions lack head(s) {missing}; expected keys {head_names}")
    return actions


def log_prob(logp: dict[str, Tensor], actions: dict[str, Tensor] | Tensor) -> Tensor:
    """Joint log-probability: the sum over heads of ``logp[h]`` at ``actions[h]``; shape = actions' shape.

    As in VPT, the camera head counts even when the sampled button combo has the camera meta action off.
    """
    acts = as_action_dict(actions, list(logp))
    total = None
    for name, lp in logp.items():
        a = acts[name].long()
        v = lp.gather(-1, a.unsqueeze(-1)).squeeze(-1)
        total = v if total is None else total + v
    assert total is not None
    return total


def entropy(logp: dict[str, Tensor]) -> Tensor:
    """Sum over heads of the categorical entropy ``-sum p log p``, shape (B, T)."""
    total = None
    for lp in logp.values():
        e = -(lp.exp() * lp).sum(-1)
        total = e if total is None else total + e
    assert total is not None
    return total


def sample(
    logp: dict[str, Tensor], deterministic: bool = False, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Argmax, or Gumbel-max sampling exactly as VPT (works on unnormalised CFG scores too)."""
    out = {}
    for name, lp in logp.items():
        if deterministic:
            out[name] = lp.argmax(-1)
            continue
        u = torch.rand(lp.shape, generator=generator, device=lp.device, dtype=lp.dtype)
        u = torch.where(u == 1.0, torch.full_like(u, 0.999), u)
        out[name] = (lp - torch.log(-torch.log(u))).argmax(-1)
    return out


class Policy(nn.Module, ABC):
    """Base class: subclasses implement ``initial_state`` and ``forward``; the helpers work on outputs."""

    head_names: list[str]

    @abstractmethod
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Any:
        """Recurrent state for `batch_size` fresh episodes."""

    @abstractmethod
    def forward(  # type: ignore[override]
        self, obs_pov: Tensor, goal: Tensor | None, first: Tensor | None, state: Any
    ) -> tuple[PolicyOutput, Any]:
        """(B, T) chunk of observations, goals and episode-start flags -> (outputs, new state)."""

    def log_prob(self, outputs: PolicyOutput, actions: dict[str, Tensor] | Tensor) -> Tensor:
        return log_prob(outputs.logp, actions)

    def entropy(self, outputs: PolicyOutput) -> Tensor:
        return entropy(outputs.logp)

    def sample(
        self, outputs: PolicyOutput, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        return sample(outputs.logp, deterministic=deterministic, generator=generator)
