"""`GraphedStep` and the Agent's CUDA-graph acting (aimc.policy.graphed).

On a CPU the step runs eagerly through the same static buffers, so these tests check the buffer handling
(inputs copied in, fresh outputs out, state carried by the caller, shapes fixed); the `gpu`-marked tests
(`pytest -m gpu` on a machine with CUDA) check graph replay against eager steps on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimc.policy import VPTPolicy, get_config
from aimc.policy.agent import Agent
from aimc.policy.graphed import GraphedStep, clone_tree


def _policy(goal_dim: int = 0, device: str = "cpu") -> VPTPolicy:
    torch.manual_seed(0)
    return VPTPolicy(get_config("test-tiny", goal_dim=goal_dim)).eval().to(device)


def _frames(n: int, b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, b, 1, 16, 16, 3), dtype=torch.uint8, generator=g)


def _run(policy: VPTPolicy, device: str, graphed: bool, n: int = 8, b: int = 3):
    frames = _frames(n, b).to(device)
    first = torch.zeros(b, 1, dtype=torch.bool, device=device)
    first[:, 0] = True
    state = policy.initial_state(b, device)
    step = GraphedStep(policy, frames[0], None, first, state) if graphed else policy
    outs = []
    with torch.inference_mode():
        for i in range(n):
            f = first if i == 0 else torch.zeros_like(first)
            out, state = step(frames[i], None, f, state)
            outs.append(out)
    return outs, state, step


def _check_steps_equal_eager(device: str, tol: float) -> None:
    policy = _policy(device=device)
    eager, s_eager, _ = _run(policy, device, graphed=False)
    graphed, s_graph, step = _run(policy, device, graphed=True)
    assert step.captured == (device == "cuda")
    for a, b in zip(eager, graphed, strict=True):
        for h in a.logp:
            assert torch.allclose(a.logp[h], b.logp[h], atol=tol), h
    for a, b in zip([*s_eager.keys, s_eager.valid], [*s_graph.keys, s_graph.valid], strict=True):
        assert torch.allclose(a.float(), b.float(), atol=tol)
    # every step's outputs are its own: later steps did not overwrite them
    assert len({id(o.logp["buttons"]) for o in graphed}) == len(graphed)
    assert not torch.equal(graphed[0].logp["buttons"], graphed[-1].logp["buttons"])


def test_graphed_step_equals_eager_steps_with_the_state_carried_by_the_caller():
    _check_steps_equal_eager("cpu", 1e-6)


def test_graphed_step_refuses_other_shapes():
    policy = _policy()
    frames = _frames(1, 2)[0]
    first = torch.zeros(2, 1, dtype=torch.bool)
    step = GraphedStep(policy, frames, None, first, policy.initial_state(2))
    with pytest.raises(ValueError, match="do not match the captured"):
        step(_frames(1, 3)[0], None, torch.zeros(3, 1, dtype=torch.bool), policy.initial_state(3))
    with pytest.raises(ValueError, match="captured for 2 rows"):
        step(frames, None, first, policy.initial_state(3))


def test_clone_tree_copies_every_tensor():
    policy = _policy()
    out, state = policy(_frames(1, 2)[0], None, None, None)
    c_out, c_state = clone_tree((out, state))
    assert type(c_out) is type(out) and type(c_state) is type(state)
    assert torch.equal(c_out.logp["buttons"], out.logp["buttons"])
    assert c_out.logp["buttons"].data_ptr() != out.logp["buttons"].data_ptr()
    assert c_state.keys[0].data_ptr() != state.keys[0].data_ptr()


def _agent_actions(device: str, cuda_graphs: bool, cond_scale: float | None, steps: int = 6):
    policy = _policy(goal_dim=4, device=device)
    agent = Agent(policy, n_envs=2, seed=3, cond_scale=cond_scale, device=device, cuda_graphs=cuda_graphs)
    agent.reset()
    rng = np.random.default_rng(0)
    goal = rng.normal(size=(2, 4)).astype(np.float32)
    acts, logps = [], []
    for i in range(steps):
        pov = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
        if i == 3:
            agent.reset([1])
        acts.append(agent.act(pov, goal))
        logps.append(agent.last_outputs.logp["buttons"].float().cpu())
    return acts, logps, agent


@pytest.mark.gpu
def test_graphed_step_equals_eager_steps_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    _check_steps_equal_eager("cuda", 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("cond_scale", [None, 3.0])
def test_agent_with_cuda_graphs_acts_like_the_eager_agent(cond_scale):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    a_graph, lp_graph, agent = _agent_actions("cuda", True, cond_scale)
    a_eager, lp_eager, _ = _agent_actions("cuda", False, cond_scale)
    assert len(agent._graphs) == 1 and next(iter(agent._graphs.values())).captured
    for x, y in zip(lp_graph, lp_eager, strict=True):
        assert torch.allclose(x, y, atol=1e-4)
    agree = np.mean([np.array_equal(x[h], y[h]) for x, y in zip(a_graph, a_eager, strict=True) for h in x])
    assert agree >= 0.9  # same seed, same scores up to rounding: the same samples, bar a rare tie


def test_agent_compile_captures_the_compiled_step(monkeypatch):
    """With `compile`, the graphed step is torch.compile's function (on a GPU); without, the plain step. On a
    CPU nothing is graphed or compiled, whatever the flags say."""
    import aimc.policy.agent as agent_mod

    compiled = []

    def fake_compile(fn, **kw):
        compiled.append(kw)
        return fn

    class FakeGraphed:
        def __init__(self, fn, x, g, first, state):
            self.fn = fn

        def __call__(self, x, g, first, state):
            return self.fn(x, g, first, state)

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(agent_mod, "GraphedStep", FakeGraphed)
    policy = _policy(goal_dim=4)
    pov = np.zeros((2, 16, 16, 3), np.uint8)
    cpu = Agent(policy, n_envs=2, seed=0, compile=True)
    cpu.act(pov)
    assert compiled == [] and cpu._graphs == {}
    for flag, n in ((True, 1), (False, 0)):
        compiled.clear()
        agent = Agent(policy, n_envs=2, seed=0, compile=flag)
        agent._graphable = lambda ids: ids is None  # as on a GPU; FakeGraphed runs the step on the CPU
        agent.act(pov)
        assert len(agent._graphs) == 1 and len(compiled) == n and all(kw == {"dynamic": False} for kw in compiled)
