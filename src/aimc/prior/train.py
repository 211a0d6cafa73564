"""Training a goal predictor (`aimc train prior --kind cvae|aligner`) on (instruction, clip embedding) pairs.

Pairs: every captioned 16-frame clip of an episode store (`aimc.embed.clips`), and of the `task_data` stores, is
embedded once and paired with *each* paraphrase of its caption (the string, its text embedding, and the embedding of
the task's canonical instruction), so the predictor sees the wording variety users type. Every kind trains through
its own `loss` on the same pairs (`aimc.prior.base`). The CVAE recipe (AdamW 1e-4, batch 256, beta = 1 with summed
KL, keep the best validation loss) is STEVE-1's. The run directory follows `aimc.core.rundir`: `train_config.json`, `checkpoints/step_<epochs>/
train_state.pt` (resume point, tensors only) + `checkpoints/last`, `metrics.jsonl` (one row per epoch), and
besides those `pairs.npz` (cached, keyed by everything that shapes it), `summary.json` and the best model in
`prior/`. Run dirs of older versions (`train_state.pt`, `log.jsonl` at the top) are moved into this layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError, ConfigError
from aimc.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from aimc.core.rundir import RunDir, read_jsonl
from aimc.core.seeding import seed_everything
from aimc.data.index import Skipped
from aimc.prior.base import GOAL_SPACE_FILE, GoalPredictor, embedder_identity, pair_targets, train_step
from aimc.prior.config import PriorTrainConfig
from aimc.prior.cvae import CVAEPrior, PriorConfig

STATE_FILE = "train_state.pt"
"""Inside each checkpoint (and, in run dirs of older versions, at the top)."""
LEGACY_LOG = "log.jsonl"
PAIRS_FILE = "pairs.npz"
PAIRS_FORMAT = 2
"""Bump when build_pairs changes what it produces, so cached pairs are rebuilt."""
RESUMABLE_CHANGES = ("out", "epochs", "val_pairs", "nothing_per_episode", "max_clips_per_task", "device", "task_data")
"""Settings a resumed run may change (`aimc.core.rundir`); changed clip settings rebuild pairs.npz."""


def build_pairs(
    embedder: Any, episodes: list[Path], nothing_per_episode: int, max_clips_per_task: int, seed: int,
    skipped: Skipped | None = None,
) -> dict[str, np.ndarray]:
    """Embed captioned clips and all paraphrases of their captions -> {"text", "visual", "label", "phrase", "canon"}
    arrays (`canon`: the text embedding of the label's canonical instruction, the target for text-goal policies).

    A damaged episode raises, or with `skipped` is left out there (reported, counted)."""
    from aimc.embed.captions import instruction, paraphrases
    from aimc.embed.clips import load_clips

    clips = load_clips(episodes, nothing_per_episode=nothing_per_episode, seed=seed, skipped=skipped)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(i)[:max_clips_per_task] for i in clips.by_task().values()]))
    labels = [clips.labels[i] for i in keep]
    visual = torch.cat([embedder.encode_clips(clips.frames[keep[i : i + 32]]) for i in range(0, len(keep), 32)])
    tasks = sorted(set(labels))
    texts = {t: embedder.encode_text(list(paraphrases(t))).float().cpu().numpy() for t in tasks}
    canon = {t: embedder.encode_text([instruction(t)]).float().cpu().numpy()[0] for t in tasks}
    t_rows, v_rows, l_rows, p_rows = [], [], [], []
    for row, label in enumerate(labels):
        for phrase, emb in zip(paraphrases(label), texts[label], strict=True):
            t_rows.append(emb)
            v_rows.append(visual[row].float().cpu().numpy())
            l_rows.append(label)
            p_rows.append(phrase)
    return {
        "text": np.stack(t_rows).astype(np.float32),
        "visual": np.stack(v_rows).astype(np.float32),
        "label": np.asarray(l_rows),
        "phrase": np.asarray(p_rows),
        "canon": np.stack([canon[label] for label in l_rows]).astype(np.float32),
    }


def save_pairs(path: Path, pairs: dict[str, np.ndarray], key: dict[str, Any] | None = None) -> None:
    """Write pairs atomically; `key` (what built them, see `pairs_key`) is stored inside the same file."""
    import io

    buf = io.BytesIO()
    extra = {} if key is None else {"key": np.asarray(json.dumps(key, sort_keys=True))}
    extra.update({k: pairs[k] for k in ("canon",) if k in pairs})
    extra.update({k: np.asarray(pairs[k]).astype(str) for k in ("phrase",) if k in pairs})
    np.savez(buf, text=pairs["text"], visual=pairs["visual"], label=pairs["label"].astype(str), **extra)
    atomic_write_bytes(path, buf.getvalue())


def read_pairs_key(path: Path) -> dict[str, Any] | None:
    """The key a pairs file was built with (None for hand-made pairs or pairs of older versions)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["key"])) if "key" in z.files else None


def goal_space(cfg: PriorTrainConfig) -> dict[str, str]:
    return {"embedder": embedder_identity(cfg.embedder), "target": cfg.target}


def pairs_key(cfg: PriorTrainConfig, episodes: list[Path] | None,
              task_episodes: list[list[str]] | None = None) -> dict[str, Any]:
    """Every setting that shapes the pairs; a cached pairs.npz is reused only under an equal key.

    `device` is left out on purpose: it moves the embeddings' last bits, not which clips and captions pair.
    """
    return {
        "format": PAIRS_FORMAT,
        "data": str(Path(cfg.data).resolve()),
        "task_data": [str(Path(d).resolve()) for d in cfg.task_data],
        "task_episodes": task_episodes or [],
        "episodes": None if episodes is None else [p.name for p in episodes],
        "embedder": embedder_identity(cfg.embedder),
        "nothing_per_episode": cfg.nothing_per_episode,
        "max_clips_per_task": cfg.max_clips_per_task,
        "seed": cfg.seed,
    }


def load_pairs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        pairs = {k: z[k] for k in ("text", "visual", "label", "phrase", "canon") if k in z.files}
        missing = [k for k in ("text", "visual", "label") if k not in pairs]
    if missing:
        raise AimcError(f"{path}: pairs file lacks {missing} (needs text, visual, label arrays)")
    if pairs["text"].shape != pairs["visual"].shape or pairs["text"].ndim != 2:
        raise AimcError(f"{path}: text and visual arrays must both be (N, D), got {pairs['text'].shape}, {pairs['visual'].shape}")
    return pairs


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


@torch.no_grad()
def _evaluate(model: GoalPredictor, inputs: dict[str, torch.Tensor], rows: np.ndarray, cfg: PriorTrainConfig) -> dict[str, float]:
    """The loss terms on held-out rows, with a fixed sampling seed (comparable across epochs)."""
    model.eval()
    dev = next(iter(inputs.values())).device
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    terms = []
    for i in range(0, len(rows), 4096):  # bounded memory for large validation sets
        ix = torch.from_numpy(rows[i : i + 4096]).to(dev)
        out = model.loss({k: v[ix] for k, v in inputs.items()}, cfg, generator=gen)
        terms.append({k: float(v) * len(ix) for k, v in out.items()})
    model.train()
    return {k: sum(t[k] for t in terms) / len(rows) for k in terms[0]}


def build_predictor(cfg: PriorTrainConfig, in_dim: int, out_dim: int) -> GoalPredictor:
    """A fresh predictor of `cfg.kind` for text embeddings of width `in_dim` and goals of width `out_dim`."""
    if cfg.kind == "cvae":
        if in_dim != out_dim:
            raise AimcError(f"a CVAE prior maps D-d text embeddings to D-d goals; got {in_dim} -> {out_dim}")
        return CVAEPrior(PriorConfig(input_dim=in_dim, hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim)).to(cfg.device)
    import dataclasses

    from aimc.prior.aligner import Aligner

    return Aligner(dataclasses.replace(cfg.aligner, out_dim=out_dim), device=cfg.device)


def _weights(model: GoalPredictor) -> dict[str, torch.Tensor]:
    """What a checkpoint holds: the trained weights (an aligner's frozen backbone is named by its config)."""
    return model.trainable_state() if hasattr(model, "trainable_state") else dict(model.state_dict())


def train_prior(cfg: PriorTrainConfig, pairs: dict[str, np.ndarray] | None = None, progress: bool = True,
                skipped: Skipped | None = None) -> dict[str, Any]:
    """Train (or resume) a goal predictor of `cfg.kind`; `pairs` bypasses clip cutting (tests, precomputed pairs).

    Returns the summary written to `summary.json`: first/last train loss, best validation loss and epoch, and
    the episodes left out while cutting clips this time (`skipped_episodes`, `skipped_by_reason`; damaged
    ones go to `skipped`, default: reported on stderr; cached pairs read no episodes).
    """
    from tqdm.auto import tqdm

    rundir = RunDir(cfg.out, resumable=RESUMABLE_CHANGES)
    cfg = rundir.start(cfg)
    out = rundir.path
    _migrate_legacy(rundir)
    seed_everything(cfg.seed)

    skipped = Skipped() if skipped is None else skipped
    if pairs is None:
        pairs = _pairs_for(cfg, out, skipped)
    n = len(pairs["text"])
    n_val = min(cfg.val_pairs, n // 5)
    if n - n_val < 2:
        raise AimcError(f"only {n} (text, clip) pairs; the prior needs more captioned clips (collect more episodes)")
    perm = np.random.default_rng(cfg.seed).permutation(n)
    train_rows, val_rows = perm[: n - n_val], (perm[n - n_val :] if n_val else perm[: n - n_val])
    target = pair_targets(pairs, cfg.target)

    model = build_predictor(cfg, pairs["text"].shape[1], target.shape[1])
    model.eval()  # inputs (an aligner's cached hidden states) are read without dropout
    inputs = model.training_inputs(pairs, target)
    model.train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=cfg.lr)
    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "first_loss": None}
    ckpt = rundir.latest()
    if ckpt is not None:
        saved_state = torch.load(ckpt / STATE_FILE, map_location=cfg.device, weights_only=True)
        model.load_state_dict({**model.state_dict(), **saved_state["model"]}, strict=True)
        opt.load_state_dict(saved_state["optim"])
        state = {k: saved_state[k].item() for k in ("epoch", "best_val", "best_epoch", "first_loss")}
        state["epoch"], state["best_epoch"] = int(state["epoch"]), int(state["best_epoch"])
        if np.isnan(state["first_loss"]):
            state["first_loss"] = None
    rundir.trim_metrics(state["epoch"])

    gen = torch.Generator(device=cfg.device)
    last_loss = float("nan")
    bar = tqdm(range(state["epoch"], cfg.epochs), desc=f"train {cfg.kind}", unit="epoch", disable=not progress)
    for epoch in bar:
        rng = np.random.default_rng([cfg.seed, epoch])
        gen.manual_seed(cfg.seed * 100003 + epoch)
        losses = [train_step(model, opt, inputs, train_rows[idx], cfg, gen)
                  for idx in _batches(len(train_rows), cfg.batch_size, rng)]
        last_loss = float(np.mean(losses))
        if state["first_loss"] is None:
            state["first_loss"] = last_loss
        val = _evaluate(model, inputs, val_rows, cfg)
        if val["loss"] < state["best_val"]:
            state["best_val"], state["best_epoch"] = val["loss"], epoch
            model.save_pretrained(out / "prior")
            if cfg.embedder:
                atomic_write_json(out / "prior" / GOAL_SPACE_FILE, goal_space(cfg))
        state["epoch"] = epoch + 1
        rundir.log({"step": epoch + 1, "epoch": epoch, "train/loss": last_loss, **{f"val/{k}": v for k, v in val.items()}})
        with rundir.checkpoint(epoch + 1, keep=1) as tmp:
            _save_state(tmp / STATE_FILE, model, opt, state)
        bar.set_postfix(loss=f"{last_loss:.4f}", val=f"{val['loss']:.4f}")

    summary = {"kind": cfg.kind, "target": cfg.target, "pairs": n, "val_pairs": n_val, "epochs": state["epoch"],
               "first_train_loss": state["first_loss"], "last_train_loss": last_loss, "best_val_loss": state["best_val"],
               "best_epoch": state["best_epoch"], "parameters": model.num_parameters(trainable=True),
               "prior": str(out / "prior"), "skipped_episodes": len(skipped), "skipped_by_reason": skipped.counts()}
    atomic_write_json(out / "summary.json", summary)
    return summary


def _pairs_for(cfg: PriorTrainConfig, out: Path, skipped: Skipped) -> dict[str, np.ndarray]:
    """This run's cached pairs when they were built with the same `pairs_key`, else cut and embed them now.

    Without --data/--embedder a pairs.npz placed in the run dir is used as is (precomputed pairs); a key-less
    pairs.npz (older versions) is rebuilt when the config names its source.
    """
    cache = out / PAIRS_FILE
    if not cfg.data or not cfg.embedder:
        if cache.is_file():
            return load_pairs(cache)
        raise ConfigError("prior training needs --data (episode store) and --embedder")
    from aimc.data.store import list_episodes
    from aimc.embed.base import make_embedder

    for extra in cfg.task_data:
        if not list_episodes(extra):
            raise AimcError(f"task_data store {extra} holds no episodes; collect them with `aimc collect --task T --out {extra}`")
    task_eps = [list_episodes(d) for d in cfg.task_data]
    task_names = [[p.name for p in eps] for eps in task_eps]
    present = Path(cfg.data).is_dir()  # a deleted store cannot have changed: its cached pairs still hold
    key = pairs_key(cfg, list_episodes(cfg.data) if present else None, task_names)
    cached = read_pairs_key(cache) if cache.is_file() else None
    if cached is not None and (cached == key or (not present and {**cached, "episodes": None} == key)):
        return load_pairs(cache)
    episodes = list_episodes(cfg.data)
    if not episodes:
        raise AimcError(f"no episodes under {cfg.data}; run `aimc collect` first")
    embedder = make_embedder(cfg.embedder, device=cfg.device)
    episodes = episodes + [p for eps in task_eps for p in eps]
    pairs = build_pairs(embedder, episodes, cfg.nothing_per_episode, cfg.max_clips_per_task, cfg.seed, skipped)
    save_pairs(cache, pairs, key)
    return pairs


def _migrate_legacy(run: RunDir) -> None:
    """Move an older version's `train_state.pt` and `log.jsonl` (run-dir top level) into a checkpoint and
    metrics.jsonl, so such runs resume; each step is atomic and a repeat after a kill finishes it."""
    old_state, old_log = run.path / STATE_FILE, run.path / LEGACY_LOG
    if old_state.is_file() and run.latest() is None:
        epoch = int(torch.load(old_state, map_location="cpu", weights_only=True)["epoch"])
        with run.checkpoint(epoch, keep=1) as tmp:
            shutil.copyfile(old_state, tmp / STATE_FILE)
    if old_log.is_file() and not run.metrics_path.is_file():
        rows = [{"step": r["epoch"] + 1, **r} for r in read_jsonl(old_log)]
        atomic_write_text(run.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
    if run.latest() is not None:
        old_state.unlink(missing_ok=True)
    if run.metrics_path.is_file():
        old_log.unlink(missing_ok=True)


def _save_state(path: Path, model: GoalPredictor, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"model": _weights(model), "optim": opt.state_dict(),
                **{k: torch.tensor(v if v is not None else float("nan")) for k, v in state.items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())

