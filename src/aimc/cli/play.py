"""`aimc play`: watch a trained agent follow an instruction in its world (Crafter, Minecraft).

Examples:
    aimc play "chop a tree"                                    # the shipped Crafter agent; writes play.mp4
    aimc play "chop a tree" --checkpoint runs/goal --steps 300 --video tree.mp4
    aimc play "collect a sapling" --checkpoint runs/goal --cond-scale 0 --seed 3     # no guidance
    aimc play "do this" --checkpoint runs/goal --visual-goal clip.mp4 --video out.mp4
    aimc play --world minecraft "chop a tree" --checkpoint steve1/ --steps 3000    # STEVE-1 (docs/minecraft.md)
    aimc play --world minecraft "chop a tree" --checkpoint steve1/ --set backend=minerl

Text becomes a goal through the bundle's embedder (and its prior, when the bundle has one);
`--visual-goal` uses the embedding of the clip's last 16 frames instead. Prints the events that happened.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import app


@app.command("play")
def play_cmd(
    instruction: str = typer.Argument(..., help="What the agent should do, e.g. 'chop a tree'."),
    checkpoint: Path | None = typer.Option(
        None, help="Agent bundle (a `aimc train policy` run dir or a pipeline's bundle/); default: the shipped agent."),
    cond_scale: float | None = typer.Option(None, help="Classifier-free guidance scale (default: the bundle's)."),
    steps: int = typer.Option(300, help="Steps to play (the episode also ends at death)."),
    seed: int = typer.Option(0, help="World seed and sampling seed."),
    video: Path | None = typer.Option(Path("play.mp4"), help="Annotated mp4 to write ('' for none)."),
    visual_goal: Path | None = typer.Option(None, help="Condition on this mp4 clip instead of the text."),
    size: int = typer.Option(384, help="Video frame size in pixels."),
    deterministic: bool = typer.Option(False, help="Greedy actions instead of sampling."),
    temperature: float | None = typer.Option(None, help="Sampling temperature (below 1: closer to the most likely "
                                             "action); default: the bundle's, else 1."),
    world: str | None = typer.Option(None, help="The world to play in; must be the agent's (default: the bundle's)."),
    planner: str | None = typer.Option(None, help="chain (sub-instructions from the world's recipe table), chain-event (the matched event's caption at the last step too), "
                                       "chain-night (and shelter at night), chain-rest "
                                       "(and \"sleep until morning\" at night), chain-prepare (and the night's kit from the afternoon) or none "
                                       "(the instruction on every step); default: the bundle's."),
    world_options: list[str] = typer.Option([], "--set", help="World option key=value over the bundle's "
                                            "world_config, e.g. backend=minerl for Minecraft."),
) -> None:
    """Run a bundle's agent on an instruction and print what happened."""
    from aimc.core.config import parse_overrides
    from aimc.core.errors import AimcError
    from aimc.eval.play import play, shipped_bundle

    if video is not None and str(video) in ("", "."):
        video = None
    if checkpoint is None and world not in (None, "crafter"):
        raise AimcError(f"--world {world}: aimc ships a Crafter agent only; pass a {world} agent bundle with "
                        "--checkpoint (for Minecraft: `aimc convert steve1`, docs/minecraft.md)")
    r = play(checkpoint or shipped_bundle(), instruction, steps=steps, seed=seed, cond_scale=cond_scale, video=video,
             visual_goal=visual_goal, size=size, deterministic=deterministic, world=world,
             world_config=parse_overrides(world_options), planner=planner, temperature=temperature)
    counts = ", ".join(f"{k} x{v}" for k, v in sorted(r["counts"].items(), key=lambda kv: -kv[1])) or "no events"
    typer.echo(f"{r['instruction']}: {r['steps']} steps; {counts}")
    notes = sorted([(step, event) for step, event in r["events"]] + [(step, f"now: {text}") for step, text in r["subgoals"]])
    for step, event in notes:
        typer.echo(f"  step {step}: {event}")
    if r["video"]:
        typer.echo(f"wrote {r['video']}")
