"""Named loss terms for behaviour cloning; `bc_loss` returns a dict so the loop logs every term."""

from __future__ import annotations

import torch
from torch import Tensor

from aimc.policy.actions import NULL_CAMERA_IDX
from aimc.policy.base import PolicyOutput, entropy


def action_nll(logp: dict[str, Tensor], actions: dict[str, Tensor], camera_mask: bool = False) -> Tensor:
    """(B, T) negative joint log-likelihood: the sum over heads of -log p(label).

    ``camera_mask`` (Minecraft) drops the camera term where the label's camera is the null bin, i.e. where
    the button combo has the camera switched off, so those steps do not train the camera head towards
    "no movement". The reference STEVE-1 run does not mask (default off).
    """
    total = None
    for name, lp in logp.items():
        term = -lp.gather(-1, actions[name].long().unsqueeze(-1)).squeeze(-1)
        if camera_mask and name == "camera":
            term = term * (actions[name] != NULL_CAMERA_IDX).to(term.dtype)
        total = term if total is None else total + term
    assert total is not None
    return total


def bc_loss(out: PolicyOutput, actions: dict[str, Tensor], weight: Tensor, camera_mask: bool = False,
            step_mask: Tensor | None = None) -> dict[str, Tensor]:
    """Mean NLL over the (B, T) steps whose segment is valid (``weight`` (B,) is 0 for dropped items) and,
    given ``step_mask`` (B, T), that are real steps (False on the padding after a short episode's end).

    All steps valid gives exactly the unmasked mean; a chunk with no valid step contributes 0 (the
    denominator is clamped at 1), not NaN. ``loss`` also carries ``0 * value`` so every parameter takes
    part in the graph: distributed data parallel then needs no unused-parameter search (the value head is
    not trained by BC).
    """
    nll = action_nll(out.logp, actions, camera_mask)  # (B, T)
    w = weight.to(nll.dtype)[:, None].expand_as(nll)
    if step_mask is not None:
        w = w * step_mask.to(nll.dtype)  # (B, T)
    denom = w.sum().clamp(min=1.0)
    mean_nll = (nll * w).sum() / denom
    with torch.no_grad():
        ent = (entropy(out.logp) * w).sum() / denom
    return {"loss": mean_nll + 0.0 * out.vpred.float().mean(), "nll": mean_nll.detach(), "entropy": ent}
