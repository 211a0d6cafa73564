"""`aimc train dagger`: improve an agent bundle with DAgger (its own rollouts, labelled by the demonstrator).

Examples:
    aimc train dagger --preset crafter --bundle runs/small/bundle --data runs/small/data --out runs/dagger
    aimc train dagger --preset crafter --bundle runs/small/bundle --data runs/small/data --out runs/dagger \\
        --task collect_wood --task place_table --set beta0=0.5 --set beta_schedule=linear --set beta_decay=0.25
    aimc train dagger --preset classic --bundle runs/goal --data data/crafter --out runs/classic   # beta 1, 0.5, ...
    aimc train dagger --preset micro --bundle runs/micro/bundle --data runs/micro/data --out runs/dagger-micro

Re-running the same command resumes (finished stages are skipped, an interrupted collection or fine-tune
continues); --set iterations=N with a larger N extends a finished run. The per-iteration table is printed
and written to <out>/dagger_summary.json; the final bundle is <out>/bundle (docs/dagger.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import CRASH_RETRIES_HELP, supervised, train_app


@train_app.command("dagger")
def train_dagger_cmd(
    bundle: str | None = typer.Option(None, help="Agent bundle to start from (needs an embedder)."),
    data: list[str] = typer.Option([], help="Base episode store, optionally DIR:WEIGHT; repeat for several."),
    out: Path = typer.Option(..., help="Run directory (resumed when it holds this DAgger run)."),
    preset: str = typer.Option("crafter", help="DAgger preset (crafter, classic, micro) or a YAML path."),
    task: list[str] = typer.Option([], help="Instructed task (achievement name); repeat for several."),
    iterations: int | None = typer.Option(None, help="DAgger iterations K."),
    episodes: int | None = typer.Option(None, help="Learner rollouts per iteration."),
    workers: int | None = typer.Option(None, help="Rollout worker processes."),
    seed: int | None = typer.Option(None, help="Seed for worlds, learner, labeller, beta draws and fine-tunes."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set beta0=0.5 --set train.lr=1e-4"),
    quiet: bool = typer.Option(False, help="No progress output."),
    crash_retries: int | None = typer.Option(None, help=CRASH_RETRIES_HELP),
) -> None:
    """DAgger: learner rollouts from instructions, demonstrator labels, aggregation, fine-tune; K times."""
    from aimc.cli.train_policy import parse_data
    from aimc.finetune import format_table, load_dagger_config, run_dagger

    cfg = load_dagger_config(preset, set_, out=str(out), bundle=bundle, data=parse_data(data) if data else None,
                             tasks=list(task) or None, iterations=iterations, episodes=episodes, workers=workers,
                             seed=seed)
    supervised("aimc train dagger", crash_retries, out)
    s = run_dagger(cfg, progress=not quiet, log=(lambda _: None) if quiet else typer.echo)
    typer.echo(format_table(s))
    last = s["final"] or s["iterations"][-1]
    typer.echo(f"DAgger finished {len(s['iterations'])} iteration(s): success {last['success_rate']:.2f}, "
               f"deaths {last['death_rate']:.2f} ({'final' if s['final'] else 'last'} rollouts); bundle {s['bundle']}")
