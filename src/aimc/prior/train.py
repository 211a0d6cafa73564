"""Training the prior on (text embedding, clip embedding) pairs from auto-captioned clips (`aimc train prior`).

Pairs: every captioned 16-frame clip of an episode store (`aimc.embed.clips`) is embedded once, and
paired with the embedding of *each* paraphrase of its caption, so the prior sees the wording variety
users type. The recipe (AdamW 1e-4, batch 256, beta = 1 with summed KL, keep the best validation loss)
is STEVE-1's. A run directory holds `train_config.json`, `pairs.npz` (cached), `train_state.pt`
(resume point, tensors only), `log.jsonl` and the best model in `prior/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, ConfigError
from aimc.core.io import atomic_write_bytes, atomic_write_json, check_writable_dir
from aimc.core.seeding import seed_everything
from aimc.prior.cvae import CVAEPrior, PriorConfig

STATE_FILE = "train_state.pt"
PAIRS_FILE = "pairs.npz"


@dataclass
class PriorTrainConfig:
    """One prior training run; defaults are STEVE-1's recipe."""

    out: str = "runs/prior"
    """Run directory (resumed when it already holds a train state)."""
    data: str = ""
    """Episode-store directory the captioned clips are cut from."""
    embedder: str = ""
    """Registered embedder name or saved embedder directory (must be the one the policy's goals came from)."""
    epochs: int = 50
    """Passes over the training pairs."""
    batch_size: int = 256
    lr: float = 1e-4
    beta: float = 1.0
    """Weight of the (summed) KL term against the (mean) MSE."""
    val_pairs: int = 200
    """Pairs held out for choosing the best epoch (capped at 20 % of the data)."""
    hidden_dim: int = 512
    latent_dim: int = 512
    nothing_per_episode: int = 4
    """Event-free clips per episode, captioned with the 'nothing' paraphrases."""
    max_clips_per_task: int = 2000
    """Cap on clips per caption, so frequent events do not drown rare ones."""
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.beta < 0:
            raise ConfigError("prior training needs epochs >= 1, batch_size >= 1, lr > 0 and beta >= 0")


def build_pairs(
    embedder: Any, episodes: list[Path], nothing_per_episode: int, max_clips_per_task: int, seed: int
) -> dict[str, np.ndarray]:
    """Embed captioned clips and all paraphrases of their captions -> {"text", "visual", "label"} arrays."""
    from aimc.embed.captions import paraphrases
    from aimc.embed.clips import load_clips

    clips = load_clips(episodes, nothing_per_episode=nothing_per_episode, seed=seed)
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


def save_pairs(path: Path, pairs: dict[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, text=pairs["text"], visual=pairs["visual"], label=pairs["label"].astype(str))
    atomic_write_bytes(path, buf.getvalue())


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


def train_prior(cfg: PriorTrainConfig, pairs: dict[str, np.ndarray] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a prior; `pairs` bypasses clip cutting (tests, precomputed pairs).

    Returns the summary written to `summary.json`: first/last train loss, best validation loss and epoch.
    """
    from tqdm.auto import tqdm

    out = check_writable_dir(cfg.out)
    cfg_file = out / "train_config.json"
    if cfg_file.is_file():
        saved = from_dict(PriorTrainConfig, json.loads(cfg_file.read_text()), where=str(cfg_file))
        changed = [k for k in ("data", "embedder", "batch_size", "lr", "beta", "hidden_dim", "latent_dim", "seed")
                   if getattr(saved, k) != getattr(cfg, k)]
        if changed and (out / STATE_FILE).is_file():
            raise ConfigError(f"{out} holds a run with different {changed}; use another --out to start fresh")
    atomic_write_json(cfg_file, to_dict(cfg))
    seed_everything(cfg.seed)

    if pairs is None:
        pairs = _pairs_for(cfg, out)
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
    state_path = out / STATE_FILE
    if state_path.is_file():
        saved_state = torch.load(state_path, map_location=dev, weights_only=True)
        model.load_state_dict(saved_state["model"])
        opt.load_state_dict(saved_state["optim"])
        state = {k: saved_state[k].item() for k in ("epoch", "best_val", "best_epoch", "first_loss")}
        state["epoch"], state["best_epoch"] = int(state["epoch"]), int(state["best_epoch"])
        if np.isnan(state["first_loss"]):
            state["first_loss"] = None

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
        _save_state(state_path, model, opt, state)
        _append_log(out / "log.jsonl", {"epoch": epoch, "train/loss": last_loss, **{f"val/{k}": v for k, v in val.items()}})
        bar.set_postfix(loss=f"{last_loss:.4f}", val=f"{val['loss']:.4f}")

    summary = {"pairs": n, "val_pairs": n_val, "epochs": state["epoch"], "first_train_loss": state["first_loss"],
               "last_train_loss": last_loss, "best_val_loss": state["best_val"], "best_epoch": state["best_epoch"],
               "parameters": model.num_parameters(), "prior": str(out / "prior")}
    atomic_write_json(out / "summary.json", summary)
    return summary


def _pairs_for(cfg: PriorTrainConfig, out: Path) -> dict[str, np.ndarray]:
    """Cached pairs of this run, or cut and embed them now."""
    cache = out / PAIRS_FILE
    if cache.is_file():
        return load_pairs(cache)
    if not cfg.data or not cfg.embedder:
        raise ConfigError("prior training needs --data (episode store) and --embedder")
    from aimc.data.store import list_episodes
    from aimc.embed.base import make_embedder

    episodes = list_episodes(cfg.data)
    if not episodes:
        raise AimcError(f"no episodes under {cfg.data}; run `aimc collect` first")
    embedder = make_embedder(cfg.embedder, device=cfg.device)
    pairs = build_pairs(embedder, episodes, cfg.nothing_per_episode, cfg.max_clips_per_task, cfg.seed)
    save_pairs(cache, pairs)
    return pairs


def _save_state(path: Path, model: CVAEPrior, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(),
                **{k: torch.tensor(v if v is not None else float("nan")) for k, v in state.items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")

