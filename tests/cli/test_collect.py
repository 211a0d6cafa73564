"""`aimc collect` / `aimc video` through the CLI entry point: values, resume, bad input."""

from __future__ import annotations

import json

import numpy as np

from aimc.cli.app import main
from aimc.core.video import count_frames
from aimc.data import DatasetIndex, Episode


def test_collect_resume_and_same_bytes_across_workers(tmp_path, capsys):
    out1, out2 = tmp_path / "one", tmp_path / "two"
    assert main(["collect", "--agent", "random", "--episodes", "2", "--max-steps", "40", "--out", str(out1), "--quiet"]) == 0
    assert "collected 2 episode(s) (0 already present)" in capsys.readouterr().out
    assert main(["collect", "--agent", "random", "--episodes", "3", "--max-steps", "40", "--out", str(out1), "--quiet"]) == 0
    assert "collected 1 episode(s) (2 already present)" in capsys.readouterr().out
    assert main(["collect", "--agent", "random", "--episodes", "3", "--max-steps", "40", "--out", str(out2),
                 "--workers", "2", "--quiet"]) == 0
    idx1, idx2 = DatasetIndex.scan(out1), DatasetIndex.scan(out2)
    assert [p.name for p in idx1.episodes] == [p.name for p in idx2.episodes] and len(idx1) == 3
    for p1, p2 in zip(idx1.episodes, idx2.episodes, strict=True):
        e1, e2 = Episode(p1), Episode(p2)
        assert e1.actions.tolist() == e2.actions.tolist()
        assert np.array_equal(e1.frames(), e2.frames())
        assert e1.metadata["world_seed"] == e2.metadata["world_seed"]
    assert json.loads((out1 / "collect_config.json").read_text())["episodes"] == 3


def test_collect_bad_input_one_line_each(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("precious")
    cases = [
        (["--world", "minecraft-x", "--out", str(tmp_path / "a")], "unknown world 'minecraft-x'; available: crafter"),
        (["--episodes", "-2", "--out", str(tmp_path / "b")], "--episodes must be >= 0"),
        (["--workers", "0", "--out", str(tmp_path / "b")], "--workers must be positive"),
        (["--out", str(tmp_path)], "is not an episode store"),
        (["--out", str(tmp_path / "notes.txt")], "is not a directory"),
        (["--out", "/proc/aimc-cannot-write"], "not writable"),
        (["--agent", "genius", "--out", str(tmp_path / "c")], "unknown collection agent 'genius'"),
    ]
    for args, message in cases:
        code = main(["collect", "--episodes", "1", "--max-steps", "5", "--quiet", *args] if "--episodes" not in args
                    else ["collect", "--max-steps", "5", "--quiet", *args])
        err = capsys.readouterr().err.strip()
        assert code == 2, args
        assert message in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "notes.txt").read_text() == "precious"
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_collect_refuses_changed_settings(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["collect", "--agent", "random", "--episodes", "1", "--max-steps", "10", "--out", str(out), "--quiet"]) == 0
    assert main(["collect", "--agent", "random", "--episodes", "1", "--max-steps", "11", "--out", str(out), "--quiet"]) == 2
    assert "different settings (max_steps)" in capsys.readouterr().err


def test_video_renders_high_res_with_events(random_store, tmp_path, capsys):
    ep = sorted(random_store.iterdir())[1]
    out = tmp_path / "v.mp4"
    assert main(["video", str(ep), "--out", str(out), "--size", "256"]) == 0
    n = Episode(ep).length + 1  # every state before an action, and the one after the last
    assert f"({n} frames, 256px, replay)" in capsys.readouterr().out  # re-rendered from the deterministic world
    assert count_frames(out) == n
    from aimc.core.video import read_mp4

    frame = read_mp4(out, 0, 1)[0]
    assert frame.shape == (256, 256, 3)
    assert main(["video", str(tmp_path / "missing")]) == 2


def test_ctrl_c_keeps_finished_episodes_and_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "store"
    args = [sys.executable, "-m", "aimc", "collect", "--agent", "random", "--episodes", "40",
            "--max-steps", "150", "--out", str(out), "--quiet"]
    # restore default SIGINT handling in the child (a shell may start us with SIGINT ignored)
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and len([p for p in out.glob("ep*")]) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    finished = DatasetIndex.scan(out)
    assert 2 <= len(finished) < 40 and not finished.skipped  # everything visible is a complete episode
    assert main(["collect", "--agent", "random", "--episodes", "40", "--max-steps", "150", "--out", str(out), "--quiet"]) == 0
    assert len(DatasetIndex.scan(out)) == 40
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]


def test_collect_task_demonstrations_end_at_success(tmp_path, capsys):
    """`--task T`: the demonstrator pursues T from a fresh world and each episode ends at the step T fires."""
    out = tmp_path / "wood"
    assert main(["collect", "--out", str(out), "--task", "collect_wood", "--episodes", "3", "--max-steps", "150",
                 "--seed", "4", "--quiet"]) == 0
    capsys.readouterr()
    eps = [Episode(p) for p in sorted(out.glob("ep*"))]
    assert len(eps) == 3
    for ep in eps:
        assert ep.metadata["task"] == "collect_wood" and ep.metadata["demonstrator"]["mode"] == "task"
        assert "collect_wood" in ep.events[-1]  # the success is the last step ...
        assert not any("collect_wood" in ev for ev in ep.events[:-1])  # ... and the first
        assert ep.length < 150
    # a task the demonstrator cannot pursue, or a task for an agent that cannot demonstrate: one line, nothing written
    for args, words in ((["--task", "fly"], "unknown demonstrator task 'fly'"),
                        (["--task", "collect_wood", "--agent", "random"], "--task needs the demonstrator")):
        bad = tmp_path / "bad"
        assert main(["collect", "--out", str(bad), "--episodes", "1", "--quiet", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
        assert not bad.exists()
