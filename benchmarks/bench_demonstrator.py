"""Scripted Crafter demonstrator: per-task success within N steps, free-play diversity, act() cost.

    python benchmarks/bench_demonstrator.py                      # all 22 tasks, 20 seeds, 500 steps
    python benchmarks/bench_demonstrator.py --seeds 5 --tasks collect_wood,place_table

Prints markdown tables (the ones in docs/demonstrator.md). act() cost is measured within the same run
as the env step, and reported as a ratio too, because absolute times on a shared 2-core box are noisy.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from tqdm import tqdm

from aimc.envs import make
from aimc.envs.demo import TASKS, CrafterDemonstrator, DemonstratorConfig


def run_task(task: str, seed: int, max_steps: int) -> dict:
    """One episode pursuing `task`; success = its event fires within `max_steps`."""
    env = make("crafter")
    env.reset(seed=seed)
    demo = CrafterDemonstrator(DemonstratorConfig(mode="task", task=task), seed=seed)
    demo.reset(env)
    t_act = t_env = 0.0
    result = {"success": False, "steps": max_steps, "death": False}
    for t in range(max_steps):
        t0 = time.perf_counter()
        action = demo.act(env)
        t1 = time.perf_counter()
        _, _, terminated, _, info = env.step(action)
        t_env += time.perf_counter() - t1
        t_act += t1 - t0
        if task in info["events"]:
            result.update(success=True, steps=t + 1)
            break
        if terminated:
            result.update(death=True, steps=t + 1)
            break
    result.update(t_act=t_act, t_env=t_env, n=result["steps"])
    return result


def free_play(seed: int, steps: int) -> tuple[Counter, Counter, int, bool]:
    """One free-play episode: event counts, time per current_goal, length, died."""
    env = make("crafter")
    env.reset(seed=seed)
    demo = CrafterDemonstrator(seed=seed)
    demo.reset(env)
    events: Counter = Counter()
    goals: Counter = Counter()
    for t in range(steps):
        action = demo.act(env)
        goals[demo.current_goal] += 1
        _, _, terminated, truncated, info = env.step(action)
        events.update(info["events"])
        if terminated or truncated:
            return events, goals, t + 1, terminated
    return events, goals, steps, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=500, help="step budget per task episode")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--free-episodes", type=int, default=20)
    parser.add_argument("--free-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first world seed")
    args = parser.parse_args()

    tasks = [t for t in args.tasks.split(",") if t]
    rows, t_act, t_env, n_steps = [], 0.0, 0.0, 0
    for task in tqdm(tasks, desc="tasks"):
        results = [run_task(task, args.seed + k, args.steps) for k in range(args.seeds)]
        ok = [r["steps"] for r in results if r["success"]]
        rows.append((task, len(ok) / len(results), float(np.median(ok)) if ok else float("nan"),
                     sum(r["death"] for r in results)))
        t_act += sum(r["t_act"] for r in results)
        t_env += sum(r["t_env"] for r in results)
        n_steps += sum(r["n"] for r in results)

    print(f"\n### Task mode: success within {args.steps} steps, {args.seeds} seeds\n")
    print("| task | success | median steps (successes) | deaths |")
    print("|---|---|---|---|")
    for task, rate, med, deaths in rows:
        print(f"| {task} | {rate:.2f} | {med:.0f} | {deaths} |")
    print(f"\nmean success over {len(rows)} tasks: {np.mean([r[1] for r in rows]):.2f}")
    print(f"act(): {1e6 * t_act / n_steps:.0f} us/step; env.step(): {1e6 * t_env / n_steps:.0f} us/step; "
          f"act/step ratio {t_act / t_env:.3f} ({n_steps} steps)")

    events: Counter = Counter()
    goals: Counter = Counter()
    lengths, deaths = [], 0
    for k in tqdm(range(args.free_episodes), desc="free play"):
        ev, go, length, died = free_play(args.seed + 1000 + k, args.free_steps)
        events.update(ev)
        goals.update(go)
        lengths.append(length)
        deaths += died
    print(f"\n### Free play: {args.free_episodes} episodes of up to {args.free_steps} steps\n")
    print(f"mean length {np.mean(lengths):.0f}, deaths {deaths}, distinct events {len(events)}\n")
    print("| event | count |")
    print("|---|---|")
    for name, count in events.most_common():
        print(f"| {name} | {count} |")
    total = sum(goals.values())
    print("\n| current_goal | share of steps |")
    print("|---|---|")
    for name, count in goals.most_common():
        print(f"| {name} | {count / total:.3f} |")


if __name__ == "__main__":
    main()
