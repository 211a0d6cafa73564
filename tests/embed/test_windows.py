"""Sliding-window goal embeddings: alignment (row t = frames t-15..t) and cached == naive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimc.core.errors import AimcError, UnknownNameError
from aimc.embed.base import Embedder, make_embedder
from aimc.embed.mineclip import MineCLIPEmbedder
from aimc.embed.mineclip_model import MineCLIP
from tests.embed.conftest import tiny_mineclip_config


class FrameIdEmbedder(Embedder):
    """Frame feature = its mean pixel value; a window pools to (first frame id, last frame id)."""

    name = "frame-id"

    def __init__(self) -> None:
        self.dim = 2

    def encode_text(self, texts):
        return torch.zeros(len(texts), 2)

    def encode_frames(self, frames):
        return torch.as_tensor(np.asarray(frames), dtype=torch.float32).mean(dim=(1, 2, 3))[:, None]

    def pool(self, features):
        return torch.stack([features[:, 0, 0], features[:, -1, 0]], dim=1)


def _id_frames(t: int) -> np.ndarray:
    return np.broadcast_to(np.arange(t, dtype=np.uint8)[:, None, None, None], (t, 4, 4, 3)).copy()


def test_window_alignment():
    emb, mask = FrameIdEmbedder().window_embeddings(_id_frames(40))
    assert mask.tolist() == [False] * 15 + [True] * 25
    assert (emb[:15] == 0).all()
    for t in range(15, 40):
        assert emb[t].tolist() == [t - 15, t]


def test_short_episode_has_no_valid_rows():
    emb, mask = FrameIdEmbedder().window_embeddings(_id_frames(10))
    assert emb.shape == (10, 2) and not mask.any()


def test_cached_equals_naive_mineclip_tiny():
    torch.manual_seed(0)
    cfg = tiny_mineclip_config()
    emb = MineCLIPEmbedder(MineCLIP(cfg), device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (21, 32, 48, 3), dtype=np.uint8)
    fast, m1 = emb.window_embeddings(frames)
    slow, m2 = emb.naive_window_embeddings(frames)
    assert torch.equal(m1, m2) and int(m1.sum()) == 6
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    # Frames at another size are resized to the model's 160x256-style resolution before the ViT.
    assert emb.encode_frames(frames[:2, :16, :24]).shape == (2, 32)


def test_bad_inputs_raise_clear_errors():
    emb = FrameIdEmbedder()
    with pytest.raises(AimcError, match="uint8"):
        emb.window_embeddings(np.zeros((20, 4, 4, 3), np.float32))
    with pytest.raises(AimcError, match=r"\(T, H, W, 3\)"):
        emb.window_embeddings(np.zeros((20, 4, 4), np.uint8))
    with pytest.raises(AimcError, match="16 frames"):
        emb.encode_clips(np.zeros((2, 8, 4, 4, 3), np.uint8))
    with pytest.raises(UnknownNameError, match="available: .*mineclip"):
        make_embedder("nope")
    with pytest.raises(AimcError, match="needs weights"):
        make_embedder("mineclip")


def test_subclass_without_name_fails_at_definition():
    with pytest.raises(TypeError, match="name"):
        type("Nameless", (FrameIdEmbedder,), {"name": ""})
