"""`DaggerConfig`: the β schedule, task and section checks, presets, seeds; all without torch or a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aimc.core.errors import ConfigError, UnknownNameError
from aimc.finetune.config import DaggerConfig, beta_at, load_dagger_config, preset_names, valid_tasks


@pytest.mark.parametrize(("schedule", "beta0", "decay", "expected"), [
    ("constant", 0.0, 0.5, [0.0, 0.0, 0.0, 0.0]),
    ("constant", 0.3, 0.5, [0.3, 0.3, 0.3, 0.3]),
    ("linear", 1.0, 0.4, [1.0, 0.6, 0.2, 0.0]),  # clamped at 0, never negative
    ("linear", 0.5, 0.0, [0.5, 0.5, 0.5, 0.5]),
    ("exponential", 1.0, 0.5, [1.0, 0.5, 0.25, 0.125]),  # classic DAgger: beta_k = p^(k-1)
    ("exponential", 0.8, 0.0, [0.8, 0.0, 0.0, 0.0]),
])
def test_beta_schedule_values(schedule, beta0, decay, expected):
    cfg = DaggerConfig(beta_schedule=schedule, beta0=beta0, beta_decay=decay)
    assert [beta_at(cfg, k) for k in (1, 2, 3, 4)] == pytest.approx(expected)
    with pytest.raises(ConfigError, match="count from 1"):
        beta_at(cfg, 0)


@pytest.mark.parametrize(("sets", "needle"), [
    (["beta0=1.5"], "beta0 must be in [0, 1]"),
    (["beta_schedule=exponential", "beta_decay=2"], "beta_decay must be >= 0 (and <= 1"),
    (["beta_schedule=cosine"], "beta_schedule: 'cosine' is not one of"),
    (["iterations=0"], "iterations must be >= 1"),
    (["envs_per_worker=0"], "envs_per_worker must be >= 1"),
    (["precision=fp16"], "precision must be fp32 or bf16, got 'fp16'"),
    (["tasks=[]"], "give at least one task; valid tasks: collect_coal"),
    (["train.lrr=1"], "train: unknown key(s) ['lrr']; valid keys:"),
    (["train.init_from=x"], "train: ['init_from'] cannot be set here"),
    (["train.segment.goal_source=oracle"], "goal_source must be"),
    (["train_preset=nope"], "unknown training preset 'nope'; available:"),
    (["demonstrator.mode=free"], "labeller runs in task mode"),
    (["demonstrator.noise=0.1"], "demonstrator: unknown key(s) ['noise']"),
])
def test_bad_settings_fail_in_one_line(sets, needle):
    with pytest.raises((ConfigError, UnknownNameError)) as e:
        load_dagger_config("micro", sets)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(UnknownNameError) as e:
        DaggerConfig(tasks=["collect_wood", "fly_to_the_moon"])
    msg = str(e.value)
    assert msg.startswith("unknown task 'fly_to_the_moon'; valid tasks: ")
    assert set(msg.split("valid tasks: ")[1].split(", ")) == set(valid_tasks())
    assert len(valid_tasks()) == 22 and "collect_diamond" in valid_tasks()  # every Crafter achievement


def test_presets_load_and_defaults_are_rung_3():
    assert {"crafter", "classic", "micro"} <= set(preset_names())
    for name in preset_names():
        load_dagger_config(name)
    cfg = DaggerConfig()
    assert cfg.iterations >= 3 and beta_at(cfg, 1) == 0.0 and cfg.train_preset == "finetune"
    classic = load_dagger_config("classic")
    assert [beta_at(classic, k) for k in (1, 2, 3)] == [1.0, 0.5, 0.25]
    over = load_dagger_config("micro", ["beta0=0.25", "train.lr=1e-4"], tasks=["eat_cow"], seed=3)
    assert (over.beta0, over.train["lr"], over.tasks, over.seed) == (0.25, 1e-4, ["eat_cow"], 3)
    with pytest.raises(UnknownNameError, match="unknown DAgger preset 'nope'; available: classic, crafter, micro"):
        load_dagger_config("nope")


def test_dagger_worlds_are_disjoint_from_the_eval_suites():
    from aimc.eval.tasks import load_suite
    from aimc.finetune.rollout import DAGGER_SEED_BASE, make_jobs

    suites = Path(__import__("aimc.eval", fromlist=["x"]).__file__).parent / "suites"
    for path in suites.glob("*.yaml"):
        suite = load_suite(path)
        # eval episode i plays world task.seed + i; even 100k episodes stay below the DAgger range
        assert all(t.seed + 100_000 < DAGGER_SEED_BASE for t in suite.tasks), path
    jobs = [j for k in (1, 2, 3) for j in make_jobs(["collect_wood", "place_table"], 50, 0.0, 10, 0, f"iter{k}")]
    seeds = [j.world_seed for j in jobs]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= DAGGER_SEED_BASE and max(seeds) < 2**32
    assert [j.task for j in jobs[:4]] == ["collect_wood", "place_table"] * 2
    from aimc.embed.captions import CAPTIONS

    assert all(j.prompt in CAPTIONS[j.task] for j in jobs)
    assert len({j.prompt for j in jobs if j.task == "collect_wood"}) > 1  # paraphrases vary per episode
    assert make_jobs(["eat_cow"], 3, 0.5, 10, 0, "iter1") == make_jobs(["eat_cow"], 3, 0.5, 10, 0, "iter1")


def test_config_module_loads_no_torch():
    code = "import sys, aimc.finetune, aimc.finetune.config as c; c.load_dagger_config('crafter'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_text_goal_table_covers_every_goal_source_of_the_data():
    """Base data on event text + DAgger stores on intentions: one table holds both name sets, the event
    names exactly as without the override (so event-text goals are unchanged), intentions added."""
    from aimc.data.config import SegmentConfig
    from aimc.embed.captions import INTENTIONS
    from aimc.train.config import TrainConfig
    from aimc.train.text_goals import caption_sets

    seg = SegmentConfig(goal_source="event_text")
    events = caption_sets(seg)
    both = caption_sets(seg, {"event_text", "intention"})
    assert {k: both[k] for k in events} == events and "take_damage" not in both and "death" not in both
    assert set(both) - set(events) == set(INTENTIONS) - set(events) - set(seg.anchor_ignore) and "explore" in both
    assert caption_sets(SegmentConfig(goal_source="visual"), {"visual", "intention"}) == dict(INTENTIONS)
    from aimc.core.config import from_dict

    tc = from_dict(TrainConfig, {"data": [{"path": "a"}, {"path": "b", "goal_source": "intention"}],
                                 "segment": {"goal_source": "event_text"}})
    assert tc.goal_sources() == {"event_text", "intention"} and TrainConfig().goal_sources() == {"visual"}
    with pytest.raises(ConfigError, match="data goal_source must be"):
        from_dict(TrainConfig, {"data": [{"path": "b", "goal_source": "oracle"}]})
