"""Synthetic episode stores whose events have a visible colour cue, so a tiny embedder can learn them."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.data.store import EpisodeWriter

# event -> (action step, RGB tint of the frames leading up to it)
CUES = {
    "collect_wood": (20, (40, 200, 40)),
    "collect_drink": (44, (40, 40, 220)),
    "eat_cow": (62, (220, 60, 60)),
}


def write_synthetic_store(root, n_episodes: int = 4, length: int = 72, size: int = 32, seed: int = 0):
    """Episodes of grey noise; the 10 frames before each cued event are tinted with its colour."""
    rng = np.random.default_rng(seed)
    for i in range(n_episodes):
        frames = rng.integers(90, 140, (length, size, size, 3)).astype(np.uint8)
        events = [[] for _ in range(length)]
        for event, (step, tint) in CUES.items():
            step = min(step + (i % 3), length - 2)
            frames[step - 8 : step + 2] = np.clip(
                frames[step - 8 : step + 2] * 0.3 + np.array(tint) * 0.7, 0, 255
            )
            events[step].append(event)
        with EpisodeWriter(root, f"ep{i:03d}", {"world": "synthetic", "seed": i}) as w:
            for t in range(length):
                w.add(frames[t], 0, events[t], {"step": t})
    return root


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("embed_store") / "store")


def tiny_mineclip_config(layers: int = 1):
    """A MineCLIP with the released key layout but a few thousand parameters (32x48 frames)."""
    from aimc.embed.mineclip_model import MineCLIPConfig

    return MineCLIPConfig(
        resolution=(32, 48), vision_width=64, vision_layers=layers, vision_heads=2, embed_dim=32,
        text_width=32, text_layers=layers, text_heads=2, temporal_heads=2,
    )
