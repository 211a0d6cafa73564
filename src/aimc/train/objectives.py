"""Named loss terms for behaviour cloning; `bc_loss` returns a dict so the loop logs every term."""

from __future__ import annotations

import torch
from torch import Tensor

from aimc.core.errors import AimcError
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


def head_targets(actions: Tensor, head_sizes: dict[str, int]) -> dict[str, Tensor]:
    """Stored actions (B, T) -> the label of each policy head.

    An episode store holds one integer per step. A categorical head (Crafter) reads it as is. The VPT heads
    read the Minecraft joint code ``buttons * 121 + camera`` that worlds, recordings and converted contractor
    data store (`aimc.envs.actions.joint_code`), split back into its two indices. A label outside its head's
    range would end in an index error deep inside the loss, so it is one clear error here.
    """
    from aimc.envs.actions import N_CAMERA_COMBOS

    top = int(actions.max()) if actions.numel() else 0
    low = int(actions.min()) if actions.numel() else 0
    if set(head_sizes) == {"buttons", "camera"}:
        n = head_sizes["buttons"] * head_sizes["camera"]
        if low < 0 or top >= n:
            raise AimcError(f"stored action {top if top >= n else low} is not a joint code of the VPT heads "
                            f"(0..{n - 1}); train a policy whose action head fits the data's world")
        if head_sizes["camera"] != N_CAMERA_COMBOS:
            raise AimcError(f"the camera head has {head_sizes['camera']} classes, the joint code {N_CAMERA_COMBOS}")
        return {"buttons": torch.div(actions, N_CAMERA_COMBOS, rounding_mode="floor"),
                "camera": torch.remainder(actions, N_CAMERA_COMBOS)}
    if len(head_sizes) == 1:
        (name, size), = head_sizes.items()
        if low < 0 or top >= size:
            raise AimcError(f"stored action {top if top >= size else low} is outside the policy's {size} actions; "
                            "train a policy whose action head fits the data's world (e.g. the VPT heads for "
                            "Minecraft data)")
        return {name: actions}
    raise AimcError(f"no rule maps stored actions to the heads {sorted(head_sizes)}")


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


def kl_categorical(logp_p: dict[str, Tensor], logp_q: dict[str, Tensor]) -> Tensor:
    """KL(p ‖ q) summed over action heads, from per-head log-probabilities (..., n): shape (...)."""
    total = None
    for name, lp in logp_p.items():
        k = (lp.exp() * (lp - logp_q[name])).sum(-1)
        total = k if total is None else total + k
    assert total is not None
    return total


def anchor_kl(out: PolicyOutput, anchor: PolicyOutput, weight: Tensor, step_mask: Tensor | None = None) -> Tensor:
    """Mean KL(anchor ‖ policy) over the (B, T) steps `bc_loss` scores (valid items, real steps)."""
    kl = kl_categorical({k: v.float() for k, v in anchor.logp.items()}, {k: v.float() for k, v in out.logp.items()})
    w = weight.to(kl.dtype)[:, None].expand_as(kl)
    if step_mask is not None:
        w = w * step_mask.to(kl.dtype)
    return (kl * w).sum() / w.sum().clamp(min=1.0)
