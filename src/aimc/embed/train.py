"""Train the video-text embedder on auto-captioned clips: symmetric InfoNCE, resumable checkpoints.

Batches are task-balanced (task drawn uniformly, then a clip of it, then one of its paraphrases), so
most negatives in a batch are clips and captions of *other* tasks. Several clips of one task may share
a batch: the targets then spread over all same-task pairs instead of punishing them as negatives.

Training to convergence: every `checkpoint_every` steps the held-out episodes are scored (clip->text top-1,
inter-task visual similarity, text discriminability; metrics.jsonl and TensorBoard), the best top-1 so far is
kept in `best/`, and `early_stop_patience` validations without a gain end the run. `model/` is then the best
checkpoint, not the last: a longer run never ships a worse embedder than a shorter one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.checkpoint import load_strict, read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError
from aimc.core.io import atomic_dir
from aimc.core.rundir import RunDir
from aimc.core.seeding import seed_everything
from aimc.data.index import DatasetIndex, Skipped
from aimc.embed.base import WINDOW
from aimc.embed.captions import instruction, paraphrases
from aimc.embed.clips import ClipSet, load_clips
from aimc.embed.config import EmbedderTrainConfig, VideoTextConfig
from aimc.embed.videotext import VideoTextEmbedder, VideoTextModel

TRAIN_CONFIG = "train_config.json"
BEST = "best"
"""The best validated model so far (a `make_embedder` directory), next to checkpoints/."""
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "early_stop_patience", "min_delta")
"""Settings a resumed run may change (`aimc.core.rundir`); anything else must match the saved config."""


def contrastive_loss(
    video: torch.Tensor, text: torch.Tensor, labels: np.ndarray, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over (B, D) x (B, D) unit vectors; same-label pairs share the target mass."""
    logits = scale * video @ text.T  # (B, B)
    same = torch.as_tensor(labels[:, None] == labels[None, :], dtype=logits.dtype, device=logits.device)
    targets = same / same.sum(dim=1, keepdim=True)
    loss_v = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(targets.T * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_v + loss_t)


def sample_batch(
    clips: ClipSet, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (clip indices, labels, one paraphrase per clip), tasks drawn uniformly."""
    groups = clips.by_task()
    tasks = list(groups)
    chosen = rng.choice(len(tasks), size=batch_size)
    idx = np.array([rng.choice(groups[tasks[c]]) for c in chosen])
    labels = np.asarray(clips.labels)[idx]
    texts = [str(rng.choice(paraphrases(label))) for label in labels]
    return idx, labels, texts


def _lr_at(step: int, cfg: EmbedderTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


@torch.no_grad()
def validate(emb: VideoTextEmbedder, clips: ClipSet) -> dict[str, float]:
    """Loss-free held-out check: clip->text top-1 against one canonical instruction per task, and the two
    separation metrics the issue targets (`aimc.embed.metrics`)."""
    from aimc.embed.metrics import inter_task_similarity, text_discriminability

    tasks = clips.tasks()
    text = emb.encode_text([instruction(t) for t in tasks])
    feats = torch.cat([emb.encode_clips(clips.frames[i : i + 64]) for i in range(0, len(clips), 64)])
    pred = np.asarray(tasks)[(feats @ text.T).argmax(dim=1).numpy()]
    return {
        "val/clip_to_text_top1": float((pred == np.asarray(clips.labels)).mean()),
        "val/inter_task_visual_similarity": inter_task_similarity(feats.numpy(), clips.labels),
        "val/text_discriminability": text_discriminability(text.numpy()),
        "val/clips": len(clips),
    }


def _run_dir(cfg: EmbedderTrainConfig) -> RunDir:
    """checkpoints/step_<7 digits>/ (all kept: they are small), `last`, metrics.jsonl, train_config.json."""
    return RunDir(cfg.out, resumable=RESUMABLE_CHANGES, config_file=TRAIN_CONFIG, step_digits=7)


def _checkpoint(run: RunDir, step: int, model: VideoTextModel, opt: torch.optim.Optimizer,
                stop: dict[str, float]) -> None:
    with run.checkpoint(step) as tmp:
        save_model_dir(tmp, VideoTextEmbedder.name, to_dict(model.cfg), model.state_dict())
        (tmp / "train_state").mkdir()
        torch.save({"optimizer": opt.state_dict(), "step": step, **{k: torch.tensor(float(v)) for k, v in stop.items()}},
                   tmp / "train_state" / "state.pt")


def _fresh_stop() -> dict[str, float]:
    """Early-stopping state: best held-out top-1, the step it was reached at, validations since."""
    return {"best_top1": -1.0, "best_step": 0, "bad": 0}


def _resume(run: RunDir, model: VideoTextModel, opt: torch.optim.Optimizer) -> tuple[int, dict[str, float]]:
    ckpt = run.latest()
    if ckpt is None:
        return 0, _fresh_stop()
    _, tensors = read_model_dir(ckpt, VideoTextEmbedder.name)
    load_strict(model, tensors, str(ckpt))
    state = torch.load(ckpt / "train_state" / "state.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    stop = {k: float(state[k]) for k in _fresh_stop() if k in state}  # checkpoints of older versions lack them
    return int(state["step"]), {**_fresh_stop(), **stop}


def train_embedder(cfg: EmbedderTrainConfig, progress: bool = True, skipped: Skipped | None = None) -> dict[str, Any]:
    """Train (or resume) and write `out/model` (a `make_embedder`-loadable directory); returns a summary.

    Damaged or too-short episodes go to `skipped` (default: reported on stderr and left out; a strict one
    raises); the summary counts them (`skipped_episodes`, `skipped_by_reason`).
    """
    seed_everything(cfg.seed)
    rundir = _run_dir(cfg)
    cfg = rundir.start(cfg)  # a run dir resumes only with the same config (steps may grow)
    run = rundir.path
    skipped = Skipped() if skipped is None else skipped
    index = DatasetIndex.scan(cfg.data, min_length=WINDOW, check_video=False, skipped=skipped)
    if len(index) < 2:
        dropped = f" ({skipped.summary()})" if skipped else ""
        raise AimcError(
            f"{cfg.data} has {len(index)} usable episodes{dropped}; training needs at least 2 (collect more)"
        )
    train_idx, val_idx = index.split(cfg.val_fraction, cfg.seed) if cfg.val_fraction > 0 else (index, None)
    train = load_clips(
        train_idx.episodes, cfg.nothing_per_episode, cfg.seed, cfg.max_clips_per_task_per_episode, skipped
    )
    val = (
        load_clips(
            val_idx.episodes, cfg.nothing_per_episode, cfg.seed + 1, cfg.max_clips_per_task_per_episode, skipped
        )
        if val_idx and len(val_idx)
        else None
    )

    device = None if cfg.device == "auto" else cfg.device
    emb = VideoTextEmbedder(VideoTextConfig(**to_dict(cfg.model)), device=device)
    model = emb.model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, stop = _resume(rundir, model, opt)
    rundir.trim_metrics(start)
    all_texts = sorted({p for t in train.tasks() for p in paraphrases(t)})
    sentence = dict(zip(all_texts, emb.sentence_features(all_texts), strict=True))

    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    writer = SummaryWriter(str(run / "tensorboard"), purge_step=start + 1)
    bar = tqdm(total=cfg.steps, initial=start, desc="train embedder", disable=not progress, unit="step")
    losses: list[float] = []
    stopped = _patience_spent(cfg, stop)
    done = start
    model.train()
    for step in range(start, cfg.steps if not stopped else start):
        rng = np.random.default_rng([cfg.seed, step])  # batch depends only on (seed, step): resume-exact
        idx, labels, texts = sample_batch(train, cfg.batch_size, rng)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        frames = torch.as_tensor(train.frames[idx]).to(emb.device)  # (B, 16, H, W, 3) uint8
        b = frames.shape[0]
        x = frames.flatten(0, 1).movedim(-1, 1).float().div_(255.0)  # (B*16, 3, H, W)
        video = model.video(model.frames(x).view(b, WINDOW, -1))  # (B, D)
        text = model.text(torch.stack([sentence[t] for t in texts]))  # (B, D)
        loss = contrastive_loss(video, text, labels, model.scale())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", temp=f"{1 / model.scale().item():.3f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            record: dict[str, Any] = {
                "step": done,
                "train/loss": float(np.mean(losses[-cfg.checkpoint_every :])),
            }
            if val is not None:
                model.eval()
                record.update(validate(emb, val))
                model.train()
                if record["val/clip_to_text_top1"] > stop["best_top1"] + cfg.min_delta:
                    stop.update(best_top1=record["val/clip_to_text_top1"], best_step=done, bad=0)
                    with atomic_dir(run / BEST, overwrite=True) as tmp:
                        emb.save_pretrained(tmp)
                else:
                    stop["bad"] += 1
                record["val/best_clip_to_text_top1"] = stop["best_top1"]
            rundir.log(record)
            for k, v in record.items():
                if k != "step":
                    writer.add_scalar(k, v, done)
            writer.add_scalar("train/temperature", 1.0 / model.scale().item(), done)
            writer.flush()
            _checkpoint(rundir, done, model, opt, stop)
            if _patience_spent(cfg, stop):
                stopped = True
                break
    bar.close()
    writer.close()
    model.eval()
    if val is not None and (run / BEST).is_dir():
        # Early stopping's rule: ship the best validated weights, not the last.
        emb = VideoTextEmbedder.from_pretrained(run / BEST, device=str(emb.device))
    with atomic_dir(run / "model", overwrite=True) as tmp:
        emb.save_pretrained(tmp)
    summary = {
        "steps": cfg.steps,
        "trained_to": done,
        "early_stopped": stopped,
        "best_step": int(stop["best_step"]),
        "resumed_from": start,
        "train_clips": len(train),
        "tasks": train.tasks(),
        "val_clips": len(val) if val is not None else 0,
        "model": str(run / "model"),
        "skipped_episodes": len(skipped),
        "skipped_by_reason": skipped.counts(),
    }
    if losses:
        summary["first_loss"], summary["last_loss"] = losses[0], float(np.mean(losses[-10:]))
    if val is not None:
        summary.update(validate(emb, val))
    return summary


def _patience_spent(cfg: EmbedderTrainConfig, stop: dict[str, float]) -> bool:
    return bool(cfg.early_stop_patience) and stop["bad"] >= cfg.early_stop_patience


def load_train_config(path: str | Path) -> EmbedderTrainConfig:
    return from_dict(EmbedderTrainConfig, json.loads(Path(path).read_text()), where=str(path))
