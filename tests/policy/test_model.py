"""Forward semantics: chunked == stepwise, `first` handling, exact vs fused attention, training use."""

from __future__ import annotations

import pytest
import torch

from aimc.policy import VPTPolicy, VPTState, get_config
from aimc.policy.vpt.model import band_matrix, make_attn_context
from tests.policy.conftest import make_tiny, rand_pov

ATOL = 2e-5


def run_chunks(policy: VPTPolicy, pov, first, sizes, goal=None, state=None):
    """Feed (B, T) data through in chunks of the given sizes; concatenated outputs and final state."""
    outs, t0 = [], 0
    state = state if state is not None else policy.initial_state(pov.shape[0])
    for n in sizes:
        g = None if goal is None else goal[:, t0 : t0 + n]
        out, state = policy(pov[:, t0 : t0 + n], g, first[:, t0 : t0 + n], state)
        outs.append(out)
        t0 += n
    cat = {k: torch.cat([o.logp[k] for o in outs], 1) for k in outs[0].logp}
    return cat, torch.cat([o.vpred for o in outs], 1), state


@torch.no_grad()
@pytest.mark.parametrize("impl", ["fused", "exact"])
def test_chunked_equals_stepwise(impl: str) -> None:
    p = make_tiny().set_attention_impl(impl)
    b, t = 3, 17  # longer than memory (6): exercises the FIFO and the clipped window
    pov = rand_pov(b, t)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    first[1, 9] = True  # an episode boundary inside a chunk
    first[2, 5] = True
    step_logp, step_v, step_state = run_chunks(p, pov, first, [1] * t)
    for sizes in ([t], [4, 4, 9], [5, 12], [2, 3, 7, 5]):
        logp, v, state = run_chunks(p, pov, first, sizes)
        for k in logp:
            torch.testing.assert_close(logp[k], step_logp[k], atol=ATOL, rtol=0)
        torch.testing.assert_close(v, step_v, atol=ATOL, rtol=0)
        assert torch.equal(state.valid, step_state.valid)
        for ka, kb in zip(state.keys, step_state.keys, strict=True):
            torch.testing.assert_close(ka, kb, atol=ATOL, rtol=0)


@torch.no_grad()
def test_first_equals_fresh_state() -> None:
    p = make_tiny()
    pov = rand_pov(2, 10, seed=1)
    _, _, state = run_chunks(p, pov, torch.zeros(2, 10, dtype=torch.bool), [10])
    pov2 = rand_pov(2, 4, seed=2)
    first = torch.zeros(2, 4, dtype=torch.bool)
    first[:, 0] = True
    a, _ = p(pov2, None, first, state)
    b, _ = p(pov2, None, None, p.initial_state(2))
    c, _ = p(pov2, None, None, state)  # without `first` the memory matters
    torch.testing.assert_close(a.logp["buttons"], b.logp["buttons"], atol=ATOL, rtol=0)
    assert (c.logp["buttons"] - b.logp["buttons"]).abs().max() > 1e-3


@torch.no_grad()
def test_mid_chunk_first_per_step_vs_official_chunk_start() -> None:
    pov = rand_pov(2, 8, seed=3)
    first = torch.zeros(2, 8, dtype=torch.bool)
    first[:, 0] = True
    per_step = make_tiny()
    chunk = make_tiny(first_mode="chunk_start")
    chunk.load_state_dict(per_step.state_dict())
    # identical when `first` is only set at chunk starts
    a, sa = per_step(pov, None, first, None)
    b, sb = chunk(pov, None, first, None)
    torch.testing.assert_close(a.logp["buttons"], b.logp["buttons"], atol=0, rtol=0)
    assert torch.equal(sa.valid, sb.valid)
    # official mode ignores a mid-chunk `first`; per_step honours it
    first[0, 4] = True
    a, _ = per_step(pov, None, first, None)
    b, _ = chunk(pov, None, first, None)
    torch.testing.assert_close(a.logp["buttons"][:, :4], b.logp["buttons"][:, :4], atol=ATOL, rtol=0)
    torch.testing.assert_close(a.logp["buttons"][1], b.logp["buttons"][1], atol=ATOL, rtol=0)
    assert (a.logp["buttons"][0, 4:] - b.logp["buttons"][0, 4:]).abs().max() > 1e-3
    fresh, _ = per_step(pov[:1, 4:], None, None, None)
    torch.testing.assert_close(a.logp["buttons"][:1, 4:], fresh.logp["buttons"], atol=ATOL, rtol=0)


def test_clipped_causal_window() -> None:
    """Every query sees exactly `memory` frames including itself once the cache is full."""
    m, t = 6, 9
    ctx = make_attn_context(
        torch.zeros(1, t, dtype=torch.bool), torch.ones(1, m, dtype=torch.bool), m, "per_step"
    )
    allowed = ctx.allowed[0, 0]
    assert allowed.sum(1).tolist() == [m] * t
    for i in range(t):
        assert allowed[i].nonzero().flatten().tolist() == list(range(i + 1, i + 1 + m))
    # fresh state: only the chunk's own frames, causal
    ctx = make_attn_context(
        torch.zeros(1, t, dtype=torch.bool), torch.zeros(1, m, dtype=torch.bool), m, "per_step"
    )
    assert ctx.allowed[0, 0].sum(1).tolist() == [min(i + 1, m) for i in range(t)]


def test_band_matrix_is_relative_position() -> None:
    b_nd = torch.arange(20.0).reshape(2, 10)
    t, big_t = 3, 13
    d = band_matrix(b_nd, t, big_t)
    for i in range(t):
        for j in range(big_t):
            delta = big_t - t + i - j
            want = b_nd[:, delta] if 0 <= delta < 10 else torch.zeros(2)
            assert torch.equal(d[:, i, j], want)


@torch.no_grad()
def test_exact_and_fused_agree() -> None:
    p = make_tiny()
    pov = rand_pov(2, 9, seed=4)
    a, sa = p(pov, None, None, None)
    p.set_attention_impl("exact")
    b, sb = p(pov, None, None, None)
    torch.testing.assert_close(a.logp["buttons"], b.logp["buttons"], atol=ATOL, rtol=0)
    torch.testing.assert_close(sa.keys[0], sb.keys[0], atol=ATOL, rtol=0)


@torch.no_grad()
def test_batch_rows_are_independent() -> None:
    p = make_tiny()
    pov = rand_pov(4, 5, seed=5)
    out, _ = p(pov, None, None, None)
    for i in range(4):
        o, _ = p(pov[i : i + 1], None, None, None)
        torch.testing.assert_close(o.logp["camera"], out.logp["camera"][i : i + 1], atol=ATOL, rtol=0)


def test_output_shapes_and_log_softmax() -> None:
    p = make_tiny()
    out, state = p(rand_pov(2, 3), None, None, None)
    assert out.logp["camera"].shape == (2, 3, 121) and out.logp["buttons"].shape == (2, 3, 8641)
    assert out.vpred.shape == (2, 3) and p.value(out).shape == (2, 3)
    torch.testing.assert_close(out.logp["buttons"].exp().sum(-1), torch.ones(2, 3))
    assert isinstance(state, VPTState) and state.batch_size == 2
    assert len(state.keys) == 2 and state.keys[0].shape == (2, 6, 32)


def test_temperature_divides_logits() -> None:
    p = make_tiny()
    x = torch.randn(2, 3, 32)
    head = p.pi_head["camera"]
    want = torch.log_softmax(head.linear_layer(x) / 2.0, -1)
    torch.testing.assert_close(head(x), want)


def test_no_outer_residual_quirk() -> None:
    """out = y + mlp(y) with y = LN(x) + attn(LN(x)): adding a constant to x changes nothing (LN removes it)."""
    p = make_tiny()
    blk = p.net.recurrent_layer.blocks[0]
    st = p.initial_state(1)
    ctx = make_attn_context(torch.zeros(1, 3, dtype=torch.bool), st.valid, 6, "per_step")
    with torch.no_grad():
        for ln in (blk.pre_r_ln,):
            ln.bias.zero_()
            ln.weight.fill_(1.0)
        x = torch.randn(1, 3, 32)
        a, _, _ = blk(x, st.keys[0], st.values[0], ctx)
        b, _, _ = blk(x + 3.0, st.keys[0], st.values[0], ctx)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_goal_input() -> None:
    p = make_tiny(goal_dim=8)
    pov = rand_pov(2, 3)
    zero, _ = p(pov, torch.zeros(2, 3, 8), None, None)
    none, _ = p(pov, None, None, None)
    torch.testing.assert_close(zero.logp["buttons"], none.logp["buttons"])
    g, _ = p(pov, torch.randn(2, 3, 8), None, None)
    assert (g.logp["buttons"] - zero.logp["buttons"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="goal"):
        p(pov, torch.zeros(2, 3, 5), None, None)
    with pytest.raises(ValueError, match="no goal input"):
        make_tiny()(pov, torch.zeros(2, 3, 8), None, None)


def test_crafter_training_step_and_autocast() -> None:
    """The trainer's path: (B, T) chunk, goal, categorical head, log_prob/entropy, backward, bf16 autocast."""
    torch.manual_seed(0)
    p = VPTPolicy(get_config("crafter-small", goal_dim=10)).train()
    b, t = 4, 8
    pov = torch.randint(0, 256, (b, t, 64, 64, 3), dtype=torch.uint8)
    goal = torch.nn.functional.one_hot(torch.randint(0, 10, (b, t)), 10).float()
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    acts = torch.randint(0, 17, (b, t))
    out, state = p(pov, goal, first, p.initial_state(b))
    lp = p.log_prob(out, acts)
    assert lp.shape == (b, t)
    torch.testing.assert_close(p.log_prob(out, {"action": acts}), lp)
    assert torch.allclose(p.entropy(out), torch.full((b, t), torch.log(torch.tensor(17.0)).item()), atol=0.05)
    (-lp.mean()).backward()
    for name in (
        "net.mineclip_embed_linear.weight",
        "net.recurrent_layer.blocks.0.r.orc_block.b_nd",
        "net.recurrent_layer.blocks.1.r.orc_block.r_layer.weight",
        "net.img_process.cnn.stacks.0.firstconv.layer.weight",
    ):
        grad = dict(p.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # next chunk from the detached state
    out2, _ = p(pov, goal, torch.zeros(b, t, dtype=torch.bool), state.detach())
    (-p.log_prob(out2, acts).mean()).backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out3, st3 = p(pov, goal, first, p.initial_state(b))
        loss = -p.log_prob(out3, acts).mean()
    assert out3.logp["action"].dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 cache flows into the next chunk
        p(pov, goal, None, st3.detach())


def test_relative_bias_gradient_matches_exact_path() -> None:
    torch.manual_seed(0)
    grads = {}
    for impl in ("fused", "exact"):
        p = make_tiny().train().set_attention_impl(impl)
        out, _ = p(rand_pov(2, 7), None, None, None)
        (out.logp["buttons"][..., 7].sum() + out.logp["camera"][..., 3].sum() + out.vpred.sum()).backward()
        grads[impl] = {
            n: q.grad.clone() for n, q in p.named_parameters() if "orc_block" in n and q.grad is not None
        }
    assert grads["fused"].keys() == grads["exact"].keys() and grads["fused"]
    for n in grads["fused"]:
        torch.testing.assert_close(grads["fused"][n], grads["exact"][n], atol=1e-4, rtol=1e-4)


def test_image_features_are_normalised_before_goal_add() -> None:
    """Training-notes lesson 1: features entering the goal add must not be tiny next to the goal projection.
    VPT's ``img_process.linear`` LayerNorms the CNN output before its Linear, so the scale is set by that
    Linear (fan-in init: unit-norm rows), whatever the CNN's activation scale."""
    torch.manual_seed(0)
    p = VPTPolicy(get_config("crafter-small", goal_dim=10))
    pov = torch.randint(0, 256, (4, 2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        feat = p.encode_images(pov)
        dark = p.encode_images(pov // 50)  # very different pixel statistics
        goal = p.embed_goal(torch.eye(10)[:8].reshape(4, 2, 10), 4, 2, feat)
    assert 0.1 < feat.std() < 3.0 and 0.1 < dark.std() < 3.0
    assert feat.std() > 0.5 * (goal - p.net.mineclip_embed_linear.bias).std()
    assert p.net.img_process.linear.norm is not None


def test_goal_norm_unit_variance_is_scale_free_and_keeps_zero_goal():
    import torch

    from aimc.policy.vpt.config import get_config
    from aimc.policy.vpt.model import VPTPolicy

    torch.manual_seed(0)
    p = VPTPolicy(get_config("test-tiny", goal_dim=8, goal_norm="unit_variance")).eval()
    like = torch.zeros(1, 3, p.config.hidsize)
    g = torch.randn(1, 3, 8)
    with torch.no_grad():
        a, b = p.embed_goal(g, 1, 3, like), p.embed_goal(5 * g, 1, 3, like)
        zero = p.embed_goal(torch.zeros(1, 3, 8), 1, 3, like)
        direct = p.net.mineclip_embed_linear(g * (8**0.5) / g.norm(dim=-1, keepdim=True))
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, direct, atol=1e-5)
    assert torch.allclose(zero, p.net.mineclip_embed_linear.bias.expand_as(zero))
    assert get_config("steve1").goal_norm == "none"  # official layouts keep STEVE-1's raw goal
    assert get_config("crafter-small").goal_norm == "unit_variance"


# ------------------------------------------------------------------------------------------- LSTM core
def make_lstm(seed: int = 0, **overrides) -> VPTPolicy:
    return make_tiny(seed, recurrence_type="lstm", **overrides)


@torch.no_grad()
def test_lstm_chunked_equals_stepwise_with_mid_chunk_episode_starts() -> None:
    p = make_lstm()
    b, t = 3, 17
    pov = rand_pov(b, t, seed=4)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    first[1, 9] = True
    first[2, 5] = True
    step_logp, step_v, step_state = run_chunks(p, pov, first, [1] * t)
    for sizes in ([t], [4, 4, 9], [5, 12]):
        logp, v, state = run_chunks(p, pov, first, sizes)
        for k in logp:
            torch.testing.assert_close(logp[k], step_logp[k], atol=ATOL, rtol=0)
        torch.testing.assert_close(v, step_v, atol=ATOL, rtol=0)
        for ka, kb in zip(state.keys + state.values, step_state.keys + step_state.values, strict=True):
            torch.testing.assert_close(ka, kb, atol=ATOL, rtol=0)
    # row 1 from its mid-chunk episode start on equals a fresh run of those frames
    fresh, _, _ = run_chunks(p, pov[1:2, 9:], first[1:2, 9:], [t - 9])
    torch.testing.assert_close(step_logp["buttons"][1:2, 9:], fresh["buttons"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_lstm_memory_outlasts_the_attention_window_and_resets() -> None:
    """The transformer forgets frame 0 after `memory` (6) frames; the LSTM still carries it at frame 16, and
    `first` or `state.reset` forget it."""
    b, t = 2, 17
    pov = rand_pov(b, t, seed=5)
    other = pov.clone()
    other[:, 0] = rand_pov(b, 1, seed=6)[:, 0]  # only frame 0 differs
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    for policy, remembers in ((make_tiny(), False), (make_lstm(), True)):
        a, _ = policy(pov, None, first, None)
        c, _ = policy(other, None, first, None)
        gap = (a.logp["buttons"][:, -1] - c.logp["buttons"][:, -1]).abs().max()
        assert (gap > 1e-5) == remembers
    p = make_lstm()
    _, state = p(pov[:, :8], None, first[:, :8], None)
    again = first[:, 8:].clone()
    again[:, 0] = True
    x, _ = p(pov[:, 8:], None, again, state)
    y, _ = p(pov[:, 8:], None, None, state.reset(torch.ones(b, dtype=torch.bool)))
    z, _ = p(pov[:, 8:], None, None, p.initial_state(b))
    torch.testing.assert_close(x.logp["buttons"], z.logp["buttons"], atol=ATOL, rtol=0)
    torch.testing.assert_close(y.logp["buttons"], z.logp["buttons"], atol=ATOL, rtol=0)


def test_lstm_config_trains_and_has_no_official_form() -> None:
    from aimc.core.errors import ConfigError

    cfg = get_config("crafter-lstm")
    assert cfg.recurrence_type == "lstm" and cfg.img_shape == (64, 64)
    with pytest.raises(ConfigError, match="transformer only"):
        cfg.official_kwargs()
    with pytest.raises(ConfigError, match="recurrence_type"):
        get_config("test-tiny", recurrence_type="gru")
    p = make_lstm(goal_dim=4).train()
    pov, first = rand_pov(2, 8, seed=7), torch.zeros(2, 8, dtype=torch.bool)
    out, state = p(pov, torch.randn(2, 8, 4), first, None)
    out.logp["buttons"].mean().backward()
    lstm_grad = p.net.recurrent_layer.blocks[0].r.lstm.weight_hh_l0.grad
    assert lstm_grad is not None and lstm_grad.abs().sum() > 0
    assert state.keys[0].shape == (2, 1, 32) and bool(state.valid.all())


@pytest.mark.parametrize("bf16", [False, True])
def test_pooling_before_the_relu_is_the_official_order_bit_for_bit(monkeypatch, bf16: bool) -> None:
    """Each down-stack pools its first conv's output and applies the ReLU after (a quarter of the elements); the
    official conv -> ReLU -> pool order gives the same outputs and the same gradients exactly, in fp32 and under
    bf16 autocast."""
    import torch.nn.functional as F

    from aimc.policy.vpt import model as M

    def official(self, x):
        x = F.max_pool2d(self.firstconv(x), kernel_size=3, stride=2, padding=1)
        x = self.n(x)
        for b in self.blocks:
            x = b(x)
        return x

    p = make_tiny(goal_dim=8).train()
    pov, goal = rand_pov(2, 5, seed=3), torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    runs = []
    for forward in (official, M.CnnDownStack.forward):
        monkeypatch.setattr(M.CnnDownStack, "forward", forward)
        p.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out, _ = p(pov, goal, None, None)
            loss = sum(v.float().square().sum() for v in out.logp.values()) + out.vpred.float().sum()
        loss.backward()
        runs.append((out, {n: q.grad.clone() for n, q in p.named_parameters() if q.grad is not None}))
    (a, ga), (b, gb) = runs
    assert all(torch.equal(a.logp[k], b.logp[k]) for k in a.logp) and torch.equal(a.vpred, b.vpred)
    assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
    assert any(float(g.abs().max()) > 0 for n, g in ga.items() if "stacks.0.firstconv" in n)
