"""The rollout engine: determinism, retries after a raising / dying / hanging worker, and a short suite eval.

Workers run the default `envs_per_worker` slots in lockstep here, so the retry test also shows that only the
failing episode is charged (tests/eval/test_batched_rollout.py covers batching itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimc.eval.baselines import DemonstratorFactory, RandomFactory
from aimc.eval.rollout import EnvSpec, EpisodeJob, run_jobs
from aimc.eval.run import Condition, evaluate_suite, write_outputs
from aimc.eval.tasks import load_suite
from tests.eval.helpers import FaultyEnvSpec, TinyPolicyFactory

ENV16 = {"size": 18, "render_size": 64}


def _jobs(n: int, condition: str = "agent", steps: int = 20) -> list[EpisodeJob]:
    return [EpisodeJob(key=i, condition=condition, task="t", prompt="chop a tree", episode=i, world_seed=100 + i,
                       agent_seed=7 + i, max_steps=steps) for i in range(n)]


def test_inline_runs_are_deterministic_and_record_events():
    factories = {"agent": TinyPolicyFactory(cond_scale=2.0)}
    a = run_jobs(_jobs(2), factories, EnvSpec("crafter", ENV16), workers=0, progress=False)
    b = run_jobs(_jobs(2), factories, EnvSpec("crafter", ENV16), workers=0, progress=False)
    assert [r.occurrences for r in a.results] == [r.occurrences for r in b.results]
    assert all(r.steps == 20 or r.died for r in a.results) and a.retries == 0 and not a.lost
    rand = run_jobs(_jobs(1, "rand", 150), {"rand": RandomFactory()}, EnvSpec("crafter", ENV16), workers=0, progress=False)
    assert rand.results[0].occurrences  # 150 random steps always cause some event (damage, wood, ...)


def test_raising_dying_and_hanging_workers_are_restarted_and_episodes_retried(tmp_path):
    jobs = _jobs(4, "rand", 12)
    faults = ((101, "raise"), (102, "exit"), (103, "hang"))
    env = FaultyEnvSpec("crafter", ENV16, marker_dir=str(tmp_path), faults=faults)
    out = run_jobs(jobs, {"rand": RandomFactory()}, env, workers=1, episode_timeout=3.0, progress=False)
    assert out.retries == 3 and not out.lost
    assert [r.job.key for r in out.results] == [0, 1, 2, 3]
    assert [r.attempts for r in out.results] == [1, 2, 2, 2]
    assert "error: RuntimeError: injected env failure" in out.failures[0]
    assert "crash: worker exited with code 3" in out.failures[1]
    assert "timeout" in out.failures[2]
    clean = run_jobs(jobs, {"rand": RandomFactory()}, EnvSpec("crafter", ENV16), workers=0, progress=False)
    assert [r.occurrences for r in out.results] == [r.occurrences for r in clean.results]  # retry = same episode


def test_episodes_failing_every_attempt_are_reported_lost(tmp_path):
    out = run_jobs(_jobs(1, "rand", 5), {"rand": _AlwaysFails()}, EnvSpec("crafter", ENV16), workers=0,
                   max_attempts=2, progress=False)
    assert not out.results and len(out.lost) == 1 and out.lost[0].attempts == 2 and out.retries == 1


class _AlwaysFails:
    def __call__(self):
        raise ValueError("cannot build agent")


def test_short_suite_eval_writes_json_and_html_with_plots(tmp_path):
    suite = load_suite().select(["chop_tree", "collect_sapling"])
    conditions = [
        Condition("agent", TinyPolicyFactory(cond_scale=3.0), True, 3.0, "agent"),
        Condition("agent@0", TinyPolicyFactory(cond_scale=0.0), True, 0.0, "cfg_sweep"),
        Condition("unconditional", TinyPolicyFactory(zero_goal=True), False, None, "baseline"),
        Condition("demonstrator", DemonstratorFactory(), True, None, "baseline"),
    ]
    import dataclasses

    suite = dataclasses.replace(suite, tasks=tuple(dataclasses.replace(t, max_steps=60) for t in suite.tasks),
                                horizons=(20, 40))
    report, recorded = evaluate_suite(suite, conditions, episodes=2, workers=2, videos=1, progress=False,
                                      env_config=ENV16)
    paths = write_outputs(str(tmp_path / "eval"), report, recorded)
    data = json.loads(Path(paths["json"]).read_text())
    assert set(data["conditions"]) == {"agent", "agent@0", "unconditional", "demonstrator"}
    demo = data["conditions"]["demonstrator"]
    assert demo["tasks"]["chop_tree"]["success"]["n"] == 2
    assert demo["tasks"]["chop_tree"]["success"]["rate"] == 1.0  # the demonstrator always chops a tree in 60 steps
    assert data["conditions"]["unconditional"]["episodes_run"] == 2
    assert data["cfg_sweep"]["scales"] == [0.0, 3.0]
    m = demo["specificity"]["matrix"]["full"]
    assert demo["specificity"]["per_task"]["full"]["chop_tree"] == pytest.approx(m[0][0] - m[1][0])
    assert data["retries"] == 0 and len(data["videos"]) == 1
    html = Path(paths["html"]).read_text()
    for plot in ('id="success-bars"', 'id="specificity-agent-full"', 'id="specificity-demonstrator-20"',
                 'id="cfg-curve"', "<video", "data:video/mp4;base64,"):
        assert plot in html, plot
    assert (tmp_path / "eval" / data["videos"][0]["file"]).stat().st_size > 1000


def test_ray_backend_retries_like_processes(tmp_path):
    pytest.importorskip("ray")
    faults = ((101, "raise"), (102, "exit"))
    env = FaultyEnvSpec("crafter", ENV16, marker_dir=str(tmp_path), faults=faults)
    # One slot per actor: ray cannot tell which slot was stepping when an actor died, so with more slots
    # the crash would charge every episode the actor held.
    out = run_jobs(_jobs(3, "rand", 12), {"rand": RandomFactory()}, env, workers=1, backend="ray", progress=False,
                   envs_per_worker=1)
    assert out.retries == 2 and [r.attempts for r in out.results] == [1, 2, 2]
    raising = FaultyEnvSpec("crafter", ENV16, marker_dir=str(tmp_path / "b"), faults=((101, "raise"),))
    (tmp_path / "b").mkdir()
    out = run_jobs(_jobs(3, "rand", 12), {"rand": RandomFactory()}, raising, workers=1, backend="ray", progress=False,
                   envs_per_worker=3)
    assert out.retries == 1 and [r.attempts for r in out.results] == [1, 2, 1]  # a raise stays in its slot


def test_unknown_backend_and_missing_ray_are_clear_errors():
    from aimc.core.errors import AimcError

    with pytest.raises(AimcError, match="unknown rollout backend 'dask'"):
        run_jobs(_jobs(1, "rand"), {"rand": RandomFactory()}, EnvSpec("crafter", ENV16), backend="dask", progress=False)
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(AimcError, match=r"pip install 'aimc\[ray\]'"):
            run_jobs(_jobs(1, "rand"), {"rand": RandomFactory()}, EnvSpec("crafter", ENV16), backend="ray", progress=False)
