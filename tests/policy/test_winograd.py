"""Winograd F(4x4, 3x3) convolution and the policy's opt-in Winograd inference path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aimc.core.errors import ConfigError
from aimc.policy import VPTPolicy, get_config
from aimc.policy.vpt import model as vpt_model
from aimc.policy.vpt import winograd


@pytest.mark.parametrize(
    ("n", "c", "k", "h", "w"),
    [(1, 3, 5, 8, 8), (2, 4, 6, 7, 9), (3, 8, 8, 1, 1), (1, 2, 3, 13, 4), (2, 16, 8, 16, 16)],
)
def test_float64_equals_direct_convolution(n: int, c: int, k: int, h: int, w: int) -> None:
    g = torch.Generator().manual_seed(n * 100 + c * 10 + h)
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=g)
    wt = torch.randn(k, c, 3, 3, dtype=torch.float64, generator=g)
    b = torch.randn(k, dtype=torch.float64, generator=g)
    ref = F.conv2d(x, wt, b, padding=1)
    out = winograd.winograd_conv3x3(x, winograd.winograd_weight(wt), b)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-11)


def test_float32_rounding_is_small_and_memory_format_does_not_matter() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 20, 24, generator=g)
    wt = torch.randn(16, 32, 3, 3, generator=g) / 17
    ref = F.conv2d(x.double(), wt.double(), padding=1)
    u = winograd.winograd_weight(wt)
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        out = winograd.winograd_conv3x3(inp, u)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert (out.double() - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("h", "w"), [(5, 7), (9, 13), (2, 3), (16, 16)])
def test_fused_cpu_path_and_torch_path_agree_on_odd_sizes(dtype: torch.dtype, h: int, w: int) -> None:
    g = torch.Generator().manual_seed(h * 31 + w)
    x = torch.randn(3, 6, h, w, generator=g).to(dtype)
    wt = (torch.randn(5, 6, 3, 3, generator=g) / 8).to(dtype)
    b = torch.randn(5, generator=g).to(dtype)
    ref = F.conv2d(x.double(), wt.double(), b.double(), padding=1)
    out = winograd.winograd_conv3x3(x, winograd.winograd_weight(wt), b)  # float32: numba, float64: torch
    tol = 1e-4 if dtype == torch.float32 else 1e-11
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_chunking_gives_the_same_result_both_paths(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 8, 12, 12, generator=g).to(dtype)
    u = winograd.winograd_weight(torch.randn(4, 8, 3, 3, generator=g).to(dtype))
    whole = winograd.winograd_conv3x3(x, u)
    monkeypatch.setattr(winograd, "MAX_TILE_ELEMS", 2 * 9 * 8)  # two images per chunk: 3 chunks
    # Not bit-equality: BLAS picks its blocking by batch size and thread count, so the per-tile GEMMs of a
    # chunk may sum in another order than the whole batch's. Chunking must only agree to rounding.
    # Outputs here reach |y| ~ 30 and Winograd's transforms amplify rounding: float32 differs by ~3e-5 when the
    # GEMM blocking changes (seen on a loaded 2-core machine), so the bound is relative to the output's scale.
    tol = 2e-5 * float(whole.abs().max()) if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(winograd.winograd_conv3x3(x, u), whole, rtol=0, atol=tol)


def test_batch_chunking_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 8, 12, 12, dtype=torch.float64, generator=g)
    u = winograd.winograd_weight(torch.randn(4, 8, 3, 3, dtype=torch.float64, generator=g))
    whole = winograd.winograd_conv3x3(x, u)
    monkeypatch.setattr(winograd, "MAX_TILE_ELEMS", 2 * 9 * 8)  # two images per chunk: 3 chunks
    torch.testing.assert_close(winograd.winograd_conv3x3(x, u), whole, rtol=0, atol=1e-12)


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="3, 3"):
        winograd.winograd_weight(torch.zeros(4, 4, 5, 5))
    with pytest.raises(ValueError, match="input channels"):
        winograd.winograd_conv3x3(torch.zeros(1, 3, 8, 8), winograd.winograd_weight(torch.zeros(2, 4, 3, 3)))


def _policy() -> VPTPolicy:
    torch.manual_seed(0)
    return VPTPolicy(get_config("test-tiny")).eval()


def _inputs(policy: VPTPolicy, b: int = 2, t: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (b, t, *policy.config.img_shape, 3), dtype=torch.uint8, generator=g)


def test_policy_winograd_inference_matches_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vpt_model, "WINOGRAD_MIN_CHANNELS", 1)  # every conv of the tiny preset
    policy = _policy()
    img = _inputs(policy)
    with torch.inference_mode():
        ref, _ = policy(img)
        policy.set_conv_impl("winograd")
        out, _ = policy(img)
    convs = [m for m in policy.modules() if isinstance(m, vpt_model.FanInLayer) and isinstance(m.layer, torch.nn.Conv2d)]
    assert convs and all(m._wino is not None for m in convs)
    for k in ref.logp:
        torch.testing.assert_close(out.logp[k], ref.logp[k], rtol=1e-4, atol=1e-4)
        assert not torch.equal(out.logp[k], ref.logp[k])  # it really took the other path


def test_policy_winograd_follows_weight_updates_and_leaves_training_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vpt_model, "WINOGRAD_MIN_CHANNELS", 1)
    policy = _policy()
    img = _inputs(policy)
    direct, _ = policy(img)  # grad enabled: direct convolutions
    policy.set_conv_impl("winograd")
    again, _ = policy(img)
    assert torch.equal(again.latent, direct.latent)
    with torch.no_grad():
        before, _ = policy(img)
        conv = policy.net.img_process.cnn.stacks[0].blocks[0].conv0.layer
        conv.weight.mul_(0.5)  # in-place update: the cached transform must be refreshed
        after, _ = policy(img)
        policy.set_conv_impl("direct")
        ref, _ = policy(img)
    assert not torch.allclose(before.latent, after.latent)
    torch.testing.assert_close(after.latent, ref.latent, rtol=1e-3, atol=5e-4)  # float rounding through 2 layers


def test_unknown_conv_impl_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="valid: direct, winograd, auto"):
        _policy().set_conv_impl("fft")


def test_agent_chooses_by_measurement_on_cpu_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from aimc.policy.agent import Agent

    monkeypatch.setattr(vpt_model, "WINOGRAD_MIN_CHANNELS", 1)
    policy = _policy()
    convs = [m for m in policy.modules() if isinstance(m, vpt_model.FanInLayer) and isinstance(m.layer, torch.nn.Conv2d)]
    Agent(policy)
    assert all(m.conv_impl == "auto" for m in convs)  # on CPU: measured per layer (tests/policy/test_conv_select.py)
    Agent(policy, conv_impl="direct")
    assert all(m.conv_impl == "direct" for m in convs)
