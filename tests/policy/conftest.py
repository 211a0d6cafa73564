"""Shared fixtures: a tiny VPT policy with every parameter randomised (so no init symmetry hides bugs)."""

from __future__ import annotations

import pytest
import torch

from aimc.policy import VPTPolicy, get_config


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (tests/conftest.py)."""


def randomize_(policy: VPTPolicy, seed: int = 0) -> VPTPolicy:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight") or (name.endswith(".weight") and p.ndim == 1):
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(0.3 * noise)
        nz = policy.value_head.normalizer
        nz.running_mean.fill_(0.7)
        nz.running_mean_sq.fill_(2.0)
        nz.debiasing_term.fill_(0.5)
    return policy.eval()


def make_tiny(seed: int = 0, **overrides) -> VPTPolicy:
    torch.manual_seed(seed)
    return randomize_(VPTPolicy(get_config("test-tiny", **overrides)), seed)


@pytest.fixture
def tiny() -> VPTPolicy:
    return make_tiny()


@pytest.fixture
def tiny_goal() -> VPTPolicy:
    return make_tiny(goal_dim=8)


def rand_pov(b: int, t: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, size, size, 3), dtype=torch.uint8, generator=g)
