"""`aimc train prior`: train a text->goal predictor (CVAE prior or LM aligner) on auto-captioned clips (resumable).

Examples:
    aimc train prior --data data/crafter --embedder runs/embedder/model --out runs/prior
    aimc train prior --data data/crafter --embedder runs/embedder/model epochs=100 kl=mean beta=0.5 free_bits=0.1
    aimc train prior --kind aligner --data data/crafter --embedder runs/embedder/model --out runs/aligner lr=1e-3
    aimc train prior --kind aligner --target instruction ...   # for a policy trained on text goals
    aimc train prior --kind aligner --set aligner.backbone=/models/qwen --set aligner.lora_rank=8 --device cuda ...
    aimc train prior --out runs/prior          # resume an interrupted run (config is reloaded)

Writes runs/prior/prior/ (config.json + model.safetensors, the best validation epoch), pairs.npz (rebuilt
when a setting that shapes it changes), checkpoints/ (+ `last`), metrics.jsonl, train_config.json,
summary.json. Put prior/ in an agent bundle to use it in `aimc play`. A damaged episode is skipped with one
line (stderr) naming it and the reason while the clips are cut, and counted in the summary; `--strict` stops instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aimc.cli.app import train_app


@train_app.command("prior")
def train_prior_cmd(
    overrides: list[str] = typer.Argument(None, help="key=value config overrides (e.g. epochs=100 lr=3e-4)."),
    data: str | None = typer.Option(None, help="Episode-store directory with captionable events."),
    embedder: str | None = typer.Option(None, help="Embedder name or saved directory (the policy's goal space)."),
    out: Path = typer.Option(Path("runs/prior"), help="Run directory (resumed if it exists)."),
    kind: str | None = typer.Option(None, help="cvae (STEVE-1's prior, default) or aligner (LM -> queries -> goal)."),
    target: str | None = typer.Option(None, help="visual (clip embeddings, default) or instruction (text-goal policies)."),
    task_data: list[str] = typer.Option([], help="Extra episode stores (e.g. task demonstrations) whose clips join."),
    set_: list[str] = typer.Option([], "--set", help="key=value overrides, like the positional ones."),
    epochs: int | None = typer.Option(None, min=1, help="Training epochs (default 50)."),
    seed: int | None = typer.Option(None, help="Seed for pair sampling, splits and training."),
    device: str | None = typer.Option(None, help="torch device."),
    strict: bool = typer.Option(False, help="Fail at a damaged episode instead of skipping it."),
) -> None:
    """Train the prior and print the best validation loss."""
    from aimc.core.config import build_config
    from aimc.data.index import Skipped, skip_summary
    from aimc.prior.train import PriorTrainConfig, train_prior

    saved = out / "train_config.json"
    layers: list = [json.loads(saved.read_text())] if saved.is_file() else []
    flags = {k: v for k, v in {"data": data, "embedder": embedder, "epochs": epochs, "seed": seed,
                               "device": device, "kind": kind, "target": target,
                               "task_data": task_data or None}.items() if v is not None}
    cfg = build_config(PriorTrainConfig, *layers, {**flags, "out": str(out)}, overrides=[*(overrides or []), *set_])
    summary = train_prior(cfg, skipped=Skipped(strict=strict))
    dropped = skip_summary(summary["skipped_by_reason"])
    typer.echo(f"{summary['kind']} ({summary['target']} target): {summary['pairs']} pairs, train loss {summary['first_train_loss']:.4f} -> "
               f"{summary['last_train_loss']:.4f}, best val {summary['best_val_loss']:.4f} at epoch "
               f"{summary['best_epoch']}; {dropped + '; ' if dropped else ''}saved {summary['prior']}")
