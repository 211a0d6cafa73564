"""The auxiliary BC loss of a PPO run (`PPOConfig.bc`): demonstrator segments cloned at every optimiser step.

The segments are cut, relabelled and labelled exactly as the BC trainer does for the configured training preset
(`aimc.data.dataset.SegmentDataset`: text goals from the bundle's own embedder, DART labels, unconditional
segments), and replayed in the preset's `trunc_t` chunks with the recurrent state carried, so the term is the
training loss the starting policy minimised. Which segments an optimiser step sees is a function of (seed,
iteration, step), so a resumed run draws the same ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.seeding import derive_seed
from aimc.finetune.ppo_config import BCAuxConfig


class BCStream:
    """Demonstration segments for the auxiliary loss and the loss itself."""

    def __init__(self, cfg: BCAuxConfig, embedder_ref: str | Path, goal_dim: int, img_shape: tuple[int, int],
                 seed: int) -> None:
        from aimc.train.text_goals import text_goal_segments

        self.tc, self.index, self.dataset = text_goal_segments(cfg.preset, cfg.overrides, cfg.data, embedder_ref,
                                                               goal_dim, img_shape, "bc.data")
        self.cfg, self.seed = cfg, seed

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
