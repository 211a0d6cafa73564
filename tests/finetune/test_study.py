"""The task fine-tuning study: a micro grid end to end (demos, BC from scratch and pretrained, DAgger, PPO,
evaluation, table, plots, report), resume without redoing a stage, growing the grid, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aimc.cli.app import main


def micro(bundle: Path, out: Path, *sets: str, **fields):
    from aimc.finetune.study_config import load_study_config

    return load_study_config("study-micro", list(sets), out=str(out), pretrained=str(bundle), **fields)


@pytest.fixture(scope="module")
def study(tiny_bundle, tmp_path_factory):
    from aimc.finetune.study import run_study

    out = tmp_path_factory.mktemp("study") / "wood"
    summary = run_study(micro(tiny_bundle, out, "demos=[1,2]", "routes=[bc,ppo]"), progress=False, log=lambda _: None)
    return out, summary


def test_micro_grid_runs_every_cell_and_writes_the_report(study):
    out, s = study
    rows = {(r["route"], r["init"], r["n"]): r for r in s["rows"]}
    expected = {("none", "pretrained", 0)} | {(route, init, n) for route in ("bc", "ppo")
                                               for init in ("scratch", "pretrained") for n in (1, 2)}
    assert set(rows) == expected
    for r in s["rows"]:
        assert r["episodes"] == 2 and 0 <= r["successes"] <= 2
        assert r["ci"][0] <= r["success"] <= r["ci"][1]
    # PPO builds on its BC policy: its env steps add rollouts to the demonstrations' frames
    for init in ("scratch", "pretrained"):
        for n in (1, 2):
            bc = rows[("bc", init, n)]
            assert bc["env_steps"] > 0
            assert rows[("ppo", init, n)]["env_steps"] > bc["env_steps"]
            assert rows[("ppo", init, n)]["wall_min"] > bc["wall_min"]
    ppo = json.loads((out / "cells" / "s0" / "scratch" / "n2" / "ppo" / "ppo_config.json").read_text())
    assert ppo["bundle"] == str(out / "cells" / "s0" / "scratch" / "n2" / "bc") and ppo["tasks"] == ["chop_tree"]
    assert ppo["planner"] == "none"  # the pretrained bundle's own: the tiny bundle does not chain
    # without a planner the demonstrations are labelled with the task on every step
    collected = json.loads((out / "demos" / "seed0" / "collect_config.json").read_text())
    assert collected["agent_config"]["goal_label"] == "task"
    # N demonstrations = the pool's first N episodes; BC trained on exactly them
    demos = json.loads((out / "stages" / "s0_demos.json").read_text())
    assert len(demos["lengths"]) == 2
    bc2 = json.loads((out / "stages" / "s0_pretrained_n2_bc.json").read_text())
    assert bc2["demo_frames"] == sum(demos["lengths"][:2]) and bc2["skipped_episodes"] == 0
    cfg = json.loads((out / "cells" / "s0" / "scratch" / "n2" / "bc" / "train_config.json").read_text())
    assert cfg["init_from"] is None and cfg["data"][0]["max_episodes"] == 2
    assert cfg["anchor_kl"] == 0.0 and cfg["anchor_from"] is None  # a fresh network has no anchor
    cfg = json.loads((out / "cells" / "s0" / "pretrained" / "n1" / "bc" / "train_config.json").read_text())
    assert cfg["init_from"] and cfg["data"][0]["goal_source"] == "intention" and cfg["batch_size"] == 1
    assert cfg["anchor_kl"] == 1.0 and cfg["anchor_from"] == cfg["init_from"]  # anchored to the pretrained agent
    # outputs
    assert (out / "study.md").read_text().count("\n| ") == len(expected) + 1
    for name in ("success_vs_demos", "success_vs_wall", "success_vs_steps"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "scratch + BC + PPO" in page


def test_rerun_skips_finished_stages_and_a_wider_grid_runs_only_new_cells(study, tiny_bundle):
    from aimc.finetune.study import run_study

    out, first = study
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    again = run_study(micro(tiny_bundle, out, "demos=[1,2]", "routes=[bc,ppo]"), progress=False, log=lambda _: None)
    assert again["rows"] == first["rows"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()} == markers
    # an interrupted stage (its marker lost) reruns alone and the study ends with the same cells
    (out / "stages" / "s0_scratch_n2_eval_bc.json").unlink()
    again = run_study(micro(tiny_bundle, out, "demos=[1,2]", "routes=[bc,ppo]"), progress=False, log=lambda _: None)
    assert len(again["rows"]) == len(first["rows"])
    wider = run_study(micro(tiny_bundle, out, "routes=[bc]", "demos=[2,3]", "inits=[pretrained]"), progress=False,
                      log=lambda _: None)
    assert {(r["route"], r["n"]) for r in wider["rows"] if r["route"] != "none"} == {("bc", 2), ("bc", 3)}
    assert len(json.loads((out / "stages" / "s0_demos.json").read_text())["lengths"]) == 3  # the pool grew to 3
    now = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    rewritten = {name for name in markers if now[name] != markers[name]}
    assert rewritten == {"s0_demos.json", "s0_scratch_n2_eval_bc.json"}  # the grown pool, the rerun stage


def test_changed_settings_on_an_existing_study_fail(study, tiny_bundle):
    from aimc.core.errors import AimcError
    from aimc.finetune.study import run_study

    out, _ = study
    with pytest.raises(AimcError, match="bc_epochs"):
        run_study(micro(tiny_bundle, out, "demos=[1,2]", "bc_epochs=5"), progress=False, log=lambda _: None)


def test_dagger_route_aggregates_the_demonstrations(tiny_bundle, tmp_path):
    from aimc.finetune.study import run_study

    out = tmp_path / "dagger"
    s = run_study(micro(tiny_bundle, out, "demos=[2]", "inits=[pretrained]", "routes=[bc_dagger]", "eval_baseline=false",
                        "planner=chain"), progress=False, log=lambda _: None)
    (row,) = s["rows"]
    assert (row["route"], row["n"], row["episodes"]) == ("bc_dagger", 2, 2)
    dc = json.loads((out / "cells" / "s0" / "pretrained" / "n2" / "dagger" / "dagger_config.json").read_text())
    # the study's planner plays every rollout: DAgger's learner and each policy's evaluation
    assert dc["planner"] == "chain"
    # ... and the demonstrations carry the sub-instruction the chain tells at each step, as DAgger's labels do
    collected = json.loads((out / "demos" / "seed0" / "collect_config.json").read_text())
    assert collected["agent_config"]["goal_label"] == "step"
    evals = [json.loads(p.read_text()) for p in out.rglob("eval_config.json")]
    assert evals and all(e["planner"] == "chain" for e in evals)
    assert dc["bundle"] == str(out / "cells" / "s0" / "pretrained" / "n2" / "bc") and dc["tasks"] == ["collect_wood"]
    assert dc["data"] == [{"path": str(out / "demos" / "seed0"), "weight": 1.0, "goal_source": "intention", "max_episodes": 2}]
    tc = json.loads((out / "cells" / "s0" / "pretrained" / "n2" / "dagger" / "iter_01" / "train" / "train_config.json").read_text())
    assert tc["segment"]["segment_len"] == 8 and tc["data"][0]["max_episodes"] == 2
    # each DAgger fine-tune starts from the BC policy but stays anchored to the pretrained agent
    bc_tc = json.loads((out / "cells" / "s0" / "pretrained" / "n2" / "bc" / "train_config.json").read_text())
    assert tc["init_from"] != tc["anchor_from"] == bc_tc["init_from"] and tc["anchor_kl"] == 1.0
    assert dc["skip_explore"] is True
    bc = json.loads((out / "stages" / "s0_pretrained_n2_bc.json").read_text())
    assert row["env_steps"] > bc["demo_frames"]


def test_bad_input_is_one_line_and_writes_nothing(tiny_bundle, tmp_path, capsys):
    base = ["study", "task-finetune", "--preset", "study-micro", "--pretrained", str(tiny_bundle), "--quiet"]
    cases = [
        (["--task", "collect_wod"], "unknown task 'collect_wod'; valid tasks: collect_coal"),
        (["--route", "sft"], "routes: unknown 'sft'; valid: bc, bc_dagger, ppo"),
        (["--demos", "0"], "demos: give one or more counts >= 1"),
        (["--set", "bc.n_frames=10"], "bc: the study sets ['n_frames'] itself"),
        (["--set", "ppo.tasks=[chop_tree]"], "ppo: the study sets ['tasks'] itself"),
        (["--set", "planner=fancy"], "unknown planner 'fancy'"),
        (["--set", "demo_goals=subgoal"], "demo_goals must be 'task' or 'step'"),
    ]
    for extra, message in cases:
        out = tmp_path / "s"
        assert main([*base, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not out.exists()
    # a policy over another action space than the world's
    bad = tmp_path / "bad_bundle"
    shutil.copytree(tiny_bundle, bad)
    meta_path = next(p for p in bad.rglob("config.json") if "n_actions" in p.read_text())
    meta = json.loads(meta_path.read_text())
    meta["config"]["n_actions"] = 5
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "s2"
    assert main([*base[:4], "--pretrained", str(bad), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not fit world 'crafter'" in err and err.count("\n") == 1, err
    assert not (out / "demos").exists()


def test_more_demonstrations_than_the_store_holds_is_one_clear_error(demo_store, tmp_path):
    from aimc.core.errors import AimcError
    from aimc.train.config import load_train_config
    from aimc.train.loop import build_data

    cfg = load_train_config("test", overrides=[f"out={tmp_path / 'run'}"],
                            data=[{"path": str(demo_store), "max_episodes": 50}])
    with pytest.raises(AimcError, match="holds 5 valid episode"):
        build_data(cfg)
    cfg = load_train_config("test", overrides=[f"out={tmp_path / 'run'}", "val_fraction=0"],
                            data=[{"path": str(demo_store), "max_episodes": 2}])
    train, _, _ = build_data(cfg)
    assert len(train.episodes) == 2 and [p.name for p in train.episodes] == sorted(p.name for p in train.episodes)
