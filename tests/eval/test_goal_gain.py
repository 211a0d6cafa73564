"""`aimc eval goal-gain` on a tiny bundle: the training loop's validation numbers, an interval, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from aimc.cli.app import main
from aimc.core.errors import AimcError
from aimc.eval.goal_gain import GoalGainConfig, _half_width, measure_goal_gain
from tests.finetune.conftest import tiny_bundle  # noqa: F401
from tests.train.fixtures import demo_store  # noqa: F401

INTENTION = ["segment.goal_source=intention", "segment.embed_name=null"]


def _cfg(bundle, store, **kw):
    return GoalGainConfig(checkpoint=str(bundle), data=[str(store)], preset="test", overrides=INTENTION, **kw)


def test_matches_the_training_loop_evaluation(tiny_bundle, demo_store):  # noqa: F811
    """Batch means weighted by segments = the loop's `evaluate` over all the same keys (full-length segments)."""
    import torch

    from aimc.data.dataset import SegmentDataset, build_segment_index, val_keys
    from aimc.data.index import DatasetIndex
    from aimc.embed.base import make_embedder
    from aimc.policy import from_pretrained
    from aimc.train.bundle import AgentBundle
    from aimc.train.config import load_train_config
    from aimc.train.loop import evaluate
    from aimc.train.text_goals import build_text_goal_table

    r = measure_goal_gain(_cfg(tiny_bundle, demo_store, segments=24, batch_size=4), progress=False)
    assert r["segments"] == 24 and r["batches"] == 6 and r["episodes"] == 5
    assert r["goal_gain_all_segments"] == pytest.approx(r["loss_zero_goal"] - r["loss"], abs=1e-9)
    assert r["ci95"][0] <= r["goal_gain"] <= r["ci95"][1] and r["ci95"][1] > r["ci95"][0]

    bundle = AgentBundle.read(tiny_bundle)
    tc = load_train_config("test", INTENTION, data=[{"path": str(demo_store)}], batch_size=24)
    index = build_segment_index([(DatasetIndex.scan(demo_store).episodes, 1.0, None)], tc.segment)
    policy = from_pretrained(bundle.policy_dir())
    table = build_text_goal_table(make_embedder(bundle.embedder_ref(), device="cpu"), tc.segment)
    ds = SegmentDataset(index, tc.segment, policy.config.img_shape, None, None, table)
    ref = evaluate(policy, ds, val_keys(index, 0, 24), tc, torch.device("cpu"))
    assert r["loss"] == pytest.approx(ref["loss"], rel=1e-4)
    assert r["loss_zero_goal"] == pytest.approx(ref["loss_zero_goal"], rel=1e-4)
    # the gain is a small difference of two NLLs, each good to rel 1e-4 across batch shapes: compare it on their scale
    assert r["goal_gain"] == pytest.approx(ref["goal_gain"], abs=2e-4 * ref["loss_zero_goal"])
    assert r["goal_frames"] == ref["goal_frames"]
    again = measure_goal_gain(_cfg(tiny_bundle, demo_store, segments=24, batch_size=4), progress=False)
    assert again["goal_gain"] == pytest.approx(r["goal_gain"], rel=1e-5)  # same seed, same goals


def test_a_policy_blind_to_its_goal_gains_nothing(tiny_bundle, demo_store, tmp_path):  # noqa: F811
    """Zero the goal input's weights: with and without the goal the NLL is the same, so the gain is 0."""
    from aimc.policy import from_pretrained, save_pretrained
    from aimc.train.bundle import AgentBundle

    blind = tmp_path / "blind"
    shutil.copytree(tiny_bundle, blind, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    policy_dir = AgentBundle.read(blind).policy_dir()
    policy = from_pretrained(policy_dir)
    seeing = measure_goal_gain(_cfg(blind, demo_store, segments=16), progress=False)
    for name, p in policy.named_parameters():
        if name.endswith("mineclip_embed_linear.weight"):
            p.data.zero_()
    save_pretrained(policy, policy_dir, overwrite=True)
    r = measure_goal_gain(_cfg(blind, demo_store, segments=16), progress=False)
    assert abs(r["goal_gain"]) < 1e-6 and abs(seeing["goal_gain"]) > 1e-4


def test_half_width_shrinks_with_batches():
    v = np.array([0.1, 0.3, 0.2, 0.2])
    assert _half_width(v, np.ones(4)) == pytest.approx(1.96 * np.std(v, ddof=1) / 2)
    assert _half_width(np.array([0.2]), np.ones(1)) == 0.0


def test_cli_writes_json_and_rejects_bad_input(tiny_bundle, demo_store, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "gg.json"
    args = ["eval", "goal-gain", "--checkpoint", str(tiny_bundle), "--data", str(demo_store), "--preset", "test",
            "--segments", "8", *[a for s in INTENTION for a in ("--set", s)]]
    assert main([*args, "--out", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("goal gain ") and "nats/frame" in line
    assert json.loads(out.read_text())["segments"] == 8

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "goal-gain", "--checkpoint", str(tiny_bundle), "--data", str(empty), "--preset", "test",
                 *[a for s in INTENTION for a in ("--set", s)]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no valid episodes" in err[0]

    assert main([*args, "--out", str(tmp_path)]) == 2  # a directory: refused before any work
    assert "is a directory" in capsys.readouterr().err

    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    meta = json.loads((bare / "bundle.json").read_text())
    meta["embedder"] = None
    (bare / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(AimcError, match="no embedder"):
        measure_goal_gain(_cfg(bare, demo_store), progress=False)
