"""Evaluation statistics on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from aimc.eval.metrics import (
    goal_accuracy,
    goal_discriminability,
    prior_output_collapse,
    rate_summary,
    specificity,
    wilson_interval,
)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert np.isnan(wilson_interval(0, 0)[0])
    s = rate_summary([True, False, True, True])
    assert s["rate"] == 0.75 and s["successes"] == 3 and s["n"] == 4 and s["ci_low"] < 0.75 < s["ci_high"]


def test_specificity_diagonal_minus_mean_of_other_rows():
    m = np.array([[0.9, 0.2, 0.0], [0.5, 0.8, 0.1], [0.1, 0.2, 0.4]])
    np.testing.assert_allclose(specificity(m), [0.9 - 0.3, 0.8 - 0.2, 0.4 - 0.05])
    assert np.allclose(specificity(np.full((3, 3), 0.7)), 0)  # instructions change nothing


def test_prior_metrics_on_constructed_goals():
    e = np.eye(3)
    clips = np.repeat(e, 4, axis=0) + 0.01  # 3 tasks, centroids ~ the axes
    clip_labels = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    perfect = e.copy()
    labels = ["a", "b", "c"]
    assert goal_accuracy(perfect, labels, clips, clip_labels) == 1.0
    assert prior_output_collapse(perfect, labels) == pytest.approx(0.0)
    disc = goal_discriminability(perfect, labels, clips, clip_labels)
    assert disc == pytest.approx(1.0, abs=0.05)
    collapsed = np.ones((3, 3))  # every instruction -> the same goal
    assert prior_output_collapse(collapsed, labels) == pytest.approx(1.0)
    assert goal_discriminability(collapsed, labels, clips, clip_labels) == pytest.approx(0.0, abs=1e-9)
    swapped = e[[1, 0, 2]]  # a and b point at each other's centroid
    assert goal_accuracy(swapped, labels, clips, clip_labels) == pytest.approx(1 / 3)


def test_deaths_before_success_per_task():
    """A death counts against a task only when it comes before that task's success (or with no success)."""
    from aimc.eval.rollout import EpisodeJob, EpisodeResult
    from aimc.eval.run import summarize_task
    from aimc.eval.tasks import load_suite

    suite = load_suite().select(["chop_tree"])
    horizon = suite.task("chop_tree").max_steps

    def ep(occ: dict[str, list[int]], died: bool) -> EpisodeResult:
        job = EpisodeJob(0, "agent", "chop_tree", "chop a tree", 0, 1, 2, horizon)
        return EpisodeResult(job, max([s for v in occ.values() for s in v], default=horizon - 1) + 1, occ, died)

    results = [ep({"collect_wood": [10], "death": [50]}, True),  # succeeded, then died: not before success
               ep({"death": [30]}, True),  # died without success
               ep({"death": [5], "collect_wood": [4]}, True),  # success at 4 then death at 5
               ep({"collect_wood": [60]}, False),
               ep({}, False)]
    s = summarize_task(suite, "chop_tree", results)
    assert s["deaths"]["successes"] == 3 and s["deaths_before_success"]["successes"] == 1
    assert s["deaths_before_success"]["n"] == 5
