"""`aimc collect` and `aimc video`: record demonstrator episodes, and watch one.

Examples:
    aimc collect --world crafter --episodes 100 --workers 2 --out data/crafter --seed 0
    aimc collect --episodes 200 --out data/crafter          # resumes: only missing episodes are played
    aimc collect --task make_wood_pickaxe --episodes 50 --max-steps 300 --out data/pickaxe   # task demonstrations
    aimc video data/crafter/ep000000_s0 --out ep0.mp4 --size 512
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import app
from aimc.core.config import build_config
from aimc.envs import DEFAULT_WORLD


@app.command("collect")
def collect_cmd(
    out: Path = typer.Option(..., "--out", help="Episode-store directory (created if missing; resumed if present)."),
    world: str = typer.Option(DEFAULT_WORLD, help="World name (any registered world, see aimc.envs.available_worlds)."),
    episodes: int = typer.Option(10, help="Number of episodes the store should hold."),
    workers: int = typer.Option(1, help="Parallel worker processes."),
    seed: int = typer.Option(0, help="Collection seed (episode i plays world seed derived from (seed, i))."),
    agent: str = typer.Option("demonstrator", help="'demonstrator' (scripted free play) or 'random'."),
    max_steps: int = typer.Option(1000, help="Step cap per episode."),
    task: str | None = typer.Option(None, help="Task demonstrations: the demonstrator pursues this achievement "
                                    "(e.g. collect_wood) and each episode ends at its success."),
    size: int = typer.Option(64, help="Observation size in pixels."),
    config: Path | None = typer.Option(None, help="YAML with CollectConfig fields (CLI flags win)."),
    set_: list[str] = typer.Option([], "--set", help="Extra overrides, e.g. --set agent_config.noise=0.1"),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Record episodes of a scripted agent into an episode store (resumable, Ctrl-C safe)."""
    from aimc.data.collect import CollectConfig, collect

    flags = {"out": str(out), "world": world, "episodes": episodes, "workers": workers, "seed": seed,
             "agent": agent, "max_steps": max_steps, "world_config": {"size": size}}
    if task is not None:
        flags["task"] = task
    cfg = build_config(CollectConfig, config, flags, overrides=set_)
    s = collect(cfg, progress=not quiet)
    top = ", ".join(f"{k} {v}" for k, v in sorted(s["events"].items(), key=lambda kv: -kv[1])[:6])
    typer.echo(
        f"collected {s['collected']} episode(s) ({s['skipped_existing']} already present), {s['frames']} frames "
        f"at {s['frames_per_s']:.0f} frames/s into {out}" + (f"; events: {top}" if top else "")
    )


@app.command("video")
def video_cmd(
    episode: Path = typer.Argument(..., help="Episode directory."),
    out: Path | None = typer.Option(None, help="Output mp4 (default: <episode>.mp4 next to it)."),
    size: int = typer.Option(512, help="Frame side in pixels."),
    fps: int | None = typer.Option(None, help="Frames per second (default: the episode's)."),
) -> None:
    """Render a high-resolution mp4 of an episode with its events written on the frames."""
    from aimc.core.errors import AimcError
    from aimc.data.video import render_episode_video

    if size < 16:
        raise AimcError(f"--size must be at least 16, got {size}")
    out = out or episode.with_suffix(".mp4")
    r = render_episode_video(episode, out, size=size, fps=fps)
    typer.echo(f"wrote {r['out']} ({r['frames']} frames, {r['size']}px, {r['source']})")
