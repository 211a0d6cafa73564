"""Rerun a resumable command after a native crash: the long training commands run in a child process.

Why: on a 2-core AMX CPU the PPO trainer has died a few times in ~1,000 iterations of a native fault inside torch
(a glibc heap abort or a segfault in `libtorch_cpu`, never a Python error; docs/task-finetune.md, "Known
problem"). Every finished iteration is a checkpoint and rerunning the same command continues from it, so the only
cost of such a crash is the person (or the script) who has to notice it and type the command again; a pipeline
preset that runs for hours in pieces should not stop for it. So `aimc pipeline` and the `aimc train` commands
that resume (`ppo`, `dagger`, `policy`) run their work in a child process (the same command line) and, when that
child is killed by one of `CRASH_SIGNALS`, run it again, saying so in one line each time. `retries` bounds the
crashes in a row *without progress* (no new checkpoint in the run directory since the run before): a long run that
crashes every few dozen iterations goes on to its end, a command that crashes before saving anything stops.

What is *not* retried: a normal exit with any code (errors are one line and exit 2: rerunning would only repeat
them), Ctrl-C (the child prints its own "interrupted" line; the parent ignores SIGINT while it waits so that the
child alone decides), SIGTERM / SIGKILL (a scheduler or the out-of-memory killer stopping the job: a retry would
fight it). SIGTERM sent to the parent is passed on to the child.

`AIMC_CRASH_RETRIES` sets the default number of reruns (3); 0 runs the command in this process, as the test suite
does (tests/conftest.py). The child is marked with `SUPERVISED_ENV` so that it runs the work itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aimc.core.errors import ConfigError

CRASH_SIGNALS: frozenset[int] = frozenset(
    getattr(signal, name) for name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE") if hasattr(signal, name))
"""Deaths that a native bug causes; the command is rerun after them (the ones this platform has)."""

SUPERVISED_ENV = "AIMC_SUPERVISED_CHILD"
RETRIES_ENV = "AIMC_CRASH_RETRIES"
DEFAULT_RETRIES = 3


def default_retries() -> int:
    """`AIMC_CRASH_RETRIES` when set (a whole number >= 0), else `DEFAULT_RETRIES`."""
    raw = os.environ.get(RETRIES_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_RETRIES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{RETRIES_ENV}={raw!r} is not a whole number >= 0; set it to e.g. 3, or 0 to run "
                          "commands without a supervising process")
    return value


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


_POINTERS = tuple("*/" * depth + "checkpoints/last" for depth in range(5))
_STAGE_MARKERS = ("stages/*.json", "*/stages/*.json")


def run_dir_progress(out: Path) -> Callable[[], Any]:
    """A marker of the finished work a run directory holds, for `run_supervised(progress=...)`: the content of
    every checkpoint pointer (`checkpoints/last`: a trainer's own, a pipeline stage's, a DAgger iteration's
    fine-tune, up to four levels down) and the names of the finished-stage markers (`stages/*.json` of a pipeline,
    a DAgger run or a study). Only what a finished unit of work writes counts: files that every start rewrites (a
    new TensorBoard file, a log line) would make a crash at the same place look like progress."""

    def marker() -> Any:
        if not out.is_dir():
            return ()
        seen = []
        for p in sorted({p for pattern in _POINTERS + _STAGE_MARKERS for p in out.glob(pattern)}):
            try:
                seen.append((str(p.relative_to(out)), p.read_text().strip() if p.name == "last" else ""))
            except OSError:  # removed while we looked (a writer's temp file)
                continue
        return tuple(seen)

    return marker


def run_supervised(argv: Sequence[str], retries: int, log: Callable[[str], None],
                   what: str = "the command", progress: Callable[[], Any] | None = None) -> int:
    """Run `argv` (a full command line) in a child process, rerunning it after it dies of one of `CRASH_SIGNALS`
    as long as at most `retries` crashes came in a row without `progress()` changing (None: every crash counts);
    return the exit code the shell would show (128 + signal for a signal death)."""
    env = dict(os.environ, **{SUPERVISED_ENV: "1"})
    attempt = crashes = 0
    while True:
        before = progress() if progress is not None else None
        child = subprocess.Popen(list(argv), env=env)
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child, which stops cleanly

        def forward(signum: int, _frame: object, child: subprocess.Popen = child) -> None:
            child.send_signal(signum)

        old_term = signal.signal(signal.SIGTERM, forward)
        try:
            rc = child.wait()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        if rc >= 0:
            return rc
        sig = -rc
        if sig not in CRASH_SIGNALS:
            return 128 + sig
        crashes += 1
        if progress is not None and progress() != before:
            attempt = 0  # it got further than the run before: this crash does not use up a rerun
        if attempt >= retries:
            log(f"error: {what} died of {signal_name(sig)} (a native crash) {attempt + 1} time(s) in a row without "
                f"saving new progress ({crashes} crash(es) in all); the finished work is kept: run the same command "
                "again to resume (docs/task-finetune.md, 'Known problem')")
            return 128 + sig
        attempt += 1
        log(f"{what} died of {signal_name(sig)} (a native crash, docs/task-finetune.md 'Known problem'); "
            f"resuming from its last checkpoint (rerun {attempt} of {retries} without new progress; "
            f"crash {crashes} in all)")


def supervise_here(argv: Sequence[str], what: str, retries: int | None = None,
                   out: Path | None = None) -> int | None:
    """For a resumable command about to start its work: None when the work should run in this process (inside
    a supervised child, or with reruns switched off), else the exit code of the supervised child process(es).
    `retries` None: `default_retries()`; `out`, the command's run directory, tells progress (`run_dir_progress`)."""
    if os.environ.get(SUPERVISED_ENV):
        return None
    if retries is None:
        retries = default_retries()
    elif retries < 0:
        raise ConfigError(f"--crash-retries {retries} is negative; give a whole number >= 0 (0: no reruns)")
    if retries == 0:
        return None
    return run_supervised([sys.executable, "-m", "aimc", *argv], retries,
                          lambda line: print(line, file=sys.stderr, flush=True), what,
                          run_dir_progress(Path(out)) if out is not None else None)
