"""Official .model/.weights loading (restricted unpickler, strict keys, prefixes), aimc save/load."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.core.errors import CheckpointError
from aimc.policy import (
    VPTPolicy,
    from_pretrained,
    infer_config,
    load_official,
    load_policy,
    read_model_file,
    save_pretrained,
)
from aimc.policy.vpt.config import VPTConfig
from aimc.policy.vpt.load import restricted_loads, write_model_file
from tests.policy.conftest import make_tiny, rand_pov, randomize_

# A tiny architecture expressible with the official kwargs (official code fixes nblock=2, cnn_outsize=256).
OFFICIAL_TINY = VPTConfig(
    img_shape=(16, 16),
    impala_width=1,
    impala_chans=(4, 8, 8),
    hidsize=32,
    heads=4,
    n_layers=2,
    memory=6,
    temperature=1.5,
)


def official_model_dict(cfg: VPTConfig, temperature=1.5) -> dict:
    """The nested dict layout of an official .model (what 2x.model unpickles to, plus typical extras)."""
    return {
        "version": 1361,
        "model": {
            "function": "lib.policy:MinecraftAgentPolicy",
            "args": {
                "net": {"function": "lib.policy:MinecraftPolicy", "args": cfg.official_kwargs()},
                "pi_head_opts": {"temperature": temperature},
            },
        },
        "extra_args": collections.OrderedDict(ac_space=None, ob_space={"img": (16, 16, 3)}),
    }


@pytest.fixture
def official_files(tmp_path: Path) -> tuple[Path, Path, VPTPolicy]:
    torch.manual_seed(0)
    policy = randomize_(VPTPolicy(OFFICIAL_TINY), seed=3)
    model = tmp_path / "tiny.model"
    model.write_bytes(pickle.dumps(official_model_dict(OFFICIAL_TINY), protocol=2))
    weights = tmp_path / "tiny.weights"
    torch.save(collections.OrderedDict(policy.state_dict()), weights)  # exactly what VPT's code writes
    return model, weights, policy


def _same_outputs(a: VPTPolicy, b: VPTPolicy) -> None:
    pov = rand_pov(2, 5, seed=11)
    with torch.no_grad():
        oa, _ = a(pov, None, None, None)
        ob, _ = b(pov, None, None, None)
    for k in oa.logp:
        assert torch.equal(oa.logp[k], ob.logp[k])
    assert torch.equal(oa.vpred, ob.vpred)


def test_load_official_pair(official_files) -> None:
    model, weights, ref = official_files
    loaded = load_official(model, weights)
    assert loaded.config == OFFICIAL_TINY
    assert loaded.config.temperature == 1.5
    assert not loaded.training
    _same_outputs(loaded, ref)
    assert load_policy(model, weights).config == OFFICIAL_TINY


def test_model_file_with_numpy_and_gym_objects(tmp_path: Path) -> None:
    """Real .model files may carry numpy scalars and space objects in extra keys: read, never executed."""

    class Discrete:  # stands in for gym3.types.Discrete (gym3 itself is not installed)
        def __init__(self, n: int) -> None:
            self.n = n

    Discrete.__module__ = "gym3.types"
    Discrete.__qualname__ = "Discrete"
    d = official_model_dict(OFFICIAL_TINY, temperature=np.float64(2.0))
    d["extra_args"]["ac_space"] = Discrete(8641)
    import sys
    import types

    fake = types.ModuleType("gym3.types")
    fake.Discrete = Discrete
    pkg = types.ModuleType("gym3")
    pkg.types = fake
    saved = {k: sys.modules.get(k) for k in ("gym3", "gym3.types")}
    sys.modules.update({"gym3": pkg, "gym3.types": fake})
    try:
        blob = pickle.dumps(d, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    (tmp_path / "x.model").write_bytes(blob)
    mf = read_model_file(tmp_path / "x.model")
    assert mf.temperature == 2.0 and isinstance(mf.temperature, float)
    assert mf.net_kwargs["hidsize"] == 32
    assert repr(mf.raw["extra_args"]["ac_space"]) == "<inert gym3.types.Discrete>"


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _EvilEval:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (eval, (f"open({self.path!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [_Evil, _EvilEval])
def test_malicious_model_is_refused_and_nothing_runs(tmp_path: Path, payload) -> None:
    marker = tmp_path / "pwned"
    d = official_model_dict(OFFICIAL_TINY)
    d["extra_args"]["ac_space"] = payload(str(marker))
    evil = tmp_path / "evil.model"
    evil.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load .*not allowed"):
        read_model_file(evil)
    assert not marker.exists()
    weights = tmp_path / "w.weights"
    torch.save(VPTPolicy(OFFICIAL_TINY).state_dict(), weights)
    with pytest.raises(CheckpointError, match="refusing"):
        load_official(evil, weights)
    assert not marker.exists()


def test_restricted_unpickler_allows_plain_data_only() -> None:
    data = {"a": [1, 2.5, None, True, "s", b"x"], "b": (1, 2), "c": {3, 4}, "d": collections.OrderedDict(x=1)}
    for proto in (0, 2, 4, 5):
        assert restricted_loads(pickle.dumps(data, protocol=proto)) == data
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps(torch.zeros(2)))
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps(np.zeros(3, dtype=object)))


def test_prefixes_are_stripped(official_files, tmp_path: Path) -> None:
    model, weights, ref = official_files
    sd = torch.load(weights, weights_only=True)
    for prefix in ("module.", "policy.", "module.policy."):
        path = tmp_path / f"{prefix}weights"
        torch.save({prefix + k: v for k, v in sd.items()}, path)
        _same_outputs(load_official(model, path), ref)


def test_mismatch_error_lists_keys(official_files, tmp_path: Path) -> None:
    model, weights, _ = official_files
    sd = torch.load(weights, weights_only=True)
    del sd["net.final_ln.bias"]
    sd["net.extra.weight"] = torch.zeros(3)
    sd["pi_head.camera.linear_layer.bias"] = torch.zeros(120)
    bad = tmp_path / "bad.weights"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError) as e:
        load_official(model, bad)
    msg = str(e.value)
    assert "missing (1): net.final_ln.bias" in msg
    assert "unexpected (1): net.extra.weight" in msg
    assert "pi_head.camera.linear_layer.bias: " in msg and "(120,)" in msg and "(121,)" in msg


def test_wrong_prefix_says_nothing_matched(tmp_path: Path) -> None:
    p = make_tiny()
    from aimc.policy import check_state_dict

    with pytest.raises(CheckpointError, match="no key matched"):
        check_state_dict(p, {"model." + k: v for k, v in p.state_dict().items()})


def test_model_and_weights_disagree(official_files, tmp_path: Path) -> None:
    _, weights, _ = official_files
    other = tmp_path / "other.model"
    other.write_bytes(pickle.dumps(official_model_dict(OFFICIAL_TINY.replace(heads=8)), protocol=2))
    with pytest.raises(CheckpointError, match="attention_heads"):
        load_official(other, weights)


def test_unsupported_architecture_is_named(tmp_path: Path, official_files) -> None:
    _, weights, _ = official_files
    d = official_model_dict(OFFICIAL_TINY)
    d["model"]["args"]["net"]["args"]["recurrence_type"] = "multi_layer_lstm"
    (tmp_path / "lstm.model").write_bytes(pickle.dumps(d))
    with pytest.raises(CheckpointError, match="recurrence_type"):
        load_official(tmp_path / "lstm.model", weights)


def test_steve1_style_weights_infer_goal(tmp_path: Path) -> None:
    """steve1.weights = plain state dict with the goal layer; config inferred from shapes alone."""
    cfg = OFFICIAL_TINY.replace(goal_dim=12, temperature=2.0)
    torch.manual_seed(1)
    ref = randomize_(VPTPolicy(cfg), seed=5)
    path = tmp_path / "steve1.weights"
    torch.save(ref.state_dict(), path)
    loaded = load_policy(path)
    assert loaded.config == cfg
    pov, goal = rand_pov(1, 3), torch.randn(1, 3, 12)
    with torch.no_grad():
        assert torch.equal(loaded(pov, goal)[0].logp["buttons"], ref(pov, goal)[0].logp["buttons"])


def test_infer_config_for_big_presets() -> None:
    from aimc.policy import get_config

    for name in ("vpt-1x", "vpt-2x", "vpt-3x", "steve1"):
        with torch.device("meta"):
            sd = VPTPolicy(get_config(name)).state_dict()
        assert infer_config(sd) == get_config(name)
        assert infer_config(
            sd, get_config(name).official_kwargs() if name != "steve1" else None
        ) == get_config(name)


def test_save_and_from_pretrained(tmp_path: Path) -> None:
    ref = make_tiny(goal_dim=8)
    out = save_pretrained(ref, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(out)
    assert loaded.config == ref.config
    pov, goal = rand_pov(2, 3), torch.randn(2, 3, 8)
    with torch.no_grad():
        assert torch.equal(loaded(pov, goal)[0].logp["buttons"], ref(pov, goal)[0].logp["buttons"])
    with pytest.raises(Exception, match="already exists"):
        save_pretrained(ref, tmp_path / "m")
    save_pretrained(ref, tmp_path / "m", overwrite=True)


def test_from_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="config.json"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="format"):
        from_pretrained(tmp_path)


def test_write_model_file_round_trip(tmp_path: Path) -> None:
    write_model_file(tmp_path / "a.model", OFFICIAL_TINY)
    mf = read_model_file(tmp_path / "a.model")
    assert mf.temperature == 1.5 and mf.net_kwargs == OFFICIAL_TINY.official_kwargs()


def test_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "x.model").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not a valid"):
        read_model_file(tmp_path / "x.model")
    (tmp_path / "x.weights").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_policy(tmp_path / "x.weights")
