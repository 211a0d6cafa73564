"""The one episode loop every stage runs (collection, evaluation, play, DAgger), observed through hooks.

`run_episode` resets the world to `world_seed`, resets the actor, then steps until the world ends the
episode or `max_steps` actions were taken. What a stage keeps is a hook whose methods default to doing
nothing (house style: MineStudio's simulator callbacks): collection writes each step to an `EpisodeWriter`,
evaluation renders video frames, play overlays the instruction and events, DAgger labels each state.
Hooks observe; they never change the actions or the world, so adding one never changes an episode.

Order per step t: `before_action(env, t, obs)` -> `actor.act(env, obs, t == 0)` -> `env.step` ->
`on_step(env, step)`. `on_end(env, record)` runs once with the world in its final state, so a hook can
render the frame after the last action.

`Lockstep` plays several episodes at once, one per env *slot*, in the same per-slot order, so that a
learned policy (a `BatchActor`) answers all its slots with one forward pass per step; evaluation and
DAgger rollouts are bound by that forward, not by the world.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aimc.core import keys
from aimc.core.errors import AimcError
from aimc.envs.actor import Actor


@dataclass(frozen=True)
class Step:
    """Action `t`, what it was chosen from and what it caused."""

    t: int
    obs: dict[str, Any]
    """Observation before the action (`obs["pov"]` is frame t of a stored episode)."""
    action: int
    next_obs: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    """The world's info after the action."""
    goal: str | None = None
    """The actor's `current_goal` after choosing the action (None when it has none)."""
    label: int | None = None
    """The actor's `label_action` (DART: what an expert would have done; None when it has none)."""

    @property
    def events(self) -> list[str]:
        """Events the action caused."""
        return self.info.get(keys.EVENTS, [])


@dataclass
class EpisodeRecord:
    """What one episode did, in the terms every stage shares."""

    world_seed: int
    steps: int
    """Actions taken."""
    terminated: bool
    """The world ended the episode (Crafter: death)."""
    truncated: bool
    """Stopped without ending: the world's own time limit or `max_steps`."""
    events: list[list[str]] = field(default_factory=list)
    """Line t = the events caused by action t."""

    def occurrences(self) -> dict[str, list[int]]:
        """Event -> the action indices at which it fired (events in order of first occurrence)."""
        out: dict[str, list[int]] = {}
        for t, evs in enumerate(self.events):
            for ev in evs:
                out.setdefault(ev, []).append(t)
        return out

    def event_counts(self) -> dict[str, int]:
        return {ev: len(ts) for ev, ts in self.occurrences().items()}


class EpisodeHook:
    """Observer of `run_episode`; subclass and override what you need, the rest stays a no-op."""

    def on_reset(self, env: Any, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """After the world and the actor were reset."""

    def before_action(self, env: Any, t: int, obs: dict[str, Any]) -> None:
        """Before the actor chooses action `t`; the world is in the state `obs` shows (render frames here)."""

    def on_step(self, env: Any, step: Step) -> None:
        """After the world executed action `step.t`."""

    def on_end(self, env: Any, record: EpisodeRecord) -> None:
        """After the last step, with the world in its final state."""


def run_episode(
    env: Any,
    actor: Actor,
    world_seed: int,
    max_steps: int,
    *,
    actor_seed: int,
    task: str | None = None,
    prompt: str = "",
    hooks: Sequence[EpisodeHook] = (),
) -> EpisodeRecord:
    """Play one episode of `actor` in world seed `world_seed`, at most `max_steps` actions, with no early stop
    on success (evaluation scores every event over the full horizon); the world's end stops it."""
    obs, info = env.reset(seed=world_seed)
    actor.reset(env, actor_seed, task, prompt)
    for h in hooks:
        h.on_reset(env, obs, info)
    record = EpisodeRecord(world_seed, 0, False, False)
    terminated = truncated = False
    while record.steps < max_steps:
        t = record.steps
        for h in hooks:
            h.before_action(env, t, obs)
        action = int(actor.act(env, obs, t == 0))
        next_obs, reward, terminated, truncated, info = env.step(action)
        step = Step(t, obs, action, next_obs, float(reward), bool(terminated), bool(truncated), info,
                    getattr(actor, "current_goal", None), getattr(actor, "label_action", None))
        record.steps = t + 1
        record.events.append(list(step.events))
        for h in hooks:
            h.on_step(env, step)
        obs = next_obs
        if terminated or truncated:
            break
    record.terminated = bool(terminated)
    record.truncated = bool(truncated or record.steps >= max_steps)
    for h in hooks:
        h.on_end(env, record)
    return record


# ---------------------------------------------------------------------------- many episodes in lockstep
class BatchActor(Protocol):
    """Chooses actions for several episodes at once, one per slot (an index fixed for an episode's life).

    A learned policy implements this to answer every slot with one forward pass (`aimc.eval.baselines.TextActor`);
    scripted actors stay plain `Actor`s, one instance per slot. Each slot's episode must not depend on
    the others: per-slot memory, goal and sampling generator, all restarted by `reset_slot`.
    """

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        """Start an episode in `slot` (`Actor.reset`'s arguments); the other slots carry on."""
        ...

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        """One action per listed slot (`first[i]`: the slot's first step)."""
        ...


@dataclass
class SlotOutcome:
    """An episode that ended in `slot`: its `record`, or `error` (a traceback) if it failed; `tag` is the
    caller's, from `Lockstep.start`."""

    slot: int
    tag: Any
    record: EpisodeRecord | None = None
    error: str | None = None


@dataclass
class _Playing:
    actor: Any
    batched: bool
    max_steps: int
    hooks: Sequence[EpisodeHook]
    tag: Any
    obs: dict[str, Any]
    record: EpisodeRecord


class Lockstep:
    """`run_episode` for up to `n_slots` episodes at once, stepped in lockstep.

        lock = Lockstep(lambda: make("crafter"), n_slots=8)
        lock.start(0, text_actor, world_seed=3, max_steps=500, actor_seed=7, prompt="chop a tree")
        while lock.active:
            for outcome in lock.step():   # episodes that ended in this step
                ...                       # refill outcome.slot with lock.start(...)

    Each slot keeps its own env (built by `make_env` when first needed, rebuilt after a failure) and plays
    one episode exactly as `run_episode` would: same reset, hook and step order, same record. Per step,
    hooks see every state first, then each `BatchActor` is asked once for all its slots and each plain
    `Actor` for its own, then every world steps. A slot is free for the next episode as soon as its own
    ends, so episodes of different lengths and actors share the batch.

    A failure stays in its slot: an exception from a slot's world, hook or plain actor ends that episode
    alone (reported with its traceback; its env is rebuilt), and one from a `BatchActor` ends the episodes
    it was asked for. `on_busy(slot)` is called before code that may crash or hang for one slot only, and
    `on_busy(None)` before code shared by several; a supervising process uses it to blame the right episode.

    Why not `gymnasium.vector.SyncVectorEnv`: it autoresets a finished env on its own (next-step autoreset,
    with its own seeds) while a slot here must start a given job (world seed, actor seed, task, prompt,
    horizon) or stay idle; scripted actors and hooks need each env object (world state, frames), which a
    vector env hides behind `call`; and its `step` raises for all envs when one fails. `AsyncVectorEnv` would
    add a second process layer under the rollout workers, which are the processes already.
    """

    def __init__(self, make_env: Callable[[], Any], n_slots: int,
                 on_busy: Callable[[int | None], None] | None = None) -> None:
        if n_slots < 1:
            raise AimcError(f"a lockstep needs at least 1 env slot, got {n_slots}")
        self.make_env = make_env
        self.envs: list[Any] = [None] * n_slots
        self._playing: list[_Playing | None] = [None] * n_slots
        self._busy = on_busy or (lambda slot: None)

    @property
    def n_slots(self) -> int:
        return len(self.envs)

    @property
    def active(self) -> int:
        """Slots playing an episode."""
        return sum(p is not None for p in self._playing)

    def free_slots(self) -> list[int]:
        return [i for i, p in enumerate(self._playing) if p is None]

    def start(
        self, slot: int, actor: Actor | BatchActor, world_seed: int, max_steps: int, *, actor_seed: int,
        task: str | None = None, prompt: str = "", hooks: Sequence[EpisodeHook] = (), tag: Any = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Reset the slot's world and its actor for a new episode; raises what they raise (the slot stays free).

        `actor` is a `BatchActor` (may serve other slots too) or a plain `Actor` owned by this slot; `options`
        go to the world's reset (e.g. a PPO start state, `aimc.finetune.ppo_start`)."""
        if self._playing[slot] is not None:
            raise AimcError(f"env slot {slot} is still playing an episode")
        if max_steps < 1:
            raise AimcError(f"max_steps must be >= 1, got {max_steps}")
        batched = hasattr(actor, "act_slots")
        self._busy(slot)
        try:
            if self.envs[slot] is None:
                self.envs[slot] = self.make_env()
            env = self.envs[slot]
            obs, info = env.reset(seed=world_seed, options=options) if options else env.reset(seed=world_seed)
            if batched:
                actor.reset_slot(slot, env, actor_seed, task, prompt)  # type: ignore[union-attr]
            else:
                actor.reset(env, actor_seed, task, prompt)  # type: ignore[union-attr]
            for h in hooks:
                h.on_reset(env, obs, info)
        except BaseException:
            self.envs[slot] = None  # possibly half-reset or broken: the next episode gets a fresh one
            raise
        finally:
            self._busy(None)
        record = EpisodeRecord(world_seed, 0, False, False)
        self._playing[slot] = _Playing(actor, batched, max_steps, hooks, tag, obs, record)

    def step(self) -> Iterator[SlotOutcome]:
        """One action in every playing slot; yields each episode as soon as it ends (so a supervisor hears of
        it even if a later slot then kills the process). Iterate to the end: the step is done then."""
        slots = [i for i, p in enumerate(self._playing) if p is not None]
        for i in slots:
            outcome = self._guarded(i, self._before_action, i)
            if outcome is not None:
                yield outcome
        actions: dict[int, int] = {}
        groups: dict[int, list[int]] = {}  # id(batch actor) -> its slots, in slot order
        for i in slots:
            p = self._playing[i]
            if p is None:
                continue
            if p.batched:
                groups.setdefault(id(p.actor), []).append(i)
                continue
            self._busy(i)
            try:
                actions[i] = int(p.actor.act(self.envs[i], p.obs, p.record.steps == 0))
            except Exception:
                yield self._fail(i, traceback.format_exc(limit=8))
        for group in groups.values():
            yield from self._act_batched(group, actions)
        for i, action in actions.items():
            outcome = self._guarded(i, self._advance, i, action)
            if outcome is not None:
                yield outcome
        self._busy(None)

    # ------------------------------------------------------------------------------------------ helpers
    def _guarded(self, slot: int, fn: Callable[..., SlotOutcome | None], *args: Any) -> SlotOutcome | None:
        self._busy(slot)
        try:
            return fn(*args)
        except Exception:
            return self._fail(slot, traceback.format_exc(limit=8))

    def _fail(self, slot: int, error: str) -> SlotOutcome:
        p = self._playing[slot]
        assert p is not None
        self._playing[slot] = None
        self.envs[slot] = None  # a failed env may be half-stepped or broken: rebuild it for the next episode
        return SlotOutcome(slot, p.tag, error=error)

    def _before_action(self, slot: int) -> None:
        p = self._playing[slot]
        assert p is not None
        for h in p.hooks:
            h.before_action(self.envs[slot], p.record.steps, p.obs)

    def _act_batched(self, group: list[int], actions: dict[int, int]) -> Iterator[SlotOutcome]:
        ps = [self._playing[i] for i in group]
        self._busy(group[0] if len(group) == 1 else None)
        try:
            acts = ps[0].actor.act_slots(group, [self.envs[i] for i in group], [p.obs for p in ps],  # type: ignore[union-attr]
                                         [p.record.steps == 0 for p in ps])  # type: ignore[union-attr]
            if len(acts) != len(group):
                raise AimcError(f"{type(ps[0].actor).__name__}.act_slots gave {len(acts)} actions for {len(group)} slots")  # type: ignore[union-attr]
        except Exception:
            error = traceback.format_exc(limit=8)
            for i in group:
                yield self._fail(i, error)
            return
        actions.update(zip(group, (int(a) for a in acts), strict=True))

    def _advance(self, slot: int, action: int) -> SlotOutcome | None:
        """Execute the slot's action; the episode's outcome if that ended it."""
        p, env = self._playing[slot], self.envs[slot]
        assert p is not None
        t = p.record.steps
        next_obs, reward, terminated, truncated, info = env.step(action)
        goal = None if p.batched else getattr(p.actor, "current_goal", None)
        label = None if p.batched else getattr(p.actor, "label_action", None)
        step = Step(t, p.obs, action, next_obs, float(reward), bool(terminated), bool(truncated), info, goal, label)
        p.record.steps = t + 1
        p.record.events.append(list(step.events))
        for h in p.hooks:
            h.on_step(env, step)
        p.obs = next_obs
        if not (terminated or truncated or p.record.steps >= p.max_steps):
            return None
        p.record.terminated = bool(terminated)
        p.record.truncated = bool(truncated or p.record.steps >= p.max_steps)
        for h in p.hooks:
            h.on_end(env, p.record)
        self._playing[slot] = None
        return SlotOutcome(slot, p.tag, p.record)


class StopAtEvent:
    """The world, except that the step whose events include `event` ends the episode (truncated): a rollout
    (DAgger) or a collected task demonstration (`aimc collect --task`) stops at its task's success. `event` is
    set per episode (a slot's world serves many tasks); None never stops. Every other attribute is the wrapped
    world's (the demonstrator reads them)."""

    def __init__(self, env: Any, event: str | None = None) -> None:
        self.env = env
        self.event = event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.env.reset(seed=seed)

    def step(self, action: int) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated or self.event in info.get(keys.EVENTS, []), info
