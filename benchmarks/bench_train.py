"""Training throughput (frames/s) of `aimc.train.loop.run` on the Crafter preset vs a plain single loop.

The plain loop does the same optimisation step (same model, batch, chunking, relabelling, AdamW) but in
one process: it decodes each segment's frames from the mp4 when it needs them, then trains on it.
`run` decodes in DataLoader workers ahead of the trainer and reads decoded episodes from its
memory-mapped frame cache. Both are timed in this one process run, after a short warm-up, so the ratio is
meaningful on a shared machine even when absolute numbers are not.

    python benchmarks/bench_train.py                  # collects a small demonstrator store first
    python benchmarks/bench_train.py --data runs/crafter_demo --embed-name videotext --steps 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.train.fixtures


def plain_loop(cfg, steps: int) -> float:
    """Frames/s of the reference-style single loop over `steps` optimiser steps (after 2 warm-up steps)."""
    from aimc.data.dataset import SegmentSampler
    from aimc.data.relabel import relabelled_goals
    from aimc.data.store import Episode
    from aimc.train.loop import build_data, build_policy, param_groups

    train, _, _ = build_data(cfg)
    torch.manual_seed(cfg.seed)
    policy, _ = build_policy(cfg, train.goal_dim)
    opt = torch.optim.AdamW(param_groups(policy, cfg.weight_decay), lr=cfg.lr)
    keys = iter(SegmentSampler(train, cfg.batch_size, cfg.seed))
    t0, frames = None, 0
    for step in range(steps + 2):
        if step == 2:
            t0, frames = time.perf_counter(), 0
        povs, goals, acts = [], [], []
        for _ in range(cfg.batch_size):
            i, seed = next(keys)
            e, s, t = (int(v) for v in train.rows[i])
            ep = Episode(train.episodes[e], check_video=False)
            g, _ = relabelled_goals(ep.read_embeds(cfg.segment.embed_name)[0], s, t, cfg.segment.min_btwn_goals,
                                    cfg.segment.max_btwn_goals, cfg.segment.p_uncond, np.random.default_rng(seed))
            povs.append(torch.from_numpy(ep.frames(s, t)))
            goals.append(torch.from_numpy(g))
            acts.append(torch.from_numpy(ep.actions[s:t].astype(np.int64)))
        pov, goal, act = torch.stack(povs), torch.stack(goals), torch.stack(acts)  # (B, T, ...)
        first = torch.zeros(act.shape, dtype=torch.bool)
        first[:, 0] = True
        state = None
        for c in range(cfg.chunks_per_segment):
            sl = slice(c * cfg.trunc_t, (c + 1) * cfg.trunc_t)
            out, state = policy(pov[:, sl], goal[:, sl], first[:, sl], state)
            loss = -policy.log_prob(out, {"action": act[:, sl]}).mean()
            loss.backward()
            state = state.detach()
            frames += act[:, sl].numel()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
    return frames / (time.perf_counter() - t0)


def ours(cfg, steps: int) -> float:
    """Frames/s of `run` from its logged perf/fps rows, skipping the first (worker start-up) window."""
    from aimc.train.loop import read_metrics, run

    run(cfg, progress=False)
    rows = [r for r in read_metrics(cfg.out) if "perf/fps" in r]
    return float(np.mean([r["perf/fps"] for r in rows[1:]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="episode store (default: collect 12 episodes)")
    ap.add_argument("--embed-name", default="fake")
    ap.add_argument("--steps", type=int, default=30, help="optimiser steps timed per variant")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    from aimc.train.config import load_train_config

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = args.data
    if data is None:
        from tests.train.fixtures import embed_store

        from aimc.data.collect import CollectConfig, collect

        data = tmp / "store"
        collect(CollectConfig(out=str(data), episodes=12, max_steps=300, seed=11, workers=2), progress=False)
        embed_store(data, args.embed_name)
    sets = [f"segment.embed_name={args.embed_name}", f"num_workers={args.workers}", "val_every=0", "save_every=0"]
    base = load_train_config("goal", overrides=sets, data=[{"path": str(data)}], out=str(tmp / "warm"))
    per_step = base.trunc_t * base.batch_size * base.grad_accum  # frames per optimiser step
    n_frames = per_step * (args.steps + 5)
    # fill the frame cache once (what the first epoch of a real run does), then time warm runs
    warm = load_train_config("goal", overrides=[*sets, f"n_frames={per_step * 2}", f"frame_cache={tmp / 'cache'}"],
                             data=[{"path": str(data)}], out=str(tmp / "fill"))
    from aimc.data.dataset import FrameCache
    from aimc.data.store import Episode
    from aimc.train.loop import build_data

    train, _, _ = build_data(warm)
    cache = FrameCache(tmp / "cache")
    for p in train.episodes:
        cache.frames(Episode(p), 0, 1)
    cfg = load_train_config("goal", overrides=[*sets, f"n_frames={n_frames}", f"log_every={max(args.steps // 4, 1)}",
                                               f"frame_cache={tmp / 'cache'}"], data=[{"path": str(data)}], out=str(tmp / "ours"))
    fps_plain = plain_loop(cfg, args.steps)
    fps_ours = ours(cfg, args.steps)
    print(f"policy crafter-small, batch {cfg.batch_size} x {cfg.segment.segment_len} frames, trunc_t {cfg.trunc_t}, "
          f"torch threads {torch.get_num_threads()}, data workers {args.workers}")
    print(f"plain single loop : {fps_plain:8.1f} frames/s")
    print(f"aimc train loop   : {fps_ours:8.1f} frames/s")
    print(f"ratio             : {fps_ours / fps_plain:8.2f}x  (target >= 1.3x)")


if __name__ == "__main__":
    main()
