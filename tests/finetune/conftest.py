"""A tiny goal-conditioned bundle for the DAgger tests: the `test` preset policy trained a few steps on the
demonstrator store with fake visual embeddings, and an untrained small video-text embedder of the same size
(as tests/cli/test_play.py builds it), so text prompts and visual goals share one 8-d space."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.train.fixtures import EMBED_DIM, demo_store, tiny_cfg  # noqa: F401


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_bundle(demo_store, tmp_path_factory) -> Path:  # noqa: F811
    from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder
    from aimc.train.loop import run

    root = tmp_path_factory.mktemp("dagger_bundle")
    torch.manual_seed(0)
    emb = VideoTextEmbedder(VideoTextConfig(channels=(4, 8), frame_dim=16, embed_dim=EMBED_DIM, frame_size=32), device="cpu")
    emb.save_pretrained(root / "embedder_src")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run(tiny_cfg(demo_store, root / "run", "n_frames=64", "val_every=0", f"embedder={root / 'embedder_src'}"), progress=False)
    torch.set_num_threads(n)
    return root / "run"
