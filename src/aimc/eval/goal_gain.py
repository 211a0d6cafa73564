"""How much a trained agent reads its goal: `val/goal_gain` of any bundle on any episode store.

The training loop logs `val/goal_gain` (NLL with the relabelled goal against the same segments with the goal
zeroed, nats per frame) on its own validation split only, and a policy fine-tuned afterwards (DAgger, PPO) has
no validation split at all. `aimc eval goal-gain` measures the same quantity, with the same segments, goals,
labels and chunking as a training preset defines them, for a finished agent on a store it names, so rungs made
by different stages (or runs whose data is gone) are compared on one footing. The interval is over batches of
segments (each batch a mean over its segments), which is what varies when the store is sampled again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.errors import AimcError, ConfigError


@dataclass
class GoalGainConfig:
    """One measurement: a bundle's policy on segments of some stores, cut the way `preset` cuts them."""

    checkpoint: str = ""
    """Agent bundle directory; empty = the shipped agent."""
    data: list[str] = field(default_factory=list)
    """Episode stores to cut segments from (all their episodes; none of them should be training data)."""
    preset: str = "instruct-lstm"
    """Training preset whose segment settings (length, goal source, DART labels, p_uncond, chunking) define
    the segments: the preset the agent was trained with, so the number matches its `val/goal_gain`."""
    overrides: list[str] = field(default_factory=list)
    """key=value overrides on that preset (e.g. segment.goal_source=event_text)."""
    segments: int = 256
    """Segments, evenly spread over the stores' segment index (as the training loop's `val_segments`)."""
    batch_size: int = 8
    """Segments per forward batch; the interval is over these batches."""
    seed: int = 0
    """Seeds the segments' goal draws (paraphrase, unconditional segments) exactly as validation does."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("goal gain needs at least one episode store: pass --data DIR")
        if self.segments < 1 or self.batch_size < 1:
            raise ConfigError(f"segments and batch_size must be >= 1, got {self.segments} and {self.batch_size}")


def measure_goal_gain(cfg: GoalGainConfig, progress: bool = True) -> dict[str, Any]:
    """{"goal_gain", "ci95", "loss", "loss_zero_goal", "segments", "batches", "episodes", ...} for the bundle.

    `goal_gain` is over the segments that carry a goal; `goal_gain_all_segments` also averages in the ones whose
    goal the preset's `p_uncond` draw zeroed (a difference of exactly 0 each), the definition before 2026-12-03."""
    import torch

    from aimc.eval.play import shipped_bundle
    from aimc.train.bundle import AgentBundle

    bundle_dir = Path(cfg.checkpoint) if cfg.checkpoint else shipped_bundle()
    bundle = AgentBundle.read(bundle_dir)
    embedder_ref = bundle.embedder_ref()
    if embedder_ref is None:
        raise AimcError(f"{bundle_dir}: the bundle has no embedder, so its policy reads no goal; goal gain needs a "
                        "goal-conditioned agent")
    threads = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return _measure(cfg, bundle_dir, bundle, embedder_ref, progress)
    finally:
        torch.set_num_threads(threads)


def _measure(cfg: GoalGainConfig, bundle_dir: Path, bundle: Any, embedder_ref: Any, progress: bool) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    from aimc.data.dataset import val_keys
    from aimc.policy import from_pretrained
    from aimc.train.loop import evaluate
    from aimc.train.text_goals import text_goal_segments

    policy = from_pretrained(bundle.policy_dir())
    if policy.config.goal_dim == 0:
        raise AimcError(f"{bundle_dir}: its policy has no goal input; goal gain needs a goal-conditioned agent")
    tc, index, ds = text_goal_segments(cfg.preset, cfg.overrides, cfg.data, embedder_ref, policy.config.goal_dim,
                                       policy.config.img_shape, "goal gain", batch_size=cfg.batch_size)
    keys = val_keys(index, cfg.seed, cfg.segments)
    batches = [keys[i: i + cfg.batch_size] for i in range(0, len(keys), cfg.batch_size)]
    rows = []
    for batch in tqdm(batches, desc="goal gain", unit="batch", disable=not progress):
        res = evaluate(policy, ds, batch, tc, torch.device("cpu"))
        rows.append((res["loss"], res["loss_zero_goal"], len(batch), res["goal_gain"], res["goal_frames"]))
    loss = np.array([r[0] for r in rows])
    zero = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows], float)
    # the gain is over the segments that carry a goal (`evaluate`); a batch whose segments were all drawn
    # unconditional has nothing to say about it
    on = np.array([r[4] for r in rows], float) > 0
    if not on.any():
        raise AimcError("goal gain: no segment drawn carries a goal (each was drawn unconditional, its goal zeroed, "
                        "or could not be read); lower segment.p_uncond or pass more --segments")
    gains = np.array([r[3] for r in rows])[on]
    gw = np.array([r[4] for r in rows], float)[on]
    mean = float(np.average(gains, weights=gw))
    half = _half_width(gains, gw)
    return {
        "checkpoint": str(bundle_dir), "data": list(cfg.data), "preset": cfg.preset, "overrides": list(cfg.overrides),
        "goal_source": sorted(tc.goal_sources()), "segment_len": tc.segment.segment_len, "seed": cfg.seed,
        "goal_gain": mean, "ci95": [mean - half, mean + half],
        "loss": float(np.average(loss, weights=w)), "loss_zero_goal": float(np.average(zero, weights=w)),
        "goal_gain_all_segments": float(np.average(zero - loss, weights=w)),
        "goal_frames": float(gw.sum()),
        "segments": len(keys), "batches": len(rows), "episodes": len(index.episodes),
        "skipped_episodes": len(index.skipped),
    }


def _half_width(values: np.ndarray, weights: np.ndarray) -> float:
    """95 % normal half-width of a weighted mean of independent batch means (0 with a single batch)."""
    if len(values) < 2:
        return 0.0
    mean = np.average(values, weights=weights)
    var = np.average((values - mean) ** 2, weights=weights) * len(values) / (len(values) - 1)
    n_eff = weights.sum() ** 2 / (weights ** 2).sum()
    return float(1.96 * math.sqrt(var / n_eff))


def summary_line(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    return (f"goal gain {r['goal_gain']:.3f} nats/frame [{lo:.3f}, {hi:.3f}] on the segments that carry a goal "
            f"({r['goal_gain_all_segments']:.3f} over all segments; NLL {r['loss']:.3f} with goals, "
            f"{r['loss_zero_goal']:.3f} with goals zeroed; {r['segments']} segments of {r['segment_len']} frames "
            f"from {r['episodes']} episodes)")
