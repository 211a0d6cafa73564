"""Pipeline config: one section per stage, each passed to that stage's own config (which validates it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimc.core.config import build_config
from aimc.core.errors import ConfigError, UnknownNameError

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class PipelineConfig:
    """The whole recipe; sections hold overrides for each stage's config (see docs/pipeline.md)."""

    out: str = "runs/crafter-small"
    """Run directory: data/, embedder/, pretrain/, goal/, prior/, bundle/, eval/, stages/, summary.json."""
    seed: int = 0
    """Seed for every stage (each derives its own)."""
    workers: int = 2
    """Worker processes for collection and evaluation."""
    device: str = "cpu"
    """torch device for training and evaluation ('cuda' on a GPU machine)."""
    embed_name: str = "videotext"
    """Name of the per-episode goal embeddings (embeds_<name>.npy)."""
    collect: dict[str, Any] = field(default_factory=lambda: {"episodes": 100, "max_steps": 1000})
    """aimc.data.collect.CollectConfig fields (agent is the demonstrator)."""
    embedder: dict[str, Any] = field(default_factory=lambda: {"steps": 600})
    """aimc.embed.train.EmbedderTrainConfig fields."""
    pretrain: dict[str, Any] = field(default_factory=dict)
    """aimc.train.TrainConfig fields over the `pretrain` preset (unconditional BC)."""
    goal: dict[str, Any] = field(default_factory=dict)
    """aimc.train.TrainConfig fields over the `goal` preset (initialised from pretrain)."""
    prior: dict[str, Any] = field(default_factory=lambda: {"epochs": 50})
    """aimc.prior.train.PriorTrainConfig fields."""
    eval: dict[str, Any] = field(default_factory=lambda: {"episodes": 10})
    """Evaluation: episodes, max_steps, tasks (list), cfg_scales (list), baselines (list), videos, suite."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be positive, got {self.workers}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        unknown = sorted(set(self.eval) - {"episodes", "max_steps", "tasks", "cfg_scales", "baselines", "videos",
                                           "suite", "episode_timeout"})
        if unknown:
            raise ConfigError(f"eval section: unknown key(s) {unknown}")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_pipeline_config(preset: str | None, overrides: list[str] | None = None, **fields: Any) -> PipelineConfig:
    """Defaults <- preset YAML <- CLI fields <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        path = Path(preset) if preset.endswith((".yaml", ".yml")) else PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise UnknownNameError(f"unknown pipeline preset {preset!r}; available: {', '.join(preset_names())}")
        layers.append(path)
    layers.append({k: v for k, v in fields.items() if v is not None})
    return build_config(PipelineConfig, *layers, overrides=overrides)
