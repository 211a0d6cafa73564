"""`aimc study task-finetune` (the data-efficiency study of the task fine-tuning routes) and `aimc study
goal-finetune` (design note 004's methods: gain on one task against forgetting on the rest); docs/task-finetune.md.

Examples:
    aimc study task-finetune --task collect_wood --out runs/study-wood                  # the CPU grid
    aimc study task-finetune --task collect_stone --out runs/study-stone --demos 5 --demos 20 --route bc
    aimc study task-finetune --preset study-gpu --task collect_stone --out runs/study-gpu
    aimc study task-finetune --preset study-micro --pretrained runs/micro/bundle --out runs/study-micro  # plumbing
    aimc study goal-finetune --task collect_coal --original data5 --out runs/methods-coal  # note 004's methods

Re-running the same command resumes (finished stages are skipped, an interrupted one continues); widening the
grid (--demos, --init, --route, --seed) on an existing study runs only the new cells. The table is printed and
written to <out>/study.md and study.json, the plots to <out>/plots/*.png, all of it in <out>/report.html.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import study_app


@study_app.command("task-finetune")
def study_task_finetune_cmd(
    out: Path = typer.Option(..., help="Study directory (resumed when it holds this study)."),
    task: str | None = typer.Option(None, help="Demonstrator task, e.g. collect_wood or collect_stone."),
    preset: str = typer.Option("study-cpu", help="Study preset (study-cpu, study-gpu, study-micro) or a YAML path."),
    pretrained: str | None = typer.Option(None, help="Bundle of the pretrained init (default: the shipped agent)."),
    demos: list[int] = typer.Option([], help="Demonstration count N; repeat for several."),
    init: list[str] = typer.Option([], help="scratch or pretrained; repeat for both."),
    route: list[str] = typer.Option([], help="bc, bc_dagger or ppo; repeat for several."),
    seed: list[int] = typer.Option([], help="Study seed (demonstration pool, training, evaluation); repeat for several."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set ppo.iterations=20 --set eval_episodes=100"),
    quiet: bool = typer.Option(False, help="No progress output."),
) -> None:
    """Demos N x init x route (BC, BC + DAgger, BC + PPO): success against demonstrations, time and steps."""
    from aimc.finetune.study import run_study
    from aimc.finetune.study_config import load_study_config
    from aimc.finetune.study_report import format_study_table

    cfg = load_study_config(preset, set_, out=str(out), task=task, pretrained=pretrained, demos=list(demos) or None,
                            inits=list(init) or None, routes=list(route) or None, seeds=list(seed) or None)
    s = run_study(cfg, progress=not quiet, log=(lambda _: None) if quiet else typer.echo)
    typer.echo(format_study_table(s))
    typer.echo(f"study written to {s['out']} (study.md, study.json, plots/, report.html)")


@study_app.command("goal-finetune")
def study_goal_finetune_cmd(
    out: Path = typer.Option(..., help="Study directory (resumed when it holds this study)."),
    task: str | None = typer.Option(None, help="Target demonstrator task, e.g. collect_coal."),
    second_task: str | None = typer.Option(None, help="The other task of the progressive and joint methods."),
    preset: str = typer.Option("methods-cpu", help="Methods preset (methods-cpu, methods-micro) or a YAML path."),
    pretrained: str | None = typer.Option(None, help="Goal-conditioned bundle to fine-tune (default: the shipped agent)."),
    original: str | None = typer.Option(None, help="Episode store of general data for the mixed method."),
    method: list[str] = typer.Option([], help="relabel, fixed, mixed, progressive or joint; repeat for several."),
    seed: int | None = typer.Option(None, help="Seeds the demonstrations, the fine-tunes and the evaluation."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set train.lr=1e-4 --set eval_episodes=20"),
    quiet: bool = typer.Option(False, help="No progress output."),
) -> None:
    """Note 004's fine-tuning methods: each one's gain on the target task and forgetting on the rest of the suite."""
    from aimc.finetune.methods import run_methods
    from aimc.finetune.methods_config import load_methods_config
    from aimc.finetune.methods_report import format_methods_table

    cfg = load_methods_config(preset, set_, out=str(out), task=task, second_task=second_task, pretrained=pretrained,
                              original=original, methods=list(method) or None, seed=seed)
    s = run_methods(cfg, progress=not quiet, log=(lambda _: None) if quiet else typer.echo)
    typer.echo(format_methods_table(s))
    typer.echo(f"study written to {s['out']} (methods.md, methods.json, plots/, report.html)")
