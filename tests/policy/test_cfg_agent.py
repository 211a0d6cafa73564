"""Classifier-free guidance (any batch size) and the batched Agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimc.policy import Agent, cfg_forward, cfg_initial_state, guide
from tests.policy.conftest import make_tiny, rand_pov

ATOL = 2e-5


@torch.no_grad()
def test_cfg_batch_equals_separate_runs() -> None:
    p = make_tiny(goal_dim=8)
    b, t, scale = 3, 4, 6.0
    g = torch.Generator().manual_seed(0)
    chunks = [(rand_pov(b, t, seed=s), torch.randn(b, t, 8, generator=g)) for s in range(3)]
    first = torch.zeros(b, t, dtype=torch.bool)
    state = cfg_initial_state(p, b)
    batched = []
    for pov, goal in chunks:
        out, state = cfg_forward(p, pov, goal, first, state, scale)
        batched.append(out)
    assert state.batch_size == 2 * b
    for i in range(b):
        st = cfg_initial_state(p, 1)
        for c, (pov, goal) in enumerate(chunks):
            out, st = cfg_forward(p, pov[i : i + 1], goal[i : i + 1], first[i : i + 1], st, scale)
            for k in out.logp:
                torch.testing.assert_close(out.logp[k], batched[c].logp[k][i : i + 1], atol=1e-4, rtol=0)


@torch.no_grad()
def test_cfg_formula_and_branches() -> None:
    p = make_tiny(goal_dim=8)
    pov, goal = rand_pov(2, 3), torch.randn(2, 3, 8)
    out, _ = cfg_forward(p, pov, goal, None, None, 7.0)
    cond, _ = p(pov, goal, None, None)
    uncond, _ = p(pov, torch.zeros_like(goal), None, None)
    for k in cond.logp:
        torch.testing.assert_close(out.extras["logp_cond"][k], cond.logp[k], atol=ATOL, rtol=0)
        torch.testing.assert_close(out.extras["logp_uncond"][k], uncond.logp[k], atol=ATOL, rtol=0)
        want = 8.0 * cond.logp[k] - 7.0 * uncond.logp[k]
        torch.testing.assert_close(out.logp[k], want, atol=2e-4, rtol=0)
    zero, _ = cfg_forward(p, pov, goal, None, None, 0.0)
    torch.testing.assert_close(zero.logp["buttons"], cond.logp["buttons"], atol=ATOL, rtol=0)
    a = {"x": torch.tensor([-1.0, -2.0])}
    assert torch.equal(guide(a, {"x": torch.tensor([-3.0, -1.0])}, 1.0)["x"], torch.tensor([1.0, -3.0]))


def test_cfg_needs_goal_policy() -> None:
    with pytest.raises(ValueError, match="goal"):
        cfg_forward(make_tiny(), rand_pov(1, 1), torch.zeros(1, 1, 8), None, None, 1.0)


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("core", ["transformer", "lstm"])
def test_agent_batched_equals_single_deterministic(core: str) -> None:
    p = make_tiny(goal_dim=8, recurrence_type=core)
    goals = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    batched = Agent(p, n_envs=3, deterministic=True, cond_scale=5.0)
    singles = [Agent(p, n_envs=1, deterministic=True, cond_scale=5.0) for _ in range(3)]
    for step in range(6):
        frames = _frames(3, step)
        if step == 3:  # env 1 starts a new episode
            batched.reset([1])
            singles[1].reset()
        a = batched.act(frames, goals)
        for i in range(3):
            s = singles[i].act(frames[i : i + 1], goals[i : i + 1])
            assert s["buttons"][0] == a["buttons"][i] and s["camera"][0] == a["camera"][i]
        assert a["buttons"].shape == (3,) and a["buttons"].dtype == np.int64


@pytest.mark.parametrize("core", ["transformer", "lstm"])
def test_agent_reset_equals_fresh_agent(core: str) -> None:
    p = make_tiny(recurrence_type=core)
    agent, fresh = Agent(p, n_envs=2, deterministic=True), Agent(p, n_envs=2, deterministic=True)
    for s in range(4):
        agent.act(_frames(2, 100 + s))
    agent.reset([0])
    a = agent.act(_frames(2, 7))
    b = fresh.act(_frames(2, 7))
    torch.testing.assert_close(
        agent.last_outputs.logp["buttons"][0], fresh.last_outputs.logp["buttons"][0], atol=ATOL, rtol=0
    )
    assert a["buttons"][0] == b["buttons"][0]
    assert (agent.last_outputs.logp["buttons"][1] - fresh.last_outputs.logp["buttons"][1]).abs().max() > 1e-4


def test_agent_sampling_is_seeded_and_minerl_dicts() -> None:
    p = make_tiny()
    frames = [_frames(2, s) for s in range(3)]
    runs = []
    for _ in range(2):
        ag = Agent(p, n_envs=2, seed=123)
        runs.append([ag.act(f)["buttons"].tolist() for f in frames])
    assert runs[0] == runs[1]
    acts = Agent(p, n_envs=2, seed=1).act_minerl(_frames(2, 9))
    assert len(acts) == 2 and set(acts[0]) >= {"forward", "camera", "ESC", "hotbar.9"}
    assert acts[0]["camera"].shape == (2,)


def test_temperature_divides_the_scores_and_keeps_the_random_draws() -> None:
    """Gumbel-max on scores / T samples softmax(scores / T); the draws do not depend on T, so one seed gives the
    same uniform numbers at every temperature, and a low temperature plays the argmax."""
    p = make_tiny(goal_dim=8)
    frames = [_frames(3, s) for s in range(4)]
    goal = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    cold = Agent(p, n_envs=3, seed=5, temperature=1e-6)
    for f in frames:  # each pick is the argmax up to the Gumbel noise (< 25) times T: a near-tie may go either way
        picked = torch.as_tensor(cold.act(f, goal)["buttons"])
        lp = cold.last_outputs.logp["buttons"][:, 0].float()
        assert bool((lp.gather(1, picked[:, None])[:, 0] >= lp.max(-1).values - 1e-4).all())
    plain, warm = Agent(p, n_envs=3, seed=5), Agent(p, n_envs=3, seed=5, temperature=0.5)
    for f in frames:
        plain.act(f, goal), warm.act(f, goal)
    assert torch.equal(plain.generator.get_state(), warm.generator.get_state())  # the same uniforms were drawn
    with pytest.raises(ValueError, match="temperature"):
        Agent(p, temperature=0.0)


def test_temperature_sharpens_the_sampled_distribution() -> None:
    """Many draws of one state: at T = 0.5 the empirical frequencies follow softmax(2 logp), not softmax(logp)."""
    p = make_tiny(goal_dim=8)
    n = 4000
    pov = np.repeat(_frames(1, 3), n, axis=0)
    goal = np.repeat(np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32), n, axis=0)
    ag = Agent(p, n_envs=n, seed=11, temperature=0.5)
    acts = ag.act(pov, goal)["camera"]
    lp = ag.last_outputs.logp["camera"][0, 0].float()
    want = torch.softmax(2.0 * lp, -1).numpy()
    freq = np.bincount(acts, minlength=len(want)) / n
    assert np.abs(freq - want).max() < 0.04  # 4000 draws: a standard error of at most 0.008 per action


def test_agent_resizes_frames() -> None:
    p = make_tiny()
    ag = Agent(p, n_envs=1, deterministic=True)
    big = np.random.default_rng(0).integers(0, 256, (1, 36, 64, 3), dtype=np.uint8)
    out = ag.act(big)
    assert out["camera"].shape == (1,)
