"""`aimc demo`: the out-of-the-box job on the embedded world: the demonstrator plays, you watch the mp4.

Examples:
    aimc demo                              # 3 episodes into runs/demo, video at runs/demo/demo.mp4
    aimc demo --episodes 5 --steps 500 --seed 1 --out runs/demo1

Prints every kind of event the episodes hold with its count (none left out), and the video path; the video
ends with the state after the last action.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import app


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory (episodes/ and demo.mp4)."),
    episodes: int = typer.Option(3, help="Episodes to collect."),
    steps: int = typer.Option(400, help="Step cap per episode."),
    workers: int = typer.Option(1, help="Parallel worker processes."),
    seed: int = typer.Option(0, help="Seed (same seed, same episodes and video)."),
    size: int = typer.Option(384, help="Video frame side in pixels."),
) -> None:
    """Collect demonstrator episodes in Crafter and write a watchable mp4 of the first one."""
    from collections import Counter

    from aimc.core.errors import AimcError
    from aimc.core.io import check_writable_dir
    from aimc.data.collect import CollectConfig, collect
    from aimc.data.store import Episode, list_episodes
    from aimc.data.video import render_episode_video

    if episodes < 1:
        raise AimcError(f"--episodes must be at least 1, got {episodes}")
    check_writable_dir(out)
    cfg = CollectConfig(out=str(out / "episodes"), agent="demonstrator", episodes=episodes, max_steps=steps,
                        workers=workers, seed=seed)
    collect(cfg)
    paths = list_episodes(out / "episodes")[:episodes]  # this run's episodes, also when it resumed a store
    video = render_episode_video(paths[0], out / "demo.mp4", size=size, title="aimc demo: scripted demonstrator")
    counts = Counter(e for p in paths for step in Episode(p, check_video=False).events for e in step)
    events = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
    typer.echo(f"{len(paths)} episode(s) in {out / 'episodes'}; events: {events}")
    typer.echo(f"watch: {video['out']}")
