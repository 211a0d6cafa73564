"""`aimc train prior` through the CLI (cached pairs, resume) and the prior metrics pipeline on a fake embedder."""

from __future__ import annotations

import json

import numpy as np
import torch

from aimc.cli.app import main
from aimc.core.rundir import read_metrics
from aimc.embed.captions import paraphrases
from aimc.embed.clips import ClipSet
from aimc.eval.prior_eval import evaluate_pair
from aimc.prior import load_prior
from aimc.prior.train import save_pairs


def test_train_prior_cli_uses_cached_pairs_and_resumes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, 120)
    pairs = {"text": np.eye(6, dtype=np.float32)[lab], "visual": np.eye(6, dtype=np.float32)[lab + 3],
             "label": lab.astype(str)}
    out = tmp_path / "prior"
    out.mkdir()
    save_pairs(out / "pairs.npz", pairs)
    args = ["train", "prior", "--out", str(out), "--epochs", "3", "hidden_dim=16", "latent_dim=4", "batch_size=32"]
    assert main(args) == 0
    assert "120 pairs" in capsys.readouterr().out
    assert main([*args[:5], "5", *args[6:]]) == 0  # resume to 5 epochs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 5 and [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5]
    assert load_prior(out / "prior").sample(np.eye(6, dtype=np.float32)[:2], seed=0).shape == (2, 6)


class _FakeEmbedder:
    """Text of task k -> axis k; clips of task k -> axis k (+ noise): a perfectly aligned embedder."""

    dim = 4
    tasks = ["collect_wood", "place_table", "eat_cow"]

    def encode_text(self, texts):
        rows = []
        for t in texts:
            k = next(i for i, task in enumerate(self.tasks) if t in paraphrases(task))
            rows.append(np.eye(self.dim)[k])
        return torch.tensor(np.array(rows), dtype=torch.float32)

    def encode_clips(self, clips):
        return torch.tensor(clips[:, 0, 0, 0, :3].astype(np.float32) / 255.0 @ np.eye(3, self.dim))


def test_prior_metrics_pipeline_on_aligned_fake_embedder():
    labels = ["collect_wood", "place_table", "eat_cow"] * 3
    frames = np.zeros((9, 16, 2, 2, 3), np.uint8)
    for i, lab in enumerate(labels):
        frames[i, :, :, :, _FakeEmbedder.tasks.index(lab)] = 255
    clips = ClipSet(frames, labels, [("e", i) for i in range(9)])
    m = evaluate_pair(_FakeEmbedder(), clips, np.arange(9), labels, prior=None)
    assert m["goal_accuracy"] == 1.0 and m["prior_output_collapse"] == 0.0
    assert m["paraphrase_robustness"] == 1.0 and m["text_discriminability"] == 1.0
    assert m["goal_discriminability"] == 1.0 and m["inter_task_visual_similarity"] == 0.0
    assert m["chance_accuracy"] == 1 / 3
