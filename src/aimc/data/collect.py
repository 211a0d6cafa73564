"""Collect episodes with a scripted agent into an episode store: parallel, resumable, Ctrl-C safe.

Episode i of a collection with seed S plays world seed `derive_seed(S, i)`, so any subset of episodes can
be (re)collected by any worker in any order and give the same bytes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc import __version__
from aimc.core import keys
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, ConfigError, EpisodeError
from aimc.core.io import TMP_PREFIX, atomic_write_json, check_writable_dir, remove_stale_tmp
from aimc.core.registry import Registry
from aimc.core.seeding import derive_seed
from aimc.data.store import EpisodeWriter, is_episode_dir
from aimc.envs import (
    DEFAULT_WORLD,
    Actor,
    DemonstratorActor,
    EpisodeHook,
    RandomActor,
    Step,
    StopAtEvent,
    run_episode,
)

# name -> factory(**agent_config) -> Actor; each episode gets a fresh actor, reset with its own seed.
AGENTS: Registry[Callable[..., Actor]] = Registry("collection agent")
CONFIG_FILE = "collect_config.json"


@dataclass
class CollectConfig:
    """What to collect; saved as collect_config.json in the output dir and checked on resume."""

    out: str = "data/crafter"
    """Output episode-store directory."""
    world: str = DEFAULT_WORLD
    """World name (see `aimc.envs.make`)."""
    world_config: dict[str, Any] = field(default_factory=dict)
    """Keyword options for the world (e.g. size)."""
    agent: str = "demonstrator"
    """Who plays: 'demonstrator' (scripted free play) or 'random'."""
    agent_config: dict[str, Any] = field(default_factory=dict)
    """Options for the agent (e.g. DemonstratorConfig fields)."""
    episodes: int = 10
    """Number of episodes the store should hold (indices 0..episodes-1)."""
    max_steps: int = 1000
    """Step cap per episode (episodes also end on death)."""
    workers: int = 1
    """Parallel worker processes."""
    seed: int = 0
    """Collection seed; episode i uses world seed derive_seed(seed, i)."""
    fps: int = 20
    """Frame rate written into frames.mp4."""
    task: str | None = None
    """Task demonstrations: the demonstrator in task mode pursues this achievement from a fresh world, and each
    episode ends at the step its event fires (or at `max_steps`, or death). None: the agent as configured."""

    def __post_init__(self) -> None:
        for name in ("episodes", "max_steps", "workers", "fps"):
            v = getattr(self, name)
            if v < (0 if name == "episodes" else 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'episodes' else 'positive'}, got {v}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        if self.task is not None and self.agent != "demonstrator":
            raise ConfigError(f"--task needs the demonstrator (it demonstrates the task), not agent {self.agent!r}")

    def agent_options(self) -> dict[str, Any]:
        """The agent's options: `agent_config`, in task mode on `task` when one is given."""
        if self.task is None:
            return dict(self.agent_config)
        return {**self.agent_config, "mode": "task", "task": self.task}

    def identity(self) -> dict[str, Any]:
        """The settings that determine episode contents (episodes/workers may change on resume)."""
        d = to_dict(self)
        return {k: d[k] for k in ("world", "world_config", "agent", "agent_config", "max_steps", "seed", "fps", "task")}


@AGENTS.register("random")
def _make_random(**options: Any) -> Actor:
    if options:
        raise ConfigError(f"random agent takes no options, got {sorted(options)}")
    return RandomActor()


@AGENTS.register("demonstrator")
def _make_demonstrator(**options: Any) -> Actor:
    return DemonstratorActor(options, where="agent_config")


def episode_name(seed: int, index: int) -> str:
    return f"ep{index:06d}_s{seed}"


class WriterHook(EpisodeHook):
    """Records each step into an episode store: frame t (obs before action t), action t and what it caused,
    plus the actor's `current_goal` as info["goal"] when it has one and its DART label as info["label"] when
    that differs from the executed action (the recording stays a replayable trace of what happened)."""

    def __init__(self, writer: EpisodeWriter) -> None:
        self.writer = writer

    def on_step(self, env: Any, step: Step) -> None:
        info = step.info if step.goal is None else {**step.info, "goal": step.goal}
        if step.label is not None and int(step.label) != step.action:
            info = {**info, keys.LABEL: int(step.label)}
        self.writer.add(step.obs[keys.POV], step.action, step.info[keys.EVENTS], info)


# ------------------------------------------------------------------------ worker side
_W: dict[str, Any] = {}


def _worker_init(cfg_dict: dict[str, Any], stop: Any = None) -> None:
    """`stop` (a worker process's): an event that, once set, makes every episode not yet started a no-op, so the
    parent stops a pool by letting it drain instead of killing workers (see `iter_collect`). A pool worker also
    ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the parent handles it."""
    from aimc.envs import make

    if stop is not None:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _W["stop"] = stop
    cfg = from_dict(CollectConfig, cfg_dict)
    _W["cfg"] = cfg
    env = make(cfg.world, **cfg.world_config)
    _W["env"] = env if cfg.task is None else StopAtEvent(env, cfg.task)  # a demonstration ends at its success


def _recorded_action_names(names: Any) -> list[str] | dict[str, int]:
    """The world's action names for an episode's metadata; a generated sequence too large to spell out (the
    VPT joint action, over a million codes) is stored as ``{"generated": size}`` instead of a million strings."""
    if isinstance(names, list | tuple):
        return list(names)
    return {"generated": len(names)}

def _collect_one(index: int) -> dict[str, Any] | None:
    if _W.get("stop") is not None and _W["stop"].is_set():
        return None  # the collection is stopping: this episode is not started
    cfg: CollectConfig = _W["cfg"]
    env = _W["env"]
    world_seed = derive_seed(cfg.seed, index)
    agent = AGENTS.get(cfg.agent)(**cfg.agent_options())
    agent_config = getattr(agent, "config", {})
    name = episode_name(cfg.seed, index)
    meta = {
        "world": cfg.world,
        "world_config": cfg.world_config,
        "seed": cfg.seed,
        "episode_index": index,
        "world_seed": world_seed,
        "agent": cfg.agent,
        "demonstrator": to_dict(agent_config) if hasattr(agent_config, "__dataclass_fields__") else agent_config,
        # a generated name space (Minecraft's million VPT joint codes) is recorded by size, not spelt out
        "action_names": _recorded_action_names(getattr(env, "action_names", [])),
        "fps": cfg.fps,
        "task": cfg.task,
        "dart_labels": hasattr(agent, "label_action"),  # infos may carry "label" (the dataset reads them then)
        "created_by": f"aimc {__version__}",
    }
    writer = EpisodeWriter(cfg.out, name, meta, fps=cfg.fps)
    try:
        record = run_episode(env, agent, world_seed, cfg.max_steps, actor_seed=derive_seed(cfg.seed, index, "agent"),
                             hooks=[WriterHook(writer)])
        writer.close(terminated=record.terminated, truncated=record.truncated, event_counts=record.event_counts())
    except BaseException:
        writer.abort()
        raise
    return {"index": index, "name": name, "steps": record.steps, "terminated": record.terminated,
            "truncated": record.truncated, "events": record.event_counts()}


# ------------------------------------------------------------------------ driver
def _prepare_out(cfg: CollectConfig) -> Path:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise AimcError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        foreign = [
            p.name for p in out.iterdir()
            if p.name != CONFIG_FILE and not p.name.startswith(TMP_PREFIX) and not is_episode_dir(p)
        ]
        if foreign:
            raise AimcError(
                f"--out {out} is not an episode store (it holds {', '.join(sorted(foreign)[:3])}); choose an empty or new directory"
            )
        cfg_path = out / CONFIG_FILE
        if cfg_path.is_file():
            try:
                old = json.loads(cfg_path.read_text())
            except json.JSONDecodeError:
                raise AimcError(f"{cfg_path} is corrupt; move it away to collect into this directory") from None
            old_id = {k: old.get(k) for k in cfg.identity()}
            if old_id != cfg.identity():
                diff = sorted(k for k in old_id if old_id[k] != cfg.identity()[k])
                raise AimcError(f"--out {out} was collected with different settings ({', '.join(diff)}); use another --out")
    check_writable_dir(out)
    remove_stale_tmp(out)
    atomic_write_json(out / CONFIG_FILE, to_dict(cfg))
    return out


def pending_indices(cfg: CollectConfig) -> list[int]:
    """Episode indices not yet present (finished episodes are skipped on resume)."""
    out = Path(cfg.out)
    return [i for i in range(cfg.episodes) if not is_episode_dir(out / episode_name(cfg.seed, i))]


def iter_collect(cfg: CollectConfig) -> Iterator[dict[str, Any]]:
    """Yield one result dict per finished episode (in completion order).

    When anything fails (a full disk in one worker, Ctrl-C), no further episode starts, the ones running end
    (or fail) on their own and any hidden temp dir left is removed before the error goes on: finished episodes
    stay, and nothing half-written is left for the next run to find.
    """
    todo = pending_indices(cfg)
    if not todo:
        return
    if cfg.workers == 1 or len(todo) == 1:
        _worker_init(to_dict(cfg))
        try:
            for i in todo:
                yield _collect_one(i)
        except BaseException:
            remove_stale_tmp(cfg.out)  # the writer aborted already; this is the backstop
            raise
        return
    # Stopping drains the pool instead of terminating it: `Pool.terminate` kills workers wherever they are, and
    # one killed while sending its result holds the result queue's lock forever, so the pool's own shutdown then
    # hangs (seen on a busy machine). The running episodes end (or fail) on their own; queued ones are skipped.
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    pool = ctx.Pool(min(cfg.workers, len(todo)), initializer=_worker_init, initargs=(to_dict(cfg), stop))
    try:
        for res in pool.imap_unordered(_collect_one, todo):
            if res is not None:
                yield res
    except BaseException:
        stop.set()
        pool.close()
        pool.join()
        remove_stale_tmp(cfg.out)  # a failed episode's writer aborted already; this is the backstop
        raise
    pool.close()
    pool.join()


def collect(cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Collect until the store holds `cfg.episodes` episodes; returns a summary dict."""
    from aimc.envs.base import available_worlds

    if cfg.world not in available_worlds():  # validate before touching the output directory
        raise AimcError(f"unknown world {cfg.world!r}; available: {', '.join(available_worlds())}")
    AGENTS.get(cfg.agent)(**cfg.agent_options())  # a bad agent option or task fails here, before any write
    _prepare_out(cfg)
    todo = pending_indices(cfg)
    summary: dict[str, Any] = {"requested": cfg.episodes, "skipped_existing": cfg.episodes - len(todo), "collected": 0, "frames": 0}
    events: Counter[str] = Counter()
    t0 = time.perf_counter()
    bar = _progress(len(todo), progress)
    try:
        for res in iter_collect(cfg):
            summary["collected"] += 1
            summary["frames"] += res["steps"]
            events.update(res["events"])
            bar(1, summary["frames"] / max(time.perf_counter() - t0, 1e-9))
    finally:
        bar(0, None)
    summary["seconds"] = time.perf_counter() - t0
    summary["frames_per_s"] = summary["frames"] / max(summary["seconds"], 1e-9)
    summary["events"] = dict(events)
    return summary


def _progress(total: int, enabled: bool) -> Callable[[int, float | None], None]:
    """A tiny rich progress bar callback: advance(n, fps); advance(0, None) closes it."""
    if not enabled or total == 0:
        return lambda n, fps: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("collect"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                    TextColumn("{task.fields[fps]}"), TimeElapsedColumn())
    task = prog.add_task("collect", total=total, fps="")
    prog.start()

    def advance(n: int, fps: float | None) -> None:
        if fps is None:
            prog.stop()
            return
        prog.update(task, advance=n, fps=f"{fps:,.0f} frames/s")

    return advance


__all__ = ["AGENTS", "CollectConfig", "EpisodeError", "WriterHook", "collect", "iter_collect"]
