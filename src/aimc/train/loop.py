"""The STEVE-1 behaviour-cloning loop, top to bottom: data -> model -> optimiser -> chunks -> checkpoints.

One batch holds B segments of T frames. It is cut into T / trunc_t chunks; each chunk is one micro-step
(forward, backward) with the recurrent state carried, detached, into the next chunk; every `grad_accum`
micro-steps the optimiser steps (lr set from the frames processed: linear warmup, then cosine reaching 0
at 1.1 x n_frames, as the reference). Each batch starts from a fresh state: every segment begins with
``first=True``, which masks any carried memory anyway, and it makes a checkpoint at a batch boundary
the complete training state. Checkpoints are written at batch ends with an empty gradient accumulator.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from aimc.core.errors import AimcError, ConfigError
from aimc.core.io import atomic_dir, remove_stale_tmp
from aimc.core.memory import reuse_freed_memory
from aimc.core.precision import resolve_mixed_precision
from aimc.core.rundir import RunDir
from aimc.data.dataset import (
    ACTION,
    FIRST,
    GOAL,
    OK,
    POV,
    STEP_OK,
    SegmentDataset,
    SegmentIndex,
    SegmentSampler,
    build_segment_index,
    collate_segments,
    val_keys,
)
from aimc.data.index import DatasetIndex, Skipped
from aimc.policy import VPTPolicy, VPTState, get_config, save_pretrained
from aimc.train.bundle import AgentBundle, training_world
from aimc.train.checkpoint import init_policy_from, latest_checkpoint, load_checkpoint, save_checkpoint
from aimc.train.config import TrainConfig
from aimc.train.objectives import anchor_kl, bc_loss, head_targets
from aimc.train.text_goals import run_text_goal_table

# Settings a resumed run may change; anything else must match the saved config (aimc.core.rundir).
RESUMABLE_CHANGES = {"n_frames", "val_every", "save_every", "log_every", "num_workers", "keep_checkpoints", "val_segments", "frame_cache",
                     "cond_scale"}


# ------------------------------------------------------------------------------------------ pure helpers
def lr_at(frames: int, cfg: TrainConfig) -> float:
    """Reference schedule: linear warmup over warmup_frames, then cosine to 0 at 1.1 x n_frames."""
    if frames < cfg.warmup_frames:
        return cfg.lr * frames / cfg.warmup_frames
    span = max(1.1 * cfg.n_frames - cfg.warmup_frames, 1.0)
    progress = min((frames - cfg.warmup_frames) / span, 1.0)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Reference grouping: decay every trainable tensor except biases and LayerNorm weights."""
    no_decay_ids = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or id(p) in no_decay_ids else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def frames_per_micro_step(cfg: TrainConfig, world: int) -> int:
    return cfg.trunc_t * cfg.batch_size * world


# ------------------------------------------------------------------------------------------------- setup
def _run_dir(cfg: TrainConfig) -> RunDir:
    """The run directory contract for ``cfg.out`` (train_config.json, checkpoints/, metrics.jsonl)."""
    return RunDir(cfg.out, resumable=RESUMABLE_CHANGES)


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """A run dir's saved config wins on resume; only RESUMABLE_CHANGES may differ from it."""
    return _run_dir(cfg).resolve(cfg)


def build_data(cfg: TrainConfig, skipped: Skipped | None = None) -> tuple[SegmentIndex, SegmentIndex, np.ndarray | None]:
    """(train segments, val segments, fixed goal or None) from the configured stores.

    Every episode left out (damaged, too short, no embeddings), whether by the store scan or by the segment
    index, goes to `skipped` (None: a new one reporting to stderr), which is also both indexes' `skipped`.
    """
    if not cfg.data:
        raise ConfigError("no training data: pass --data DIR (or data=[{path: ..., weight: ...}] in a preset)")
    skipped = Skipped() if skipped is None else skipped
    train_parts, val_parts = [], []
    for i, part in enumerate(cfg.data):
        idx = DatasetIndex.scan(part.path, check_video=False, skipped=skipped)
        if len(idx) == 0:
            why = f" ({skip_note(idx.skipped)})" if idx.skipped else ""
            raise AimcError(f"{part.path} holds no valid episodes{why}; run `aimc collect --out {part.path}` first")
        if part.max_episodes is not None:
            if part.max_episodes > len(idx):
                raise AimcError(f"{part.path} holds {len(idx)} valid episode(s), fewer than max_episodes="
                                f"{part.max_episodes}; collect more (`aimc collect --out {part.path} --episodes N`)")
            idx = idx.head(part.max_episodes)
        tr, va = idx.split(cfg.val_fraction, seed=cfg.seed + i) if cfg.val_fraction > 0 else (idx, DatasetIndex([], []))
        train_parts.append((tr.episodes, part.weight, part.goal_source))
        val_parts.append((va.episodes, 1.0, part.goal_source))
    train = build_segment_index(train_parts, cfg.segment, skipped)
    val = build_segment_index([p for p in val_parts if p[0]], cfg.segment, skipped) if any(p[0] for p in val_parts) else None
    if len(train) == 0:
        raise AimcError(f"no usable training episodes ({skip_note(skipped)})")
    fixed = None
    if cfg.fixed_prompt is not None:
        from aimc.embed.base import make_embedder

        fixed = make_embedder(cfg.embedder, device="cpu").encode_text([cfg.fixed_prompt])[0].float().numpy()
    empty = SegmentIndex([], np.zeros((0, 3), np.int64), np.zeros(0), skipped, train.goal_dim)
    return train, val if val is not None else empty, fixed


def skip_note(skipped: dict[str, str]) -> str:
    """'N episode(s) skipped (counts by reason), e.g. <episode>: <reason>' for an error message."""
    first = next(iter(skipped.items()), None)
    summary = skipped.summary() if isinstance(skipped, Skipped) else f"{len(skipped)} episode(s) skipped"
    return summary + (f", e.g. {Path(first[0]).name}: {first[1]}" if first else "")


def build_policy(cfg: TrainConfig, goal_dim: int) -> tuple[VPTPolicy, list[str]]:
    """Fresh policy from the preset (goal input sized to the data), optionally initialised from init_from."""
    policy = VPTPolicy(get_config(cfg.policy, **{**cfg.policy_overrides, "goal_dim": goal_dim}))
    fresh = init_policy_from(policy, cfg.init_from) if cfg.init_from else []
    return policy, fresh


def build_anchor(cfg: TrainConfig, goal_dim: int) -> VPTPolicy | None:
    """The frozen policy of the KL anchor (`anchor_kl`): `anchor_from`, else `init_from`, loaded into the run's
    architecture strictly (every weight from the file); None when the anchor is off."""
    if cfg.anchor_kl <= 0:
        return None
    source = cfg.anchor_from or cfg.init_from
    assert source is not None  # TrainConfig checks it
    anchor = VPTPolicy(get_config(cfg.policy, **{**cfg.policy_overrides, "goal_dim": goal_dim}))
    fresh = init_policy_from(anchor, source)
    if fresh:
        raise ConfigError(f"anchor {source} has no {fresh[0]}: the anchor must be a policy of the run's architecture "
                          "with its goal input (anchor_from)")
    anchor.eval()
    for p in anchor.parameters():
        p.requires_grad_(False)
    return anchor


@torch.no_grad()
def evaluate(policy: VPTPolicy, dataset: SegmentDataset, keys: list[tuple[int, int]], cfg: TrainConfig,
             device: torch.device) -> dict[str, float]:
    """Mean val NLL with the same chunking (state reset at each segment start): ``{"loss": ...}``, plus
    ``"loss_zero_goal"`` for goal-conditioned data (same segments, goals zeroed), whose difference to ``loss``
    is how much the policy actually uses its goal input. Each segment is decoded once for both, and each chunk's
    frames go through the CNN once for both: the goal joins after the image features (`VPTPolicy.forward`),
    so the two runs share them (the same numbers as two full forwards, for half the CNN work). Each chunk
    counts by its real steps (padding after a short episode's end is not scored).

    ``"goal_gain"`` is that difference on the segments that carry a goal (``"goal_frames"`` of them scored):
    the segments whose goal the unconditional draw (``p_uncond``) zeroed differ by exactly 0, and averaging
    them in would understate how much the goal is read by the fraction they make up."""
    policy.eval()
    goal_runs = (False, True) if dataset.goal_dim else (False,)
    total, count = dict.fromkeys(goal_runs, 0.0), 0.0
    on_goal, goal_count = dict.fromkeys(goal_runs, 0.0), 0.0  # the same, over segments that carry a goal
    for lo in range(0, len(keys), cfg.batch_size):
        batch = collate_segments([dataset[k] for k in keys[lo : lo + cfg.batch_size]])
        w = batch[OK].to(device)  # (B,)
        step_ok = batch[STEP_OK].to(device)  # (B, T)
        w_goal = (w & batch[GOAL].flatten(1).ne(0).any(1).to(device)) if dataset.goal_dim else w  # (B,)
        targets = head_targets(batch[ACTION], policy.config.head_sizes)
        states: dict[bool, VPTState | None] = dict.fromkeys(goal_runs)  # each pass carries its own memory
        for c in range(cfg.chunks_per_segment):
            sl = slice(c * cfg.trunc_t, (c + 1) * cfg.trunc_t)
            feats = policy.encode_images(batch[POV][:, sl].to(device))  # (B, t, hidsize)
            b, t = feats.shape[:2]
            first = batch[FIRST][:, sl].to(device)
            chunk_targets = {h: tg[:, sl].to(device) for h, tg in targets.items()}
            for zero_goal in goal_runs:
                goal = batch[GOAL][:, sl].to(device) if dataset.goal_dim else None  # (B, t, D)
                if zero_goal:
                    goal = torch.zeros_like(goal)
                g = policy.embed_goal(goal, b, t, feats)
                out, states[zero_goal] = policy.forward_features(feats if g is None else feats + g, first, states[zero_goal])
                losses = bc_loss(out, chunk_targets, w, cfg.camera_mask, step_ok[:, sl])
                total[zero_goal] += float(losses["nll"]) * float((step_ok[:, sl] & w[:, None]).sum())
                if dataset.goal_dim:
                    n_goal = float((step_ok[:, sl] & w_goal[:, None]).sum())
                    if n_goal:
                        on_goal[zero_goal] += float(bc_loss(out, chunk_targets, w_goal, cfg.camera_mask,
                                                            step_ok[:, sl])["nll"]) * n_goal
        count += float((step_ok & w[:, None]).sum())
        goal_count += float((step_ok & w_goal[:, None]).sum())
    policy.train()
    result = {"loss": total[False] / max(count, 1.0)}
    if dataset.goal_dim:
        result["loss_zero_goal"] = total[True] / max(count, 1.0)
        result["goal_gain"] = (on_goal[True] - on_goal[False]) / max(goal_count, 1.0)
        result["goal_frames"] = goal_count
    return result


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the trainer for the cores


def write_bundle(cfg: TrainConfig, run_dir: Path, policy_subdir: str, world: str, world_config: dict[str, Any]) -> Path:
    """Make the run dir an agent bundle (policy + the embedder that defines its goal space) for the world
    the data came from (`aimc.train.bundle.training_world`)."""
    embedder = cfg.embedder
    if embedder and Path(embedder).is_dir():
        import shutil

        with atomic_dir(run_dir / "embedder", overwrite=True) as tmp:
            shutil.copytree(embedder, tmp, dirs_exist_ok=True)
        embedder = "embedder"
    bundle = AgentBundle(policy=policy_subdir, embedder=embedder, embed_name=cfg.segment.embed_name, prior=None,
                         cond_scale=cfg.cond_scale, world=world, world_config=world_config)
    bundle.write(run_dir)
    return run_dir


# -------------------------------------------------------------------------------------------------- loop
def run(cfg: TrainConfig, stop_after_steps: int | None = None, progress: bool = True,
        skipped: Skipped | None = None) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.out``; returns a summary. ``stop_after_steps`` ends the call at the
    first checkpointable point after that many optimiser steps (a clean interruption, for tests).
    ``skipped`` decides what happens to damaged episodes (default: reported on stderr and left out;
    ``Skipped(strict=True)`` fails instead); only the main process reports them.

    The CNN's activations are tens of MB per chunk; while the run lasts, freed memory stays in the process
    (`aimc.core.memory`), so each chunk reuses the previous one's pages instead of faulting in fresh ones."""
    with reuse_freed_memory():
        return _run(cfg, stop_after_steps, progress, skipped)


def _run(cfg: TrainConfig, stop_after_steps: int | None, progress: bool, skipped: Skipped | None) -> dict[str, Any]:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cuda = torch.cuda.is_available()
    precision = resolve_mixed_precision(cfg.mixed_precision, "cuda" if cuda else "cpu")
    # On a CPU the autocast is torch's own: accelerate keeps one process-wide precision, so a second run in the
    # same process with another setting would be refused.
    acc = Accelerator(cpu=not cuda, mixed_precision=precision if cuda else "no")
    autocast = acc.autocast if cuda else (lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"))
    rundir = _run_dir(cfg)
    cfg = rundir.start(cfg, main=acc.is_main_process)  # resolved against the saved config; stale temp files gone
    out = rundir.path
    world, rank = acc.num_processes, acc.process_index

    skipped = Skipped() if skipped is None else skipped
    if not acc.is_main_process:
        skipped.echo = None  # every process scans the same stores: one report is enough
    cache = cfg.resolved_frame_cache()
    if acc.is_main_process and cache is not None and Path(cache).parent == out:
        remove_stale_tmp(cache)  # decoded-frame files a killed run was writing (the cache is this run's own)
    acc.wait_for_everyone()
    train_idx, val_idx, fixed_goal = build_data(cfg, skipped)
    # a fixed prompt sizes the goal input itself (also for a text-goal policy, whose segment.embed_name is None)
    goal_dim = len(fixed_goal) if fixed_goal is not None else (0 if cfg.segment.embed_name is None else train_idx.goal_dim)
    text_goals = None
    if cfg.goal_sources() != {"visual"} and fixed_goal is None:
        if acc.is_main_process:  # embedded once, into the run dir; every process (and a resume) reads that file
            run_text_goal_table(out, cfg.embedder, cfg.segment, sources=cfg.goal_sources())
        acc.wait_for_everyone()
        text_goals = run_text_goal_table(out, cfg.embedder, cfg.segment, sources=cfg.goal_sources())
        goal_dim = goal_dim or text_goals.dim
    torch.manual_seed(cfg.seed)  # same init on every process
    policy, fresh_keys = build_policy(cfg, goal_dim)
    # the bundle's world, checked against the policy's input now rather than after training
    data_world, data_world_config = training_world([*train_idx.episodes, *val_idx.episodes], policy.config.img_shape)
    optimizer = torch.optim.AdamW(param_groups(policy, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    policy, optimizer = acc.prepare(policy, optimizer)
    model = acc.unwrap_model(policy)
    anchor = build_anchor(cfg, goal_dim)
    if anchor is not None:
        anchor.to(acc.device)

    loop = {"step": 0, "micro": 0, "frames": 0, "batches": 0, "best_val": None, "invalid_items": 0}
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        loop.update(load_checkpoint(ckpt, model, optimizer))
    if acc.is_main_process:
        rundir.trim_metrics(loop["step"])

    img_shape = model.config.img_shape
    train_ds = SegmentDataset(train_idx, cfg.segment, img_shape, cache, fixed_goal, text_goals)
    val_ds = SegmentDataset(val_idx, cfg.segment, img_shape, cache, fixed_goal, text_goals)
    sampler = SegmentSampler(train_idx, cfg.batch_size, cfg.seed, start_batch=loop["batches"], rank=rank, world=world)
    loader = DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers, collate_fn=collate_segments,
        worker_init_fn=_worker_init, prefetch_factor=4 if cfg.num_workers else None, persistent_workers=False,
    )
    vkeys = val_keys(val_idx, cfg.seed, cfg.val_segments) if cfg.val_every and len(val_idx) else []

    writer = None
    if acc.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"), purge_step=loop["step"] + 1)
    fpm = frames_per_micro_step(cfg, world)
    total_steps = math.ceil(cfg.n_frames / (fpm * cfg.grad_accum))
    bar = tqdm(total=total_steps, initial=loop["step"], desc="train policy", unit="step", disable=not (progress and acc.is_main_process))
    last_saved = loop["step"]
    t_log, f_log, logs = time.perf_counter(), loop["frames"], []
    interrupted = False
    model.train()
    for batch in loader if loop["frames"] < cfg.n_frames else []:  # a finished run resumes to nothing
        loop["batches"] += 1
        loop["invalid_items"] += batch["n_invalid"]
        pov, act, first = batch[POV], batch[ACTION], batch[FIRST]  # (B, T, H, W, 3), (B, T), (B, T)
        weight = batch[OK].to(acc.device)  # (B,)
        targets = head_targets(act, model.config.head_sizes)  # one label per head (VPT: the joint code split)
        step_ok = batch[STEP_OK].to(acc.device)  # (B, T): False on the padding after a short episode's end
        state = anchor_state = None
        for c in range(cfg.chunks_per_segment):
            sl = slice(c * cfg.trunc_t, (c + 1) * cfg.trunc_t)
            goal = batch[GOAL][:, sl].to(acc.device) if goal_dim else None  # (B, t, D)
            loop["micro"] += 1
            sync = loop["micro"] % cfg.grad_accum == 0
            with contextlib.nullcontext() if sync or world == 1 else acc.no_sync(policy), autocast():
                pov_c, first_c = pov[:, sl].to(acc.device), first[:, sl].to(acc.device)
                out_, state = policy(pov_c, goal, first_c, state)
                losses = bc_loss(out_, {h: t[:, sl].to(acc.device) for h, t in targets.items()}, weight, cfg.camera_mask,
                                 step_ok[:, sl])
                if anchor is not None:
                    with torch.no_grad():  # the anchor carries its own memory through the segment's chunks
                        ref, anchor_state = anchor(pov_c, goal, first_c, anchor_state)
                    kl = anchor_kl(out_, ref, weight, step_ok[:, sl])
                    losses["loss"] = losses["loss"] + cfg.anchor_kl * kl
                    losses["anchor_kl"] = kl.detach()
                acc.backward(losses["loss"] / cfg.grad_accum)
            state = state.detach()
            loop["frames"] += fpm
            logs.append({k: float(v.detach()) for k, v in losses.items()})
            if not sync:
                continue
            lr = lr_at(loop["frames"], cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            grad_norm = acc.clip_grad_norm_(policy.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else torch.tensor(0.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loop["step"] += 1
            bar.update(1)
            if loop["step"] % cfg.log_every == 0 and acc.is_main_process:
                now = time.perf_counter()
                row = {
                    "step": loop["step"], "frames": loop["frames"], "train/loss": float(np.mean([r["nll"] for r in logs])),
                    "train/entropy": float(np.mean([r["entropy"] for r in logs])), "train/lr": lr,
                    "train/grad_norm": float(grad_norm), "perf/fps": (loop["frames"] - f_log) / max(now - t_log, 1e-9),
                    "data/invalid_items": loop["invalid_items"],
                }
                if anchor is not None:
                    row["train/anchor_kl"] = float(np.mean([r["anchor_kl"] for r in logs]))
                _log(writer, out, row)
                bar.set_postfix(loss=f"{row['train/loss']:.3f}", fps=f"{row['perf/fps']:.0f}")
                t_log, f_log, logs = now, loop["frames"], []
            if vkeys and loop["step"] % cfg.val_every == 0:
                if acc.is_main_process:
                    _validate(model, val_ds, vkeys, cfg, acc.device, loop, writer, out)
                acc.wait_for_everyone()
        aligned = loop["micro"] % cfg.grad_accum == 0
        done = loop["frames"] >= cfg.n_frames
        stop = stop_after_steps is not None and loop["step"] >= stop_after_steps and aligned
        if aligned and (done or stop or (cfg.save_every and loop["step"] - last_saved >= cfg.save_every)):
            if acc.is_main_process:
                save_checkpoint(out, loop["step"], model, optimizer, loop, keep=cfg.keep_checkpoints)
            acc.wait_for_everyone()
            last_saved = loop["step"]
        if done or stop:
            interrupted = stop and not done
            break
    bar.close()
    if acc.is_main_process and not interrupted:
        if vkeys and loop["step"] % cfg.val_every:
            _validate(model, val_ds, vkeys, cfg, acc.device, loop, writer, out)
        save_pretrained(model, out / "latest", overwrite=True, source={"run": str(out), "step": loop["step"]})
        write_bundle(cfg, out, "best" if (out / "best").is_dir() else "latest", data_world, data_world_config)
    if writer is not None:
        writer.close()
    acc.wait_for_everyone()
    return {
        **loop, "out": str(out), "interrupted": interrupted, "train_segments": len(train_idx), "val_segments": len(vkeys),
        "skipped_episodes": len(skipped), "skipped_by_reason": skipped.counts(), "fresh_keys": fresh_keys,
        "num_parameters": model.num_parameters(), "processes": world, "precision": precision,
    }


def _validate(model: VPTPolicy, ds: SegmentDataset, keys: list[tuple[int, int]], cfg: TrainConfig, device: torch.device,
              loop: dict[str, Any], writer: Any, out: Path) -> None:
    res = evaluate(model, ds, keys, cfg, device)
    val = res["loss"]
    row = {"step": loop["step"], "frames": loop["frames"], "val/loss": val}
    if "loss_zero_goal" in res:  # goal use: NLL gained by the relabelled goal over the zero goal (nats per frame)
        row["val/goal_gain"] = res["goal_gain"]  # on the segments that carry a goal
        row["val/goal_gain_all"] = res["loss_zero_goal"] - val  # over every segment (the definition before 12-03)
    _log(writer, out, row)
    if loop["best_val"] is None or val < loop["best_val"]:
        loop["best_val"] = val
        save_pretrained(model, out / "best", overwrite=True, source={"run": str(out), "step": loop["step"], "val_loss": val})


def _log(writer: Any, out: Path, row: dict[str, Any]) -> None:
    for k, v in row.items():
        if "/" in k:
            writer.add_scalar(k, v, row["step"])
    RunDir(out).log(row)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's logged rows (train and val), in order (a line torn by a kill is skipped)."""
    return RunDir(run_dir).read_metrics()
