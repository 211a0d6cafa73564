"""DAgger rollouts: the learner plays from an instruction, the scripted demonstrator labels every state.

A `Worker` plays up to `envs_per_worker` episodes at once in lockstep (`aimc.envs.Lockstep`, the episode loop
of `aimc.envs.run_episode` for many env slots), because a rollout is bound by the learner's forward pass, not
by the world: a `DaggerActor` lets every slot's labeller read its state, asks the learner for all slots in one
batched call, and executes per slot the expert's action with probability β, else the learner's. A
`LabelHook` per slot records its episode into an episode store with the **expert's labels** as actions and
the instructed task as each step's goal, so the aggregated data trains with ``goal_source: intention``. Each
slot samples and draws β from generators seeded by its own job, so an episode does not depend on its slot, its
neighbours or the worker count (up to float rounding in batched matrix products, which can flip a near-tie
of the learner's sampling). Episodes are named by index and written atomically, so a killed collection
resumes by skipping the finished ones; each episode's outcome lives in its own ``metadata.json``
(``dagger_result``), so the iteration's statistics survive any interruption.
"""

from __future__ import annotations

import math
import time
from collections import deque
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
from aimc.envs import (
    Actor,
    BatchActor,
    DemonstratorActor,
    EpisodeHook,
    Lockstep,
    SlotOutcome,
    Step,
    StopAtEvent,
    make,
    world_info,
)
from aimc.finetune.config import ENVS_PER_WORKER

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
    planner: str = "none"
    """The learner's prompt chaining (`aimc.eval.planner`); each frame's goal is then its sub-goal at that step."""
    stop_on_success: bool = False
    device: str = "cpu"
    precision: str = "fp32"
    """What the learner acts in (`aimc.policy.Agent`): "fp32", or "bf16" where native."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Added to every episode's metadata["dagger"] (iteration, stage)."""
    skip_explore: bool = False
    """Mark the steps where the labeller explored (no target known) as unlabelled (`keys.NO_LABEL`): the
    fine-tune leaves them out of its loss."""


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


# ------------------------------------------------------------------------------------- episodes in lockstep
@dataclass
class SlotState:
    """What the `DaggerActor` keeps for the episode playing in one env slot."""

    expert: Actor
    """This slot's labeller (the demonstrator keeps per-episode memory, so each slot has its own)."""
    beta: float = 0.0
    task: str | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    """The episode's β coin: one draw per step."""
    label: int = -1
    """The expert's action for the current state."""
    learner_action: int = -1
    expert_executed: bool = False
    """Whether the executed action was the expert's."""
    explored: bool = False
    """Whether the expert's label for the current state is an exploring step (no target known)."""


class DaggerActor:
    """Learner and labellers as one `aimc.envs.BatchActor` over env slots. Per step, each asked slot's expert
    labels its state first (before any world steps), then the learner acts for all asked slots in one batched
    call (it sees every frame: its memory), then each slot's β coin (one seeded draw per step) picks the
    executed action: the expert's with probability β, the learner's otherwise.

    `set_beta(slot, beta)` gives the next episode of a slot its β before `Lockstep.start` resets it (the
    `BatchActor.reset_slot` arguments are those of every actor). `slots[slot]` holds the label, the learner's
    action and which one ran, for the slot's `LabelHook`."""

    def __init__(self, learner: BatchActor, make_expert: Callable[[], Actor]) -> None:
        self.learner = learner
        self.make_expert = make_expert
        self.slots: dict[int, SlotState] = {}

    def _state(self, slot: int) -> SlotState:
        if slot not in self.slots:  # a slot's labeller is built when the slot first plays
            self.slots[slot] = SlotState(self.make_expert())
        return self.slots[slot]

    def set_beta(self, slot: int, beta: float) -> None:
        self._state(slot).beta = float(beta)

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        s = self._state(slot)
        s.task, s.label, s.learner_action, s.expert_executed = task, -1, -1, False
        self.learner.reset_slot(slot, env, derive_seed(seed, "learner"), task, prompt)
        s.expert.reset(env, derive_seed(seed, "expert"), task, prompt)
        s.rng = np.random.default_rng(derive_seed(seed, "beta"))

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        states = [self.slots[i] for i in slots]
        for s, env, o, f in zip(states, envs, obs, first, strict=True):
            s.label = int(s.expert.act(env, o, f))  # the expert reads the state before any step
            s.explored = bool(getattr(s.expert, "explored", False))
        learner = self.learner.act_slots(slots, envs, obs, first)  # one forward for every slot
        actions = []
        for s, a in zip(states, learner, strict=True):
            s.learner_action = int(a)
            s.expert_executed = bool(s.rng.random() < s.beta)
            actions.append(s.label if s.expert_executed else s.learner_action)
        return actions


class LabelHook(EpisodeHook):
    """Writes frame t, the expert's label for it, the events the executed action caused, and infos with
    goal = the task (under a planner: the sub-goal event the learner was told at that step, from `sub_goal`)
    plus the executed and the learner's actions; counts agreement and expert steps."""

    def __init__(self, writer: EpisodeWriter, state: SlotState,
                 sub_goal: Callable[[], str | None] | None = None, skip_explore: bool = False) -> None:
        self.writer = writer
        self.state = state
        self.sub_goal = sub_goal
        self.skip_explore = skip_explore
        self.agree = self.expert_steps = self.explore_steps = 0

    def on_step(self, env: Any, step: Step) -> None:
        s = self.state
        goal = (self.sub_goal() if self.sub_goal is not None else None) or s.task
        info = {**step.info, "goal": goal, "executed_action": step.action, "learner_action": s.learner_action,
                "explored": s.explored}
        if self.skip_explore and s.explored:
            info[keys.NO_LABEL] = True
        self.writer.add(step.obs[keys.POV], s.label, step.events, info)
        self.agree += int(s.learner_action == s.label)
        self.expert_steps += int(s.expert_executed)
        self.explore_steps += int(s.explored)


@dataclass
class _Playing:
    job: RolloutJob
    writer: EpisodeWriter
    hook: LabelHook
    start: float


class Worker:
    """`envs_per_worker` worlds in lockstep, one batched learner (a `TextActor` over the bundle: text goals
    without a prior) and one labeller per slot; `play(jobs)` plays a list of jobs, refilling a slot as soon
    as its episode ends."""

    def __init__(self, spec: RolloutSpec, envs_per_worker: int = 1) -> None:
        from aimc.eval.agent import TextAgent
        from aimc.eval.baselines import TextActor
        from aimc.eval.planner import make_planner

        self.spec = spec
        agent = TextAgent.from_bundle(spec.bundle, device=spec.device, precision=spec.precision)
        self.bundle = agent.bundle
        # DAgger's data trains text goals, so the learner reads the prompt's text embedding directly
        self.learner = TextActor(agent, spec.cond_scale, use_prior=False,
                                 planner=make_planner(spec.planner, self.bundle.world))
        self.actor = DaggerActor(self.learner, self._expert)
        self.expert_config = to_dict(self._expert().config)  # also checks the labeller's options now
        self.action_names = list(world_info(self.bundle.world).action_names)
        self.lockstep = Lockstep(self._make_env, envs_per_worker)
        self._playing: dict[int, _Playing] = {}  # slot -> its episode in progress

    def _expert(self) -> Actor:
        return DemonstratorActor(self.spec.demonstrator, where="demonstrator")

    def _make_env(self) -> Any:
        env = make(self.bundle.world, **self.bundle.world_config)
        return StopAtEvent(env) if self.spec.stop_on_success else env

    def play(self, jobs: list[RolloutJob]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Play, label and store every job; yields (index, `dagger_result`) as each episode ends. A failed
        episode raises `EpisodeError` (its traceback as a note) after the episodes in progress are dropped,
        as Ctrl-C does; finished episodes stay stored."""
        queue = deque(jobs)
        try:
            while queue or self.lockstep.active:
                for slot in self.lockstep.free_slots():
                    if not queue:
                        break
                    self._start(slot, queue.popleft())
                for outcome in self.lockstep.step():
                    yield self._finish(outcome)
        except BaseException:
            for p in self._playing.values():
                p.writer.abort()
            self._playing.clear()
            self.lockstep = Lockstep(self._make_env, self.lockstep.n_slots)  # its slots may be mid-step
            raise

    def _start(self, slot: int, job: RolloutJob) -> None:
        # no top-level world_seed: actions.npy holds the labels, not the executed actions, so the episode does
        # not replay (`aimc video` upscales it instead); the world seed is kept under "dagger"
        meta = {
            "world": self.bundle.world, "world_config": self.bundle.world_config,
            "episode_index": job.index, "agent": "dagger",
            "demonstrator": self.expert_config, "action_names": self.action_names,
            "fps": 20, "created_by": f"aimc {__version__}", keys.MASKED_LABELS: self.spec.skip_explore,
            "dagger": {**self.spec.metadata, "task": job.task, "prompt": job.prompt, "beta": job.beta,
                       "world_seed": job.world_seed, "learner": self.spec.bundle, "cond_scale": self.spec.cond_scale},
        }
        start = time.perf_counter()
        writer = EpisodeWriter(self.spec.store, job.name, meta)
        self.actor.set_beta(slot, job.beta)
        hook = LabelHook(writer, self.actor.slots[slot], lambda: self.learner.sub_goal(slot), self.spec.skip_explore)
        self._playing[slot] = _Playing(job, writer, hook, start)
        self.lockstep.start(slot, self.actor, job.world_seed, job.max_steps, actor_seed=job.actor_seed, task=job.task,
                            prompt=job.prompt, hooks=[hook], tag=job.index)
        if self.spec.stop_on_success:
            self.lockstep.envs[slot].event = job.task  # this episode's success ends it

    def _finish(self, outcome: SlotOutcome) -> tuple[int, dict[str, Any]]:
        p = self._playing.pop(outcome.slot)
        job, hook = p.job, p.hook
        try:
            if outcome.error is not None:
                last = outcome.error.strip().splitlines()[-1]
                err = EpisodeError(f"DAgger rollout {job.name} ({job.task}, world seed {job.world_seed}) failed: {last}")
                err.add_note(outcome.error)
                raise err
            record = outcome.record
            assert record is not None
            occ = record.occurrences()
            result = {
                "task": job.task, "prompt": job.prompt, "beta": job.beta, "steps": record.steps,
                "success": job.task in occ, "success_step": occ[job.task][0] if job.task in occ else None,
                "died": record.terminated, "expert_fraction": hook.expert_steps / max(record.steps, 1),
                "agreement": hook.agree / max(record.steps, 1), "explore_fraction": hook.explore_steps / max(record.steps, 1),
                "wall_s": time.perf_counter() - p.start,
            }
            p.writer.close(terminated=record.terminated, truncated=record.truncated,
                           event_counts=record.event_counts(), **{RESULT_KEY: result})
        except BaseException:
            p.writer.abort()
            raise
        return job.index, result


# ------------------------------------------------------------------------------------- a batch
def read_result(path: Path) -> dict[str, Any]:
    """The stored outcome of a finished episode."""
    result = Episode(path, check_video=False).metadata.get(RESULT_KEY)
    if not isinstance(result, dict):
        raise EpisodeError(f"episode {path}: no {RESULT_KEY} in its metadata; it was not written by a DAgger rollout")
    return result


_W: dict[str, Worker] = {}


def _init_worker(spec: RolloutSpec, envs_per_worker: int) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker process: the workers are the parallelism
    _W["worker"] = Worker(spec, envs_per_worker)


def _play(jobs: list[RolloutJob]) -> list[tuple[int, dict[str, Any]]]:
    return list(_W["worker"].play(jobs))


def _run(spec: RolloutSpec, todo: list[RolloutJob], workers: int,
         envs_per_worker: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """In this process (one worker), or in `workers` spawned processes that each take batches of at most
    `envs_per_worker` jobs as they free up; batches are sized evenly over the rounds needed, so no process
    idles through a round while another plays a full batch."""
    if workers <= 1 or len(todo) <= 1:
        yield from Worker(spec, envs_per_worker).play(todo)
        return
    import multiprocessing as mp

    rounds = math.ceil(len(todo) / (workers * envs_per_worker))
    size = math.ceil(len(todo) / (workers * rounds))  # <= envs_per_worker
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    with ProcessPoolExecutor(min(workers, len(batches)), mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(spec, envs_per_worker)) as pool:
        pending: set[Future[list[tuple[int, dict[str, Any]]]]] = {pool.submit(_play, b) for b in batches}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield from f.result()
        except BaseException:  # Ctrl-C or a failed episode: queued episodes are dropped, finished ones are kept
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def collect_rollouts(spec: RolloutSpec, jobs: list[RolloutJob], workers: int = 1,
                     envs_per_worker: int = ENVS_PER_WORKER,
                     on_episode: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Play every job whose episode is not in the store yet, `envs_per_worker` at once in each of `workers`
    processes; returns all jobs' results in job order (the same for any `workers` and `envs_per_worker`)."""
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
    for index, result in _run(spec, todo, workers, envs_per_worker):
        results[index] = result
        if on_episode is not None:
            on_episode(result)
    return [results[job.index] for job in jobs]
