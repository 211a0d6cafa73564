"""`aimc serve`: a web page to type an instruction and watch the agent follow it live.

Examples:
    aimc serve                                           # the shipped agent on http://127.0.0.1:8000
    aimc serve --checkpoint runs/small/bundle --port 8080
    aimc serve --checkpoints runs/ --max-games 8         # the page picks among the bundles in runs/
    aimc serve --host 0.0.0.0 --idle-timeout 120         # reachable from other machines

The page streams the agent's view with the instruction and events drawn on it, compares instructions or
guidance scales side by side on one world seed, takes a short mp4 clip as a visual goal and downloads each
episode (mp4 + events). Details and the measured load: docs/serve.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import app
from aimc.serve.config import ServeConfig

D = ServeConfig()  # defaults live in the (torch-free) config


@app.command("serve")
def serve_cmd(
    checkpoint: Path | None = typer.Option(None, help="One agent bundle to play (default: the shipped agent)."),
    checkpoints: Path | None = typer.Option(None, help="A directory of agent bundles; the page picks one by name."),
    host: str = typer.Option(D.host, help="Interface to listen on (0.0.0.0 = every interface)."),
    port: int = typer.Option(D.port, help="TCP port (0 = any free port)."),
    seed: int = typer.Option(D.seed, help="World seed the page starts with (also the agent's sampling seed)."),
    max_games: int = typer.Option(D.max_games, help="Games open at once; one more is refused."),
    max_panels: int = typer.Option(D.max_panels, help="Instructions compared side by side in one game."),
    max_steps: int = typer.Option(D.max_steps, help="Longest episode (bounds the frames kept per game)."),
    idle_timeout: float = typer.Option(D.idle_timeout_s, help="Seconds before a game nobody uses or watches is closed."),
    max_upload_mb: float = typer.Option(D.max_upload_mb, help="Largest goal clip upload, in MB."),
    frame_size: int = typer.Option(D.frame_size, help="Pixels of the streamed and downloaded frames."),
    speed: float = typer.Option(D.speed, help="Steps per second a game starts at (0 = as fast as possible)."),
    threads: int = typer.Option(D.threads, help="torch threads shared by all games."),
    device: str = typer.Option(D.device, help="torch device for the agents."),
) -> None:
    """Serve a page to instruct the agent and watch it live."""
    from aimc.serve.server import run

    cfg = ServeConfig(
        checkpoint=None if checkpoint is None else str(checkpoint),
        checkpoints=None if checkpoints is None else str(checkpoints), host=host, port=port, seed=seed,
        max_games=max_games, max_panels=max_panels, max_steps=max_steps, idle_timeout_s=idle_timeout,
        max_upload_mb=max_upload_mb, frame_size=frame_size, speed=speed, threads=threads, device=device,
    )
    run(cfg, echo=typer.echo)
