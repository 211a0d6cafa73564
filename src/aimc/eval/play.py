"""Library side of `aimc play`: one episode of a bundle's agent following a text (or video) instruction."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.errors import AimcError
from aimc.core.video import Mp4Writer, annotate, read_mp4
from aimc.envs import EpisodeHook, EpisodeRecord, Step, run_episode, video_frame
from aimc.eval.agent import TextAgent
from aimc.eval.baselines import TextActor

SHIPPED_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "crafter-small"


def shipped_bundle() -> Path:
    """The agent bundle installed with aimc (made by `aimc pipeline --preset crafter-small`), for `aimc play`."""
    if not (SHIPPED_BUNDLE / "bundle.json").is_file():
        raise AimcError(
            "no --checkpoint given and this install ships no trained agent; train one with "
            "`aimc pipeline --preset crafter-small --out runs/small` and pass --checkpoint runs/small/bundle"
        )
    return SHIPPED_BUNDLE


def clip_goal_frames(path: str | Path) -> np.ndarray:
    """The last 16 frames of an mp4 (a clip that ends when the wanted thing happens, as goals do in training)."""
    frames = read_mp4(path)
    if len(frames) < 16:
        raise AimcError(f"visual goal {path} has {len(frames)} frame(s); it needs at least 16")
    return frames[-16:]


def play(
    bundle: str | Path,
    instruction: str,
    steps: int = 300,
    seed: int = 0,
    cond_scale: float | None = None,
    video: str | Path | None = None,
    visual_goal: str | Path | None = None,
    size: int = 384,
    deterministic: bool = False,
    hold: int = 12,
    world: str | None = None,
    world_config: dict[str, Any] | None = None,
    planner: str | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """Run up to `steps` steps (stopping at death) and return the events, optionally writing an mp4
    whose frames show the instruction, the step and the events of the last `hold` steps.

    A text instruction goes through the bundle's planner (`planner` overrides it: "chain" or "none",
    `aimc.eval.planner`) and is sampled at `temperature` (None: the bundle's); the result's "subgoals" lists (step, sub-instruction) each time the chain moved on.

    The world is the bundle's; `world` (the CLI's `--world`) only confirms it, so a Crafter agent is never
    dropped into Minecraft, and `world_config` overrides the bundle's world options (e.g. `backend`)."""
    if steps < 1:
        raise AimcError(f"--steps must be >= 1, got {steps}")
    if visual_goal is None and not instruction.strip():
        raise AimcError('the instruction is empty; say what the agent should do, e.g. aimc play "chop a tree"')
    from aimc.envs import make

    if temperature is not None and not temperature > 0:
        raise AimcError(f"--temperature must be > 0 (1 = plain sampling), got {temperature}")
    agent = TextAgent.from_bundle(bundle, seed=seed, temperature=temperature)
    if world is not None and world != agent.meta["world"]:
        raise AimcError(f"--world {world}: the agent in {bundle} plays {agent.meta['world']!r}; pass a "
                        f"{world} agent with --checkpoint (docs/minecraft.md makes one for minecraft)")
    from aimc.eval.planner import make_planner

    goal: np.ndarray | None = None
    chain = None
    if visual_goal is not None:
        goal = agent.goal_from_video(clip_goal_frames(visual_goal))[None]
        label = f"video goal: {Path(visual_goal).name}"
    elif agent.goal_dim:
        chain = make_planner(agent.bundle.planner if planner is None else planner, agent.meta["world"])
        label = instruction  # the actor turns it into goals (through the chain, when there is one)
    else:
        goal = np.zeros((1, 0), np.float32)
        label = f"{instruction} (unconditional policy)"
    actor = TextActor(agent, cond_scale, goal=goal, deterministic=deterministic, planner=chain)
    env = make(agent.meta["world"], **{**agent.meta["world_config"], **(world_config or {})})
    writer = Mp4Writer(video, fps=10, lossless=False) if video is not None else None
    subgoals = _SubgoalHook(actor)
    try:
        hooks: list[EpisodeHook] = [subgoals]
        if writer is not None:
            hooks.append(OverlayHook(writer, label, size, hold, actor))
        record = run_episode(env, actor, seed, steps, actor_seed=seed, prompt=instruction if goal is None else "",
                             hooks=hooks)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        env.close()  # a game world (Minecraft) stops its process here
    happened = [(t + 1, e) for t, events in enumerate(record.events) for e in events]
    return {
        "instruction": label, "steps": record.steps, "events": happened,
        "counts": dict(Counter(e for _, e in happened)), "video": str(video) if video is not None else None,
        "subgoals": subgoals.changes,
    }


class _SubgoalHook(EpisodeHook):
    """Records (step, sub-instruction) whenever the planner moves the episode on (nothing without a planner)."""

    def __init__(self, actor: TextActor) -> None:
        self.actor = actor
        self.changes: list[tuple[int, str]] = []

    def on_step(self, env: Any, step: Step) -> None:
        text = self.actor.following()
        if text is not None and (not self.changes or self.changes[-1][1] != text):
            self.changes.append((step.t, text))


class OverlayHook(EpisodeHook):
    """Writes each state with the instruction, the step and the events of the last `hold` steps: the state
    before every action, and at the end the state after the last one, so an episode of N steps is N + 1
    frames and what the last action caused (a death, the asked-for event) is on screen."""

    def __init__(self, writer: Mp4Writer, label: str, size: int, hold: int, actor: TextActor | None = None) -> None:
        self.writer, self.label, self.size, self.hold = writer, label, size, hold
        self.actor = actor  # its planner's current sub-instruction, when it differs from the label, is shown too
        self.happened: list[tuple[int, str]] = []  # (step after which it is visible, event)
        self._last_obs: dict[str, Any] | None = None

    def _write(self, env: Any, t: int, obs: dict[str, Any]) -> None:
        recent = [e for s, e in self.happened if t - s <= self.hold]
        following = self.actor.following() if self.actor is not None else None
        now = [f"now: {following}"] if following is not None and following != self.label else []
        self.writer.add(annotate(video_frame(env, obs, self.size), [self.label, *now, f"step {t}", *recent]))

    def before_action(self, env: Any, t: int, obs: dict[str, Any]) -> None:
        self._write(env, t, obs)

    def on_step(self, env: Any, step: Step) -> None:
        self.happened += [(step.t + 1, e) for e in step.events]
        self._last_obs = step.next_obs

    def on_end(self, env: Any, record: EpisodeRecord) -> None:
        if self._last_obs is not None:
            self._write(env, record.steps, self._last_obs)
