"""`aimc embed`: write per-timestep goal embeddings into every episode of a store.

Examples:
    aimc embed --embedder runs/embedder/model --data data/crafter            # trained video-text model
    aimc embed --embedder models/mineclip_attn --data data/crafter --name attn   # converted MineCLIP
    aimc embed --embedder runs/embedder/model --data data/crafter --overwrite
    aimc embed --embedder openclip --set checkpoint=ViT-B-32.pt --set pooling=meanP --data data/crafter

Row t of `embeds_<name>.npy` embeds frames t-15..t (float16); `embeds_<name>_mask.npy` marks t >= 15.
Episodes that already hold the embeddings are skipped, so an interrupted run resumes (temp files a killed run
left in an episode are removed first). A damaged episode is skipped with one line (stderr) naming it and the
reason, and the rest are embedded; the summary counts them by reason. `--strict` stops at the first one.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import app


@app.command("embed")
def embed_cmd(
    embedder: str = typer.Option(..., help="Registered embedder name or a saved embedder directory."),
    data: Path = typer.Option(..., help="Episode-store directory."),
    name: str | None = typer.Option(None, help="Embedding name in the files (default: the embedder's type)."),
    device: str | None = typer.Option(None, help="torch device (default: a GPU when present)."),
    overwrite: bool = typer.Option(False, help="Recompute episodes that already hold these embeddings."),
    seed: int = typer.Option(0, help="Seed (embedding is deterministic; used for reproducible model init)."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    options: list[str] = typer.Option([], "--set", help="Embedder option key=value (e.g. checkpoint=PATH)."),
    strict: bool = typer.Option(False, help="Fail at a damaged episode instead of skipping it."),
) -> None:
    """Compute sliding-window goal embeddings (cached per frame) for each episode."""
    from aimc.core.config import parse_overrides
    from aimc.core.seeding import seed_everything
    from aimc.data.index import Skipped, skip_summary
    from aimc.embed.base import make_embedder
    from aimc.embed.run import embed_dataset

    seed_everything(seed)
    model = make_embedder(embedder, device=device, **parse_overrides(options))
    label = name or model.name
    s = embed_dataset(model, data, label, overwrite=overwrite, progress=not quiet, skipped=Skipped(strict=strict))
    dropped = skip_summary(s["skipped_by_reason"])
    typer.echo(
        f"embedded {s['embedded']} episode(s) ({s['skipped_existing']} already done) of {s['episodes']} "
        f"as embeds_{label}.npy (D={model.dim})" + (f"; {dropped}" if dropped else "")
    )
