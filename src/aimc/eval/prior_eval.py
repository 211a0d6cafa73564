"""The seeds' six prior metrics for (embedder, goal source) pairs, on captioned clips of an episode store.

Goal sources: "text" feeds the embedder's text embedding straight to the policy (the text-only
baseline); "prior:<dir>" samples a saved goal predictor (`aimc.prior.load_predictor`: a CVAE prior, released or
trained, or an aligner). Embedder-side metrics are reused from
`aimc.embed.metrics`; the goal-side ones (collapse, goal accuracy, discriminability) are in `aimc.eval.metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError
from aimc.data.index import Skipped
from aimc.embed.captions import paraphrases
from aimc.embed.clips import ClipSet
from aimc.embed.metrics import inter_task_similarity, paraphrase_robustness, text_discriminability
from aimc.eval.metrics import goal_accuracy, goal_discriminability, prior_output_collapse

COLUMNS: list[tuple[str, str, str]] = [
    ("text_discriminability", "text discriminability", "higher"),
    ("inter_task_visual_similarity", "inter-task visual similarity", "lower"),
    ("prior_output_collapse", "goal collapse (mean cos, different tasks)", "lower"),
    ("goal_accuracy", "goal accuracy (nearest centroid)", "higher"),
    ("goal_discriminability", "goal discriminability", "higher"),
    ("paraphrase_robustness", "paraphrase robustness", "higher"),
    ("chance_accuracy", "chance accuracy", ""),
]


def sample_clips(clips: ClipSet, max_per_task: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(i)[:max_per_task] for i in clips.by_task().values()]))
    return keep, [clips.labels[i] for i in keep]


def suite_wordings(suite: str) -> dict[str, list[str]]:
    """Event -> the prompts a task suite uses for it (its tasks' first success event), e.g. the held-out wordings of
    `crafter-heldout`, so goal sources are also scored on instructions no training caption used."""
    from aimc.eval.tasks import load_suite

    out: dict[str, list[str]] = {}
    for task in load_suite(suite).tasks:
        out.setdefault(task.success.events[0], []).extend(task.prompts)
    return out


def evaluate_pair(
    embedder: Any, clips: ClipSet, keep: np.ndarray, labels: list[str], prior: Any | None, seed: int = 0,
    wordings: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    """Metrics for one embedder and one goal source (prior None = text-only). `wordings` (event -> instructions)
    replaces the caption catalogue's paraphrases, for the events the clips show."""
    clip_emb = torch.cat([embedder.encode_clips(clips.frames[keep[i : i + 32]]) for i in range(0, len(keep), 32)])
    clip_emb = clip_emb.float().cpu().numpy()
    tasks = sorted(set(labels))
    if wordings is not None:
        tasks = [t for t in tasks if wordings.get(t)]
        if len(tasks) < 2:
            raise AimcError("fewer than 2 of the suite's tasks have clips in this store; use a store with those events")
    words = (lambda t: wordings[t]) if wordings is not None else paraphrases
    canon = embedder.encode_text([words(t)[0] for t in tasks]).float().cpu().numpy()
    para = [(t, p) for t in tasks for p in words(t)]
    para_labels = [t for t, _ in para]
    para_emb = embedder.encode_text([p for _, p in para]).float().cpu().numpy()
    goals = para_emb if prior is None else np.asarray(prior.sample([p for _, p in para], seed=seed), np.float32)
    return {
        "text_discriminability": text_discriminability(canon),
        "inter_task_visual_similarity": inter_task_similarity(clip_emb, labels),
        "prior_output_collapse": prior_output_collapse(goals, para_labels),
        "goal_accuracy": goal_accuracy(goals, para_labels, clip_emb, labels),
        "goal_discriminability": goal_discriminability(goals, para_labels, clip_emb, labels),
        "paraphrase_robustness": paraphrase_robustness(goals, para_labels),
        "chance_accuracy": 1.0 / len(set(labels)),
        "tasks": len(tasks),
        "clips": len(labels),
    }


def evaluate_priors(
    pairs: list[tuple[str, str | None]], data: str | Path, max_clips_per_task: int = 50,
    nothing_per_episode: int = 2, seed: int = 0, device: str | None = None, skipped: Skipped | None = None,
    wordings: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (embedder, goal source): every embedder gets a text-only row, plus one per prior.

    Damaged episodes go to `skipped` (default: reported on stderr and left out; a strict one raises); pass
    your own to read what was left out."""
    from aimc.data.store import list_episodes
    from aimc.embed.base import make_embedder
    from aimc.embed.clips import load_clips
    from aimc.prior.base import load_predictor

    clips = load_clips(list_episodes(data), nothing_per_episode, seed, skipped=Skipped() if skipped is None else skipped)
    keep, labels = sample_clips(clips, max_clips_per_task, seed)
    rows: list[dict[str, Any]] = []
    done_text: set[str] = set()
    for emb_name, prior_path in pairs:
        embedder = make_embedder(emb_name, device=device)
        if emb_name not in done_text:
            rows.append({"embedder": emb_name, "goal_source": "text", **evaluate_pair(embedder, clips, keep, labels, None, seed, wordings)})
            done_text.add(emb_name)
        if prior_path:
            prior = load_predictor(prior_path, device=device or "cpu",
                                   text_encoder=lambda t, e=embedder: e.encode_text(t).float().cpu().numpy())
            if prior.dim != embedder.dim:
                raise AimcError(f"prior {prior_path} is {prior.dim}-d but embedder {emb_name} is {embedder.dim}-d")
            rows.append({"embedder": emb_name, "goal_source": f"prior:{prior_path}",
                         **evaluate_pair(embedder, clips, keep, labels, prior, seed, wordings)})
    return rows
