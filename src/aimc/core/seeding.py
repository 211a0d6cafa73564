"""Seeding helpers: every command takes --seed, and the same seed must give the same result on CPU."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (if imported) torch global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, kept lazy for import speed
        return
    torch.manual_seed(seed)


def derive_seed(base: int, *parts: int | str) -> int:
    """A stable 31-bit seed for a sub-task (episode i, worker k), independent of PYTHONHASHSEED."""
    import hashlib

    text = ":".join([str(base), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little") & 0x7FFFFFFF
