"""`aimc eval goal-gain`: how much an agent's policy reads its goal, on any episode store.

Examples:
    aimc eval goal-gain --data data_val                                   # the shipped agent
    aimc eval goal-gain --checkpoint runs/ppo/bundle --data data_val --segments 512 --out runs/gg.json
    aimc eval goal-gain --checkpoint runs/agent --data data_val --preset instruct --set segment.segment_len=128

Prints the NLL per frame with the relabelled text goals, with the goals zeroed, and their difference (the
training loop's `val/goal_gain`) with a 95 % interval over batches of segments. Pass stores the agent was not
trained on (e.g. `aimc collect --seed N` with a seed no training store used).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import eval_app


@eval_app.command("goal-gain")
def eval_goal_gain_cmd(
    data: list[str] = typer.Option(..., help="Episode store(s) to cut segments from; repeat for several."),
    checkpoint: str | None = typer.Option(None, help="Agent bundle directory; default: the shipped agent."),
    preset: str = typer.Option("instruct-lstm", help="Training preset whose segments, goals and labels are used "
                               "(the one the agent was trained with)."),
    set_: list[str] = typer.Option([], "--set", help="key=value overrides on the preset."),
    segments: int = typer.Option(256, min=1, help="Segments scored, evenly spread over the stores."),
    batch_size: int = typer.Option(8, min=1, help="Segments per batch (the interval is over batches)."),
    seed: int = typer.Option(0, help="Seeds the segments' goal draws, as validation does."),
    threads: int = typer.Option(0, min=0, help="torch CPU threads (0 = default)."),
    out: Path | None = typer.Option(None, help="Also write the result as JSON here."),
) -> None:
    """Measure the NLL a policy gains from its goal (nats per frame)."""
    from aimc.core.io import atomic_write_json
    from aimc.eval.goal_gain import GoalGainConfig, measure_goal_gain, summary_line

    if out is not None and out.is_dir():
        from aimc.core.errors import AimcError

        raise AimcError(f"--out {out} is a directory; give a file path such as {out / 'goal_gain.json'}")
    cfg = GoalGainConfig(checkpoint=checkpoint or "", data=list(data), preset=preset, overrides=list(set_),
                         segments=segments, batch_size=batch_size, seed=seed, threads=threads)
    result = measure_goal_gain(cfg)
    typer.echo(summary_line(result))
    if out is not None:
        atomic_write_json(out, result)
        typer.echo(f"wrote {out}")
