"""Rollout throughput: the shipped agent + Crafter vs the raw env, measured in one run on the same cores.

Prints steps/s (actions taken, summed over workers) for
  raw env     a plain `env.step` loop with uniform random actions (resets included)
  upstream    the same loop with `fast=False`: upstream crafter's own world generation and drawing (the
              same worlds and frames; the rate the target was first measured against)
  agent e=E   the shipped bundle (`aimc.eval.play.shipped_bundle()`: text prompt -> prior -> guided policy), or
              each bundle given with `--bundle` (e.g. a distilled student next to its teacher, in the same run)
              playing E env slots per worker in lockstep, exactly as a rollout worker does
              (`aimc.eval.rollout._Worker`: `Lockstep` + one batched `TextActor` forward per step), at each
              acting precision asked for (fp32, and bf16 autocast where the CPU computes it natively)
at 1 and 2 worker processes (one torch thread each, the engine's default), and each agent rate as a
fraction of the raw env rate on the same workers (target: >= 0.5 at the engine's default E), against
both the env as aimc runs it and upstream's code. Since the array world generator and renderer
(`CrafterConfig.fast`) the env is about twice as fast, so the first fraction fell while every rollout got
faster: the second one compares with the env the target was set against. Each mode also prints its time
inside the env per step: the agent's own steps cost more than a random player's (it lives longer, walks
further, meets more creatures and the night), so even a policy that cost nothing would reach only the
"free-policy ceiling" (raw env time per step / the agent's env time per step) of the raw rate.

The machine may be shared, so the modes are measured in short interleaved windows (raw, e=1, e=8, ... then
again, `--rounds` times), all workers switching together, and each rate is the total over its windows: load
from elsewhere then falls on every mode alike. Model loading and process start-up (identical for any E) are
left out; world generation on reset and the per-episode text goal are included.

    python benchmarks/bench_rollout.py [--window 3] [--rounds 5] [--horizon 300] [--envs 1 8 16] [--workers 1 2]
                                       [--precision fp32 bf16] [--bundle DIR ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PROMPTS = ("collect wood", "place a crafting table", "drink water", "eat a cow", "collect a sapling")
WARMUP_S = 3.0


def _raw_runner(horizon: int, seed: int, fast: bool = True) -> Callable[[float], int]:
    from aimc.envs import make

    env = make("crafter", size=64, fast=fast)
    rng = np.random.default_rng(seed)
    state = {"t": 0, "episodes": 0}
    env.reset(seed=seed)

    def run(until: float) -> int:
        n = 0
        while time.perf_counter() < until:
            _, _, term, trunc, _ = env.step(int(rng.integers(17)))
            n += 1
            state["t"] += 1
            if term or trunc or state["t"] >= horizon:
                state["episodes"] += 1
                env.reset(seed=seed + state["episodes"])
                state["t"] = 0
        return n

    return run


def _agent_runner(horizon: int, seed: int, envs: int, precision: str = "fp32", bundle: str = "") -> Callable[[float], int]:
    from aimc.eval.baselines import TextAgentFactory
    from aimc.eval.play import shipped_bundle
    from aimc.eval.rollout import EnvSpec, EpisodeJob, _Worker

    worker = _Worker(EnvSpec("crafter", {"size": 64}),
                     {"agent": TextAgentFactory(bundle or str(shipped_bundle()), precision=precision)},
                     envs_per_worker=envs)
    key = 0

    def run(until: float) -> int:
        nonlocal key
        n = 0
        while time.perf_counter() < until:
            while worker.free:
                job = EpisodeJob(key=key, condition="agent", task="t", prompt=PROMPTS[key % len(PROMPTS)],
                                 episode=key, world_seed=seed + key, agent_seed=seed + 1000 + key, max_steps=horizon)
                msg = worker.begin(job)
                if msg[0] == "error":
                    raise RuntimeError(msg[2])
                key += 1
            n += worker.lockstep.active
            for msg in worker.step():
                if msg[0] == "error":
                    raise RuntimeError(msg[2])
        return n

    return run


_ENV_SECONDS = [0.0]  # time spent inside the env's step and reset, in this process


def _time_env() -> None:
    """Count the seconds every mode spends inside `CrafterEnv.step` / `reset` (a perf_counter pair per call, well
    under 1 % of a step). The agent's own steps cost more than a random player's (it walks further, lives into
    the night, meets more creatures), so its env time per step, not the raw loop's, bounds what a free policy
    could reach."""
    from aimc.envs import crafter

    for name in ("step", "reset"):
        orig = getattr(crafter.CrafterEnv, name)

        def timed(self: Any, *args: Any, _orig: Callable[..., Any] = orig, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _orig(self, *args, **kwargs)
            finally:
                _ENV_SECONDS[0] += time.perf_counter() - start

        setattr(crafter.CrafterEnv, name, timed)


def _child(modes: list[str], window: float, rounds: int, horizon: int, seed: int, barrier: Any, out: Any,
           bundles: tuple[str, ...] = ("",)) -> None:
    import torch

    torch.set_num_threads(1)
    _time_env()
    runners = {m: _raw_runner(horizon, seed, fast=m == "raw") if m in ("raw", "upstream")
               else _agent_runner(horizon, seed, int(m.split("/")[0]), m.split("/")[1], bundles[int(m.split("/")[2])])
               for m in modes}
    for run in runners.values():  # first forwards, numba kernels, caches
        run(time.perf_counter() + WARMUP_S)
    steps = dict.fromkeys(modes, 0)
    spent = dict.fromkeys(modes, 0.0)
    in_env = dict.fromkeys(modes, 0.0)
    for _ in range(rounds):
        for m in modes:
            barrier.wait()
            start, env_start = time.perf_counter(), _ENV_SECONDS[0]
            steps[m] += runners[m](start + window)
            spent[m] += time.perf_counter() - start
            in_env[m] += _ENV_SECONDS[0] - env_start
    out.put({m: (steps[m] / spent[m], in_env[m] / max(steps[m], 1)) for m in modes})


def measure(workers: int, envs: list[int], window: float, rounds: int, horizon: int,
            precisions: tuple[str, ...] = ("fp32",), bundles: tuple[str, ...] = ("",)) -> tuple[dict[str, float], dict[str, float]]:
    """Steps/s per mode ("raw", "upstream" and each "E/precision/bundle index"), summed over `workers` processes
    measuring together, and each mode's seconds inside the env per step (the workers' mean). A bundle "" is the
    shipped one."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    modes = ["raw", "upstream", *(f"{e}/{p}/{b}" for b in range(len(bundles)) for p in precisions for e in envs)]
    procs = [ctx.Process(target=_child, args=(modes, window, rounds, horizon, 100_000 * (i + 1), barrier, out, bundles))
             for i in range(workers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return ({m: sum(r[m][0] for r in results) for m in modes},
            {m: sum(r[m][1] for r in results) / len(results) for m in modes})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=3.0, help="seconds per measuring window")
    ap.add_argument("--rounds", type=int, default=5, help="windows per mode")
    ap.add_argument("--horizon", type=int, default=300, help="episode length (agent episodes also end on death)")
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 8, 16], help="env slots per worker to measure")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker process counts to measure")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                    help="the agent's acting precision(s) (bf16: autocast where native, else it runs fp32)")
    ap.add_argument("--bundle", nargs="+", default=[""], help="agent bundle(s) to measure (default: the shipped one)")
    args = ap.parse_args()
    from aimc.core.precision import resolve_acting_precision

    bundles = tuple(args.bundle)

    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start; bf16 acting here runs "
          f"{resolve_acting_precision('bf16', 'cpu')}")
    for w in args.workers:
        rates, env_s = measure(w, args.envs, args.window, args.rounds, args.horizon, tuple(args.precision), bundles)
        raw, upstream = rates["raw"], rates["upstream"]
        print(f"workers {w}  raw env     {raw:7.1f} steps/s   {raw / upstream:.2f}x upstream's code   "
              f"env {1e6 * env_s['raw']:.0f} us/step")
        print(f"workers {w}  upstream    {upstream:7.1f} steps/s")
        for b, bundle in enumerate(bundles):
            name = f" {bundle}" if len(bundles) > 1 or bundle else ""
            for m in (f"{e}/{p}/{b}" for p in args.precision for e in args.envs):
                e, p = m.split("/")[:2]
                # With a policy (and harness) that cost nothing, a step would take only its env time.
                ceiling = env_s["raw"] / env_s[m]
                print(f"workers {w}  agent{name} e={int(e):<3d} {p}  {rates[m]:7.1f} steps/s   {rates[m] / raw:.2f}x raw env   "
                      f"{rates[m] / upstream:.2f}x upstream's raw env   env {1e6 * env_s[m]:.0f} us/step "
                      f"({env_s[m] / env_s['raw']:.2f}x a random player's), free-policy ceiling {ceiling:.2f}x raw")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
