"""`bc_loss`: the mean NLL over valid items and, given a step mask, over the real steps only."""

from __future__ import annotations

import torch

from aimc.policy.base import PolicyOutput
from aimc.train.objectives import bc_loss

B, T = 3, 8
HEADS = {"buttons": 5, "camera": 4}


def _case(seed: int = 0) -> tuple[PolicyOutput, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    logits = {h: torch.randn(B, T, n, generator=g, requires_grad=True) for h, n in HEADS.items()}
    out = PolicyOutput(logp={h: x.log_softmax(-1) for h, x in logits.items()}, vpred=torch.randn(B, T, generator=g))
    actions = {h: torch.randint(0, n, (B, T), generator=g) for h, n in HEADS.items()}
    return out, actions, logits


def test_mask_of_all_steps_changes_nothing() -> None:
    out, actions, _ = _case()
    weight = torch.tensor([True, False, True])
    old = bc_loss(out, actions, weight)
    new = bc_loss(out, actions, weight, step_mask=torch.ones(B, T, dtype=torch.bool))
    assert all(torch.equal(old[k], new[k]) for k in ("loss", "nll", "entropy"))


def test_masked_mean_is_the_mean_over_valid_steps() -> None:
    out, actions, _ = _case(1)
    weight = torch.tensor([True, True, False])
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, :5] = True  # a short episode: 5 real steps, then padding
    mask[1] = True
    mask[2, :3] = True  # a failed item: its weight 0 wins
    steps = [(b, t) for b in range(B) for t in range(T) if weight[b] and mask[b, t]]
    assert len(steps) == 13
    logp = {h: lp.detach() for h, lp in out.logp.items()}
    by_hand = sum(-sum(float(logp[h][b, t, actions[h][b, t]]) for h in HEADS) for b, t in steps) / len(steps)
    ent = sum(float(-(lp[b, t].exp() * lp[b, t]).sum()) for b, t in steps for lp in logp.values()) / len(steps)
    got = bc_loss(out, actions, weight, step_mask=mask)
    assert abs(float(got["nll"]) - by_hand) < 1e-5 and abs(float(got["entropy"]) - ent) < 1e-5
    unmasked = bc_loss(out, actions, weight)  # what the padding would have added
    assert abs(float(unmasked["nll"]) - float(got["nll"])) > 1e-3


def test_a_chunk_of_only_padding_contributes_zero() -> None:
    out, actions, logits = _case(2)
    got = bc_loss(out, actions, torch.ones(B, dtype=torch.bool), step_mask=torch.zeros(B, T, dtype=torch.bool))
    assert float(got["loss"].detach()) == 0.0 and float(got["nll"]) == 0.0 and float(got["entropy"]) == 0.0
    got["loss"].backward()
    assert all(torch.equal(x.grad, torch.zeros_like(x)) for x in logits.values())  # no NaN, no push


def test_anchor_kl_is_zero_against_itself_and_the_masked_mean_otherwise() -> None:
    from aimc.train.objectives import anchor_kl

    out, _, _ = _case(3)
    ref, _, _ = _case(4)
    weight = torch.tensor([True, True, False])
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 6:] = False
    assert float(anchor_kl(out, out, weight, mask).detach()) == 0.0
    steps = [(b, t) for b in range(B) for t in range(T) if weight[b] and mask[b, t]]
    p, q = ({h: lp.detach() for h, lp in o.logp.items()} for o in (ref, out))
    by_hand = sum(float((p[h][b, t].exp() * (p[h][b, t] - q[h][b, t])).sum()) for b, t in steps for h in HEADS) / len(steps)
    got = float(anchor_kl(out, ref, weight, mask).detach())
    assert got > 0 and abs(got - by_hand) < 1e-5
