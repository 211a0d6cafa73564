"""`aimc eval tasks` end to end on baselines (2 tasks, 2 episodes, 2 workers) and its error path."""

from __future__ import annotations

import json

from aimc.cli.app import main


def test_eval_tasks_baselines_writes_report(tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["eval", "tasks", "--baselines-only", "--tasks", "chop_tree,collect_sapling", "--episodes", "2", "--workers", "2",
                 "--max-steps", "40", "--baselines", "demonstrator,random", "--videos", "1", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    assert data["tasks"] == ["chop_tree", "collect_sapling"] and data["episodes"] == 2
    demo = data["conditions"]["demonstrator"]
    assert demo["tasks"]["chop_tree"]["success"]["n"] == 2 and demo["tasks"]["chop_tree"]["success"]["rate"] == 1.0
    assert data["conditions"]["random"]["episodes_run"] == 2 and "specificity" not in data["conditions"]["random"]
    html = (out / "report.html").read_text()
    assert 'id="success-bars"' in html and 'id="specificity-demonstrator-full"' in html and "<video" in html
    assert "wrote" in capsys.readouterr().out


def test_eval_tasks_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("tasks:\n  - name: a\n    success: {any: [collect_wood]}\n    max_steps: -3\n")
    assert main(["eval", "tasks", "--suite", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "s.yaml:4: tasks[0] (a).max_steps: expected an integer >= 1" in err
    assert main(["eval", "tasks", "--baselines-only", "--cfg-scales", "1,2", "--out", str(tmp_path / "o")]) == 2
    assert "need --checkpoint" in capsys.readouterr().err
    assert main(["eval", "tasks", "--baselines-only", "--checkpoint", "x", "--out", str(tmp_path / "o")]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_eval_tasks_defaults_to_the_shipped_agent(tmp_path, monkeypatch):
    """Like `aimc play`: no --checkpoint means the agent installed with aimc (run_eval is stubbed to see the config)."""
    from aimc.eval import play

    seen = {}

    def fake_run_eval(cfg):
        seen["cfg"] = cfg
        return {"mean_success": {}, "retries": 0, "lost_episodes": 0, "json": "j", "html": "h"}

    monkeypatch.setattr("aimc.eval.run.run_eval", fake_run_eval)
    assert main(["eval", "tasks", "--episodes", "1", "--out", str(tmp_path / "o")]) == 0
    assert seen["cfg"].checkpoint == str(play.shipped_bundle())
    assert main(["eval", "tasks", "--baselines-only", "--out", str(tmp_path / "o")]) == 0
    assert seen["cfg"].checkpoint is None
