"""`aimc eval embedder`: embedder-quality metrics on captioned clips of an episode store.

Examples:
    aimc eval embedder --embedder runs/embedder/model --data data/crafter_val
    aimc eval embedder --embedder runs/embedder/model --data data/crafter --json report.json

Metrics (defined in docs/embed.md): text discriminability, inter-/intra-task visual similarity,
text->clip and clip->text top-1 retrieval over tasks, paraphrase robustness. A damaged episode is skipped
with one line (stderr) naming it and the reason, and counted in the report; `--strict` stops instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import eval_app

ROWS = [
    ("text_discriminability", "text discriminability (1 - mean cos, present tasks)", "higher"),
    ("text_discriminability_all_tasks", "text discriminability (all catalogue tasks)", "higher"),
    ("inter_task_visual_similarity", "inter-task visual similarity", "lower"),
    ("intra_task_visual_similarity", "intra-task visual similarity", "higher"),
    ("text_to_clip_top1", "text->clip top-1", "higher"),
    ("clip_to_text_top1", "clip->text top-1", "higher"),
    ("paraphrase_robustness", "paraphrase robustness (mean cos)", "higher"),
    ("chance_top1", "chance top-1 (1 / tasks)", ""),
]


@eval_app.command("embedder")
def eval_embedder_cmd(
    embedder: str = typer.Option(..., help="Registered embedder name or a saved embedder directory."),
    data: Path = typer.Option(..., help="Episode-store directory (use held-out episodes)."),
    max_clips_per_task: int = typer.Option(50, help="Clips sampled per task."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    device: str | None = typer.Option(None, help="torch device (default: a GPU when present)."),
    seed: int = typer.Option(0, help="Seed for clip sampling."),
    options: list[str] = typer.Option([], "--set", help="Embedder option key=value (e.g. checkpoint=PATH)."),
    strict: bool = typer.Option(False, help="Fail at a damaged episode instead of skipping it."),
) -> None:
    """Print the embedder-quality table (and write JSON)."""
    from rich.console import Console
    from rich.table import Table

    from aimc.core.config import parse_overrides
    from aimc.core.io import atomic_write_json
    from aimc.data.index import Skipped, skip_summary
    from aimc.embed.base import make_embedder
    from aimc.embed.run import evaluate_embedder

    model = make_embedder(embedder, device=device, **parse_overrides(options))
    report = evaluate_embedder(model, data, max_clips_per_task, seed=seed, skipped=Skipped(strict=strict))
    table = Table(title=f"embedder quality: {embedder} ({report['clips']} clips, {report['tasks']} tasks)")
    for col in ("metric", "value", "better"):
        table.add_column(col)
    for key, label, better in ROWS:
        table.add_row(label, f"{report[key]:.3f}", better)
    Console(width=110).print(table)
    if report["skipped_episodes"]:
        typer.echo(skip_summary(report["skipped_by_reason"]))
    if json_out is not None:
        atomic_write_json(json_out, {"embedder": embedder, "data": str(data), **report})
        typer.echo(f"wrote {json_out}")
