"""Trainable video-text embedder: frame CNN + temporal attention pooling vs frozen sentence embeddings.

Built for worlds without a pretrained video-language model (Crafter): the frame encoder runs once per
frame (so sliding windows are cheap), a small transformer mixes the 16 frames, attention pooling
picks the informative ones (the event usually happens near the end), and both sides are projected
to a shared L2-normalised space trained with symmetric InfoNCE.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aimc.core.checkpoint import load_strict, read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.embed.base import (
    WINDOW,
    Embedder,
    check_frames,
    frames_to_tensor,
    register_embedder,
    resolve_device,
)
from aimc.embed.config import VideoTextConfig
from aimc.embed.text import shared_text_encoder


class FrameEncoder(nn.Module):
    """Conv stages (GroupNorm, per-sample so batching never changes a frame's feature) -> flat grid -> linear."""

    def __init__(self, cfg: VideoTextConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        grid = cfg.frame_size // 2 ** len(cfg.channels)
        self.proj = nn.Linear(c_in * grid * grid, cfg.frame_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(x).flatten(1))  # (B, 3, S, S) -> (B, frame_dim)


class TemporalPool(nn.Module):
    """Learned positions + transformer over the 16 frames + attention pooling -> one clip vector."""

    def __init__(self, cfg: VideoTextConfig) -> None:
        super().__init__()
        d = cfg.frame_dim
        self.pos = nn.Parameter(0.02 * torch.randn(WINDOW, d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.temporal_heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.temporal_layers, enable_nested_tensor=False)
        self.score = nn.Linear(d, 1)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.encoder(feats + self.pos)  # (N, 16, F)
        weights = self.score(x).softmax(dim=1)  # (N, 16, 1)
        return self.out(self.norm((weights * x).sum(dim=1)))  # (N, D)


class VideoTextModel(nn.Module):
    """The trainable parameters (what `model.safetensors` holds); the text model stays outside, frozen."""

    def __init__(self, cfg: VideoTextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frame_encoder = FrameEncoder(cfg)
        self.temporal = TemporalPool(cfg)
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """float (B, 3, H, W) in 0..1 -> (B, frame_dim)."""
        s = self.cfg.frame_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return self.frame_encoder(x * 2.0 - 1.0)

    def video(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.temporal(feats), dim=-1)

    def text(self, sentence_emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(sentence_emb), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()


@register_embedder("videotext")
class VideoTextEmbedder(Embedder):
    name = "videotext"
    batch_frames = 256

    def __init__(
        self,
        cfg: VideoTextConfig | None = None,
        device: str | None = None,
        model: VideoTextModel | None = None,
    ) -> None:
        self.cfg = cfg or VideoTextConfig()
        self.device = resolve_device(device)
        self.model = (model or VideoTextModel(self.cfg)).to(self.device).eval()
        self.text_encoder = shared_text_encoder(self.cfg.text_model)
        if self.text_encoder.dim != self.cfg.text_dim:
            self.cfg.text_dim = self.text_encoder.dim
            self.model = VideoTextModel(self.cfg).to(self.device).eval()
        self.dim = self.cfg.embed_dim

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> VideoTextEmbedder:
        config, tensors = read_model_dir(path, cls.name)
        cfg = from_dict(VideoTextConfig, config, where=f"{path}/config.json")
        model = VideoTextModel(cfg)
        load_strict(model, tensors, str(path))
        return cls(cfg, device=device, model=model)

    def save_pretrained(self, path: str | Path) -> Path:
        return save_model_dir(path, self.name, to_dict(self.cfg), self.model.state_dict())

    def sentence_features(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder.encode(texts).to(self.device)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.model.text(self.sentence_features(texts)).float().cpu()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        check_frames(frames, 4, "videotext encode_frames")
        return self.model.frames(frames_to_tensor(frames, self.device)).float().cpu()

    @torch.no_grad()
    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.video(features.to(self.device)).float().cpu()
