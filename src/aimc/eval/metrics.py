"""Evaluation statistics as pure functions: success intervals, specificity, and the prior-specific metrics.

Definitions are in docs/evaluation.md. Embedder metrics (text discriminability, inter-task visual
similarity, paraphrase robustness, retrieval) live in `aimc.embed.metrics` and are reused, not redefined.
"""

from __future__ import annotations

import math

import numpy as np

from aimc.core.errors import AimcError
from aimc.embed.metrics import cosine_matrix


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial rate (stays inside [0, 1] and is sane at 0/n and n/n)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= n:
        raise AimcError(f"wilson_interval: successes {successes} outside 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def rate_summary(flags: list[bool] | np.ndarray) -> dict[str, float | int]:
    """{"rate", "successes", "n", "ci_low", "ci_high"} for a list of per-episode success flags."""
    flags = np.asarray(flags, dtype=bool)
    k, n = int(flags.sum()), int(flags.size)
    lo, hi = wilson_interval(k, n)
    return {"rate": k / n if n else float("nan"), "successes": k, "n": n, "ci_low": lo, "ci_high": hi}


def median_or_nan(values: list[int] | list[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def specificity(matrix: np.ndarray) -> np.ndarray:
    """Per task j: M[j, j] minus the mean of column j over the other rows (other instructions).

    `matrix[k, j]` = rate at which task j's success predicate holds in episodes prompted with task k.
    Positive = the instruction raises its own event above what other instructions already cause.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise AimcError(f"specificity needs a square prompts x tasks matrix, got shape {m.shape}")
    n = m.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    others = (m.sum(axis=0) - np.diag(m)) / (n - 1)
    return np.diag(m) - others


# ---------------------------------------------------------------------------- prior metrics
def _check(goals: np.ndarray, labels: list | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if np.asarray(goals).ndim != 2 or len(labels) != len(goals):
        raise AimcError(f"expected (N, D) goals with N labels, got {np.shape(goals)} and {len(labels)} labels")
    return labels


def prior_output_collapse(goals: np.ndarray, labels: list | np.ndarray) -> float:
    """Mean cosine between prior outputs for *different* tasks (1.0 = every instruction gives the same goal)."""
    labels = _check(goals, labels)
    sim = cosine_matrix(goals, goals)
    pick = labels[:, None] != labels[None, :]
    return float(sim[pick].mean()) if pick.any() else float("nan")


def centroids(clip_emb: np.ndarray, clip_labels: list | np.ndarray) -> tuple[list, np.ndarray]:
    """(tasks, (T, D) mean clip embedding of each task)."""
    clip_labels = _check(clip_emb, clip_labels)
    tasks = sorted(set(clip_labels.tolist()))
    return tasks, np.stack([np.asarray(clip_emb, dtype=np.float64)[clip_labels == t].mean(axis=0) for t in tasks])


def goal_accuracy(goals: np.ndarray, labels: list | np.ndarray, clip_emb: np.ndarray, clip_labels: list) -> float:
    """Fraction of goals whose most similar task centroid (cosine) is their own task's."""
    labels = _check(goals, labels)
    tasks, cents = centroids(clip_emb, clip_labels)
    missing = sorted(set(labels.tolist()) - set(tasks))
    if missing:
        raise AimcError(f"goal_accuracy: no clips for task(s) {missing}")
    best = np.asarray(tasks)[cosine_matrix(goals, cents).argmax(axis=1)]
    return float((best == labels).mean())


def goal_discriminability(goals: np.ndarray, labels: list | np.ndarray, clip_emb: np.ndarray, clip_labels: list) -> float:
    """Mean cosine to the own task's centroid minus mean cosine to the other tasks' centroids."""
    labels = _check(goals, labels)
    tasks, cents = centroids(clip_emb, clip_labels)
    sim = cosine_matrix(goals, cents)  # (N, T)
    own = np.asarray(tasks)[None, :] == labels[:, None]
    if not own.any(axis=1).all():
        raise AimcError("goal_discriminability: some goals' tasks have no clips")
    if len(tasks) < 2:
        return float("nan")
    return float(sim[own].mean() - sim[~own].mean())
