"""`aimc train embedder`: train the video-text goal embedder on auto-captioned clips of an episode store.

Examples:
    aimc train embedder --data data/crafter --out runs/embedder --steps 600 --seed 0
    aimc train embedder --data data/crafter --out runs/embedder --steps 1200   # resumes, trains on to 1200
    aimc train embedder --data data/crafter --out runs/tiny --set model.frame_dim=64 --set batch_size=16

Writes runs/<out>/checkpoints/step_*/ (+ `last`), metrics.jsonl, train_config.json and the final
model/ directory, which `aimc embed --embedder runs/<out>/model` and `aimc eval embedder` accept.
A damaged or too-short episode is skipped with one line (stderr) naming it and the reason, and the summary
counts them by reason; `--strict` stops instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import train_app


@train_app.command("embedder")
def train_embedder_cmd(
    data: Path = typer.Option(..., help="Episode-store directory."),
    out: Path = typer.Option(..., help="Run directory (resumed when it already holds this run)."),
    steps: int | None = typer.Option(None, help="Total optimisation steps."),
    batch_size: int | None = typer.Option(None, help="Clips per batch."),
    lr: float | None = typer.Option(None, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for the split, batches and init."),
    device: str = typer.Option("auto", help="torch device ('auto' = a GPU when present)."),
    config: Path | None = typer.Option(None, help="YAML with EmbedderTrainConfig fields (CLI flags win)."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set model.embed_dim=128"),
    quiet: bool = typer.Option(False, help="No progress bar."),
    strict: bool = typer.Option(False, help="Fail at a damaged or too-short episode instead of skipping it."),
) -> None:
    """Train (or resume) the video-text embedder with symmetric InfoNCE."""
    from aimc.core.config import build_config
    from aimc.data.index import Skipped, skip_summary
    from aimc.embed.train import EmbedderTrainConfig, train_embedder

    flags = {"data": str(data), "out": str(out), "seed": seed, "device": device}
    flags.update(
        {k: v for k, v in (("steps", steps), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    )
    cfg = build_config(EmbedderTrainConfig, config, flags, overrides=set_)
    s = train_embedder(cfg, progress=not quiet, skipped=Skipped(strict=strict))
    val = f", val clip->text top-1 {s['val/clip_to_text_top1']:.3f}" if "val/clip_to_text_top1" in s else ""
    dropped = skip_summary(s["skipped_by_reason"])
    typer.echo(
        f"trained {s['steps']} steps (resumed from {s['resumed_from']}) on {s['train_clips']} clips of "
        f"{len(s['tasks'])} tasks; loss {s.get('first_loss', float('nan')):.3f} -> "
        f"{s.get('last_loss', float('nan')):.3f}{val}; {dropped + '; ' if dropped else ''}model in {s['model']}"
    )
