"""One exception family, so the CLI can turn every expected mistake into a single clear line."""

from __future__ import annotations


class AimcError(Exception):
    """Base class for expected user-facing errors (bad input, bad files); the CLI prints the message only."""


class ConfigError(AimcError, ValueError):
    """A config value, preset or CLI override is invalid."""


class UnknownNameError(AimcError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class EpisodeError(AimcError):
    """An episode directory on disk is missing files, truncated or inconsistent.

    `kind` groups the problem (e.g. "unreadable video") so a run that skips damaged episodes can count them
    by reason; `detail` is the problem without the episode's path, for one line per skipped episode.
    """

    def __init__(self, message: str, kind: str = "invalid", detail: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = message if detail is None else detail

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:  # keeps kind/detail across processes
        return type(self), (str(self), self.kind, self.detail)


class CheckpointError(AimcError):
    """A checkpoint cannot be loaded: unknown format, unsafe content, or key/shape mismatch."""


class WriteError(AimcError, OSError):
    """A write failed (disk full, read-only, quota): the message names the path and what to do.

    Also an OSError (errno kept), so code that handles write failures as OSError still does.
    """

    def __init__(self, message: str, errno: int | None = None, path: str | None = None) -> None:
        super().__init__(errno, message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, int | None, str | None]]:  # a worker's error reaches the parent whole
        return type(self), (self.message, self.errno, self.path)
