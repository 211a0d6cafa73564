"""Damaged episodes through every command that reads a store: one line each, counted by reason, the rest used.

The store holds three good episodes and one of each kind of damage a user meets (a truncated video, a missing
and a mis-sized actions.npy, garbage metadata, a lost infos line, missing goal embeddings). Every command must
name each bad episode once with its reason, count them by reason in its summary, process the good ones, and
leave the store's bytes as they were (`aimc embed` adds its own files to the usable episodes only);
`--strict` turns the first bad episode into one `error:` line instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.cli.app import main
from aimc.data.index import DatasetIndex, Skipped
from aimc.data.store import Episode
from tests.embed.conftest import write_synthetic_store
from tests.train.fixtures import EMBED_NAME, fake_window_embeddings

GOOD = ["good_0", "good_1", "good_2"]
# damaged episode -> (kind of damage in the summaries, words of its reason); names sort before the good ones
DAMAGE = {
    "bad_actions_missing": ("missing files", "missing actions.npy"),
    "bad_actions_size": ("bad actions", "71 actions but length is 72"),
    "bad_embeds": ("missing embeddings", f"no embeddings named '{EMBED_NAME}'"),
    "bad_length": ("length mismatch", "infos.jsonl has 71 lines but length is 72"),
    "bad_metadata": ("bad metadata", "metadata.json is not valid JSON"),
    "bad_video": ("unreadable video", "frames.mp4 is unreadable"),
}
NEEDS_EMBEDS = {"bad_embeds"}  # damage only for a command that reads goal embeddings (train policy)


def _damage(d: Path, name: str) -> None:
    if name == "bad_actions_missing":
        (d / "actions.npy").unlink()
    elif name == "bad_actions_size":
        np.save(d / "actions.npy", np.zeros(71, np.int64))
    elif name == "bad_embeds":
        for f in d.glob("embeds_*"):
            f.unlink()
    elif name == "bad_length":
        lines = (d / "infos.jsonl").read_text().splitlines(keepends=True)
        (d / "infos.jsonl").write_text("".join(lines[:-1]))
    elif name == "bad_metadata":
        (d / "metadata.json").write_bytes(b"\x00garbage{")
    elif name == "bad_video":
        data = (d / "frames.mp4").read_bytes()
        (d / "frames.mp4").write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def fault_store(tmp_path_factory) -> Path:
    """9 episodes of 72 frames (64x64, captionable events, fake goal embeddings): 3 good, 6 damaged."""
    src = write_synthetic_store(tmp_path_factory.mktemp("src") / "store", n_episodes=len(GOOD) + len(DAMAGE), size=64)
    root = tmp_path_factory.mktemp("faults") / "store"
    root.mkdir()
    for path, name in zip(sorted(src.iterdir()), [*GOOD, *DAMAGE], strict=True):
        ep = Episode(path)
        ep.write_embeds(EMBED_NAME, *fake_window_embeddings(ep.frames()))
        shutil.copytree(path, root / name)
        if name in DAMAGE:
            _damage(root / name, name)
    return root


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory) -> Path:
    """An untrained small video-text embedder (8-d), saved as `aimc train embedder` would."""
    from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("emb") / "model"
    cfg = VideoTextConfig(channels=[4, 8], frame_dim=16, embed_dim=8, frame_size=32, temporal_heads=2)
    VideoTextEmbedder(cfg, device="cpu").save_pretrained(out)
    return out


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (tests/conftest.py)."""


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _check_skip_report(err: str, out: str, root: Path, damaged: list[str]) -> None:
    """One stderr line per damaged episode (its reason in it), and the summary's counts by reason."""
    lines = [ln for ln in err.splitlines() if ln.startswith("skipped episode ")]
    assert len(lines) == len(damaged), err
    for name in damaged:
        mine = [ln for ln in lines if ln.startswith(f"skipped episode {root / name}: ")]
        assert len(mine) == 1 and DAMAGE[name][1] in mine[0], (name, lines)
    kinds = sorted(DAMAGE[n][0] for n in damaged)
    want = f"{len(damaged)} episode(s) skipped (" + ", ".join(f"1 {k}" for k in kinds) + ")"
    assert want in out, out
    assert "Traceback" not in err


def _tmp_for(name: str, store: Path, tmp_path: Path) -> Path:
    """A private copy of the module's store for commands that write into it."""
    dst = tmp_path / name
    shutil.copytree(store, dst)
    return dst


def test_store_scan_counts_each_kind(fault_store):
    skipped = Skipped(echo=None)
    idx = DatasetIndex.scan(fault_store, skipped=skipped)
    assert sorted(p.name for p in idx.episodes) == sorted([*GOOD, "bad_embeds"])
    assert skipped.counts() == {DAMAGE[n][0]: 1 for n in DAMAGE if n not in NEEDS_EMBEDS}
    assert idx.skipped["bad_video"] == "frames.mp4 is unreadable (truncated or corrupt)"


def test_train_policy_skips_each_bad_episode(fault_store, tmp_path, capsys):
    before = _snapshot(fault_store)
    args = ["train", "policy", "--preset", "test", "--data", str(fault_store), "--out", str(tmp_path / "run"), "--quiet",
            "--set", f"segment.embed_name={EMBED_NAME}", "--set", "n_frames=64", "--set", "val_fraction=0"]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    _check_skip_report(err, out, fault_store, list(DAMAGE))
    assert "trained 2 steps" in out and "on 12 segments" in out  # 3 good episodes x 4 segments of 16 frames
    assert _snapshot(fault_store) == before

    # the default batch of 16 cannot be filled by what is left: the error says episodes were dropped
    code, out, err = _run([*args[:7], str(tmp_path / "run16"), *args[8:], "--set", "batch_size=16"], capsys)
    assert code == 2 and err.count("skipped episode ") == len(DAMAGE)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 12 training segment(s) (6 episode(s) were skipped") and "batch of 16" in last

    code, out, err = _run([*args, "--strict"], capsys)
    assert code == 2 and out == "" and "skipped episode" not in err
    assert err.startswith(f"error: episode {fault_store / 'bad_actions_missing'}: missing actions.npy") and "--strict" in err
    assert err.count("\n") == 1 and _snapshot(fault_store) == before


def test_embed_skips_bad_episodes_and_embeds_the_rest(fault_store, embedder_dir, tmp_path, capsys):
    store = _tmp_for("embed", fault_store, tmp_path)
    before = _snapshot(store)
    code, out, err = _run(["embed", "--embedder", str(embedder_dir), "--data", str(store), "--name", "vt", "--quiet"], capsys)
    assert code == 0, err
    damaged = [n for n in DAMAGE if n not in NEEDS_EMBEDS]
    _check_skip_report(err, out, store, damaged)
    assert out.startswith("embedded 4 episode(s) (0 already done) of 9 as embeds_vt.npy")  # good ones after bad ones too
    after = _snapshot(store)
    added = {k for k in after if k not in before}
    assert added == {f"{n}/embeds_vt{s}.npy" for n in [*GOOD, "bad_embeds"] for s in ("", "_mask")}
    assert {k: after[k] for k in before} == before  # nothing else changed, damaged episodes untouched
    emb, mask = Episode(store / "good_2").read_embeds("vt")
    assert emb.shape == (72, 8) and mask.sum() == 72 - 15

    code, out, err = _run(["embed", "--embedder", str(embedder_dir), "--data", str(store), "--name", "vt", "--quiet"], capsys)
    assert code == 0 and out.startswith("embedded 0 episode(s) (4 already done) of 9") and err.count("skipped episode") == 5

    fresh = _tmp_for("strict", fault_store, tmp_path)
    code, out, err = _run(["embed", "--embedder", str(embedder_dir), "--data", str(fresh), "--name", "vt", "--quiet",
                           "--strict"], capsys)
    assert code == 2 and err.startswith(f"error: episode {fresh / 'bad_actions_missing'}: missing actions.npy")
    assert _snapshot(fresh) == before  # it stopped at the first episode, before writing anything


def test_train_embedder_and_prior_skip_bad_episodes(fault_store, embedder_dir, tmp_path, capsys):
    before = _snapshot(fault_store)
    damaged = [n for n in DAMAGE if n not in NEEDS_EMBEDS]
    tiny = ["--set", "model.frame_size=32", "--set", "model.channels=[4,8]", "--set", "model.frame_dim=16",
            "--set", "model.embed_dim=8", "--set", "model.temporal_heads=2", "--set", "val_fraction=0"]
    args = ["train", "embedder", "--data", str(fault_store), "--out", str(tmp_path / "emb"), "--steps", "2",
            "--batch-size", "4", "--quiet", *tiny]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    _check_skip_report(err, out, fault_store, damaged)
    assert "trained 2 steps" in out and "of 4 tasks" in out  # 3 cued events + "nothing", from the 4 usable episodes
    code, out, err = _run([*args, "--strict"], capsys)
    assert code == 2 and "error: episode" in err and "--strict" in err

    args = ["train", "prior", "--data", str(fault_store), "--embedder", str(embedder_dir), "--out", str(tmp_path / "prior"),
            "--epochs", "1", "hidden_dim=16", "latent_dim=4", "batch_size=32"]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    _check_skip_report(err, out, fault_store, damaged)
    summary = json.loads((tmp_path / "prior" / "summary.json").read_text())
    assert summary["skipped_episodes"] == 5 and summary["pairs"] > 0
    code, out, err = _run([*args[:7], str(tmp_path / "prior2"), *args[8:], "--strict"], capsys)
    assert code == 2 and err.startswith(f"error: episode {fault_store / 'bad_actions_missing'}") and "--strict" in err
    assert _snapshot(fault_store) == before


def test_eval_commands_skip_bad_episodes(fault_store, embedder_dir, tmp_path, capsys):
    before = _snapshot(fault_store)
    damaged = [n for n in DAMAGE if n not in NEEDS_EMBEDS]
    args = ["eval", "prior", "--data", str(fault_store), "--pair", str(embedder_dir), "--out", str(tmp_path / "ep")]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    _check_skip_report(err, out, fault_store, damaged)
    report = json.loads((tmp_path / "ep" / "prior_report.json").read_text())
    assert sorted(report["skipped_episodes"]) == sorted(str(fault_store / n) for n in damaged)
    assert report["rows"][0]["tasks"] == 4  # the clips come from the usable episodes
    assert _run([*args, "--strict"], capsys)[0] == 2

    args = ["eval", "embedder", "--embedder", str(embedder_dir), "--data", str(fault_store), "--json", str(tmp_path / "e.json")]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    _check_skip_report(err, out, fault_store, damaged)
    assert json.loads((tmp_path / "e.json").read_text())["skipped_by_reason"] == {DAMAGE[n][0]: 1 for n in damaged}
    code, out, err = _run([*args, "--strict"], capsys)
    assert code == 2 and re.match(r"error: episode .*bad_actions_missing: missing actions\.npy", err)

    # `aimc video` reads one episode: a damaged one is one error line naming it and the reason
    code, out, err = _run(["video", str(fault_store / "bad_video"), "--out", str(tmp_path / "v.mp4")], capsys)
    assert code == 2 and err == f"error: episode {fault_store / 'bad_video'}: frames.mp4 is unreadable (truncated or corrupt)\n"
    assert not (tmp_path / "v.mp4").exists() and _snapshot(fault_store) == before
