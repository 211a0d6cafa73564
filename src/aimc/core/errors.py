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
    """An episode directory on disk is missing files, truncated or inconsistent."""


class CheckpointError(AimcError):
    """A checkpoint cannot be loaded: unknown format, unsafe content, or key/shape mismatch."""
