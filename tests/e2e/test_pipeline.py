"""`aimc pipeline --preset micro`: every stage runs, a re-run skips them all, a changed setting reruns."""

from __future__ import annotations

import dataclasses
import json

from aimc.cli.app import main
from aimc.pipeline import STAGES


def test_micro_pipeline_end_to_end_then_skips(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--preset", "micro", "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().out
    assert all(f"{stage}: finished" in log for stage in STAGES)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == set(STAGES)

    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert bundle["format"] == "aimc-agent" and bundle["prior"] == "prior" and bundle["embedder"] == "embedder"
    for sub in ("policy", "embedder", "prior"):
        assert (out / "bundle" / sub / "config.json").is_file()
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {"agent", "agent@0", "unconditional", "demonstrator"} <= set(report["conditions"])
    assert "<svg" in (out / "eval" / "report.html").read_text()
    assert summary["stages"]["eval"]["result"]["mean_success"]["demonstrator"] > 0  # predicates see real events

    # Re-running the same command does no work.
    assert main(["pipeline", "--preset", "micro", "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().out
    assert log.count("skipped") == len(STAGES)

    # Changing the prior reruns prior, bundle and eval only, keeping the old prior run.
    assert main(["pipeline", "--preset", "micro", "--out", str(out), "--quiet", "--set", "prior.epochs=3"]) == 0
    log = capsys.readouterr().out
    assert "collect: done earlier" in log and "goal: done earlier" in log
    assert "prior: finished" in log and "eval: finished" in log
    assert list(tmp_path.joinpath("run").glob("prior.old-*"))


def test_pipeline_bad_input(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["pipeline", "--preset", "nope", "--out", str(tmp_path / "a")]) == 2
    from aimc.pipeline import preset_names

    names = preset_names()
    assert {"crafter-instruct-chain", "crafter-instruct-chain-polish", "micro"} <= set(names)
    assert f"unknown pipeline preset 'nope'; available: {', '.join(names)}" in capsys.readouterr().err
    assert main(["pipeline", "--preset", "micro", "--out", str(tmp_path)]) == 2
    assert "is not empty and holds no pipeline run" in capsys.readouterr().err
    assert main(["pipeline", "--preset", "micro", "--out", str(tmp_path / "b"), "--until", "nowhere"]) == 2
    assert "unknown stage 'nowhere'" in capsys.readouterr().err
    assert main(["pipeline", "--preset", "micro-instruct-chain", "--out", str(tmp_path / "d"), "--until", "polish"]) == 2
    assert "stage 'polish' is not part of this instruct-ppo run" in capsys.readouterr().err  # no polish: section
    assert main(["pipeline", "--preset", "micro", "--out", str(tmp_path / "c"), "--set", "colect.episodes=3"]) == 2
    assert "unknown key(s) ['colect']" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_micro_instruct_pipeline_end_to_end(tmp_path, capsys):
    """The instruct recipe: collect -> embedder -> goal (text goals, from scratch) -> bundle (no prior) -> eval."""
    from aimc.pipeline import RECIPES

    out = tmp_path / "run"
    assert main(["pipeline", "--preset", "micro-instruct", "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().out
    stages = RECIPES["instruct"]
    assert all(f"{stage}: finished" in log for stage in stages) and "pretrain" not in log and "prior" not in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "instruct" and set(summary["stages"]) == set(stages)
    assert not (out / "pretrain").exists() and not (out / "prior").exists()
    train = json.loads((out / "goal" / "train_config.json").read_text())
    assert train["init_from"] is None and train["segment"]["goal_source"] == "intention"
    assert train["segment"]["embed_name"] is None and train["segment"]["dart_labels"] is True
    # goal_preset instruct-lstm: the LSTM core, trained with its state carried across the segment's chunks
    assert json.loads((out / "bundle" / "policy" / "config.json").read_text())["config"]["recurrence_type"] == "lstm"
    assert train["segment"]["segment_len"] == 2 * train["trunc_t"]
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert bundle["prior"] is None and bundle["embedder"] == "embedder" and bundle["cond_scale"] == 0.0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {"agent", "unconditional"} <= set(report["conditions"]) and report["conditions"]["agent"]["cond_scale"] == 0.0
    # a stage the recipe does not have is refused by --until, in one line
    assert main(["pipeline", "--preset", "micro-instruct", "--out", str(out), "--quiet", "--until", "prior"]) == 2
    assert "not part of the instruct recipe" in capsys.readouterr().err


def test_micro_instruct_ppo_pipeline_fine_tunes_the_bundle_then_evaluates_it(tmp_path, capsys):
    """instruct-ppo: the instruct recipe, then PPO from its bundle; eval reads the PPO bundle; a changed ppo
    section reruns ppo and eval only."""
    from aimc.pipeline import RECIPES
    from aimc.pipeline.config import OPTIONAL

    out = tmp_path / "run"
    assert main(["pipeline", "--preset", "micro-instruct-ppo", "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().out
    assert all(f"{stage}: finished" in log for stage in RECIPES["instruct-ppo"] if stage not in OPTIONAL)
    summary = json.loads((out / "summary.json").read_text())
    for optional in OPTIONAL:  # no polish:, finish: or distill: section, no stage
        assert optional not in summary["stages"] and not (out / optional).exists()
    ppo = summary["stages"]["ppo"]["result"]
    assert ppo["iterations"] == 2 and ppo["env_steps"] > 0 and ppo["bundle"] == str(out / "ppo" / "bundle")
    cfg = json.loads((out / "ppo" / "ppo_config.json").read_text())
    assert cfg["bundle"] == str(out / "bundle") and cfg["tasks"] == ["chop_tree", "place_table"]
    assert json.loads((out / "eval" / "eval_config.json").read_text())["checkpoint"] == str(out / "ppo" / "bundle")
    assert main(["pipeline", "--preset", "micro-instruct-ppo", "--out", str(out), "--quiet",
                 "--set", "ppo.kl_coef=0.1"]) == 0
    log = capsys.readouterr().out
    assert "goal: done earlier" in log and "ppo: settings changed" in log and "eval: finished" in log
    # more iterations continue the finished run in place (a longer preset in pieces); fewer would not be it
    rows = json.loads((out / "ppo" / "ppo_summary.json").read_text())["iterations"]
    aside = sorted(q.name for q in out.glob("ppo.old-*"))
    assert main(["pipeline", "--preset", "micro-instruct-ppo", "--out", str(out), "--quiet",
                 "--set", "ppo.kl_coef=0.1", "--set", "ppo.iterations=3"]) == 0
    log = capsys.readouterr().out
    assert "ppo: settings changed only where a PPO run resumes (2 iteration(s) done)" in log and "eval: finished" in log
    longer = json.loads((out / "ppo" / "ppo_summary.json").read_text())["iterations"]
    assert len(longer) == 3 and longer[:2] == rows and sorted(q.name for q in out.glob("ppo.old-*")) == aside
    assert json.loads((out / "summary.json").read_text())["stages"]["ppo"]["result"]["iterations"] == 3
    from aimc.core.config import from_dict
    from aimc.finetune.ppo import continues
    from aimc.pipeline.config import Paths, PipelineConfig, ppo_config

    cfg = from_dict(PipelineConfig, json.loads((out / "pipeline_config.json").read_text()))
    assert continues(ppo_config(cfg, Paths(cfg.out))) == 3
    for change in ({"iterations": 2}, {"lr": 1.234e-4}):
        assert continues(ppo_config(dataclasses.replace(cfg, ppo={**cfg.ppo, **change}), Paths(cfg.out))) is None
    # a ppo section may not set what the pipeline sets
    assert main(["pipeline", "--preset", "micro-instruct-ppo", "--out", str(tmp_path / "x"), "--quiet",
                 "--set", "ppo.bundle=elsewhere"]) == 2
    assert "ppo: ['bundle'] cannot be set here" in capsys.readouterr().err


def test_micro_instruct_chain_pipeline_trains_on_step_labelled_chains(tmp_path, capsys):
    """The crafter-instruct-chain recipe in miniature: chain-mode demonstrations whose goals are the planner's
    steps, survival steps taking the step they interrupt, PPO under the chain planner, a bundle that chains."""
    out = tmp_path / "run"
    assert main(["pipeline", "--preset", "micro-instruct-chain", "--out", str(out), "--quiet"]) == 0
    collect = json.loads((out / "data" / "collect_config.json").read_text())
    assert collect["agent_config"]["mode"] == "chain" and collect["agent_config"]["goal_label"] == "step"
    goals = set()
    for infos in (out / "data").glob("ep*/infos.jsonl"):
        goals |= {json.loads(line).get("goal") for line in infos.read_text().splitlines()}
    assert "collect_wood" in goals and "make_wood_pickaxe" in goals  # the pickaxe's steps, not only the task
    train = json.loads((out / "goal" / "train_config.json").read_text())
    assert "shelter" in train["segment"]["intention_interrupts"] and train["segment"]["goal_source"] == "intention"
    ppo = json.loads((out / "ppo" / "ppo_config.json").read_text())
    assert ppo["planner"] == "chain" and ppo["rollout_workers"] == 2 and ppo["mixed_precision"] == "bf16"
    assert [r["episodes"] for r in json.loads((out / "ppo" / "ppo_summary.json").read_text())["iterations"]] == [4, 4]
    assert json.loads((out / "ppo" / "bundle" / "bundle.json").read_text())["planner"] == "chain"
    assert json.loads((out / "eval" / "report.json").read_text())["conditions"]["agent"]["cond_scale"] == 0.0
    capsys.readouterr()

    # the polish preset on the same --out: only polish (PPO from ppo/bundle + the BC term on the pipeline's own
    # chain demonstrations, cut as the goal stage cut them) and eval run
    assert main(["pipeline", "--preset", "micro-instruct-chain-polish", "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().out
    assert all(f"{stage}: done earlier" in log for stage in ("collect", "embedder", "goal", "bundle", "ppo"))
    assert "polish: finished" in log and "eval: finished" in log
    polish = json.loads((out / "polish" / "ppo_config.json").read_text())
    assert polish["bundle"] == str(out / "ppo" / "bundle") and polish["seed"] == 1 and polish["planner"] == "chain"
    assert polish["bc"]["data"] == [str(out / "data")] and polish["bc"]["coef"] == 0.6
    assert "segment.p_uncond=0.0" in polish["bc"]["overrides"] and "trunc_t=16" in polish["bc"]["overrides"]
    rows = json.loads((out / "polish" / "ppo_summary.json").read_text())["iterations"]
    assert len(rows) == 1 and rows[0]["env_steps"] > 0
    assert json.loads((out / "eval" / "eval_config.json").read_text())["checkpoint"] == str(out / "polish" / "bundle")
    assert json.loads((out / "polish" / "bundle" / "bundle.json").read_text())["planner"] == "chain"
    # one more polish iteration continues it in place; the stages before it stay done
    assert main(["pipeline", "--preset", "micro-instruct-chain-polish", "--out", str(out), "--quiet",
                 "--set", "polish.iterations=2"]) == 0
    log = capsys.readouterr().out
    assert "polish: settings changed only where a PPO run resumes (1 iteration(s) done)" in log and "ppo: done earlier" in log
    assert "s with its earlier pieces)" in log  # the stage's seconds add up its pieces
    longer = json.loads((out / "polish" / "ppo_summary.json").read_text())["iterations"]
    assert len(longer) == 2 and longer[:1] == rows and longer[1]["bc_nll"] > 0  # iteration 1 warms the value head

    # a finish section on the same --out: one more PPO stage from polish/bundle with polish's settings (its BC term
    # included) and its own changes; only finish and eval run, and eval reads finish/bundle
    assert main(["pipeline", "--preset", "micro-instruct-chain-polish", "--out", str(out), "--quiet",
                 "--set", "polish.iterations=2", "--set", "finish.iterations=1",
                 "--set", "finish.task_weights.chop_tree=5"]) == 0
    log = capsys.readouterr().out
    assert all(f"{stage}: done earlier" in log for stage in ("collect", "goal", "ppo", "polish"))
    assert "finish: finished" in log and "eval: finished" in log
    finish = json.loads((out / "finish" / "ppo_config.json").read_text())
    polished = json.loads((out / "polish" / "ppo_config.json").read_text())
    assert finish["bundle"] == str(out / "polish" / "bundle") and finish["seed"] == 2 and finish["bc"] == polished["bc"]
    assert finish["task_weights"] == {**polished["task_weights"], "chop_tree": 5.0}
    assert len(json.loads((out / "finish" / "ppo_summary.json").read_text())["iterations"]) == 1
    assert json.loads((out / "eval" / "eval_config.json").read_text())["checkpoint"] == str(out / "finish" / "bundle")
    # how the finished agent is played is chosen after training: the finish stage writes its bundle again with that
    # planner (nothing retrained, the same weights) and only eval reruns
    weights = (out / "finish" / "bundle" / "policy" / "model.safetensors").read_bytes()
    assert main(["pipeline", "--preset", "micro-instruct-chain-polish", "--out", str(out), "--quiet",
                 "--set", "polish.iterations=2", "--set", "finish.iterations=1",
                 "--set", "finish.task_weights.chop_tree=5", "--set", "finish.bundle_planner=chain-event"]) == 0
    log = capsys.readouterr().out
    assert "finish: settings changed only where a PPO run resumes (1 iteration(s) done)" in log and "eval: finished" in log
    assert json.loads((out / "finish" / "bundle" / "bundle.json").read_text())["planner"] == "chain-event"
    assert (out / "finish" / "bundle" / "policy" / "model.safetensors").read_bytes() == weights
    assert len(json.loads((out / "finish" / "ppo_summary.json").read_text())["iterations"]) == 1

    # a distill section on the same --out: the finish agent distilled into a 32x32 student (the ppo-distill preset,
    # the ppo stage's tasks and episode length); only distill and eval run, and eval reads the student
    assert main(["pipeline", "--preset", "micro-instruct-chain-polish", "--out", str(out), "--quiet",
                 "--set", "polish.iterations=2", "--set", "finish.iterations=1",
                 "--set", "finish.task_weights.chop_tree=5", "--set", "finish.bundle_planner=chain-event",
                 "--set", "distill={iterations: 1, envs: 2, episodes_per_iteration: 4, epochs: 1, "
                          "minibatch_episodes: 2, chunk_len: 8, value_warmup_iterations: 0}"]) == 0
    log = capsys.readouterr().out
    assert all(f"{stage}: done earlier" in log for stage in ("collect", "goal", "ppo", "polish", "finish"))
    assert "distill: finished" in log and "eval: finished" in log
    distill = json.loads((out / "distill" / "ppo_config.json").read_text())
    assert distill["bundle"] == str(out / "finish" / "bundle") and distill["seed"] == 3 and distill["teacher"] == ""
    assert distill["frame_size"] == 32 and distill["tasks"] == finish["tasks"] and distill["max_steps"] == finish["max_steps"]
    rows = json.loads((out / "distill" / "ppo_summary.json").read_text())["iterations"]
    assert len(rows) == 1 and rows[0]["kl_teacher"] > 0
    assert json.loads((out / "distill" / "bundle" / "policy" / "config.json").read_text())["config"]["img_shape"] == [32, 32]
    assert json.loads((out / "eval" / "eval_config.json").read_text())["checkpoint"] == str(out / "distill" / "bundle")
