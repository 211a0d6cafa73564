"""`aimc train prior` through the CLI (cached pairs, resume) and the prior metrics pipeline on a fake embedder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aimc.cli.app import main
from aimc.core.errors import AimcError
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

    # the CVAE fix's settings through --set, and bad kinds / targets / an aligner on pairs without strings: one line
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    save_pairs(fixed / "pairs.npz", pairs)
    assert main(["train", "prior", "--out", str(fixed), "--epochs", "2", "--set", "kl=mean", "--set", "beta=0.1",
                 "--set", "free_bits=0.05", "hidden_dim=16", "latent_dim=4"]) == 0
    saved = json.loads((fixed / "train_config.json").read_text())
    assert (saved["kl"], saved["beta"], saved["free_bits"], saved["kind"]) == ("mean", 0.1, 0.05, "cvae")
    capsys.readouterr()
    for bad, msg in ((["--kind", "gan"], "prior kind must be"), (["--target", "pixels"], "prior target must be")):
        assert main(["train", "prior", "--out", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    old = tmp_path / "old"
    old.mkdir()
    save_pairs(old / "pairs.npz", pairs)
    assert main(["train", "prior", "--out", str(old), "--kind", "aligner", "--epochs", "1"]) == 2
    assert "no instruction strings" in capsys.readouterr().err


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


def test_prior_metrics_on_suite_wordings():
    """`--suite`: goals come from the suite's prompts (held-out wordings), one event per task; tasks the suite does not
    prompt are left out of the goals but stay as centroids to be confused with."""
    from aimc.eval.prior_eval import suite_wordings

    held = suite_wordings("crafter-heldout")
    assert held["collect_wood"] == ["gather some wood from a tree", "fell a tree"]
    assert all(w not in paraphrases(e) for e, ws in held.items() for w in ws)
    labels = ["collect_wood", "place_table", "eat_cow"] * 3
    frames = np.zeros((9, 16, 2, 2, 3), np.uint8)
    for i, lab in enumerate(labels):
        frames[i, :, :, :, _FakeEmbedder.tasks.index(lab)] = 255
    clips = ClipSet(frames, labels, [("e", i) for i in range(9)])

    class _Words(_FakeEmbedder):  # the suite's wordings map to their task's axis
        def encode_text(self, texts):
            return torch.tensor(np.array([np.eye(self.dim)[0 if "wood" in t or "tree" in t else 2] for t in texts]),
                                dtype=torch.float32)

    wordings = {"collect_wood": ["fell a tree", "gather wood"], "eat_cow": ["have beef"]}
    m = evaluate_pair(_Words(), clips, np.arange(9), labels, prior=None, wordings=wordings)
    assert m["tasks"] == 2 and m["goal_accuracy"] == 1.0 and m["chance_accuracy"] == 1 / 3
    with pytest.raises(AimcError, match="fewer than 2"):
        evaluate_pair(_Words(), clips, np.arange(9), labels, prior=None, wordings={"collect_wood": ["fell a tree"]})
