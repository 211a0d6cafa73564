"""Embedder metrics on hand-made vectors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimc.embed import metrics as M
from aimc.embed.captions import CAPTIONS, NOTHING, caption_event, instruction
from aimc.envs.crafter import ACHIEVEMENTS


def test_text_discriminability_extremes():
    assert M.text_discriminability(np.eye(4)) == pytest.approx(1.0)
    assert M.text_discriminability(np.ones((3, 5))) == pytest.approx(0.0)
    # Two vectors at 60 degrees: cosine 0.5.
    v = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert M.text_discriminability(v) == pytest.approx(0.5)


def test_visual_similarities_split_by_label():
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = ["a", "a", "b", "b"]
    # different-task pairs: (0,2)=0, (0,3)=0.6, (1,2)=0, (1,3)=0.6 -> mean 0.3
    assert M.inter_task_similarity(e, labels) == pytest.approx(0.3)
    # same-task pairs: (0,1)=1, (2,3)=0.8 -> 0.9
    assert M.intra_task_similarity(e, labels) == pytest.approx(0.9)
    assert M.paraphrase_robustness(e, labels) == pytest.approx(0.9)


def test_retrieval_top1():
    clips = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.2]])
    clip_labels = ["a", "a", "b", "b"]  # the last "b" clip looks like "a"
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert M.clip_to_text_top1(clips, clip_labels, text, ["a", "b"]) == pytest.approx(0.75)
    assert M.text_to_clip_top1(clips, clip_labels, text, ["a", "b"]) == pytest.approx(1.0)
    assert M.text_to_clip_top1(clips, clip_labels, text, ["b", "a"]) == pytest.approx(0.0)
    r = M.embedder_report(clips, clip_labels, text, ["a", "b"], text, ["a", "b"])
    assert r["chance_top1"] == 0.5 and r["text_discriminability"] == pytest.approx(1.0)
    assert math.isnan(r["paraphrase_robustness"])  # one paraphrase per task: no same-task pair


def test_caption_catalogue_covers_crafter():
    assert set(ACHIEVEMENTS) <= set(CAPTIONS)
    assert all(len(v) >= 3 for v in CAPTIONS.values())
    assert instruction("collect_wood") == "chop a tree"
    assert caption_event(["take_damage", "defeat_zombie"]) == "defeat_zombie"
    assert caption_event(["death"]) is None and NOTHING in CAPTIONS
    texts = [t for v in CAPTIONS.values() for t in v]
    assert len(texts) == len(set(texts)), "a paraphrase must name one event only"
