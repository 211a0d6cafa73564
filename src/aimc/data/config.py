"""`SegmentConfig`: what one training item is. Kept apart from `dataset.py` (which imports torch) so a
pipeline config can be validated without the training stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from aimc.core.errors import ConfigError
from aimc.data.relabel import check_goal_gaps


@dataclass
class SegmentConfig:
    """What one training item is; defaults are STEVE-1's (T=640 is for Minecraft; Crafter presets use less)."""

    segment_len: int = 640
    """T: frames per segment."""
    min_btwn_goals: int = 15
    """Smallest gap between goal timesteps (inclusive)."""
    max_btwn_goals: int = 200
    """Largest gap between goal timesteps (exclusive)."""
    p_uncond: float = 0.1
    """Probability that a whole segment gets the zero (unconditional) goal."""
    embed_name: str | None = None
    """Goal embeddings to relabel from (`embeds_<name>.npy`); None = unconditional BC (no goal input)."""
    goal_anchor: str = "random"
    """"random": STEVE-1's goal timesteps. "events": a timestep's goal is the clip ending just after its next
    event (within max_btwn_goals), else the random one (see aimc.data.relabel)."""
    anchor_ignore: tuple[str, ...] = ("take_damage", "death")
    """Events that are not goal anchors with goal_anchor=events."""
    goal_source: str = "visual"
    """Where goals come from. "visual": STEVE-1's hindsight clip embeddings (`embed_name`). "event_text": the
    text embedding of a paraphrase of an event later in the episode, on `text_fraction` of the segments (the
    rest visual; timesteps with no event within `text_horizon` keep their visual goal). "intention": the text
    embedding of the demonstrator's recorded sub-goal (`infos[t]["goal"]`), an upper bound for goal quality.
    Text goals need the trainer's text goal table (see aimc.data.text_goals)."""
    text_fraction: float = 1.0
    """With goal_source=event_text: probability that a segment uses text goals (one draw per segment)."""
    text_horizon: int = 200
    """With goal_source=event_text: an event is a goal for timesteps at most this many steps before it."""
    p_later_event: float = 0.3
    """With goal_source=event_text: probability that a stretch's goal is a later event, not the next one."""
    intention_interrupts: list[str] = field(default_factory=list)
    """With goal_source=intention: recorded sub-goals that interrupt an instruction rather than being one (the
    demonstrator's survival behaviours). Their steps take the instruction they interrupt (see
    `aimc.data.text_goals.intention_targets`); empty = every recorded name is its own goal."""
    dart_labels: bool = True
    """Train on the recorded DART labels (``infos[t]["label"]``: what the expert chose where noise executed
    another action) instead of the executed action, so injected noise widens the states seen without
    teaching the noise. Episodes without labels train on their actions either way."""

    def __post_init__(self) -> None:
        if self.segment_len < 1:
            raise ConfigError(f"segment_len must be >= 1, got {self.segment_len}")
        check_goal_gaps(self.min_btwn_goals, self.max_btwn_goals)
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ConfigError(f"p_uncond must be in [0, 1], got {self.p_uncond}")
        if self.goal_anchor not in ("random", "events"):
            raise ConfigError(f"goal_anchor must be 'random' or 'events', got {self.goal_anchor!r}")
        self.anchor_ignore = tuple(self.anchor_ignore)
        if self.goal_source not in ("visual", "event_text", "intention"):
            raise ConfigError(f"goal_source must be 'visual', 'event_text' or 'intention', got {self.goal_source!r}")
        if not 0.0 <= self.text_fraction <= 1.0:
            raise ConfigError(f"text_fraction must be in [0, 1], got {self.text_fraction}")
        if not 0.0 <= self.p_later_event <= 1.0:
            raise ConfigError(f"p_later_event must be in [0, 1], got {self.p_later_event}")
        if self.text_horizon < 1:
            raise ConfigError(f"text_horizon must be >= 1, got {self.text_horizon}")
