"""Training on task demonstrations shorter than one segment: padded rows are trained and validated on their
real steps only, and a run on such a store alone works end to end."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from aimc.data.dataset import ACTION, GOAL, POV, STEP_OK, SegmentDataset, build_segment_index
from aimc.data.store import list_episodes
from aimc.data.text_goals import TextGoalTable
from aimc.train.config import load_train_config
from aimc.train.loop import build_policy, evaluate, read_metrics, run
from tests.train.fixtures import one_thread, task_demo_store  # noqa: F401


class _Changed:
    """The dataset with its items edited by `edit` (what evaluate reads: `goal_dim` and items)."""

    def __init__(self, ds: SegmentDataset, edit: Any) -> None:
        self.goal_dim, self.ds, self.edit = ds.goal_dim, ds, edit

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        item = dict(self.ds[key])
        self.edit(item)
        return item


def test_validation_scores_only_the_real_steps(task_demo_store, tmp_path, one_thread):  # noqa: F811
    """Whatever the padding holds, the val loss is the same; a real step's label does change it."""
    cfg = load_train_config("test", overrides=[f"out={tmp_path / 'run'}", "segment.embed_name=null", "batch_size=4"])
    index = build_segment_index([(list_episodes(task_demo_store), 1.0, "intention")], cfg.segment)
    table = TextGoalTable({"collect_wood": np.random.default_rng(0).standard_normal((3, 6))})
    ds = SegmentDataset(index, cfg.segment, (64, 64), text_goals=table)
    keys = [(i, i) for i in range(len(index))]
    assert any(not ds[k][STEP_OK].all() for k in keys) and any(ds[k][STEP_OK][8:].sum() == 0 for k in keys)
    torch.manual_seed(0)
    policy, _ = build_policy(cfg, table.dim)
    base = evaluate(policy, ds, keys, cfg, torch.device("cpu"))

    def scramble_padding(item: dict[str, Any]) -> None:
        pad = ~item[STEP_OK]
        g = torch.Generator().manual_seed(int(pad.sum()))
        item[ACTION] = torch.where(pad, torch.randint(0, 17, pad.shape, generator=g), item[ACTION])
        item[GOAL] = torch.where(pad[:, None], torch.randn(item[GOAL].shape, generator=g), item[GOAL])
        item[POV] = torch.where(pad[:, None, None, None], torch.randint(0, 256, item[POV].shape, generator=g, dtype=torch.uint8), item[POV])

    def relabel_first_step(item: dict[str, Any]) -> None:
        item[ACTION] = item[ACTION].clone()
        item[ACTION][0] = (item[ACTION][0] + 1) % 17

    padded = evaluate(policy, _Changed(ds, scramble_padding), keys, cfg, torch.device("cpu"))
    assert math.isfinite(base["loss"]) and math.isfinite(base["loss_zero_goal"])
    assert abs(padded["loss"] - base["loss"]) < 1e-6 and abs(padded["loss_zero_goal"] - base["loss_zero_goal"]) < 1e-6
    assert abs(evaluate(policy, _Changed(ds, relabel_first_step), keys, cfg, torch.device("cpu"))["loss"] - base["loss"]) > 1e-4


def test_training_on_short_task_demos_only(task_demo_store, tmp_path, one_thread):  # noqa: F811
    """The `test` preset on a store of collect_wood demonstrations (6 to 28 steps) read as an intention part:
    nothing is skipped, and every logged train and val loss is finite."""
    out = tmp_path / "run"
    cfg = load_train_config("test", overrides=[f"out={out}", "segment.embed_name=null", "embedder=videotext", "n_frames=96",
                                               "val_every=2"],
                            data=[{"path": str(task_demo_store), "goal_source": "intention"}])
    summary = run(cfg, progress=False)
    assert summary["skipped_episodes"] == 0 and summary["invalid_items"] == 0 and summary["step"] == 3
    rows = read_metrics(out)
    train = [r["train/loss"] for r in rows if "train/loss" in r]
    val = [r["val/loss"] for r in rows if "val/loss" in r]
    assert len(train) == 3 and val and all(math.isfinite(v) and v > 0 for v in train + val)


def test_text_goal_policy_trains_on_short_demos_with_event_text_or_a_fixed_prompt(task_demo_store, tmp_path, one_thread):  # noqa: F811
    """What note 004's relabel and fixed methods run on a text-goal policy (segment.embed_name null, as the
    shipped agent): an "event_text" part is chunked from frame 0 like an intention part (nothing skipped), and a
    fixed prompt sizes the goal input itself."""
    from aimc.policy.vpt.load import read_pretrained_meta

    dims = {}
    for name, extra in (("events", []), ("fixed", ["fixed_prompt=chop a tree"])):
        out = tmp_path / name
        cfg = load_train_config("test", overrides=[f"out={out}", "segment.embed_name=null", "embedder=videotext",
                                                   "n_frames=64", "val_every=0", *extra],
                                data=[{"path": str(task_demo_store),
                                       "goal_source": "event_text" if name == "events" else "intention"}])
        summary = run(cfg, progress=False)
        assert summary["skipped_episodes"] == 0 and summary["invalid_items"] == 0
        dims[name] = read_pretrained_meta(out / "latest")["config"]["goal_dim"]
    assert dims["events"] == dims["fixed"] > 0
