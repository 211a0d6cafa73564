"""DAgger rollouts on their own: β-mixing of executed actions, worker processes, stopping at success."""

from __future__ import annotations

import numpy as np
import pytest


def spec_for(bundle, store, **kw):
    from aimc.finetune.rollout import RolloutSpec

    return RolloutSpec(bundle=str(bundle), store=str(store), demonstrator={"mode": "task", "noise_prob": 0.0},
                       metadata={"iteration": 1, "stage": "dagger"}, **kw)


def test_worker_processes_give_the_same_episodes(tiny_bundle, tmp_path):
    from aimc.data.store import Episode, list_episodes
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    jobs = make_jobs(["collect_wood", "collect_drink"], 2, 0.5, 12, 5, "iter1")
    one = collect_rollouts(spec_for(tiny_bundle, tmp_path / "a"), jobs, workers=1)
    two = collect_rollouts(spec_for(tiny_bundle, tmp_path / "b"), jobs, workers=2)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    assert strip(one) == strip(two) and [r["steps"] for r in one] == [12, 12]
    for a, b in zip(list_episodes(tmp_path / "a"), list_episodes(tmp_path / "b"), strict=True):
        ea, eb = Episode(a), Episode(b)
        assert ea.actions.tolist() == eb.actions.tolist() and ea.infos == eb.infos
        assert np.array_equal(ea.frames(), eb.frames())


def test_beta_mixes_expert_and_learner_actions(tiny_bundle, tmp_path):
    from aimc.data.store import Episode, list_episodes
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    jobs = make_jobs(["collect_wood", "collect_drink"], 2, 0.5, 20, 5, "iter1")
    one = collect_rollouts(spec_for(tiny_bundle, tmp_path / "a"), jobs, workers=1)
    for path, r in zip(list_episodes(tmp_path / "a"), one, strict=True):
        ep = Episode(path)
        labels = ep.actions.tolist()
        executed = [i["executed_action"] for i in ep.infos]
        learner = [i["learner_action"] for i in ep.infos]
        assert all(e in (lab, le) for e, lab, le in zip(executed, labels, learner, strict=True))
        # the expert ran on about half the steps (20 steps: a 0.5 coin must land between 3 and 17 heads)
        assert 0.15 <= r["expert_fraction"] <= 0.85 and r["steps"] == 20
        disagree = [e == lab for e, lab, le in zip(executed, labels, learner, strict=True) if lab != le]
        assert sum(disagree) <= round(r["expert_fraction"] * 20)
    # a rerun finds every episode stored and plays none (resume), returning the stored results
    again = collect_rollouts(spec_for(tiny_bundle, tmp_path / "a"), jobs, workers=1)
    assert again == one


def test_beta_one_executes_the_labels(tiny_bundle, tmp_path):
    from aimc.data.store import Episode, list_episodes
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    (r,) = collect_rollouts(spec_for(tiny_bundle, tmp_path), make_jobs(["collect_wood"], 1, 1.0, 60, 0, "iter1"))
    ep = Episode(list_episodes(tmp_path)[0])
    assert [i["executed_action"] for i in ep.infos] == ep.actions.tolist() and r["expert_fraction"] == 1.0


def test_stop_on_success_ends_the_episode_at_the_task_event(tiny_bundle, tmp_path):
    """With the demonstrator driving (β = 1) wood is chopped early; the rollout stops right there."""
    from aimc.data.store import Episode, list_episodes
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    (r,) = collect_rollouts(spec_for(tiny_bundle, tmp_path, stop_on_success=True),
                            make_jobs(["collect_wood"], 1, 1.0, 200, 0, "iter1"))
    assert r["success"] and r["steps"] == r["success_step"] + 1 < 200
    ep = Episode(list_episodes(tmp_path)[0])
    assert "collect_wood" in ep.events[-1] and ep.metadata["truncated"] and not ep.metadata["terminated"]


def _stored(store):
    """Every stored episode as comparable values: labels, frames, events, infos and the outcome without timing."""
    from aimc.data.store import Episode, list_episodes

    out = []
    for path in list_episodes(store):
        ep = Episode(path)
        result = {k: v for k, v in ep.metadata["dagger_result"].items() if k != "wall_s"}
        out.append((ep.name, ep.actions.tolist(), ep.frames().tobytes(), ep.events, ep.infos, result))
    return out


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_envs_per_worker_does_not_change_the_episodes(tiny_bundle, tmp_path, beta):
    """4 jobs in 3 lockstep slots (a slot refills when its episode stops at success) store what 1 slot stores.

    β = 1: the expert executes every step, so episodes must match byte for byte. β = 0.5: the learner acts too;
    a slot samples from its own generator, so the episodes match as long as batching (float rounding of the
    batched forward) flips no near-tie of the tiny learner's sampling, which holds for this bundle."""
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    jobs = make_jobs(["collect_wood", "collect_drink"], 4, beta, 30, 3, "iter1")
    spec = lambda d: spec_for(tiny_bundle, tmp_path / d, stop_on_success=True)  # noqa: E731
    one = collect_rollouts(spec("one"), jobs, envs_per_worker=1)
    three = collect_rollouts(spec("three"), jobs, envs_per_worker=3)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    assert strip(one) == strip(three)
    a, b = _stored(tmp_path / "one"), _stored(tmp_path / "three")
    assert [e[0] for e in a] == ["ep00000", "ep00001", "ep00002", "ep00003"] and a == b
    if beta == 1.0:
        assert all(r["expert_fraction"] == 1.0 for r in one) and any(r["success"] for r in one)
        assert len({r["steps"] for r in one}) > 1  # episodes of different lengths shared the slots


class _FailAt:
    """A world whose episode in world seed `seed` raises at step `t` (other attributes: the wrapped world's)."""

    def __init__(self, env, seed: int, t: int) -> None:
        self.env, self.fail_seed, self.fail_t = env, seed, t
        self.seed, self.t = None, 0

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, *, seed=None, options=None):
        self.seed, self.t = seed, 0
        return self.env.reset(seed=seed)

    def step(self, action):
        self.t += 1
        if (self.seed, self.t) == (self.fail_seed, self.fail_t):
            raise RuntimeError("the world broke")
        return self.env.step(action)


def test_a_failed_episode_stops_the_collection_and_keeps_finished_ones(tiny_bundle, tmp_path, monkeypatch):
    """A world error in one slot raises one line naming the episode; the episodes still playing are dropped
    (nothing half-written), finished ones stay stored, and a rerun plays only the missing ones."""
    import aimc.finetune.rollout as rollout
    from aimc.core.errors import EpisodeError
    from aimc.finetune.rollout import collect_rollouts, make_jobs

    jobs = make_jobs(["collect_wood", "collect_drink"], 3, 1.0, 30, 4, "iter1")
    spec = spec_for(tiny_bundle, tmp_path / "a", stop_on_success=True)
    ref = collect_rollouts(spec_for(tiny_bundle, tmp_path / "ref", stop_on_success=True), jobs, envs_per_worker=2)
    real = rollout.make
    # job 0 fails at its last step, after job 1 (which succeeds sooner) finished and job 2 took its slot
    fail_t = ref[0]["steps"]
    assert ref[1]["steps"] < fail_t
    monkeypatch.setattr(rollout, "make", lambda *a, **kw: _FailAt(real(*a, **kw), jobs[0].world_seed, fail_t))
    with pytest.raises(EpisodeError) as e:
        collect_rollouts(spec, jobs, envs_per_worker=2)
    assert str(e.value).startswith(f"DAgger rollout ep00000 (collect_wood, world seed {jobs[0].world_seed}) failed: "
                                   "RuntimeError: the world broke") and "\n" not in str(e.value)
    assert "Traceback" in "".join(e.value.__notes__)
    job2_done = ref[1]["steps"] + ref[2]["steps"] < fail_t
    kept = ["ep00001", "ep00002"] if job2_done else ["ep00001"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == kept  # no half episode left
    monkeypatch.setattr(rollout, "make", real)
    again = collect_rollouts(spec, jobs, envs_per_worker=2)
    assert [r["steps"] for r in again] == [r["steps"] for r in ref] and _stored(tmp_path / "a") == _stored(tmp_path / "ref")


@pytest.mark.parametrize(("native", "ran"), [("1", "bf16"), ("0", "fp32")])
def test_the_learner_acts_in_the_asked_precision(tiny_bundle, tmp_path, monkeypatch, native, ran):
    """`precision: bf16` reaches the learner's Agent (bf16 where native, forced here either way), and the labelled
    episodes come out whole."""
    from aimc.finetune.rollout import Worker, collect_rollouts, make_jobs

    monkeypatch.setenv("AIMC_CPU_BF16", native)
    worker = Worker(spec_for(tiny_bundle, tmp_path / "w", precision="bf16"))
    worker.learner.reset_slot(0, None, 0, prompt="collect wood")
    assert worker.learner.agent._agent.precision == ran
    (r,) = collect_rollouts(spec_for(tiny_bundle, tmp_path / "a", precision="bf16"),
                            make_jobs(["collect_wood"], 1, 0.0, 12, 0, "iter1"))
    assert r["steps"] == 12
