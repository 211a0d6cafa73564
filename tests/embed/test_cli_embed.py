"""CLI: train embedder -> embed -> eval embedder on a synthetic store; convert mineclip errors."""

from __future__ import annotations

import json

import numpy as np
import torch

from aimc.cli.app import main
from aimc.data.store import Episode, list_episodes
from aimc.embed.base import make_embedder
from aimc.embed.mineclip_model import MineCLIP
from tests.embed.conftest import tiny_mineclip_config

TINY_SET = [
    "--set",
    "model.frame_size=32",
    "--set",
    "model.channels=[8,16]",
    "--set",
    "model.frame_dim=32",
    "--set",
    "model.embed_dim=32",
    "--set",
    "model.temporal_heads=2",
    "--set",
    "checkpoint_every=4",
]


def test_train_embed_eval_commands(synthetic_store, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "embedder",
            "--data",
            str(synthetic_store),
            "--out",
            str(run),
            "--steps",
            "8",
            "--batch-size",
            "8",
            "--seed",
            "3",
            "--quiet",
            *TINY_SET,
        ]
    )
    assert rc == 0
    assert "trained 8 steps" in capsys.readouterr().out
    assert json.loads((run / "train_config.json").read_text())["seed"] == 3

    rc = main(
        ["embed", "--embedder", str(run / "model"), "--data", str(synthetic_store), "--name", "vt", "--quiet"]
    )
    assert rc == 0 and "embedded 4 episode(s) (0 already done)" in capsys.readouterr().out
    emb_model = make_embedder(run / "model", device="cpu")
    ep = Episode(list_episodes(synthetic_store)[0])
    emb, mask = ep.read_embeds("vt")
    assert emb.dtype == np.float16 and emb.shape == (ep.length, 32) and mask.sum() == ep.length - 15
    want, _ = emb_model.window_embeddings(ep.frames())
    np.testing.assert_allclose(emb.astype(np.float32), want.numpy(), atol=2e-3)
    rc = main(
        ["embed", "--embedder", str(run / "model"), "--data", str(synthetic_store), "--name", "vt", "--quiet"]
    )
    assert rc == 0 and "(4 already done)" in capsys.readouterr().out

    report = tmp_path / "report.json"
    rc = main(
        [
            "eval",
            "embedder",
            "--embedder",
            str(run / "model"),
            "--data",
            str(synthetic_store),
            "--json",
            str(report),
        ]
    )
    assert rc == 0 and "text->clip top-1" in capsys.readouterr().out
    r = json.loads(report.read_text())
    assert r["tasks"] == 4 and r["chance_top1"] == 0.25
    assert 0.0 <= r["clip_to_text_top1"] <= 1.0 and -1.0 <= r["inter_task_visual_similarity"] <= 1.0


def test_embed_unknown_embedder_is_one_line_error(synthetic_store, capsys):
    assert main(["embed", "--embedder", "nope", "--data", str(synthetic_store)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown embedder 'nope'")


def test_convert_mineclip_rejects_inconsistent_checkpoints(tmp_path, capsys):
    # Other sizes convert now (the architecture is read from the shapes, tests/embed/test_mineclip_any_checkpoint.py);
    # a key set the inferred architecture cannot hold is still refused, naming the keys.
    cfg = tiny_mineclip_config()
    state = {"model." + k: v for k, v in MineCLIP(cfg).state_dict().items()}
    del state["model.reward_head.video_residual_weight"]
    state["model.reward_head.video_adapter.0.weight"] = torch.zeros(5, 5)
    ckpt = tmp_path / "attn.pth"
    torch.save({"state_dict": state}, ckpt)
    assert main(["convert", "mineclip", str(ckpt), "--out", str(tmp_path / "out"), "--set", "resolution=[32,48]"]) == 2
    err = capsys.readouterr().err
    assert "not a MineCLIP attn checkpoint" in err and "missing" in err and "mis-shaped" in err
    assert not (tmp_path / "out").exists()
