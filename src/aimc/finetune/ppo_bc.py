"""The auxiliary BC loss of a PPO run (`PPOConfig.bc`): demonstrator segments cloned at every optimiser step.

The segments are cut, relabelled and labelled exactly as the BC trainer does for the configured training preset
(`aimc.data.dataset.SegmentDataset`: text goals from the bundle's own embedder, DART labels, unconditional
segments), and replayed in the preset's `trunc_t` chunks with the recurrent state carried, so the term is the
training loss the starting policy minimised. Which segments an optimiser step sees is a function of (seed,
iteration, step), so a resumed run draws the same ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError, ConfigError
from aimc.core.seeding import derive_seed
from aimc.finetune.ppo_config import BCAuxConfig


class BCStream:
    """Demonstration segments for the auxiliary loss and the loss itself."""

    def __init__(self, cfg: BCAuxConfig, embedder_ref: str | Path, goal_dim: int, img_shape: tuple[int, int],
                 seed: int) -> None:
        from aimc.data.dataset import SegmentDataset, build_segment_index
        from aimc.data.index import DatasetIndex, Skipped
        from aimc.embed.base import make_embedder
        from aimc.train.config import load_train_config
        from aimc.train.text_goals import build_text_goal_table

        with tempfile.TemporaryDirectory() as scratch:  # the train config wants an out dir; nothing goes there
            tc = load_train_config(cfg.preset, cfg.overrides, out=scratch, embedder=str(embedder_ref),
                                   data=[{"path": p} for p in cfg.data])
        if tc.goal_sources() == {"visual"}:
            raise ConfigError(f"bc.preset {cfg.preset!r} relabels with visual goals; the auxiliary BC loss reads text "
                              "goals (set bc.overrides: [segment.goal_source=intention])")
        skipped = Skipped(echo=None)
        parts = []
        for path in cfg.data:
            idx = DatasetIndex.scan(path, check_video=False, skipped=skipped)
            if len(idx) == 0:
                raise AimcError(f"bc.data {path} holds no valid episodes; run `aimc collect --out {path}` first")
            parts.append((idx.episodes, 1.0, None))
        self.index = build_segment_index(parts, tc.segment, skipped)
        if len(self.index) == 0:
            raise AimcError(f"bc.data: no usable segments of {tc.segment.segment_len} frames ({skipped.summary()})")
        table = build_text_goal_table(make_embedder(embedder_ref, device="cpu"), tc.segment, tc.goal_sources())
        if table.dim != goal_dim:
            raise AimcError(f"bc: the bundle's embedder gives {table.dim}-d goals but the policy reads {goal_dim}-d")
        self.dataset = SegmentDataset(self.index, tc.segment, img_shape, None, None, table)
        self.cfg, self.tc, self.seed = cfg, tc, seed

    def batch(self, k: int, step: int) -> dict[str, Any]:
        """The collated segments of optimiser step `step` of iteration `k` (drawn by the index's weights)."""
        from aimc.data.dataset import collate_segments

        rng = np.random.default_rng(derive_seed(self.seed, "ppo-bc", k, step))
        rows = rng.choice(len(self.index), size=self.cfg.segments, p=self.index.weights)
        keys = [(int(r), derive_seed(self.seed, "ppo-bc-item", k, step, i)) for i, r in enumerate(rows)]
        return collate_segments([self.dataset[key] for key in keys])

    def loss(self, policy: Any, batch: dict[str, Any], device: str) -> torch.Tensor:
        """Mean per-frame NLL of the batch (chunks of `trunc_t`, state carried detached), with its graph."""
        from aimc.data.dataset import ACTION, FIRST, GOAL, OK, POV, STEP_OK
        from aimc.train.objectives import bc_loss, head_targets

        w = batch[OK].to(device)
        step_ok = batch[STEP_OK].to(device)
        targets = head_targets(batch[ACTION], policy.config.head_sizes)
        state, total = None, torch.zeros((), device=device)
        chunks = self.tc.chunks_per_segment
        for c in range(chunks):
            sl = slice(c * self.tc.trunc_t, (c + 1) * self.tc.trunc_t)
            out, state = policy(batch[POV][:, sl].to(device), batch[GOAL][:, sl].to(device),
                                batch[FIRST][:, sl].to(device), state)
            terms = bc_loss(out, {h: t[:, sl].to(device) for h, t in targets.items()}, w, self.tc.camera_mask,
                            step_ok[:, sl])
            total = total + terms["loss"] / chunks
            state = state.detach()
        return total
