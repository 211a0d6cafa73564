"""`StudyConfig`: the task fine-tuning study's grid (demos N x init x route x seed) and each route's settings.

Torch-free, so an unknown task, a typo in a route's section or an impossible grid is rejected in a fraction of
a second, before anything is collected or trained. Presets are ``presets/study-<name>.yaml`` (the CPU grid,
the GPU grid, the test grid) merged over the defaults; CLI flags and ``--set key=value`` come last. The resolved
config is saved as ``<out>/study_config.json`` and wins on resume (only `RESUMABLE` fields may change: a grid
may grow, the finished cells are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc.core.config import build_config, preset_path
from aimc.core.errors import ConfigError, UnknownNameError

PRESET_DIR = Path(__file__).parent / "presets"
PRESET_PREFIX = "study-"
CONFIG_FILE = "study_config.json"
RESUMABLE = ("demos", "inits", "routes", "seeds", "eval_workers", "threads")
"""Fields a resumed study may change: the grid's axes (new cells run, finished ones are kept) and how many
processes and threads do the work (no number depends on them)."""
INITS = ("scratch", "pretrained")
ROUTES = ("bc", "bc_dagger", "ppo")
ROUTE_TITLES = {"bc": "BC", "bc_dagger": "BC + DAgger", "ppo": "BC + PPO"}
INTERRUPTS = ["drink", "eat", "sleep", "shelter", "arm", "fight_zombie", "fight_skeleton", "flee"]
"""The demonstrator's survival behaviours: in a task demonstration they serve the task (its steps are
trained with the task's instruction, `aimc.data.text_goals.intention_targets`)."""


@dataclass
class StudyConfig:
    """One study: task demonstrations, then for every cell (N, init, seed) a BC fine-tune on the first N
    demonstrations, and from that BC policy the DAgger and PPO routes; every policy evaluated on the task."""

    out: str = "runs/study"
    """Study directory: study_config.json, demos/seed<s>/, cells/, stages/, study.json, study.md, plots/, report.html."""
    task: str = "collect_wood"
    """The demonstrator's task (an achievement, as `aimc collect --task`); the suite task whose demonstrator
    task it is gives the evaluation (success predicate, prompts, horizon) and PPO's reward."""
    suite: str = ""
    """Task suite file for evaluation and PPO; empty = the bundled Crafter suite."""
    pretrained: str = ""
    """Agent bundle of the "pretrained" init (its policy and embedder); empty = the shipped agent. The
    "scratch" init is the same architecture freshly initialised, reading the same embedder's goals."""
    demos: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])
    """N: task demonstrations per BC fine-tune (the first N of each seed's pool, so the pools nest)."""
    inits: list[str] = field(default_factory=lambda: list(INITS))
    """Starting points: "scratch" and/or "pretrained"."""
    routes: list[str] = field(default_factory=lambda: list(ROUTES))
    """"bc" (BC on the N demos), "bc_dagger" (that BC policy improved by DAgger, the demos aggregated every
    iteration) and "ppo" (that BC policy as PPO's warm start and KL anchor)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Study seeds: each has its own demonstration pool, training seeds and evaluation sampling."""
    demo_max_steps: int = 500
    """Step cap of a task demonstration (it ends at the task's success; one that fails by the cap stays in the
    pool, as a human's failed attempt would)."""
    collect_workers: int = 1
    """Processes collecting the demonstrations."""
    bc_preset: str = "finetune"
    """Training preset (aimc.train presets) of the BC fine-tunes."""
    bc: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields over `bc_preset` for both inits (the study sets out, data, init_from, embedder,
    policy, policy_overrides, seed and n_frames itself)."""
    bc_scratch: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields for the scratch init only, over `bc` (a fresh network wants a larger learning rate)."""
    bc_epochs: float = 30.0
    """BC length: this many passes over the N demonstrations' frames ..."""
    bc_min_frames: int = 20_000
    """... but at least this many frames (a handful of short demonstrations still gets enough optimiser steps)."""
    dagger_preset: str = "crafter"
    """DAgger preset (aimc.finetune presets) of the bc_dagger route."""
    dagger: dict[str, Any] = field(default_factory=dict)
    """DaggerConfig fields over `dagger_preset` (iterations, episodes, beta schedule, frames_per_iteration, ...);
    the study sets out, bundle, data, tasks and seed. Its `train` section defaults to the BC settings and its
    `max_steps` to the evaluation horizon."""
    ppo_preset: str = "ppo-crafter"
    """PPO preset of the ppo route."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """PPOConfig fields over `ppo_preset` (iterations, episodes_per_iteration, reward, ...); the study sets out,
    bundle, suite, tasks and seed; `max_steps` defaults to the evaluation horizon."""
    eval_episodes: int = 40
    """Evaluation episodes per policy (the suite task's worlds, disjoint from every training world)."""
    eval_max_steps: int | None = None
    """Evaluation horizon; None = the suite task's."""
    eval_workers: int = 2
    """Evaluation worker processes (0 = in this process)."""
    eval_baseline: bool = True
    """Also evaluate the pretrained agent as it is (no demonstrations): the line every route starts from."""
    threads: int = 0
    """torch CPU threads for the whole study (0 = torch's default). When set, the BC fine-tunes also decode their
    segments in the training process (num_workers 0), so the study stays on that many cores and a second job
    can use the others."""
    device: str = "cpu"
    """torch device for DAgger rollouts, PPO and evaluation (training picks its own through accelerate)."""
    planner: str | None = None
    """Prompt chaining (`aimc.eval.planner`) of every rollout in the study: each policy's evaluation (the
    agent as it is included), DAgger's learner and PPO's. None = the pretrained bundle's own (the shipped agent
    chains), so every route and init is played the way that agent is; "none" plays the prompt alone."""
    demo_goals: str | None = None
    """The goal recorded on each demonstration step (`DemonstratorConfig.goal_label`): "task" the task on every
    step, "step" the planner step each action serves (collect_wood, place_table, ... then the task). None =
    "step" when the study plays with a chain planner (the sub-instructions the agent is told then), else "task"."""

    def __post_init__(self) -> None:
        from aimc.eval.planner import check_planner
        from aimc.finetune.config import valid_tasks

        check_planner(self.planner)
        if self.demo_goals not in (None, "task", "step"):
            raise ConfigError(f"demo_goals must be 'task' or 'step' (or unset: by the planner), got {self.demo_goals!r}")

        if self.task not in valid_tasks():
            raise UnknownNameError(f"unknown task {self.task!r}; valid tasks: {', '.join(valid_tasks())}")
        if not self.demos or any(n < 1 for n in self.demos):
            raise ConfigError(f"demos: give one or more counts >= 1, got {self.demos}")
        for name, valid in (("inits", INITS), ("routes", ROUTES)):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"{name}: give at least one of {', '.join(valid)}")
            bad = [v for v in values if v not in valid]
            if bad:
                raise UnknownNameError(f"{name}: unknown {bad[0]!r}; valid: {', '.join(valid)}")
        for name in ("demos", "inits", "routes", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"{name}: {values} lists a value twice")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds: give one or more seeds >= 0, got {self.seeds}")
        for name in ("demo_max_steps", "collect_workers", "bc_min_frames", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_workers < 0:
            raise ConfigError(f"eval_workers must be >= 0 (0 = in this process), got {self.eval_workers}")
        if self.bc_epochs <= 0:
            raise ConfigError(f"bc_epochs must be > 0, got {self.bc_epochs}")
        if self.eval_max_steps is not None and self.eval_max_steps < 1:
            raise ConfigError(f"eval_max_steps must be >= 1, got {self.eval_max_steps}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        for name in ("bc", "bc_scratch", "dagger", "ppo"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}: expected a mapping of settings, got {getattr(self, name)!r}")

    @property
    def max_demos(self) -> int:
        return max(self.demos)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob(f"{PRESET_PREFIX}*.yaml"))


def load_study_config(preset: str | None = None, overrides: list[str] | None = None, **fields_: Any) -> StudyConfig:
    """Defaults <- preset YAML (a name in presets/ or a .yaml path) <- `fields_` (CLI flags) <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        layers.append(preset_path(preset, PRESET_DIR, preset_names(), "study"))
    layers.append({k: v for k, v in fields_.items() if v is not None})
    return build_config(StudyConfig, *layers, overrides=overrides)
