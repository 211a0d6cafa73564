"""Foundation throughput ratios, measured in one run (absolute rates drift on a shared machine).

Prints:
  env / raw          our deterministic env step rate / stock crafter.Env   (target >= 0.95)
  record / raw       collection with recording (mp4 + actions + events + infos) / raw  (target >= 0.8)
  2 workers / 1      aggregate collection rate with 2 worker processes / 1 worker     (target >= 1.8)
The first three rates use the same seeded random action stream and count step time only: world generation on
reset (~75 ms, identical code in all three) is excluded because stock Crafter is not deterministic, so the
two envs die, and reset, a different number of times. Each measurement is repeated, interleaved, and the
median is used.

    python benchmarks/bench_collect.py [--steps 3000] [--repeats 3] [--agent random|demonstrator]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import crafter
import numpy as np

from aimc.data.collect import AGENTS, CollectConfig, collect, play_episode
from aimc.data.store import EpisodeWriter
from aimc.envs import make


def raw_rate(steps: int, seed: int) -> float:
    env = crafter.Env(size=(64, 64), seed=seed)
    env.reset()
    acts = np.random.default_rng(seed).integers(0, 17, steps)
    spent = 0.0
    for a in acts:
        t0 = time.perf_counter()
        _, _, done, _ = env.step(int(a))
        spent += time.perf_counter() - t0
        if done:
            env.reset()
    return steps / spent


def env_rate(steps: int, seed: int) -> float:
    env = make("crafter", size=64)
    env.reset(seed=seed)
    acts = np.random.default_rng(seed).integers(0, 17, steps)
    spent = 0.0
    for a in acts:
        t0 = time.perf_counter()
        _, _, term, trunc, _ = env.step(int(a))
        spent += time.perf_counter() - t0
        if term or trunc:
            env.reset()
    return steps / spent


class _ResetTimer:
    """Wraps an env and accumulates the time spent in reset(), so it can be left out of step rates."""

    def __init__(self, env: object) -> None:
        self.env, self.spent = env, 0.0

    def reset(self, **kw: object) -> object:
        t0 = time.perf_counter()
        out = self.env.reset(**kw)
        self.spent += time.perf_counter() - t0
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self.env, name)


def record_rate(steps: int, seed: int, agent_name: str) -> float:
    env = _ResetTimer(make("crafter", size=64))
    done_steps, ep = 0, 0
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        while done_steps < steps:
            agent = AGENTS.get(agent_name)(seed=seed + ep)
            w = EpisodeWriter(root, f"e{ep}", {"world": "crafter"})
            r = play_episode(env, agent, w, seed + ep, min(1000, steps - done_steps))
            w.close()
            done_steps += r["steps"]
            ep += 1
        return done_steps / (time.perf_counter() - t0 - env.spent)


def workers_rate(workers: int, episodes: int, seed: int, agent: str) -> float:
    with tempfile.TemporaryDirectory() as root:
        s = collect(CollectConfig(out=f"{root}/d", agent=agent, episodes=episodes, workers=workers,
                                  max_steps=400, seed=seed), progress=False)
        return s["frames_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=20, help="episodes per worker-scaling measurement")
    ap.add_argument("--agent", default="random", help="action source for recording/worker runs")
    args = ap.parse_args()
    make("crafter").reset(seed=0)  # warm numba's JIT cache before timing
    raw, ours, rec, w1, w2 = [], [], [], [], []
    for r in range(args.repeats):
        raw.append(raw_rate(args.steps, r))
        ours.append(env_rate(args.steps, r))
        rec.append(record_rate(args.steps, r, args.agent))
        w1.append(workers_rate(1, args.episodes, r, args.agent))
        w2.append(workers_rate(2, args.episodes, r, args.agent))
    med = statistics.median
    print(f"raw crafter        {med(raw):8.0f} steps/s")
    print(f"aimc env           {med(ours):8.0f} steps/s   env / raw       = {med(ours) / med(raw):.2f}  (target >= 0.95)")
    print(f"collect+record     {med(rec):8.0f} steps/s   record / raw    = {med(rec) / med(raw):.2f}  (target >= 0.8, agent={args.agent})")
    print(f"collect 1 worker   {med(w1):8.0f} frames/s")
    print(f"collect 2 workers  {med(w2):8.0f} frames/s   2 workers / 1   = {med(w2) / med(w1):.2f}  (target >= 1.8)")


if __name__ == "__main__":
    main()
