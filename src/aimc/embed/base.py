"""The goal-embedder interface, its registry and the cached sliding-window computation.

Every embedder splits a 16-frame clip embedding into two stages: a per-frame encoder
(`encode_frames`) and a temporal pool over the 16 per-frame features (`pool`). STEVE-1 needs one
embedding per timestep (row t = frames t-15..t); computing it window by window would run the
image encoder 16 times per frame, so `window_embeddings` encodes each frame once and only re-runs
the cheap pool per window.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from aimc.core.errors import AimcError, UnknownNameError
from aimc.core.registry import Registry

WINDOW = 16  # frames per clip (MineCLIP / STEVE-1 convention)
EMBED_OFFSET = WINDOW - 1  # first timestep with a full window (STEVE-1's NONE_EMBED_OFFSET)

EMBEDDERS: Registry[Any] = Registry("embedder")

# Backends are imported on first use so `import aimc.embed` stays cheap and optional extras stay optional.
_LAZY = {
    "mineclip": "aimc.embed.mineclip",
    "videotext": "aimc.embed.videotext",
    "openclip": "aimc.embed.openclip",
}


def register_embedder(name: str):
    """Class decorator registering an `Embedder` subclass under `name`."""
    return EMBEDDERS.register(name)


def available_embedders() -> list[str]:
    return sorted(set(EMBEDDERS.names()) | set(_LAZY))


def get_embedder_class(name: str) -> type[Embedder]:
    if name in _LAZY and name not in EMBEDDERS:
        importlib.import_module(_LAZY[name])
    if name not in EMBEDDERS:
        raise UnknownNameError(f"unknown embedder {name!r}; available: {', '.join(available_embedders())}")
    return EMBEDDERS.get(name)


def make_embedder(name_or_dir: str | Path, device: str | None = None, **kwargs: Any) -> Embedder:
    """Build an embedder from a registered name, or load one saved with `save_pretrained` from a directory.

    A directory must hold `config.json` whose `type` names the registered class.
    """
    path = Path(name_or_dir)
    if path.is_dir():
        import json

        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise AimcError(
                f"{path} has no config.json; pass a registered embedder name or a saved model dir"
            )
        kind = json.loads(cfg_file.read_text()).get("type")
        if not isinstance(kind, str):
            raise AimcError(f"{cfg_file} has no 'type' field naming the embedder class")
        if kwargs:
            raise AimcError(f"options {sorted(kwargs)} apply to registered embedder names, not to a saved directory ({path})")
        return get_embedder_class(kind).from_pretrained(path, device=device)
    cls = get_embedder_class(str(name_or_dir))
    try:
        return cls.build(device=device, **kwargs)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        raise AimcError(f"embedder {name_or_dir!r} does not take option(s) {sorted(kwargs)} ({e})") from None


def resolve_device(device: str | None) -> torch.device:
    """None means 'a GPU when present, else CPU'."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_frames(frames: Any, ndim: int, what: str) -> np.ndarray | torch.Tensor:
    """Validate a uint8 RGB frame array of `ndim` dims ending in 3 channels."""
    shape = tuple(frames.shape)
    if len(shape) != ndim or shape[-1] != 3:
        want = "(T, H, W, 3)" if ndim == 4 else "(N, 16, H, W, 3)"
        raise AimcError(f"{what}: expected uint8 frames of shape {want}, got {shape}")
    if frames.dtype not in (np.uint8, torch.uint8):
        raise AimcError(f"{what}: expected uint8 frames, got dtype {frames.dtype}")
    return frames


class Embedder(ABC):
    """A goal embedder: text and 16-frame clips into one D-dim space.

    Subclasses implement `encode_text`, `encode_frames` (per-frame features, any width) and `pool`
    (16 per-frame features -> one clip embedding). `encode_clips` and `window_embeddings` follow.
    """

    name: ClassVar[str] = ""
    dim: int
    batch_frames: int = 64  # frames per image-encoder call
    batch_windows: int = 256  # windows per pool call

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and not cls.name:
            raise TypeError(f"{cls.__name__} must set a class attribute `name` (its registry name)")

    @classmethod
    def build(cls, device: str | None = None, **kwargs: Any) -> Embedder:
        """Default construction from a registry name (backends with pretrained weights override this)."""
        return cls(device=device, **kwargs)  # type: ignore[call-arg]

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> Embedder:
        raise AimcError(f"embedder {cls.name!r} cannot be loaded from a directory ({path})")

    @abstractmethod
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """(N,) strings -> (N, D) float32."""

    @abstractmethod
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> (T, F) per-frame features, float32."""

    @abstractmethod
    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 16, F) per-frame features -> (N, D) clip embeddings."""

    @torch.no_grad()
    def encode_clips(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, 16, H, W, 3) -> (N, D): the embedding of each clip (naive path, no caching)."""
        check_frames(clips, 5, "encode_clips")
        n, length = clips.shape[:2]
        if length != WINDOW:
            raise AimcError(f"encode_clips: clips must have {WINDOW} frames, got {length}")
        flat = clips.reshape(n * length, *clips.shape[2:])
        feats = torch.cat(
            [
                self.encode_frames(flat[i : i + self.batch_frames])
                for i in range(0, len(flat), self.batch_frames)
            ]
        )
        return self.pool(feats.reshape(n, length, -1))  # (N, 16, F) -> (N, D)

    @torch.no_grad()
    def frame_features(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per-frame features of a whole episode, in batches of `batch_frames`."""
        check_frames(frames, 4, "window_embeddings")
        if len(frames) == 0:
            return torch.zeros(0, 0)
        return torch.cat(
            [
                self.encode_frames(frames[i : i + self.batch_frames])
                for i in range(0, len(frames), self.batch_frames)
            ]
        )

    @torch.no_grad()
    def windows_from_features(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, F) per-frame features -> ((T, D) window embeddings, (T,) bool mask); rows t < 15 are zero."""
        t = feats.shape[0]
        out = torch.zeros(t, self.dim, dtype=torch.float32)
        mask = torch.zeros(t, dtype=torch.bool)
        if t < WINDOW:
            return out, mask
        windows = feats.unfold(0, WINDOW, 1).permute(0, 2, 1)  # (T-15, 16, F), row j = frames j..j+15
        rows = [
            self.pool(windows[i : i + self.batch_windows].contiguous()).float().cpu()
            for i in range(0, len(windows), self.batch_windows)
        ]
        out[EMBED_OFFSET:] = torch.cat(rows)
        mask[EMBED_OFFSET:] = True
        return out, mask

    def window_embeddings(self, frames: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (T, H, W, 3) -> ((T, D), mask (T,)): row t embeds frames t-15..t; valid for t >= 15."""
        return self.windows_from_features(self.frame_features(frames))

    def naive_window_embeddings(self, frames: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference path: `encode_clips` on every window (16x the image-encoder work); for tests/benchmarks."""
        check_frames(frames, 4, "naive_window_embeddings")
        t = len(frames)
        out = torch.zeros(t, self.dim, dtype=torch.float32)
        mask = torch.zeros(t, dtype=torch.bool)
        for end in range(EMBED_OFFSET, t):
            out[end] = self.encode_clips(frames[end - EMBED_OFFSET : end + 1][None])[0].float().cpu()
            mask[end] = True
        return out, mask


def frames_to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in 0..1 on `device`."""
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    x = x.to(device)
    return x.movedim(-1, -3).float().div_(255.0)
