"""`aimc pipeline`: the whole STEVE-1 recipe on the embedded world, each stage resumable and skipped when done.

Examples:
    aimc pipeline --preset crafter-small --out runs/small            # ~1 h on a 2-core CPU
    aimc pipeline --preset micro --out runs/micro                    # minutes: checks the plumbing
    aimc pipeline --preset crafter-small --out runs/small --set goal.lr=1e-4 --until goal
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import CRASH_RETRIES_HELP, app, supervised


@app.command("pipeline")
def pipeline_cmd(
    preset: str = typer.Option("crafter-small", help="Preset name (micro, crafter-small, crafter-gpu) or a YAML path."),
    out: Path = typer.Option(..., "--out", help="Run directory (resumed when it holds a pipeline run)."),
    seed: int = typer.Option(0, help="Seed for every stage."),
    workers: int | None = typer.Option(None, help="Worker processes for collection and evaluation."),
    device: str | None = typer.Option(None, help="torch device (cpu, cuda)."),
    until: str | None = typer.Option(None, help="Stop after this stage."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set goal.lr=1e-4 --set collect.episodes=50"),
    quiet: bool = typer.Option(False, help="No progress bars."),
    crash_retries: int | None = typer.Option(None, help=CRASH_RETRIES_HELP),
) -> None:
    """Collect -> train embedder -> embed -> pretrain -> goal BC -> prior -> bundle -> evaluate."""
    from aimc.pipeline import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(preset, set_, out=str(out), seed=seed, workers=workers, device=device)
    supervised("aimc pipeline", crash_retries, out)
    s = run_pipeline(cfg, progress=not quiet, until=until, log=typer.echo)
    ev = s["stages"].get("eval", {}).get("result", {})
    tail = f"; report: {ev['html']}" if "html" in ev else ""
    typer.echo(f"pipeline finished in {s['seconds'] / 60:.1f} min of stage time, run dir {s['out']}{tail}")
