"""DAgger rollouts: the learner plays from an instruction, the scripted demonstrator labels every state.

One episode = `aimc.envs.run_episode` with a `DaggerActor` (learner and labeller side by side; the executed
action is the expert's with probability β, else the learner's) and a `LabelHook` that records the episode
into an episode store with the **expert's labels** as actions and the instructed task as each step's goal,
so the aggregated data trains with ``goal_source: intention``. Episodes are named by index and written
atomically, so a killed collection resumes by skipping the finished ones; each episode's outcome lives in its
own ``metadata.json`` (``dagger_result``), so the iteration's statistics survive any interruption.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimc import __version__
from aimc.core import keys
from aimc.core.config import to_dict
from aimc.core.errors import EpisodeError
from aimc.core.io import check_writable_dir, remove_stale_tmp
from aimc.core.seeding import derive_seed
from aimc.data.store import Episode, EpisodeWriter, is_episode_dir
from aimc.envs import Actor, DemonstratorActor, EpisodeHook, Step, make, run_episode

DAGGER_SEED_BASE = 10_000_000
"""DAgger worlds are DAGGER_SEED_BASE + a 31-bit derived seed: disjoint from eval suites' seeds (crafter.yaml
starts at 1000 and uses a few hundred) and from one iteration to the next."""
RESULT_KEY = "dagger_result"


@dataclass(frozen=True)
class RolloutSpec:
    """What every rollout of one batch shares (picklable: it crosses into worker processes)."""

    bundle: str
    """Learner agent bundle."""
    store: str
    """Episode store the labelled episodes go to."""
    demonstrator: dict[str, Any]
    """Labeller DemonstratorConfig fields (task mode, no noise)."""
    cond_scale: float | None = None
    stop_on_success: bool = False
    device: str = "cpu"
    metadata: dict[str, Any] = field(default_factory=dict)
    """Added to every episode's metadata["dagger"] (iteration, stage)."""


@dataclass(frozen=True)
class RolloutJob:
    """One labelled episode."""

    index: int
    task: str
    prompt: str
    world_seed: int
    actor_seed: int
    beta: float
    max_steps: int

    @property
    def name(self) -> str:
        return f"ep{self.index:05d}"


def make_jobs(tasks: list[str], episodes: int, beta: float, max_steps: int, seed: int, tag: str) -> list[RolloutJob]:
    """Episode i instructs tasks[i % len(tasks)] with a seeded paraphrase from the caption catalogue, in world
    DAGGER_SEED_BASE + derive_seed(seed, tag, i); `tag` (e.g. "iter3") keeps batches' worlds apart."""
    from aimc.embed.captions import INTENTIONS

    jobs = []
    for i in range(episodes):
        task = tasks[i % len(tasks)]
        prompts = INTENTIONS[task]
        prompt = prompts[derive_seed(seed, tag, i, "prompt") % len(prompts)]
        jobs.append(RolloutJob(i, task, prompt, DAGGER_SEED_BASE + derive_seed(seed, tag, i, "world"),
                               derive_seed(seed, tag, i, "actor"), beta, max_steps))
    return jobs


# ------------------------------------------------------------------------------------- one episode
class DaggerActor:
    """Learner and labeller as one Actor: both see every state; the expert's action is executed with
    probability β (one seeded draw per step), the learner's otherwise. `label` is the expert's action for
    the current state, `learner_action` the learner's, `expert_executed` which one ran."""

    def __init__(self, learner: Actor, expert: Actor, beta: float) -> None:
        self.learner = learner
        self.expert = expert
        self.beta = float(beta)
        self.task: str | None = None
        self.rng = np.random.default_rng(0)
        self.label = self.learner_action = -1
        self.expert_executed = False

    @property
    def current_goal(self) -> str | None:
        """What every recorded step serves: the instructed task."""
        return self.task

    def reset(self, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        self.task = task
        self.learner.reset(env, derive_seed(seed, "learner"), task, prompt)
        self.expert.reset(env, derive_seed(seed, "expert"), task, prompt)
        self.rng = np.random.default_rng(derive_seed(seed, "beta"))

    def act(self, env: Any, obs: dict[str, Any], first: bool) -> int:
        self.label = int(self.expert.act(env, obs, first))  # the expert reads the state before any step
        self.learner_action = int(self.learner.act(env, obs, first))  # the learner sees every frame (its memory)
        self.expert_executed = bool(self.rng.random() < self.beta)
        return self.label if self.expert_executed else self.learner_action


class LabelHook(EpisodeHook):
    """Writes frame t, the expert's label for it, the events the executed action caused, and infos with
    goal = the task plus the executed and the learner's actions; counts agreement and expert steps."""

    def __init__(self, writer: EpisodeWriter, actor: DaggerActor) -> None:
        self.writer = writer
        self.actor = actor
        self.agree = self.expert_steps = 0

    def on_step(self, env: Any, step: Step) -> None:
        a = self.actor
        info = {**step.info, "goal": a.task, "executed_action": step.action, "learner_action": a.learner_action}
        self.writer.add(step.obs[keys.POV], a.label, step.events, info)
        self.agree += int(a.learner_action == a.label)
        self.expert_steps += int(a.expert_executed)


class StopAtEvent:
    """The world, except that the step whose events include `event` ends the episode (truncated): a rollout
    stops at its task's success. Every other attribute is the wrapped world's (the demonstrator reads them)."""

    def __init__(self, env: Any, event: str) -> None:
        self.env = env
        self.event = event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.env.reset(seed=seed)

    def step(self, action: int) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated or self.event in info.get(keys.EVENTS, []), info


class Worker:
    """One world, one learner (a `TextActor` over the bundle, text goals without a prior) and one labeller."""

    def __init__(self, spec: RolloutSpec) -> None:
        from aimc.eval.agent import TextAgent
        from aimc.eval.baselines import TextActor

        self.spec = spec
        agent = TextAgent.from_bundle(spec.bundle, device=spec.device)
        self.bundle = agent.bundle
        self.env = make(agent.bundle.world, **agent.bundle.world_config)
        # DAgger's data trains text goals, so the learner reads the prompt's text embedding directly
        self.learner = TextActor(agent, spec.cond_scale, use_prior=False)
        self.expert = DemonstratorActor(spec.demonstrator, where="demonstrator")

    def play(self, job: RolloutJob) -> dict[str, Any]:
        """Play, label and store one episode; returns its `dagger_result`."""
        start = time.perf_counter()
        actor = DaggerActor(self.learner, self.expert, job.beta)
        env = StopAtEvent(self.env, job.task) if self.spec.stop_on_success else self.env
        # no top-level world_seed: actions.npy holds the labels, not the executed actions, so the episode does
        # not replay (`aimc video` upscales it instead); the world seed is kept under "dagger"
        meta = {
            "world": self.bundle.world, "world_config": self.bundle.world_config,
            "episode_index": job.index, "agent": "dagger",
            "demonstrator": to_dict(self.expert.config), "action_names": list(getattr(self.env, "action_names", [])),
            "fps": 20, "created_by": f"aimc {__version__}",
            "dagger": {**self.spec.metadata, "task": job.task, "prompt": job.prompt, "beta": job.beta,
                       "world_seed": job.world_seed, "learner": self.spec.bundle, "cond_scale": self.spec.cond_scale},
        }
        writer = EpisodeWriter(self.spec.store, job.name, meta)
        hook = LabelHook(writer, actor)
        try:
            record = run_episode(env, actor, job.world_seed, job.max_steps, actor_seed=job.actor_seed, task=job.task,
                                 prompt=job.prompt, hooks=[hook])
            occ = record.occurrences()
            result = {
                "task": job.task, "prompt": job.prompt, "beta": job.beta, "steps": record.steps,
                "success": job.task in occ, "success_step": occ[job.task][0] if job.task in occ else None,
                "died": record.terminated, "expert_fraction": hook.expert_steps / max(record.steps, 1),
                "agreement": hook.agree / max(record.steps, 1), "wall_s": time.perf_counter() - start,
            }
            writer.close(terminated=record.terminated, truncated=record.truncated,
                         event_counts=record.event_counts(), **{RESULT_KEY: result})
        except BaseException:
            writer.abort()
            raise
        return result


# ------------------------------------------------------------------------------------- a batch
def read_result(path: Path) -> dict[str, Any]:
    """The stored outcome of a finished episode."""
    result = Episode(path, check_video=False).metadata.get(RESULT_KEY)
    if not isinstance(result, dict):
        raise EpisodeError(f"episode {path}: no {RESULT_KEY} in its metadata; it was not written by a DAgger rollout")
    return result


_W: dict[str, Worker] = {}


def _init_worker(spec: RolloutSpec) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: tiny batch-1 forwards gain nothing from more
    _W["worker"] = Worker(spec)


def _play(job: RolloutJob) -> tuple[int, dict[str, Any]]:
    return job.index, _W["worker"].play(job)


def _run(spec: RolloutSpec, todo: list[RolloutJob], workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    if workers <= 1 or len(todo) <= 1:
        worker = Worker(spec)
        for job in todo:
            yield job.index, worker.play(job)
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(spec,)) as pool:
        pending: set[Future[tuple[int, dict[str, Any]]]] = {pool.submit(_play, job) for job in todo}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        except BaseException:  # Ctrl-C or a failed episode: queued episodes are dropped, finished ones are kept
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def collect_rollouts(spec: RolloutSpec, jobs: list[RolloutJob], workers: int = 1,
                     on_episode: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Play every job whose episode is not in the store yet; returns all jobs' results in job order."""
    store = Path(spec.store)
    check_writable_dir(store)
    remove_stale_tmp(store)  # a killed writer's half episode
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        if is_episode_dir(store / job.name):
            results[job.index] = read_result(store / job.name)
        else:
            todo.append(job)
    for index, result in _run(spec, todo, workers):
        results[index] = result
        if on_episode is not None:
            on_episode(result)
    return [results[job.index] for job in jobs]
