"""aimc.core.supervise: a resumable command is rerun after a native crash of its process, and only then."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from aimc.core.errors import ConfigError
from aimc.core.supervise import (
    CRASH_SIGNALS,
    SUPERVISED_ENV,
    default_retries,
    run_dir_progress,
    run_supervised,
    supervise_here,
)


def script(tmp_path: Path, body: str) -> list[str]:
    """A child that appends one line to runs.txt per start, then does `body` (with `n` = runs so far)."""
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(f"""
        import os, signal, sys
        runs = {str(tmp_path / 'runs.txt')!r}
        with open(runs, "a") as f:
            f.write(os.environ.get({SUPERVISED_ENV!r}, "-") + "\\n")
        n = len(open(runs).read().splitlines())
    """) + textwrap.dedent(body))
    return [sys.executable, str(path)]


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.txt").read_text().splitlines()


def test_a_crashed_child_is_rerun_until_it_finishes(tmp_path):
    lines: list[str] = []
    argv = script(tmp_path, """
        if n == 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        if n == 2:
            os.abort()
        sys.exit(0)
    """)
    assert run_supervised(argv, 3, lines.append, "aimc train ppo") == 0
    assert runs(tmp_path) == ["1", "1", "1"]  # three starts, each marked as the supervised child
    assert len(lines) == 2 and "died of SIGSEGV" in lines[0] and "rerun 1 of 3" in lines[0]
    assert "died of SIGABRT" in lines[1] and "rerun 2 of 3" in lines[1]


def test_reruns_stop_at_the_limit_with_one_error_line(tmp_path):
    lines: list[str] = []
    argv = script(tmp_path, "os.kill(os.getpid(), signal.SIGSEGV)\n")
    assert run_supervised(argv, 2, lines.append) == 128 + signal.SIGSEGV
    assert len(runs(tmp_path)) == 3
    assert lines[-1].startswith("error: ") and "3 time(s)" in lines[-1] and "run the same command again" in lines[-1]


def test_only_crashes_in_a_row_without_progress_use_up_the_reruns(tmp_path):
    """A long run that crashes now and then but saves a checkpoint in between goes on to its end; one that crashes
    without saving anything stops after `retries` reruns."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    argv = script(tmp_path, f"""
        open({str(run / 'checkpoints' / 'last')!r}, "w").write(f"step_{{n:04d}}")  # one more iteration saved
        if n <= 4:
            os.kill(os.getpid(), signal.SIGSEGV)
        sys.exit(0)
    """)
    lines: list[str] = []
    assert run_supervised(argv, 1, lines.append, "aimc train ppo", run_dir_progress(run)) == 0
    assert len(runs(tmp_path)) == 5 and len(lines) == 4
    assert all("rerun 1 of 1 without new progress" in line for line in lines) and "crash 4 in all" in lines[-1]

    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (tmp_path / "runs.txt").unlink()
    lines.clear()
    argv = script(tmp_path, "os.kill(os.getpid(), signal.SIGABRT)\n")  # crashes before saving anything
    assert run_supervised(argv, 1, lines.append, "aimc train ppo", run_dir_progress(stuck)) == 128 + signal.SIGABRT
    assert len(runs(tmp_path)) == 2 and lines[-1].startswith("error: ") and "2 time(s) in a row" in lines[-1]


def test_progress_marker_sees_new_checkpoints_and_finished_stages_only(tmp_path):
    run = tmp_path / "run"
    marker = run_dir_progress(run)
    empty = marker()
    (run / "dagger" / "iter_01" / "train" / "checkpoints").mkdir(parents=True)
    (run / "dagger" / "iter_01" / "train" / "checkpoints" / "last").write_text("step_0001")
    first = marker()
    assert first != empty and first == marker()
    (run / "dagger" / "iter_01" / "train" / "checkpoints" / "last").write_text("step_0002")
    second = marker()
    assert second != first
    (run / "stages").mkdir()
    (run / "stages" / "collect.json").write_text("{}")
    third = marker()
    assert third != second
    (run / "tensorboard").mkdir()  # what every start writes anew is not progress
    (run / "tensorboard" / "events.out.tfevents.1").write_text("x")
    (run / "metrics.jsonl").write_text("{}\n")
    assert marker() == third


@pytest.mark.parametrize("body, code", [
    ("sys.exit(0)\n", 0),
    ("sys.exit(2)\n", 2),  # an expected error: its one line was printed, a rerun would repeat it
    ("sys.exit(130)\n", 130),  # the child's own Ctrl-C handling
    ("os.kill(os.getpid(), signal.SIGTERM)\n", 128 + signal.SIGTERM),  # a scheduler stopping the job
    ("os.kill(os.getpid(), signal.SIGKILL)\n", 128 + signal.SIGKILL),  # e.g. the out-of-memory killer
])
def test_anything_but_a_native_crash_is_not_rerun(tmp_path, body, code):
    lines: list[str] = []
    assert run_supervised(script(tmp_path, body), 3, lines.append) == code
    assert len(runs(tmp_path)) == 1 and lines == []


def test_crash_signals_are_the_native_faults():
    assert signal.SIGSEGV in CRASH_SIGNALS and signal.SIGABRT in CRASH_SIGNALS
    assert not {signal.SIGINT, signal.SIGTERM, signal.SIGKILL} & CRASH_SIGNALS


def test_retry_settings(monkeypatch):
    monkeypatch.delenv("AIMC_CRASH_RETRIES", raising=False)
    assert default_retries() == 3
    monkeypatch.setenv("AIMC_CRASH_RETRIES", "5")
    assert default_retries() == 5
    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv("AIMC_CRASH_RETRIES", bad)
        with pytest.raises(ConfigError, match="AIMC_CRASH_RETRIES"):
            default_retries()
    with pytest.raises(ConfigError, match="--crash-retries -1"):
        supervise_here(["pipeline"], "aimc pipeline", -1)


def test_the_work_runs_here_inside_the_child_or_without_reruns(monkeypatch):
    monkeypatch.setenv(SUPERVISED_ENV, "1")
    assert supervise_here(["train", "ppo"], "aimc train ppo", 3) is None
    monkeypatch.delenv(SUPERVISED_ENV)
    assert supervise_here(["train", "ppo"], "aimc train ppo", 0) is None
