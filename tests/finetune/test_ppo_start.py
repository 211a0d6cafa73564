"""PPO start states (`PPOConfig.start`): k drawn per episode as configured, the world started in the demonstrator's
own state k steps before its mark, the memory warmed on the replayed frames and replayed identically by the
update (ratio 1), no loss on the warm-up, workers that play the same episodes, bad input in one line."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from tests.finetune.test_ppo import TWO_STEP_SUITE, capture_first_iteration, micro_cfg, refused_in_one_line

START = ["start.share=1", "start.back=[1,6]", "start.warmup=4", "tasks=[chop_tree,drink_water]"]


def _start(**kw):
    from aimc.finetune.ppo_config import StartConfig

    return StartConfig(**kw)


def test_back_is_drawn_per_episode_between_the_iterations_bounds():
    from aimc.finetune.ppo_config import back_range_at
    from aimc.finetune.ppo_start import draw_back

    off = _start()
    assert all(draw_back(off, 1, 0, i, "chop_tree") is None for i in range(50))  # share 0: off
    half = _start(share=0.5, back=[2, 9], tasks=["chop_tree"])
    draws = [draw_back(half, 1, 0, i, "chop_tree") for i in range(4000)]
    assert all(draw_back(half, 1, 0, i, "place_table") is None for i in range(50))  # not a start task
    assert draws == [draw_back(half, 1, 0, i, "chop_tree") for i in range(4000)]  # a function of the episode
    ks = collections.Counter(d for d in draws if d is not None)
    started = sum(ks.values())
    assert abs(started / 4000 - 0.5) < 4 * (0.25 / 4000) ** 0.5  # the share, statistically
    assert set(ks) == set(range(2, 10))
    assert ks[2] > ks[5] > ks[9]  # log-uniform: the steps nearest the mark most often
    assert draws != [draw_back(half, 2, 0, i, "chop_tree") for i in range(4000)]  # each iteration its own draws

    grow = _start(share=1.0, back=[1, 4], back_final=[8, 32], anneal_iterations=5)
    assert [back_range_at(grow, k) for k in (1, 3, 5, 9)] == [(1, 4), (4, 18), (8, 32), (8, 32)]
    late = [draw_back(grow, 5, 0, i, "x") for i in range(300)]
    assert min(late) >= 8 and max(late) <= 32 and max(late) > 20


@pytest.mark.parametrize("until", ["success", "walled_in", "walled_in_dark"])
def test_a_start_state_is_the_demonstrators_own_state_k_steps_before_its_mark(until):
    """The world starts where the task-mode demonstrator was k steps before its mark (the same player, inventory
    and frame as the demonstrator's own episode), the warm-up holds the frames and actions just before, and the
    demonstrator's remaining k actions reach the mark."""
    from aimc.core import keys
    from aimc.envs import make
    from aimc.envs.actor import DemonstratorActor
    from aimc.eval.planner import player_enclosed
    from aimc.eval.tasks import load_suite
    from aimc.finetune.ppo_start import DemoStart, StartRequest

    task, demo_task, opts = {"success": ("chop_tree", "collect_wood", {}),
                             "walled_in": ("wake_up", "wake_up", {"pocket_shelter": True}),  # task mode: sleeps at once
                             "walled_in_dark": ("wake_up", "wake_up", {"mode": "free"})}[until]  # its first night
    success = load_suite("crafter-extended").task(task).success
    start = _start(share=1.0, until=until, warmup=5, max_demo_steps=600, demonstrator=opts)
    seed = 101  # the demonstrator needs 26 steps to its first wood here
    # the demonstrator's own episode, frame by frame
    env = make("crafter", size=64)
    obs, _ = env.reset(seed=seed)
    demo = DemonstratorActor({"mode": "task", **opts, "noise_prob": 0.0})

    def marked(env, occ):
        if until == "success":
            return success.step(occ) is not None
        return player_enclosed(env) and (until == "walled_in" or float(env.world.daylight) < 0.35)

    demo.reset(env, seed, demo_task)
    frames, actions, occ = [obs[keys.POV]], [], {}
    for t in range(600):
        a = int(demo.act(env, obs, t == 0))
        obs, _, term, _, info = env.step(a)
        assert not term
        actions.append(a)
        frames.append(obs[keys.POV])
        for ev in info[keys.EVENTS]:
            occ.setdefault(ev, []).append(t)
        if marked(env, occ):
            break
    mark = len(actions)
    assert mark >= 8 and marked(env, occ)
    if until == "walled_in_dark":
        assert mark > 150  # the first dusk
    for k in (0, 3, mark + 5):
        wrapped = DemoStart(make("crafter", size=64), start)
        obs, info = wrapped.reset(seed=seed, options={"start": StartRequest(k, demo_task, success)})
        begin = max(0, mark - k)
        assert wrapped.started == {"world_seed": seed, "mark_step": mark, "back": mark - begin,
                                   "reached": int(k == 0 and until != "success")}  # walled in already at k = 0
        assert np.array_equal(obs[keys.POV], frames[begin]) and info[keys.EVENTS] == []
        assert [a for _, a in wrapped.warmup] == actions[max(0, begin - 5): begin]
        assert all(np.array_equal(f, frames[max(0, begin - 5) + i]) for i, (f, _) in enumerate(wrapped.warmup))
        occ = {}
        reached = k == 0 and until != "success" and marked(wrapped, occ)
        for t, a in enumerate(actions[begin:]):
            _, _, _, _, info = wrapped.step(a)
            for ev in info[keys.EVENTS]:
                occ.setdefault(ev, []).append(t)
            reached = reached or marked(wrapped, occ)
        assert reached or (k == 0 and until == "success")  # at k = 0 the success step itself was the last replayed
        assert wrapped.started["reached"] == int(reached)  # the episode's own steps reached the mark
    plain = DemoStart(make("crafter", size=64), start)
    obs, _ = plain.reset(seed=seed)  # no request: the world's own reset
    assert np.array_equal(obs[keys.POV], frames[0]) and plain.warmup == [] and plain.started is None


def test_a_world_the_demonstrator_cannot_finish_is_replaced_then_fails_in_one_line():
    from aimc.core.errors import EpisodeError
    from aimc.envs import make
    from aimc.eval.tasks import load_suite
    from aimc.finetune.ppo_start import DemoStart, StartRequest

    success = load_suite("crafter-extended").task("chop_tree").success
    env = DemoStart(make("crafter", size=64), _start(share=1.0, max_demo_steps=2, tries=3))
    with pytest.raises(EpisodeError, match=r"reached the mark 'success' within start.max_demo_steps=2 in none of 3 worlds"):
        env.reset(seed=5, options={"start": StartRequest(2, "collect_wood", success)})
    env = DemoStart(make("crafter", size=64), _start(share=1.0, max_demo_steps=60, tries=50))
    env.reset(seed=5, options={"start": StartRequest(2, "collect_wood", success)})
    assert env.started is not None and env.started["mark_step"] <= 60


def test_a_run_from_start_states_warms_the_memory_and_replays_it_exactly(tiny_bundle, tmp_path, monkeypatch):
    """Every episode starts from a start state: its leading warm-up steps are the demonstrator's replay, the
    policy acts from there, the update's replay of the warm-up rebuilds the acting memory (first-minibatch ratio 1,
    which a replay from a fresh memory at the start state would miss), no loss reads the warm-up (advantages are
    normalised over the policy's own steps), and start-state episodes last k + extra_steps."""
    from aimc.finetune import run_ppo

    captured = capture_first_iteration(monkeypatch)
    lines: list[str] = []
    s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run", *START, "iterations=1", "value_warmup_iterations=0",
                          "cond_scale=0", "start.extra_steps=5"), progress=False, log=lines.append)
    (row,) = s["iterations"]
    assert "start states 4 (mean k " in lines[0]
    assert row["start_episodes"] == 4 and 1 <= row["start_back"] <= 6 and 0 <= row["start_reached"] <= 1
    assert row["ratio_dev_first"] < 1e-4 and row["kl_anchor"] > 0
    data = captured["data"]
    assert all(tr.warm > 0 and tr.start is not None for tr in data.trajs)
    assert any(tr.warm == 4 for tr in data.trajs)
    for tr in data.trajs:
        assert tr.own_steps <= tr.start["back"] + 5
        assert not tr.logp[: tr.warm].any() and not tr.rewards[: tr.warm].any()
        assert tr.outcome()["steps"] == tr.own_steps and tr.outcome()["start"] == tr.start
    own = np.concatenate([a[tr.warm:] for tr, a in zip(data.trajs, data.adv, strict=True)])
    assert abs(own.mean()) < 1e-5 and abs(own.std() - 1) < 1e-3  # normalised over the policy's own steps

    # the same replay without the warm-up frames would not give the acting log-probabilities
    from aimc.finetune.ppo import policy_step
    from aimc.policy import from_pretrained
    from aimc.train.bundle import AgentBundle

    policy = from_pretrained(AgentBundle.read(tiny_bundle).policy_dir())

    def replay(tr, goal, frames):
        first = torch.zeros(1, len(frames), dtype=torch.bool)
        first[0, 0] = True
        g = torch.from_numpy(np.broadcast_to(goal, (len(frames), goal.shape[-1])).copy())[None]
        with torch.no_grad():
            out, _ = policy_step(policy, torch.from_numpy(frames)[None], g, first, None, 0.0)
        (lp,) = out.logp.values()
        return lp[0, -(tr.own_steps):].gather(-1, torch.from_numpy(tr.actions[tr.warm:])[:, None])[:, 0].numpy()

    # Over every episode: with the warm-up the replay gives the acting log-probabilities (to float noise); from a
    # fresh memory at the start state it does not. The tiny policy's memory moves them only by about 1e-4 to 1e-3
    # per step, so the gap is judged over all episodes' steps, not one episode's (which depends on its world).
    cold = []
    for tr, goal in zip(data.trajs, data.goals, strict=True):
        np.testing.assert_allclose(replay(tr, goal, tr.frames), tr.logp[tr.warm:], atol=1e-4)
        cold.append(np.abs(replay(tr, goal, tr.frames[tr.warm:]) - tr.logp[tr.warm:]).max())
    assert max(cold) > 1e-4


def _in_process_and_in_workers(cfg, plan, jobs):
    """The same jobs played by the in-process engine and by two rollout workers: (theirs, the workers')."""
    from aimc.finetune.ppo_rollout import PolicyActor, RolloutEngine
    from aimc.finetune.ppo_workers import RolloutPool

    specs = {s.name: s for s in plan.specs}
    actor = PolicyActor(plan.policy, cfg.envs, plan.cond_scale, "cpu", None, plan.goals.__getitem__)
    ref = RolloutEngine(plan.world, plan.world_config, cfg.envs, True, cfg.start).play(
        actor, specs, plan.goals, jobs, cfg.max_steps, cfg.reward)
    with RolloutPool(2, str(plan.bundle.policy_dir()), plan.world, plan.world_config, cfg.envs, True,
                     cond_scale=plan.cond_scale, device="cpu", planner="none", make_labeller=None,
                     demo_tasks={s.name: s.demo_task for s in plan.specs}, skip_explore=False, tied_moves=False,
                     start=cfg.start) as pool:
        got = pool.play(plan.policy, specs, plan.goals, jobs, cfg.max_steps, cfg.reward)
    return ref, got


def test_rollout_workers_play_the_same_start_states(tiny_bundle, tmp_path):
    from aimc.finetune.ppo import prepare
    from aimc.finetune.ppo_rollout import make_jobs

    cfg, plan = prepare(micro_cfg(tiny_bundle, tmp_path / "run", *START, "start.share=0.5", "episodes_per_iteration=6",
                                  "envs=4"))
    jobs = make_jobs(plan.specs, cfg.episodes_per_iteration, 1, cfg.seed, cfg.start)
    assert any(j.back is None for j in jobs) and any(j.back is not None for j in jobs)
    ref, got = _in_process_and_in_workers(cfg, plan, jobs)
    for a, b in zip(ref, got, strict=True):
        assert a.start == b.start and a.warm == b.warm and np.array_equal(a.frames[: a.warm + 1], b.frames[: b.warm + 1])
        assert (a.start is None) == (a.job.back is None)


def test_start_state_bad_input_in_one_line_nothing_written(tiny_bundle, tmp_path, capsys):
    from aimc.core.errors import ConfigError, UnknownNameError
    from aimc.finetune import load_ppo_config

    for sets, err, message in (
        (["start.share=1.5"], ConfigError, "start.share must be in [0, 1]"),
        (["start.until=sunrise"], ConfigError, "start.until: expected one of success, walled_in, walled_in_dark"),
        (["start.back=[5,2]"], ConfigError, "start.back: expected [lo, hi]"),
        (["start.back_final=[4,9]"], ConfigError, "start.anneal_iterations >= 2"),
        (["start.tasks=[eat_cow]"], UnknownNameError, "start.tasks: 'eat_cow' is not one of the run's tasks"),
        (["start.warmup=-1"], ConfigError, "start.warmup must be >= 0"),
        (["start.bc_coef=-1"], ConfigError, "start.bc_coef must be >= 0"),
    ):
        with pytest.raises(err, match=message.replace("[", r"\[")):
            load_ppo_config("ppo-micro", sets)
    suite = tmp_path / "suite.yaml"
    suite.write_text(TWO_STEP_SUITE)
    refused_in_one_line(tiny_bundle, tmp_path / "run", (
        (["start.share=1", f"suite={suite}", "tasks=[table_or_wood]"], "name no demo_task in the suite"),
        (["start.share=1", "start.demonstrator={speed: 3}"], "speed"),
        (["start.share=1", "start.back=[2]"], "start.back: expected [lo, hi]"),
    ), capsys)


def test_start_bc_clones_the_demonstrators_replayed_actions_on_the_warm_up(tiny_bundle, tmp_path, monkeypatch):
    """`start.bc_coef`: the update adds the mean NLL of the demonstrator's own actions on the warm-up steps (the
    replay that led it to the start state), computed here independently from one replay of each whole episode."""
    from aimc.finetune import run_ppo
    from aimc.finetune.ppo import make_optimizer, policy_step, ppo_update
    from aimc.policy import from_pretrained
    from aimc.train.bundle import AgentBundle

    captured = capture_first_iteration(monkeypatch)
    sets = [*START, "iterations=1", "value_warmup_iterations=0", "cond_scale=0", "start.extra_steps=5"]
    off = run_ppo(micro_cfg(tiny_bundle, tmp_path / "off", *sets), progress=False, log=lambda _: None)
    assert "start_bc_nll" not in off["iterations"][0]
    on = run_ppo(micro_cfg(tiny_bundle, tmp_path / "on", *sets, "start.bc_coef=0.5"), progress=False, log=lambda _: None)
    assert on["iterations"][0]["start_bc_nll"] > 0
    data = captured["data"]
    policy = from_pretrained(AgentBundle.read(tiny_bundle).policy_dir())
    with torch.no_grad():
        total = 0.0
        for tr, goal in zip(data.trajs, data.goals, strict=True):
            first = torch.zeros(1, tr.steps, dtype=torch.bool)
            first[0, 0] = True
            g = torch.from_numpy(np.broadcast_to(goal, (tr.steps, goal.shape[-1])).copy())[None]
            out, _ = policy_step(policy, torch.from_numpy(tr.frames)[None], g, first, None, 0.0)
            (lp,) = out.logp.values()
            total -= float(lp[0, : tr.warm].gather(-1, torch.from_numpy(tr.actions[: tr.warm])[:, None]).sum())
    ref = total / sum(tr.warm for tr in data.trajs)
    cfg = micro_cfg(tiny_bundle, tmp_path / "x", *sets, "start.bc_coef=0.5", "epochs=1", "minibatch_episodes=4")
    data.anchor = None
    stats = ppo_update(policy, make_optimizer(policy, cfg), data, cfg, 1, 0.0, warmup=False)
    assert stats["optimizer_steps"] == 1 and stats["start_bc_nll"] == pytest.approx(ref, rel=1e-4)


def test_success_at_mark_ends_a_start_episode_where_its_own_play_reaches_the_mark():
    """`start.success_at_mark`: the step a start-state episode's own play reaches the demonstrator's mark (here
    walled in, by the demonstrator's remaining actions) pays `reward.success` and ends the episode; without it,
    the same steps pay nothing (the task, waking up, is hours away); k = 0 is refused with it."""
    from aimc.core.errors import ConfigError
    from aimc.envs import Step, make
    from aimc.envs.actor import DemonstratorActor
    from aimc.eval.planner import player_enclosed
    from aimc.eval.tasks import load_suite
    from aimc.finetune import RewardConfig, load_ppo_config
    from aimc.finetune.ppo_rollout import RewardHook, SuccessStop, TaskSpec, _Buffer
    from aimc.finetune.ppo_start import DemoStart, StartRequest

    success = load_suite("crafter-extended").task("wake_up").success
    spec = TaskSpec("wake_up", success, ("sleep",), (), "wake_up")
    opts = {"pocket_shelter": True}
    env = make("crafter", size=64)
    obs, _ = env.reset(seed=101)
    demo = DemonstratorActor({"mode": "task", **opts, "noise_prob": 0.0})
    demo.reset(env, 101, "wake_up")
    actions = []
    while not player_enclosed(env):
        actions.append(int(demo.act(env, obs, not actions)))
        obs, *_ = env.step(actions[-1])
    for mark in (True, False):
        world = SuccessStop(DemoStart(make("crafter", size=64), _start(share=1.0, until="walled_in", demonstrator=opts)))
        world.success, world.mark = success, mark
        buf = _Buffer(np.zeros(2, np.float32))
        hook = RewardHook(spec, RewardConfig(success=1.0), buf, mark=mark)
        obs, info = world.reset(seed=101, options={"start": StartRequest(3, "wake_up")})
        hook.on_reset(world, obs, info)
        ends = []
        for t, a in enumerate(actions[-3:]):
            nxt, r, term, trunc, info = world.step(a)
            hook.on_step(world, Step(t, obs, a, nxt, r, term, trunc, info))
            ends.append(trunc)
            obs = nxt
        assert ends == [False, False, mark]
        assert buf.rewards == ([0.0, 0.0, 1.0] if mark else [0.0, 0.0, 0.0])
        assert hook.success_step == (2 if mark else None)
    with pytest.raises(ConfigError, match="start.success_at_mark needs k >= 1"):
        load_ppo_config("ppo-micro", ["start.success_at_mark=true", "start.back=[0,4]"])


def test_the_night_preset_runs_from_the_demonstrators_first_night(tiny_bundle, tmp_path):
    """Preset ppo-night, cut to one small iteration: every episode starts before the free-play demonstrator's first
    night's seal (dark, past step 150), with k in the first rung's range, and ends by k + 10 steps or at the seal."""
    from aimc.finetune import load_ppo_config, run_ppo

    cfg = load_ppo_config("ppo-night", ["iterations=1", "episodes_per_iteration=2", "envs=2", "rollout_workers=1",
                                        "value_warmup_iterations=0"], bundle=str(tiny_bundle), out=str(tmp_path / "run"))
    assert cfg.start.until == "walled_in_dark" and cfg.start.success_at_mark and cfg.tasks == ["wake_up"]
    s = run_ppo(cfg, progress=False, log=lambda _: None)
    (row,) = s["iterations"]
    assert row["start_episodes"] == 2 and 1 <= row["start_back"] <= 6 and row["episode_len"] <= 16
    assert s["planner"] == "chain-rest"


LEAD = ["suite=crafter-extended", "tasks=[chop_tree,wake_up]", "start.share=1", "start.tasks=[wake_up]",
        "start.until=walled_in_dark", "start.lead=policy", "start.back=[1,4]", "start.warmup=4",
        "start.demonstrator={mode: free, pocket_shelter: true}", "start.max_demo_steps=400", "start.tries=40"]


def test_a_leading_player_plays_the_day_and_the_demonstrator_seals_from_where_it_stands():
    """`start.lead` "policy": whatever leads plays from the reset to the first dark step, the free-play demonstrator
    takes over from that state (its memory starting there) to its seal, and the start state is k steps before that
    seal on the joined actions; a world where the leader dies is replaced by the next derived one."""
    from aimc.core import keys
    from aimc.envs import make
    from aimc.envs.actor import DemonstratorActor
    from aimc.eval.planner import player_enclosed
    from aimc.finetune.ppo_start import DemoStart, StartRequest

    left, seed = 1, 110  # move_left: the leader walks left then waits, its own day, not the demonstrator's

    def leader(env, obs, stop):
        actions = []
        while not stop(env):
            actions.append(left if len(actions) < 6 else 0)
            obs, _, term, _, _ = env.step(actions[-1])
            if term:
                return None
        return actions, obs

    opts = {"mode": "free", "pocket_shelter": True}
    env = make("crafter", size=64)
    obs, _ = env.reset(seed=seed)
    frames, actions = [obs[keys.POV]], []
    while float(env.world.daylight) >= 0.35:  # the leader's day, by hand
        actions.append(left if len(actions) < 6 else 0)
        obs, _, term, _, _ = env.step(actions[-1])
        assert not term
        frames.append(obs[keys.POV])
    dusk = len(actions)
    assert dusk > 150 and env.player.pos[0] < 32  # it walked left of the start, then waited
    demo = DemonstratorActor({**opts, "noise_prob": 0.0})
    demo.reset(env, seed)
    for t in range(300):  # then the demonstrator from there, to its seal
        actions.append(int(demo.act(env, obs, t == 0)))
        obs, _, term, _, _ = env.step(actions[-1])
        assert not term
        frames.append(obs[keys.POV])
        if player_enclosed(env) and float(env.world.daylight) < 0.35:
            break
    mark = len(actions)
    assert mark > dusk + 1
    start = _start(share=1.0, until="walled_in_dark", lead="policy", warmup=3, demonstrator=opts)
    for k in (2, mark - dusk + 5):  # within the demonstrator's part, and back in the leader's day
        wrapped = DemoStart(make("crafter", size=64), start)
        obs, _ = wrapped.reset(seed=seed, options={"start": StartRequest(k, "wake_up", None, leader)})
        assert wrapped.started == {"world_seed": seed, "mark_step": mark, "back": k, "reached": 0, "lead_steps": dusk}
        assert np.array_equal(obs[keys.POV], frames[mark - k])
        assert [a for _, a in wrapped.warmup] == actions[mark - k - 3: mark - k]
    calls = []

    def dies_first(env, obs, stop):
        calls.append(1)
        return None if len(calls) == 1 else leader(env, obs, stop)

    wrapped = DemoStart(make("crafter", size=64), start)
    wrapped.reset(seed=seed, options={"start": StartRequest(2, "wake_up", None, dies_first)})
    assert len(calls) >= 2 and wrapped.started["world_seed"] != seed  # the next world(s) derived from the seed


def test_the_policy_leads_the_same_start_states_in_process_and_in_workers(tiny_bundle, tmp_path):
    """With `start.lead` "policy" the acting policy itself plays each start episode's day (a lead task's training
    prompt, drawn per episode) before the demonstrator: the same start states from the in-process engine and from
    two rollout workers, and a run reports how long those days were."""
    from aimc.finetune import run_ppo
    from aimc.finetune.ppo import prepare
    from aimc.finetune.ppo_rollout import make_jobs

    cfg, plan = prepare(micro_cfg(tiny_bundle, tmp_path / "run", *LEAD, "episodes_per_iteration=3", "envs=3",
                                  "start.extra_steps=3"))
    jobs = [j for j in make_jobs(plan.specs, 4, 1, cfg.seed, cfg.start) if j.back is not None][:2]
    assert jobs and all(j.task == "wake_up" for j in jobs)
    ref, got = _in_process_and_in_workers(cfg, plan, jobs)
    for a, b in zip(ref, got, strict=True):
        assert a.start == b.start and a.start["lead_steps"] > 150  # the policy's day: to the first dark step
        assert a.warm == b.warm == 4 and np.array_equal(a.frames[: a.warm + 1], b.frames[: b.warm + 1])
    s = run_ppo(micro_cfg(tiny_bundle, tmp_path / "run2", *LEAD, "iterations=1", "episodes_per_iteration=2", "envs=2",
                          "start.extra_steps=3"), progress=False, log=lambda _: None)
    (row,) = s["iterations"]
    assert row["start_episodes"] >= 1 and row["start_lead"] > 150


def test_start_lead_bad_input_in_one_line():
    from aimc.core.errors import ConfigError, UnknownNameError
    from aimc.finetune import load_ppo_config

    dark = ["start.until=walled_in_dark", "tasks=[chop_tree,place_table]", "start.tasks=[place_table]"]
    for sets, err, message in (
        (["start.lead=dawn"], ConfigError, "start.lead: expected one of demonstrator, policy, got 'dawn'"),
        (["start.lead=policy"], ConfigError, "needs start.until=walled_in_dark, got 'success'"),
        ([*dark, "start.lead_tasks=[eat_cow]"], UnknownNameError, "start.lead_tasks: 'eat_cow' is not one of the run's tasks"),
        (["start.until=walled_in_dark", "start.lead=policy"], ConfigError, "needs a day task for the policy to play"),
        ([*dark, "start.tasks=[chop_tree,place_table]", "start.lead=policy"], ConfigError, "needs a day task"),
    ):
        with pytest.raises(err, match=message.replace("[", r"\[").replace("(", r"\(")):
            load_ppo_config("ppo-micro", sets)
    cfg = load_ppo_config("ppo-micro", [*dark, "start.lead=policy"])  # the day task: the run's other one
    from aimc.finetune.ppo_config import lead_tasks

    assert lead_tasks(cfg.start, cfg.tasks) == ["chop_tree"]


def test_start_bc_clones_the_demonstrators_warm_up_steps_not_a_leading_policys():
    """With `start.lead` the warm-up before a start state can reach back into the policy's own day: those steps warm
    the memory but are not cloned (`Trajectory.lead_warm`, per-step own flag -1), the demonstrator's are (0)."""
    from aimc.finetune.ppo import _own_steps
    from aimc.finetune.ppo_rollout import EpisodeJob, Trajectory

    def traj(warm, start):
        n = warm + 3
        z = np.zeros(n, np.float32)
        return Trajectory(EpisodeJob(1, 0, "wake_up", "p", 0, 0, 2), np.zeros((n, 2, 2, 3), np.uint8),
                          np.zeros(n, np.int64), z, z, z, 0.0, False, False, None, warm=warm, start=start)

    # the policy played steps 0-159, the demonstrator 160-189 (mark 190); k = 25: the episode starts at step 165,
    # the 8 warm-up frames are steps 157-164: three of the policy's day, five of the demonstrator's
    led = traj(8, {"world_seed": 0, "mark_step": 190, "back": 25, "reached": 0, "lead_steps": 160})
    assert led.lead_warm == 3
    assert _own_steps(led).tolist() == [-1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1]
    far = traj(8, {"world_seed": 0, "mark_step": 190, "back": 60, "reached": 0, "lead_steps": 160})
    assert far.lead_warm == 8  # the start state lies in the policy's own day: nothing to clone
    near = traj(8, {"world_seed": 0, "mark_step": 190, "back": 2, "reached": 0, "lead_steps": 160})
    assert near.lead_warm == 0
    plain = traj(8, {"world_seed": 0, "mark_step": 190, "back": 2, "reached": 0})  # the demonstrator all the way
    assert plain.lead_warm == 0 and _own_steps(plain).tolist() == [0] * 8 + [1] * 3
