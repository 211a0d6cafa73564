"""`MethodsConfig`: design note 004's ways of fine-tuning a goal-conditioned policy on one task, and how the
study measures each one's gain on that task and its forgetting on the rest of the suite.

Torch-free, so an unknown method, a missing store or a typo in the training section fails in a fraction of a
second, before anything is collected or trained. Presets are ``presets/methods-<name>.yaml`` merged over the
defaults; CLI flags and ``--set key=value`` come last. The resolved config is saved as
``<out>/methods_config.json`` and wins on resume (only `RESUMABLE` fields may change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc.core.config import build_config, from_dict, preset_path
from aimc.core.errors import ConfigError, UnknownNameError

PRESET_DIR = Path(__file__).parent / "presets"
PRESET_PREFIX = "methods-"
CONFIG_FILE = "methods_config.json"
RESUMABLE = ("methods", "eval_workers", "threads")
"""Fields a resumed study may change: which methods run (new ones run, finished ones are kept) and how many
processes and threads do the work (no number depends on them)."""
METHODS = ("relabel", "fixed", "mixed", "progressive", "joint")
METHOD_TITLES = {
    "relabel": "continued hindsight relabelling",
    "fixed": "fixed instruction",
    "mixed": "mixed data (task + original)",
    "progressive": "progressive (second task, then target)",
    "joint": "multi-task joint (target + second task)",
}
NEEDS_SECOND = ("progressive", "joint")
TASK_GOALS = ("intention", "event_text")


@dataclass
class MethodsConfig:
    """One methods study: task demonstrations of the target (and a second) task, then for every method a
    fine-tune of the pretrained goal policy, and every policy (the pretrained one included) evaluated on the
    whole suite, so each method's gain on the target and its loss on the other tasks are measured alike."""

    out: str = "runs/methods"
    """Study directory: methods_config.json, demos/<task>/, runs/<method>/, evals/<name>/, stages/, methods.json,
    methods.md, plots/, report.html."""
    task: str = "collect_coal"
    """The target: a demonstrator task (as `aimc collect --task`) whose suite task the pretrained agent does poorly."""
    second_task: str = "place_stone"
    """The other task of the progressive and joint methods (progressive trains it first, then the target)."""
    suite: str = ""
    """Task suite for every evaluation; empty = the bundled Crafter suite. Both tasks must be in it."""
    pretrained: str = ""
    """Agent bundle to fine-tune (its policy and embedder); empty = the shipped agent."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Which of note 004's methods to run: "relabel" (task data, every step's goal relabelled in hindsight to the
    text of a later event), "fixed" (task data, one instruction on every frame), "mixed" (task data and the
    `original` store, `original_share` of the samples from the latter), "progressive" (the second task's data,
    then the target's, two fine-tunes in a row) and "joint" (both tasks' data in one fine-tune)."""
    demos: int = 100
    """Task demonstrations per task (the demonstrator in task mode, each ending at the task's success)."""
    demo_max_steps: int = 500
    """Step cap of a task demonstration."""
    collect_workers: int = 1
    """Processes collecting the demonstrations."""
    task_goals: str = "intention"
    """The goal of a task demonstration's frames in the mixed, progressive and joint methods: "intention" (the
    instruction the demonstrator followed, a random paraphrase per stretch) or "event_text" (hindsight event
    text, as the relabel method)."""
    fixed_prompt: str = ""
    """The fixed method's instruction; empty = the suite target task's first prompt (for the bundled suite, the
    canonical wording of its success event)."""
    original: str = ""
    """Episode store of general (not task) data for the mixed method, e.g. the pretrained agent's training data;
    required when "mixed" runs."""
    original_share: float = 0.3
    """Share of the mixed method's training samples drawn from `original` (the note's 70 % task / 30 % original)."""
    original_goals: str = "intention"
    """Goal source of the `original` store's frames: the one the pretrained agent was trained with."""
    train_preset: str = "finetune"
    """Training preset (aimc.train presets) of every fine-tune; `train` overrides it."""
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields over `train_preset` for every fine-tune (lr, segment, n_frames, batch, ...); the study
    sets out, data, init_from, embedder, policy, policy_overrides, fixed_prompt and seed itself."""
    eval_episodes: int = 40
    """Evaluation episodes per suite task (the suite's worlds, disjoint from every training world; the same worlds
    for every policy, so differences are paired)."""
    eval_max_steps: int | None = None
    """Evaluation horizon; None = each suite task's."""
    eval_workers: int = 2
    """Evaluation worker processes (0 = in this process)."""
    threads: int = 0
    """torch CPU threads for the whole study (0 = torch's default). When set, the fine-tunes also decode their
    segments in the training process (num_workers 0), so the study stays on that many cores."""
    device: str = "cpu"
    """torch device for evaluation (training picks its own through accelerate)."""
    planner: str | None = None
    """Prompt chaining (`aimc.eval.planner`) of every evaluation, the pretrained agent's and each method's;
    None = the pretrained bundle's own (the shipped agent chains), so the fine-tunes are played as it is."""
    demo_goals: str | None = None
    """The goal recorded on each demonstration step (`DemonstratorConfig.goal_label`): "task" the task on every
    step, "step" the planner step each action serves (collect_wood, place_table, ... then the task). None =
    "step" when the study plays with a chain planner (the sub-instructions the agent is told then), else "task"."""
    demonstrator: dict[str, Any] = field(default_factory=dict)
    """DemonstratorConfig fields for the task demonstrations (e.g. `pocket_shelter: true`, `noise_prob: 0`), so a
    study can ask whether another demonstrated behaviour is easier to learn; the study sets the task, task mode
    and `goal_label` (`demo_goals`) itself."""
    seed: int = 0
    """Seeds the demonstrations, every fine-tune and the evaluation's sampling."""

    def __post_init__(self) -> None:
        from aimc.eval.planner import check_planner
        from aimc.finetune.config import valid_tasks

        check_planner(self.planner)
        if self.demo_goals not in (None, "task", "step"):
            raise ConfigError(f"demo_goals must be 'task' or 'step' (or unset: by the planner), got {self.demo_goals!r}")
        for name in ("task", "second_task"):
            if getattr(self, name) not in valid_tasks():
                raise UnknownNameError(f"{name}: unknown task {getattr(self, name)!r}; valid tasks: {', '.join(valid_tasks())}")
        if not self.methods:
            raise ConfigError(f"methods: give at least one of {', '.join(METHODS)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise UnknownNameError(f"methods: unknown {bad[0]!r}; valid: {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods: {self.methods} lists a method twice")
        if self.second_task == self.task and any(m in NEEDS_SECOND for m in self.methods):
            raise ConfigError(f"second_task is the target task ({self.task}); the progressive and joint methods "
                              "need another task (--second-task)")
        if "mixed" in self.methods and not self.original:
            raise ConfigError("the mixed method needs `original`, an episode store of general data (e.g. the "
                              "pretrained agent's training data): --original DIR, or drop mixed from --method")
        for name in ("task_goals", "original_goals"):
            if getattr(self, name) not in TASK_GOALS:
                raise ConfigError(f"{name} must be one of {', '.join(TASK_GOALS)}, got {getattr(self, name)!r}")
        if not 0.0 < self.original_share < 1.0:
            raise ConfigError(f"original_share must be in (0, 1), got {self.original_share}")
        for name in ("demos", "demo_max_steps", "collect_workers", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_workers < 0:
            raise ConfigError(f"eval_workers must be >= 0 (0 = in this process), got {self.eval_workers}")
        if self.eval_max_steps is not None and self.eval_max_steps < 1:
            raise ConfigError(f"eval_max_steps must be >= 1, got {self.eval_max_steps}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not isinstance(self.train, dict):
            raise ConfigError(f"train: expected a mapping of settings, got {self.train!r}")
        if not isinstance(self.demonstrator, dict):
            raise ConfigError(f"demonstrator: expected a mapping of settings, got {self.demonstrator!r}")
        taken = sorted(set(self.demonstrator) & {"task", "mode", "goal_label"})
        if taken:
            raise ConfigError(f"demonstrator: the study sets {taken} itself (task: --task, goal_label: demo_goals); "
                              "remove them from the demonstrator section")
        from aimc.envs.demo import DemonstratorConfig

        from_dict(DemonstratorConfig, {"mode": "task", "task": self.task, **self.demonstrator}, where="demonstrator")

    @property
    def tasks(self) -> list[str]:
        """The demonstrator tasks whose demonstrations the chosen methods need."""
        second = any(m in NEEDS_SECOND for m in self.methods)
        return [self.task, self.second_task] if second else [self.task]


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob(f"{PRESET_PREFIX}*.yaml"))


def load_methods_config(preset: str | None = None, overrides: list[str] | None = None, **fields_: Any) -> MethodsConfig:
    """Defaults <- preset YAML (a name in presets/ or a .yaml path) <- `fields_` (CLI flags) <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        layers.append(preset_path(preset, PRESET_DIR, preset_names(), "methods"))
    layers.append({k: v for k, v in fields_.items() if v is not None})
    return build_config(MethodsConfig, *layers, overrides=overrides)
