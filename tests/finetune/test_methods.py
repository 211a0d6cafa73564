"""Note 004's methods study: every method end to end on a micro world (demonstrations of two tasks, each
method's fine-tunes with the right data and init chain, suite evaluations, gain/forgetting table, plot, report),
resume without redoing a stage, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimc.cli.app import main

DEMONSTRATOR = {"pocket_shelter": True}  # the study's demonstrator section (checked to reach the recordings)


def micro(bundle: Path, out: Path, original: Path, *sets: str, **fields):
    from aimc.finetune.methods_config import load_methods_config

    return load_methods_config("methods-micro", list(sets), out=str(out), pretrained=str(bundle),
                               original=str(original), **{"demonstrator": DEMONSTRATOR, **fields})


@pytest.fixture(scope="module")
def study(tiny_bundle, demo_store, tmp_path_factory):
    from aimc.finetune.methods import run_methods

    out = tmp_path_factory.mktemp("methods") / "wood"
    summary = run_methods(micro(tiny_bundle, out, demo_store), progress=False, log=lambda _: None)
    return out, summary


def test_every_method_runs_and_the_table_compares_it_with_the_pretrained_agent(study, demo_store):
    out, s = study
    assert [r["method"] for r in s["rows"]] == ["pretrained", "relabel", "fixed", "mixed", "progressive", "joint"]
    assert (s["target"], s["second"]) == ("chop_tree", "place_table")
    assert len(s["others"]) == 10 and "chop_tree" not in s["others"] and "place_table" not in s["others"]
    base = s["rows"][0]
    assert base["target"]["gain"] == 0.0 and base["others"]["forgetting"] == 0.0 and not base["meets_target"]
    for r in s["rows"]:
        assert len(r["per_task"]) == 12
        lo, hi = r["others"]["forgetting_ci"]
        assert lo <= r["others"]["forgetting"] <= hi
        # gain and forgetting are differences from the pretrained agent's evaluation on the same tasks
        assert r["target"]["gain"] == pytest.approx(r["per_task"]["chop_tree"] - base["per_task"]["chop_tree"])
        others = [r["per_task"][t] - base["per_task"][t] for t in s["others"]]
        assert r["others"]["forgetting"] == pytest.approx(-sum(others) / len(others))

    def tc(name):
        return json.loads((out / "runs" / name / "train_config.json").read_text())

    demos = {t: str(out / "demos" / t) for t in ("collect_wood", "place_table")}
    assert [(p["path"], p["goal_source"]) for p in tc("relabel")["data"]] == [(demos["collect_wood"], "event_text")]
    fixed = tc("fixed")
    assert fixed["fixed_prompt"] == s["fixed_prompt"] and fixed["fixed_prompt"]
    mixed = tc("mixed")["data"]
    assert [(p["path"], p["weight"]) for p in mixed] == [(demos["collect_wood"], 0.7), (str(demo_store), 0.3)]
    # progressive: the second task first, then the target from that policy; the others start from the bundle
    p1, p2 = tc("progressive_1"), tc("progressive_2")
    assert p1["data"][0]["path"] == demos["place_table"] and p2["data"][0]["path"] == demos["collect_wood"]
    assert p2["init_from"] == str(out / "runs" / "progressive_1") and p1["init_from"] == tc("joint")["init_from"]
    assert sorted(p["path"] for p in tc("joint")["data"]) == sorted(demos.values())
    assert all(tc(n)["fixed_prompt"] is None for n in ("relabel", "mixed", "progressive_1", "joint"))
    # outputs
    md = (out / "methods.md").read_text()
    assert md.count("\n| relabel |") == 1 and "\n| chop_tree |" in md
    assert (out / "plots" / "gain_forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "<table>" in page and "progressive" in page
    # every policy is played the same way: the pretrained bundle's planner (the tiny one has none)
    evals = [json.loads(p.read_text()) for p in out.rglob("eval_config.json")]
    assert len(evals) == len(s["rows"]) and {e["planner"] for e in evals} == {"none"}
    # and the task demonstrations are labelled with the task (a chaining agent's would carry each planner step)
    # (and recorded by the demonstrator as the study's `demonstrator` section configured it)
    for t in ("collect_wood", "place_table"):
        agent_config = json.loads((out / "demos" / t / "collect_config.json").read_text())["agent_config"]
        assert agent_config["goal_label"] == "task" and agent_config["pocket_shelter"] is True


def test_rerun_skips_finished_stages_and_new_methods_are_added(study, tiny_bundle, demo_store):
    from aimc.finetune.methods import run_methods

    out, first = study
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    again = run_methods(micro(tiny_bundle, out, demo_store), progress=False, log=lambda _: None)
    assert again["rows"] == first["rows"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()} == markers
    # a lost evaluation marker reruns that evaluation alone
    (out / "stages" / "eval_fixed.json").unlink()
    again = run_methods(micro(tiny_bundle, out, demo_store, methods=["fixed"]), progress=False, log=lambda _: None)
    assert [r["method"] for r in again["rows"]] == ["pretrained", "fixed"]
    now = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    assert {n for n in markers if now[n] != markers[n]} == {"eval_fixed.json"}


def test_event_text_task_demonstrations_train_without_visual_embeddings(study):
    """The relabel method reads short task demonstrations (no visual embeddings) with event-text goals: they
    are chunked from frame 0 and padded, none is skipped."""
    out, _ = study
    marker = json.loads((out / "stages" / "train_relabel.json").read_text())
    assert marker["skipped_episodes"] == 0 and marker["train_frames"] >= 32


def test_bad_input_is_one_line_and_writes_nothing(tiny_bundle, demo_store, tmp_path, capsys):
    base = ["study", "goal-finetune", "--preset", "methods-micro", "--pretrained", str(tiny_bundle), "--quiet"]
    cases = [
        (["--method", "distill", "--original", str(demo_store)], "methods: unknown 'distill'; valid: relabel, fixed"),
        (["--method", "mixed"], "the mixed method needs `original`"),
        (["--method", "mixed", "--original", str(tmp_path / "nowhere")], "holds no episodes"),
        (["--task", "collect_wod", "--method", "fixed"], "task: unknown task 'collect_wod'"),
        (["--second-task", "collect_wood", "--method", "joint"], "second_task is the target task"),
        (["--method", "fixed", "--set", "train.data=[]"], "train: the study sets ['data'] itself"),
        (["--method", "fixed", "--set", "train.lr=-1"], "lr must be > 0"),
        (["--method", "fixed", "--set", "planner=fancy"], "unknown planner 'fancy'"),
        (["--method", "fixed", "--set", "demo_goals=subgoal"], "demo_goals must be 'task' or 'step'"),
        (["--method", "fixed", "--set", "demonstrator.pocket=true"], "demonstrator: unknown key(s) ['pocket']"),
        (["--method", "fixed", "--set", "demonstrator.goal_label=step"], "the study sets ['goal_label'] itself"),
        (["--method", "fixed", "--set", "demonstrator.noise_prob=2"], "noise_prob and explore_turn_prob must lie"),
    ]
    for extra, message in cases:
        out = tmp_path / "m"
        assert main([*base, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not out.exists()


def test_gain_interval_is_newcombes_and_sound_at_the_edges():
    from aimc.eval.metrics import wilson_interval
    from aimc.finetune.methods_report import gain_interval

    lo, hi = gain_interval({"successes": 0, "episodes": 20}, {"successes": 0, "episodes": 20})
    assert lo < 0 < hi  # 0/20 against 0/20 is not a certain zero
    # Newcombe's hybrid score interval, written out from the two Wilson intervals
    l1, u1 = wilson_interval(30, 40)
    l0, u0 = wilson_interval(12, 40)
    d = 30 / 40 - 12 / 40
    lo, hi = gain_interval({"successes": 30, "episodes": 40}, {"successes": 12, "episodes": 40})
    assert lo == pytest.approx(d - ((0.75 - l1) ** 2 + (u0 - 0.3) ** 2) ** 0.5)
    assert hi == pytest.approx(d + ((u1 - 0.75) ** 2 + (0.3 - l0) ** 2) ** 0.5)
    assert 0 < lo < d < hi < 1
