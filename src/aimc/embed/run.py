"""Library side of `aimc embed` and `aimc eval embedder`: per-episode goal embeddings and quality metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import EpisodeError
from aimc.data.index import Skipped
from aimc.data.store import Episode, list_episodes
from aimc.embed.base import Embedder
from aimc.embed.captions import CAPTIONS, instruction, paraphrases
from aimc.embed.clips import load_clips
from aimc.embed.metrics import embedder_report, text_discriminability


def embed_dataset(
    embedder: Embedder, data: str | Path, name: str, overwrite: bool = False, progress: bool = True,
    skipped: Skipped | None = None,
) -> dict[str, Any]:
    """Write `embeds_<name>.npy` (float16 (T, D)) + mask into each episode; episodes already done are skipped.

    A damaged episode goes to `skipped` (default: reported on stderr, the rest are embedded; a strict one
    raises) and is never written to. Temp files of a killed earlier run are removed from the episodes it
    embeds. Returns counts plus `skipped` (how many damaged) and `skipped_by_reason`.
    """
    from tqdm.auto import tqdm

    skipped = Skipped() if skipped is None else skipped
    paths = list_episodes(data)
    done = existing = 0
    for path in tqdm(paths, desc=f"embed {name}", unit="episode", disable=not progress):
        try:
            ep = Episode(path)
            ep.remove_stale_embeds_tmp(name)
            if ep.has_embeds(name) and not overwrite:
                existing += 1
                continue
            frames = ep.frames()
        except EpisodeError as e:
            skipped.add_error(path, e)
            continue
        emb, mask = embedder.window_embeddings(frames)
        ep.write_embeds(name, emb.numpy(), mask.numpy())
        done += 1
    return {"episodes": len(paths), "embedded": done, "skipped_existing": existing, "skipped": len(skipped),
            "skipped_by_reason": skipped.counts()}


def evaluate_embedder(
    embedder: Embedder,
    data: str | Path,
    max_clips_per_task: int = 50,
    nothing_per_episode: int = 2,
    seed: int = 0,
    episodes: list[Path] | None = None,
    skipped: Skipped | None = None,
) -> dict[str, Any]:
    """Cut captioned clips from `data` (or `episodes`), embed clips and instructions, compute every metric.

    Tasks are the events present in the clips; `text` uses each task's canonical instruction and
    `paraphrase_robustness` all of its paraphrases. Damaged episodes go to `skipped` (default: reported on
    stderr and left out); the report counts them (`skipped_episodes`, `skipped_by_reason`).
    """
    skipped = Skipped() if skipped is None else skipped
    clips = load_clips(episodes if episodes is not None else list_episodes(data), nothing_per_episode, seed,
                       skipped=skipped)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(idx)[:max_clips_per_task] for idx in clips.by_task().values()])
    keep.sort()
    labels = [clips.labels[i] for i in keep]
    clip_emb = torch.cat(
        [embedder.encode_clips(clips.frames[keep[i : i + 32]]) for i in range(0, len(keep), 32)]
    )
    tasks = sorted(set(labels))
    text_emb = embedder.encode_text([instruction(t) for t in tasks])
    para = [(t, p) for t in tasks for p in paraphrases(t)]
    para_emb = embedder.encode_text([p for _, p in para])
    report = embedder_report(
        clip_emb.numpy(), labels, text_emb.numpy(), tasks, para_emb.numpy(), [t for t, _ in para]
    )
    # Text discriminability over the whole catalogue too: it needs no clips, and the seeds quote it that way.
    all_tasks = list(CAPTIONS)

    report["text_discriminability_all_tasks"] = text_discriminability(
        embedder.encode_text([instruction(t) for t in all_tasks]).numpy()
    )
    report["clips"] = len(labels)
    report["tasks"] = len(tasks)
    report["clips_per_task"] = {t: labels.count(t) for t in tasks}
    report["skipped_episodes"] = len(skipped)
    report["skipped_by_reason"] = skipped.counts()
    return report
