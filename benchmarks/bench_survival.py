"""Scripted demonstrator survival: free play alive at step 1000, task-mode deaths and success (Wilson 95 %).

    python benchmarks/bench_survival.py                                  # 60 free-play + 22 tasks x 10 seeds
    python benchmarks/bench_survival.py --free-episodes 30 --task-seeds 5 --tasks collect_iron,eat_cow
    python benchmarks/bench_survival.py --impl demo_orig                 # another copy of the package
    python benchmarks/bench_survival.py --free-episodes 0 --tasks "" --chain-episodes 200   # chain mode only
    python benchmarks/bench_survival.py --free-episodes 200 --free-seed 21000 --tasks "" --probe food --workers 2
    python benchmarks/bench_survival.py --free-episodes 200 --free-seed 21000 --tasks "" --workers 2 --set fight_radius=3

World seeds default to 20000+ (free play), 30000+ (tasks) and 40000+ (chains), which no test uses. Free play
runs each episode to step 1000 or death and records cause-of-death proxies from the player's state (which stat
was 0, what hit it last). Task mode runs 500 steps per episode whatever happens: success = the task's event
fired, "died first" = the player died before that, "died by 500" = it died within the 500 steps at all (the
demonstrator keeps pursuing the task after a success). Chain mode (`--chain-episodes`, off by default) runs
`--task-steps` steps of tasks drawn in turn and counts deaths, with their cause and the goal pursued then.
One process: `--free-episodes 60 --task-seeds 5` took 11 minutes on a shared 2-core box.
`--impl` imports `CrafterDemonstrator`/`DemonstratorConfig` from another module with the same interface,
e.g. a copy of an older `aimc.envs.demo`, so before/after numbers come from the same harness and seeds.
`--probe` changes the world, not the player, to price one survival pressure (docs/demonstrator.md, "What each
cause costs"): `food` / `drink` refill that stat after every step, `stone` keeps 9 stones in the inventory (prices the
stone gathering for night rooms), `zombies` leaves zombies moving but harmless.
`cows` changes what the player knows instead: every cow within 30 cells (Manhattan) is in its memory each step,
as if it had just seen it, which prices the cow search (finding them) apart from the walks and the cows' number.
`--set FIELD=VALUE` overrides a `DemonstratorConfig` field in every episode (a candidate setting, measured against
the defaults on the same worlds). Free play also prints the longest run of steps spent stepping back and forth
between two cells (a behaviour undoing itself; 2-4 is usual in a room or a fight), and where the health went: points lost by source (a proxy: a zombie
within two cells, else a skeleton or arrow there, else an empty stat), by time of day, and zombie damage by the
behaviour the demonstrator was in (`current_goal`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import multiprocessing
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator

from aimc.core.config import build_config
from aimc.core.errors import AimcError
from aimc.envs import make
from aimc.envs.demo import TASKS


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval for k successes out of n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def cause_of_death(prev: dict, player, world) -> str:
    """Proxy for what killed the player, from the state just before the fatal step."""
    starved = [k for k in ("food", "drink", "energy") if prev[k] == 0]
    px, py = player.pos
    near = Counter(type(o).__name__ for o in world.objects
                   if abs(o.pos[0] - px) + abs(o.pos[1] - py) <= (1 if type(o).__name__ == "Zombie" else 5))
    if prev["health"] - player.health >= 2 and near["Zombie"]:
        return "zombie"
    if prev["health"] - player.health >= 2 and (near["Skeleton"] or near["Arrow"]):
        return "arrow"
    if world[player.pos][0] == "lava":
        return "lava"
    if starved:
        return "no " + "+".join(starved)
    return "zombie" if near["Zombie"] else "other"


PROBES = ("none", "food", "drink", "stone", "zombies", "cows")
_COW_SIGHT = 30  # the `cows` probe: cows this close (Manhattan) are known each step


@contextlib.contextmanager
def _harmless_zombies(on: bool) -> Iterator[None]:
    """While `on`, Crafter's zombies still move and gather round the player but their hits take no health (the
    patch is undone afterwards, so task and chain episodes of the same run meet real zombies)."""
    from crafter import objects

    update = objects.Zombie.update

    def harmless(self) -> None:
        health = self.player.health
        update(self)
        self.player.health = max(self.player.health, health)

    if on:
        objects.Zombie.update = harmless
    try:
        yield
    finally:
        objects.Zombie.update = update


@contextlib.contextmanager
def _cows_known(impl, on: bool) -> Iterator[None]:
    """While `on`, every observation adds each cow within `_COW_SIGHT` cells to the demonstrator's remembered
    sightings (after its own tracking), so a hungry player walks to the nearest real cow instead of searching."""
    memory = importlib.import_module(f"{impl.__name__}.memory").WorldMemory
    observe = memory.observe

    def all_cows(self, world, pos, step=0):
        seen = observe(self, world, pos, step)
        for obj in world.objects:
            if type(obj).__name__ == "Cow" and abs(obj.pos[0] - pos[0]) + abs(obj.pos[1] - pos[1]) <= _COW_SIGHT:
                self.cows.add((int(obj.pos[0]), int(obj.pos[1])))
        return seen

    if on:
        memory.observe = all_cows
    try:
        yield
    finally:
        memory.observe = observe


def demo_config(impl, sets: list[str] | None = None, **fields):
    """The demonstrator's config: its defaults, then `fields` (mode, task), then the `--set` overrides."""
    return build_config(impl.DemonstratorConfig, fields, overrides=sets or [])


def time_of_day(daylight: float) -> str:
    """Crafter's light in the demonstrator's own bands: night below 0.35, dusk (or dawn) below 0.75."""
    return "night" if daylight < 0.35 else "dusk" if daylight < 0.75 else "day"


def damage_source(prev: dict, player, world) -> str:
    """What took health this step (a proxy): a zombie within two cells, else a skeleton or arrow there, else an empty stat."""
    px, py = player.pos
    near = Counter(type(o).__name__ for o in world.objects if abs(o.pos[0] - px) + abs(o.pos[1] - py) <= 2)
    if near["Zombie"]:
        return "zombie"
    if near["Arrow"] or near["Skeleton"]:
        return "arrow"
    return "starving" if min(prev["food"], prev["drink"], prev["energy"]) == 0 else "other"


# alive, length, cause of death, health lost by (source, time, behaviour), longest back-and-forth run (steps)
Outcome = tuple[bool, int, str, Counter, int]


def longest_pacing(cells: list[tuple[int, int]]) -> int:
    """Most consecutive steps that each returned to the cell of two steps before (stepping back and forth between
    two cells): 2-4 is usual inside a room or a fight; longer runs were behaviours undoing themselves."""
    run = longest = 0
    for k in range(2, len(cells)):
        run = run + 1 if cells[k] == cells[k - 2] != cells[k - 1] else 0
        longest = max(longest, run)
    return longest


def free_play(impl, seed: int, steps: int, probe: str = "none", sets: list[str] | None = None) -> Outcome:
    with _harmless_zombies(probe == "zombies"), _cows_known(impl, probe == "cows"):
        return _free_play(impl, seed, steps, probe, sets)


def _free_play(impl, seed: int, steps: int, probe: str, sets: list[str] | None) -> Outcome:
    env = make("crafter")
    env.reset(seed=seed)
    demo = impl.CrafterDemonstrator(demo_config(impl, sets), seed=seed)
    demo.reset(env)
    lost: Counter = Counter()
    cells: list[tuple[int, int]] = []
    for t in range(steps):
        prev = dict(env.player.inventory)
        _, _, terminated, _, _ = env.step(demo.act(env))
        cells.append((int(env.player.pos[0]), int(env.player.pos[1])))
        if env.player.health < prev["health"]:
            key = (damage_source(prev, env.player, env.world), time_of_day(env.world.daylight), demo.current_goal)
            lost[key] += prev["health"] - env.player.health
        if probe == "food":
            env.player.inventory["food"], env.player._hunger = 9, 0
        elif probe == "drink":
            env.player.inventory["drink"], env.player._thirst = 9, 0
        elif probe == "stone":
            env.player.inventory["stone"] = 9
        if terminated:
            return False, t + 1, cause_of_death(prev, env.player, env.world), lost, longest_pacing(cells)
    return True, steps, "", lost, longest_pacing(cells)


def _free_play_by_name(impl_name: str, seed: int, steps: int, probe: str, sets: list[str]) -> Outcome:
    return free_play(importlib.import_module(impl_name), seed, steps, probe, sets)


def chain_episode(impl, seed: int, steps: int, sets: list[str] | None = None) -> tuple[bool, str, str]:
    """(died within `steps`, cause, the demonstrator's goal at the fatal step) for one chain-mode episode."""
    env = make("crafter")
    env.reset(seed=seed)
    demo = impl.CrafterDemonstrator(demo_config(impl, sets, mode="chain"), seed=seed)
    demo.reset(env)
    for _ in range(steps):
        prev = dict(env.player.inventory)
        _, _, terminated, _, _ = env.step(demo.act(env))
        if terminated:
            return True, cause_of_death(prev, env.player, env.world), demo.current_goal
    return False, "", ""


def task_episode(impl, task: str, seed: int, steps: int, sets: list[str] | None = None) -> tuple[bool, bool, bool]:
    """(success, died before success, died within `steps`)."""
    env = make("crafter")
    env.reset(seed=seed)
    demo = impl.CrafterDemonstrator(demo_config(impl, sets, mode="task", task=task), seed=seed)
    demo.reset(env)
    success = False
    for _ in range(steps):
        _, _, terminated, _, info = env.step(demo.act(env))
        success = success or task in info["events"]
        if terminated:
            return success, not success, True
    return success, False, False


def fmt(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / max(n, 1):.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--free-episodes", type=int, default=60)
    parser.add_argument("--free-steps", type=int, default=1000)
    parser.add_argument("--free-seed", type=int, default=20000, help="first free-play world seed")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, or empty to skip")
    parser.add_argument("--task-seeds", type=int, default=10)
    parser.add_argument("--task-steps", type=int, default=500)
    parser.add_argument("--task-seed", type=int, default=30000, help="first task-mode world seed")
    parser.add_argument("--chain-episodes", type=int, default=0, help="chain-mode episodes (tasks drawn in turn)")
    parser.add_argument("--chain-seed", type=int, default=40000, help="first chain-mode world seed")
    parser.add_argument("--impl", default="aimc.envs.demo", help="module providing the demonstrator")
    parser.add_argument("--probe", choices=PROBES, default="none", help="free play: switch one pressure off")
    parser.add_argument("--workers", type=int, default=1, help="free-play processes (episodes do not depend on it)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="demonstrator config override for every episode (repeatable), e.g. fight_radius=3")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    impl = importlib.import_module(args.impl)
    try:
        demo_config(impl, args.set)
    except AimcError as err:
        parser.error(str(err))
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))

    if args.free_episodes:
        t0 = time.perf_counter()
        seeds = range(args.free_seed, args.free_seed + args.free_episodes)
        if args.workers > 1:
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                runs = pool.starmap(_free_play_by_name,
                                    [(args.impl, s, args.free_steps, args.probe, args.set) for s in seeds], chunksize=1)
        else:
            runs = [free_play(impl, s, args.free_steps, args.probe, args.set) for s in seeds]
        alive = sum(r[0] for r in runs)
        causes = Counter(r[2] for r in runs if not r[0])
        lengths = [r[1] for r in runs]
        probe = "" if args.probe == "none" else f", probe {args.probe}"
        print(f"\n### Free play: alive at step {args.free_steps}, {len(runs)} episodes "
              f"(world seeds {args.free_seed}-{args.free_seed + len(runs) - 1}{probe})\n")
        print(f"alive {alive}/{len(runs)} = {fmt(alive, len(runs))} (Wilson 95 %); mean length "
              f"{sum(lengths) / len(lengths):.0f}; deaths by cause: "
              + (", ".join(f"{c} {n}" for c, n in causes.most_common()) or "none")
              + f" ({time.perf_counter() - t0:.0f} s)")
        by_source, by_time, by_behaviour = Counter(), Counter(), Counter()
        for r in runs:
            for (source, when, behaviour), n in r[3].items():
                by_source[source] += n
                by_time[f"{source} {when}"] += n
                if source == "zombie":
                    by_behaviour[behaviour] += n
        for title, by in (("source", by_source), ("source and time of day", by_time), ("zombies, by behaviour", by_behaviour)):
            print(f"health lost by {title}: " + (", ".join(f"{k} {n}" for k, n in by.most_common(8)) or "none"))
        paced = [(r[4], seed) for r, seed in zip(runs, seeds, strict=True)]
        worst = max(paced)
        print(f"back and forth between two cells: longest run {worst[0]} steps (world {worst[1]}); "
              f"episodes with a run over 10 steps: {sum(n > 10 for n, _ in paced)}")

    if args.chain_episodes:
        t0 = time.perf_counter()
        chains = [chain_episode(impl, args.chain_seed + k, args.task_steps, args.set) for k in range(args.chain_episodes)]
        died = sum(r[0] for r in chains)
        causes = Counter(r[1] for r in chains if r[0])
        goals = Counter(r[2] for r in chains if r[0])
        print(f"\n### Chain mode: {args.task_steps}-step episodes, world seeds {args.chain_seed}-"
              f"{args.chain_seed + len(chains) - 1}\n")
        print(f"died within {args.task_steps} steps {died}/{len(chains)} = {fmt(died, len(chains))}; by cause: "
              + (", ".join(f"{c} {n}" for c, n in causes.most_common()) or "none") + "; goal at death: "
              + (", ".join(f"{g} {n}" for g, n in goals.most_common()) or "none")
              + f" ({time.perf_counter() - t0:.0f} s)")

    tasks = [t for t in args.tasks.split(",") if t]
    if tasks:
        t0 = time.perf_counter()
        rows, totals = [], Counter()
        for task in tasks:
            res = [task_episode(impl, task, args.task_seed + k, args.task_steps, args.set) for k in range(args.task_seeds)]
            row = Counter(success=sum(r[0] for r in res), first=sum(r[1] for r in res), died=sum(r[2] for r in res))
            rows.append((task, row))
            totals.update(row)
        n, total = args.task_seeds, args.task_seeds * len(tasks)
        print(f"\n### Task mode: {args.task_steps}-step episodes, {n} world seeds per task "
              f"({args.task_seed}-{args.task_seed + n - 1})\n")
        print("| task | success | died before success | died within 500 steps |")
        print("|---|---|---|---|")
        for task, row in rows:
            print(f"| {task} | {fmt(row['success'], n)} | {row['first']} | {row['died']} |")
        print(f"\nall tasks: success {fmt(totals['success'], total)}, died before success "
              f"{fmt(totals['first'], total)}, died within {args.task_steps} steps {fmt(totals['died'], total)} "
              f"({total} episodes, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
