"""The stop flag a pooled collection drains with (`aimc.data.collect`): once set, an episode not yet started is
skipped (nothing written, nothing returned), one already finished stays. The pool-level behaviour (a failing or
interrupted 2-worker collection ends with one error line and complete episodes only) is in
tests/cli/test_write_failures.py; this checks the flag itself, without a pool or a race."""

from __future__ import annotations

import multiprocessing as mp
import signal

from aimc.core.config import to_dict
from aimc.data import collect as collect_mod
from aimc.data.collect import CollectConfig, episode_name
from aimc.data.index import DatasetIndex


def test_stop_flag_skips_episodes_not_started(tmp_path):
    out = tmp_path / "store"
    out.mkdir()
    cfg = CollectConfig(out=str(out), agent="random", episodes=3, max_steps=5, seed=0, workers=2)
    stop = mp.get_context("fork").Event()
    handler = signal.getsignal(signal.SIGINT)
    try:
        collect_mod._worker_init(to_dict(cfg), stop)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a pool worker leaves Ctrl-C to the parent
        first = collect_mod._collect_one(0)
        stop.set()
        assert collect_mod._collect_one(1) is None
        assert collect_mod._collect_one(2) is None
    finally:
        signal.signal(signal.SIGINT, handler)
        collect_mod._W.clear()
    assert first is not None
    kept = DatasetIndex.scan(out)
    assert len(kept) == 1 and not kept.skipped
    assert [p.name for p in out.iterdir()] == [episode_name(0, 0)]  # no temp dir, no other episode
