"""oneDNN's primitive cache in the PPO update: oneDNN's default capacity against aimc's (never evicts), measured
in one run: update speed, primitives created and the process's memory.

Why: the `aimc` command sets `ONEDNN_PRIMITIVE_CACHE_CAPACITY=65536` for its processes (`aimc.core.native`)
because the trainer's rare native crash was found where the default 1,024-entry cache evicts, and the update's
varying chunk shapes (1-256 frames) make it evict on every miss after about ten iterations (docs/task-finetune.md,
"Known problem"). A cache that keeps everything must not cost speed or much memory; this prints both.

Each capacity runs in a fresh process (oneDNN reads the variable at its first primitive): `--iterations` updates
(`ppo_update`, the `ppo-distill` preset's minibatches and chunks, teacher term on) of the bundle's policy on
synthetic episodes (`--episodes` per iteration, lengths 5-500 drawn as in the preset's rollouts, random frames and
goals, the same episodes for every capacity), counting oneDNN's primitive creations with
`ONEDNN_VERBOSE=profile_create`. It prints per capacity the update's frames/s over the iterations after the
first, primitives created, and peak and final resident memory, then the ratios against the first capacity.

    python benchmarks/bench_onednn_cache.py [--bundle DIR] [--iterations 15] [--episodes 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_RESULT = "RESULT "


def child(args: argparse.Namespace) -> None:
    """One capacity: the updates in this process; prints one RESULT line of JSON."""
    import numpy as np
    import torch

    from aimc.finetune.ppo import IterationData, make_optimizer, ppo_update
    from aimc.finetune.ppo_config import load_ppo_config
    from aimc.finetune.ppo_rollout import Trajectory
    from aimc.policy import from_pretrained

    torch.set_num_threads(args.threads)
    bundle = args.bundle
    if not bundle:
        from aimc.eval.play import shipped_bundle

        bundle = str(shipped_bundle())
    policy = from_pretrained(os.path.join(bundle, "policy"))
    size = int(policy.config.img_shape[0])
    cfg = load_ppo_config("ppo-distill", [f"frame_size={size}"])
    optimizer = make_optimizer(policy, cfg)
    n_act, dim = policy.config.n_actions, policy.config.goal_dim
    rng = np.random.default_rng(args.seed)
    spent, frames = 0.0, 0
    for it in range(args.iterations):
        trajs, goals = [], []
        for _ in range(args.episodes):
            steps = int(rng.choice([rng.integers(5, 200), rng.integers(100, 501), 500], p=[0.6, 0.25, 0.15]))
            teacher = rng.normal(size=(steps, n_act)).astype(np.float32)
            teacher -= np.log(np.exp(teacher).sum(-1, keepdims=True))
            trajs.append(Trajectory(job=None, frames=rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                                    actions=rng.integers(0, n_act, steps),
                                    logp=np.full(steps, -np.log(n_act), np.float32),
                                    values=np.zeros(steps, np.float32), rewards=np.zeros(steps, np.float32),
                                    bootstrap=0.0, terminal=True, died=False, success_step=None,
                                    teacher_logp=teacher))
            goals.append(rng.normal(size=(steps, dim)).astype(np.float32))
        data = IterationData(trajs, goals, [rng.normal(size=t.steps).astype(np.float32) for t in trajs],
                             [rng.normal(size=t.steps).astype(np.float32) for t in trajs], None, 0.0)
        t0 = time.perf_counter()
        ppo_update(policy, optimizer, data, cfg, 100 + it, 0.0, False)
        if it:  # the first iteration builds most kernels
            spent += time.perf_counter() - t0
            frames += cfg.epochs * sum(t.steps for t in trajs)
        print(f"iteration {it + 1}/{args.iterations}", file=sys.stderr, flush=True)
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    kb = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM") if k in status}
    print(_RESULT + json.dumps({"frames_per_s": frames / spent, "rss_mb": kb.get("VmRSS", 0) / 1024,
                                "peak_mb": kb.get("VmHWM", 0) / 1024}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="", help="agent bundle (default: the shipped agent)")
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--capacities", default="1024,65536", help="comma-separated; the first is the baseline")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.iterations < 2:
        sys.exit("error: --iterations must be at least 2 (the first one is not timed)")
    rows = {}
    for cap in [int(c) for c in args.capacities.split(",")]:
        env = dict(os.environ, ONEDNN_PRIMITIVE_CACHE_CAPACITY=str(cap), ONEDNN_VERBOSE="profile_create")
        cmd = [sys.executable, __file__, "--child", "--iterations", str(args.iterations), "--episodes",
               str(args.episodes), "--threads", str(args.threads), "--seed", str(args.seed), "--bundle", args.bundle]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()
        row = json.loads(next(line for line in out if line.startswith(_RESULT))[len(_RESULT):])
        row["created"] = sum("create:cache_miss" in line for line in out)
        row["wall_s"] = time.perf_counter() - t0
        rows[cap] = row
        print(f"capacity {cap:>6}: update {row['frames_per_s']:6.0f} frames/s, {row['created']:5d} primitives "
              f"created, memory {row['rss_mb']:5.0f} MB at the end (peak {row['peak_mb']:5.0f} MB), "
              f"{row['wall_s']:.0f} s", flush=True)
    base, *others = rows
    for cap in others:
        a, b = rows[cap], rows[base]
        print(f"capacity {cap} / {base}: update speed {a['frames_per_s'] / b['frames_per_s']:.2f}x, primitives "
              f"created {a['created'] / b['created']:.2f}x, peak memory {a['peak_mb'] / b['peak_mb']:.2f}x "
              f"({args.iterations} iterations of {args.episodes} synthetic episodes, {args.threads} threads)")


if __name__ == "__main__":
    main()
