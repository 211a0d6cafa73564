"""`ServeConfig`: every setting of `aimc serve`, checked before the server binds a port or loads a model.

Torch-free, so a bad value (or a checkpoint that is not an agent bundle) is one `error:` line in a fraction of a
second. The defaults are the ones `aimc serve` runs with; the limits bound what one browser can make the server
hold: open games, panels per game, steps (frames kept) per episode, upload size and goal clips.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from aimc.core.errors import ConfigError


@dataclass
class ServeConfig:
    """One `aimc serve` server; `aimc.serve.server.run(cfg)` runs it."""

    checkpoint: str | None = None
    """One agent bundle directory the page plays; None (and no `checkpoints`) = the shipped agent."""
    checkpoints: str | None = None
    """A directory of agent bundles (`<name>/bundle.json` or `<name>/bundle/bundle.json`); the page picks one by
    name, and only names found inside this directory are accepted."""
    host: str = "127.0.0.1"
    """Interface to listen on; only this machine can connect unless told otherwise (e.g. 0.0.0.0)."""
    port: int = 8000
    """TCP port (0 = any free port, printed at start)."""
    seed: int = 0
    """World seed the page starts with (the agent's sampling seed is the world seed, as in `aimc play`)."""
    max_games: int = 4
    """Games open at once (running, paused or ended but not yet closed); one more is refused with a message."""
    max_panels: int = 4
    """Panels per game: instructions (or guidance scales) compared side by side on one world seed."""
    max_steps: int = 500
    """Longest episode; bounds the frames a game keeps for download (about 30 kB per panel and step)."""
    idle_timeout_s: float = 300.0
    """A game no request touched and no viewer was streamed a frame from for this long is closed."""
    max_upload_mb: float = 20.0
    """Largest goal clip upload; a larger one is refused before it is read."""
    max_goals: int = 16
    """Goal clips kept (uploaded or cut from a game); the oldest is dropped past this."""
    frame_size: int = 256
    """Pixels of the streamed (and downloaded) frames; even, so the mp4 is watchable everywhere."""
    speed: float = 10.0
    """Steps per second a game starts at (the page changes it; 0 = as fast as the CPU allows)."""
    threads: int = 1
    """torch threads for all games together (games run in parallel threads; 1 avoids oversubscribing)."""
    device: str = "cpu"
    """torch device for the agents."""

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.checkpoints is not None:
            raise ConfigError("--checkpoint and --checkpoints exclude each other; pass one bundle or one directory of bundles")
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise ConfigError(f"--host must be an IP address such as 127.0.0.1 or 0.0.0.0, got {self.host!r}") from None
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        for name in ("max_games", "max_panels", "max_steps", "max_goals", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("idle_timeout_s", "max_upload_mb"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.frame_size < 64 or self.frame_size > 1024 or self.frame_size % 2:
            raise ConfigError(f"--frame-size must be an even number in 64..1024, got {self.frame_size}")
        if not 0 <= self.speed <= MAX_SPEED:
            raise ConfigError(f"--speed must be in 0..{MAX_SPEED:g} steps/s (0 = as fast as possible), got {self.speed}")
        for name in ("checkpoint", "checkpoints"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                raise ConfigError(f"--{name} {value} is not a directory")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


MAX_SPEED = 60.0
"""Fastest pace a game can be set to, in steps per second (the page's speed control tops out here)."""
