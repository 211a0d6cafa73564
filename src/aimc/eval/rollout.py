"""Parallel episode rollouts that survive crashing and hanging env workers.

Everything an episode needs crosses the process boundary as picklable values: an `EnvSpec`, the
per-condition *agent factories* (called once per worker to build an `EpisodeAgent`) and one
`EpisodeJob` per episode. Each worker holds one env and its agents and runs one job at a time, so:

* an exception inside an episode is reported back and the episode is retried (fresh env);
* a worker that dies (segfault, `os._exit`, OOM kill) is restarted and its episode retried;
* a worker silent for longer than `episode_timeout` seconds is killed, restarted, and retried.

After `max_attempts` failures an episode is recorded as lost (with the last error) instead of
aborting a long evaluation. Backends: "process" (multiprocessing, spawn), "ray" (actors; when `ray`
is installed), or `workers=0` for in-process runs.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError

STARTUP_GRACE_S = 180.0


@dataclass(frozen=True)
class EnvSpec:
    """How a worker builds its env: `aimc.envs.make(world, **config)`."""

    world: str = "crafter"
    config: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Any:
        from aimc.envs import make

        return make(self.world, **self.config)


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run. `prompt` is empty for unprompted conditions; `agent_seed` seeds the agent."""

    key: int
    condition: str
    task: str
    prompt: str
    episode: int
    world_seed: int
    agent_seed: int
    max_steps: int
    demo_task: str | None = None
    record: bool = False
    video_size: int = 128


@dataclass
class EpisodeResult:
    """What happened: `occurrences[event]` = steps (action indices) at which the event fired."""

    job: EpisodeJob
    steps: int
    occurrences: dict[str, list[int]]
    died: bool
    attempts: int = 1
    video: bytes | None = None
    wall_s: float = 0.0


@dataclass
class LostEpisode:
    job: EpisodeJob
    attempts: int
    error: str


@dataclass
class RolloutOutput:
    results: list[EpisodeResult]
    lost: list[LostEpisode]
    retries: int
    failures: list[str]  # one line per failed attempt: job, kind (error/crash/timeout), last message line


class EpisodeAgent(Protocol):
    """An agent as the rollout engine drives it; the env is passed so scripted baselines may read its state."""

    def begin(self, job: EpisodeJob, env: Any) -> None: ...

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int: ...


class AgentFactory(Protocol):
    """Picklable recipe for an `EpisodeAgent`; called once in each worker."""

    def __call__(self) -> EpisodeAgent: ...


# ---------------------------------------------------------------------------- one episode
def run_episode(env: Any, agent: EpisodeAgent, job: EpisodeJob) -> EpisodeResult:
    """Reset the env to the job's world seed and play up to `max_steps` (no early stop on success:
    specificity needs every event over the full horizon); death ends the episode."""
    start = time.perf_counter()
    obs, _ = env.reset(seed=job.world_seed)
    agent.begin(job, env)
    occurrences: dict[str, list[int]] = {}
    frames: list[np.ndarray] = []
    died = False
    steps = 0
    for t in range(job.max_steps):
        if job.record:
            frames.append(_video_frame(env, job, t))
        action = agent.act(env, obs, t == 0)
        obs, _, terminated, truncated, info = env.step(int(action))
        steps = t + 1
        for ev in info.get(keys.EVENTS, []):
            occurrences.setdefault(ev, []).append(t)
        if terminated or truncated:
            died = bool(terminated)
            break
    video = _encode(frames) if job.record and frames else None
    return EpisodeResult(job, steps, occurrences, died, video=video, wall_s=time.perf_counter() - start)


def _video_frame(env: Any, job: EpisodeJob, t: int) -> np.ndarray:
    from aimc.core.video import annotate

    frame = env.render_frame(job.video_size) if hasattr(env, "render_frame") else env.render()
    return annotate(frame, [job.prompt or job.condition, f"t={t}"])


def _encode(frames: list[np.ndarray]) -> bytes:
    """Frames -> watchable mp4 bytes (yuv420p H.264), small enough to embed in the HTML report."""
    import tempfile
    from pathlib import Path

    from aimc.core.video import write_mp4

    with tempfile.TemporaryDirectory(prefix="aimc-video-") as d:
        path = write_mp4(Path(d) / "episode.mp4", np.stack(frames), fps=10, lossless=False)
        return Path(path).read_bytes()


class _Worker:
    """Env + lazily built agents, shared by every backend."""

    def __init__(self, env_spec: EnvSpec, factories: dict[str, AgentFactory]) -> None:
        self.env_spec = env_spec
        self.factories = factories
        self.env: Any = None
        self.agents: dict[str, EpisodeAgent] = {}

    def prepare(self, job: EpisodeJob) -> None:
        """Build the env and the job's agent (slow the first time: imports, world, weights)."""
        if self.env is None:
            self.env = self.env_spec.make()
        if job.condition not in self.agents:
            self.agents[job.condition] = self.factories[job.condition]()

    def run(self, job: EpisodeJob) -> EpisodeResult:
        self.prepare(job)
        try:
            return run_episode(self.env, self.agents[job.condition], job)
        except BaseException:
            self.env = None  # a failed env may be half-stepped or broken: rebuild it for the next job
            raise


def _worker_main(conn: Any, env_spec: EnvSpec, factories: dict[str, AgentFactory], threads: int) -> None:
    """Process-backend worker loop: receive a job, send ("ok", result) or ("error", key, traceback)."""
    import torch

    torch.set_num_threads(threads)
    worker = _Worker(env_spec, factories)
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            worker.prepare(job)
            conn.send(("started", job.key))  # the episode's time limit runs from here
            conn.send(("ok", worker.run(job)))
        except Exception:
            conn.send(("error", job.key, traceback.format_exc(limit=8)))


# ---------------------------------------------------------------------------- scheduling
class _Book:
    """Retry bookkeeping shared by the backends."""

    def __init__(self, jobs: list[EpisodeJob], max_attempts: int, progress: bool, desc: str) -> None:
        from tqdm.auto import tqdm

        self.queue: deque[EpisodeJob] = deque(jobs)
        self.attempts: dict[int, int] = {}
        self.results: list[EpisodeResult] = []
        self.lost: list[LostEpisode] = []
        self.failures: list[str] = []
        self.retries = 0
        self.max_attempts = max_attempts
        self.bar = tqdm(total=len(jobs), desc=desc, unit="episode", disable=not progress)

    def start(self, job: EpisodeJob) -> None:
        self.attempts[job.key] = self.attempts.get(job.key, 0) + 1

    def done(self, result: EpisodeResult) -> None:
        result.attempts = self.attempts.get(result.job.key, 1)
        self.results.append(result)
        self.bar.update(1)

    def failed(self, job: EpisodeJob, kind: str, message: str) -> None:
        last = message.strip().splitlines()[-1] if message.strip() else kind
        self.failures.append(f"{job.condition}/{job.task or '-'}#{job.episode}: {kind}: {last}")
        n = self.attempts.get(job.key, 1)
        if n >= self.max_attempts:
            self.lost.append(LostEpisode(job, n, f"{kind}: {last}"))
            self.bar.update(1)
        else:
            self.retries += 1
            self.queue.appendleft(job)

    def output(self) -> RolloutOutput:
        self.bar.close()
        self.results.sort(key=lambda r: r.job.key)
        return RolloutOutput(self.results, self.lost, self.retries, self.failures)


def run_jobs(
    jobs: list[EpisodeJob],
    factories: dict[str, AgentFactory],
    env_spec: EnvSpec,
    workers: int = 2,
    backend: str = "process",
    max_attempts: int = 3,
    episode_timeout: float | None = None,
    threads_per_worker: int = 1,
    progress: bool = True,
) -> RolloutOutput:
    """Run every job and return results (sorted by key), lost episodes and the retry count."""
    missing = sorted({j.condition for j in jobs} - set(factories))
    if missing:
        raise AimcError(f"jobs name conditions without an agent factory: {missing}")
    if max_attempts < 1:
        raise AimcError("max_attempts must be >= 1")
    book = _Book(jobs, max_attempts, progress, desc="rollouts")
    if workers <= 0:
        _run_inline(book, factories, env_spec)
    elif backend == "process":
        _run_processes(book, factories, env_spec, workers, episode_timeout, threads_per_worker)
    elif backend == "ray":
        from aimc.eval.ray_backend import run_ray

        run_ray(book, factories, env_spec, workers, episode_timeout, threads_per_worker)
    else:
        raise AimcError(f"unknown rollout backend {backend!r}; choose process or ray")
    return book.output()


def _run_inline(book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec) -> None:
    worker = _Worker(env_spec, factories)
    while book.queue:
        job = book.queue.popleft()
        book.start(job)
        try:
            book.done(worker.run(job))
        except Exception:
            book.failed(job, "error", traceback.format_exc(limit=8))


@dataclass
class _Slot:
    proc: Any = None
    conn: Any = None
    job: EpisodeJob | None = None
    since: float = 0.0
    started: bool = False  # the worker acknowledged the job (its imports and env are up)


def _run_processes(
    book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec, workers: int,
    episode_timeout: float | None, threads: int,
) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    # spawn, not fork: forking a process that already ran torch ops can deadlock in OpenMP.
    ctx = mp.get_context("spawn")

    def launch(slot: _Slot) -> None:
        parent, child = ctx.Pipe(duplex=True)
        slot.proc = ctx.Process(target=_worker_main, args=(child, env_spec, factories, threads), daemon=True)
        slot.proc.start()
        child.close()
        slot.conn, slot.job = parent, None

    def kill(slot: _Slot) -> None:
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join(timeout=5)
        slot.conn.close()

    slots = [_Slot() for _ in range(min(workers, max(len(book.queue), 1)))]
    for s in slots:
        launch(s)
    try:
        while book.queue or any(s.job is not None for s in slots):
            for s in slots:
                if s.job is None and book.queue:
                    s.job = book.queue.popleft()
                    book.start(s.job)
                    s.since, s.started = time.monotonic(), False
                    s.conn.send(s.job)
            busy = [s for s in slots if s.job is not None]
            wait([x for s in busy for x in (s.conn, s.proc.sentinel)], timeout=1.0)
            for s in busy:
                try:
                    while s.job is not None and s.conn.poll():
                        msg = s.conn.recv()
                        if msg[0] == "started":
                            s.since, s.started = time.monotonic(), True
                        elif msg[0] == "ok":
                            book.done(msg[1])
                            s.job = None
                        else:
                            book.failed(s.job, "error", msg[2])
                            s.job = None
                except (EOFError, OSError):
                    pass  # the worker died mid-message; handled as a crash below
                if s.job is None:
                    continue
                # Worker start-up (imports, agent loading) is not charged to the episode's time limit.
                limit = None if episode_timeout is None else episode_timeout + (0 if s.started else STARTUP_GRACE_S)
                if not s.proc.is_alive():
                    book.failed(s.job, "crash", f"worker exited with code {s.proc.exitcode}")
                    kill(s)
                    launch(s)
                elif limit is not None and time.monotonic() - s.since > limit:
                    book.failed(s.job, "timeout", f"no result after {episode_timeout:.0f} s; worker killed")
                    kill(s)
                    launch(s)
    finally:
        for s in slots:
            try:
                if s.proc.is_alive() and s.job is None:
                    s.conn.send(None)
                    s.proc.join(timeout=5)
            except (OSError, BrokenPipeError):
                pass
            kill(s)
