"""Settings for the native libraries under torch that the `aimc` command chooses for its own processes.

Why: on a 2-core AMX CPU the PPO trainer died of a native fault (a glibc heap abort or a segfault in
`libtorch_cpu`) about once per 60 iterations, and the three core dumps found it where oneDNN's primitive cache
was evicting an entry or allocating one (docs/task-finetune.md, "Known problem"). That cache holds 1,024
primitives by default, and a PPO update churns it: its chunk shapes (1-256 frames) create about 600 primitives in
the first iteration and 67-99 new ones in every later one, so after ~10 iterations every miss evicts. With a
capacity that never evicts at these shapes (`ONEDNN_CACHE_CAPACITY`) the same run went 480 iterations without a
crash (8.0 expected at the default's rate), at no cost in speed and ~5-8 % more memory
(benchmarks/bench_onednn_cache.py). The number of distinct primitives is bounded
by the shapes a run meets, so the cache stops growing once they have all been seen.

oneDNN reads the variable when the process creates its first primitive, not when torch is imported, so
`configure_native_runtime` works when it runs first thing in `aimc.cli.app.main`; the processes a command starts
(its supervised child, rollout workers) inherit it. A value the user set is kept (`ONEDNN_PRIMITIVE_CACHE_CAPACITY=
1024 aimc ...` restores oneDNN's default). Library users who call the trainers from Python set it themselves,
before their first convolution or matrix product.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 65536
"""Entries in oneDNN's primitive cache for aimc's processes: more than a PPO run's shapes ever fill."""


def native_defaults() -> dict[str, str]:
    """The environment variables aimc sets for its processes when the user has not."""
    return {ONEDNN_CACHE_ENV: str(ONEDNN_CACHE_CAPACITY)}


def configure_native_runtime(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each of `native_defaults()` the user has not set in `environ` (default: this process's environment);
    return those it set. Must run before the process's first oneDNN primitive to take effect there."""
    env = os.environ if environ is None else environ
    added = {k: v for k, v in native_defaults().items() if k not in env}
    env.update(added)
    return added
