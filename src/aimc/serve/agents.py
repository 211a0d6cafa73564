"""Agents for served games: each checkpoint is loaded once, and each game acts with its own copy of the policy.

Loading a bundle (policy, embedder and its text model) takes seconds, so `AgentCache` keeps the last few loaded
and embeds goals with them (under a lock: one embedder, many request threads). A game gets a deep copy of the
policy (2.4 M parameters for the shipped agent, ~10 MB): games step in parallel threads, and an `Agent` sets
its policy's convolution mode when it is built, which must not happen under another game's forward pass.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.eval.agent import TextAgent
from aimc.eval.planner import advance


class AgentCache:
    """Bundle directory -> a loaded `TextAgent` (policy + embedder), the `capacity` most recently used."""

    def __init__(self, device: str = "cpu", capacity: int = 2) -> None:
        self.device = device
        self.capacity = capacity
        self._agents: OrderedDict[Path, TextAgent] = OrderedDict()
        self._locks: dict[Path, threading.Lock] = {}
        self._lock = threading.Lock()

    def _path_lock(self, path: Path) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(path, threading.Lock())

    def get(self, path: str | Path) -> TextAgent:
        """The loaded agent of the bundle at `path` (loaded on first use; concurrent first uses load once)."""
        path = Path(path).resolve()
        with self._path_lock(path):
            with self._lock:
                if path in self._agents:
                    self._agents.move_to_end(path)
                    return self._agents[path]
            agent = TextAgent.from_bundle(path, device=self.device)
            if agent.goal_dim:
                agent.embedder  # noqa: B018 - load the text model now, not in the first game's request
            with self._lock:
                self._agents[path] = agent
                while len(self._agents) > self.capacity:
                    self._agents.popitem(last=False)
            return agent

    def text_goal(self, agent: TextAgent, instruction: str, seed: int) -> np.ndarray:
        """(D,) goal of an instruction (the bundle's prior applied when it has one, as `aimc play` does)."""
        if not agent.goal_dim:
            return np.zeros(0, np.float32)  # an unconditional policy: the goal is ignored
        with self._path_lock(Path(agent.bundle.root).resolve()):
            return agent.goal_from_text([instruction], seed=seed)[0]

    def video_goal(self, agent: TextAgent, frames: np.ndarray) -> np.ndarray:
        """(D,) goal of a 16-frame clip, embedded by the bundle's embedder."""
        with self._path_lock(Path(agent.bundle.root).resolve()):
            return agent.goal_from_video(frames)

    def game_agents(self, agent: TextAgent, n: int) -> list[TextAgent]:
        """`n` `TextAgent`s over one private copy of `agent`'s policy, for one game's thread (one per guidance
        scale: a `TextAgent` holds one scale; they step one after the other, so they can share the copy)."""
        policy = copy.deepcopy(agent.policy)
        return [TextAgent(policy, agent.bundle, device=self.device, seed=agent.seed) for _ in range(n)]


class GoalTableActor:
    """An `aimc.envs.BatchActor` whose slots play fixed, precomputed goals at one guidance scale.

    `aimc.eval.baselines.TextActor` embeds each slot's prompt with its own agent's embedder, which a per-game agent
    would load again; here the goals come from `AgentCache`, and text and clip goals share one policy forward.
    Like TextActor, each slot samples from its own generator seeded by the episode's seed. With a `planner`
    (`aimc.eval.planner`), the slots in `plan_slots` chain their instruction like `aimc play` does: each step the
    planner names the text to follow, embedded by `text_goal`, and a change keeps the slot's memory.
    """

    def __init__(self, agent: TextAgent, goals: dict[int, np.ndarray], cond_scale: float | None, n_slots: int,
                 planner: Any = None, text_goal: Any = None) -> None:
        self.agent = agent
        self.goals = goals
        self.cond_scale = cond_scale
        self.n_slots = n_slots
        self.planner = planner
        self.text_goal = text_goal
        self.plan_slots: set[int] = set()
        self._plans: dict[int, Any] = {}
        self._texts: dict[int, str] = {}
        self._started = False

    def following(self, slot: int) -> str | None:
        """The sub-instruction a chained slot follows now; None for a slot without a plan."""
        return self._texts.get(slot) if slot in self._plans else None

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        goal = np.asarray(self.goals[slot], np.float32)[None]  # (1, D)
        self._plans.pop(slot, None)
        if self.planner is not None and slot in self.plan_slots and prompt.strip():
            self._plans[slot] = plan = self.planner.start(prompt)
            self._texts[slot] = text = self.planner.prompt(plan, env)
            if text != prompt:
                goal = np.asarray(self.text_goal(text), np.float32)[None]
        if not self._started:  # fixes the guidance scale and the goal width for all slots
            self.agent.start(np.zeros((self.n_slots, goal.shape[1]), np.float32), cond_scale=self.cond_scale, seed=seed)
            self._started = True
        self.agent.restart([slot], goal, seeds=[seed])

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[dict[str, Any]], first: list[bool]) -> list[int]:
        for slot, text in advance(self.planner, self._plans, self._texts, slots, envs):
            goal = self.goals[slot] if text == self._plans[slot].prompt else self.text_goal(text)
            self.agent.set_goals([slot], np.asarray(goal, np.float32)[None])
        pov = np.stack([o[keys.POV] for o in obs])  # (B, H, W, 3)
        return self.agent.act(pov, np.asarray(first, bool), env_ids=slots).tolist()
