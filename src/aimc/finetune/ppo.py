"""`run_ppo`: PPO fine-tuning of an agent bundle's policy on its tasks' success events, with a KL anchor.

Iteration k (1..K): the current policy plays `episodes_per_iteration` complete episodes from training prompts
(`aimc.finetune.ppo_rollout`); GAE turns their rewards and value estimates into advantages (normalised over
the iteration) and returns (the value head's targets, in its normalised space after its EWMA normaliser has
seen them, as VPT's ScaledMSEHead does); then `epochs` passes over the episodes in minibatches of whole
episodes, each replayed from the policy's initial state in `chunk_len` chunks (truncated BPTT, state carried
detached), minimise per step

    clipped surrogate + vf_coef·value loss − ent_coef·entropy + ρ_k·KL(π_θ ‖ π_anchor)

with π_anchor the frozen starting policy on the same sequences (KL summed over action heads; its
log-probabilities are computed once per iteration, since they do not depend on θ) and ρ_k = kl_coef ·
kl_decay^(k−1). In the first `value_warmup_iterations` only the value head trains, on detached features.
GAE and the loss are written here rather than taken from torchrl (whose dependency chain cannot be vetted
offline); tests/finetune/test_ppo.py checks them against naive per-step reference loops.

Layout of ``out``::

    ppo_config.json            resolved config (the saved one wins on resume; only `iterations`, `threads` may change)
    checkpoints/step_<k>/      policy/ (config.json + model.safetensors, value normaliser included),
                               train_state/{optimizer.pt, rng.pt, state.json (iteration, summary rows)}
    checkpoints/last           the newest complete iteration (the last 2 are kept)
    tensorboard/               ppo/* and perf/* scalars per iteration
    ppo_summary.json           per-iteration table (also printed by `aimc train ppo`)
    bundle/                    self-contained agent bundle with the newest policy, after every iteration

Resume: rerunning the same command continues after the last finished iteration (an interrupted iteration is
replayed from its start: its episodes are a function of the seed), so it ends with the numbers of an
uninterrupted run (same seed, CPU, same thread count).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.core.io import atomic_write_bytes, atomic_write_json
from aimc.core.precision import resolve_mixed_precision
from aimc.core.rundir import RunDir
from aimc.core.seeding import derive_seed
from aimc.eval.planner import CHAIN_PLANNERS, check_planner, make_planner, night_texts
from aimc.finetune.ppo_bc import BCStream
from aimc.finetune.ppo_config import CONFIG_FILE, RESUMABLE, PPOConfig, kl_coef_at, lr_at
from aimc.finetune.ppo_rollout import (
    APPROACH_WORLDS,
    PolicyActor,
    RolloutEngine,
    TaskSpec,
    Trajectory,
    acting_logp,
    make_jobs,
    mask_bits,
    task_specs,
    weighted_schedule,
)
from aimc.finetune.ppo_workers import RolloutPool
from aimc.policy.base import entropy, log_prob
from aimc.train.bundle import AgentBundle
from aimc.train.objectives import kl_categorical

SUMMARY_FILE = "ppo_summary.json"
KEEP_CHECKPOINTS = 2
ANCHOR_CHUNK = (16, 16)
"""(steps, episodes) per forward of the anchor's replay: on CPU, forwards of a few hundred frames run ~1.8x
faster per frame than 1024-frame ones (their activations stay in cache)."""


# ------------------------------------------------------------------------------------------- the maths
def gae(rewards: np.ndarray, values: np.ndarray, bootstrap: np.ndarray, lengths: np.ndarray, gamma: float,
        lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation for N padded episodes: rewards and values (N, T), `bootstrap` (N,) the
    value after each episode's last step (0 at a terminal state), `lengths` (N,) >= 1. Returns (advantages,
    returns = advantages + values), float64 (N, T), zero past each length. Vectorised over episodes."""
    r, v = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
    n, t = r.shape
    lengths = np.asarray(lengths, np.int64)
    valid = np.arange(t)[None] < lengths[:, None]
    v_next = np.zeros_like(v)
    v_next[:, :-1] = v[:, 1:]
    v_next[np.arange(n), lengths - 1] = np.asarray(bootstrap, np.float64)
    delta = np.where(valid, r + gamma * v_next - v, 0.0)  # (N, T); zero past the end, so A is too
    adv = np.zeros((n, t + 1))
    for i in range(t - 1, -1, -1):
        adv[:, i] = delta[:, i] + gamma * lam * adv[:, i + 1]
    adv = adv[:, :t]
    return adv, np.where(valid, adv + v, 0.0)


def ppo_loss(logp_new: Tensor, logp_old: Tensor, adv: Tensor, vpred: Tensor, vtarget: Tensor, ent: Tensor, kl: Tensor,
             mask: Tensor, *, clip: float, vf_coef: float, ent_coef: float, kl_coef: float,
             denom: float | None = None, pg_coef: float = 1.0) -> dict[str, Tensor]:
    """Per-step PPO terms averaged over the `mask`ed steps (or summed and divided by `denom`, so the chunks of
    one minibatch add up to its mean): ``loss`` = pg_coef·clipped surrogate + vf_coef·½(vpred − vtarget)² −
    ent_coef·entropy + kl_coef·KL, and the diagnostics ``policy_loss``, ``value_loss``, ``entropy``,
    ``kl_anchor``, ``approx_kl`` ((r − 1) − log r) and ``clip_frac`` (|r − 1| > clip)."""
    mask = mask.bool()
    d = float(mask.sum().clamp_min(1)) if denom is None else float(denom)

    def mean(x: Tensor) -> Tensor:
        return torch.where(mask, x, torch.zeros_like(x)).sum() / d

    log_ratio = torch.where(mask, logp_new - logp_old, torch.zeros_like(logp_new))
    ratio = log_ratio.exp()
    pg = -torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
    vf = 0.5 * (vpred.to(vtarget.dtype) - vtarget) ** 2
    loss = mean(pg_coef * pg + vf_coef * vf - ent_coef * ent + kl_coef * kl)
    with torch.no_grad():
        extra = {"approx_kl": mean(ratio - 1.0 - log_ratio), "clip_frac": mean(((ratio - 1.0).abs() > clip).to(ratio.dtype))}
    return {"loss": loss, "policy_loss": mean(pg), "value_loss": mean(vf), "entropy": mean(ent), "kl_anchor": mean(kl), **extra}


# ------------------------------------------------------------------------------------------- replaying episodes
def policy_step(policy: Any, pov: Tensor, goal: Tensor, first: Tensor, state: Any, cond_scale: float) -> tuple[Any, Any]:
    """One (B, t) chunk through the policy as it acts: plain, or guided (state of 2B rows) with a scale > 0."""
    if cond_scale:
        from aimc.policy import cfg_forward

        return cfg_forward(policy, pov, goal, first, state, cond_scale)
    return policy(pov, goal, first, state)


class _Replay:
    """A batch of episodes sorted longest first, replayed chunk by chunk from the initial state: at chunk c
    only the rows whose episode is still running take part (a prefix, so the state keeps its first rows)."""

    def __init__(self, policy: Any, cond_scale: float) -> None:
        self.policy, self.cond_scale = policy, cond_scale
        self.state: Any = None
        self.rows = 0

    def forward(self, pov: Tensor, goal: Tensor, first: Tensor) -> Any:
        n = pov.shape[0]
        if self.state is not None and n < self.rows:
            keep = torch.arange(n, device=pov.device)
            if self.cond_scale:  # [cond rows; uncond rows]
                keep = torch.cat([keep, keep + self.rows])
            self.state = self.state.index(keep)
        out, state = policy_step(self.policy, pov, goal, first, self.state, self.cond_scale)
        self.state, self.rows = state.detach(), n
        return out


@dataclass
class _Minibatch:
    lengths: np.ndarray  # (B,) longest first
    tensors: dict[str, Tensor]  # frames (B, T, H, W, 3), actions, logp_old, adv, vtarget (B, T), goal (B, D) or
    # (B, T, D) under a planner, anchor_<head> (B, T, n)


def _collate(trajs: list[Trajectory], per_step: dict[str, list[np.ndarray]], device: str) -> _Minibatch:
    """Pad episodes (already sorted longest first) to the longest: frames, actions and each per-step array."""
    lengths = np.array([t.steps for t in trajs])
    b, t = len(trajs), int(lengths.max())
    frames = np.zeros((b, t, *trajs[0].frames.shape[1:]), np.uint8)
    actions = np.zeros((b, t), np.int64)
    for i, tr in enumerate(trajs):
        frames[i, : tr.steps] = tr.frames
        actions[i, : tr.steps] = tr.actions
    out = {"frames": torch.from_numpy(frames).to(device), "actions": torch.from_numpy(actions).to(device)}
    goals = per_step["goal"]
    if all(g.ndim == 1 for g in goals):  # one goal per episode: (B, D)
        out["goal"] = torch.from_numpy(np.stack(goals).astype(np.float32)).to(device)
    else:  # a planner changed some episode's goal: every step's, (B, T, D)
        pad = np.zeros((b, t, goals[0].shape[-1]), np.float32)
        for i, (g, tr) in enumerate(zip(goals, trajs, strict=True)):
            pad[i, : tr.steps] = g
        out["goal"] = torch.from_numpy(pad).to(device)
    for key, arrays in per_step.items():
        if key == "goal":
            continue
        pad = np.zeros((b, t, *arrays[0].shape[1:]), np.float32)
        for i, a in enumerate(arrays):
            pad[i, : len(a)] = a
        out[key] = torch.from_numpy(pad).to(device)
    return _Minibatch(lengths, out)


def _chunks(lengths: np.ndarray, chunk_len: int) -> list[tuple[int, slice]]:
    """(rows still running, time slice) per chunk of a batch sorted longest first."""
    t = int(lengths.max())
    return [(int((lengths > s).sum()), slice(s, min(s + chunk_len, t))) for s in range(0, t, chunk_len)]


def _chunk_inputs(mb: _Minibatch, n: int, sl: slice) -> tuple[Tensor, Tensor, Tensor]:
    frames = mb.tensors["frames"][:n, sl]  # (n, t, H, W, 3)
    t = frames.shape[1]
    goal = mb.tensors["goal"]
    goal = goal[:n, sl] if goal.ndim == 3 else goal[:n, None].expand(n, t, -1)  # (n, t, D)
    first = torch.zeros(n, t, dtype=torch.bool, device=frames.device)
    first[:, 0] = sl.start == 0
    return frames, goal, first


@torch.no_grad()
def anchor_logp(anchor: Any, trajs: list[Trajectory], goals: list[np.ndarray], cond_scale: float, device: str = "cpu",
                chunk_len: int = ANCHOR_CHUNK[0], batch_episodes: int = ANCHOR_CHUNK[1],
                autocast: Callable[[], Any] = contextlib.nullcontext) -> list[dict[str, np.ndarray]]:
    """Per episode, the anchor's acting log-probabilities at every step {head: (L, n)}: one no-grad replay per
    iteration (they do not depend on the trained policy). Without gradients the chunking changes nothing but
    float rounding, so it is sized for speed (`ANCHOR_CHUNK`)."""
    order = sorted(range(len(trajs)), key=lambda i: -trajs[i].steps)
    out: list[dict[str, np.ndarray]] = [{} for _ in trajs]
    for lo in range(0, len(order), batch_episodes):
        idx = order[lo: lo + batch_episodes]
        mb = _collate([trajs[i] for i in idx], {"goal": [goals[i] for i in idx]}, device)
        replay = _Replay(anchor, cond_scale)
        parts: dict[str, list[Tensor]] = {}
        for n, sl in _chunks(mb.lengths, chunk_len):
            with autocast():
                fwd = replay.forward(*_chunk_inputs(mb, n, sl))
            lp = acting_logp(_fp32(fwd), bool(cond_scale))
            for head, v in lp.items():
                full = torch.zeros(len(idx), v.shape[1], v.shape[2])
                full[:n] = v.float().cpu()
                parts.setdefault(head, []).append(full)
        for head, ps in parts.items():
            full = torch.cat(ps, 1).numpy()  # (B, T, n)
            for j, i in enumerate(idx):
                out[i][head] = full[j, : trajs[i].steps]
    return out


def autocast_for(cfg: PPOConfig) -> Any:
    """A factory of the update's autocast context: bf16 where `cfg.mixed_precision` asks for it and the device
    computes bf16 natively, else a no-op (`aimc.core.precision`)."""
    device_type = torch.device(cfg.device).type
    on = resolve_mixed_precision(cfg.mixed_precision, device_type) == "bf16"
    return lambda: torch.autocast(device_type, dtype=torch.bfloat16, enabled=on)


def _fp32(out: Any) -> Any:
    """A forward's outputs back in fp32 (under autocast its heads may come out bf16): the log-probabilities,
    ratios and losses are computed in fp32."""
    return dataclasses.replace(out, logp={k: v.float() for k, v in out.logp.items()}, vpred=out.vpred.float(),
                               latent=None if out.latent is None else out.latent.float())


# ------------------------------------------------------------------------------------------- one update
@dataclass
class IterationData:
    """An iteration's episodes with what the update reads."""

    trajs: list[Trajectory]
    goals: list[np.ndarray]
    """Each episode's goal (D,), or its goal at every step (L, D) when a planner changed it."""
    adv: list[np.ndarray]
    """Normalised advantages per episode (L,)."""
    vtarget: list[np.ndarray]
    """Value targets per episode (L,), in the value head's normalised space."""
    anchor: list[dict[str, np.ndarray]] | None
    """The anchor's log-probabilities per episode, or None during the value warm-up (the policy is the anchor)."""
    value_ev: float
    """Explained variance of the rollout values for the returns (how good the critic was)."""


def prepare_iteration(policy: Any, trajs: list[Trajectory], goals: list[np.ndarray], cfg: PPOConfig) -> IterationData:
    """GAE, advantage normalisation, the normaliser update and the normalised value targets."""
    n, t = len(trajs), max(tr.steps for tr in trajs)
    lengths = np.array([tr.steps for tr in trajs])
    rewards, values = np.zeros((n, t)), np.zeros((n, t))
    for i, tr in enumerate(trajs):
        rewards[i, : tr.steps], values[i, : tr.steps] = tr.rewards, tr.values
    adv, ret = gae(rewards, values, np.array([tr.bootstrap for tr in trajs]), lengths, cfg.gamma, cfg.gae_lambda)
    valid = np.arange(t)[None] < lengths[:, None]
    valid &= np.arange(t)[None] >= np.array([tr.warm for tr in trajs])[:, None]  # a start state's warm-up: no loss
    a = adv[valid]
    adv = (adv - a.mean()) / (a.std() + 1e-8)
    var = ret[valid].var()
    ev = float(1.0 - (ret[valid] - values[valid]).var() / var) if var > 0 else float("nan")
    norm = policy.value_head.normalizer
    norm.update(torch.as_tensor(ret[valid], dtype=torch.float32))
    with torch.no_grad():
        target = norm.normalize(torch.as_tensor(ret, dtype=torch.float32)).cpu().numpy()
    return IterationData(trajs, goals, [adv[i, : tr.steps].astype(np.float32) for i, tr in enumerate(trajs)],
                         [target[i, : tr.steps] for i, tr in enumerate(trajs)], None, ev)


STAT_KEYS = ("loss", "policy_loss", "value_loss", "entropy", "kl_anchor", "approx_kl", "clip_frac")


def _minibatch(data: IterationData, idx: list[int], device: str) -> _Minibatch:
    """Episodes `idx` (sorted longest first here) padded, with what the loss reads per step."""
    idx = sorted(idx, key=lambda i: -data.trajs[i].steps)
    per_step: dict[str, list[np.ndarray]] = {
        "goal": [data.goals[i] for i in idx], "logp_old": [data.trajs[i].logp for i in idx],
        "adv": [data.adv[i] for i in idx], "vtarget": [data.vtarget[i] for i in idx]}
    for head in data.anchor[0] if data.anchor is not None else ():
        per_step[f"anchor_{head}"] = [data.anchor[i][head] for i in idx]
    if data.trajs[idx[0]].teacher_logp is not None:
        per_step["teacher_logp"] = [data.trajs[i].teacher_logp for i in idx]  # type: ignore[misc]
    if data.trajs[idx[0]].labels is not None:
        per_step["labels"] = [data.trajs[i].labels for i in idx]  # type: ignore[misc]
    if any(data.trajs[i].warm for i in idx):  # 1 where the policy acted, 0 on a start state's warm-up
        per_step["own"] = [_own_steps(data.trajs[i]) for i in idx]
    return _collate([data.trajs[i] for i in idx], per_step, device)


def _own_steps(tr: Trajectory) -> np.ndarray:
    """Per step: 1 the policy acted, 0 a warm-up step replaying the demonstrator's action (which `start.bc_coef`
    clones), -1 a warm-up step replaying a leading policy's own day (`Trajectory.lead_warm`: cloned by nothing)."""
    own = (np.arange(tr.steps) >= tr.warm).astype(np.float32)
    own[: tr.lead_warm] = -1.0
    return own


def ppo_update(policy: Any, optimizer: torch.optim.Optimizer, data: IterationData, cfg: PPOConfig, k: int,
               cond_scale: float, warmup: bool, progress: Any = None, bc: BCStream | None = None) -> dict[str, float]:
    """`epochs` passes over the iteration's episodes, one optimiser step per minibatch; returns the mean of each
    loss term over the minibatches, the gradient norm, and ``ratio_dev_first``: max |r − 1| over the first
    minibatch of the first epoch (0 up to float noise: the replay recomputes the rollout's log-probabilities).
    With `bc` (and outside the value warm-up) each step also adds ``cfg.bc.coef`` times the NLL of that step's
    demonstration segments; ``bc_nll`` is its mean over the steps. With the rollouts' expert labels
    (`Trajectory.labels`, `cfg.expert.coef` > 0, outside the warm-up) each step adds ``cfg.expert.coef`` times the
    mean NLL of the minibatch's labels (over its labelled steps) under the acting policy; ``expert_nll``. With the
    rollouts' teacher log-probabilities (`Trajectory.teacher_logp`, `cfg.teacher_coef` > 0, outside the warm-up)
    each step adds ``cfg.teacher_coef`` times KL(teacher ‖ acting policy), averaged like the PPO terms;
    ``kl_teacher``."""
    kl_coef = kl_coef_at(cfg, k)
    autocast = autocast_for(cfg)
    sums = dict.fromkeys(STAT_KEYS, 0.0)
    bc_nll: list[float] = []
    expert_sum, expert_on = 0.0, cfg.expert.coef > 0 and data.trajs[0].labels is not None and not warmup
    teacher_sum, teacher_on = 0.0, cfg.teacher_coef > 0 and data.trajs[0].teacher_logp is not None and not warmup
    warm_sum, warm_on = 0.0, cfg.start.bc_coef > 0 and any(tr.warm for tr in data.trajs) and not warmup
    grad_norms: list[float] = []
    ratio_dev_first = 0.0
    steps = 0
    policy.train()
    for epoch in range(cfg.epochs):
        perm = np.random.default_rng(derive_seed(cfg.seed, "ppo-minibatch", k, epoch)).permutation(len(data.trajs))
        for lo in range(0, len(perm), cfg.minibatch_episodes):
            mb = _minibatch(data, perm[lo: lo + cfg.minibatch_episodes].tolist(), cfg.device)
            lengths = torch.as_tensor(mb.lengths, device=cfg.device)
            own = float(sum(data.trajs[i].own_steps for i in perm[lo: lo + cfg.minibatch_episodes]))
            warm_steps = float(sum(data.trajs[i].warm - data.trajs[i].lead_warm for i in perm[lo: lo + cfg.minibatch_episodes]))
            replay = _Replay(policy, cond_scale)
            if expert_on:  # labelled steps of the minibatch (padding is 0, a label; lengths mask it)
                valid = torch.arange(mb.tensors["labels"].shape[1])[None] < torch.as_tensor(mb.lengths)[:, None]
                mb_labelled = int(((mb.tensors["labels"].cpu() > 0) & valid).sum())
            for n, sl in _chunks(mb.lengths, cfg.chunk_len):
                pov, goal, first = _chunk_inputs(mb, n, sl)  # (n, t, H, W, 3), (n, t, D), (n, t)
                if warmup:  # the policy is frozen: only the value head sees gradients, on detached features
                    with torch.no_grad(), autocast():
                        out = _fp32(replay.forward(pov, goal, first))
                    vpred = policy.value_head(out.latent)  # (n, t)
                else:
                    with autocast():
                        out = _fp32(replay.forward(pov, goal, first))
                    vpred = out.vpred
                logp = acting_logp(out, bool(cond_scale))  # {head: (n, t, actions)}
                tens = {key: v[:n, sl] for key, v in mb.tensors.items() if key not in ("frames", "goal")}
                anchor = {h[len("anchor_"):]: v for h, v in tens.items() if h.startswith("anchor_")}
                kl = kl_categorical(logp, anchor) if anchor and not warmup else torch.zeros_like(vpred)
                mask = torch.arange(sl.start, sl.stop, device=pov.device)[None] < lengths[:n, None]  # (n, t)
                warm_mask = None
                if "own" in tens:  # a start state's warm-up steps build the memory but take no PPO loss
                    warm_mask = mask & (tens["own"] == 0)  # the demonstrator's replayed steps (-1: a policy's day)
                    mask = mask & (tens["own"] > 0)
                lp_new = log_prob(logp, {h: tens["actions"] for h in logp})
                terms = ppo_loss(lp_new, tens["logp_old"], tens["adv"], vpred, tens["vtarget"], entropy(logp), kl, mask,
                                 clip=cfg.clip, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef, kl_coef=kl_coef,
                                 denom=own, pg_coef=cfg.pg_coef)
                if teacher_on:  # KL(teacher ‖ policy): the teacher's distribution as a soft label
                    (head,) = logp  # one categorical head (checked before the run)
                    kl_t = kl_categorical({head: tens["teacher_logp"]}, logp)
                    kl_t = torch.where(mask, kl_t, torch.zeros_like(kl_t)).sum() / own
                    terms["loss"] = terms["loss"] + cfg.teacher_coef * kl_t
                    teacher_sum += float(kl_t.detach())
                if expert_on:  # -log of the probability the acting policy gives the expert's action set
                    (lp,) = logp.values()  # one categorical head (checked before the run)
                    allowed = mask_bits(tens["labels"], lp.shape[-1])
                    lab = mask & allowed.any(-1)
                    set_lp = torch.logsumexp(lp.masked_fill(~allowed, -math.inf), -1)
                    nll = -torch.where(lab, set_lp, torch.zeros_like(set_lp)).sum() / max(mb_labelled, 1)
                    terms["loss"] = terms["loss"] + cfg.expert.coef * nll
                    expert_sum += float(nll.detach())
                if warm_on and warm_mask is not None and warm_steps:  # clone the demonstrator's replayed actions
                    lp_warm = torch.where(warm_mask, lp_new, torch.zeros_like(lp_new))
                    nll_w = -lp_warm.sum() / warm_steps
                    terms["loss"] = terms["loss"] + cfg.start.bc_coef * nll_w
                    warm_sum += float(nll_w.detach())
                if terms["loss"].requires_grad:
                    terms["loss"].backward()
                for key in STAT_KEYS:
                    sums[key] += float(terms[key].detach())
                if epoch == 0 and lo == 0:
                    dev = (lp_new.detach() - tens["logp_old"]).exp().sub(1).abs()[mask]
                    ratio_dev_first = max(ratio_dev_first, float(dev.max()) if dev.numel() else 0.0)
            if bc is not None and not warmup:
                with autocast():
                    nll = bc.loss(policy, bc.batch(k, steps), cfg.device).float()
                (cfg.bc.coef * nll).backward()
                bc_nll.append(float(nll.detach()))
            params = [p for p in policy.parameters() if p.grad is not None]
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or math.inf)))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            if progress is not None:
                progress.update(1)
    stats = {key: v / max(steps, 1) for key, v in sums.items()}
    if bc_nll:
        stats["bc_nll"] = float(np.mean(bc_nll))
    if expert_on:
        stats["expert_nll"] = expert_sum / max(steps, 1)
    if teacher_on:
        stats["kl_teacher"] = teacher_sum / max(steps, 1)
    if warm_on:
        stats["start_bc_nll"] = warm_sum / max(steps, 1)
    return {**stats, "grad_norm": float(np.mean(grad_norms)), "ratio_dev_first": ratio_dev_first, "optimizer_steps": steps}


def make_optimizer(policy: Any, cfg: PPOConfig) -> torch.optim.Optimizer:
    """Adam (eps 1e-5) with the value head's linear layer at `value_lr` and everything else at `lr`; the value
    normaliser's statistics are not parameters that train."""
    head = [p for p in policy.value_head.parameters() if p.requires_grad]
    ids = {id(p) for p in head}
    rest = [p for p in policy.parameters() if p.requires_grad and id(p) not in ids]
    return torch.optim.Adam([{"params": rest, "lr": cfg.lr}, {"params": head, "lr": cfg.value_lr or cfg.lr}], eps=1e-5)


# ------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class Plan:
    """What the starting bundle fixes for the whole run (checked before anything is written)."""

    bundle: AgentBundle
    policy: Any
    """The starting policy, loaded (the trained copy starts from it; the anchor is a frozen copy of it)."""
    world: str
    world_config: dict[str, Any]
    specs: list[TaskSpec]
    goals: dict[str, np.ndarray]
    """Training prompt (and, under a planner, each sub-instruction it can name) -> its goal (the bundle's text
    embedding)."""
    cond_scale: float
    teacher: Any = None
    """The teacher policy, frozen, when `teacher_coef` > 0 (the start bundle's own as it is, or `teacher`'s); else None."""
    teacher_scale: float = 0.0
    """The guidance scale the teacher acts with: its bundle's own."""
    teacher_dir: Path | None = None
    """The teacher's policy directory (what rollout workers load)."""


def prepare(cfg: PPOConfig) -> tuple[PPOConfig, Plan]:
    """Every check that needs the disk, before anything is written: the run dir (a saved config wins; a changed
    one fails), the bundle (readable, with an embedder, a policy whose action head fits the world), the tasks'
    events in the world; embeds the training prompts. Returns the config to run and the plan."""
    from aimc.envs import world_info
    from aimc.eval.agent import TextAgent
    from aimc.eval.tasks import check_events, load_suite, world_events
    from aimc.policy import load_policy

    root = Path(cfg.out)
    if root.is_file() or (root.is_dir() and any(root.iterdir()) and not (root / CONFIG_FILE).is_file()):
        raise AimcError(f"--out {root} is not empty and holds no PPO run; choose a new directory")
    cfg = RunDir(root, RESUMABLE, CONFIG_FILE).resolve(cfg)
    if not cfg.bundle:
        raise ConfigError("bundle: give the agent bundle to start from (--bundle DIR)")
    bundle = AgentBundle.read(cfg.bundle)
    if bundle.embedder is None:
        raise AimcError(f"bundle {cfg.bundle} has no embedder, so its policy cannot read text prompts; "
                        "PPO needs a goal-conditioned bundle (trained with an embedder)")
    world = cfg.world or bundle.world
    world_config = {**(bundle.world_config if world == bundle.world else {}), **cfg.world_config}
    if cfg.reward.health > 0 and world not in APPROACH_WORLDS:
        raise AimcError(f"reward.health needs a world whose player's health it can read "
                        f"({', '.join(APPROACH_WORLDS)}), not {world!r}; use reward.health=0")
    if cfg.reward.shelter > 0 and world != "crafter":
        raise AimcError(f"reward.shelter needs Crafter's daylight and walls, not world {world!r}; use reward.shelter=0")
    if cfg.reward.approach > 0 and world not in APPROACH_WORLDS:
        raise AimcError(f"reward.approach needs a world whose collect table and view the shaping reads "
                        f"({', '.join(APPROACH_WORLDS)}), not {world!r}; use reward.approach=0")
    actions = world_info(world).action_names
    policy = load_policy(bundle.policy_dir(), device=cfg.device)
    heads = policy.config.head_sizes
    if heads != {"action": len(actions)}:
        raise AimcError(f"the policy of bundle {cfg.bundle} has action head(s) {heads}, which do not fit world {world!r} "
                        f"({len(actions)} actions); PPO needs a policy with one categorical head over the world's actions")
    if not policy.config.goal_dim:
        raise AimcError(f"the policy of bundle {cfg.bundle} takes no goal (goal_dim 0), so it cannot follow prompts")
    teacher, teacher_scale, teacher_dir = None, float(bundle.cond_scale or 0.0), bundle.policy_dir()
    if cfg.teacher_coef > 0 and cfg.teacher:
        teacher, teacher_scale, teacher_dir = load_teacher(cfg.teacher, bundle, policy, cfg.device)
    elif cfg.teacher_coef > 0:
        teacher = copy.deepcopy(policy).eval().requires_grad_(False)
    if cfg.frame_size is not None:  # the trained policy is a student reading smaller frames
        from aimc.policy.vpt.student import with_frame_size

        policy = with_frame_size(policy, (cfg.frame_size, cfg.frame_size))
    suite = load_suite(cfg.suite or None).select(list(cfg.tasks))
    check_events(suite, world_events(world))
    specs = task_specs(suite, list(cfg.tasks), world)
    agent = TextAgent(policy, bundle, device=cfg.device)
    check_planner(cfg.planner, world)
    if cfg.expert.coef > 0:
        check_labeller(cfg, world, specs)
    if cfg.start.share > 0:
        check_start_states(cfg, world, specs)
    prompts = sorted({p for s in specs for p in s.prompts})
    if cfg.planner in CHAIN_PLANNERS:  # the sub-instructions a chain can name: each event's canonical caption,
        from aimc.embed.captions import NOTHING, catalogue  # and its night rule's

        prompts = sorted({*prompts, *(texts[0] for e, texts in catalogue(world).items() if e != NOTHING),
                          *night_texts(cfg.planner)})
    goals = dict(zip(prompts, agent.goal_from_text(prompts, use_prior=None, seed=0), strict=True))
    scale = float(cfg.cond_scale if cfg.cond_scale is not None else (bundle.cond_scale or 0.0))
    return cfg, Plan(bundle, policy, world, world_config, specs, goals, scale, teacher, teacher_scale, teacher_dir)


def load_teacher(path: str, bundle: AgentBundle, policy: Any, device: str) -> tuple[Any, float, Path]:
    """The policy of teacher bundle `path` (frozen), its guidance scale and its directory; one line when it cannot
    teach `policy`: no bundle there, other actions, another goal size, or goals from another embedder (the same
    goal vector would mean something else to it)."""
    from aimc.core.rundir import file_fingerprint
    from aimc.policy import load_policy

    teacher_bundle = AgentBundle.read(path)
    teacher = load_policy(teacher_bundle.policy_dir(), device=device).eval().requires_grad_(False)
    if teacher.config.head_sizes != policy.config.head_sizes or teacher.config.goal_dim != policy.config.goal_dim:
        raise AimcError(f"teacher {path}: its policy has action head(s) {teacher.config.head_sizes} and goal size "
                        f"{teacher.config.goal_dim}, the trained one {policy.config.head_sizes} and "
                        f"{policy.config.goal_dim}; a teacher must act over the same actions and read the same goals")

    def embedder_files(b: AgentBundle) -> dict[str, str] | str | None:
        ref = b.embedder_ref()
        if not isinstance(ref, Path):
            return ref
        return {p.name: file_fingerprint(p) for p in sorted(ref.iterdir()) if p.is_file()}

    if embedder_files(teacher_bundle) != embedder_files(bundle):
        raise AimcError(f"teacher {path} reads goals from another embedder than bundle {bundle.root}; a teacher must "
                        "share the trained policy's goal space (its bundle's embedder, byte for byte)")
    return teacher, float(teacher_bundle.cond_scale or 0.0), teacher_bundle.policy_dir()


def check_labeller(cfg: PPOConfig, world: str, specs: list[TaskSpec]) -> None:
    """One line when the expert labeller cannot run: a world the scripted demonstrator cannot play, a task with no
    `demo_task`, or bad demonstrator options."""
    from aimc.envs import world_info

    if not world_info(world).has_demonstrator:
        raise ConfigError(f"expert.coef > 0 needs the scripted demonstrator to label the rollouts, which cannot play "
                          f"world {world!r}; set expert.coef=0")
    missing = [s.name for s in specs if not s.demo_task]
    if missing:
        raise ConfigError(f"expert.coef > 0: task(s) {', '.join(missing)} name no demo_task in the suite, so the "
                          "demonstrator has nothing to pursue; give them one or leave them out")
    make_labeller(cfg)  # checks the demonstrator options now


def check_start_states(cfg: PPOConfig, world: str, specs: list[TaskSpec]) -> None:
    """One line when start states cannot be played: a world the demonstrator cannot play (or, for the walled-in
    mark, one without Crafter's walls), a start task with no `demo_task`, or bad demonstrator options."""
    from aimc.envs import world_info
    from aimc.envs.actor import DemonstratorActor

    if not world_info(world).has_demonstrator:
        raise ConfigError(f"start.share > 0 needs the scripted demonstrator to play to the start states, which cannot "
                          f"play world {world!r}; set start.share=0")
    if cfg.start.until != "success" and world != "crafter":
        raise ConfigError(f"start.until={cfg.start.until} reads Crafter's walls, not world {world!r}; use "
                          "start.until=success")
    names = set(cfg.start.tasks or cfg.tasks)
    missing = [s.name for s in specs if s.name in names and not s.demo_task]
    if missing:
        raise ConfigError(f"start.share > 0: task(s) {', '.join(missing)} name no demo_task in the suite, so the "
                          "demonstrator has nothing to pursue; give them one or leave them out of start.tasks")
    from aimc.finetune.ppo_start import demonstrator_options

    DemonstratorActor(demonstrator_options(cfg.start), where="start.demonstrator")


def make_labeller(cfg: PPOConfig) -> Any:
    """One expert labeller: the scripted demonstrator in task mode without noise, with `cfg.expert.demonstrator`."""
    from aimc.envs.actor import DemonstratorActor

    return DemonstratorActor({**cfg.expert.demonstrator, "mode": "task", "noise_prob": 0.0}, where="expert.demonstrator")


def _save(rundir: RunDir, k: int, policy: Any, optimizer: torch.optim.Optimizer, rows: list[dict[str, Any]]) -> Path:
    """Checkpoint of iteration k: policy (with the value normaliser), optimiser, RNG, the summary rows so far."""
    import io

    from aimc.policy import save_pretrained

    def blob(obj: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    with rundir.checkpoint(k, keep=KEEP_CHECKPOINTS) as tmp:
        save_pretrained(policy, tmp / "policy", source={"ppo_iteration": k})
        ts = tmp / "train_state"
        ts.mkdir()
        atomic_write_bytes(ts / "optimizer.pt", blob(optimizer.state_dict()))
        atomic_write_bytes(ts / "rng.pt", blob({"torch": torch.get_rng_state()}))
        atomic_write_json(ts / "state.json", {"iteration": k, "rows": rows})
    return rundir.checkpoints / rundir.checkpoint_name(k)


def _load(ckpt: Path, policy: Any, optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Restore a checkpoint in place (strict); returns its summary rows."""
    import json

    from safetensors.torch import load_file

    from aimc.policy import check_state_dict

    try:
        sd = load_file(str(ckpt / "policy" / "model.safetensors"))
        opt = torch.load(ckpt / "train_state" / "optimizer.pt", weights_only=True, map_location="cpu")
        rng = torch.load(ckpt / "train_state" / "rng.pt", weights_only=True, map_location="cpu")
        state = json.loads((ckpt / "train_state" / "state.json").read_text())
    except Exception as e:  # truncated or foreign files
        raise CheckpointError(f"{ckpt}: unreadable PPO checkpoint ({e}); delete it to restart from the one before") from None
    check_state_dict(policy, sd, source=str(ckpt))
    policy.load_state_dict(sd, strict=True)
    optimizer.load_state_dict(opt)
    torch.set_rng_state(rng["torch"])
    return list(state["rows"])


def _write_outputs(root: Path, plan: Plan, ckpt: Path, rows: list[dict[str, Any]], cfg: PPOConfig) -> dict[str, Any]:
    """bundle/ (the checkpoint's policy with the starting bundle's embedder and prior) and ppo_summary.json.

    A policy fine-tuned under a planner has learnt to act on its sub-instructions (rung 9 in docs/results.md:
    played without the chain it loses 0.06 mean success), so the bundle then plays with that planner by default;
    with planner "none" it keeps the starting bundle's. `bundle_planner` overrides both."""
    planner = cfg.bundle_planner or (cfg.planner if cfg.planner != "none" else plan.bundle.planner)
    bundle = dataclasses.replace(plan.bundle, policy=str(ckpt.resolve() / "policy"), cond_scale=plan.cond_scale,
                                 planner=planner)
    bundle.copy_into(root / "bundle")
    summary = {"iterations": rows, "bundle": str(root / "bundle"), "out": str(root), "seed": cfg.seed,
               "tasks": list(cfg.tasks), "start": cfg.bundle, "cond_scale": plan.cond_scale, "planner": planner}
    atomic_write_json(root / SUMMARY_FILE, summary)
    return summary


def iteration_row(k: int, cfg: PPOConfig, trajs: list[Trajectory], stats: dict[str, Any], warmup: bool) -> dict[str, Any]:
    """The summary row of iteration k: rollout outcomes (overall and per task) and update statistics."""
    per_task: dict[str, dict[str, int]] = {}
    for tr in trajs:
        t = per_task.setdefault(tr.job.task, {"episodes": 0, "successes": 0, "deaths": 0})
        t["episodes"] += 1
        t["successes"] += int(tr.success)
        t["deaths"] += int(tr.died)
    wins = [tr.success_step + 1 for tr in trajs if tr.success_step is not None]
    n = len(trajs)
    started = [tr for tr in trajs if tr.start is not None]
    if started:  # how the start-state episodes went: k, whether they reached the mark, success and return
        stats = {**stats, "start_episodes": len(started), "start_back": float(np.mean([tr.start["back"] for tr in started])),
                 "start_reached": float(np.mean([tr.start["reached"] for tr in started])),
                 "start_success": float(np.mean([tr.success for tr in started])),
                 "start_return": float(np.mean([tr.rewards.sum() for tr in started]))}
        led = [tr.start["lead_steps"] for tr in started if "lead_steps" in tr.start]
        if led:  # `start.lead` policy: how long the policy's own days ran before the demonstrator took over
            stats["start_lead"] = float(np.mean(led))
    if trajs and trajs[0].labels is not None:  # how often the learner did what the expert would have done
        labels, acts = np.concatenate([tr.labels for tr in trajs]), np.concatenate([tr.actions for tr in trajs])
        on = labels > 0
        agree = (labels[on] >> acts[on]) & 1
        stats = {**stats, "expert_labelled": float(on.mean()),
                 "expert_agreement": float(np.mean(agree)) if on.any() else float("nan")}
    return {
        "iteration": k, "kl_coef": kl_coef_at(cfg, k), "lr": lr_at(cfg, k), "warmup": warmup, "episodes": n,
        "env_steps": int(sum(tr.own_steps for tr in trajs)),
        "success": sum(tr.success for tr in trajs) / n, "death_rate": sum(tr.died for tr in trajs) / n,
        "episode_len": float(np.mean([tr.own_steps for tr in trajs])), "return": float(np.mean([tr.rewards.sum() for tr in trajs])),
        "steps_to_success": float(np.mean(wins)) if wins else None,
        "success_per_task": {name: v["successes"] / v["episodes"] for name, v in per_task.items()},
        "per_task": per_task, **stats,
    }


SCALARS = ("success", "death_rate", "episode_len", "return", "steps_to_success", "kl_anchor", "kl_coef", "lr", "entropy",
           "value_loss", "policy_loss", "clip_frac", "approx_kl", "value_ev", "grad_norm", "bc_nll", "expert_nll",
           "expert_agreement", "expert_labelled", "kl_teacher", "start_back", "start_reached", "start_success", "start_return",
           "start_bc_nll", "start_lead", "wall_s")
PERF = ("env_steps_per_s", "update_frames_per_s", "rollout_s", "update_s")
VOLATILE = ("wall_s", *PERF)
"""Row fields that measure time: they differ between two runs of the same config."""


def _log_row(writer: Any, row: dict[str, Any]) -> None:
    k = row["iteration"]
    for key in SCALARS:
        if isinstance(row.get(key), int | float) and not isinstance(row.get(key), bool):
            writer.add_scalar(f"ppo/{key}", row[key], k)
    for task, rate in row["success_per_task"].items():
        writer.add_scalar(f"ppo/success/{task}", rate, k)
    for key in PERF:
        writer.add_scalar(f"perf/{key}", row[key], k)
    writer.flush()


def run_ppo(cfg: PPOConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every iteration of `cfg` with `cfg.threads` torch threads; returns the summary also
    written to ppo_summary.json."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cfg.threads)
        return _run(cfg, progress, log)
    finally:
        torch.set_num_threads(threads)


def run_inputs(cfg: PPOConfig) -> dict[str, Path]:
    """The files a run's numbers depend on beyond its config, fingerprinted at its start (a resume refuses once
    one changed): the start policy, and another bundle's teacher policy when `teacher` names one."""
    files = AgentBundle.read(cfg.bundle).policy_files()
    if cfg.teacher_coef > 0 and cfg.teacher:
        files |= {f"teacher {k.removeprefix('start policy ')}": v
                  for k, v in AgentBundle.read(cfg.teacher).policy_files().items()}
    return files


def continues(cfg: PPOConfig) -> int | None:
    """The iterations `cfg.out` holds when `run_ppo(cfg)` would continue that run rather than refuse it or make
    a different agent: the saved config differs only in `RESUMABLE` fields, the start policy is byte for byte the
    one the run began from, and `cfg` asks for at least as many iterations as are done. None otherwise (no run
    there, another config or start policy, or fewer iterations asked for than were run, whose agent would not be
    the one asked for).

    The pipeline asks this before it sets a PPO stage's output aside, so a longer preset extends a finished
    shorter run in place (PPO 140 -> 300 iterations costs the 160 new ones, not 300)."""
    root = Path(cfg.out)
    if not (root / CONFIG_FILE).is_file():
        return None
    rundir = RunDir(root, RESUMABLE, CONFIG_FILE, step_digits=4)
    try:
        rundir.resolve(cfg)
        rundir.check_inputs(run_inputs(cfg), main=False)
        done = rundir.latest_step()
    except AimcError:
        return None
    return done if done <= cfg.iterations else None


def _run(cfg: PPOConfig, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    cfg, plan = prepare(cfg)
    bc = (BCStream(cfg.bc, plan.bundle.embedder_ref(), plan.policy.config.goal_dim, plan.policy.config.img_shape,
                   cfg.seed) if cfg.bc.coef > 0 else None)  # its data checked before the run dir is written
    root = Path(cfg.out)
    rundir = RunDir(root, RESUMABLE, CONFIG_FILE, step_digits=4)
    cfg = rundir.start(cfg, inputs=run_inputs(cfg))  # the start policy is also the KL anchor
    policy = plan.policy
    anchor = copy.deepcopy(policy).eval().requires_grad_(False)
    optimizer = make_optimizer(policy, cfg)
    rows: list[dict[str, Any]] = []
    ckpt = rundir.latest()
    if ckpt is not None:
        rows = _load(ckpt, policy, optimizer)
    summary = _write_outputs(root, plan, ckpt, rows, cfg) if ckpt is not None else None
    if rows and rows[-1]["iteration"] >= cfg.iterations:
        log(f"PPO run in {root} already finished {len(rows)} iteration(s)")
    specs = {s.name: s for s in plan.specs}
    planner = make_planner(cfg.planner, plan.world)
    schedule = weighted_schedule(plan.specs, cfg.task_weights)
    labeller = functools.partial(make_labeller, cfg) if cfg.expert.coef > 0 else None
    demo_tasks = {s.name: s.demo_task for s in plan.specs}
    pool: RolloutPool | None = None
    engine = (RolloutEngine(plan.world, plan.world_config, cfg.envs, cfg.stop_on_success, cfg.start)
              if cfg.rollout_workers == 1 else None)
    writer = SummaryWriter(str(root / "tensorboard"), purge_step=len(rows) + 1)
    try:
        if cfg.rollout_workers > 1 and len(rows) < cfg.iterations:  # no processes for a finished run
            pool = RolloutPool(cfg.rollout_workers, str(plan.bundle.policy_dir()), plan.world, plan.world_config,
                               cfg.envs, cfg.stop_on_success, cond_scale=plan.cond_scale, device=cfg.device,
                               planner=cfg.planner, make_labeller=labeller, demo_tasks=demo_tasks,
                               skip_explore=cfg.expert.skip_explore, tied_moves=cfg.expert.tied_moves,
                               precision=cfg.rollout_precision, frame_size=cfg.frame_size,
                               teacher=str(plan.teacher_dir) if plan.teacher is not None else None,
                               teacher_scale=plan.teacher_scale, start=cfg.start)
        for k in range(len(rows) + 1, cfg.iterations + 1):
            start = time.perf_counter()
            warmup = k <= cfg.value_warmup_iterations
            optimizer.param_groups[0]["lr"] = lr_at(cfg, k)  # group 0: everything but the value head
            jobs = make_jobs(schedule, cfg.episodes_per_iteration, k, cfg.seed, cfg.start)
            with tqdm(total=len(jobs), desc=f"ppo {k}/{cfg.iterations} rollouts", unit="ep", leave=False,
                      disable=not progress) as bar:
                if pool is not None:
                    trajs = pool.play(policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward,
                                      lambda _: bar.update(1), gamma=cfg.gamma)
                else:
                    assert engine is not None
                    actor = PolicyActor(policy, cfg.envs, plan.cond_scale, cfg.device, planner, plan.goals.__getitem__,
                                        labeller, demo_tasks, cfg.expert.skip_explore, cfg.expert.tied_moves,
                                        cfg.rollout_precision, plan.teacher, plan.teacher_scale)
                    trajs = engine.play(actor, specs, plan.goals, jobs, cfg.max_steps, cfg.reward,
                                        lambda _: bar.update(1), gamma=cfg.gamma)
            rollout_s = time.perf_counter() - start
            t0 = time.perf_counter()
            goals = [plan.goals[tr.job.prompt] if tr.goals is None else tr.goals for tr in trajs]
            data = prepare_iteration(policy, trajs, goals, cfg)
            if not warmup and not (cfg.teacher_coef > 0 and cfg.kl_coef == 0):  # measured even without the anchor
                # term (kl_coef 0), to show the drift; a student distilled without an anchor has none to drift from
                data.anchor = anchor_logp(anchor, trajs, goals, plan.cond_scale, cfg.device, autocast=autocast_for(cfg))
            n_mb = cfg.epochs * math.ceil(len(trajs) / cfg.minibatch_episodes)
            with tqdm(total=n_mb, desc=f"ppo {k}/{cfg.iterations} update", unit="mb", leave=False, disable=not progress) as bar:
                stats = ppo_update(policy, optimizer, data, cfg, k, plan.cond_scale, warmup, bar, bc)
            update_s = time.perf_counter() - t0
            frames = sum(tr.steps for tr in trajs)
            stats.update(value_ev=data.value_ev, rollout_s=rollout_s, update_s=update_s,
                         env_steps_per_s=frames / max(rollout_s, 1e-9),
                         update_frames_per_s=cfg.epochs * frames / max(update_s, 1e-9),
                         wall_s=time.perf_counter() - start)
            row = iteration_row(k, cfg, trajs, stats, warmup)
            rows.append(row)
            log(format_line(row, cfg.iterations))
            _log_row(writer, row)
            ckpt = _save(rundir, k, policy, optimizer, rows)
            summary = _write_outputs(root, plan, ckpt, rows, cfg)
    finally:
        writer.close()
        if pool is not None:
            pool.close()
    assert summary is not None
    return summary


def format_line(row: dict[str, Any], iterations: int) -> str:
    """The line `aimc train ppo` prints after each iteration."""
    what = " (value warm-up)" if row["warmup"] else ""
    return (f"iter {row['iteration']}/{iterations}{what}: success {row['success']:.2f}, deaths {row['death_rate']:.2f}, "
            f"length {row['episode_len']:.0f}, KL {row['kl_anchor']:.4f} (coef {row['kl_coef']:.3g}), entropy "
            f"{row['entropy']:.3f}, value loss {row['value_loss']:.4f}, EV {row['value_ev']:.2f}; "
            + (f"BC NLL {row['bc_nll']:.3f}, " if row.get("bc_nll") is not None else "")
            + (f"expert NLL {row['expert_nll']:.3f}, " if row.get("expert_nll") is not None else "")
            + (f"expert agreement {row['expert_agreement']:.2f}, " if row.get("expert_agreement") is not None else "")
            + (f"KL to the teacher {row['kl_teacher']:.4f}, " if row.get("kl_teacher") is not None else "")
            + (f"start states {row['start_episodes']} (mean k {row['start_back']:.1f}, reached the mark "
               f"{row['start_reached']:.2f}"
               + (f", the policy's own day {row['start_lead']:.0f} steps" if row.get("start_lead") is not None else "")
               + "), " if row.get("start_episodes") else "")
            + f"{row['env_steps_per_s']:.0f} env steps/s, {row['update_frames_per_s']:.0f} update frames/s")


def format_ppo_table(summary: dict[str, Any]) -> str:
    """The per-iteration table `aimc train ppo` prints."""
    lines = [f"{'iter':>4} {'kl_coef':>7} {'success':>7} {'deaths':>6} {'length':>6} {'return':>6} {'KL':>7} "
             f"{'entropy':>7} {'v_loss':>7} {'clip':>5} {'wall_s':>6}"]
    for r in summary["iterations"]:
        lines.append(f"{r['iteration']:>4} {r['kl_coef']:7.3f} {r['success']:7.2f} {r['death_rate']:6.2f} "
                     f"{r['episode_len']:6.0f} {r['return']:6.2f} {r['kl_anchor']:7.4f} {r['entropy']:7.3f} "
                     f"{r['value_loss']:7.4f} {r['clip_frac']:5.2f} {r['wall_s']:6.0f}")
    return "\n".join(lines)
