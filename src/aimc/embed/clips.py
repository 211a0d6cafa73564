"""Auto-captioned 16-frame clips cut from an episode store (training and evaluation data for embedders).

A clip *ends at an event*: frame t is the observation before action t, so the effect of the event fired
by action t is first visible in frame t+1, and the clip is frames t-14..t+1. Its label is the event
(`captions.caption_event`). "Nothing" clips are windows in which no captionable event fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError, EpisodeError
from aimc.data.index import Skipped
from aimc.data.store import Episode
from aimc.embed.base import WINDOW
from aimc.embed.captions import NOTHING, caption_event


@dataclass
class ClipSet:
    """Clips in memory: frames uint8 (N, 16, H, W, 3), event labels (N,), and where each came from."""

    frames: np.ndarray
    labels: list[str]
    sources: list[tuple[str, int]]  # (episode name, last frame index)

    def __len__(self) -> int:
        return len(self.labels)

    def tasks(self) -> list[str]:
        return sorted(set(self.labels))

    def by_task(self) -> dict[str, np.ndarray]:
        labels = np.asarray(self.labels)
        return {t: np.flatnonzero(labels == t) for t in self.tasks()}


def clip_ends(
    events: list[list[str]], length: int, nothing_per_episode: int, rng: np.random.Generator
) -> list[tuple[int, str]]:
    """(last frame index, label) of every event clip plus up to `nothing_per_episode` event-free clips."""
    out: list[tuple[int, str]] = []
    for t, evs in enumerate(events):
        label = caption_event(evs)
        end = t + 1
        if label is not None and WINDOW - 1 <= end < length:
            out.append((end, label))
    if nothing_per_episode > 0:
        busy = np.array([caption_event(e) is not None for e in events] + [False], dtype=np.int64)
        # A window ending at frame e covers actions e-15..e-1; it is quiet when none of them fired an event.
        cum = np.concatenate([[0], np.cumsum(busy)])
        quiet = [e for e in range(WINDOW - 1, length) if cum[e] - cum[e - WINDOW + 1] == 0]
        if quiet:
            picks = rng.choice(len(quiet), size=min(nothing_per_episode, len(quiet)), replace=False)
            out += [(quiet[i], NOTHING) for i in sorted(picks)]
    return out


def load_clips(
    episodes: list[str | Path],
    nothing_per_episode: int = 4,
    seed: int = 0,
    max_per_task_per_episode: int | None = None,
    skipped: Skipped | None = None,
) -> ClipSet:
    """Decode each episode once and cut its captioned clips.

    A damaged episode raises its `EpisodeError`, or with `skipped` is left out there (reported, counted) and
    the rest are cut as if it were not there (episode i's clip draws depend only on (seed, i)).
    """
    frames: list[np.ndarray] = []
    labels: list[str] = []
    sources: list[tuple[str, int]] = []
    for i, path in enumerate(episodes):
        try:
            ep = Episode(path)  # the header check finds a truncated video before any decoding
            ep_events = ep.events
        except EpisodeError as e:
            if skipped is None:
                raise
            skipped.add_error(path, e)
            continue
        rng = np.random.default_rng([seed, i])
        ends = clip_ends(ep_events, ep.length, nothing_per_episode, rng)
        if max_per_task_per_episode is not None:
            kept: dict[str, int] = {}
            limited = []
            for end, label in ends:
                if kept.get(label, 0) < max_per_task_per_episode:
                    kept[label] = kept.get(label, 0) + 1
                    limited.append((end, label))
            ends = limited
        if not ends:
            continue
        try:
            video = ep.frames()
        except EpisodeError as e:
            if skipped is None:
                raise
            skipped.add_error(path, e)
            continue
        for end, label in ends:
            frames.append(video[end - WINDOW + 1 : end + 1])
            labels.append(label)
            sources.append((ep.name, end))
    if not frames:
        dropped = f" ({skipped.summary()})" if skipped else ""
        raise AimcError(
            f"no captioned clips found{dropped}: episodes need >= 16 frames and at least one event or quiet window"
        )
    return ClipSet(np.stack(frames), labels, sources)
