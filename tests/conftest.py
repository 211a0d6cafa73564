"""Tiny shared fixtures: a small Crafter env and a temporary episode store of random-agent episodes."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _conv_calibration_cache(tmp_path_factory):
    """The measured convolution choices (aimc.policy.vpt.conv_select) go to a session directory, not the
    user's cache: a test session measures on the machine it runs on and leaves nothing behind."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIMC_CACHE_DIR", str(tmp_path_factory.mktemp("aimc_cache")))
    yield
    mp.undo()


@pytest.fixture
def crafter_env():
    from aimc.envs import make

    return make("crafter", size=64)


@pytest.fixture(scope="session")
def random_store(tmp_path_factory):
    """Three short random-agent Crafter episodes (60 steps) written through the real collector."""
    from aimc.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("store") / "crafter"
    collect(CollectConfig(out=str(out), agent="random", episodes=3, max_steps=60, seed=7), progress=False)
    return out


def random_actions(n: int, seed: int = 0) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(0, 17, n)]


@pytest.fixture
def one_torch_thread():
    """One torch thread for a test: tiny models gain nothing from more, and on a shared 2-core machine more
    threads only oversubscribe (OpenMP stalls). Test modules and conftests opt in with an autouse wrapper."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_LM_WORDS = ["chop", "a", "tree", "collect", "wood", "get", "log", "drink", "water", "quench", "thirst", "lake",
                 "mine", "stone", "dig", "rock", "kill", "cow", "hunt", "eat", "place", "table", "put", "down", "build",
                 "bench", "sleep", "rest", "night", "go", "to", "fell", "have", "some", "the", "from"]
"""The tiny language model's whole vocabulary (other words tokenise to [UNK])."""


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A 2-layer, 32-wide BERT and a word-level vocab, saved like any Hugging Face model directory."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny_lm")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_LM_WORDS])}
    tok = BertTokenizerFast(vocab=vocab)
    assert tok("chop a tree")["input_ids"] == [2, 5, 6, 7, 3]  # words are tokens, not [UNK]
    tok.save_pretrained(root)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=5 + len(TINY_LM_WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(root)
    return root


@pytest.fixture(scope="session", autouse=True)
def _commands_run_in_process():
    """Resumable commands run their work in this process in tests (no supervising parent, aimc.core.supervise):
    monkeypatches and capsys reach them. tests/core/test_supervise.py and the CLI crash test switch it back on."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIMC_CRASH_RETRIES", "0")
    yield
    mp.undo()
