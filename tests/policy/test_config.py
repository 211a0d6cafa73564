"""Presets, parameter counts on the meta device, and key names/shapes against the reference tables."""

from __future__ import annotations

import pytest
import torch

from aimc.core.errors import ConfigError, UnknownNameError
from aimc.policy import PRESETS, VPTConfig, VPTPolicy, get_config, preset_name


def meta_policy(cfg: VPTConfig) -> VPTPolicy:
    with torch.device("meta"):
        return VPTPolicy(cfg)


@pytest.mark.parametrize(
    ("name", "count"),
    [("vpt-1x", 70_998_654), ("vpt-2x", 248_495_294), ("vpt-3x", 532_504_318), ("steve1", 249_545_918)],
)
def test_parameter_counts(name: str, count: int) -> None:
    p = meta_policy(get_config(name))
    assert p.num_parameters() == count
    assert len(p.state_dict()) == (136 if name == "steve1" else 134)


def test_2x_plus_goal_equals_steve1() -> None:
    assert get_config("vpt-2x", goal_dim=512) == get_config("steve1")
    assert meta_policy(get_config("vpt-2x", goal_dim=512)).num_parameters() == 249_545_918


def _expected_keys(
    h: int, chans: tuple[int, int, int], heads: int, goal: int = 0
) -> dict[str, tuple[int, ...]]:
    """The official key table (docs reference vpt.md section 2.2), generated from its patterns."""
    e: dict[str, tuple[int, ...]] = {}
    cnn = "net.img_process.cnn"
    cin = 3
    for s, c in enumerate(chans):
        st = f"{cnn}.stacks.{s}"
        if s == 0:
            e[f"{st}.firstconv.layer.weight"] = (c, 3, 3, 3)
            e[f"{st}.firstconv.layer.bias"] = (c,)
        else:
            e[f"{st}.firstconv.norm.weight"] = e[f"{st}.firstconv.norm.bias"] = (cin,)
            e[f"{st}.firstconv.layer.weight"] = (c, cin, 3, 3)
        e[f"{st}.n.weight"] = e[f"{st}.n.bias"] = (c,)
        for j in range(2):
            for cv in ("conv0", "conv1"):
                e[f"{st}.blocks.{j}.{cv}.norm.weight"] = e[f"{st}.blocks.{j}.{cv}.norm.bias"] = (c,)
                e[f"{st}.blocks.{j}.{cv}.layer.weight"] = (c, c, 3, 3)
        cin = c
    flat = chans[-1] * 16 * 16
    e[f"{cnn}.dense.norm.weight"] = e[f"{cnn}.dense.norm.bias"] = (flat,)
    e[f"{cnn}.dense.layer.weight"] = (256, flat)
    e["net.img_process.linear.norm.weight"] = e["net.img_process.linear.norm.bias"] = (256,)
    e["net.img_process.linear.layer.weight"] = (h, 256)
    for k in range(4):
        b = f"net.recurrent_layer.blocks.{k}"
        e[f"{b}.pre_r_ln.weight"] = e[f"{b}.pre_r_ln.bias"] = (h,)
        o = f"{b}.r.orc_block"
        e[f"{o}.q_layer.weight"] = (h, h)
        e[f"{o}.q_layer.bias"] = (h,)
        e[f"{o}.k_layer.weight"] = e[f"{o}.v_layer.weight"] = (h, h)
        e[f"{o}.proj_layer.weight"] = (h, h)
        e[f"{o}.proj_layer.bias"] = (h,)
        e[f"{o}.r_layer.weight"] = (10 * heads, h)
        e[f"{o}.r_layer.bias"] = (10 * heads,)
        e[f"{o}.b_nd"] = (10, 128)
        e[f"{b}.mlp0.norm.weight"] = e[f"{b}.mlp0.norm.bias"] = (h,)
        e[f"{b}.mlp0.layer.weight"] = (4 * h, h)
        e[f"{b}.mlp1.layer.weight"] = (h, 4 * h)
        e[f"{b}.mlp1.layer.bias"] = (h,)
    e["net.lastlayer.norm.weight"] = e["net.lastlayer.norm.bias"] = (h,)
    e["net.lastlayer.layer.weight"] = (h, h)
    e["net.final_ln.weight"] = e["net.final_ln.bias"] = (h,)
    e["value_head.linear.weight"] = (1, h)
    e["value_head.linear.bias"] = (1,)
    e["value_head.normalizer.running_mean"] = e["value_head.normalizer.running_mean_sq"] = (1,)
    e["value_head.normalizer.debiasing_term"] = ()
    e["pi_head.camera.linear_layer.weight"] = (121, h)
    e["pi_head.camera.linear_layer.bias"] = (121,)
    e["pi_head.buttons.linear_layer.weight"] = (8641, h)
    e["pi_head.buttons.linear_layer.bias"] = (8641,)
    if goal:
        e["net.mineclip_embed_linear.weight"] = (h, goal)
        e["net.mineclip_embed_linear.bias"] = (h,)
    return e


@pytest.mark.parametrize(
    ("name", "h", "chans", "heads", "goal"),
    [
        ("vpt-1x", 1024, (64, 128, 128), 8, 0),
        ("vpt-2x", 2048, (128, 256, 256), 16, 0),
        ("steve1", 2048, (128, 256, 256), 16, 512),
    ],
)
def test_key_names_and_shapes(name: str, h: int, chans: tuple[int, int, int], heads: int, goal: int) -> None:
    got = {k: tuple(v.shape) for k, v in meta_policy(get_config(name)).state_dict().items()}
    want = _expected_keys(h, chans, heads, goal)
    assert sorted(set(got) - set(want)) == []
    assert sorted(set(want) - set(got)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}


def test_1x_spot_values_from_reference_table() -> None:
    sd = meta_policy(get_config("vpt-1x")).state_dict()
    assert tuple(sd["net.img_process.cnn.dense.layer.weight"].shape) == (256, 32768)
    assert tuple(sd["net.recurrent_layer.blocks.3.r.orc_block.r_layer.weight"].shape) == (80, 1024)
    assert "net.recurrent_layer.blocks.0.r.orc_block.k_layer.bias" not in sd
    assert "net.recurrent_layer.blocks.0.mlp0.layer.bias" not in sd


def test_presets_and_errors() -> None:
    assert set(PRESETS) >= {"vpt-1x", "vpt-2x", "vpt-3x", "crafter-small", "test-tiny"}
    assert preset_name(get_config("vpt-3x")) == "vpt-3x"
    assert get_config("vpt-3x").heads == 24
    with pytest.raises(UnknownNameError, match="vpt-1x"):
        get_config("vpt-4x")
    with pytest.raises(ConfigError, match="divisible"):
        get_config("vpt-1x", heads=7)
    with pytest.raises(ConfigError, match="valid keys"):
        get_config("vpt-1x", hidden=3)


def test_config_dict_round_trip() -> None:
    for cfg in PRESETS.values():
        assert VPTConfig.from_dict(cfg.to_dict()) == cfg


def test_crafter_small_is_small() -> None:
    cfg = get_config("crafter-small")
    assert cfg.head_sizes == {"action": 17}
    assert cfg.chans == (16, 32, 32) and cfg.img_shape == (64, 64)
    assert meta_policy(cfg).num_parameters() < 3_000_000
