"""DAgger rollouts on their own: β-mixing of executed actions, worker processes, stopping at success."""

from __future__ import annotations

import numpy as np


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
