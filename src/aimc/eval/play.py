"""Library side of `aimc play`: one episode of a bundle's agent following a text (or video) instruction."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError
from aimc.core.video import Mp4Writer, annotate, read_mp4
from aimc.eval.agent import TextAgent

SHIPPED_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "crafter-small"


def shipped_bundle() -> Path:
    """The agent bundle installed with aimc (made by `aimc pipeline --preset crafter-small`), for `aimc play`."""
    if not (SHIPPED_BUNDLE / "bundle.json").is_file():
        raise AimcError(
            "no --checkpoint given and this install ships no trained agent; train one with "
            "`aimc pipeline --preset crafter-small --out runs/small` and pass --checkpoint runs/small/bundle"
        )
    return SHIPPED_BUNDLE


def clip_goal_frames(path: str | Path) -> np.ndarray:
    """The last 16 frames of an mp4 (a clip that ends when the wanted thing happens, as goals do in training)."""
    frames = read_mp4(path)
    if len(frames) < 16:
        raise AimcError(f"visual goal {path} has {len(frames)} frame(s); it needs at least 16")
    return frames[-16:]


def play(
    bundle: str | Path,
    instruction: str,
    steps: int = 300,
    seed: int = 0,
    cond_scale: float | None = None,
    video: str | Path | None = None,
    visual_goal: str | Path | None = None,
    size: int = 384,
    deterministic: bool = False,
    hold: int = 12,
) -> dict[str, Any]:
    """Run up to `steps` steps (stopping at death) and return the events, optionally writing an mp4
    whose frames show the instruction, the step and the events of the last `hold` steps."""
    if steps < 1:
        raise AimcError(f"--steps must be >= 1, got {steps}")
    from aimc.envs import make

    agent = TextAgent.from_bundle(bundle, seed=seed)
    if visual_goal is not None:
        goal = agent.goal_from_video(clip_goal_frames(visual_goal))[None]
        label = f"video goal: {Path(visual_goal).name}"
    elif agent.goal_dim:
        goal = agent.goal_from_text([instruction], seed=seed)
        label = instruction
    else:
        goal = np.zeros((1, 0), np.float32)
        label = f"{instruction} (unconditional policy)"
    agent.start(goal, cond_scale=cond_scale, seed=seed)
    env = make(agent.meta["world"], **agent.meta["world_config"])
    obs, _ = env.reset(seed=seed)
    writer = Mp4Writer(video, fps=10, lossless=False) if video is not None else None
    happened: list[tuple[int, str]] = []
    t = 0
    try:
        for t in range(steps):
            if writer is not None:
                recent = [e for s, e in happened if t - s <= hold]
                writer.add(annotate(env.render_frame(size), [label, f"step {t}", *recent]))
            action = agent.act(obs[keys.POV][None], np.array([t == 0]), deterministic=deterministic)
            obs, _, terminated, truncated, info = env.step(int(action[0]))
            happened += [(t + 1, e) for e in info.get(keys.EVENTS, [])]
            if terminated or truncated:
                break
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {
        "instruction": label, "steps": t + 1, "events": happened,
        "counts": dict(Counter(e for _, e in happened)), "video": str(video) if video is not None else None,
    }
