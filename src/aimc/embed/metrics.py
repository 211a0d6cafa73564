"""Embedder-quality metrics as pure functions on arrays (reused by the prior and eval stages).

Definitions (docs/embed.md): all similarities are cosines; "task" is the event label of a clip or
instruction. Each function ignores the diagonal (an item is never compared with itself).
"""

from __future__ import annotations

import numpy as np

from aimc.core.errors import AimcError


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise AimcError(f"expected a 2-D array of embeddings (N, D), got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) -> (N, M) cosine similarities."""
    return _unit(a) @ _unit(b).T


def _pair_mean(emb: np.ndarray, labels: np.ndarray | list, same: bool) -> float:
    """Mean cosine over ordered pairs i != j whose labels are equal (`same`) or different."""
    labels = np.asarray(labels)
    if len(labels) != len(emb):
        raise AimcError(f"{len(emb)} embeddings but {len(labels)} labels")
    sim = cosine_matrix(emb, emb)
    eq = labels[:, None] == labels[None, :]
    pick = (eq if same else ~eq) & ~np.eye(len(labels), dtype=bool)
    if not pick.any():
        return float("nan")
    return float(sim[pick].mean())


def text_discriminability(text_emb: np.ndarray) -> float:
    """1 - mean cosine between embeddings of different instructions (one row per instruction).

    0 means every instruction maps to the same direction; 1 means mutually orthogonal.
    """
    return 1.0 - _pair_mean(text_emb, np.arange(len(text_emb)), same=False)


def inter_task_similarity(clip_emb: np.ndarray, labels: np.ndarray | list) -> float:
    """Mean cosine between clip embeddings of *different* tasks (lower separates tasks better)."""
    return _pair_mean(clip_emb, labels, same=False)


def intra_task_similarity(clip_emb: np.ndarray, labels: np.ndarray | list) -> float:
    """Mean cosine between clip embeddings of the *same* task (higher = more consistent)."""
    return _pair_mean(clip_emb, labels, same=True)


def paraphrase_robustness(text_emb: np.ndarray, labels: np.ndarray | list) -> float:
    """Mean cosine between different paraphrases of the same instruction (higher is more robust)."""
    return _pair_mean(text_emb, labels, same=True)


def clip_to_text_top1(
    clip_emb: np.ndarray, clip_labels: list, text_emb: np.ndarray, text_labels: list
) -> float:
    """Fraction of clips whose most similar instruction (among one per task) is their own task's."""
    best = np.asarray(text_labels)[cosine_matrix(clip_emb, text_emb).argmax(axis=1)]
    return float((best == np.asarray(clip_labels)).mean())


def text_to_clip_top1(
    clip_emb: np.ndarray, clip_labels: list, text_emb: np.ndarray, text_labels: list
) -> float:
    """Fraction of instructions whose most similar clip (among all clips) shows their task."""
    best = np.asarray(clip_labels)[cosine_matrix(text_emb, clip_emb).argmax(axis=1)]
    return float((best == np.asarray(text_labels)).mean())


def embedder_report(
    clip_emb: np.ndarray,
    clip_labels: list,
    text_emb: np.ndarray,
    text_labels: list,
    para_emb: np.ndarray,
    para_labels: list,
) -> dict[str, float]:
    """All metrics at once: `text_emb` has one canonical instruction per task, `para_emb` all paraphrases."""
    return {
        "text_discriminability": text_discriminability(text_emb),
        "inter_task_visual_similarity": inter_task_similarity(clip_emb, clip_labels),
        "intra_task_visual_similarity": intra_task_similarity(clip_emb, clip_labels),
        "text_to_clip_top1": text_to_clip_top1(clip_emb, clip_labels, text_emb, text_labels),
        "clip_to_text_top1": clip_to_text_top1(clip_emb, clip_labels, text_emb, text_labels),
        "paraphrase_robustness": paraphrase_robustness(para_emb, para_labels),
        "chance_top1": 1.0 / max(len(set(text_labels)), 1),
    }
