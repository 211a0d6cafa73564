"""The night benchmark (benchmarks/bench_night.py) on the shipped agent, a world or two and a few steps.

docs/evaluation.md reports its counts, so the code path must keep working: the records, their determinism (same
seed, same counts), what counts as dark, and bad input as one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_night.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_night", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def agent():
    from aimc.eval.agent import TextAgent
    from aimc.eval.play import shipped_bundle

    return TextAgent.from_bundle(shipped_bundle(), seed=0)


def test_own_episodes_are_deterministic_and_the_morning_is_not_dark(bench, agent):
    first = bench.own(agent, 2, "collect wood", "chain-prepare", 30, seed=5, verbose=False)
    again = bench.own(agent, 2, "collect wood", "chain-prepare", 30, seed=5, verbose=False)
    assert first == again
    assert [r["world"] for r in first] == [1000, 1001]
    for r in first:  # Crafter's day starts bright and the light rises until step ~60: no dusk in 30 steps
        assert r["dusk"] is None and r["stones_at_dusk"] is None and r["sealed_dark"] == 0
        assert r["died"] is None or 0 <= r["died"] < 30


def test_rungs_count_per_k_and_repeat(bench, agent):
    counts = bench.rungs(agent, 1, [0, 2], pocket=True, seed=0, verbose=False)
    assert set(counts) == {0, 2}
    for walled, died in counts.values():
        assert walled in (0, 1) and died in (0, 1) and walled + died <= 1
    assert bench.rungs(agent, 1, [0, 2], pocket=True, seed=0, verbose=False) == counts


@pytest.mark.parametrize("argv, message", [
    (["own", "--planner", "chain-nope"], "unknown planner 'chain-nope'"),
    (["rungs", "--ks", "2,-1"], "--ks needs comma-separated steps >= 0"),
    (["own", "--steps", "0"], "--steps must be positive"),
    (["own", "--bundle", "no/such/bundle"], "no/such/bundle"),
])
def test_bad_input_is_one_line(bench, capsys, argv, message):
    assert bench.main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_dusk_hands_the_agents_own_dusk_to_the_demonstrator(bench, agent):
    recs = bench.dusk(agent, 1, [1, 400], "collect wood", "chain-prepare", pocket=True, seed=0, verbose=False)
    assert recs == bench.dusk(agent, 1, [1, 400], "collect wood", "chain-prepare", pocket=True, seed=0, verbose=False)
    (rec,) = recs
    assert rec["world"] == 1000
    if rec["dusk"] is None:  # dead before its first dark step: nothing handed over
        assert rec["demo_steps"] is None and rec["rungs"] == {}
        return
    assert rec["dusk"] > 100  # the first dark step comes late in the first day (about step 160)
    if rec["demo_steps"] is None:
        assert rec["rungs"] == {}
    else:  # only the k its part reaches back to are played
        assert 1 <= rec["demo_steps"] <= 150 and set(rec["rungs"]) == {1}
