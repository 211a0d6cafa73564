"""An agent's first night in Crafter: whether it walls itself in, from near the demonstrator's seal and on its own.

    python benchmarks/bench_night.py rungs --bundle B                      # 48 worlds, k = 0,1,2,4,8,16,32,64
    python benchmarks/bench_night.py rungs --bundle B --worlds 24 --ks 1,2,4,8,16
    python benchmarks/bench_night.py own --bundle B                        # 24 worlds, chain-prepare, 400 steps
    python benchmarks/bench_night.py own --bundle B --prompt "mine stone" --planner chain-rest --steps 500
    python benchmarks/bench_night.py dusk --bundle B                       # 24 worlds, k = 1,2,4,8,16,32

Why: `aimc eval tasks` says that an agent dies and when, not whether it ever sheltered; the night is where every
shipped agent dies (docs/results.md), so work on it needs its own measure, and these are the ones
docs/evaluation.md ("Start states in the package" and after) reports.

`rungs` asks how far back from the seal the agent can finish it. The free-play scripted demonstrator (no noise,
`pocket_shelter` unless `--shelter room`) plays each world 9000+w until it first stands walled in while it is dark
(its first night's seal, `aimc.finetune.ppo_start.DemoStart` with mark `walled_in_dark`); the world is replayed to
k steps before that, the agent's memory reads the 32 replayed frames before, and it acts for up to k + 10 steps,
told the night instruction of the night planners (the wake_up instruction). Success: it stands walled in while it
is dark (light below the demonstrator's `night_daylight`). Deaths within those steps are counted too.

`own` asks what the agent does with its own day. It plays eval worlds 1000+w from the reset, told `--prompt`
through `--planner` (chain-prepare by default: the day's task, the night's kit from the afternoon, the night
instruction after dusk), for `--steps` steps. Per world: the first dark step (dusk), stones held then, steps walled
in while dark, the death step; summed up: walled in at night (at least one dark step), alive at each checkpoint
step, dead before dusk.

`dusk` joins the two: the agent plays its own day as in `own` up to its first dark step, then the free-play
demonstrator (no noise, `pocket_shelter` unless `--shelter room`) takes over from that very state, its memory
starting there, for up to 150 steps until it is walled in while it is dark. Where it is, the world is replayed
(the agent's own actions, then the demonstrator's) to k steps before that seal and the agent, its memory warmed on
the 32 frames before, acts for up to k + 10 steps told the night instruction, as in `rungs`. It says whether the
agent's own dusk leaves a shelter within reach, and how far back from it the agent can finish one.

World seeds 9000+ and 1000+ are the ones docs/evaluation.md used (1000+ are the task suites' evaluation worlds);
the agent samples with seed `--seed` + w in world w, so a run is reproducible on CPU. Wilson 95 % intervals.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from aimc.core.errors import AimcError
from aimc.eval.metrics import wilson_interval

RUNG_WORLDS = 9000
OWN_WORLDS = 1000
CHECKPOINTS = (200, 260, 320, 400, 500)


def _rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} [{lo:.2f}, {hi:.2f}]"


def _dark(env: Any) -> bool:
    from aimc.envs.demo import DemonstratorConfig

    return float(env.world.daylight) < DemonstratorConfig().night_daylight


def _goal_cache(agent: Any) -> Any:
    """text -> the agent's goal embedding, each text embedded once (planners repeat their instructions)."""
    goals: dict[str, np.ndarray] = {}

    def goal(text: str) -> np.ndarray:
        if text not in goals:
            goals[text] = agent.goal_from_text([text])
        return goals[text]

    return goal


def rungs(agent: Any, worlds: int, ks: list[int], pocket: bool, seed: int, verbose: bool) -> dict[int, tuple[int, int]]:
    """{k: (walled in, died)} over `worlds` worlds."""
    from aimc.embed.captions import instruction
    from aimc.envs import make
    from aimc.eval.planner import player_enclosed
    from aimc.finetune.ppo_config import StartConfig
    from aimc.finetune.ppo_start import DemoStart, StartRequest

    goal = agent.goal_from_text([instruction("wake_up", "crafter")])
    start = StartConfig(share=1.0, until="walled_in_dark", max_demo_steps=600, warmup=32,
                        demonstrator={"mode": "free", "pocket_shelter": pocket})
    env = DemoStart(make("crafter", size=64), start)
    out = {k: (0, 0) for k in ks}
    for w in range(worlds):
        row = []
        for k in ks:
            obs, _ = env.reset(seed=RUNG_WORLDS + w, options={"start": StartRequest(k, "wake_up")})
            agent.start(goal, cond_scale=0.0, seed=seed + w)
            first = True
            for pov, _ in env.warmup:  # the memory reads the frames before the start state
                agent.act(pov[None], np.array([first]))
                first = False
            sealed = died = False
            for _ in range(k + 10):
                action = agent.act(obs["pov"][None], np.array([first]))
                first = False
                obs, _, terminated, _, _ = env.step(int(action[0]))
                if terminated:
                    died = True
                    break
                if player_enclosed(env) and _dark(env):
                    sealed = True
                    break
            wins, deaths = out[k]
            out[k] = (wins + sealed, deaths + died)
            row.append(int(sealed))
        if verbose:
            print(f"world {RUNG_WORLDS + w}: seal at step {env.started['mark_step']}, walled in per k {row}", flush=True)
    return out


def own(agent: Any, worlds: int, prompt: str, planner_name: str, steps: int, seed: int, verbose: bool) -> list[dict]:
    """One record per world: dusk step, stones at dusk, dark steps walled in, death step (None: alive)."""
    from aimc.envs import make
    from aimc.eval.planner import make_planner, player_enclosed

    planner = make_planner(planner_name, "crafter")
    goal = _goal_cache(agent)

    records = []
    for w in range(worlds):
        env = make("crafter", size=64)
        obs, _ = env.reset(seed=OWN_WORLDS + w)
        plan = planner.start(prompt) if planner is not None else None
        text = planner.prompt(plan, env) if planner is not None else prompt
        agent.start(goal(text), cond_scale=0.0, seed=seed + w)
        first = True
        rec: dict[str, Any] = {"world": OWN_WORLDS + w, "dusk": None, "stones_at_dusk": None, "sealed_dark": 0,
                               "died": None}
        for t in range(steps):
            if planner is not None:
                new = planner.prompt(plan, env)
                if new != text:
                    text = new
                    agent.set_goals([0], goal(text))
            action = agent.act(obs["pov"][None], np.array([first]))
            first = False
            obs, _, terminated, _, _ = env.step(int(action[0]))
            if _dark(env):
                if rec["dusk"] is None:
                    rec["dusk"], rec["stones_at_dusk"] = t, int(env.player.inventory["stone"])
                rec["sealed_dark"] += bool(player_enclosed(env))
            if terminated:
                rec["died"] = t
                break
        records.append(rec)
        if verbose:
            print(f"world {rec['world']}: dusk {rec['dusk']}, stones then {rec['stones_at_dusk']}, dark steps walled in "
                  f"{rec['sealed_dark']}, died {rec['died']}", flush=True)
    return records


def dusk(agent: Any, worlds: int, ks: list[int], prompt: str, planner_name: str, pocket: bool, seed: int,
         verbose: bool) -> list[dict]:
    """One record per world: the agent's dusk step (None: dead before it), the demonstrator's steps from there to
    its seal (None: no seal), and {k: walled in} for each k the demonstrator's part reaches back to."""
    from aimc.embed.captions import instruction
    from aimc.envs import make
    from aimc.envs.actor import DemonstratorActor
    from aimc.eval.planner import make_planner, player_enclosed

    planner = make_planner(planner_name, "crafter")
    goal = _goal_cache(agent)

    night = goal(instruction("wake_up", "crafter"))
    records = []
    for w in range(worlds):
        world = OWN_WORLDS + w
        env = make("crafter", size=64)
        obs, _ = env.reset(seed=world)
        plan = planner.start(prompt) if planner is not None else None
        text = planner.prompt(plan, env) if planner is not None else prompt
        agent.start(goal(text), cond_scale=0.0, seed=seed + w)
        first, actions, alive = True, [], True
        rec: dict[str, Any] = {"world": world, "dusk": None, "demo_steps": None, "rungs": {}}
        while alive and not _dark(env):
            if planner is not None:
                new = planner.prompt(plan, env)
                if new != text:
                    text = new
                    agent.set_goals([0], goal(text))
            action = int(agent.act(obs["pov"][None], np.array([first]))[0])
            first = False
            actions.append(action)
            obs, _, terminated, _, _ = env.step(action)
            alive = not terminated
        if alive:
            rec["dusk"] = len(actions)
            demo = DemonstratorActor({"mode": "free", "pocket_shelter": pocket, "noise_prob": 0.0})
            demo.reset(env, world)
            taken: list[int] = []
            for t in range(150):
                action = int(demo.act(env, obs, t == 0))
                taken.append(action)
                obs, _, terminated, _, _ = env.step(action)
                if terminated:
                    break
                if _dark(env) and player_enclosed(env):
                    rec["demo_steps"] = len(taken)
                    break
        if rec["demo_steps"] is not None:
            played = actions + taken
            for k in (k for k in ks if k <= len(taken)):
                replay = make("crafter", size=64)
                obs, _ = replay.reset(seed=world)
                frames = []
                for action in played[:len(played) - k]:
                    frames.append(obs["pov"])
                    obs, _, _, _, _ = replay.step(action)
                agent.start(night, cond_scale=0.0, seed=seed + w)
                first = True
                for pov in frames[-32:]:  # the memory reads the frames before the start state
                    agent.act(pov[None], np.array([first]))
                    first = False
                sealed = False
                for _ in range(k + 10):
                    action = int(agent.act(obs["pov"][None], np.array([first]))[0])
                    first = False
                    obs, _, terminated, _, _ = replay.step(action)
                    if terminated:
                        break
                    if player_enclosed(replay) and _dark(replay):
                        sealed = True
                        break
                rec["rungs"][k] = sealed
        records.append(rec)
        if verbose:
            print(f"world {world}: dusk {rec['dusk']}, demonstrator seal after {rec['demo_steps']}, walled in per k "
                  f"{ {k: int(v) for k, v in rec['rungs'].items()} }", flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("rungs", "own", "dusk"))
    parser.add_argument("--bundle", default="", help="agent bundle (default: the shipped agent)")
    parser.add_argument("--worlds", type=int, default=None, help="worlds (rungs 48, own 24)")
    parser.add_argument("--ks", default=None, help="rungs / dusk: steps before the seal (default 0,1,2,4,8,16,32,64 / "
                        "1,2,4,8,16,32)")
    parser.add_argument("--shelter", choices=("pocket", "room"), default="pocket",
                        help="rungs / dusk: the demonstrator may dig a 1x2 pocket (pocket) or builds rooms only (room)")
    parser.add_argument("--prompt", default="collect wood", help="own / dusk: the instruction")
    parser.add_argument("--planner", default="chain-prepare", help="own / dusk: the bundle planner to play under")
    parser.add_argument("--steps", type=int, default=400, help="own: steps per episode")
    parser.add_argument("--seed", type=int, default=0, help="agent sampling seed of world 0 (world w: seed + w)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="one line per world")
    args = parser.parse_args(argv)
    try:
        import torch

        from aimc.eval.agent import TextAgent
        from aimc.eval.planner import PLANNER_NAMES
        from aimc.eval.play import shipped_bundle

        if args.mode != "rungs" and args.planner not in PLANNER_NAMES:
            raise AimcError(f"unknown planner {args.planner!r}; choose one of {', '.join(PLANNER_NAMES)}")
        spec = args.ks or ("0,1,2,4,8,16,32,64" if args.mode == "rungs" else "1,2,4,8,16,32")
        try:
            ks = [int(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            ks = []
        if args.mode != "own" and (not ks or min(ks) < 0):
            raise AimcError(f"--ks needs comma-separated steps >= 0, got {spec!r}")
        if args.mode == "own" and args.steps <= 0:
            raise AimcError(f"--steps must be positive, got {args.steps}")
        torch.set_num_threads(args.threads)
        bundle = args.bundle or str(shipped_bundle())
        agent = TextAgent.from_bundle(bundle, seed=args.seed)
        started = time.perf_counter()
        print(f"command: python benchmarks/bench_night.py {' '.join(sys.argv[1:] if argv is None else argv)}")
        if args.mode == "rungs":
            n = args.worlds or 48
            counts = rungs(agent, n, ks, args.shelter == "pocket", args.seed, args.verbose)
            print(f"### From k steps before the demonstrator's first-night seal ({args.shelter}), {n} worlds "
                  f"({RUNG_WORLDS}-{RUNG_WORLDS + n - 1}), k + 10 steps told the night instruction: {bundle}")
            print("| k | walled in while dark | died |\n|---|---|---|")
            for k in ks:
                print(f"| {k} | {_rate(counts[k][0], n)} | {counts[k][1]} |")
        elif args.mode == "dusk":
            n = args.worlds or 24
            recs = dusk(agent, n, ks, args.prompt, args.planner, args.shelter == "pocket", args.seed, args.verbose)
            at_dusk = [r for r in recs if r["dusk"] is not None]
            sealed = [r for r in at_dusk if r["demo_steps"] is not None]
            steps = [r["demo_steps"] for r in sealed]
            print(f"### From the agent's own dusk (\"{args.prompt}\" under {args.planner}), {n} worlds "
                  f"({OWN_WORLDS}-{OWN_WORLDS + n - 1}), the demonstrator ({args.shelter}) to its seal: {bundle}")
            print(f"alive at dusk {len(at_dusk)}/{n}; the demonstrator walled in from there in {_rate(len(sealed), len(at_dusk))}, "
                  f"median {float(np.median(steps)) if steps else float('nan'):.0f} steps (range "
                  f"{min(steps, default=0)}-{max(steps, default=0)})")
            print("| k | the agent walled in while dark (of the seals at least k steps long) |\n|---|---|")
            for k in ks:
                flags = [r["rungs"][k] for r in sealed if k in r["rungs"]]
                print(f"| {k} | {_rate(sum(flags), len(flags))} |")
        else:
            n = args.worlds or 24
            recs = own(agent, n, args.prompt, args.planner, args.steps, args.seed, args.verbose)
            deaths = [r["died"] for r in recs if r["died"] is not None]
            stones = [r["stones_at_dusk"] for r in recs if r["stones_at_dusk"] is not None]
            print(f"### Own episodes: \"{args.prompt}\" under {args.planner}, {n} worlds ({OWN_WORLDS}-{OWN_WORLDS + n - 1}), "
                  f"{args.steps} steps: {bundle}")
            print(f"walled in at night (a dark step walled in): {_rate(sum(r['sealed_dark'] > 0 for r in recs), n)}; "
                  f"dead before dusk {sum(r['died'] is not None and r['dusk'] is None for r in recs)}/{n}; "
                  f"stones at dusk: mean {np.mean(stones) if stones else float('nan'):.1f} over {len(stones)} dusks")
            alive = ", ".join(f"{h}: {_rate(sum(r['died'] is None or r['died'] >= h for r in recs), n)}"
                              for h in CHECKPOINTS if h <= args.steps)
            print(f"alive at step {alive}; median death step "
                  f"{float(np.median(deaths)) if deaths else float('nan'):.0f} ({len(deaths)} deaths)")
        print(f"({time.perf_counter() - started:.0f} s)")
    except AimcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
