"""Ray backend for `run_jobs`: one actor per worker, each holding an env and its agents.

Same retry semantics as the process backend: a task that raises is retried on the same actor (its
env is rebuilt), a dead actor is replaced and its episode retried, and an actor silent for longer
than the episode timeout is killed, replaced and its episode retried.
"""

from __future__ import annotations

import time
from typing import Any

from aimc.core.errors import AimcError
from aimc.eval.rollout import (
    STARTUP_GRACE_S,
    AgentFactory,
    EnvSpec,
    EpisodeJob,
    EpisodeResult,
    _Book,
    _Worker,
)


class _RayWorker:
    def __init__(self, env_spec: EnvSpec, factories: dict[str, AgentFactory], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = _Worker(env_spec, factories)

    def run(self, job: EpisodeJob) -> EpisodeResult:
        return self.worker.run(job)


def run_ray(
    book: _Book, factories: dict[str, AgentFactory], env_spec: EnvSpec, workers: int,
    episode_timeout: float | None, threads: int,
) -> None:
    try:
        import ray
    except ImportError:
        raise AimcError("backend 'ray' needs ray installed: pip install 'aimc[ray]' (or use --backend process)") from None
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
    n = min(workers, max(len(book.queue), 1))
    actors: list[Any] = [actor_cls.remote(env_spec, factories, threads) for _ in range(n)]
    warm = [False] * n  # an actor's first episode also pays for imports and loading weights
    idle = list(range(n))
    running: dict[Any, tuple[int, EpisodeJob, float]] = {}

    def replace(i: int) -> None:
        ray.kill(actors[i], no_restart=True)
        actors[i] = actor_cls.remote(env_spec, factories, threads)
        warm[i] = False

    try:
        while book.queue or running:
            while idle and book.queue:
                i = idle.pop()
                job = book.queue.popleft()
                book.start(job)
                running[actors[i].run.remote(job)] = (i, job, time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                i, job, _ = running.pop(ref)
                try:
                    book.done(ray.get(ref))
                    warm[i] = True
                except ray.exceptions.RayActorError as e:
                    book.failed(job, "crash", f"ray actor died ({type(e).__name__})")
                    replace(i)
                except ray.exceptions.RayTaskError as e:
                    book.failed(job, "error", str(e))
                idle.append(i)
            if episode_timeout is None:
                continue
            now = time.monotonic()
            for ref, (i, job, since) in list(running.items()):
                if now - since > episode_timeout + (0 if warm[i] else STARTUP_GRACE_S):
                    running.pop(ref)
                    book.failed(job, "timeout", f"no result after {episode_timeout:.0f} s; ray actor killed")
                    replace(i)
                    idle.append(i)
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
