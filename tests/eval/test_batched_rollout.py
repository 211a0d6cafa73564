"""Batched rollouts: env slots in lockstep with one policy forward per step give the episodes a batch-1 run gives.

The agent is a `TextAgent` over a tiny bundle (random 18x18 VPT policy with every weight randomised, so a
goal, a memory row or a generator mixed up between slots changes the actions, plus an untrained 8-d text
embedder). Batched and single forwards may round differently (batched matrix products sum in another order),
which could flip a near-tie between two sampled actions; with these weights no step comes close, so the tests
compare actions exactly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aimc.envs import EpisodeHook, Lockstep, RandomActor, make, run_episode
from aimc.eval.baselines import DemonstratorFactory, RandomFactory, TextActor, TextAgentFactory
from aimc.eval.rollout import EnvSpec, EpisodeJob, run_jobs
from tests.eval.helpers import FaultyEnvSpec

ENV = {"size": 18, "render_size": 64}
GOAL_DIM = 8
PROMPTS = ("chop a tree", "drink water", "place a table")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder
    from aimc.policy import VPTPolicy, get_config, save_pretrained
    from aimc.train.bundle import AgentBundle

    root = tmp_path_factory.mktemp("tiny-bundle")
    torch.manual_seed(0)
    policy = VPTPolicy(get_config("test-tiny", img_shape=(18, 18), goal_dim=GOAL_DIM, action_head="categorical",
                                  n_actions=17))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.3 * noise if name.endswith(".weight") and p.ndim == 1 else 0.5 * noise)
    save_pretrained(policy.eval(), root / "policy")
    emb = VideoTextEmbedder(VideoTextConfig(channels=(4, 8), frame_dim=16, embed_dim=GOAL_DIM, frame_size=32), device="cpu")
    emb.save_pretrained(root / "embedder")
    AgentBundle(policy="policy", embedder="embedder", embed_name="videotext", prior=None, cond_scale=2.0,
                world="crafter", world_config=ENV).write(root)
    return root


def _text_actor(bundle: Path, **kw: Any) -> TextActor:
    return TextAgentFactory(str(bundle), **kw)()  # type: ignore[return-value]


class _Actions(EpisodeHook):
    def __init__(self) -> None:
        self.actions: list[int] = []

    def on_step(self, env: Any, step: Any) -> None:
        self.actions.append(step.action)


def test_agent_slots_sample_like_single_agents(bundle):
    """`TextAgent.restart` + `act(env_ids=...)`: any subset of slots, in any batch, acts like one 1-env agent per
    episode with the same goal and seed (guided, with memory longer than the policy's 6-frame cache)."""
    from aimc.eval.agent import TextAgent

    batched, single = TextAgent.from_bundle(bundle), TextAgent.from_bundle(bundle)
    goals = np.random.default_rng(0).normal(size=(4, GOAL_DIM)).astype(np.float32)
    povs = np.random.default_rng(1).integers(0, 255, (12, 4, 18, 18, 3), dtype=np.uint8)
    batched.start(np.zeros((1, GOAL_DIM), np.float32), cond_scale=2.0)
    batched.restart([0, 2, 3], goals[[0, 2, 3]], seeds=[10, 12, 13])  # grows to 4 slots; slot 1 idle for now
    runs: dict[int, list[int]] = {0: [], 1: [], 2: [], 3: []}
    for t in range(12):
        if t == 5:
            batched.restart([1], goals[[1]], seeds=[11])
        slots = [0, 2, 3] if t < 5 else [3, 1, 0] if t % 2 else [1, 2]  # changing subsets and orders
        first = np.array([t == 0 or (s == 1 and t == 5) for s in slots])
        acts = batched.act(povs[t, slots], first, env_ids=slots)
        for s, a in zip(slots, acts.tolist(), strict=True):
            runs[s].append((t, a))
    for s, steps in runs.items():
        single.start(goals[[s]], cond_scale=2.0, seed=10 + s)
        alone = [single.act(povs[t, [s]], np.array([i == 0]))[0] for i, (t, _) in enumerate(steps)]
        assert [a for _, a in steps] == alone, f"slot {s}"
    assert len({tuple(a for _, a in v) for v in runs.values()}) == 4  # the slots really differ


class _Alternating:
    """A goal planner that switches the sub-instruction every 3 world steps (a chain that moves on often)."""

    def start(self, prompt: str) -> Any:
        from aimc.eval.planner import Plan

        return Plan(prompt, "collect_wood", 1.0)

    def prompt(self, plan: Any, env: Any) -> str:
        return plan.prompt if (env.raw._step // 3) % 2 == 0 else "drink water"


def _planned_actor(bundle: Path) -> TextActor:
    from aimc.eval.agent import TextAgent

    return TextActor(TextAgent.from_bundle(bundle), planner=_Alternating())


@pytest.mark.parametrize("planned", [False, True], ids=["prompt", "planner"])
def test_lockstep_equals_run_episode_action_for_action(bundle, planned):
    """10 episodes of mixed prompts and horizons through 3 slots (refilled as episodes end) take the same
    actions and record the same events as each episode played alone by `run_episode`; with a planner whose
    sub-instruction changes mid-episode too (each slot's goal moves on alone, its memory kept)."""
    episodes = [dict(world_seed=200 + i, max_steps=6 + 5 * (i % 4), actor_seed=30 + i, prompt=PROMPTS[i % 3])
                for i in range(10)]
    env, alone = make("crafter", **ENV), []
    make_actor = _planned_actor if planned else _text_actor
    actor = make_actor(bundle)
    for ep in episodes:
        hook = _Actions()
        record = run_episode(env, actor, ep["world_seed"], ep["max_steps"], actor_seed=ep["actor_seed"],
                             prompt=ep["prompt"], hooks=[hook])
        alone.append((hook.actions, record))

    lock, batched = Lockstep(lambda: make("crafter", **ENV), n_slots=3), make_actor(bundle)
    todo, done, slots_used, peak = list(enumerate(episodes)), {}, Counter(), 0
    while todo or lock.active:
        for slot in lock.free_slots():
            if todo:
                i, ep = todo.pop(0)
                hook = _Actions()
                lock.start(slot, batched, ep["world_seed"], ep["max_steps"], actor_seed=ep["actor_seed"],
                           prompt=ep["prompt"], hooks=[hook], tag=(i, hook))
                slots_used[slot] += 1
        peak = max(peak, lock.active)
        for outcome in lock.step():
            assert outcome.error is None, outcome.error
            i, hook = outcome.tag
            done[i] = (hook.actions, outcome.record)
    assert peak == 3 and sorted(slots_used) == [0, 1, 2] and max(slots_used.values()) >= 3  # slots refilled
    for i, (actions, record) in enumerate(alone):
        assert done[i][0] == actions, f"episode {i}"
        assert done[i][1] == record and len(actions) == record.steps
    if planned:  # the switches reached the policy: the same episodes without them act otherwise
        plain = _text_actor(bundle)
        unplanned = []
        for ep in episodes:
            hook = _Actions()
            run_episode(env, plain, ep["world_seed"], ep["max_steps"], actor_seed=ep["actor_seed"], prompt=ep["prompt"],
                        hooks=[hook])
            unplanned.append(hook.actions)
        assert unplanned != [a for a, _ in alone]


class _RaisesOnAct:
    """A BatchActor whose act_slots fails: every slot it was asked for ends, the others carry on."""

    def reset_slot(self, slot: int, env: Any, seed: int, task: str | None = None, prompt: str = "") -> None:
        pass

    def act_slots(self, slots: list[int], envs: list[Any], obs: list[Any], first: list[bool]) -> list[int]:
        raise RuntimeError("policy exploded")


def test_lockstep_failures_stay_in_their_slots():
    lock = Lockstep(lambda: make("crafter", **ENV), n_slots=4)
    bad = _RaisesOnAct()
    for slot, actor in enumerate([RandomActor(), bad, RandomActor(), bad]):
        lock.start(slot, actor, world_seed=slot, max_steps=3, actor_seed=slot, tag=slot)
    first = list(lock.step())
    assert [(o.slot, o.tag, o.record) for o in first] == [(1, 1, None), (3, 3, None)]
    assert all("RuntimeError: policy exploded" in o.error for o in first)
    assert lock.envs[1] is None and lock.envs[0] is not None  # the failed slot's env is rebuilt when next used
    assert lock.free_slots() == [1, 3] and lock.active == 2
    ended = [o for _ in range(2) for o in lock.step()]
    assert [(o.slot, o.record.steps, o.record.truncated) for o in ended] == [(0, 3, True), (2, 3, True)]
    lock.start(0, RandomActor(), 0, 3, actor_seed=0)
    with pytest.raises(Exception, match="slot 0 is still playing"):
        lock.start(0, RandomActor(), 0, 3, actor_seed=0)


def _jobs(bundle_conditions: list[str], n: int) -> list[EpisodeJob]:
    return [EpisodeJob(key=i, condition=bundle_conditions[i % len(bundle_conditions)], task="t",
                       prompt=PROMPTS[i % 3], episode=i, world_seed=100 + i, agent_seed=7 + i,
                       max_steps=8 + 3 * (i % 5), demo_task="collect_wood") for i in range(n)]


def _summary(out: Any) -> list[tuple]:
    return [(r.job.key, r.steps, r.occurrences, r.died) for r in out.results]


def test_run_jobs_results_do_not_depend_on_envs_per_worker(bundle):
    """Guided, unconditional, random and scripted conditions mixed in one worker's slots: the same results as
    one episode at a time."""
    factories = {"agent": TextAgentFactory(str(bundle)), "uncond": TextAgentFactory(str(bundle), zero_goal=True),
                 "rand": RandomFactory(), "demo": DemonstratorFactory()}
    jobs = _jobs(list(factories), 12)
    one = run_jobs(jobs, factories, EnvSpec("crafter", ENV), workers=0, progress=False, envs_per_worker=1)
    many = run_jobs(jobs, factories, EnvSpec("crafter", ENV), workers=0, progress=False, envs_per_worker=5)
    assert _summary(many) == _summary(one) and len(one.results) == 12 and not one.failures
    assert any(r.occurrences for r in one.results)


def test_batched_workers_retry_only_the_failing_episode(bundle, tmp_path):
    """One worker, 4 slots of the text agent: the episode whose env raises is retried alone; the one whose env
    kills the worker is charged the crash while its slot-mates rerun uncharged; results equal a clean run."""
    factories = {"agent": TextAgentFactory(str(bundle), zero_goal=True)}  # no embedder in the worker: fast start
    jobs = [EpisodeJob(key=i, condition="agent", task="t", prompt="", episode=i, world_seed=100 + i,
                       agent_seed=7 + i, max_steps=12) for i in range(5)]
    env = FaultyEnvSpec("crafter", ENV, marker_dir=str(tmp_path), faults=((101, "raise"), (103, "exit")))
    out = run_jobs(jobs, factories, env, workers=1, envs_per_worker=4, episode_timeout=60.0, progress=False)
    assert not out.lost and out.retries == 2
    assert [r.attempts for r in out.results] == [1, 2, 1, 2, 1]
    assert "error: RuntimeError: injected env failure" in out.failures[0]
    assert "crash: worker exited with code 3" in out.failures[1]
    clean = run_jobs(jobs, factories, EnvSpec("crafter", ENV), workers=0, progress=False, envs_per_worker=1)
    assert _summary(out) == _summary(clean)


def test_served_games_chain_like_the_text_actor(bundle):
    """`aimc serve`'s goal-table actor with a planner takes the same actions as `TextActor` with it: the same
    sub-instructions at the same steps, memory kept across each change; clip slots (not in plan_slots) never chain."""
    from aimc.eval.agent import TextAgent
    from aimc.serve.agents import GoalTableActor

    agent = TextAgent.from_bundle(bundle)
    goals = {k: agent.goal_from_text([PROMPTS[k]])[0] for k in range(3)}
    served = GoalTableActor(TextAgent.from_bundle(bundle), goals, 2.0, 3, _Alternating(),
                            lambda text: agent.goal_from_text([text])[0])
    served.plan_slots.update({0, 1})
    lock = Lockstep(lambda: make("crafter", **ENV), n_slots=3)
    hooks = [_Actions() for _ in range(3)]
    for k in range(3):
        lock.start(k, served, 300 + k, 12, actor_seed=7 + k, prompt=PROMPTS[k], hooks=[hooks[k]])
    while lock.active:
        for outcome in lock.step():
            assert outcome.error is None, outcome.error
    assert served.following(0) in (PROMPTS[0], "drink water") and served.following(2) is None
    env = make("crafter", **ENV)
    for k in range(3):
        actor = _planned_actor(bundle) if k < 2 else _text_actor(bundle)
        alone = _Actions()
        run_episode(env, actor, 300 + k, 12, actor_seed=7 + k, prompt=PROMPTS[k], hooks=[alone])
        assert hooks[k].actions == alone.actions, f"slot {k}"
