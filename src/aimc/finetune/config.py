"""`DaggerConfig`: every setting of a DAgger run, and the β schedule; defaults are rung 3's recipe.

Torch-free, so a config (and a typo in its `train` section, or an unknown task) is rejected in a fraction of
a second, before anything is written. Presets are ``presets/<name>.yaml`` merged over the defaults; CLI flags
and ``--set key=value`` overrides come last (`load_dagger_config`). The resolved config is saved as
``<out>/dagger_config.json`` and wins on resume (only `RESUMABLE` fields may change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from aimc.core.config import build_config, deep_merge, from_dict, load_yaml, preset_path
from aimc.core.errors import ConfigError, UnknownNameError
from aimc.core.precision import ACTING_PRECISIONS
from aimc.train.config import DataPart

PRESET_DIR = Path(__file__).parent / "presets"
CONFIG_FILE = "dagger_config.json"
RESUMABLE = ("iterations", "workers", "envs_per_worker", "final_rollouts")
"""Fields a resumed run may change: more iterations continue the run; the rest do not change any number."""
ENVS_PER_WORKER = 8
"""Default env slots per rollout worker, answered by one learner forward per step."""
TRAIN_RESERVED = ("out", "data", "init_from", "embedder", "policy", "policy_overrides", "seed", "n_frames")
"""TrainConfig fields DAgger sets itself for each iteration's fine-tune (a `train` section may not set them)."""
# The default eval suite's tasks (src/aimc/eval/suites/crafter.yaml), by their success event.
DEFAULT_TASKS = ("collect_wood", "collect_sapling", "place_plant", "place_table", "make_wood_pickaxe", "make_wood_sword",
                 "collect_stone", "place_stone", "collect_drink", "eat_cow", "defeat_zombie", "collect_coal")


@dataclass
class DaggerConfig:
    """A DAgger run: K iterations of (learner rollouts labelled by the demonstrator, aggregate, fine-tune)."""

    out: str = "runs/dagger"
    """Run directory: dagger_config.json, iter_<k>/{data,train}, eval_<K>/, stages/, dagger_summary.json, bundle/."""
    bundle: str = ""
    """Agent bundle to start from (a run dir of `aimc train policy`, the pipeline's bundle/); needs an embedder."""
    data: list[DataPart] = field(default_factory=list)
    """Base episode stores aggregated with the DAgger data every iteration ({path, weight, goal_source})."""
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    """Instructed tasks (Crafter achievement names); episode i of an iteration gets tasks[i % len(tasks)]."""
    iterations: int = 3
    """K: DAgger iterations (each collects, aggregates and fine-tunes); may grow on resume."""
    episodes: int = 24
    """Learner rollouts per iteration (spread round-robin over `tasks`)."""
    max_steps: int = 300
    """Step cap per rollout (the default eval suite's horizon); death also ends an episode."""
    stop_on_success: bool = False
    """End a rollout at the step its task's event fires. Off by default: the labeller keeps pursuing the task
    (achievements count every repeat). A rollout cut at an early success may be shorter than one training
    segment; the fine-tune keeps it (a DAgger store is an "intention" part: chunked from frame 0, a short
    episode padded and its padding masked out of the loss, see `aimc.data.dataset`)."""
    beta_schedule: Literal["constant", "linear", "exponential"] = "constant"
    """How β_k (probability of executing the expert's action instead of the learner's) changes with iteration
    k = 1..K: constant β0; linear max(0, β0 - beta_decay·(k-1)); exponential β0·beta_decay^(k-1)."""
    beta0: float = 0.0
    """β_1. 0 = the learner always acts (rung 3's pure DAgger); 1 with exponential decay = classic DAgger."""
    beta_decay: float = 0.5
    """Linear: β lost per iteration; exponential: factor per iteration (in [0, 1])."""
    cond_scale: float | None = None
    """Learner's classifier-free guidance scale during rollouts; None = each bundle's default."""
    planner: str | None = None
    """Prompt chaining of the learner during rollouts (`aimc.eval.planner`: "none", "chain", "chain-night",
    "chain-rest", "chain-prepare");
    None = the starting bundle's own (the shipped agent chains). Under a planner each labelled frame's goal is
    the sub-goal the learner was told at that step (what it will be told there at play time), and the final
    bundle keeps the planner."""
    demonstrator: dict[str, Any] = field(default_factory=dict)
    """DemonstratorConfig fields for the labeller over mode=task, noise_prob=0 (e.g. survival_in_task_mode)."""
    skip_explore: bool = False
    """Leave the steps where the labeller explores (no target known) out of the fine-tune's loss (their frames
    still feed the policy's memory). Where to look next is a choice the learner's own search makes as well, and
    the labeller's heading there is its own hidden state, so such labels contradict a policy that searches
    another way (`aimc train ppo`'s expert term leaves them out by default for the same reason)."""
    train_preset: str = "finetune"
    """Training preset (aimc.train presets) each iteration's fine-tune starts from."""
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields over `train_preset` (e.g. lr, segment.goal_source for the base data); DAgger sets
    out, data, init_from, embedder, policy, policy_overrides, seed and n_frames itself."""
    frames_per_iteration: int = 200_000
    """Fine-tune length per iteration in frames (TrainConfig.n_frames of each iteration's run)."""
    dagger_weight: float = 1.0
    """Share of training segments drawn from the DAgger stores (split evenly over iterations so far), relative
    to the base stores' weights."""
    final_rollouts: bool = True
    """After the last iteration, measure the final bundle with `episodes` pure-learner rollouts (β = 0)."""
    seed: int = 0
    """Seeds the worlds, the learner, the labeller, the β draws and each fine-tune."""
    workers: int = 1
    """Rollout worker processes (each loads the learner once)."""
    envs_per_worker: int = ENVS_PER_WORKER
    """Worlds each rollout worker plays in lockstep: its learner acts for all of them in one batched forward
    per step (the rollouts are bound by that forward, not by the world). Episodes do not depend on it."""
    device: str = "cpu"
    """torch device of the learner during rollouts (training picks its own through accelerate)."""
    precision: str = "fp32"
    """What the learner acts in during rollouts: "fp32", or "bf16" where the device computes it natively
    (`aimc.policy.Agent`; faster rollouts, slightly different actions)."""

    def __post_init__(self) -> None:
        check_tasks(self.tasks)
        for name in ("iterations", "episodes", "max_steps", "workers", "envs_per_worker", "frames_per_iteration"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.precision not in ACTING_PRECISIONS:
            raise ConfigError(f"precision must be {' or '.join(ACTING_PRECISIONS)}, got {self.precision!r}")
        if not 0.0 <= self.beta0 <= 1.0:
            raise ConfigError(f"beta0 must be in [0, 1], got {self.beta0}")
        if self.beta_decay < 0 or (self.beta_schedule == "exponential" and self.beta_decay > 1):
            raise ConfigError(f"beta_decay must be >= 0 (and <= 1 for the exponential schedule), got {self.beta_decay}")
        if self.dagger_weight <= 0:
            raise ConfigError(f"dagger_weight must be > 0, got {self.dagger_weight}")
        if self.cond_scale is not None and self.cond_scale < 0:
            raise ConfigError(f"cond_scale must be >= 0, got {self.cond_scale}")
        from aimc.eval.planner import check_planner

        check_planner(self.planner)
        for p in self.data:
            if not p.path:
                raise ConfigError("data: every base store needs a path")
        self.demonstrator = {**self.demonstrator}
        from aimc.envs.demo import DemonstratorConfig

        labeller = from_dict(DemonstratorConfig, demonstrator_options(self), where="demonstrator")
        if labeller.mode != "task":
            raise ConfigError("demonstrator: the DAgger labeller runs in task mode (mode: task)")
        check_train_section(self)


def demonstrator_options(cfg: DaggerConfig, planner: str | None = None) -> dict[str, Any]:
    """The labeller's DemonstratorConfig fields: task mode without action noise, then the run's options.

    Under `chain-prepare` (`planner`, else the run's) the labeller prepares for the night from the planner's
    `PREPARE_DAYLIGHT` instead of its own later default, so the labels of the steps where the learner is told
    to make the night's kit prepare too (a run's own `prepare_daylight` still wins)."""
    from aimc.eval.planner import PREPARE_DAYLIGHT

    base: dict[str, Any] = {"mode": "task", "noise_prob": 0.0}
    if (planner or cfg.planner) == "chain-prepare":
        base["prepare_daylight"] = PREPARE_DAYLIGHT
    return {**base, **cfg.demonstrator}


def demo_goal_label(demo_goals: str | None, planner: str) -> str:
    """The goal label task demonstrations record (`DemonstratorConfig.goal_label`) for a study played with
    `planner`: `demo_goals` when set, else "step" under a chain planner and "task" without one. A chaining
    agent is told "chop a tree" while it gathers wood for a pickaxe; demonstrations labelled with the task on
    every step would teach it the task's prompt for frames it never sees under that prompt."""
    if demo_goals is not None:
        return demo_goals
    return "task" if planner == "none" else "step"


def valid_tasks() -> list[str]:
    """Tasks DAgger can instruct: the demonstrator pursues them and the caption catalogue words them."""
    from aimc.embed.captions import INTENTIONS
    from aimc.envs.demo import TASKS

    return [t for t in TASKS if t in INTENTIONS]


def check_tasks(tasks: list[str]) -> None:
    """One line naming the valid tasks for an empty list or an unknown name."""
    valid = valid_tasks()
    if not tasks:
        raise ConfigError(f"tasks: give at least one task; valid tasks: {', '.join(valid)}")
    unknown = [t for t in tasks if t not in valid]
    if unknown:
        raise UnknownNameError(f"unknown task {unknown[0]!r}; valid tasks: {', '.join(valid)}")


def beta_at(cfg: DaggerConfig, k: int) -> float:
    """β_k for iteration k >= 1 (see `DaggerConfig.beta_schedule`)."""
    if k < 1:
        raise ConfigError(f"DAgger iterations count from 1, got {k}")
    if cfg.beta_schedule == "constant":
        return float(cfg.beta0)
    if cfg.beta_schedule == "linear":
        return float(max(0.0, cfg.beta0 - cfg.beta_decay * (k - 1)))
    return float(cfg.beta0 * math.pow(cfg.beta_decay, k - 1))


def check_train_section(cfg: DaggerConfig) -> None:
    """Reject a wrong or reserved key in `train` (and a bad preset) now, naming the key and the valid ones."""
    from aimc.train.config import PRESET_DIR as TRAIN_PRESETS
    from aimc.train.config import TrainConfig, preset_names

    if not isinstance(cfg.train, dict):
        raise ConfigError(f"train: expected a mapping of TrainConfig fields, got {cfg.train!r}")
    path = TRAIN_PRESETS / f"{cfg.train_preset}.yaml"
    if not path.is_file():
        raise UnknownNameError(f"train_preset: unknown training preset {cfg.train_preset!r}; available: {', '.join(preset_names())}")
    valid = sorted(f.name for f in fields(TrainConfig) if f.init and f.name not in TRAIN_RESERVED)
    taken = sorted(set(cfg.train) & set(TRAIN_RESERVED))
    if taken:
        raise ConfigError(f"train: {taken} cannot be set here, DAgger sets them for each iteration; valid keys: {valid}")
    unknown = sorted(set(cfg.train) - set(valid))
    if unknown:
        raise ConfigError(f"train: unknown key(s) {unknown}; valid keys: {valid}")
    merged = deep_merge(load_yaml(path), cfg.train)
    try:
        from_dict(TrainConfig, merged, where="train")
    except (ConfigError, UnknownNameError) as e:
        raise type(e)(str(e) if str(e).startswith("train") else f"train: {e}") from None


def preset_names() -> list[str]:
    """DAgger presets: the folder's YAML files except the PPO ones (`ppo-*`, `aimc.finetune.ppo_config`) and the
    studies' (`study-*`, `aimc.finetune.study_config`; `methods-*`, `aimc.finetune.methods_config`)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if not p.stem.startswith(("ppo-", "study-", "methods-")))


def load_dagger_config(preset: str | None = None, overrides: list[str] | None = None, **fields_: Any) -> DaggerConfig:
    """Defaults <- preset YAML (a name in presets/ or a .yaml path) <- `fields_` (CLI flags) <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        layers.append(preset_path(preset, PRESET_DIR, preset_names(), "DAgger"))
    layers.append({k: v for k, v in fields_.items() if v is not None})
    return build_config(DaggerConfig, *layers, overrides=overrides)
