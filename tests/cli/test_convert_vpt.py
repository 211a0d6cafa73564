"""`aimc convert vpt` and `aimc inspect` on tiny official-layout checkpoints written by the test."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import torch

from aimc.cli.app import main
from aimc.policy import VPTConfig, VPTPolicy, from_pretrained

CFG = VPTConfig(
    img_shape=(16, 16), impala_width=1, impala_chans=(4, 8, 8), hidsize=32, heads=4, n_layers=2, memory=6
)


def _write_official(tmp_path: Path, goal_dim: int = 0) -> tuple[Path, Path, VPTPolicy]:
    torch.manual_seed(0)
    policy = VPTPolicy(CFG.replace(goal_dim=goal_dim))
    model = tmp_path / "tiny.model"
    args = {"net": {"args": CFG.official_kwargs()}, "pi_head_opts": {"temperature": 2.0}}
    model.write_bytes(pickle.dumps({"model": {"args": args}}, protocol=2))
    weights = tmp_path / ("steve1.weights" if goal_dim else "tiny.weights")
    torch.save(collections.OrderedDict(policy.state_dict()), weights)
    return model, weights, policy


def test_convert_and_inspect(tmp_path: Path, capsys) -> None:
    model, weights, policy = _write_official(tmp_path)
    out = tmp_path / "converted"
    assert main(["convert", "vpt", str(model), str(weights), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and f"{policy.num_parameters():,}" in text
    loaded = from_pretrained(out)
    for k, v in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "goal input   : no" in text and "temperature  : 2" in text and "aimc policy dir" in text
    # converting again without --overwrite is a clear error, exit 2
    assert main(["convert", "vpt", str(model), str(weights), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_convert_steve1_and_inspect_official(tmp_path: Path, capsys) -> None:
    model, weights, policy = _write_official(tmp_path, goal_dim=12)
    assert main(["convert", "vpt", str(model), str(weights), "--out", str(tmp_path / "s1")]) == 0
    capsys.readouterr()
    assert from_pretrained(tmp_path / "s1").config.goal_dim == 12
    assert main(["inspect", str(weights)]) == 0
    text = capsys.readouterr().out
    assert "goal input   : yes, dim 12" in text and "inferred" in text and "default" in text
    assert main(["inspect", str(model), "--weights", str(weights)]) == 0
    assert f"{policy.num_parameters():,}" in capsys.readouterr().out
    assert main(["inspect", str(model)]) == 0
    assert "architecture only" in capsys.readouterr().out


def test_convert_refuses_malicious_model(tmp_path: Path, capsys) -> None:
    _, weights, _ = _write_official(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "bad.model"
    bad.write_bytes(pickle.dumps({"model": {"args": {"net": {"args": {}}}}, "x": Evil()}))
    assert main(["convert", "vpt", str(bad), str(weights), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "system" in err
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_inspect_errors(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["inspect", str(tmp_path / "notes.txt")]) == 2
    assert "unknown checkpoint format" in capsys.readouterr().err
