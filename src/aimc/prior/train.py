"""Training the prior on (text embedding, clip embedding) pairs from auto-captioned clips (`aimc train prior`).

Pairs: every captioned 16-frame clip of an episode store (`aimc.embed.clips`) is embedded once, and
paired with the embedding of *each* paraphrase of its caption, so the prior sees the wording variety
users type. The recipe (AdamW 1e-4, batch 256, beta = 1 with summed KL, keep the best validation loss)
is STEVE-1's. The run directory follows `aimc.core.rundir`: `train_config.json`, `checkpoints/step_<epochs>/
train_state.pt` (resume point, tensors only) + `checkpoints/last`, `metrics.jsonl` (one row per epoch), and
besides those `pairs.npz` (cached, keyed by everything that shapes it), `summary.json` and the best model in
`prior/`. Run dirs of older versions (`train_state.pt`, `log.jsonl` at the top) are moved into this layout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.errors import AimcError, ConfigError
from aimc.core.io import TMP_PREFIX, atomic_write_bytes, atomic_write_json, atomic_write_text
from aimc.core.rundir import RunDir, read_jsonl
from aimc.core.seeding import seed_everything
from aimc.data.index import Skipped
from aimc.prior.config import PriorTrainConfig
from aimc.prior.cvae import CVAEPrior, PriorConfig

STATE_FILE = "train_state.pt"
"""Inside each checkpoint (and, in run dirs of older versions, at the top)."""
LEGACY_LOG = "log.jsonl"
PAIRS_FILE = "pairs.npz"
PAIRS_FORMAT = 1
"""Bump when build_pairs changes what it produces, so cached pairs are rebuilt."""
RESUMABLE_CHANGES = ("out", "epochs", "val_pairs", "nothing_per_episode", "max_clips_per_task", "device")
"""Settings a resumed run may change (`aimc.core.rundir`); changed clip settings rebuild pairs.npz."""


def build_pairs(
    embedder: Any, episodes: list[Path], nothing_per_episode: int, max_clips_per_task: int, seed: int,
    skipped: Skipped | None = None,
) -> dict[str, np.ndarray]:
    """Embed captioned clips and all paraphrases of their captions -> {"text", "visual", "label"} arrays.

    A damaged episode raises, or with `skipped` is left out there (reported, counted)."""
    from aimc.embed.captions import paraphrases
    from aimc.embed.clips import load_clips

    clips = load_clips(episodes, nothing_per_episode=nothing_per_episode, seed=seed, skipped=skipped)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(i)[:max_clips_per_task] for i in clips.by_task().values()]))
    labels = [clips.labels[i] for i in keep]
    visual = torch.cat([embedder.encode_clips(clips.frames[keep[i : i + 32]]) for i in range(0, len(keep), 32)])
    tasks = sorted(set(labels))
    texts = {t: embedder.encode_text(list(paraphrases(t))).float().cpu().numpy() for t in tasks}
    t_rows, v_rows, l_rows = [], [], []
    for row, label in enumerate(labels):
        for emb in texts[label]:
            t_rows.append(emb)
            v_rows.append(visual[row].float().cpu().numpy())
            l_rows.append(label)
    return {
        "text": np.stack(t_rows).astype(np.float32),
        "visual": np.stack(v_rows).astype(np.float32),
        "label": np.asarray(l_rows),
    }


def save_pairs(path: Path, pairs: dict[str, np.ndarray], key: dict[str, Any] | None = None) -> None:
    """Write pairs atomically; `key` (what built them, see `pairs_key`) is stored inside the same file."""
    import io

    buf = io.BytesIO()
    extra = {} if key is None else {"key": np.asarray(json.dumps(key, sort_keys=True))}
    np.savez(buf, text=pairs["text"], visual=pairs["visual"], label=pairs["label"].astype(str), **extra)
    atomic_write_bytes(path, buf.getvalue())


def read_pairs_key(path: Path) -> dict[str, Any] | None:
    """The key a pairs file was built with (None for hand-made pairs or pairs of older versions)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["key"])) if "key" in z.files else None


def _embedder_identity(name_or_dir: str) -> str:
    """A registered name as is; a saved directory by the digest of its files (a retrained embedder written
    to the same path is a different embedder)."""
    path = Path(name_or_dir)
    if not path.is_dir():
        return name_or_dir
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(TMP_PREFIX) for part in rel.parts):
            h.update(str(rel).encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()


def pairs_key(cfg: PriorTrainConfig, episodes: list[Path] | None) -> dict[str, Any]:
    """Every setting that shapes the pairs; a cached pairs.npz is reused only under an equal key.

    `device` is left out on purpose: it moves the embeddings' last bits, not which clips and captions pair.
    """
    return {
        "format": PAIRS_FORMAT,
        "data": str(Path(cfg.data).resolve()),
        "episodes": None if episodes is None else [p.name for p in episodes],
        "embedder": _embedder_identity(cfg.embedder),
        "nothing_per_episode": cfg.nothing_per_episode,
        "max_clips_per_task": cfg.max_clips_per_task,
        "seed": cfg.seed,
    }


def load_pairs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        pairs = {k: z[k] for k in ("text", "visual", "label")}
    if pairs["text"].shape != pairs["visual"].shape or pairs["text"].ndim != 2:
        raise AimcError(f"{path}: text and visual arrays must both be (N, D), got {pairs['text'].shape}, {pairs['visual'].shape}")
    return pairs


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


@torch.no_grad()
def _evaluate(model: CVAEPrior, text: torch.Tensor, visual: torch.Tensor, beta: float, seed: int) -> dict[str, float]:
    model.eval()
    gen = torch.Generator(device=text.device).manual_seed(seed)
    out = model(visual, text, generator=gen)
    model.train()
    return {"loss": float(beta * out["kl"] + out["mse"]), "kl": float(out["kl"]), "mse": float(out["mse"])}


def train_prior(cfg: PriorTrainConfig, pairs: dict[str, np.ndarray] | None = None, progress: bool = True,
                skipped: Skipped | None = None) -> dict[str, Any]:
    """Train (or resume) a prior; `pairs` bypasses clip cutting (tests, precomputed pairs).

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
    dev = torch.device(cfg.device)
    text = torch.from_numpy(pairs["text"][perm]).float().to(dev)
    visual = torch.from_numpy(pairs["visual"][perm]).float().to(dev)
    tr_t, tr_v = text[: n - n_val], visual[: n - n_val]
    va_t, va_v = (text[n - n_val :], visual[n - n_val :]) if n_val else (tr_t, tr_v)

    model = CVAEPrior(PriorConfig(input_dim=text.shape[1], hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "first_loss": None}
    ckpt = rundir.latest()
    if ckpt is not None:
        saved_state = torch.load(ckpt / STATE_FILE, map_location=dev, weights_only=True)
        model.load_state_dict(saved_state["model"])
        opt.load_state_dict(saved_state["optim"])
        state = {k: saved_state[k].item() for k in ("epoch", "best_val", "best_epoch", "first_loss")}
        state["epoch"], state["best_epoch"] = int(state["epoch"]), int(state["best_epoch"])
        if np.isnan(state["first_loss"]):
            state["first_loss"] = None
    rundir.trim_metrics(state["epoch"])

    gen = torch.Generator(device=dev)
    last_loss = float("nan")
    bar = tqdm(range(state["epoch"], cfg.epochs), desc="train prior", unit="epoch", disable=not progress)
    for epoch in bar:
        rng = np.random.default_rng([cfg.seed, epoch])
        gen.manual_seed(cfg.seed * 100003 + epoch)
        losses = []
        for idx in _batches(len(tr_t), cfg.batch_size, rng):
            ix = torch.from_numpy(idx).to(dev)
            terms = model(tr_v[ix], tr_t[ix], generator=gen)
            loss = cfg.beta * terms["kl"] + terms["mse"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        last_loss = float(np.mean(losses))
        if state["first_loss"] is None:
            state["first_loss"] = last_loss
        val = _evaluate(model, va_t, va_v, cfg.beta, cfg.seed)
        if val["loss"] < state["best_val"]:
            state["best_val"], state["best_epoch"] = val["loss"], epoch
            model.save_pretrained(out / "prior")
        state["epoch"] = epoch + 1
        rundir.log({"step": epoch + 1, "epoch": epoch, "train/loss": last_loss, **{f"val/{k}": v for k, v in val.items()}})
        with rundir.checkpoint(epoch + 1, keep=1) as tmp:
            _save_state(tmp / STATE_FILE, model, opt, state)
        bar.set_postfix(loss=f"{last_loss:.4f}", val=f"{val['loss']:.4f}")

    summary = {"pairs": n, "val_pairs": n_val, "epochs": state["epoch"], "first_train_loss": state["first_loss"],
               "last_train_loss": last_loss, "best_val_loss": state["best_val"], "best_epoch": state["best_epoch"],
               "parameters": model.num_parameters(), "prior": str(out / "prior"),
               "skipped_episodes": len(skipped), "skipped_by_reason": skipped.counts()}
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

    present = Path(cfg.data).is_dir()  # a deleted store cannot have changed: its cached pairs still hold
    key = pairs_key(cfg, list_episodes(cfg.data) if present else None)
    cached = read_pairs_key(cache) if cache.is_file() else None
    if cached is not None and (cached == key or (not present and {**cached, "episodes": None} == key)):
        return load_pairs(cache)
    episodes = list_episodes(cfg.data)
    if not episodes:
        raise AimcError(f"no episodes under {cfg.data}; run `aimc collect` first")
    embedder = make_embedder(cfg.embedder, device=cfg.device)
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


def _save_state(path: Path, model: CVAEPrior, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(),
                **{k: torch.tensor(v if v is not None else float("nan")) for k, v in state.items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())

