"""VPT network configuration and presets (official 1x/2x/3x, STEVE-1, and small ones for Crafter/tests)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from aimc.core.config import from_dict, to_dict
from aimc.core.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class VPTConfig:
    """Every architectural choice of the VPT policy (``lib/policy.py: MinecraftAgentPolicy``).

    Image pipeline: ``img_shape`` (H, W) uint8 RGB -> ImpalaCNN with channels ``impala_width * impala_chans``
    and ``impala_nblock`` residual blocks per stack -> dense (``cnn_outsize``) -> linear (``hidsize``).
    Transformer: ``n_layers`` blocks, ``heads`` heads, ``memory`` = frames each query sees incl. itself
    (official ``attention_memory_size - timesteps`` = 256 - 128 = 128).
    ``goal_dim`` > 0 adds ``net.mineclip_embed_linear`` (STEVE-1); ``pre_lstm_ln`` adds a LayerNorm after
    the goal add (off in every released model). Heads: ``"vpt"`` = camera 121 + buttons 8641, or
    ``"categorical"`` with ``n_actions`` (Crafter: 17). ``temperature`` divides logits before log-softmax.
    ``first_mode``: ``"per_step"`` honours ``first`` at any timestep (identical to the official code when
    ``first`` is only set at chunk starts); ``"chunk_start"`` reproduces the official behaviour of reading
    only ``first[:, 0]``.
    """

    img_shape: tuple[int, int] = (128, 128)
    impala_width: int = 4
    impala_chans: tuple[int, ...] = (16, 32, 32)
    impala_nblock: int = 2
    cnn_outsize: int = 256
    hidsize: int = 1024
    heads: int = 8
    n_layers: int = 4
    memory: int = 128
    pointwise_ratio: int = 4
    goal_dim: int = 0
    pre_lstm_ln: bool = False
    goal_norm: Literal["none", "unit_variance"] = "none"
    """How the goal vector is scaled before `mineclip_embed_linear` (no parameters either way). "none" = STEVE-1.
    "unit_variance" rescales each goal to norm sqrt(goal_dim) (zero goals stay zero), so a unit-norm embedding
    reaches the image features at a comparable scale instead of ~1/sqrt(D) of it (training-notes lesson 1)."""
    action_head: Literal["vpt", "categorical"] = "vpt"
    n_actions: int = 17
    temperature: float = 2.0
    first_mode: Literal["per_step", "chunk_start"] = "per_step"
    recurrence_type: Literal["transformer", "lstm"] = "transformer"
    """The recurrent core of each block. "transformer" = VPT's released models (memory = ``memory`` frames).
    "lstm" replaces the attention by a one-layer LSTM of width ``hidsize`` with the block input added back
    (VPT's code adds ``x`` for its LSTM recurrence types too): its memory is the whole episode, not a window,
    which a policy needs when the expert it imitates walks back to things it saw hundreds of steps ago. No
    released model uses it, so it has no official ``.model`` export; ``heads`` and ``memory`` are unused."""

    def __post_init__(self) -> None:
        if self.hidsize % self.heads:
            raise ConfigError(f"hidsize {self.hidsize} is not divisible by heads {self.heads}")
        if self.memory < 1:
            raise ConfigError("memory must be >= 1 frame")
        if min(self.img_shape) < 1 or len(self.img_shape) != 2:
            raise ConfigError(f"img_shape must be (H, W), got {self.img_shape}")
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0")
        if self.goal_dim < 0:
            raise ConfigError("goal_dim must be >= 0 (0 = no goal input)")
        if self.recurrence_type not in ("transformer", "lstm"):
            raise ConfigError(f"unknown recurrence_type {self.recurrence_type!r}; valid: transformer, lstm")
        if self.action_head == "categorical" and self.n_actions < 2:
            raise ConfigError("categorical head needs n_actions >= 2")

    @property
    def chans(self) -> tuple[int, ...]:
        return tuple(int(self.impala_width * c) for c in self.impala_chans)

    @property
    def head_dim(self) -> int:
        return self.hidsize // self.heads

    @property
    def cnn_out_shape(self) -> tuple[int, int, int]:
        h, w = self.img_shape
        for _ in self.chans:
            h, w = (h + 1) // 2, (w + 1) // 2
        return (self.chans[-1], h, w)

    @property
    def head_sizes(self) -> dict[str, int]:
        if self.action_head == "vpt":
            return {"camera": 121, "buttons": 8641}
        return {"action": self.n_actions}

    def replace(self, **changes: Any) -> VPTConfig:
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as e:
            valid = sorted(f.name for f in dataclasses.fields(self))
            raise ConfigError(f"{e}; valid keys: {valid}") from None

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VPTConfig:
        return from_dict(cls, data, where="vpt config")

    def official_kwargs(self) -> dict[str, Any]:
        """The ``.model`` ``net.args`` that build this architecture with OpenAI's code."""
        if self.recurrence_type != "transformer":
            raise ConfigError(f"recurrence_type {self.recurrence_type!r} has no official .model form (transformer only)")
        return {
            "attention_heads": self.heads,
            "attention_mask_style": "clipped_causal",
            "attention_memory_size": self.memory + 128,
            "diff_mlp_embedding": False,
            "hidsize": self.hidsize,
            "img_shape": [*self.img_shape, 3],
            "impala_chans": list(self.impala_chans),
            "impala_kwargs": {"post_pool_groups": 1},
            "impala_width": self.impala_width,
            "init_norm_kwargs": {"batch_norm": False, "group_norm_groups": 1},
            "n_recurrence_layers": self.n_layers,
            "only_img_input": True,
            "pointwise_ratio": self.pointwise_ratio,
            "pointwise_use_activation": False,
            "recurrence_is_residual": True,
            "recurrence_type": "transformer",
            "timesteps": 128,
            "use_pointwise_layer": True,
            "use_pre_lstm_ln": self.pre_lstm_ln,
        }


_VPT = VPTConfig()
_CRAFTER = VPTConfig(
    img_shape=(64, 64),
    impala_width=1,
    impala_chans=(16, 32, 32),
    impala_nblock=2,
    cnn_outsize=256,
    hidsize=256,
    heads=4,
    n_layers=2,
    memory=64,
    goal_dim=512,
    action_head="categorical",
    n_actions=17,
    temperature=1.0,
    goal_norm="unit_variance",
)
PRESETS: dict[str, VPTConfig] = {
    "vpt-1x": _VPT,
    "vpt-2x": _VPT.replace(impala_width=8, hidsize=2048, heads=16),
    "vpt-3x": _VPT.replace(impala_width=12, hidsize=3072, heads=24),
    # STEVE-1 = VPT 2x + Linear(512 -> 2048) goal input.
    "steve1": _VPT.replace(impala_width=8, hidsize=2048, heads=16, goal_dim=512),
    # Crafter: 64x64 frames, Impala 16/32/32, ~1.9 M parameters, trains at a few hundred frames/s on 2 cores.
    "crafter-small": _CRAFTER,
    # Crafter with an LSTM core: the same image and goal input, one residual LSTM block whose memory is the whole
    # episode (the transformer's is 64 frames). Train it on long segments (train preset `instruct-lstm`).
    "crafter-lstm": _CRAFTER.replace(n_layers=1, memory=1, recurrence_type="lstm"),
    # Unit tests: a few thousand parameters, but every code path of the big models.
    "test-tiny": VPTConfig(
        img_shape=(16, 16),
        impala_width=1,
        impala_chans=(4, 8, 8),
        impala_nblock=2,
        cnn_outsize=16,
        hidsize=32,
        heads=4,
        n_layers=2,
        memory=6,
        pointwise_ratio=2,
        goal_dim=0,
        action_head="vpt",
        temperature=2.0,
    ),
}


def get_config(name: str, **overrides: Any) -> VPTConfig:
    """A preset by name with field overrides, e.g. ``get_config("crafter-small", goal_dim=10)``."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown policy preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


def preset_name(config: VPTConfig) -> str | None:
    """The preset this config equals, if any."""
    for name, cfg in PRESETS.items():
        if cfg == config:
            return name
    return None
