"""PPO iteration speed on CPU: rollouts in one process against `rollout_workers` 2, and the update in fp32
against bf16 autocast (`mixed_precision`), each pair measured in one run on the same episodes.

On a 2-core CPU an iteration of the 90-minute preset (48 episodes, ~5,400 frames) took 38 s: 14-15 s of
rollouts, bound by the world's Python step on one core, and 24 s of update (the anchor's replay and 2 epochs).
This plays one iteration's jobs with the bundle's policy both ways (the trainer's `RolloutEngine` with
`--threads` torch threads, then a `RolloutPool` of 2 workers with one thread each, `--rounds` times
interleaved), then times the anchor replay + `ppo_update` on exactly those episodes from the same policy and a
fresh optimiser in each precision (after one untimed pass of each: oneDNN builds its kernels on first use).
It prints the rates, their ratios, and what bf16 costs in accuracy: ``ratio_dev_first`` (max |r - 1| on the
first minibatch, 0 up to rounding in fp32) and the update's statistics against fp32's. bf16 only runs where the
CPU computes it natively (`aimc.core.precision`); elsewhere both update rows are fp32.

    python benchmarks/bench_ppo_update.py [--bundle DIR] [--episodes 48] [--threads 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="", help="agent bundle (default: the shipped agent)")
    ap.add_argument("--episodes", type=int, default=48, help="episodes of the iteration (48 in the presets)")
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--planner", default="chain")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="PPO config override, e.g. --set task_weights.collect_coal=4 (repeatable)")
    args = ap.parse_args()

    from aimc.core.precision import resolve_mixed_precision
    from aimc.eval.planner import make_planner
    from aimc.finetune.ppo import (
        anchor_logp,
        autocast_for,
        make_optimizer,
        ppo_update,
        prepare,
        prepare_iteration,
    )
    from aimc.finetune.ppo_config import load_ppo_config
    from aimc.finetune.ppo_rollout import PolicyActor, RolloutEngine, make_jobs, weighted_schedule
    from aimc.finetune.ppo_workers import RolloutPool

    torch.set_num_threads(args.threads)
    bundle = args.bundle
    if not bundle:
        from aimc.eval.play import shipped_bundle

        bundle = str(shipped_bundle())
    with tempfile.TemporaryDirectory() as tmp:
        base = load_ppo_config("ppo-crafter", [f"bundle={bundle}", f"out={tmp}/run", f"planner={args.planner}",
                                               f"episodes_per_iteration={args.episodes}", f"envs={args.episodes}",
                                               f"max_steps={args.max_steps}", f"seed={args.seed}", *args.sets])
        cfg, plan = prepare(base)
    specs = {s.name: s for s in plan.specs}
    demo_tasks = {s.name: s.demo_task for s in plan.specs}
    jobs = make_jobs(weighted_schedule(plan.specs, cfg.task_weights), cfg.episodes_per_iteration, 2, cfg.seed)
    engine = RolloutEngine(plan.world, plan.world_config, cfg.envs, cfg.stop_on_success)
    pool = RolloutPool(2, str(plan.bundle.policy_dir()), plan.world, plan.world_config, cfg.envs,
                       cfg.stop_on_success, cond_scale=plan.cond_scale, device=cfg.device, planner=cfg.planner,
                       make_labeller=None, demo_tasks=demo_tasks, skip_explore=cfg.expert.skip_explore,
                       tied_moves=cfg.expert.tied_moves)
    roll = {"one process": 0.0, "2 workers": 0.0}
    frames = {"one process": 0, "2 workers": 0}
    try:
        pool.play(plan.policy, specs, plan.goals, jobs[:2], cfg.max_steps, cfg.reward, gamma=cfg.gamma)  # spawn
        for _ in range(args.rounds):
            for mode in roll:
                t0 = time.perf_counter()
                if mode == "one process":
                    actor = PolicyActor(plan.policy, cfg.envs, plan.cond_scale, cfg.device,
                                        make_planner(cfg.planner, plan.world), plan.goals.__getitem__, None, demo_tasks,
                                        cfg.expert.skip_explore, cfg.expert.tied_moves)
                    trajs = engine.play(actor, specs, plan.goals, jobs, cfg.max_steps, cfg.reward, gamma=cfg.gamma)
                else:
                    trajs = pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward, gamma=cfg.gamma)
                roll[mode] += time.perf_counter() - t0
                frames[mode] += sum(tr.steps for tr in trajs)
    finally:
        pool.close()
    for mode in roll:
        print(f"rollouts, {mode:>11}: {frames[mode] / roll[mode]:6.0f} env steps/s "
              f"({frames[mode]} steps of {args.rounds} x {len(jobs)} episodes)")
    print(f"rollout speed, 2 workers / one process ({args.threads} thread(s)): "
          f"{frames['2 workers'] / roll['2 workers'] / (frames['one process'] / roll['one process']):.2f}x")
    frames_it = sum(tr.steps for tr in trajs)
    goals = [plan.goals[tr.job.prompt] if tr.goals is None else tr.goals for tr in trajs]
    start = copy.deepcopy(plan.policy)
    anchor = copy.deepcopy(plan.policy).eval().requires_grad_(False)

    precisions = ("no", "bf16")
    resolved = {p: resolve_mixed_precision(p, "cpu") for p in precisions}
    spent = dict.fromkeys(precisions, 0.0)
    stats: dict[str, dict[str, float]] = {}
    for r in range(args.rounds + 1):  # round 0 untimed
        for prec in precisions:
            c = dataclasses.replace(cfg, mixed_precision=prec)
            policy = copy.deepcopy(start)
            optimizer = make_optimizer(policy, c)
            t = time.perf_counter()
            data = prepare_iteration(policy, trajs, goals, c)
            data.anchor = anchor_logp(anchor, trajs, goals, plan.cond_scale, c.device, autocast=autocast_for(c))
            stats[prec] = ppo_update(policy, optimizer, data, c, 2, plan.cond_scale, False)
            if r:
                spent[prec] += time.perf_counter() - t
    rate = {p: args.rounds * cfg.epochs * frames_it / spent[p] for p in precisions}
    for p in precisions:
        s = stats[p]
        print(f"{p:>4} (runs {resolved[p]}): {rate[p]:7.0f} frames/s (anchor replay + {cfg.epochs} epochs), "
              f"ratio_dev_first {s['ratio_dev_first']:.4f}, kl_anchor {s['kl_anchor']:.5f}, "
              f"approx_kl {s['approx_kl']:.5f}, policy_loss {s['policy_loss']:+.5f}")
    print(f"bf16 / fp32 update speed: {rate['bf16'] / rate['no']:.2f}x")


if __name__ == "__main__":
    main()
