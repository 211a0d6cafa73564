"""Watchable episode videos: high-resolution frames with the step's events written on them.

Episodes of a world that declares `supports_replay` (Crafter) are re-rendered at any size by replaying the
stored actions from the stored world seed (so the video is crisp, not an upscaled 64x64 frame), and end with
the state after the last action (N + 1 frames: what the last action caused is shown); other worlds, and
episodes that no longer replay identically, fall back to nearest-neighbour upscaling of the N stored frames
(the store keeps the frame before each action only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from aimc.core import keys
from aimc.core.video import Mp4Writer, annotate
from aimc.data.store import Episode


def _replayed_frames(ep: Episode, size: int) -> Iterator[np.ndarray] | None:
    """Replay the episode's actions in its world and render each pre-action state at `size`."""
    from aimc.core.errors import UnknownNameError
    from aimc.envs import make, world_info

    meta = ep.metadata
    if "world" not in meta or "world_seed" not in meta:
        return None
    try:
        if not world_info(meta["world"]).supports_replay:
            return None
    except UnknownNameError:  # recorded in a world this install does not have
        return None
    env = make(meta["world"], **meta.get("world_config", {}))
    obs, _ = env.reset(seed=int(meta["world_seed"]))
    first = ep.frames(0, 1)[0]
    if not np.array_equal(obs[keys.POV], first):  # not reproducible (other version/config): do not lie
        return None

    def gen() -> Iterator[np.ndarray]:
        for a in ep.actions:
            yield env.render_frame(size)
            env.step(int(a))
        yield env.render_frame(size)  # the final state

    return gen()


def _upscaled_frames(ep: Episode, size: int) -> Iterator[np.ndarray]:
    frames = ep.frames()
    k = max(1, size // max(frames.shape[1], frames.shape[2]))
    for f in frames:
        yield np.repeat(np.repeat(f, k, axis=0), k, axis=1)


def render_episode_video(episode: str | Path, out: str | Path, size: int = 512, fps: int | None = None,
                         hold: int = 10, title: str | None = None) -> dict[str, object]:
    """Write an mp4 of `episode` with events shown for `hold` frames after they happen; returns the path,
    the number of frames written, the source ("replay" or "upscaled") and the size."""
    ep = Episode(episode)
    fps = fps or int(ep.metadata.get("fps", 20))
    frames = _replayed_frames(ep, size)
    source = "replay"
    if frames is None:
        frames, source = _upscaled_frames(ep, size), "upscaled"
    recent: list[tuple[int, str]] = []
    n = 0
    with Mp4Writer(out, fps=fps, lossless=False) as w:
        for t, frame in enumerate(frames):
            # events[t] are caused by action t, visible from frame t+1 on
            if t > 0:
                recent += [(t, e) for e in ep.events[t - 1]]
            recent = [(s, e) for s, e in recent if t - s < hold]
            goal = ep.infos[min(t, ep.length - 1)].get("goal")  # the final state shows the last goal
            lines = [title or ep.name, f"step {t}" + (f"  goal: {goal}" if goal else "")]
            lines += [e for _, e in recent]
            if frame.shape[0] % 2 or frame.shape[1] % 2:
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
            w.add(annotate(frame, lines))
            n += 1
    return {"out": str(out), "frames": n, "source": source, "size": size}
