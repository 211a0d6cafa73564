"""Shared fixtures for the training tests: a small demonstrator store with hand-made goal embeddings.

The embeddings are a fixed random projection of each 16-frame window's mean 4x4 colour thumbnail, written
with `Episode.write_embeds` exactly as `aimc embed` would (row t = frames t-15..t, mask t >= 15), so these
tests do not depend on a trained embedder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

EMBED_NAME = "fake"
EMBED_DIM = 8


def fake_window_embeddings(frames: np.ndarray, dim: int = EMBED_DIM) -> tuple[np.ndarray, np.ndarray]:
    t, h, w, _ = frames.shape
    thumb = frames.reshape(t, 4, h // 4, 4, w // 4, 3).mean(axis=(2, 4)).reshape(t, -1) / 255.0  # (T, 48)
    proj = np.random.default_rng(0).standard_normal((thumb.shape[1], dim)) / np.sqrt(thumb.shape[1])
    emb = np.zeros((t, dim), np.float32)
    mask = np.zeros(t, bool)
    csum = np.cumsum(np.vstack([np.zeros((1, thumb.shape[1])), thumb]), axis=0)
    for end in range(15, t):
        emb[end] = ((csum[end + 1] - csum[end - 15]) / 16.0) @ proj
        mask[end] = True
    return emb, mask


def embed_store(root: Path, name: str = EMBED_NAME) -> None:
    from aimc.data.store import Episode, list_episodes

    for p in list_episodes(root):
        ep = Episode(p)
        emb, mask = fake_window_embeddings(ep.frames())
        ep.write_embeds(name, emb, mask)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    """Five scripted-demonstrator Crafter episodes (<= 100 steps, 64x64) with fake goal embeddings."""
    from aimc.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("demo") / "crafter"
    collect(CollectConfig(out=str(out), agent="demonstrator", episodes=5, max_steps=100, seed=3, workers=1), progress=False)
    embed_store(out)
    return out


@pytest.fixture(scope="session")
def task_demo_store(tmp_path_factory) -> Path:
    """Six collect_wood task demonstrations (64x64): each ends at its success, after 6 to 28 steps, so most
    are shorter than the `test` preset's 16-frame segment. No embeddings: read as an "intention" part."""
    from aimc.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("task_demos") / "collect_wood"
    collect(CollectConfig(out=str(out), agent="demonstrator", task="collect_wood", episodes=6, max_steps=60, seed=3,
                          workers=1), progress=False)
    return out


@pytest.fixture
def one_thread():
    """Tiny models run much faster single-threaded on a shared 2-core machine (no thread spinning)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cfg(data: Path, out: Path, *overrides: str, preset: str = "test"):
    from aimc.train.config import load_train_config

    sets = [f"out={out}", f"segment.embed_name={EMBED_NAME}", *overrides]
    return load_train_config(preset, overrides=sets, data=[{"path": str(data)}])
