"""`EvalConfig`: one `aimc eval tasks` run. Its defaults are the CLI's, and the pipeline's `eval` section is a
partial override of it, so the two cannot drift. No torch or world import here: a pipeline config is checked
against this class when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimc.core.errors import ConfigError
from aimc.core.precision import ACTING_PRECISIONS

BASELINES = ("unconditional", "demonstrator", "random")
"""Baseline conditions `run_eval` knows (docs/evaluation.md)."""
BACKENDS = ("process", "ray")


@dataclass
class EvalConfig:
    """A task-suite evaluation of an agent bundle and baselines; `run_eval(cfg)` runs it."""

    checkpoint: str | None = None
    """Agent bundle directory (bundle.json + policy/ ...); None = baselines only."""
    suite: str | None = None
    """Task-suite YAML; None = the bundled Crafter suite."""
    tasks: list[str] = field(default_factory=list)
    """Task names to run, in this order; empty = every task of the suite."""
    episodes: int | None = None
    """Episodes per task and condition; None = the suite's `episodes`."""
    max_steps: int | None = None
    """Horizon of every task; None = each task's own `max_steps`."""
    cfg_scales: list[float] = field(default_factory=list)
    """Extra guidance scales for the CFG sweep (the bundle's own scale always runs, as `agent`)."""
    baselines: list[str] = field(default_factory=lambda: ["unconditional", "demonstrator"])
    """Any of unconditional (zero goal; needs a checkpoint, dropped without one), demonstrator, random."""
    videos: int = 3
    """Tasks whose first episode (of the first prompted condition) is recorded and embedded in the report."""
    use_prior: bool | None = None
    """Force the bundle's text->goal prior on or off; None = use it when the bundle has one."""
    goal_source: str | None = None
    """How prompts become goals: "text" (the embedder's text side), "prior" (the bundle's goal predictor) or a
    saved predictor directory (`aimc train prior`, cvae or aligner); None = the bundle's default."""
    planner: str | None = None
    """Prompt chaining (`aimc.eval.planner`): "chain" (sub-instructions from the world's recipe table), "none"
    (the prompt on every step), or None = the bundle's setting (the shipped agent's is "chain")."""
    temperature: float | None = None
    """Sampling temperature of the agent's actions (`aimc.policy.Agent`: scores divided by it before sampling);
    None = the bundle's setting (1 when it has none)."""
    precision: str = "fp32"
    """What the agent's policy acts in: "fp32", or "bf16" (autocast where the device computes bf16 natively:
    a GPU, or a CPU with AMX / AVX-512 BF16; fp32 elsewhere). bf16 acts about 1.3x faster on such a CPU and
    moves the action probabilities slightly, so results are comparable only at one precision."""
    workers: int = 2
    """Parallel env worker processes (0 = in this process)."""
    envs_per_worker: int = 16
    """Envs each worker steps in lockstep, acting for all of them in one batched policy call (the same results
    as 1, faster: benchmarks/bench_rollout.py)."""
    backend: str = "process"
    """Rollout backend: process (multiprocessing) or ray."""
    episode_timeout: float = 600.0
    """Seconds before a silent worker is killed and its episode retried."""
    seed: int = 0
    """Seed for agent sampling (the worlds come from the suite's seeds, so conditions share them)."""
    device: str = "cpu"
    """torch device for the agent."""
    out: str = "runs/eval_tasks"
    """Output directory: report.json, report.html, videos/, eval_config.json."""

    def __post_init__(self) -> None:
        for name in ("episodes", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 (or null for the suite's), got {value}")
        if self.goal_source is not None and self.use_prior is not None:
            raise ConfigError("give --goal-source or --use-prior/--no-prior, not both (--goal-source prior/text says the same)")
        if self.planner is not None:
            from aimc.eval.planner import PLANNER_NAMES

            if self.planner not in PLANNER_NAMES:
                raise ConfigError(f"planner: unknown planner {self.planner!r}; choose one of: {', '.join(PLANNER_NAMES)}")
        if self.goal_source is not None and not self.goal_source.strip():
            raise ConfigError("goal_source is empty; use text, prior or a predictor directory")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (1 = plain sampling), got {self.temperature}")
        if self.precision not in ACTING_PRECISIONS:
            raise ConfigError(f"precision must be {' or '.join(ACTING_PRECISIONS)}, got {self.precision!r}")
        if self.envs_per_worker < 1:
            raise ConfigError(f"envs_per_worker must be >= 1, got {self.envs_per_worker}")
        for name in ("videos", "workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.episode_timeout <= 0:
            raise ConfigError(f"episode_timeout must be > 0 seconds, got {self.episode_timeout}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown rollout backend {self.backend!r}; choose {' or '.join(BACKENDS)}")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ConfigError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
