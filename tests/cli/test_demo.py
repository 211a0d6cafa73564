"""`aimc demo`: the demonstrator's episodes, every event they hold printed, and a video ending on the final state."""

from __future__ import annotations

from collections import Counter

from aimc.cli.app import main
from aimc.core.video import count_frames
from aimc.data import Episode, list_episodes


def test_demo_prints_every_event_and_writes_the_final_state(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--episodes", "1", "--steps", "50", "--size", "64"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("1 episode(s)", "watch:"))]
    eps = [Episode(p) for p in list_episodes(out / "episodes")]
    assert len(eps) == 1
    counts = Counter(e for ep in eps for step in ep.events for e in step)
    assert counts, "the demonstrator caused no event in 50 steps"
    printed = dict(item.rsplit(" ", 1) for item in lines[0].split("; events: ", 1)[1].split(", "))
    assert {k: int(v) for k, v in printed.items()} == dict(counts)  # all of them, none cut off
    assert lines[0].startswith(f"1 episode(s) in {out / 'episodes'}") and lines[1] == f"watch: {out / 'demo.mp4'}"
    assert count_frames(out / "demo.mp4") == eps[0].length + 1

    assert main(["demo", "--out", str(out), "--episodes", "0"]) == 2
    assert capsys.readouterr().err == "error: --episodes must be at least 1, got 0\n"
