"""The text goal table a training run reads: caption paraphrases embedded by the run's embedder.

`aimc.data.text_goals` decides which instruction a timestep serves; this module turns instructions into goal
vectors with the *same* embedder whose text side the agent uses at play time, so a prompt typed by a user lands
where training put the goals. The table is written once into the run directory (``text_goals.npz``) and read
from there on resume, so a resumed run never re-embeds with a changed embedder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.errors import ConfigError
from aimc.data.config import SegmentConfig
from aimc.data.text_goals import TextGoalTable

TABLE_FILE = "text_goals.npz"


def caption_sets(cfg: SegmentConfig, sources: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Name -> paraphrases for the run's goal sources (default: `cfg.goal_source`): event captions (minus
    `anchor_ignore` events, which are not instructions) and/or the demonstrator's intentions. With both (a store
    whose goal source overrides the run's), intentions only add names the event captions lack and that are not
    in `anchor_ignore`, so event-text goals see the same known events as without them."""
    from aimc.embed.captions import CAPTIONS, INTENTIONS, NOTHING

    wanted = {cfg.goal_source} if sources is None else set(sources)
    out: dict[str, tuple[str, ...]] = {}
    if "event_text" in wanted:
        out = {k: v for k, v in CAPTIONS.items() if k != NOTHING and k not in cfg.anchor_ignore}
    if "intention" in wanted:
        if not out:
            return dict(INTENTIONS)
        out.update({k: v for k, v in INTENTIONS.items() if k not in out and k not in cfg.anchor_ignore})
    if not out:
        raise ConfigError(f"goal_source {cfg.goal_source!r} uses no text goals")
    return out


def build_text_goal_table(embedder: Any, cfg: SegmentConfig, sources: Iterable[str] | None = None) -> TextGoalTable:
    """Embed every paraphrase of every name in one batch with the embedder's text side."""
    sets = caption_sets(cfg, sources)
    texts = [t for v in sets.values() for t in v]
    emb = np.asarray(embedder.encode_text(texts), np.float32)  # (sum P, D)
    out: dict[str, np.ndarray] = {}
    i = 0
    for name, paraphrases in sets.items():
        out[name] = emb[i : i + len(paraphrases)]
        i += len(paraphrases)
    return TextGoalTable(out)


def run_text_goal_table(run_dir: str | Path, embedder_path: str | None, cfg: SegmentConfig, device: str = "cpu",
                        sources: Iterable[str] | None = None) -> TextGoalTable | None:
    """The run's table: read from the run dir, else built from `embedder_path` and saved (atomically).
    `sources`: every goal source of the run's data (default: `cfg.goal_source` alone)."""
    wanted = {cfg.goal_source} if sources is None else set(sources)
    if wanted <= {"visual"}:
        return None
    path = Path(run_dir) / TABLE_FILE
    if path.is_file():
        return TextGoalTable.load(path)
    if not embedder_path:
        source = sorted(wanted - {"visual"})[0]
        raise ConfigError(f"segment.goal_source={source!r} needs `embedder` (its text side embeds the goals)")
    from aimc.embed.base import make_embedder

    table = build_text_goal_table(make_embedder(embedder_path, device=device), cfg, wanted)
    table.save(path)
    return table


def text_goal_segments(preset: str, overrides: list[str], stores: list[str], embedder_ref: str | Path, goal_dim: int,
                       img_shape: tuple[int, int], what: str, **fields: Any) -> tuple[Any, Any, Any]:
    """(train config, segment index, dataset) for scoring or cloning an existing agent on demonstration stores:
    every episode of `stores`, cut, relabelled with text goals from the agent's own embedder (`embedder_ref`),
    and labelled as training preset `preset` (+ `overrides`, `fields`) does. `what` names the caller in the one-line
    errors (an empty store, no usable segment, a visual-goal preset, an embedder of the wrong width)."""
    from aimc.core.errors import AimcError
    from aimc.data.dataset import SegmentDataset, build_segment_index
    from aimc.data.index import DatasetIndex, Skipped
    from aimc.embed.base import make_embedder
    from aimc.train.config import load_train_config

    tc = load_train_config(preset, overrides, embedder=str(embedder_ref), data=[{"path": p} for p in stores], **fields)
    if tc.goal_sources() == {"visual"}:
        raise ConfigError(f"{what}: preset {preset!r} relabels with visual goals; this reads text goals "
                          "(override segment.goal_source=intention or event_text)")
    skipped = Skipped(echo=None)
    parts = []
    for path in stores:
        idx = DatasetIndex.scan(path, check_video=False, skipped=skipped)
        if len(idx) == 0:
            raise AimcError(f"{what}: {path} holds no valid episodes; run `aimc collect --out {path}` first")
        parts.append((idx.episodes, 1.0, None))
    index = build_segment_index(parts, tc.segment, skipped)
    if len(index) == 0:
        raise AimcError(f"{what}: no usable segments of {tc.segment.segment_len} frames in {', '.join(stores)} "
                        f"({skipped.summary()})")
    table = build_text_goal_table(make_embedder(embedder_ref, device="cpu"), tc.segment, tc.goal_sources())
    if table.dim != goal_dim:
        raise AimcError(f"{what}: the bundle's embedder gives {table.dim}-d goals but its policy reads {goal_dim}-d")
    return tc, index, SegmentDataset(index, tc.segment, img_shape, None, None, table)
