"""`run_dagger` on a micro world run: labelled rollouts, aggregation, fine-tune, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aimc.cli.app import main

VOLATILE = ("wall_s", "train_wall_s", "resumed")  # timing and how the work was split: differ between runs


def micro_cfg(bundle: Path, data: Path, out: Path, *sets: str):
    from aimc.finetune import load_dagger_config

    return load_dagger_config("micro", list(sets), bundle=str(bundle), data=[{"path": str(data)}], out=str(out))


def stable(summary: dict) -> dict:
    """The summary without timings, with paths relative to the run dir (two runs in two dirs compare)."""
    out = summary["out"]
    text = json.dumps(summary).replace(out, "<out>")
    s = json.loads(text)
    for row in [*s["iterations"], s["final"]]:
        for key in VOLATILE:
            row.pop(key, None)
    return s


@pytest.fixture(scope="module")
def micro_run(tiny_bundle, demo_store, tmp_path_factory):
    """One uninterrupted micro DAgger run (2 iterations of 2 episodes <= 40 steps, then 2 final rollouts)."""
    import torch

    from aimc.finetune import run_dagger

    out = tmp_path_factory.mktemp("dagger") / "run"
    lines: list[str] = []
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (conftest): thread count changes float sums, hence weights
    try:
        summary = run_dagger(micro_cfg(tiny_bundle, demo_store, out), progress=False, log=lines.append)
    finally:
        torch.set_num_threads(n)
    return out, summary, lines


def test_iterations_aggregate_base_and_every_dagger_store(micro_run, tiny_bundle, demo_store):
    out, s, lines = micro_run
    cfgs = [json.loads((out / f"iter_0{k}" / "train" / "train_config.json").read_text()) for k in (1, 2)]
    base = {"path": str(demo_store), "weight": 1.0, "goal_source": None, "max_episodes": None}
    assert cfgs[0]["data"] == [base, {"path": str(out / "iter_01" / "data"), "weight": 1.0, "goal_source": "intention",
                                      "max_episodes": None}]
    assert cfgs[1]["data"] == [base, *({"path": str(out / f"iter_0{j}" / "data"), "weight": 0.5, "goal_source": "intention",
                                        "max_episodes": None} for j in (1, 2))]
    # iteration k starts from k-1's policy, in the bundle's goal space and architecture
    assert cfgs[0]["init_from"] == str(tiny_bundle) and cfgs[1]["init_from"] == str(out / "iter_01" / "train")
    from aimc.policy.vpt.config import get_config
    from aimc.policy.vpt.load import read_pretrained_meta
    from aimc.train.bundle import AgentBundle

    for c in cfgs:
        assert c["segment"]["embed_name"] == "fake" and c["n_frames"] == 64
        built = get_config(c["policy"], **c["policy_overrides"], goal_dim=8).to_dict()
        assert built == read_pretrained_meta(AgentBundle.read(tiny_bundle).policy_dir())["config"]
        assert c["frame_cache"] == str(out / "frame_cache")
    assert cfgs[0]["seed"] != cfgs[1]["seed"]

    rows = s["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2] and s["final"]["learner"] == str(out / "iter_02" / "train")
    for r in [*rows, s["final"]]:
        assert r["episodes"] == 2 and r["beta"] == 0.0 and r["expert_fraction"] == 0.0
        assert 62 <= r["frames"] <= 80 and 0.0 <= r["agreement"] <= 1.0
        assert sum(t["episodes"] for t in r["per_task"].values()) == 2
    assert all(r["train_steps"] == 2 and r["train_segments"] > 0 and r["goal_gain"] is not None for r in rows)
    assert json.loads((out / "dagger_summary.json").read_text()) == s
    assert (out / "bundle" / "bundle.json").is_file() and any((out / "tensorboard").iterdir())
    assert sorted(p.name for p in (out / "stages").iterdir()) == [
        "bundle.json", "eval_02.json", "iter_01_collect.json", "iter_01_train.json", "iter_02_collect.json",
        "iter_02_train.json"]
    assert lines[0].startswith("DAgger iteration 1/2 (beta 0")

    from aimc.finetune import format_table

    table = format_table(s).splitlines()
    assert table[0].split()[:4] == ["iter", "beta", "episodes", "frames"] and [t.split()[0] for t in table[1:]] == [
        "1", "2", "final"]


def test_episodes_hold_expert_labels_for_the_learners_states(micro_run):
    """Replaying the executed actions in the same world with a fresh labeller gives the stored labels; with
    beta 0 the executed action is always the learner's; every step's goal is the instructed task."""
    from aimc.core.seeding import derive_seed
    from aimc.data.store import Episode, list_episodes
    from aimc.envs import DemonstratorActor, make
    from aimc.finetune.rollout import make_jobs

    out, _, _ = micro_run
    eps = [Episode(p) for p in list_episodes(out / "iter_02" / "data")]
    assert [e.name for e in eps] == ["ep00000", "ep00001"]
    jobs = make_jobs(["collect_wood", "place_table"], 2, 0.0, 40, 0, "iter2")
    for ep, job in zip(eps, jobs, strict=True):
        meta = ep.metadata["dagger"]
        assert (meta["iteration"], meta["task"], meta["prompt"], meta["world_seed"]) == (2, job.task, job.prompt, job.world_seed)
        assert ep.metadata["dagger_result"]["task"] == job.task and "world_seed" not in ep.metadata
        executed = [i["executed_action"] for i in ep.infos]
        assert executed == [i["learner_action"] for i in ep.infos]
        assert {i["goal"] for i in ep.infos} == {job.task}
        env = make("crafter", size=64)
        expert = DemonstratorActor({"mode": "task", "noise_prob": 0.0})
        obs, _ = env.reset(seed=job.world_seed)
        expert.reset(env, derive_seed(job.actor_seed, "expert"), job.task)
        labels, explored = [], []
        for t, a in enumerate(executed):
            assert np.array_equal(obs["pov"], ep.frames(t, t + 1)[0])
            labels.append(expert.act(env, obs, t == 0))
            explored.append(expert.explored)
            obs, *_ = env.step(a)
        assert labels == ep.actions.tolist()
        assert explored == [i["explored"] for i in ep.infos]
        # without skip_explore nothing is masked (the exploring steps are still flagged)
        assert ep.metadata["masked_labels"] is False and not any("no_label" in i for i in ep.infos)
        assert np.mean(np.array(labels) == np.array(executed)) == pytest.approx(ep.metadata["dagger_result"]["agreement"])


def test_fine_tune_reads_dagger_goals_as_the_instructed_task(micro_run):
    """The per-store goal-source override: DAgger segments are conditioned on their task's paraphrase
    embeddings (or the zero goal), although they have no visual embeddings; base segments keep visual goals."""
    from aimc.data.dataset import SegmentDataset
    from aimc.data.store import Episode
    from aimc.data.text_goals import TextGoalTable
    from aimc.train.config import TrainConfig
    from aimc.train.loop import build_data

    out, _, _ = micro_run
    from aimc.core.config import load_config

    tc = load_config(TrainConfig, out / "iter_02" / "train" / "train_config.json")
    assert tc.goal_sources() == {"visual", "intention"}
    train, _, _ = build_data(tc)
    table = TextGoalTable.load(out / "iter_02" / "train" / "text_goals.npz")
    ds = SegmentDataset(train, tc.segment, (64, 64), None, None, table)
    dagger = [i for i, (e, _, _) in enumerate(train.rows) if "iter_" in str(train.episodes[e])]
    base = [i for i, (e, _, _) in enumerate(train.rows) if "iter_" not in str(train.episodes[e])]
    assert dagger and base and set(train.goal_sources.values()) == {"intention"}
    conditioned = 0
    for i in dagger:
        item = ds[(i, 7)]
        task = Episode(train.episodes[int(train.rows[i][0])]).metadata["dagger"]["task"]
        goal = item["goal"].numpy()
        if not goal.any():
            continue  # p_uncond zeroed the segment
        conditioned += 1
        assert all(any(np.array_equal(g, row) for row in table.table[task]) for g in goal)
    assert conditioned
    for i in base[:3]:
        goal = ds[(i, 7)]["goal"].numpy()
        assert not any(np.array_equal(goal[0], row) for rows in table.table.values() for row in rows)


def test_resume_after_interruptions_mid_iteration_gives_the_same_run(micro_run, tiny_bundle, demo_store, tmp_path,
                                                                     monkeypatch, capsys):
    """Killed during iteration 2's collection, then during its fine-tune, then resumed through the CLI with
    one env slot per worker instead of 8: the finished episodes are not replayed, and the summary and final
    weights equal the uninterrupted run's."""
    import aimc.train.loop as loop
    from aimc.core.errors import AimcError
    from aimc.finetune import run_dagger
    from aimc.finetune.rollout import Worker

    out = tmp_path / "run"
    real_start, real_finish, real_run = Worker._start, Worker._finish, loop.run
    played: list[tuple[int, int]] = []

    def start(self, slot, job):
        played.append((self.spec.metadata["iteration"], job.index))
        return real_start(self, slot, job)

    def finish(self, outcome):
        k = self.spec.metadata["iteration"]
        if (k, outcome.tag, self.spec.metadata["stage"]) == (2, 1, "dagger") and (2, -1) not in played:
            played.append((k, -1))
            raise KeyboardInterrupt  # a kill just before iteration 2's second episode is stored
        return real_finish(self, outcome)

    monkeypatch.setattr(Worker, "_start", start)
    monkeypatch.setattr(Worker, "_finish", finish)
    with pytest.raises(KeyboardInterrupt):
        run_dagger(micro_cfg(tiny_bundle, demo_store, out), progress=False, log=lambda _: None)
    assert played == [(1, 0), (1, 1), (2, 0), (2, 1), (2, -1)]  # both episodes of an iteration play at once
    assert sorted(p.name for p in (out / "iter_02" / "data").iterdir()) == ["ep00000"]
    assert not (out / "stages" / "iter_02_collect.json").exists()

    monkeypatch.setattr(loop, "run", lambda cfg, progress=True: real_run(cfg, stop_after_steps=1, progress=progress))
    with pytest.raises(AimcError, match="stopped early; rerun to resume it"):
        run_dagger(micro_cfg(tiny_bundle, demo_store, out), progress=False, log=lambda _: None)
    assert played[5:] == [(2, 1)]  # only the missing episode was played
    assert (out / "iter_02" / "train" / "checkpoints" / "last").is_file()

    monkeypatch.setattr(loop, "run", real_run)
    args = ["train", "dagger", "--preset", "micro", "--bundle", str(tiny_bundle), "--data", str(demo_store),
            "--out", str(out), "--quiet", "--set", "envs_per_worker=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:2] == ["iter", "beta"] and "DAgger finished 2 iteration(s)" in printed
    assert played[6:] == [(2, 0), (2, 1)]  # the final rollouts only: iteration 2 was collected already
    summary = json.loads((out / "dagger_summary.json").read_text())
    ref_out, ref, _ = micro_run
    assert stable(summary) == stable(ref)
    for k in (1, 2):
        a = (out / f"iter_0{k}" / "train" / "latest" / "model.safetensors").read_bytes()
        assert a == (ref_out / f"iter_0{k}" / "train" / "latest" / "model.safetensors").read_bytes()


def test_bad_input_fails_in_one_line_and_writes_nothing(micro_run, tiny_bundle, demo_store, tmp_path, capsys):
    from aimc.train.bundle import AgentBundle

    out = tmp_path / "new"
    common = ["train", "dagger", "--preset", "micro", "--data", str(demo_store), "--out", str(out)]
    assert main([*common, "--bundle", str(tiny_bundle), "--task", "collect_wood", "--task", "fly"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown task 'fly'; valid tasks: collect_coal, collect_diamond") and err.count("\n") == 1

    nob = tmp_path / "unconditional"
    shutil.copytree(AgentBundle.read(tiny_bundle).policy_dir(), nob / "policy")
    AgentBundle(policy="policy", embedder=None, embed_name=None, prior=None, cond_scale=None, world="crafter",
                world_config={"size": 64}).write(nob)
    assert main([*common, "--bundle", str(nob)]) == 2
    err = capsys.readouterr().err
    assert "has no embedder, so its policy cannot read text prompts" in err and err.count("\n") == 1
    assert main([*common, "--bundle", str(tmp_path)]) == 2
    assert "is not an agent bundle" in capsys.readouterr().err
    assert not out.exists()

    # an existing run refuses a changed setting before touching anything
    run_out, _, _ = micro_run
    saved = (run_out / "dagger_config.json").read_text()
    assert main(["train", "dagger", "--preset", "micro", "--bundle", str(tiny_bundle), "--data", str(demo_store),
                 "--out", str(run_out), "--set", "max_steps=30"]) == 2
    err = capsys.readouterr().err
    assert "different max_steps (saved 40, now 30)" in err and (run_out / "dagger_config.json").read_text() == saved
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert main([*common[:-1], str(foreign), "--bundle", str(tiny_bundle)]) == 2
    assert "is not empty and holds no DAgger run" in capsys.readouterr().err


def test_chained_learner_labels_each_frame_with_its_sub_goal(tiny_bundle, demo_store, tmp_path):  # noqa: F811
    """planner=chain: the learner is told the chain's sub-instructions, each stored frame's goal is the sub-goal
    it was told at that step (replayed here with a fresh planner over the executed actions), and the final
    bundle plays with the chain."""
    import torch

    from aimc.data.store import Episode, list_episodes
    from aimc.envs import make
    from aimc.eval.planner import make_planner
    from aimc.finetune import run_dagger
    from aimc.train.bundle import AgentBundle

    out = tmp_path / "chained"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_dagger(micro_cfg(tiny_bundle, demo_store, out, "iterations=1", "episodes=1", "tasks=[place_table]", "train.val_fraction=0",
                                 "planner=chain", "stop_on_success=true", "final_rollouts=false"),
                       progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(n)
    assert s["planner"] == "chain" and AgentBundle.read(out / "bundle").planner == "chain"
    (path,) = list_episodes(out / "iter_01" / "data")
    ep = Episode(path)
    meta = ep.metadata["dagger"]
    goals = [i["goal"] for i in ep.infos]
    assert goals[0] == "collect_wood"  # an empty inventory: the chain starts with the wood a table needs
    planner = make_planner("chain", "crafter")
    env = make("crafter", size=64)
    env.reset(seed=meta["world_seed"])
    plan = planner.start(meta["prompt"])
    assert plan.event == "place_table"
    replayed = []
    for info in ep.infos:
        planner.prompt(plan, env)
        replayed.append(plan.current)
        env.step(info["executed_action"])
    assert replayed == goals


def test_planner_none_keeps_the_instructed_task_and_a_plain_bundle(micro_run):
    out, s, _ = micro_run
    from aimc.train.bundle import AgentBundle

    assert s["planner"] == "none" and AgentBundle.read(out / "bundle").planner is None


def test_skip_explore_masks_the_labellers_exploring_steps_out_of_the_loss(tiny_bundle, demo_store, tmp_path):
    """skip_explore: the steps where the labeller explored are recorded unlabelled, and the fine-tune's items
    mask exactly those steps (and padding) out of the loss while still feeding their frames; without it
    (the module's run) nothing is masked."""
    import torch

    from aimc.core import keys
    from aimc.core.config import load_config
    from aimc.data.dataset import SegmentDataset
    from aimc.data.store import Episode, list_episodes
    from aimc.data.text_goals import TextGoalTable
    from aimc.finetune import run_dagger
    from aimc.train.config import TrainConfig
    from aimc.train.loop import build_data

    out = tmp_path / "skip"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_dagger(micro_cfg(tiny_bundle, demo_store, out, "iterations=1", "episodes=2", "tasks=[collect_coal]",
                                 "max_steps=60", "skip_explore=true", "final_rollouts=false", "train.val_fraction=0"),
                       progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(n)
    eps = [Episode(p) for p in list_episodes(out / "iter_01" / "data")]
    explored = [[bool(i["explored"]) for i in ep.infos] for ep in eps]
    assert any(any(e) for e in explored) and not all(all(e) for e in explored)  # the test needs both kinds
    for ep, flags in zip(eps, explored, strict=True):
        assert ep.metadata[keys.MASKED_LABELS] is True
        assert [bool(i.get(keys.NO_LABEL)) for i in ep.infos] == flags
        assert ep.metadata["dagger_result"]["explore_fraction"] == pytest.approx(np.mean(flags))
    assert s["iterations"][0]["explore_fraction"] == pytest.approx(np.mean(sum(explored, [])))
    tc = load_config(TrainConfig, out / "iter_01" / "train" / "train_config.json")
    train, _, _ = build_data(tc)
    ds = SegmentDataset(train, tc.segment, (64, 64), None, None, TextGoalTable.load(out / "iter_01" / "train" / "text_goals.npz"))
    checked = 0
    for i, (e, start, end) in enumerate(train.rows):
        path = str(train.episodes[e])
        if "iter_01" not in path:
            continue
        flags = explored[[str(ep.path) for ep in eps].index(path)]
        real = min(end, len(flags)) - start
        expected = [not f for f in flags[start:start + real]] + [False] * (end - start - real)
        assert ds[(i, 3)]["step_ok"].tolist() == expected
        checked += 1
    assert checked


def test_a_student_reading_smaller_frames_is_fine_tuned_in_its_own_world(tiny_bundle, demo_store, tmp_path):  # noqa: F811
    """A policy that reads 32x32 frames of a 64x64 world (the shipped agent is such a student) plays, is
    labelled and is fine-tuned at 64x64: its rollouts record 64x64 frames, training resizes them as acting
    does, and the new bundle keeps the world it was trained in (this run failed before 2026-12-07: the
    trainer wanted data recorded at 32x32, i.e. a world rendering other pixels)."""
    import torch

    from aimc.data.store import Episode, list_episodes
    from aimc.finetune import run_dagger
    from aimc.train.bundle import AgentBundle
    from aimc.train.loop import run
    from tests.train.fixtures import tiny_cfg

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(tiny_cfg(demo_store, tmp_path / "student", "n_frames=64", "val_every=0", "policy_overrides.img_shape=[32,32]",
                     f"embedder={tiny_bundle.parent / 'embedder_src'}"), progress=False)
        student = AgentBundle.read(tmp_path / "student")
        assert student.world_config == {"size": 64}  # the demonstrator store's frames, not the policy's input
        out = tmp_path / "dagger"
        run_dagger(micro_cfg(tmp_path / "student", demo_store, out, "iterations=1", "episodes=1", "tasks=[place_table]",
                             "train.val_fraction=0", "final_rollouts=false"), progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(n)
    (path,) = list_episodes(out / "iter_01" / "data")
    assert Episode(path).frames(0, 1).shape[1:3] == (64, 64)
    assert AgentBundle.read(out / "bundle").world_config == {"size": 64}
