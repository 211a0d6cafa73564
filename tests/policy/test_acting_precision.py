"""Acting in bf16 (`Agent(precision="bf16")`): autocast where native, outputs and memory back in fp32.

`AIMC_CPU_BF16` forces the native-bf16 check either way, so these run on any CPU (emulated bf16 is slow but
computes the same roundings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimc.core.errors import ConfigError
from aimc.core.precision import ENV_OVERRIDE, resolve_acting_precision
from aimc.eval.config import EvalConfig
from aimc.policy import Agent
from aimc.policy.base import PolicyOutput
from tests.policy.conftest import make_tiny


def _autocast_lstm_runs() -> bool:
    """Whether this CPU's oneDNN builds a bf16 LSTM under autocast. CPUs without AVX-512 cannot (measured on a
    2-core CI-class machine: "could not create a primitive descriptor for the LSTM forward propagation
    primitive"); the product never gets there, since bf16 is only chosen where the CPU computes it natively, but
    the tests below force that choice with `AIMC_CPU_BF16`."""
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True


_NO_BF16_LSTM = pytest.mark.skipif(not _autocast_lstm_runs(),
                                   reason="this CPU's oneDNN has no bf16 LSTM under autocast (no AVX-512)")


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _play(agent: Agent, goals: np.ndarray, steps: int = 5, subset_at: int = 3) -> list[dict[str, torch.Tensor]]:
    """Steps of all envs, one step of env 1 alone (the gather/scatter path) and a reset of env 0."""
    outs = []
    for s in range(steps):
        if s == subset_at:
            agent.act(_frames(1, 50 + s), goals[[1]], env_ids=[1])
            agent.reset([0])
        agent.act(_frames(len(goals), s), goals)
        out = agent.last_outputs  # with guidance: the conditional branch (guidance magnifies score differences)
        outs.append({k: v.clone() for k, v in out.extras.get("logp_cond", out.logp).items()})
        assert all(v.dtype == torch.float32 for v in out.logp.values())
    return outs


@pytest.mark.parametrize("core", ["transformer", pytest.param("lstm", marks=_NO_BF16_LSTM)])
@pytest.mark.parametrize("scale", [None, 3.0])
def test_bf16_acting_is_autocast_with_fp32_outputs_and_memory(monkeypatch: pytest.MonkeyPatch, core: str,
                                                              scale: float | None) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, "1")
    p = make_tiny(goal_dim=8, recurrence_type=core)
    goals = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    fp32 = Agent(p, n_envs=3, deterministic=True, cond_scale=scale)
    bf16 = Agent(p, n_envs=3, deterministic=True, cond_scale=scale, precision="bf16")
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    ref, low = _play(fp32, goals), _play(bf16, goals)
    assert all(t.dtype == torch.float32 for t in [*bf16.state.keys, *bf16.state.values])
    moved, worst = 0.0, 0.0
    for a, b in zip(ref, low, strict=True):
        for k in a:
            assert b[k].dtype == torch.float32
            moved = max(moved, float((a[k] - b[k]).abs().max()))
            worst = max(worst, float((a[k].softmax(-1) - b[k].softmax(-1)).abs().sum(-1).max()) / 2)
    # bf16 keeps 8 bits of mantissa: the scores move (so autocast really ran), the action distributions little
    # (this randomised tiny policy amplifies errors far more than a trained one: 0.02-0.1 measured here).
    assert moved > 1e-5 and worst < 0.25


def test_bf16_request_runs_fp32_where_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 is slower than fp32, so a CPU without native bf16 acts in fp32: the very same actions."""
    monkeypatch.setenv(ENV_OVERRIDE, "0")
    p = make_tiny(goal_dim=8)
    goals = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    a, b = Agent(p, n_envs=2, seed=3), Agent(p, n_envs=2, seed=3, precision="bf16")
    assert b.precision == "fp32"
    for s in range(4):
        f = _frames(2, s)
        assert a.act(f, goals)["buttons"].tolist() == b.act(f, goals)["buttons"].tolist()
        assert torch.equal(a.last_outputs.logp["camera"], b.last_outputs.logp["camera"])


def test_precision_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, "1")
    assert resolve_acting_precision("bf16", "cpu") == "bf16" and resolve_acting_precision("fp32", "cpu") == "fp32"
    assert resolve_acting_precision("bf16", "cuda") == "bf16"
    with pytest.raises(ValueError, match="fp32, bf16"):
        Agent(make_tiny(), precision="fp16")
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        EvalConfig(precision="half")


def test_policy_output_fp32_converts_nested_extras() -> None:
    h = torch.ones(2, 1, 3, dtype=torch.bfloat16)
    out = PolicyOutput(logp={"a": h}, vpred=h[..., 0], latent=h,
                       extras={"logp_cond": {"a": h}, "cond_scale": 2.0, "flags": torch.ones(2, dtype=torch.bool)})
    f = out.fp32()
    assert f.logp["a"].dtype == f.vpred.dtype == f.latent.dtype == f.extras["logp_cond"]["a"].dtype == torch.float32
    assert f.extras["cond_scale"] == 2.0 and f.extras["flags"].dtype == torch.bool


@_NO_BF16_LSTM
@pytest.mark.parametrize("scale", [None, 3.0])
def test_bf16_weights_cast_once_give_the_same_steps_as_autocast_casting_each_step(
        monkeypatch: pytest.MonkeyPatch, scale: float | None) -> None:
    """The acting copy with bf16 weights is an optimisation only: bit-identical scores to autocast casting the fp32
    weights at every step, and remade when the source's weights change in place (a trainer between rollouts)."""
    monkeypatch.setenv(ENV_OVERRIDE, "1")
    p = make_tiny(goal_dim=8, recurrence_type="lstm")
    goals = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    cast = Agent(p, n_envs=3, deterministic=True, cond_scale=scale, precision="bf16")
    each = Agent(p, n_envs=3, deterministic=True, cond_scale=scale, precision="bf16")
    monkeypatch.setattr(each, "_acting_policy", lambda: each.policy)  # autocast over the fp32 weights
    for round_ in range(2):
        a, b = _play(cast, goals), _play(each, goals)
        for x, y in zip(a, b, strict=True):
            assert all(torch.equal(x[k], y[k]) for k in x)
        assert cast._cast is not None and cast._cast[1] is not p
        assert {t.dtype for m in cast._cast[1].modules() if isinstance(m, torch.nn.Linear) for t in m.parameters()} == {torch.bfloat16}
        assert all(t.dtype == torch.float32 for t in p.parameters())  # the source is untouched
        if round_ == 0:  # an in-place update, as an optimiser step makes: the next steps act with the new weights
            with torch.no_grad():
                for t in p.parameters():
                    t.add_(0.05 * torch.randn_like(t))
