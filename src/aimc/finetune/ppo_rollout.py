"""PPO rollouts: complete episodes from instructions, the current policy acting for every slot in one batch.

An iteration plays `episodes_per_iteration` whole episodes in a `Lockstep` of `envs` world slots (a slot is
refilled as soon as its episode ends). A `PolicyActor` answers all playing slots with one no-grad forward of
the policy per step, each slot with its own recurrent state, goal (the text embedding of its episode's prompt)
and sampling generator (seeded by the episode), so an episode does not depend on its slot or neighbours beyond
float rounding of batched products. Per step it records the frame the policy saw (uint8), the action, its
log-probability under the acting distribution and the value estimate; a `RewardHook` per episode turns the
world's events into the step's reward (`RewardConfig`). An episode ends by dying (terminal), by its task's
success with `stop_on_success` (terminal: nothing more to earn), or by `max_steps` / the world's own time
limit (truncated: the value of the state after the last step is bootstrapped, from one more batched forward).

Jobs are a pure function of (seed, iteration, episode): task round-robin over the run's episode count, a
training paraphrase of the task's success event from the caption catalogue drawn by a generator seeded by
the episode, and world PPO_SEED_BASE + a derived 31-bit seed (disjoint from the eval suites' worlds, which
start at 1000 and use a few hundred). So a resumed run replays an interrupted iteration exactly.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aimc.core import keys
from aimc.core.errors import EpisodeError
from aimc.core.seeding import derive_seed
from aimc.envs import EpisodeHook, Lockstep, SlotOutcome, Step, make
from aimc.eval.tasks import Success, Suite
from aimc.finetune.ppo_config import RewardConfig, StartConfig

PPO_SEED_BASE = 20_000_000
"""PPO worlds are PPO_SEED_BASE + a 31-bit seed derived from (seed, iteration, episode): never an eval world."""


# ------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TaskSpec:
    """A suite task as PPO trains it."""

    name: str
    success: Success
    """The suite's success predicate (what evaluation scores)."""
    prompts: tuple[str, ...]
    """Training paraphrases: the caption catalogue's for the success events (else the suite's prompts)."""
    shaping: tuple[str, ...]
    """Prerequisite events paid `RewardConfig.shaping` at their first occurrence in an episode."""
    demo_task: str | None = None
    """What the scripted demonstrator pursues for this task (the suite's `demo_task`): the expert labeller's task."""
    targets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(material, tools it needs) the task's success collects from (`RewardConfig.approach`), e.g.
    (("coal", ("wood_pickaxe",)),) for collect_coal; () where the task collects nothing."""


APPROACH_WORLDS = ("crafter",)
"""Worlds `RewardConfig.approach` can shape in (Crafter's collect table and `visible_cells`) and whose player's
health `RewardConfig.health` reads."""
APPROACH_RANGE = 8
"""Manhattan distance at which `RewardConfig.approach`'s potential reaches 0 (a Crafter view is 9 x 7 cells)."""
UBIQUITOUS = frozenset({"grass", "sand", "path"})
"""Materials no approach shaping points at: every view holds them (a sapling comes from any grass)."""


def approach_targets(events: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The materials Crafter's ``collect`` table turns into each ``collect_<item>`` event's item, with the items
    collecting them requires (read from `crafter.constants`, so a changed recipe changes the targets)."""
    from crafter import constants

    out = []
    for ev in events:
        if not ev.startswith("collect_"):
            continue
        item = ev[len("collect_"):]
        for material, rule in constants.collect.items():
            if item in rule["receive"] and material not in UBIQUITOUS:
                out.append((material, tuple(sorted(rule["require"]))))
    return tuple(dict.fromkeys(out))


def approach_potential(env: Any, targets: tuple[tuple[str, tuple[str, ...]], ...]) -> float:
    """``1 - min(d, APPROACH_RANGE) / APPROACH_RANGE`` for the nearest visible cell of a target whose tools the
    player holds (0 when there is none): what `RewardConfig.approach` pays the differences of."""
    inventory = env.player.inventory
    x, y = (int(v) for v in env.player.pos)
    best = APPROACH_RANGE
    for material, tools in targets:
        if all(inventory.get(tool, 0) > 0 for tool in tools):
            for cx, cy in env.visible_cells(material):
                best = min(best, abs(cx - x) + abs(cy - y))
    return 1.0 - best / APPROACH_RANGE


def player_health(env: Any) -> float:
    """The player's health points (`RewardConfig.health`); a dead Crafter player reads 0 or below."""
    return float(env.player.health)


def prerequisites(event: str) -> tuple[str, ...]:
    """Achievements the scripted demonstrator's planner completes on its way to `event`, starting from an empty
    inventory with no station placed, in the order it does them (e.g. make_wood_pickaxe -> collect_wood,
    place_table). Read from the planner (`aimc.envs.demo.planner.next_step`, itself read from Crafter's recipe
    tables) by playing its plan on a simulated inventory; () for an event the planner does not know."""
    from crafter import constants

    from aimc.envs.demo.planner import TASKS, next_step

    if event not in TASKS:
        return ()
    inv: Counter = Counter()
    placed: set[str] = set()
    chain: list[str] = []
    for _ in range(100):  # the longest Crafter chain (iron tools) takes a few dozen primitive steps
        step = next_step(event, inv, lambda stations: [s for s in stations if s not in placed])
        if step.task == event:
            return tuple(dict.fromkeys(chain))
        chain.append(step.task)
        if step.kind == "collect":
            inv.update(constants.collect[step.target]["receive"])
        elif step.kind == "place":
            inv.subtract(constants.place[step.target]["uses"])
            placed.add(step.target)
        elif step.kind == "make":
            inv.subtract(constants.make[step.target]["uses"])
            inv[step.target] += constants.make[step.target]["gives"]
        else:  # hunting, sleeping and eating need nothing first
            return tuple(dict.fromkeys(chain))
    raise AssertionError(f"the planner's plan for {event!r} does not end")


def task_specs(suite: Suite, names: list[str], world: str) -> list[TaskSpec]:
    """The named suite tasks with their training prompts and shaping events (the success events left out)."""
    from aimc.embed.captions import catalogue

    table = catalogue(world)
    out = []
    for name in names:
        t = suite.task(name)
        prompts = tuple(p for ev in t.success.events for p in table.get(ev, ()))
        pre = [p for ev in t.success.events for p in prerequisites(ev) if p not in t.success.events]
        out.append(TaskSpec(name, t.success, tuple(dict.fromkeys(prompts)) or t.prompts, tuple(dict.fromkeys(pre)),
                            t.demo_task, approach_targets(t.success.events) if world in APPROACH_WORLDS else ()))
    return out


@dataclass(frozen=True)
class EpisodeJob:
    """Episode `index` of iteration `iteration`."""

    iteration: int
    index: int
    task: str
    prompt: str
    world_seed: int
    actor_seed: int
    back: int | None = None
    """k: the episode starts k steps before the demonstrator reaches `StartConfig.until` (`aimc.finetune.ppo_start`);
    None = from the world's reset."""


def weighted_schedule(specs: list[TaskSpec], weights: dict[str, int]) -> list[TaskSpec]:
    """The round-robin order `make_jobs` cycles through: each task `weights.get(name, 1)` times per round."""
    return [s for s in specs for _ in range(weights.get(s.name, 1))]


def make_jobs(specs: list[TaskSpec], episodes: int, iteration: int, seed: int,
              start: StartConfig | None = None) -> list[EpisodeJob]:
    """Iteration k's episodes: task round-robin over the run's episode count g = (k-1)·episodes + i, a prompt
    drawn from the task's paraphrases by a generator seeded by the episode, a derived world and actor seed, and
    with `start` whether (and how far before the demonstrator's mark) it starts from a demonstrator state."""
    from aimc.finetune.ppo_start import draw_back

    jobs = []
    for i in range(episodes):
        g = (iteration - 1) * episodes + i
        spec = specs[g % len(specs)]
        rng = np.random.default_rng(derive_seed(seed, "ppo-prompt", iteration, i))
        prompt = spec.prompts[int(rng.integers(len(spec.prompts)))]
        back = draw_back(start, iteration, seed, i, spec.name) if start is not None else None
        jobs.append(EpisodeJob(iteration, i, spec.name, prompt, PPO_SEED_BASE + derive_seed(seed, "ppo-world", iteration, i),
                               derive_seed(seed, "ppo-actor", iteration, i), back))
    return jobs


# ------------------------------------------------------------------------------------------- one episode
def label_mask(actions: tuple[int, ...] | list[int]) -> int:
    """The action set as a bit mask (bit a = action a), as `Trajectory.labels` stores it."""
    mask = 0
    for a in actions:
        mask |= 1 << int(a)
    return mask


def mask_bits(masks: torch.Tensor, n: int) -> torch.Tensor:
    """Bit masks (...,) of `label_mask` as booleans (..., n)."""
    return ((masks.long()[..., None] >> torch.arange(n, device=masks.device)) & 1).bool()


def acting_logp(out: Any, guided: bool) -> dict[str, torch.Tensor]:
    """Per head log-probabilities of the distribution the policy acts with: the forward's log-softmax, or with
    guidance the guided scores renormalised (what Gumbel-max sampling on them draws from)."""
    return {k: F.log_softmax(v, dim=-1) for k, v in out.logp.items()} if guided else out.logp


@dataclass
class Trajectory:
    """One finished episode: per step t the frame the policy saw, its action, the action's log-probability
    under the acting policy, the value estimate and the reward; how it ended; what it achieved."""

    job: EpisodeJob
    frames: np.ndarray
    """uint8 (L, H, W, 3) at the policy's input size."""
    actions: np.ndarray
    """int64 (L,)."""
    logp: np.ndarray
    """float32 (L,)."""
    values: np.ndarray
    """float32 (L,), denormalised (the value head's normaliser at rollout time)."""
    rewards: np.ndarray
    """float32 (L,)."""
    bootstrap: float
    """Value after the last step: 0 at a terminal state, the estimate of the next state at a truncation."""
    terminal: bool
    died: bool
    success_step: int | None
    goals: np.ndarray | None = None
    """float32 (L, D): the goal of every step when a planner changed it during the episode; None = the prompt's."""
    labels: np.ndarray | None = None
    """int64 (L,): per step, the set of actions the expert labeller would take in that state (`PPOConfig.expert`)
    as a bit mask (bit a = action a: its action and the moves that start an equally short path); 0 where the step
    was left out (an exploring label with `skip_explore`). None = no labeller."""
    teacher_logp: np.ndarray | None = None
    """float32 (L, n): per step, the teacher's acting log-probabilities in the state the policy acted in
    (`PPOConfig.teacher_coef`). None = no teacher."""
    warm: int = 0
    """Leading steps that are the demonstrator's replay before a start state (`PPOConfig.start`): their frames
    warm the policy's memory in the update's replay as they did while acting, their actions are the
    demonstrator's, and no loss reads them (rewards, values and log-probabilities there are 0)."""
    start: dict[str, int] | None = None
    """{world_seed, mark_step, back} of a start-state episode (the world played, the demonstrator's mark step
    T and k); None = from the world's reset."""

    @property
    def steps(self) -> int:
        """Steps replayed in the update, the warm-up included."""
        return len(self.actions)

    @property
    def own_steps(self) -> int:
        """Steps the policy acted in."""
        return len(self.actions) - self.warm

    @property
    def lead_warm(self) -> int:
        """Leading warm-up steps that replay the policy's own day (`StartConfig.lead` "policy"), not the
        demonstrator's: they warm the memory like the rest, but `start.bc_coef` clones only the demonstrator's."""
        if not self.start or "lead_steps" not in self.start:
            return 0
        first = self.start["mark_step"] - self.start["back"] - self.warm  # the step of the first warm-up frame
        return int(min(self.warm, max(0, self.start["lead_steps"] - first)))

    @property
    def success(self) -> bool:
        return self.success_step is not None

    def outcome(self) -> dict[str, Any]:
        """What the summary keeps of the episode."""
        out = {"task": self.job.task, "prompt": self.job.prompt, "world_seed": self.job.world_seed,
               "steps": self.own_steps, "success": self.success, "success_step": self.success_step, "died": self.died,
               "return": float(self.rewards.sum())}
        return out if self.start is None else {**out, "start": dict(self.start)}


@dataclass
class _Buffer:
    goal: np.ndarray
    goals: list[np.ndarray] = field(default_factory=list)  # per step, only under a planner
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # only with an expert labeller
    teacher_logp: list[np.ndarray] = field(default_factory=list)  # only with a teacher
    warm: int = 0  # leading steps replayed from the demonstrator before a start state


def at_mark(env: Any) -> bool:
    """Whether a start-state episode's own steps have reached the demonstrator's mark (`DemoStart.started`)."""
    started = getattr(env, "started", None)
    return bool(started and started["reached"])


class SuccessStop:
    """The world, except that the step at which `success` (the episode's predicate; None = never) first holds
    ends the episode (truncated, as `aimc.envs.StopAtEvent` does for one event), and with `mark` so does the
    step a start-state episode reaches the demonstrator's mark. Other attributes are the world's."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.success: Success | None = None
        self.mark = False
        self._occ: dict[str, list[int]] = {}
        self._t = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self._occ, self._t = {}, 0
        return self.env.reset(seed=seed, options=options) if options else self.env.reset(seed=seed)

    def step(self, action: int) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        for ev in info.get(keys.EVENTS, []):
            self._occ.setdefault(ev, []).append(self._t)
        self._t += 1
        done = self.success is not None and (self.success.step(self._occ) is not None or (self.mark and at_mark(self.env)))
        return obs, reward, terminated, truncated or done, info


class RewardHook(EpisodeHook):
    """The step's reward from its events: `success` at the step the task's predicate first holds, `shaping`
    at the first occurrence of each prerequisite event, `death` at the step the world ends by dying, and with
    `approach` the discounted change of the approach potential (`approach_potential`; 0 after the end), and
    `health` times the step's change of the player's health, and `shelter` for each dark step walled in."""

    def __init__(self, spec: TaskSpec, reward: RewardConfig, buffer: _Buffer, gamma: float = 1.0,
                 mark: bool = False) -> None:
        self.spec, self.reward, self.buffer, self.gamma = spec, reward, buffer, gamma
        self.mark = mark
        """A start-state episode that succeeds when it reaches the demonstrator's mark (`StartConfig.success_at_mark`)."""
        self.occ: dict[str, list[int]] = {}
        self.success_step: int | None = None
        self.died = False
        self.last_obs: dict[str, Any] | None = None
        self.potential = 0.0
        self.approaching = reward.approach > 0 and bool(spec.targets)
        self.health = 0.0
        if reward.shelter:  # read once per episode, not per step
            from aimc.envs.demo import DemonstratorConfig
            from aimc.eval.planner import player_enclosed

            self.dusk, self.enclosed = DemonstratorConfig().night_daylight, player_enclosed

    def on_reset(self, env: Any, obs: dict[str, Any], info: dict[str, Any]) -> None:
        if self.reward.health:
            self.health = player_health(env)
        if self.approaching:
            self.potential = approach_potential(env, self.spec.targets)

    def on_step(self, env: Any, step: Step) -> None:
        r = 0.0
        for ev in step.events:
            if ev in self.spec.shaping and ev not in self.occ:
                r += self.reward.shaping
            self.occ.setdefault(ev, []).append(step.t)
        if self.success_step is None and (self.spec.success.step(self.occ) is not None or (self.mark and at_mark(env))):
            self.success_step = step.t
            r += self.reward.success
        if step.terminated:
            self.died = True
            r += self.reward.death
        if self.reward.health:
            health = player_health(env)
            r += self.reward.health * (health - self.health)
            self.health = health
        if self.reward.shelter and not step.terminated and float(env.world.daylight) < self.dusk:
            r += self.reward.shelter * float(self.enclosed(env))
        if self.approaching:
            ended = step.terminated or (step.truncated and self.success_step is not None)  # died, or success stop
            after = 0.0 if ended else approach_potential(env, self.spec.targets)
            r += self.reward.approach * (self.gamma * after - self.potential)
            self.potential = after
        self.buffer.rewards.append(r)
        self.last_obs = step.next_obs


class PolicyActor:
    """The policy as an `aimc.envs.BatchActor` that records what PPO needs. One `aimc.policy.Agent` over
    `n_slots` rows (per-slot recurrent state and sampling generator); `begin(slot, goal)` before a slot's
    episode starts gives it its goal and a fresh buffer. With a guidance scale the acting distribution is the
    renormalised guided one (Gumbel-max on the guided scores samples exactly from it).

    With a `planner` (`aimc.eval.planner`, as the shipped agent plays), each step's goal is the embedding (from
    `goal_of`) of the text the planner names for the slot's prompt, recorded per step so the update replays
    exactly what the policy acted on.

    With `make_labeller` (an `aimc.envs.Actor` factory: the scripted demonstrator in task mode), each slot gets
    its own labeller, reset with the slot's episode (`demo_tasks` maps the suite task to what it pursues), and
    every step it labels the state before the policy acts; the labels are recorded as action sets (`label_mask`),
    never executed: the labeller's action, with `tied_moves` also the moves equally good as it, and an empty set
    where the labeller explored, with `skip_explore`. `precision` is the agent's acting precision ("bf16": autocast
    where native; the recorded log-probabilities are fp32 either way).

    With a `teacher` (a policy, acting with guidance scale `teacher_scale`), a second `Agent` over the same slots
    steps beside the policy on the same frames (at the teacher's own frame size) and goals, its memory following
    the policy's episode; its acting log-probabilities are recorded per step (distillation's soft labels)."""

    def __init__(self, policy: Any, n_slots: int, cond_scale: float, device: str = "cpu", planner: Any = None,
                 goal_of: Callable[[str], np.ndarray] | None = None, make_labeller: Callable[[], Any] | None = None,
                 demo_tasks: dict[str, str | None] | None = None, skip_explore: bool = False,
                 tied_moves: bool = False, precision: str = "fp32", teacher: Any = None,
                 teacher_scale: float = 0.0) -> None:
        from aimc.policy import Agent

        self.policy = policy
        self.agent = Agent(policy, n_envs=n_slots, cond_scale=cond_scale or None, device=device, seed=0,
                           precision=precision)
        self.img_shape = tuple(policy.config.img_shape)
        self.goals = np.zeros((n_slots, policy.config.goal_dim), np.float32)
        self.buffers: list[_Buffer | None] = [None] * n_slots
        self.planner = planner
        self.goal_of = goal_of
        self.plans: dict[int, Any] = {}
        self.texts: dict[int, str] = {}
        self.make_labeller = make_labeller
        self.demo_tasks = dict(demo_tasks or {})
        self.labellers: dict[int, Any] = {}
        self.skip_explore = skip_explore
        self.tied_moves = tied_moves
        self.teacher = None if teacher is None else Agent(teacher, n_envs=n_slots, cond_scale=teacher_scale or None,
                                                          device=device, seed=0, precision=precision)

    def begin(self, slot: int, goal: np.ndarray) -> _Buffer:
        self.goals[slot] = goal
        self.buffers[slot] = _Buffer(np.asarray(goal, np.float32))
        return self.buffers[slot]  # type: ignore[return-value]

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        self.agent.reset([slot], seeds=[seed])
        if self.teacher is not None:
            self.teacher.reset([slot], seeds=[seed])
        if self.make_labeller is not None:
            if slot not in self.labellers:
                self.labellers[slot] = self.make_labeller()
            self.labellers[slot].reset(env, derive_seed(seed, "labeller"), self.demo_tasks.get(task or "", task), prompt)
        self.plans.pop(slot, None)
        self.texts.pop(slot, None)
        if self.planner is not None and prompt:
            self.plans[slot] = self.planner.start(prompt)
        warm = getattr(env, "warmup", None)
        if warm:
            self._warm_up(slot, warm)

    def _warm_up(self, slot: int, warm: list[tuple[np.ndarray, int]]) -> None:
        """Feed the demonstrator's replayed frames before a start state (`aimc.finetune.ppo_start`) to the slot's
        memory (and the teacher's), one step each as if acting, and record them as the episode's leading `warm`
        steps: the frame, the demonstrator's action and zeros (no loss reads them)."""
        from aimc.policy import resize_frames

        buffer = self.buffers[slot]
        assert buffer is not None
        for pov, action in warm:
            frame = resize_frames(pov[None], self.img_shape)
            self.agent.act(frame, self.goals[[slot]], env_ids=[slot])
            if self.teacher is not None:
                t_frame = resize_frames(pov[None], tuple(self.teacher.policy.config.img_shape))
                self.teacher.act(t_frame, self.goals[[slot]], env_ids=[slot])
                with torch.inference_mode():
                    (t_lp,) = acting_logp(self.teacher.last_outputs, self.teacher.cond_scale is not None).values()
                buffer.teacher_logp.append(t_lp[0, 0].float().cpu().numpy())
            if self.make_labeller is not None:
                buffer.labels.append(0)
            if slot in self.plans:
                buffer.goals.append(self.goals[slot].copy())
            buffer.frames.append(frame[0])
            buffer.actions.append(int(action))
            buffer.logp.append(0.0)
            buffer.values.append(0.0)
            buffer.rewards.append(0.0)
        buffer.warm = len(warm)

    def _replan(self, slots: list[int], envs: list[Any]) -> None:
        from aimc.eval.planner import advance

        for slot, text in advance(self.planner, self.plans, self.texts, slots, envs):
            assert self.goal_of is not None
            self.goals[slot] = self.buffers[slot].goal if text == self.plans[slot].prompt else self.goal_of(text)  # type: ignore[union-attr]
        for slot in slots:
            buffer = self.buffers[slot]
            if slot in self.plans and buffer is not None:
                buffer.goals.append(self.goals[slot].copy())

    def _forward(self, slots: list[int], obs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, Any]:
        """One batched step for `slots`: (frames (B, H, W, 3), actions (B,), outputs)."""
        from aimc.policy import resize_frames

        pov = resize_frames(np.stack([o[keys.POV] for o in obs]), self.img_shape)  # (B, H, W, 3)
        acts = self.agent.act(pov, self.goals[slots], env_ids=slots)
        (a,) = acts.values()
        return pov, a.astype(np.int64), self.agent.last_outputs

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        if self.make_labeller is not None:  # the expert reads each state before any world steps
            for s, env, o, f in zip(slots, envs, obs, first, strict=True):
                labeller = self.labellers[s]
                action = int(labeller.act(env, o, f))
                actions = tuple(getattr(labeller, "label_set", ())) if self.tied_moves else ()
                left_out = self.skip_explore and getattr(labeller, "explored", False)
                self.buffers[s].labels.append(0 if left_out else label_mask(actions or (action,)))  # type: ignore[union-attr]
        self._replan(slots, envs)
        pov, acts, out = self._forward(slots, obs)
        if self.teacher is not None:  # the teacher reads the same state (frames at its own size) with the same goals
            from aimc.policy import resize_frames

            t_pov = resize_frames(np.stack([o[keys.POV] for o in obs]), tuple(self.teacher.policy.config.img_shape))
            self.teacher.act(t_pov, self.goals[slots], env_ids=slots)
            with torch.inference_mode():
                (t_lp,) = acting_logp(self.teacher.last_outputs, self.teacher.cond_scale is not None).values()
                t_rows = t_lp[:, 0].float().cpu().numpy()
            for j, s in enumerate(slots):
                self.buffers[s].teacher_logp.append(t_rows[j])  # type: ignore[union-attr]
        with torch.inference_mode():
            (lp,) = acting_logp(out, self.agent.cond_scale is not None).values()  # (B, 1, n)
            logp = lp[:, 0].gather(-1, torch.as_tensor(acts, device=lp.device)[:, None])[:, 0].float().cpu().numpy()
            values = self.policy.value(out)[:, 0].float().cpu().numpy()
        for j, s in enumerate(slots):
            b = self.buffers[s]
            assert b is not None
            b.frames.append(pov[j])
            b.actions.append(int(acts[j]))
            b.logp.append(float(logp[j]))
            b.values.append(float(values[j]))
        return acts.tolist()

    def lead(self, prompt: str, goal: np.ndarray, seed: int,
             max_steps: int) -> Callable[[Any, Any, Callable[[Any], bool]], tuple[list[int], Any] | None]:
        """``play(env, obs, stop)``: the policy (its current weights, a memory and sampling generator of its own,
        under the run's planner) follows `prompt` in `env` from `obs` until ``stop(env)`` holds; returns (its
        actions, the observation then), or None if the player died or `max_steps` passed first. The day before
        a start state (`StartConfig.lead`): never trained on; its last frames may warm the episode's memory."""
        from aimc.policy import Agent, resize_frames

        def play(env: Any, obs: Any, stop: Callable[[Any], bool]) -> tuple[list[int], Any] | None:
            agent = Agent(self.policy, n_envs=1, cond_scale=self.agent.cond_scale, device=self.agent.device,
                          seed=seed, precision=self.agent.precision)
            plan = self.planner.start(prompt) if self.planner is not None else None
            text, now = prompt, goal
            actions: list[int] = []
            for _ in range(max_steps):
                if stop(env):
                    return actions, obs
                if plan is not None:
                    said = self.planner.prompt(plan, env)
                    if said != text:
                        assert self.goal_of is not None
                        text, now = said, (goal if said == prompt else self.goal_of(said))
                frame = resize_frames(obs[keys.POV][None], self.img_shape)
                (a,) = agent.act(frame, np.asarray(now, np.float32)[None]).values()
                actions.append(int(a[0]))
                obs, _, terminated, truncated, _ = env.step(actions[-1])
                if terminated or truncated:
                    return None
            return None

        return play

    def values_after(self, slots: list[int], obs: list[dict[str, Any]]) -> np.ndarray:
        """Value estimates of the states after the slots' last steps (one more forward; its sampled actions
        are discarded and the slots' memory is spent: they start a new episode next)."""
        _, _, out = self._forward(slots, obs)
        with torch.inference_mode():
            return self.policy.value(out)[:, 0].float().cpu().numpy()


# ------------------------------------------------------------------------------------------- an iteration
@dataclass
class _Playing:
    job: EpisodeJob
    hook: RewardHook
    buffer: _Buffer


class RolloutEngine:
    """`envs` world slots in lockstep (built once per run, kept across iterations)."""

    def __init__(self, world: str, world_config: dict[str, Any], n_slots: int, stop_on_success: bool,
                 start: StartConfig | None = None) -> None:
        self.world, self.world_config = world, dict(world_config)
        self.stop_on_success = stop_on_success
        self.start = start if start is not None and start.share > 0 else None
        self.lockstep = Lockstep(self._make_env, n_slots)

    def _make_env(self) -> Any:
        env = make(self.world, **self.world_config)
        if self.start is not None:
            from aimc.finetune.ppo_start import DemoStart

            env = DemoStart(env, self.start)
        return SuccessStop(env)

    def play(self, actor: PolicyActor, specs: dict[str, TaskSpec], goals: dict[str, np.ndarray], jobs: list[EpisodeJob],
             max_steps: int, reward: RewardConfig,
             on_episode: Callable[[Trajectory], None] | None = None, gamma: float = 1.0) -> list[Trajectory]:
        """Play every job to its end; returns the trajectories in job order. A failed episode raises
        `EpisodeError` (its traceback as a note) after the episodes in progress are dropped."""
        queue = deque(jobs)
        playing: dict[int, _Playing] = {}
        done: dict[int, Trajectory] = {}
        try:
            while queue or self.lockstep.active:
                for slot in self.lockstep.free_slots():
                    if not queue:
                        break
                    job = queue.popleft()
                    spec = specs[job.task]
                    buffer = actor.begin(slot, goals[job.prompt])
                    mark = job.back is not None and self.start is not None and self.start.success_at_mark
                    hook = RewardHook(spec, reward, buffer, gamma, mark)
                    playing[slot] = _Playing(job, hook, buffer)
                    options, steps = None, max_steps
                    if job.back is not None:
                        from aimc.finetune.ppo_start import StartRequest

                        if self.start is None:
                            raise EpisodeError(f"PPO rollout {job.index} asks for a start state, but this engine "
                                               "was built without start states")
                        lead = self._lead(actor, specs, goals, job) if self.start.lead == "policy" else None
                        options = {"start": StartRequest(job.back, spec.demo_task or job.task, spec.success, lead)}
                        if self.start.extra_steps is not None:
                            steps = min(max_steps, job.back + self.start.extra_steps)
                    self.lockstep.start(slot, actor, job.world_seed, steps, actor_seed=job.actor_seed, task=job.task,
                                        prompt=job.prompt, hooks=[hook], tag=job.index, options=options)
                    self.lockstep.envs[slot].success = spec.success if self.stop_on_success else None
                    self.lockstep.envs[slot].mark = mark
                ended = list(self.lockstep.step())
                for t in self._finish(actor, [(o, playing.pop(o.slot)) for o in ended]):
                    done[t.job.index] = t
                    if on_episode is not None:
                        on_episode(t)
        except BaseException:
            self.lockstep = Lockstep(self.lockstep.make_env, self.lockstep.n_slots)  # its slots may be mid-step
            raise
        return [done[j.index] for j in jobs]

    def _lead(self, actor: PolicyActor, specs: dict[str, TaskSpec], goals: dict[str, np.ndarray],
              job: EpisodeJob) -> Callable[[Any, Any, Callable[[Any], bool]], tuple[list[int], Any] | None]:
        """The policy's own day before a start state (`StartConfig.lead` "policy"), played by the acting policy: each
        world tried draws its own lead task and training prompt (a generator seeded by the episode and the try), so
        a task whose days end badly is not tried in every world."""
        from aimc.finetune.ppo_config import lead_tasks

        assert self.start is not None
        names, tries = lead_tasks(self.start, list(specs)), [0]

        def play(env: Any, obs: Any, stop: Callable[[Any], bool]) -> tuple[list[int], Any] | None:
            rng = np.random.default_rng(derive_seed(job.actor_seed, "start-lead", tries[0]))
            tries[0] += 1
            task = specs[names[int(rng.integers(len(names)))]]
            prompt = task.prompts[int(rng.integers(len(task.prompts)))]
            seed = int(rng.integers(2**31 - 1))
            return actor.lead(prompt, goals[prompt], seed, self.start.max_demo_steps)(env, obs, stop)  # type: ignore[union-attr]

        return play

    def _finish(self, actor: PolicyActor, ended: list[tuple[SlotOutcome, _Playing]]) -> list[Trajectory]:
        for outcome, p in ended:
            if outcome.error is not None:
                last = outcome.error.strip().splitlines()[-1]
                err = EpisodeError(f"PPO rollout {p.job.index} of iteration {p.job.iteration} ({p.job.task}, world seed "
                                   f"{p.job.world_seed}) failed: {last}")
                err.add_note(outcome.error)
                raise err
        trajs = []
        for o, p in ended:
            terminal = p.hook.died or (self.stop_on_success and p.hook.success_step is not None)
            b = p.buffer
            goals = np.stack(b.goals).astype(np.float32) if b.goals else None
            if goals is not None and np.array_equal(goals, np.broadcast_to(b.goal, goals.shape)):
                goals = None  # the planner never moved on from the prompt: store the one goal
            trajs.append(Trajectory(p.job, np.stack(b.frames), np.asarray(b.actions, np.int64),
                                    np.asarray(b.logp, np.float32), np.asarray(b.values, np.float32),
                                    np.asarray(b.rewards, np.float32), 0.0, terminal, p.hook.died, p.hook.success_step,
                                    goals, np.asarray(b.labels, np.int64) if actor.make_labeller is not None else None,
                                    np.stack(b.teacher_logp).astype(np.float32) if actor.teacher is not None else None,
                                    b.warm, self._started(o.slot) if p.job.back is not None else None))
        cut = [(i, o.slot) for i, (o, _) in enumerate(ended) if not trajs[i].terminal]
        # (the slot's world is still the episode's: Lockstep keeps an env that ended without an error)
        if cut:  # truncated: bootstrap from the state after the last step, all such slots in one forward
            values = actor.values_after([s for _, s in cut], [ended[i][1].hook.last_obs for i, _ in cut])
            for (i, _), v in zip(cut, values, strict=True):
                trajs[i].bootstrap = float(v)
        return trajs

    def _started(self, slot: int) -> dict[str, int] | None:
        """What the slot's start-state reset played (`DemoStart.started`)."""
        env = self.lockstep.envs[slot]
        return None if env is None else env.env.started
