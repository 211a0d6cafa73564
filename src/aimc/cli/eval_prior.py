"""`aimc eval prior`: the six prior metrics for each (embedder, prior) pair, as one comparison table + HTML.

Examples:
    aimc eval prior --data data/crafter_val --pair runs/embedder/model:runs/prior/prior
    aimc eval prior --data data/crafter_val --pair runs/embedder/model --pair mineclip:steve1_prior.pt

Each --pair is EMBEDDER[:PREDICTOR] (embedder = registered name or saved directory; predictor = a saved goal
predictor directory, CVAE prior or aligner, or a released steve1_prior.pt). `--suite crafter-heldout` scores the
suite's prompts (wordings no training caption used) instead of the caption catalogue's paraphrases. Every embedder also gets a text-only row (its text embedding used as the goal).
Metric definitions: docs/evaluation.md. A damaged episode is skipped with one line (stderr) naming it and the
reason, and counted in the summary and in prior_report.json (`skipped_episodes`); `--strict` stops instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import eval_app


def _parse_pair(text: str) -> tuple[str, str | None]:
    emb, _, prior = text.partition(":")
    from aimc.core.errors import AimcError

    if not emb:
        raise AimcError(f"--pair {text!r} must look like EMBEDDER or EMBEDDER:PRIOR")
    return emb, prior or None


@eval_app.command("prior")
def eval_prior_cmd(
    data: Path = typer.Option(..., help="Episode store whose captioned clips define the tasks (held-out episodes)."),
    pair: list[str] = typer.Option(..., help="EMBEDDER[:PRIOR]; repeat to compare several."),
    max_clips_per_task: int = typer.Option(50, min=1, help="Clips sampled per task."),
    out: Path = typer.Option(Path("runs/eval_prior"), help="Writes prior_report.json and prior_report.html here."),
    seed: int = typer.Option(0, help="Seed for clip sampling and prior sampling."),
    device: str | None = typer.Option(None, help="torch device for the embedders."),
    strict: bool = typer.Option(False, help="Fail at a damaged episode instead of skipping it."),
    suite: str | None = typer.Option(None, help="Score the goals of this task suite's prompts (e.g. crafter-heldout: "
                                     "wordings no training caption used) instead of the caption catalogue's."),
) -> None:
    """Compare embedders and priors on the seeds' metrics."""
    from rich.console import Console
    from rich.table import Table

    from aimc.core.io import atomic_write_json, atomic_write_text, check_writable_dir
    from aimc.data.index import Skipped
    from aimc.eval.prior_eval import COLUMNS, evaluate_priors, suite_wordings
    from aimc.eval.report import prior_report_html

    skipped = Skipped(strict=strict)
    wordings = suite_wordings(suite) if suite else None
    rows = evaluate_priors([_parse_pair(p) for p in pair], data, max_clips_per_task, seed=seed, device=device,
                           skipped=skipped, wordings=wordings)
    table = Table(title=f"prior metrics ({rows[0]['clips']} clips, {rows[0]['tasks']} tasks)")
    for col in ("embedder", "goals", *[label for _, label, _ in COLUMNS]):
        table.add_column(col)
    for r in rows:
        table.add_row(r["embedder"], r["goal_source"], *[f"{r[k]:.3f}" for k, _, _ in COLUMNS])
    Console(width=200).print(table)
    check_writable_dir(out)
    atomic_write_json(out / "prior_report.json", {"data": str(data), "seed": seed, "suite": suite, "rows": rows,
                                                  "skipped_episodes": dict(skipped)})
    atomic_write_text(out / "prior_report.html", prior_report_html(rows, COLUMNS, "Prior metrics"))
    dropped = skipped.summary()
    typer.echo(f"{dropped + '; ' if dropped else ''}wrote {out / 'prior_report.json'} and {out / 'prior_report.html'}")
