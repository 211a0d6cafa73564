"""Keep freed heap memory in the process while a trainer runs, so large tensors reuse pages already mapped.

Why: glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it
on free. The policy CNN's activations for one training chunk (16 segments x 32 frames at 64x64) are 67-134 MB
each, so every forward and backward maps them anew and the kernel zero-fills them page by page: about 600,000
page faults per batch, a third of the trainer's time on a 2-core CPU (docs/training.md, "Speed"). With mmap
off and trimming off, freed blocks stay in the heap and the next chunk's tensors of the same sizes reuse them:
no faults after the first batch. Nothing computed changes, only where the bytes live.

The setting is process-wide, so `reuse_freed_memory` scopes it to the trainer's call and afterwards hands the
free memory back (``malloc_trim``). Outside glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from functools import cache

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
KEEP_TRIM_THRESHOLD = 2**31 - 1
"""While active: never give the heap's free top back to the kernel (mallopt takes an int)."""
RESTORE = ((M_MMAP_MAX, 65536), (M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 64 * 2**20))
"""Afterwards: glibc's mmap limit, and the thresholds its dynamic rule reaches after large blocks were freed
(glibc cannot report the current values, and any mallopt call turns the dynamic rule off)."""

_depth = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has `mallopt` and `malloc_trim`), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") and hasattr(libc, "gnu_get_libc_version")):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Inside the block, freed memory stays in the process for reuse; yields whether that is in effect.

    Re-entrant: only the outermost block changes and restores the allocator's settings.
    """
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    if _depth == 0:
        libc.mallopt(M_MMAP_MAX, 0)  # large blocks come from the heap, where a free keeps them
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD)
    _depth += 1
    try:
        yield True
    finally:
        _depth -= 1
        if _depth == 0:
            for param, value in RESTORE:
                libc.mallopt(param, value)
            libc.malloc_trim(0)  # hand the free blocks back now
