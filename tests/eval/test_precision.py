"""Acting precision through `aimc eval tasks`: the agent acts in what the config asks where the CPU computes it,
and the report says what ran."""

from __future__ import annotations

import json

import pytest

from aimc.cli.app import main
from aimc.core.precision import ENV_OVERRIDE
from aimc.eval.agent import TextAgent
from aimc.eval.play import shipped_bundle


@pytest.mark.parametrize(("native", "ran"), [("1", "bf16"), ("0", "fp32")])
def test_eval_tasks_acts_and_reports_the_precision(monkeypatch, tmp_path, native, ran):
    monkeypatch.setenv(ENV_OVERRIDE, native)
    out = tmp_path / "ev"
    code = main(["eval", "tasks", "--tasks", "chop_tree", "--episodes", "1", "--max-steps", "3", "--baselines", "",
                 "--videos", "0", "--workers", "0", "--precision", "bf16", "--out", str(out)])
    assert code == 0
    assert json.loads((out / "report.json").read_text())["precision"] == ran
    agent = TextAgent.from_bundle(shipped_bundle(), precision="bf16")
    agent.start(agent.goal_from_text(["chop a tree"]))
    assert agent._agent is not None and agent._agent.precision == ran


def test_an_unknown_precision_is_one_line(tmp_path, capsys):
    assert main(["eval", "tasks", "--precision", "fp16", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "precision must be fp32 or bf16, got 'fp16'" in err and "\n" not in err
    assert not (tmp_path / "ev").exists()
