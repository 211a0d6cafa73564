"""Which convolution algorithm acts fastest here: direct (oneDNN) or Winograd, measured per machine, thread count
and shape, once, and cached on disk.

Why measure: Winograd does ~4x fewer multiplies, but whether that wins depends on the machine. On one AVX2
machine it was 1.45-1.56x the official code; on an AVX-512 2-core machine with 2 threads and a batch it was
0.92x, slower than oneDNN's direct convolution (issue 18). No fixed rule holds for every CPU a user has, so
the first forward of each (threads, batch bucket, layer shape) times both algorithms on the real input
and keeps the faster one; Winograd must win by `MARGIN` to be chosen. A layer's win alone does not always
survive inside the network, so the CNN then times its stacks with the layers' choices against all direct, once
per (threads, batch bucket) (`network_key`), and keeps the choices only if they win by `MARGIN` as a whole: the
acting path is never measurably slower than the direct path it replaces.

Determinism: the choice is cached in ``<cache>/conv-calibration.json`` under a key of the CPU (model, flags,
core count) and the library versions, so every later process on the machine reuses it. Processes that
calibrate at the same time (evaluation workers) serialise on a file lock and the first writer's choice wins,
so all of them compute with the same algorithm. The two algorithms agree to float rounding (~1e-5 relative,
`aimc.policy.vpt.winograd`); a seeded run on one machine gives the same result run after run.

The cache directory is ``$AIMC_CACHE_DIR``, else ``$XDG_CACHE_HOME/aimc``, else ``~/.cache/aimc``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from aimc.core.io import atomic_write_json

CACHE_FILE = "conv-calibration.json"
MARGIN = 0.97
"""Winograd is chosen only if its time is at most this fraction of the direct time."""
REPEATS = 5
"""Timed calls per algorithm (after one warm-up each); the minimum counts."""
_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "neon", "asimd")


def cache_dir() -> Path:
    if os.environ.get("AIMC_CACHE_DIR"):
        return Path(os.environ["AIMC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aimc"


def cpu_description() -> dict[str, Any]:
    """Model name, the SIMD flags that matter for convolution speed, and the core count."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
    return {"model": model, "machine": platform.machine(), "cores": os.cpu_count() or 1,
            "flags": sorted(f for f in _FLAGS if f in flags)}


def machine_key() -> str:
    """The CPU and the versions of the code that computes either algorithm."""
    import numba

    desc = {**cpu_description(), "torch": torch.__version__, "numba": numba.__version__}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def batch_bucket(n: int) -> int:
    """Batch sizes that share a choice: 1, 2, then powers of two (4, 8, 16, ...) rounded up."""
    return n if n <= 2 else 1 << (n - 1).bit_length()


def shape_key(threads: int, x_shape: tuple[int, ...], out_channels: int) -> str:
    n, c, h, w = x_shape
    return f"t{threads}-n{batch_bucket(n)}-c{c}-k{out_channels}-{h}x{w}"


def network_key(threads: int, x_shape: tuple[int, ...], chans: tuple[int, ...]) -> str:
    """Key of the whole-CNN check: its layers' choices against all direct ("winograd" in the entry = the
    layers' own choices, which may mix both)."""
    n, c, h, w = x_shape
    return f"cnn-t{threads}-n{batch_bucket(n)}-{c}x{h}x{w}-c{'.'.join(map(str, chans))}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` + ".lock" where the OS has fcntl (elsewhere: none, last writer wins)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held across the yield
    except OSError:  # an unwritable cache dir: measure without a lock, nothing is written either
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class ConvSelector:
    """The per-process view of the on-disk choices; `choose` measures a shape the first time it is seen."""

    def __init__(self, path: Path | None = None, repeats: int = REPEATS) -> None:
        self.path = path
        self.repeats = repeats
        self.memo: dict[str, str] = {}
        self.measured: list[dict[str, Any]] = []  # what this process timed (benchmarks print it)
        self._machine: str | None = None

    @property
    def machine(self) -> str:
        """This machine's key in the cache file (computed once)."""
        if self._machine is None:
            self._machine = machine_key()
        return self._machine

    def file(self) -> Path:
        return self.path if self.path is not None else cache_dir() / CACHE_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file().read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def forget(self) -> int:
        """Drop this machine's cached choices (e.g. measured while the machine was busy); returns how many.
        The next forward of each shape measures again."""
        self.memo.clear()
        with _locked(self.file()):
            data = self._read()
            dropped = len(data.pop(self.machine, {}) or {})
            if dropped:
                atomic_write_json(self.file(), data)
        return dropped

    def choose(self, key: str, direct: Callable[[], Any], winograd: Callable[[], Any]) -> str:
        """"direct" or "winograd" for `key` (see `shape_key`): remembered, read from the cache, or measured now
        by timing the two calls (the real layer on the real input) and written to the cache."""
        if key in self.memo:
            return self.memo[key]
        path = self.file()
        with _locked(path):
            data = self._read()
            entry = data.get(self.machine, {}).get(key)
            if not isinstance(entry, dict) or entry.get("impl") not in ("direct", "winograd"):
                direct(), winograd()  # warm-up: first-call allocations and numba compilation stay out
                t_d, t_w = float("inf"), float("inf")
                for _ in range(self.repeats):  # interleaved, so a burst of background load hits both
                    t_d = min(t_d, _seconds(direct))
                    t_w = min(t_w, _seconds(winograd))
                entry = {"impl": "winograd" if t_w <= MARGIN * t_d else "direct",
                         "direct_ms": t_d * 1e3, "winograd_ms": t_w * 1e3}
                data.setdefault(self.machine, {})[key] = entry
                with contextlib.suppress(OSError):  # a read-only home: the choice still holds for this process
                    atomic_write_json(path, data)
                self.measured.append({"key": key, **entry})
        self.memo[key] = str(entry["impl"])
        return self.memo[key]


SELECTOR = ConvSelector()
"""The process-wide selector the policy's "auto" convolutions use."""
