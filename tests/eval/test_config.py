"""`EvalConfig` (checked values, listed keys) and `run_eval`, the eval recipe the CLI and the pipeline share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimc.core.config import from_dict, load_config
from aimc.core.errors import AimcError, ConfigError
from aimc.eval.config import EvalConfig
from aimc.eval.run import run_eval


@pytest.mark.parametrize("fields, message", [
    ({"baselines": ["demonstrator", "randm"]}, "unknown baseline(s) ['randm']; choose from unconditional, demonstrator"),
    ({"episodes": 0}, "episodes must be >= 1"),
    ({"max_steps": -1}, "max_steps must be >= 1"),
    ({"videos": -1}, "videos must be >= 0"),
    ({"backend": "dask"}, "unknown rollout backend 'dask'; choose process or ray"),
    ({"episode_timeout": 0.0}, "episode_timeout must be > 0"),
    ({"temperature": 0.0}, "temperature must be > 0 (1 = plain sampling), got 0.0"),
])
def test_bad_values_are_one_line_errors(fields, message):
    with pytest.raises(ConfigError) as e:
        EvalConfig(**fields)
    assert str(e.value).startswith(message)


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        from_dict(EvalConfig, {"episdes": 3}, where="eval")
    assert str(e.value).startswith("eval: unknown key(s) ['episdes']; valid keys: ['backend', 'baselines',")


def test_run_eval_without_a_checkpoint_runs_the_baselines_and_saves_its_config(tmp_path):
    cfg = EvalConfig(tasks=["collect_sapling", "chop_tree"], episodes=1, max_steps=40, videos=0, workers=0,
                     out=str(tmp_path / "ev"))
    s = run_eval(cfg, progress=False)
    # No bundle: the default unconditional baseline is dropped, the demonstrator stays.
    assert list(s["mean_success"]) == ["demonstrator"] and s["retries"] == 0 and s["lost_episodes"] == 0
    report = json.loads(Path(s["json"]).read_text())
    assert report["tasks"] == ["collect_sapling", "chop_tree"] and report["episodes"] == 1
    assert report["workers"] == 0 and report["backend"] == "process" and report["seed"] == 0
    chop = report["conditions"]["demonstrator"]["tasks"]["chop_tree"]
    assert chop["success"]["n"] == 1 and chop["median_steps_to_success"] <= 40
    assert Path(s["html"]).is_file() and load_config(EvalConfig, s["config"]) == cfg


def test_run_eval_needs_a_checkpoint_for_the_cfg_sweep(tmp_path):
    with pytest.raises(AimcError, match="need --checkpoint"):
        run_eval(EvalConfig(cfg_scales=[1.0], out=str(tmp_path / "o")), progress=False)


def test_envs_per_worker_default_matches_the_engine_and_reaches_it(monkeypatch, tmp_path):
    from aimc.eval import rollout
    from aimc.eval.config import EvalConfig
    from aimc.eval.run import run_eval

    assert EvalConfig().envs_per_worker == rollout.DEFAULT_ENVS_PER_WORKER  # config stays torch-free, so it repeats it
    with pytest.raises(ConfigError, match="envs_per_worker"):
        EvalConfig(envs_per_worker=0)
    seen = {}
    real = rollout.run_jobs

    def spy(*args, **kwargs):
        seen["envs"] = kwargs.get("envs_per_worker")
        return real(*args, **kwargs)

    monkeypatch.setattr("aimc.eval.run.run_jobs", spy)
    run_eval(EvalConfig(baselines=["random"], tasks=["chop_tree"], episodes=1, max_steps=5, videos=0, workers=0,
                        envs_per_worker=3, out=str(tmp_path / "ev")), progress=False)
    assert seen["envs"] == 3
