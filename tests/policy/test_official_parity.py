"""Bit-for-bit parity with OpenAI's own code. Skipped unless ``AIMC_VPT_REFERENCE`` points at a checkout of
``openai/Video-Pre-Training`` (its ``lib/``); ``attrs`` must be importable. gym3 and minerl are stubbed."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
import torch

from aimc.policy import VPTConfig, VPTPolicy, VPTState
from tests.policy.conftest import randomize_

REF = os.environ.get("AIMC_VPT_REFERENCE")
pytestmark = pytest.mark.skipif(
    not REF, reason="set AIMC_VPT_REFERENCE to an openai/Video-Pre-Training checkout"
)


def _stub_modules() -> None:
    if "gym3.types" not in sys.modules:
        t = types.ModuleType("gym3.types")

        class ValType:  # noqa: D401 - minimal stand-ins for the type tags VPT's lib/ uses
            pass

        class Discrete(ValType):
            def __init__(self, n):
                self.n = n

        class Real(ValType):
            pass

        class TensorType(ValType):
            def __init__(self, shape, eltype):
                self.shape, self.eltype = tuple(shape), eltype

            @property
            def size(self):
                return int(np.prod(self.shape))

        class DictType(ValType, dict):
            def __init__(self, **kw):
                dict.__init__(self, **kw)

        t.ValType, t.Discrete, t.Real, t.TensorType, t.DictType = (
            ValType,
            Discrete,
            Real,
            TensorType,
            DictType,
        )
        g = types.ModuleType("gym3")
        g.types = t
        sys.modules.update({"gym3": g, "gym3.types": t})
    for name in ("minerl", "minerl.herobraine", "minerl.herobraine.hero", "minerl.herobraine.hero.mc"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["minerl.herobraine.hero.mc"].MINERL_ITEM_MAP = {}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def official():
    pytest.importorskip("attr")
    _stub_modules()
    sys.path.insert(0, REF)
    from lib.action_mapping import CameraHierarchicalMapping  # type: ignore[import-not-found]
    from lib.actions import ActionTransformer  # type: ignore[import-not-found]
    from lib.policy import MinecraftAgentPolicy  # type: ignore[import-not-found]

    return types.SimpleNamespace(
        CHM=CameraHierarchicalMapping, AT=ActionTransformer, Policy=MinecraftAgentPolicy
    )


CFG = VPTConfig(
    img_shape=(32, 32), impala_width=1, impala_chans=(16, 32, 32), hidsize=64, heads=4, n_layers=2, memory=8
)


def _pair(official):
    from gym3.types import DictType  # type: ignore[import-not-found]

    space = DictType(**official.CHM(n_camera_bins=11).get_action_space_update())
    off = official.Policy(space, CFG.official_kwargs(), {"temperature": CFG.temperature}).eval()
    torch.manual_seed(0)
    ours = randomize_(VPTPolicy(CFG), seed=1)
    off.load_state_dict(ours.state_dict(), strict=True)
    return off, ours


@torch.no_grad()
@pytest.mark.parametrize("impl", ["exact", "fused"])
def test_outputs_match_official(official, impl: str) -> None:
    off, ours = _pair(official)
    ours.set_attention_impl(impl)
    b, t = 3, 5
    st_o, st_u = off.initial_state(b), ours.initial_state(b)
    g = torch.Generator().manual_seed(0)
    for chunk in range(4):
        pov = torch.randint(0, 256, (b, t, 32, 32, 3), dtype=torch.uint8, generator=g)
        first = torch.zeros(b, t, dtype=torch.bool)
        first[1, 0] = chunk == 2
        (pd, vpred, _), st_o = off({"img": pov}, first, st_o)
        out, st_u = ours(pov, None, first, st_u)
        so = VPTState.from_official(st_o)
        pairs = [(out.logp[k], pd[k][:, :, 0]) for k in ("camera", "buttons")] + [(out.vpred, vpred[..., 0])]
        pairs += [(st_u.keys[i], so.keys[i]) for i in range(2)]
        for a, ref in pairs:
            if impl == "exact":
                assert torch.equal(a, ref)
            else:
                torch.testing.assert_close(a, ref, atol=2e-5, rtol=0)
        assert torch.equal(st_u.valid, so.valid)


def test_action_maps_match_official(official) -> None:
    import aimc.actions as A

    m = official.CHM(n_camera_bins=11)
    at = official.AT(camera_binsize=2, camera_maxval=10, camera_mu=10, camera_quantization_scheme="mu_law")
    rng = np.random.default_rng(0)
    n = 5000
    buttons = (rng.random((n, 20)) < rng.random((n, 1)) * 0.5).astype(np.int64)
    env = {k: buttons[:, i] for i, k in enumerate(A.BUTTONS_ALL)}
    env["camera"] = rng.normal(0, 6, (n, 2)) * (rng.random((n, 1)) < 0.7)
    fo, fa = at.env2policy(env), A.env_to_factored(env)
    assert np.array_equal(fo["camera"], fa["camera"]) and np.array_equal(fo["buttons"], fa["buttons"])
    jo, ja = m.from_factored(fo), A.factored_to_joint(fa)
    assert np.array_equal(jo["buttons"][:, 0], ja["buttons"]) and np.array_equal(
        jo["camera"][:, 0], ja["camera"]
    )
    bi = np.arange(8641)
    ci = rng.integers(0, 121, bi.shape)
    to, ta = m.to_factored({"buttons": bi[:, None], "camera": ci[:, None]}), A.joint_to_factored(bi, ci)
    assert np.array_equal(to["buttons"], ta["buttons"]) and np.array_equal(to["camera"], ta["camera"])
    assert np.array_equal(at.policy2env(to)["camera"], A.factored_to_env(ta)["camera"])
