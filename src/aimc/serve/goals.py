"""Visual goals: 16-frame clips uploaded by the browser or cut from a game's recorded episode.

A clip is kept as frames, not as an embedding: the goal space belongs to the checkpoint, so each game embeds
the clip with its own agent's embedder (`TextAgent.goal_from_video`). The store is bounded (oldest dropped).
Uploads are written to disk as they arrive and refused as soon as they pass the limit, so a 100 MB body is
never held in memory; a declared `Content-Length` over the limit is refused before any byte is read.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError
from aimc.serve.media import data_url, to_jpeg


class UploadTooLarge(AimcError):
    """An upload is over `--max-upload-mb`."""


@dataclass(frozen=True)
class GoalClip:
    """A visual goal the page can pick for a panel."""

    id: str
    name: str
    frames: np.ndarray
    """uint8 (16, H, W, 3)."""

    def summary(self) -> dict[str, str]:
        """What the page shows: id, name and the clip's last frame as a data URL."""
        return {"id": self.id, "name": self.name, "preview": data_url(to_jpeg(self.frames[-1]))}


class GoalStore:
    """The last `capacity` goal clips, by id; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._clips: OrderedDict[str, GoalClip] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str, frames: np.ndarray) -> GoalClip:
        clip = GoalClip(secrets.token_hex(4), name, np.ascontiguousarray(frames))
        with self._lock:
            self._clips[clip.id] = clip
            while len(self._clips) > self.capacity:
                self._clips.popitem(last=False)
        return clip

    def get(self, goal_id: str) -> GoalClip:
        with self._lock:
            clip = self._clips.get(goal_id)
        if clip is None:
            raise AimcError(f"unknown goal clip {goal_id!r}; the server keeps the last {self.capacity}, upload it again")
        return clip

    def list(self) -> list[GoalClip]:
        with self._lock:
            return list(self._clips.values())


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def check_declared_size(declared: str | None, limit: int) -> None:
    """Refuse an upload whose Content-Length is over `limit` before reading it."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"upload refused: {_mb(int(declared))} is over the {_mb(limit)} limit (--max-upload-mb)")


async def save_stream(chunks: AsyncIterator[bytes], limit: int, directory: str | Path) -> Path:
    """Write an upload to a temp file in `directory` as it arrives; over `limit` bytes it is deleted and refused."""
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".mp4", dir=directory)
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"upload refused: it is over the {_mb(limit)} limit (--max-upload-mb)")
                f.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if size == 0:
        Path(tmp).unlink(missing_ok=True)
        raise AimcError("the upload is empty; choose an mp4 clip")
    return Path(tmp)
