"""Parallel episode rollouts that survive crashing and hanging env workers.

Everything an episode needs crosses the process boundary as picklable values: an `EnvSpec`, the
per-condition *agent factories* (called in each worker to build an `aimc.envs.Actor`) and one
`EpisodeJob` per episode. Each worker holds `envs_per_worker` env slots and plays up to that many jobs
at once in lockstep (`aimc.envs.Lockstep`, the episode loop of `aimc.envs.run_episode` for many slots):
a learned agent (a `BatchActor` such as `TextActor`) answers all its slots in one policy forward per
step, scripted agents get one instance per slot, and a slot whose episode ends takes the next job.
An episode's result does not depend on its slot or its neighbours (each slot samples from a generator
seeded by its job's `agent_seed`), so:

* an exception inside an episode is reported back and that episode alone is retried (its env is rebuilt);
* a worker that dies (segfault, `os._exit`, OOM kill) is restarted and the episode it was stepping is
  retried; its other episodes are re-run from the start without being charged an attempt;
* a worker silent for longer than `episode_timeout` seconds (it reports at least every `HEARTBEAT_S`
  while stepping) is killed, restarted, and handled like a crash.

After `max_attempts` failures an episode is recorded as lost (with the last error) instead of
aborting a long evaluation. Backends: "process" (multiprocessing, spawn), "ray" (actors; when `ray`
is installed; a crash or hang there charges every episode the actor held), or `workers=0` for
in-process runs.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aimc.core.errors import AimcError
from aimc.envs import DEFAULT_WORLD, Actor, EpisodeHook, Lockstep, run_episode, video_frame

STARTUP_GRACE_S = 180.0
DEFAULT_ENVS_PER_WORKER = 16
"""Env slots per worker. With the shipped policy, agent + env steps/s is 0.28x the raw env rate at 1 slot,
0.55x at 8 and 0.71x at 16 (benchmarks/bench_rollout.py); the policy's cost per env stops falling near 16."""
HEARTBEAT_S = 1.0
"""A busy worker reports at least this often, so silence means a hang, not a long episode."""


@dataclass(frozen=True)
class EnvSpec:
    """How a worker builds its env: `aimc.envs.make(world, **config)`."""

    world: str = DEFAULT_WORLD
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


class AgentFactory(Protocol):
    """Picklable recipe for an `aimc.envs.Actor`; called once in each worker, or once per env slot when
    what it builds is a plain `Actor` rather than an `aimc.envs.BatchActor`."""

    def __call__(self) -> Actor: ...


# ---------------------------------------------------------------------------- one episode
class _VideoHook(EpisodeHook):
    """Frames for the report: the state before each action, labelled with the prompt and the step."""

    def __init__(self, job: EpisodeJob) -> None:
        self.job = job
        self.frames: list[np.ndarray] = []

    def before_action(self, env: Any, t: int, obs: dict[str, Any]) -> None:
        from aimc.core.video import annotate

        frame = video_frame(env, obs, self.job.video_size)
        self.frames.append(annotate(frame, [self.job.prompt or self.job.condition, f"t={t}"]))


def run_job(env: Any, actor: Actor, job: EpisodeJob) -> EpisodeResult:
    """Play the job's episode: the actor pursues `demo_task` / follows `prompt` for up to `max_steps` (no
    early stop on success: specificity needs every event over the full horizon); death ends it."""
    start = time.perf_counter()
    video = _VideoHook(job) if job.record else None
    record = run_episode(env, actor, job.world_seed, job.max_steps, actor_seed=job.agent_seed, task=job.demo_task,
                         prompt=job.prompt, hooks=[video] if video is not None else [])
    mp4 = _encode(video.frames) if video is not None and video.frames else None
    return EpisodeResult(job, record.steps, record.occurrences(), record.terminated, video=mp4,
                         wall_s=time.perf_counter() - start)


def _encode(frames: list[np.ndarray]) -> bytes:
    """Frames -> watchable mp4 bytes (yuv420p H.264), small enough to embed in the HTML report."""
    import tempfile
    from pathlib import Path

    from aimc.core.video import write_mp4

    with tempfile.TemporaryDirectory(prefix="aimc-video-") as d:
        path = write_mp4(Path(d) / "episode.mp4", np.stack(frames), fps=10, lossless=False)
        return Path(path).read_bytes()


class _Worker:
    """`envs_per_worker` env slots in lockstep and the lazily built agents that play them; every backend
    drives one. Messages it produces: ("started", key), ("ok", EpisodeResult), ("error", job, traceback).

    `publish(key)` names the job whose world or agent code runs now (-1: several jobs', or none), so a
    supervising process can blame the right episode when the worker dies or hangs.
    """

    def __init__(self, env_spec: EnvSpec, factories: dict[str, AgentFactory], envs_per_worker: int = 1,
                 publish: Any = None) -> None:
        self.factories = factories
        self.shared: dict[str, Any] = {}  # condition -> the BatchActor serving all its slots
        self.own: dict[tuple[str, int], Actor] = {}  # (condition, slot) -> that slot's plain Actor
        self.slot_keys = [-1] * envs_per_worker
        self.publish = publish or (lambda key: None)
        self.lockstep = Lockstep(env_spec.make, envs_per_worker, self._busy)

    def _busy(self, slot: int | None) -> None:
        self.publish(-1 if slot is None else self.slot_keys[slot])

    @property
    def free(self) -> int:
        return self.lockstep.n_slots - self.lockstep.active

    def _actor(self, condition: str, slot: int) -> Any:
        if condition in self.shared:
            return self.shared[condition]
        if (condition, slot) not in self.own:
            actor = self.factories[condition]()  # slow the first time: imports, weights
            if hasattr(actor, "act_slots"):
                self.shared[condition] = actor
                return actor
            self.own[(condition, slot)] = actor
        return self.own[(condition, slot)]

    def begin(self, job: EpisodeJob) -> tuple:
        """Start `job` in a free slot (building its env and agent if needed); "started" or "error"."""
        try:
            slot = self.lockstep.free_slots()[0]
            self.slot_keys[slot] = job.key
            self._busy(slot)
            video = _VideoHook(job) if job.record else None
            self.lockstep.start(slot, self._actor(job.condition, slot), job.world_seed, job.max_steps,
                                actor_seed=job.agent_seed, task=job.demo_task, prompt=job.prompt,
                                hooks=[video] if video is not None else [], tag=(job, video, time.perf_counter()))
        except Exception:
            return ("error", job, traceback.format_exc(limit=8))
        finally:
            self.publish(-1)
        return ("started", job.key)

    def step(self) -> Iterator[tuple]:
        """One lockstep step; yields a message per episode that ended (as soon as it ends)."""
        for outcome in self.lockstep.step():
            job, video, start = outcome.tag
            if outcome.error is not None:
                yield ("error", job, outcome.error)
                continue
            record = outcome.record
            assert record is not None
            try:
                mp4 = _encode(video.frames) if video is not None and video.frames else None
            except Exception:
                yield ("error", job, traceback.format_exc(limit=8))
                continue
            yield ("ok", EpisodeResult(job, record.steps, record.occurrences(), record.terminated, video=mp4,
                                       wall_s=time.perf_counter() - start))


def _worker_main(conn: Any, env_spec: EnvSpec, factories: dict[str, AgentFactory], threads: int,
                 envs_per_worker: int, where: Any) -> None:
    """Process-backend worker loop: take jobs into free slots (waiting only when every slot is idle), step,
    send each message as it happens, and a heartbeat ("alive",) at least every HEARTBEAT_S while busy."""
    import torch

    torch.set_num_threads(threads)

    def publish(key: int) -> None:
        where.value = key

    worker = _Worker(env_spec, factories, envs_per_worker, publish)
    last = time.monotonic()
    while True:
        while conn.poll() or not worker.lockstep.active:
            job = conn.recv()
            if job is None:
                return
            conn.send(worker.begin(job))
            last = time.monotonic()
        for msg in worker.step():
            conn.send(msg)
            last = time.monotonic()
        if time.monotonic() - last > HEARTBEAT_S:
            conn.send(("alive",))
            last = time.monotonic()


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

    def requeue(self, job: EpisodeJob) -> None:
        """Re-run `job` from the start without charging an attempt: its worker died of another episode."""
        self.attempts[job.key] -= 1
        self.queue.appendleft(job)

    def handle(self, msg: tuple) -> EpisodeJob | None:
        """Book a worker message; the job it finished (done or failed), else None."""
        if msg[0] == "ok":
            self.done(msg[1])
            return msg[1].job
        if msg[0] == "error":
            self.failed(msg[1], "error", msg[2])
            return msg[1]
        return None

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
    envs_per_worker: int = DEFAULT_ENVS_PER_WORKER,
) -> RolloutOutput:
    """Run every job and return results (sorted by key), lost episodes and the retry count.

    Each of `workers` workers (0: this process) plays up to `envs_per_worker` jobs at once in lockstep;
    results are the same for any `workers` and `envs_per_worker` (up to float rounding in batched matrix
    products, which can flip a near-tie between two actions)."""
    missing = sorted({j.condition for j in jobs} - set(factories))
    if missing:
        raise AimcError(f"jobs name conditions without an agent factory: {missing}")
    if max_attempts < 1:
        raise AimcError("max_attempts must be >= 1")
    if envs_per_worker < 1:
        raise AimcError(f"envs_per_worker must be >= 1, got {envs_per_worker}")
    book = _Book(jobs, max_attempts, progress, desc="rollouts")
    if workers <= 0:
        _run_inline(book, factories, env_spec, envs_per_worker)
    elif backend == "process":
        _run_processes(book, factories, env_spec, workers, episode_timeout, threads_per_worker, envs_per_worker)
    elif backend == "ray":
        from aimc.eval.ray_backend import run_ray

        run_ray(book, factories, env_spec, workers, episode_timeout, threads_per_worker, envs_per_worker)
    else:
        raise AimcError(f"unknown rollout backend {backend!r}; choose process or ray")
    return book.output()


def _run_inline(book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec, envs_per_worker: int) -> None:
    worker = _Worker(env_spec, factories, envs_per_worker)
    while book.queue or worker.lockstep.active:
        while book.queue and worker.free:
            job = book.queue.popleft()
            book.start(job)
            book.handle(worker.begin(job))
        for msg in worker.step():
            book.handle(msg)


@dataclass
class _Proc:
    """A worker process and the jobs it holds (at most `envs_per_worker`)."""

    proc: Any = None
    conn: Any = None
    where: Any = None  # shared int the worker writes: key of the job whose code runs now, -1 several/none
    jobs: dict[int, EpisodeJob] = field(default_factory=dict)
    unacked: set[int] = field(default_factory=set)  # sent, not yet started (imports, env, weights)
    heard: float = 0.0


def _run_processes(
    book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec, workers: int,
    episode_timeout: float | None, threads: int, envs_per_worker: int,
) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    # spawn, not fork: forking a process that already ran torch ops can deadlock in OpenMP.
    ctx = mp.get_context("spawn")

    def launch(w: _Proc) -> None:
        parent, child = ctx.Pipe(duplex=True)
        w.where = ctx.Value("q", -1, lock=False)
        w.proc = ctx.Process(target=_worker_main, args=(child, env_spec, factories, threads, envs_per_worker, w.where),
                             daemon=True)
        w.proc.start()
        child.close()
        w.conn, w.jobs, w.unacked = parent, {}, set()

    def kill(w: _Proc) -> None:
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(timeout=5)
        w.conn.close()

    def lose(w: _Proc, kind: str, message: str) -> None:
        """The worker died or hung: charge the episode it was in (all, if it was in shared code), re-run the rest."""
        culprit = w.where.value
        for key, job in w.jobs.items():
            if culprit not in w.jobs or key == culprit:
                book.failed(job, kind, message)
            else:
                book.requeue(job)
        kill(w)
        launch(w)

    procs = [_Proc() for _ in range(min(workers, max(-(-len(book.queue) // envs_per_worker), 1)))]
    for w in procs:
        launch(w)
    try:
        while book.queue or any(w.jobs for w in procs):
            while book.queue:  # fill the emptiest worker first, so a small run spreads over all of them
                w = min(procs, key=lambda w: len(w.jobs))
                if len(w.jobs) >= envs_per_worker:
                    break
                job = book.queue.popleft()
                book.start(job)
                if not w.jobs:
                    w.heard = time.monotonic()
                w.jobs[job.key] = job
                w.unacked.add(job.key)
                w.conn.send(job)
            busy = [w for w in procs if w.jobs]
            wait([x for w in busy for x in (w.conn, w.proc.sentinel)], timeout=1.0)
            for w in busy:
                try:
                    while w.jobs and w.conn.poll():
                        msg = w.conn.recv()
                        w.heard = time.monotonic()
                        if msg[0] == "started":
                            w.unacked.discard(msg[1])
                        finished = book.handle(msg)
                        if finished is not None:
                            w.jobs.pop(finished.key, None)
                            w.unacked.discard(finished.key)
                except (EOFError, OSError):
                    pass  # the worker died mid-message; handled as a crash below
                if not w.jobs:
                    continue
                # Start-up (imports, env, agent weights) is not charged to the time limit.
                limit = None if episode_timeout is None else episode_timeout + (STARTUP_GRACE_S if w.unacked else 0)
                if not w.proc.is_alive():
                    lose(w, "crash", f"worker exited with code {w.proc.exitcode}")
                elif limit is not None and time.monotonic() - w.heard > limit:
                    lose(w, "timeout", f"silent for {episode_timeout:.0f} s; worker killed")
    finally:
        for w in procs:
            try:
                if w.proc.is_alive() and not w.jobs:
                    w.conn.send(None)
                    w.proc.join(timeout=5)
            except (OSError, BrokenPipeError):
                pass
            kill(w)
