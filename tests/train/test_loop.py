"""The BC loop: learning, schedule, decay groups, exact resume (clean stop and SIGKILL), init from pretrain, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aimc.cli.app import main
from aimc.data.store import Episode, list_episodes
from aimc.train.checkpoint import GOAL_LAYER_KEYS, init_policy_from, latest_checkpoint
from aimc.train.config import TrainConfig, load_train_config, preset_names
from aimc.train.loop import lr_at, param_groups, read_metrics, run
from tests.train.fixtures import EMBED_DIM, EMBED_NAME, demo_store, one_thread, tiny_cfg  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_schedule_and_decay_groups():
    cfg = TrainConfig(lr=1.0, warmup_frames=100, n_frames=1000)
    assert lr_at(0, cfg) == 0.0 and lr_at(50, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == pytest.approx(1.0)
    assert lr_at(1100, cfg) == pytest.approx(0.0, abs=1e-12) and 0 < lr_at(600, cfg) < 1
    from aimc.policy import VPTPolicy, get_config

    policy = VPTPolicy(get_config("test-tiny", goal_dim=4))
    decay, no_decay = param_groups(policy, 0.04)
    names = {id(p): n for n, p in policy.named_parameters()}
    dn = {names[id(p)] for p in decay["params"]}
    nn_ = {names[id(p)] for p in no_decay["params"]}
    assert "net.mineclip_embed_linear.weight" in dn and "net.img_process.cnn.stacks.0.firstconv.layer.weight" in dn
    assert "net.recurrent_layer.blocks.0.r.orc_block.b_nd" in dn and "net.img_process.cnn.stacks.0.n.weight" in dn  # GroupNorm decays
    assert "net.final_ln.weight" in nn_ and "net.mineclip_embed_linear.bias" in nn_
    assert not any("normalizer" in n for n in dn | nn_)  # frozen buffers are not optimised
    assert {"pretrain", "goal", "finetune", "mixed", "progressive", "fixed-prompt", "test"} <= set(preset_names())
    for name in preset_names():
        load_train_config(name)  # every preset validates


def test_cli_trains_goal_policy_and_loss_falls(demo_store, tmp_path, one_thread, capsys):  # noqa: F811
    out = tmp_path / "run"
    code = main(["train", "policy", "--preset", "test", "--data", str(demo_store), "--out", str(out), "--seed", "1",
                 "--quiet", "--set", f"segment.embed_name={EMBED_NAME}", "--set", "n_frames=960", "--set", "lr=1e-2"])
    assert code == 0
    msg = capsys.readouterr().out
    assert "trained 30 steps (960 frames, 1 process(es))" in msg and "0 unreadable" in msg
    rows = [r for r in read_metrics(out) if "train/loss" in r]
    first, last = np.mean([r["train/loss"] for r in rows[:5]]), np.mean([r["train/loss"] for r in rows[-5:]])
    assert last < first - 0.3, (first, last)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert rows[0]["train/lr"] < rows[9]["train/lr"]  # warmup
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["format"] == "aimc-agent" and bundle["embed_name"] == EMBED_NAME and bundle["policy"] == "best"
    assert json.loads((out / "best" / "config.json").read_text())["config"]["goal_dim"] == EMBED_DIM
    assert (out / "tensorboard").is_dir() and latest_checkpoint(out).name == "step_00000030"
    val = [r for r in read_metrics(out) if "val/loss" in r]
    assert val and all(np.isfinite(r["val/goal_gain"]) for r in val)  # goal use is measured at every validation
    # re-running the finished run resumes and does nothing more
    assert main(["train", "policy", "--preset", "test", "--data", str(demo_store), "--out", str(out), "--seed", "1",
                 "--quiet", "--set", f"segment.embed_name={EMBED_NAME}", "--set", "n_frames=960", "--set", "lr=1e-2"]) == 0
    assert "trained 30 steps" in capsys.readouterr().out
    # a changed recipe is refused instead of silently mixing two runs
    assert main(["train", "policy", "--preset", "test", "--data", str(demo_store), "--out", str(out), "--quiet",
                 "--set", f"segment.embed_name={EMBED_NAME}", "--set", "lr=0.5"]) == 2
    assert "different lr" in capsys.readouterr().err


def test_cli_refuses_default_guidance_without_unconditional_training(demo_store, tmp_path, capsys):  # noqa: F811
    """A goal policy trained with p_uncond=0 never learns the unconditional branch that guidance extrapolates
    from; its bundle must not play guided by default. One line, before anything is written."""
    out = tmp_path / "run"
    base = ["train", "policy", "--preset", "finetune", "--data", str(demo_store), "--out", str(out), "--quiet",
            "--set", "embedder=some/embedder", "--set", "segment.p_uncond=0.0"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "cond_scale 6 guides against the unconditional goal, which segment.p_uncond=0 never trains" in err
    assert err.count("\n") == 1 and not out.exists()


def test_resume_matches_uninterrupted(demo_store, tmp_path, one_thread):  # noqa: F811
    sets = ("n_frames=320", "seed=3", "val_every=4", "save_every=100")
    full = run(tiny_cfg(demo_store, tmp_path / "full", *sets), progress=False)
    part = run(tiny_cfg(demo_store, tmp_path / "part", *sets), stop_after_steps=4, progress=False)
    assert part["interrupted"] and part["step"] == 4 and not (tmp_path / "part" / "latest").exists()
    rest = run(tiny_cfg(demo_store, tmp_path / "part", *sets), progress=False)
    assert rest["step"] == full["step"] == 10 and rest["frames"] == full["frames"]
    a, b = weights(tmp_path / "full" / "latest"), weights(tmp_path / "part" / "latest")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rest["best_val"] == pytest.approx(full["best_val"])
    steps = [r["step"] for r in read_metrics(tmp_path / "part") if "train/loss" in r]
    assert steps == list(range(1, 11))  # no duplicated or missing log rows across the restart


def test_sigkill_resumes_without_corruption(demo_store, tmp_path, one_thread):  # noqa: F811
    sets = ("n_frames=384", "seed=4", "val_every=0", "save_every=1", "keep_checkpoints=2")
    full = run(tiny_cfg(demo_store, tmp_path / "full", *sets), progress=False)
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from tests.train.fixtures import tiny_cfg\nfrom aimc.train.loop import run\n"
        f"run(tiny_cfg({str(demo_store)!r}, {str(tmp_path / 'killed')!r}, *{sets!r}), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    last = tmp_path / "killed" / "checkpoints" / "last"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and last.read_text().strip() >= "step_00000003":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rest = run(tiny_cfg(demo_store, tmp_path / "killed", *sets), progress=False)
    assert rest["step"] == full["step"] == 12
    a, b = weights(tmp_path / "full" / "latest"), weights(tmp_path / "killed" / "latest")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_shares_image_features_with_the_same_numbers(demo_store, tmp_path, one_thread):  # noqa: F811
    """`evaluate` runs the CNN once per chunk for the goal and the zero-goal pass; its losses must equal, to the
    bit, two full `policy(...)` passes (a transcription of the loop before the features were shared)."""
    from aimc.data.dataset import (
        ACTION,
        FIRST,
        GOAL,
        OK,
        POV,
        STEP_OK,
        SegmentDataset,
        collate_segments,
        val_keys,
    )
    from aimc.train.loop import build_data, build_policy, evaluate
    from aimc.train.objectives import bc_loss, head_targets

    cfg = tiny_cfg(demo_store, tmp_path / "val", "val_segments=6", "trunc_t=8", "seed=1", "frame_cache=null",
                   "segment.p_uncond=0.5")
    _, val, _ = build_data(cfg)
    torch.manual_seed(0)
    policy, _ = build_policy(cfg, val.goal_dim)
    ds = SegmentDataset(val, cfg.segment, policy.config.img_shape)
    keys = val_keys(val, cfg.seed, cfg.val_segments)
    assert len(keys) > cfg.batch_size and cfg.chunks_per_segment == 2  # several batches, state carried once

    total, count = {False: 0.0, True: 0.0}, 0.0
    with torch.no_grad():
        for lo in range(0, len(keys), cfg.batch_size):
            batch = collate_segments([ds[k] for k in keys[lo : lo + cfg.batch_size]])
            targets = head_targets(batch[ACTION], policy.config.head_sizes)
            w, step_ok = batch[OK], batch[STEP_OK]
            for zero_goal in (False, True):
                state = None
                for c in range(cfg.chunks_per_segment):
                    sl = slice(c * cfg.trunc_t, (c + 1) * cfg.trunc_t)
                    goal = torch.zeros_like(batch[GOAL][:, sl]) if zero_goal else batch[GOAL][:, sl]
                    out, state = policy(batch[POV][:, sl], goal, batch[FIRST][:, sl], state)
                    nll = bc_loss(out, {h: t[:, sl] for h, t in targets.items()}, w, False, step_ok[:, sl])["nll"]
                    total[zero_goal] += float(nll) * float((step_ok[:, sl] & w[:, None]).sum())
            count += float((step_ok & w[:, None]).sum())
    got = evaluate(policy, ds, keys, cfg, torch.device("cpu"))
    assert {k: got[k] for k in ("loss", "loss_zero_goal")} == {"loss": total[False] / count,
                                                               "loss_zero_goal": total[True] / count}
    assert got["loss"] != got["loss_zero_goal"]  # the goal does reach the policy
    # goal gain on the goal-carrying segments: the unconditional ones differ by exactly 0, so the sum of the
    # differences is the same over every segment and over those
    uncond = [k for k in keys if not ds[k][GOAL].any()]
    assert uncond and len(uncond) < len(keys)  # p_uncond 0.5: both kinds are in the split
    assert 0 < got["goal_frames"] < count
    # float32 sums in another grouping: compare on the scale of the summed NLLs, not of their small difference
    assert got["goal_gain"] * got["goal_frames"] == pytest.approx(total[True] - total[False], abs=1e-5 * total[False])


def test_goal_run_starts_from_unconditional_pretrain(demo_store, tmp_path, one_thread):  # noqa: F811
    pre = run(tiny_cfg(demo_store, tmp_path / "pre", "segment.embed_name=null", "n_frames=64", "val_every=0"), progress=False)
    assert pre["step"] == 2
    from aimc.policy import VPTPolicy, get_config

    goal_policy = VPTPolicy(get_config("test-tiny", img_shape=(64, 64), action_head="categorical", n_actions=17,
                                       temperature=1.0, goal_dim=EMBED_DIM))
    fresh = init_policy_from(goal_policy, tmp_path / "pre")
    assert fresh == list(GOAL_LAYER_KEYS)
    src = weights(tmp_path / "pre" / "latest")
    own = goal_policy.state_dict()
    assert all(torch.equal(src[k], own[k]) for k in src)
    s = run(tiny_cfg(demo_store, tmp_path / "goal", f"init_from={tmp_path / 'pre'}", "n_frames=64", "val_every=0"), progress=False)
    assert s["fresh_keys"] == list(GOAL_LAYER_KEYS)


@pytest.mark.slow
def test_loss_below_marginal_entropy_on_demonstrator_data(demo_store, tmp_path, one_thread):  # noqa: F811
    """Lesson 1 of training-notes.md: a policy that learns anything beats the marginal action entropy fast."""
    acts = np.concatenate([Episode(p).actions for p in list_episodes(demo_store)])
    p = np.bincount(acts, minlength=17) / len(acts)
    marginal = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    cfg = tiny_cfg(demo_store, tmp_path / "smoke", "n_frames=25600", "batch_size=8", "segment.segment_len=16",
                   "trunc_t=16", "grad_accum=1", "lr=3e-3", "warmup_frames=640", "val_every=0", "log_every=20", "val_fraction=0")
    run(cfg, progress=False)
    rows = [r["train/loss"] for r in read_metrics(tmp_path / "smoke") if "train/loss" in r]
    assert len(rows) == 10
    assert np.mean(rows[-2:]) < marginal - 0.05, (rows, marginal)


def test_data_flag_parsing():
    from aimc.cli.train_policy import parse_data
    from aimc.core.errors import ConfigError

    assert parse_data(["a/b", "task:0.7", "orig:0.3"]) == [
        {"path": "a/b", "weight": 1.0}, {"path": "task", "weight": 0.7}, {"path": "orig", "weight": 0.3}]
    with pytest.raises(ConfigError, match="weight"):
        parse_data(["task:lots"])



@pytest.mark.parametrize("native", ["0", "1"])
def test_cpu_training_precision_follows_the_hardware(demo_store, tmp_path, one_thread, monkeypatch, native):  # noqa: F811
    """bf16 autocast on a CPU that computes bf16 natively (forced here both ways), fp32 elsewhere; either way
    the run trains, keeps fp32 weights and reports which precision it used; `mixed_precision=no` is always fp32."""
    monkeypatch.setenv("AIMC_CPU_BF16", native)
    s = run(tiny_cfg(demo_store, tmp_path / "run", "n_frames=128", "seed=1", "val_every=2"), progress=False)
    assert s["precision"] == ("bf16" if native == "1" else "no")
    rows = [r for r in read_metrics(tmp_path / "run") if "train/loss" in r]
    assert rows and all(np.isfinite(r["train/loss"]) for r in rows)
    w = weights(tmp_path / "run" / "latest")
    assert all(v.dtype == torch.float32 for v in w.values())  # autocast never changes the stored weights
    no = run(tiny_cfg(demo_store, tmp_path / "fp32", "n_frames=128", "seed=1", "val_every=2",
                      "mixed_precision=no"), progress=False)
    assert no["precision"] == "no"


def test_kl_anchor_holds_a_fine_tune_near_its_start_and_resumes_exactly(demo_store, tmp_path, one_thread):  # noqa: F811
    """anchor_kl: 0 on the first step (the policy is its anchor), a strong anchor ends nearer the start than a
    negligible one under the same data and lr, the anchor is init_from's weights on resume too (not the
    checkpoint's), and anchoring without a policy to anchor to is one clear error."""
    from aimc.core.errors import ConfigError

    base = tmp_path / "base"
    run(tiny_cfg(demo_store, base, "n_frames=64", "val_every=0"), progress=False)
    sets = (f"init_from={base}", "n_frames=320", "lr=0.01", "warmup_frames=1", "val_every=0", "log_every=1", "seed=5",
            "save_every=100")

    def kl_log(out: Path) -> list[float]:
        return [r["train/anchor_kl"] for r in read_metrics(out) if "train/anchor_kl" in r]

    run(tiny_cfg(demo_store, tmp_path / "loose", *sets, "anchor_kl=1e-9"), progress=False)
    run(tiny_cfg(demo_store, tmp_path / "tight", *sets, "anchor_kl=10"), progress=False)
    loose, tight = kl_log(tmp_path / "loose"), kl_log(tmp_path / "tight")
    assert len(loose) == len(tight) == 10 and loose[0] < 1e-6 and tight[0] < 1e-6
    assert loose[-1] > 0.01 and np.mean(tight[-3:]) < 0.5 * np.mean(loose[-3:])
    # resume: stop after 4 steps, rerun: same weights as the uninterrupted run
    part = run(tiny_cfg(demo_store, tmp_path / "part", *sets, "anchor_kl=10"), stop_after_steps=4, progress=False)
    assert part["interrupted"]
    run(tiny_cfg(demo_store, tmp_path / "part", *sets, "anchor_kl=10"), progress=False)
    a, b = weights(tmp_path / "tight" / "latest"), weights(tmp_path / "part" / "latest")
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    with pytest.raises(ConfigError, match="anchor_kl needs a policy"):
        tiny_cfg(demo_store, tmp_path / "x", "anchor_kl=1")
