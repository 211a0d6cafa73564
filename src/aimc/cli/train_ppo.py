"""`aimc train ppo`: fine-tune an agent bundle with PPO on its tasks' success events, anchored by a KL penalty.

Examples:
    aimc train ppo --out runs/ppo --seed 0                                   # the shipped agent, ppo-crafter preset
    aimc train ppo --bundle runs/small/bundle --out runs/ppo --task chop_tree --task mine_stone \\
        --set reward.shaping=0.1 --set kl_coef=0.1
    aimc train ppo --out runs/ppo-noanchor --set kl_coef=0                  # the "without the anchor" comparison
    aimc train ppo --preset ppo-micro --bundle runs/micro/bundle --out runs/ppo-micro   # plumbing check
    aimc eval tasks --checkpoint runs/ppo/bundle                             # the fine-tuned agent

Re-running the same command resumes after the last finished iteration; --iterations N with a larger N extends
a finished run. A line per iteration and the final table are printed; the table is also
<out>/ppo_summary.json and the fine-tuned agent is <out>/bundle (docs/task-finetune.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import CRASH_RETRIES_HELP, supervised, train_app


@train_app.command("ppo")
def train_ppo_cmd(
    bundle: str | None = typer.Option(None, help="Agent bundle to start from (default: the shipped agent)."),
    out: Path = typer.Option(..., help="Run directory (resumed when it holds this PPO run)."),
    preset: str = typer.Option("ppo-crafter", help="PPO preset (ppo-crafter, ppo-distill, ppo-night, ppo-micro) or a YAML path."),
    task: list[str] = typer.Option([], help="Suite task to train on (e.g. chop_tree); repeat for several."),
    iterations: int | None = typer.Option(None, help="PPO iterations K."),
    seed: int | None = typer.Option(None, help="Seed for worlds, prompts, sampling and minibatch order."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set kl_coef=0.1 --set reward.death=-1"),
    quiet: bool = typer.Option(False, help="No progress output."),
    crash_retries: int | None = typer.Option(None, help=CRASH_RETRIES_HELP),
) -> None:
    """PPO with a KL penalty toward the starting policy, on the suite tasks' programmatic success."""
    from aimc.finetune import format_ppo_table, load_ppo_config, run_ppo

    if bundle is None:
        from aimc.eval.play import shipped_bundle

        bundle = str(shipped_bundle())
    cfg = load_ppo_config(preset, set_, out=str(out), bundle=bundle, tasks=list(task) or None, iterations=iterations,
                          seed=seed)
    supervised("aimc train ppo", crash_retries, out)
    s = run_ppo(cfg, progress=not quiet, log=(lambda _: None) if quiet else typer.echo)
    typer.echo(format_ppo_table(s))
    first, last = s["iterations"][0], s["iterations"][-1]
    typer.echo(f"PPO finished {len(s['iterations'])} iteration(s): success {first['success']:.2f} -> {last['success']:.2f}, "
               f"deaths {last['death_rate']:.2f}, KL to the start {last['kl_anchor']:.4f}; bundle {s['bundle']}")
