"""`TrainConfig`: every setting of a STEVE-1-style BC run; defaults are the reference recipe.

Presets (``presets/<name>.yaml``) are merged over these defaults and ``--set key=value`` overrides last;
the resolved config is written to ``<out>/train_config.json`` and reloaded on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from aimc.core.config import build_config
from aimc.core.errors import ConfigError, UnknownNameError
from aimc.data.config import SegmentConfig
from aimc.train.bundle import DEFAULT_COND_SCALE

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class DataPart:
    """One episode store of a mixture and its share of the samples."""

    path: str = ""
    """Episode-store directory."""
    weight: float = 1.0
    """Relative share of the training segments drawn from this store."""
    goal_source: str | None = None
    """This store's goal source, overriding `segment.goal_source` (None = the run's). DAgger stores use
    "intention": their recorded goal is the instructed task, and they need no visual embeddings."""
    max_episodes: int | None = None
    """Use only the store's first this-many episodes (in name order, i.e. collection order; None = all), so
    a data-efficiency study trains on N demonstrations of one pool and larger N contain the smaller ones."""

    def __post_init__(self) -> None:
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ConfigError(f"data max_episodes must be >= 1 (or null for all), got {self.max_episodes}")
        if self.goal_source not in (None, "visual", "event_text", "intention"):
            raise ConfigError(f"data goal_source must be 'visual', 'event_text', 'intention' or null, got {self.goal_source!r}")


@dataclass
class TrainConfig:
    """A behaviour-cloning run (unconditional or goal-conditioned), STEVE-1 defaults."""

    out: str = "runs/policy"
    """Run directory: checkpoints/, best/, tensorboard/, train_config.json, bundle."""
    data: list[DataPart] = field(default_factory=list)
    """Training stores; several = a weighted mixture (the `mixed` preset's 70/30)."""
    val_fraction: float = 0.1
    """Share of each store's episodes held out for validation (seeded split by episode)."""
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    """Segment length, goal gaps, p_uncond and which embeddings to relabel from."""
    fixed_prompt: str | None = None
    """fixed-prompt mode: this text's embedding (from `embedder`) conditions every frame."""
    embedder: str | None = None
    """Embedder (saved dir or registered name) whose space the goals live in; copied into the bundle."""
    cond_scale: float = DEFAULT_COND_SCALE
    """Classifier-free guidance scale written into the agent bundle as its default (eval and play may override)."""
    policy: str = "crafter-small"
    """Policy preset name (aimc.policy.vpt presets)."""
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    """VPTConfig fields changed from the preset (goal_dim is set from the data)."""
    init_from: str | None = None
    """Start from this policy (a saved policy dir, a run dir or an agent bundle); None = from scratch."""
    anchor_kl: float = 0.0
    """Weight of a KL anchor: the mean per-step KL(π_anchor ‖ π) on the training segments themselves, added to the
    NLL. A fine-tune of a policy trained past imitation (PPO) is pulled back toward the demonstrator's actions
    by BC alone and loses what RL taught it (measured: docs/task-finetune.md); the anchor keeps it near the
    policy it starts from where the demonstrations do not say otherwise, as PPO's own KL anchor does. 0 = off."""
    anchor_from: str | None = None
    """The anchor policy (a policy dir, a run dir or a bundle with the same architecture); None = init_from."""
    trunc_t: int = 64
    """Truncated-BPTT chunk length; the recurrent state is carried (detached) between chunks."""
    batch_size: int = 12
    """Segments per process per batch."""
    grad_accum: int = 4
    """Chunk micro-steps per optimiser step."""
    lr: float = 4e-5
    """Peak learning rate."""
    weight_decay: float = 0.039428
    """AdamW decay for weights (not biases or LayerNorm weights)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    grad_clip: float = 5.0
    """Max global grad norm (0 = off)."""
    n_frames: int = 100_000_000
    """Training length in frames processed (micro-steps x trunc_t x batch x processes)."""
    warmup_frames: int = 10_000_000
    """Linear warmup length in frames; then cosine that reaches 0 at 1.1 x n_frames."""
    camera_mask: bool = False
    """Minecraft: drop the camera term where the label's button combo has the camera off."""
    mixed_precision: Literal["no", "bf16"] = "bf16"
    """bf16 autocast of the training step on a GPU, and on a CPU that computes bf16 natively (AMX or AVX-512
    BF16: about twice the fp32 speed there); other CPUs train in fp32 whatever this says
    (`aimc.core.precision`). Validation always runs in fp32."""
    num_workers: int = 2
    """DataLoader worker processes decoding segments."""
    frame_cache: str | None = ""
    """Decoded-frame cache dir ('' = <out>/frame_cache, None = decode on every read)."""
    val_every: int = 100
    """Optimiser steps between validations (0 = never)."""
    val_segments: int = 64
    """Validation segments (evenly spread over the val split)."""
    save_every: int = 100
    """Optimiser steps between resumable checkpoints (written at the next full-accumulation batch end)."""
    keep_checkpoints: int = 2
    """Older step checkpoints are deleted beyond this many."""
    log_every: int = 10
    """Optimiser steps between TensorBoard scalars."""
    seed: int = 42
    """Seeds the model init, the split, the sample order and every relabelling draw."""

    def __post_init__(self) -> None:
        for name in ("trunc_t", "batch_size", "grad_accum", "n_frames", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.segment.segment_len % self.trunc_t:
            raise ConfigError(f"segment.segment_len ({self.segment.segment_len}) must be a multiple of trunc_t ({self.trunc_t})")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.cond_scale < 0:
            raise ConfigError(f"cond_scale must be >= 0, got {self.cond_scale}")
        if self.anchor_kl < 0:
            raise ConfigError(f"anchor_kl must be >= 0 (0 = off), got {self.anchor_kl}")
        if self.anchor_kl > 0 and not (self.anchor_from or self.init_from):
            raise ConfigError("anchor_kl needs a policy to anchor to: set init_from or anchor_from")
        if self.fixed_prompt is not None and not self.embedder:
            raise ConfigError("fixed_prompt needs `embedder` (the model that embeds the prompt)")
        self._check_policy()

    def _check_policy(self) -> None:
        """A wrong preset or override name fails here, not after the data is indexed (the config has no torch)."""
        from aimc.policy.vpt.config import PRESETS, VPTConfig

        if self.policy not in PRESETS:
            raise UnknownNameError(f"policy: unknown preset {self.policy!r}; available: {', '.join(sorted(PRESETS))}")
        valid = sorted(f.name for f in fields(VPTConfig))
        unknown = sorted(set(self.policy_overrides) - set(valid))
        if unknown:
            raise ConfigError(f"policy_overrides: unknown key(s) {unknown}; valid keys: {valid}")

    def goal_sources(self) -> set[str]:
        """Every goal source the run's data uses: `segment.goal_source` plus the stores' overrides."""
        return {self.segment.goal_source, *(p.goal_source for p in self.data if p.goal_source is not None)}

    @property
    def chunks_per_segment(self) -> int:
        return self.segment.segment_len // self.trunc_t

    def resolved_frame_cache(self) -> str | None:
        if self.frame_cache == "":
            return str(Path(self.out) / "frame_cache")
        return self.frame_cache


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_train_config(
    preset: str | None = None, overrides: list[str] | None = None, **fields: Any
) -> TrainConfig:
    """Defaults <- preset YAML <- `fields` (CLI flags) <- `key=value` overrides."""
    layers: list[Any] = []
    if preset is not None:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise UnknownNameError(f"unknown training preset {preset!r}; available: {', '.join(preset_names())}")
        layers.append(path)
    layers.append({k: v for k, v in fields.items() if v is not None})
    return build_config(TrainConfig, *layers, overrides=overrides)
