"""Sampling temperature through the user's paths: the bundle's default, the caller's override, the report."""

from __future__ import annotations

import json
import shutil

import pytest

from aimc.core.errors import AimcError
from aimc.eval.agent import TextAgent
from aimc.eval.config import EvalConfig
from aimc.eval.play import play, shipped_bundle
from aimc.eval.run import run_eval


@pytest.fixture(scope="module")
def warm_bundle(tmp_path_factory):
    """The shipped agent, with `temperature` 0.25 written into its bundle.json."""
    root = tmp_path_factory.mktemp("bundle") / "agent"
    shutil.copytree(shipped_bundle(), root)
    meta = json.loads((root / "bundle.json").read_text())
    (root / "bundle.json").write_text(json.dumps({**meta, "temperature": 0.25}))
    return root


def test_the_callers_temperature_wins_over_the_bundles(warm_bundle):
    assert TextAgent.from_bundle(shipped_bundle()).temperature == 1.0  # the shipped bundle sets none
    assert TextAgent.from_bundle(warm_bundle).temperature == 0.25
    agent = TextAgent.from_bundle(warm_bundle, temperature=2.0)
    agent.start(agent.goal_from_text(["chop a tree"]))
    assert agent._agent is not None and agent._agent.temperature == 2.0
    with pytest.raises(AimcError, match="temperature must be > 0"):
        TextAgent.from_bundle(warm_bundle, temperature=-1.0)


def test_eval_and_play_report_and_check_the_temperature(warm_bundle, tmp_path):
    def run(**kw):
        out = tmp_path / f"ev{len(list(tmp_path.iterdir()))}"
        run_eval(EvalConfig(checkpoint=str(warm_bundle), tasks=["chop_tree"], episodes=1, max_steps=3, baselines=[],
                            videos=0, workers=0, out=str(out), **kw), progress=False)
        return json.loads((out / "report.json").read_text())["temperature"]

    assert run() == 0.25 and run(temperature=0.5) == 0.5
    with pytest.raises(AimcError, match="--temperature must be > 0"):
        play(warm_bundle, "chop a tree", steps=2, temperature=0.0)
