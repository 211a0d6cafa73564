"""`aimc eval tasks`: run a task suite with the trained agent and baselines; JSON + HTML report.

Examples:
    aimc eval tasks --checkpoint runs/agent --episodes 20 --workers 2 --out runs/eval
    aimc eval tasks --checkpoint runs/agent --cfg-scales 0,2,4,6,8 --tasks chop_tree,place_table
    aimc eval tasks --baselines demonstrator,random --episodes 10      # no checkpoint: baselines only
    aimc eval tasks --suite my_suite.yaml --checkpoint runs/agent --backend ray

Per task: success rate with a 95 % Wilson interval, median steps to success, deaths, rates at the
suite's short horizons; per prompted condition a specificity matrix (docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import eval_app


def _floats(text: str) -> list[float]:
    from aimc.core.errors import AimcError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AimcError(f"--cfg-scales must be comma-separated numbers, got {text!r}") from None


@eval_app.command("tasks")
def eval_tasks_cmd(
    checkpoint: str | None = typer.Option(None, help="Agent bundle directory (bundle.json + policy/ ...)."),
    suite: Path | None = typer.Option(None, help="Task-suite YAML (default: the bundled Crafter suite)."),
    tasks: str = typer.Option("", help="Comma-separated task names to run (default: all)."),
    episodes: int | None = typer.Option(None, min=1, help="Episodes per task and condition (default: the suite's)."),
    workers: int = typer.Option(2, min=0, help="Parallel env worker processes (0 = in this process)."),
    backend: str = typer.Option("process", help="process (multiprocessing) or ray."),
    cfg_scales: str = typer.Option("", help="Extra cond scales for the CFG sweep, e.g. 0,2,4,8."),
    baselines: str = typer.Option("unconditional,demonstrator", help="Any of unconditional,demonstrator,random."),
    max_steps: int | None = typer.Option(None, min=1, help="Override every task's horizon."),
    videos: int = typer.Option(3, min=0, help="Tasks whose first episode is recorded and embedded."),
    episode_timeout: float = typer.Option(600.0, help="Seconds before a silent worker is killed and its episode retried."),
    use_prior: bool | None = typer.Option(None, "--use-prior/--no-prior", help="Force the bundle's prior on/off."),
    out: Path = typer.Option(Path("runs/eval_tasks"), help="Output directory (report.json, report.html, videos/)."),
    seed: int = typer.Option(0, help="Seed for agent sampling (worlds come from the suite's seeds)."),
    device: str = typer.Option("cpu", help="torch device for the agent."),
) -> None:
    """Evaluate instruction following on a task suite."""
    import dataclasses

    from aimc.eval.run import build_conditions, evaluate_suite, write_outputs
    from aimc.eval.tasks import check_events, load_suite, world_events

    s = load_suite(suite)
    check_events(s, world_events(s.world))
    if tasks:
        s = s.select([t.strip() for t in tasks.split(",") if t.strip()])
    if max_steps is not None:
        s = dataclasses.replace(s, tasks=tuple(dataclasses.replace(t, max_steps=max_steps) for t in s.tasks))
    base = [b.strip() for b in baselines.split(",") if b.strip()]
    if checkpoint is None:
        base = [b for b in base if b != "unconditional"] or ["demonstrator"]
    conds, env_cfg = build_conditions(checkpoint, _floats(cfg_scales), base, use_prior, device)
    report, recorded = evaluate_suite(s, conds, episodes, workers, backend, videos, seed, episode_timeout,
                                      env_config=env_cfg)
    paths = write_outputs(str(out), report, recorded)
    best = ", ".join(f"{n} {c['mean_success']:.2f}" for n, c in report["conditions"].items())
    typer.echo(f"mean success: {best}; retried {report['retries']}, lost {report['lost_episodes']}; "
               f"wrote {paths['json']} and {paths['html']}")
