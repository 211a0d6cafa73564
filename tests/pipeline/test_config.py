"""The pipeline config is checked section by section when it loads: typos fail before any stage runs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from aimc.cli.app import main
from aimc.core.errors import AimcError, ConfigError, UnknownNameError
from aimc.data.collect import CollectConfig
from aimc.embed.config import EmbedderTrainConfig
from aimc.eval.config import EvalConfig
from aimc.pipeline import STAGES, load_pipeline_config, preset_names, stage_configs
from aimc.pipeline.config import recipe_stages
from aimc.pipeline.run import _fingerprint
from aimc.prior.config import PriorTrainConfig
from aimc.train.config import TrainConfig


@pytest.mark.parametrize("override, where, key, a_valid_key", [
    ("goal.lrr=1", "goal", "lrr", "lr"),
    ("eval.episdes=3", "eval", "episdes", "episodes"),
    ("prior.epoch=3", "prior", "epoch", "epochs"),
    ("pretrain.n_frame=9", "pretrain", "n_frame", "n_frames"),
    ("collect.episods=3", "collect", "episods", "episodes"),
    ("embedder.step=3", "embedder", "step", "steps"),
    ("goal.segment.TT=3", "goal.segment", "TT", "segment_len"),
    ("embedder.model.chanels=[8]", "embedder.model", "chanels", "channels"),
    ("goal.policy_overrides.hidsiz=8", "goal: policy_overrides", "hidsiz", "hidsize"),
])
def test_a_typo_in_any_section_fails_at_load_naming_key_and_valid_keys(override, where, key, a_valid_key):
    with pytest.raises(ConfigError) as e:
        load_pipeline_config("micro", overrides=[override])
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{where}: unknown key(s) ['{key}']; valid keys: [")
    assert f"'{a_valid_key}'" in msg.split("valid keys:")[1]


def test_both_typos_of_the_issue_are_rejected():
    for override in (["goal.lrr=1", "prior.epoch=3"], ["eval.episdes=3"]):
        with pytest.raises(ConfigError, match=r"unknown key\(s\)"):
            load_pipeline_config("micro", overrides=override)


def test_cli_fails_before_the_first_stage(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--preset", "micro", "--out", str(out), "--set", "eval.episdes=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: eval: unknown key(s) ['episdes']; valid keys: [") and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("override, message", [
    ("collect.out=x", "collect: ['out'] cannot be set here, the pipeline sets them (paths under --out)"),
    ("eval.checkpoint=x", "eval: ['checkpoint'] cannot be set here"),
    ("prior.embedder=minilm", "prior: ['embedder'] cannot be set here"),
    ("eval.tasks=[chop_tre]", "eval: suite 'crafter-early' has no task 'chop_tre'; tasks: chop_tree,"),
    ("eval.episodes=0", "eval: episodes must be >= 1"),
    ("eval.baselines=[randm]", "eval: unknown baseline(s) ['randm']"),
    ("pretrain.trunc_t=7", "pretrain: segment.segment_len (32) must be a multiple of trunc_t (7)"),
    ("goal.policy=tiny", "goal: policy: unknown preset 'tiny'; available: crafter-lstm, crafter-small,"),
    ("prior.epochs=0", "prior: prior training needs epochs >= 1"),
    ("eval.tasks=chop_tree", "eval.tasks: expected a list, got 'chop_tree'"),
])
def test_reserved_keys_and_bad_values_fail_at_load_naming_the_section(override, message):
    with pytest.raises(AimcError) as e:
        load_pipeline_config("micro", overrides=[override])
    assert str(e.value).startswith(message)


def test_every_preset_loads_into_typed_stage_configs(tmp_path):
    for name in preset_names():
        cfg = load_pipeline_config(name, out=str(tmp_path / name))
        configs = stage_configs(cfg)
        assert isinstance(configs["collect"], CollectConfig) and isinstance(configs["embedder"], EmbedderTrainConfig)
        assert isinstance(configs["goal"], TrainConfig) and isinstance(configs["eval"], EvalConfig)
        if cfg.recipe == "instruct-ppo" and cfg.distill:  # the agent the recipe ends with is the student
            assert set(configs) == {"collect", "embedder", "goal", "ppo", "polish", "finish", "distill", "eval"}
            assert configs["eval"].checkpoint == str(tmp_path / name / "distill" / "bundle")
            assert configs["distill"].bundle == str(tmp_path / name / "finish" / "bundle")
            continue
        if cfg.recipe == "instruct-ppo" and cfg.finish:  # the agent the recipe ends with is the finish stage's
            assert set(configs) == {"collect", "embedder", "goal", "ppo", "polish", "finish", "eval"}
            assert configs["eval"].checkpoint == str(tmp_path / name / "finish" / "bundle")
            assert configs["finish"].bundle == str(tmp_path / name / "polish" / "bundle")
            assert configs["finish"].bc == configs["polish"].bc
            continue
        if cfg.recipe == "instruct-ppo" and cfg.polish:  # the agent the recipe ends with is the polished one
            assert set(configs) == {"collect", "embedder", "goal", "ppo", "polish", "eval"}
            assert configs["eval"].checkpoint == str(tmp_path / name / "polish" / "bundle")
            assert configs["polish"].bundle == str(tmp_path / name / "ppo" / "bundle")
            assert configs["polish"].bc.coef > 0 and configs["polish"].bc.data == [str(tmp_path / name / "data")]
            continue
        if cfg.recipe == "instruct-ppo":  # the agent the recipe ends with is PPO's bundle
            assert set(configs) == {"collect", "embedder", "goal", "ppo", "eval"}
            assert configs["eval"].checkpoint == str(tmp_path / name / "ppo" / "bundle")
            assert configs["ppo"].bundle == str(tmp_path / name / "bundle") and configs["ppo"].out == str(tmp_path / name / "ppo")
            assert configs["goal"].init_from is None and configs["goal"].segment.goal_source == "intention"
            continue
        assert configs["eval"].checkpoint == str(tmp_path / name / "bundle")
        if cfg.recipe == "instruct":
            assert set(configs) == {"collect", "embedder", "goal", "eval"}
            assert configs["goal"].init_from is None and configs["goal"].segment.goal_source == "intention"
            continue
        assert set(configs) == {"collect", "embedder", "pretrain", "goal", "prior", "eval"}
        assert isinstance(configs["prior"], PriorTrainConfig)
        assert configs["goal"].init_from == str(tmp_path / name / "pretrain" / "best")
        assert configs["goal"].segment.embed_name == "videotext" and configs["pretrain"].segment.embed_name is None


def test_sections_are_partial_overrides_over_stage_defaults_and_presets(tmp_path):
    cfg = load_pipeline_config("micro", overrides=["goal.lr=1e-4", "eval.workers=0"], out=str(tmp_path), workers=3)
    c = stage_configs(cfg)
    assert c["collect"].episodes == 4 and c["collect"].workers == 3 and c["collect"].fps == 20  # default kept
    assert c["collect"].out == str(tmp_path / "data") and c["collect"].agent == "demonstrator"
    assert c["goal"].lr == 1e-4 and c["goal"].policy == "test-tiny" and c["goal"].segment.segment_len == 32
    assert c["goal"].segment.max_btwn_goals == 32 and c["goal"].segment.min_btwn_goals == 15  # goal preset/default
    assert c["pretrain"].lr == 3e-4 and c["pretrain"].grad_accum == 1  # the `pretrain` training preset
    assert c["eval"].workers == 0 and c["eval"].tasks == ["chop_tree", "place_table"] and c["eval"].max_steps == 40
    assert c["eval"].baselines == ["unconditional", "demonstrator"] and c["eval"].videos == 1  # EvalConfig defaults
    assert c["prior"].hidden_dim == 32 and c["prior"].data == str(tmp_path / "data")
    gpu = stage_configs(load_pipeline_config("crafter-gpu", out=str(tmp_path / "g")))
    assert gpu["goal"].mixed_precision == "bf16" and gpu["goal"].policy_overrides == {"hidsize": 512}


def test_fingerprints_of_presets_are_unchanged():
    """Markers written before the sections were typed stay valid (the fingerprint hashes the raw sections)."""
    cfg = load_pipeline_config("micro", out="anywhere")
    prints: dict[str, str] = {}
    for stage in STAGES:
        prints[stage] = _fingerprint(cfg, stage, prints)
    assert prints == {"collect": "93fc274943057c47", "embedder": "5727d222e5c52096", "embed": "fbbce16dcc608df3",
                      "pretrain": "f8e50ad61ba4daa2", "goal": "ff3eade3e1389d74", "prior": "50782ccef0385d7e",
                      "bundle": "d5fb42f8dde9a015", "eval": "8f240c239ea5681f"}


def test_validation_imports_no_torch():
    code = ("import sys; from aimc.pipeline import load_pipeline_config, preset_names\n"
            "[load_pipeline_config(n) for n in preset_names()]\n"
            "heavy = sorted({'torch', 'crafter', 'sentence_transformers'} & set(sys.modules)); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_recipe_selects_stages_and_goal_preset(tmp_path):
    from aimc.pipeline import RECIPES

    c = stage_configs(load_pipeline_config("micro-instruct", out=str(tmp_path)))
    assert set(c) == {"collect", "embedder", "goal", "eval"} and set(RECIPES["instruct"]) >= set(c)
    assert c["goal"].init_from is None and c["goal"].embedder == str(tmp_path / "embedder" / "model")
    assert c["goal"].segment.goal_source == "intention" and c["goal"].segment.embed_name is None
    assert c["goal"].cond_scale == 0.0  # the bundle plays without guidance, the measured best for this recipe
    with pytest.raises(UnknownNameError, match="unknown recipe 'steve2'; recipes: steve1, instruct"):
        load_pipeline_config("micro", ["recipe=steve2"], out=str(tmp_path))


def test_goal_preset_picks_the_training_preset_of_the_goal_stage(tmp_path):
    c = stage_configs(load_pipeline_config(None, ["goal_preset=instruct-lstm", "recipe=instruct"], out=str(tmp_path)))
    assert c["goal"].policy == "crafter-lstm" and c["goal"].segment.segment_len == 256 and c["goal"].trunc_t == 64
    assert c["goal"].segment.goal_source == "intention" and c["goal"].init_from is None
    c = stage_configs(load_pipeline_config("micro", out=str(tmp_path)))  # steve1 recipe: the `goal` preset
    assert c["goal"].init_from == str(tmp_path / "pretrain" / "best")
    with pytest.raises(UnknownNameError, match="unknown goal_preset 'nope'; training presets: .*instruct-lstm"):
        load_pipeline_config("micro", ["goal_preset=nope"], out=str(tmp_path))


def test_a_preset_with_a_base_changes_only_what_it_states(tmp_path):
    """`base:` reads the named preset first: the longer chain preset differs from `crafter-instruct-chain` only in PPO
    iterations, so its earlier stages keep their fingerprints (and a finished shorter run is continued)."""
    short = load_pipeline_config("crafter-instruct-chain", out="anywhere")
    long = load_pipeline_config("crafter-instruct-chain-long", out="anywhere")
    assert long.ppo == {**short.ppo, "iterations": 300} and long.ppo["iterations"] > short.ppo["iterations"]
    assert dataclasses.replace(long, ppo=short.ppo) == short
    a, b = {}, {}
    for stage in recipe_stages(short):
        a[stage], b[stage] = _fingerprint(short, stage, a), _fingerprint(long, stage, b)
    assert [s for s in a if a[s] != b[s]] == ["ppo", "eval"]
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ConfigError, match="base must name another preset"):
        load_pipeline_config(str(loop))
    (tmp_path / "b.yaml").write_text("base: nope\n")
    with pytest.raises(UnknownNameError, match="unknown pipeline preset 'nope'"):
        load_pipeline_config(str(tmp_path / "b.yaml"))


def test_the_larger_chain_preset_changes_the_data_budget_and_nothing_else(tmp_path):
    """`crafter-instruct-chain-big`: twice the chain episodes, 1.8M BC frames, 120 PPO iterations; the demonstrator,
    the goal preset, the PPO rewards and weights stay `crafter-instruct-chain`'s, so the two measure the data budget;
    `-big-long` continues its PPO in the same --out (only ppo and eval change fingerprint)."""
    short = load_pipeline_config("crafter-instruct-chain", out=str(tmp_path))
    big = load_pipeline_config("crafter-instruct-chain-big", out=str(tmp_path))
    assert big.collect == {**short.collect, "episodes": 1200} and big.goal == {**short.goal, "n_frames": 1_800_000}
    assert big.ppo == {**short.ppo, "iterations": 120}
    assert dataclasses.replace(big, collect=short.collect, goal=short.goal, ppo=short.ppo) == short
    c = stage_configs(big)
    assert c["goal"].n_frames == 1_800_000 and c["ppo"].iterations == 120 and c["ppo"].planner == "chain"
    assert c["collect"].episodes == 1200 and c["collect"].agent_config["mode"] == "chain"
    longer = load_pipeline_config("crafter-instruct-chain-big-long", out=str(tmp_path))
    assert longer.ppo == {**big.ppo, "iterations": 200} and dataclasses.replace(longer, ppo=big.ppo) == big
    a, b = {}, {}
    for stage in recipe_stages(big):
        a[stage], b[stage] = _fingerprint(big, stage, a), _fingerprint(longer, stage, b)
    assert [s for s in a if a[s] != b[s]] == ["ppo", "eval"]  # run after `-big` in its --out, it continues PPO


def _changed_stages(base, cfg) -> list[str]:
    """The stages of `base` whose fingerprint differs under `cfg` (what would rerun if `cfg` ran in base's --out)."""
    a, b = {}, {}
    for stage in recipe_stages(cfg):
        b[stage] = _fingerprint(cfg, stage, b)
        if stage in recipe_stages(base):
            a[stage] = _fingerprint(base, stage, a)
    return [s for s in a if a[s] != b[s]]


def test_polish_runs_after_ppo_from_its_bundle_with_the_pipelines_demonstrations(tmp_path):
    """The optional polish stage: the ppo stage's settings carry over, its section changes them, the BC term reads
    the pipeline's data cut as the goal stage cut it; every stage before it keeps the base preset's fingerprint."""
    base = load_pipeline_config("crafter-instruct-chain-long", out=str(tmp_path))
    cfg = load_pipeline_config("crafter-instruct-chain-polish", out=str(tmp_path))
    assert recipe_stages(base)[-2:] == ("ppo", "eval") and recipe_stages(cfg)[-3:] == ("ppo", "polish", "eval")
    c = stage_configs(cfg)
    pol, ppo = c["polish"], c["ppo"]
    assert pol.bundle == str(tmp_path / "ppo" / "bundle") and pol.out == str(tmp_path / "polish")
    assert pol.seed == cfg.seed + 1 and pol.planner == ppo.planner == "chain" and pol.threads == ppo.threads
    assert pol.reward == ppo.reward and pol.iterations == cfg.polish["iterations"] != ppo.iterations
    assert pol.task_weights == {**ppo.task_weights, **cfg.polish["task_weights"]}  # merged key by key
    assert pol.bc.data == [str(tmp_path / "data")] and pol.bc.preset == "instruct-lstm" and pol.bc.coef == 0.6
    assert pol.bc.overrides[-1] == "segment.p_uncond=0.0" and pol.bc.overrides[0].startswith(
        "segment.intention_interrupts=")
    assert c["eval"].checkpoint == str(tmp_path / "polish" / "bundle")
    assert _changed_stages(base, cfg) == ["eval"]  # a finished long run in the same --out: polish and eval run


def test_finish_continues_the_polished_agent_with_the_polish_settings(tmp_path):
    """The optional finish stage: polish's resolved settings (BC term, planner, rewards, task weights) carry over,
    its section changes only what it names, it starts from polish/bundle with its own seed, eval reads its bundle;
    every stage before it keeps its fingerprint, so a finished run in the same --out runs only finish and eval."""
    cfg = load_pipeline_config("crafter-instruct-long-ppo", out=str(tmp_path))
    base = dataclasses.replace(cfg, finish={})  # the preset as it was before it had the stage
    assert recipe_stages(base)[-3:] == ("ppo", "polish", "eval")
    assert recipe_stages(cfg)[-4:] == ("ppo", "polish", "finish", "eval")
    c = stage_configs(cfg)
    fin, pol = c["finish"], c["polish"]
    assert fin.bundle == str(tmp_path / "polish" / "bundle") and fin.out == str(tmp_path / "finish")
    assert fin.seed == cfg.seed + 2 != pol.seed and fin.iterations == 60 != pol.iterations
    assert fin.task_weights == {**pol.task_weights, "collect_coal": 24} and pol.task_weights["collect_coal"] == 12
    assert fin.bc == pol.bc and fin.reward == pol.reward and fin.planner == pol.planner == "chain"
    assert fin.bundle_planner == "chain-event" and pol.bundle_planner is None  # trained under chain, played with event
    assert fin.mixed_precision == pol.mixed_precision and fin.threads == pol.threads
    assert c["eval"].checkpoint == str(tmp_path / "finish" / "bundle")
    assert _changed_stages(base, cfg) == ["eval"]


def test_distill_makes_a_student_of_the_last_ppo_stages_agent_over_the_distill_preset(tmp_path):
    """The optional distill stage: the ppo-distill preset's settings (not the stage before's: no anchor, no BC
    term), the ppo stage's world, suite, tasks and episode length, its own seed, started from the finish stage's
    bundle, which also teaches (teacher ""); eval reads the student; every stage before it keeps its fingerprint."""
    from aimc.core.config import load_yaml
    from aimc.finetune.ppo_config import PRESET_DIR as PPO_PRESETS

    cfg = load_pipeline_config("crafter-instruct-long-distill", out=str(tmp_path))
    base = load_pipeline_config("crafter-instruct-long-ppo", out=str(tmp_path))
    assert recipe_stages(cfg)[-3:] == ("finish", "distill", "eval") and "distill" not in recipe_stages(base)
    c = stage_configs(cfg)
    dis, fin, ppo = c["distill"], c["finish"], c["ppo"]
    preset = load_yaml(PPO_PRESETS / "ppo-distill.yaml")
    assert dis.bundle == str(tmp_path / "finish" / "bundle") and dis.out == str(tmp_path / "distill")
    assert dis.seed == cfg.seed + 3 and dis.iterations == 300 and dis.teacher == ""
    assert dis.frame_size == preset["frame_size"] == 32 and dis.teacher_coef == 1.0 and dis.kl_coef == 0.0
    assert dis.bc.coef == 0 and fin.bc.coef > 0 and dis.lr == preset["lr"] and dis.lr_final == preset["lr_final"]
    assert dis.tasks == ppo.tasks and dis.max_steps == ppo.max_steps and dis.world == ppo.world
    assert dis.task_weights == preset["task_weights"] and dis.bundle_planner == "chain-event"
    assert c["eval"].checkpoint == str(tmp_path / "distill" / "bundle")
    assert _changed_stages(base, cfg) == ["eval"]  # on a finished run in the same --out: distill and eval run
    # without a finish or polish stage the student is the ppo stage's agent's; task weights outside the run's tasks
    # are dropped
    micro = stage_configs(load_pipeline_config("micro-instruct-chain", overrides=["distill.iterations=1"],
                                               out=str(tmp_path / "m")))
    assert micro["distill"].bundle == str(tmp_path / "m" / "ppo" / "bundle")
    assert micro["distill"].tasks == micro["ppo"].tasks and micro["distill"].task_weights == {}


@pytest.mark.parametrize("overrides, message", [
    (["distill.frame_size=16"], "distill: set iterations"),
    (["distill.iterations=2", "distill.bundle=x"], "distill: ['bundle'] cannot be set here"),
    (["distill.iterations=2", "distill.itrations=3"], "distill: unknown key(s) ['itrations']"),
    (["distill.iterations=2", "distill.teacher_coef=0"], "distill: frame_size makes a student that no longer acts"),
    (["distill.iterations=2", "recipe=instruct"], "distill: the instruct recipe has no distill stage; it needs "
                                                   "recipe: instruct-ppo"),
])
def test_bad_distill_sections_fail_at_load_in_one_line(overrides, message, tmp_path):
    with pytest.raises(AimcError) as e:
        load_pipeline_config("micro-instruct-chain", overrides=overrides, out=str(tmp_path))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, message", [
    (["finish.iterations=2"], "finish: the finish stage continues the polish stage's agent; add a polish: section"),
    (["polish.iterations=2", "finish.task_weights.collect_coal=3"], "finish: set iterations"),
    (["polish.iterations=2", "finish.iterations=2", "finish.out=x"], "finish: ['out'] cannot be set here"),
    (["polish.iterations=2", "finish.iterations=2", "finish.itrations=3"], "finish: unknown key(s) ['itrations']"),
    (["polish.iterations=2", "finish.iterations=2", "recipe=instruct"], "polish: the instruct recipe has no polish"),
])
def test_bad_finish_sections_fail_at_load_in_one_line(overrides, message, tmp_path):
    with pytest.raises(AimcError) as e:
        load_pipeline_config("micro-instruct-chain", overrides=overrides, out=str(tmp_path))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, message", [
    (["polish.iterations=2", "recipe=instruct"], "polish: the instruct recipe has no polish stage; it needs recipe: "
                                                 "instruct-ppo"),
    (["polish.bc.coef=0.5"], "polish: set iterations"),
    (["polish.iterations=2", "polish.itrations=3"], "polish: unknown key(s) ['itrations']; valid keys: ["),
    (["polish.iterations=2", "polish.bundle=x"], "polish: ['bundle'] cannot be set here"),
    (["polish.iterations=0"], "polish: iterations must be >= 1, got 0"),
])
def test_bad_polish_sections_fail_at_load_in_one_line(overrides, message, tmp_path):
    with pytest.raises(AimcError) as e:
        load_pipeline_config("micro-instruct-chain", overrides=overrides, out=str(tmp_path))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
