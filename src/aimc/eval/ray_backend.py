"""Ray backend for `run_jobs`: one actor per worker, each holding `envs_per_worker` env slots and its agents.

The driver keeps one `advance` call in flight per actor: it hands the actor jobs for its free slots, and the
actor steps its slots in lockstep until an episode ends or `HEARTBEAT_S` passes, returning the worker
messages of the process backend. Retry semantics follow the process backend: an episode that raises is
retried (its env is rebuilt) while the actor's other episodes carry on; a dead actor is replaced, and an
`advance` call silent for longer than the episode timeout has its actor killed and replaced. Unlike the
process backend the driver cannot see which slot was stepping when an actor died or hung, so every episode
the actor held is charged an attempt (`envs_per_worker=1` restores one-episode blame).
"""

from __future__ import annotations

import time
from typing import Any

from aimc.core.errors import AimcError
from aimc.eval.rollout import (
    HEARTBEAT_S,
    STARTUP_GRACE_S,
    AgentFactory,
    EnvSpec,
    EpisodeJob,
    _Book,
    _Worker,
)


class _RayWorker:
    def __init__(self, env_spec: EnvSpec, factories: dict[str, AgentFactory], threads: int, envs_per_worker: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = _Worker(env_spec, factories, envs_per_worker)

    def advance(self, jobs: list[EpisodeJob]) -> list[tuple]:
        """Start `jobs`, then step until an episode ends, HEARTBEAT_S passes or no slot plays."""
        msgs = [self.worker.begin(job) for job in jobs]
        start = time.monotonic()
        while self.worker.lockstep.active:
            ended = list(self.worker.step())
            msgs.extend(ended)
            if ended or time.monotonic() - start > HEARTBEAT_S:
                break
        return msgs


def run_ray(
    book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec, workers: int,
    episode_timeout: float | None, threads: int, envs_per_worker: int = 1,
) -> None:
    try:
        import ray
    except ImportError:
        raise AimcError("backend 'ray' needs ray installed: pip install 'aimc[ray]' (or use --backend process)") from None
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
    n = min(workers, max(-(-len(book.queue) // envs_per_worker), 1))
    actors: list[Any] = [actor_cls.remote(env_spec, factories, threads, envs_per_worker) for _ in range(n)]
    held: list[dict[int, EpisodeJob]] = [{} for _ in range(n)]  # jobs each actor is playing
    warm = [False] * n  # an actor's first call also pays for imports and loading weights
    calls: dict[Any, tuple[int, float, bool]] = {}  # ref -> (actor, sent at, carried new jobs)

    def lose(i: int, kind: str, message: str) -> None:
        for job in held[i].values():
            book.failed(job, kind, message)
        held[i] = {}
        ray.kill(actors[i], no_restart=True)
        actors[i] = actor_cls.remote(env_spec, factories, threads, envs_per_worker)
        warm[i] = False

    try:
        while book.queue or calls or any(held):
            waiting = {i for i, _, _ in calls.values()}
            for i in range(n):
                if i in waiting or not (book.queue or held[i]):
                    continue
                new = []
                while book.queue and len(held[i]) < envs_per_worker:
                    job = book.queue.popleft()
                    book.start(job)
                    held[i][job.key] = job
                    new.append(job)
                calls[actors[i].advance.remote(new)] = (i, time.monotonic(), bool(new))
            ready, _ = ray.wait(list(calls), num_returns=1, timeout=1.0)
            for ref in ready:
                i, _, _ = calls.pop(ref)
                try:
                    msgs = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    lose(i, "crash", f"ray actor died ({type(e).__name__})")
                    continue
                except ray.exceptions.RayTaskError as e:  # the worker loop itself failed: its episodes are void
                    lose(i, "error", str(e))
                    continue
                warm[i] = True
                for msg in msgs:
                    finished = book.handle(msg)
                    if finished is not None:
                        held[i].pop(finished.key, None)
            if episode_timeout is None:
                continue
            now = time.monotonic()
            for ref, (i, since, new) in list(calls.items()):
                if now - since > episode_timeout + (STARTUP_GRACE_S if new or not warm[i] else 0):
                    calls.pop(ref)
                    lose(i, "timeout", f"silent for {episode_timeout:.0f} s; ray actor killed")
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
