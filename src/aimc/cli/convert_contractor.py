"""`aimc convert contractor`: OpenAI's contractor recordings (`*.mp4` + `*.jsonl`) -> an aimc episode store.

Examples:
    aimc convert contractor raw/7.x --out data/contractor --workers 2 --seed 0
    aimc convert contractor raw/7.x --out data/contractor              # resumes: converts only what is missing
    aimc convert contractor raw/8.x --out data/house --official-quirks  # the loader's rounding quirks, as released
    aimc convert contractor raw/7.x --out data/c160 --size 160x256 --cursor Video-Pre-Training/cursors/mouse_cursor_white_16x16.png

Null actions are dropped, attack stuck at the start is fixed, hotbar changes become `hotbar.N`, the cursor is
drawn over open GUIs and the camera is 0.15 degrees per mouse unit, as in OpenAI's `data_loader.py`
(docs/minecraft.md lists each rule and quirk). Each stored action is the VPT joint index
`buttons * 121 + camera` (`vpt_joint_code`); `infos.jsonl` keeps the exact MineRL action. A damaged trajectory
is skipped with one stderr line and counted; `--strict` stops at the first one instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from aimc.cli.app import convert_app


def vpt_joint_code(action: Mapping[str, Any]) -> int:
    """MineRL env action -> the VPT joint index `buttons * 121 + camera`: the policy's two head targets in one int
    (`divmod(code, 121)` gives them back), the Minecraft world's action. The converter takes the encoder as an
    argument, so a store can hold another action code; this is the one the CLI passes."""
    from aimc.envs.actions import env_to_joint_code

    return int(env_to_joint_code(action)[0])


def parse_size(text: str) -> tuple[int, int] | None:
    """'128x128' / '160x256' (HxW) / '128' (square) -> (H, W); 'native' -> None (the video's resolution)."""
    from aimc.core.errors import ConfigError

    if text.strip().lower() == "native":
        return None
    parts = text.lower().split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise ConfigError(f"--size must look like 128x128 (HxW), 128 or native, got {text!r}")
    return (sides[0], sides[-1])


@convert_app.command("contractor")
def convert_contractor_cmd(
    source: Path = typer.Argument(..., help="Directory with the recordings (<name>.mp4 + <name>.jsonl, searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Episode-store directory (created if missing; resumed if present)."),
    workers: int = typer.Option(1, help="Parallel worker processes."),
    size: str = typer.Option("128x128", help="Stored frame size HxW (VPT's policy input), or 'native'."),
    official_quirks: bool = typer.Option(False, "--official-quirks", help="Reproduce every rounding quirk of the "
                                         "official loader (camera in whole degrees, truncated cursor blend, hotbar-only lines dropped)."),
    quirk: list[str] = typer.Option([], "--quirk", help="Reproduce one quirk: camera_int, cursor_floor, hotbar_on_null."),
    min_length: int = typer.Option(1, help="Skip trajectories with fewer kept steps (STEVE-1 used 1000)."),
    missing_frames: int = typer.Option(0, help="jsonl lines allowed to lack a video frame at the end before the video counts as truncated."),
    cursor: Path | None = typer.Option(None, help="RGBA cursor image (default: a built-in 16x16 arrow)."),
    seed: int = typer.Option(0, help="Seed recorded with every episode (the conversion draws no random numbers)."),
    strict: bool = typer.Option(False, help="Fail at the first damaged trajectory instead of skipping it."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Convert contractor recordings with the official loader's semantics into an episode store."""
    from aimc.core.seeding import seed_everything
    from aimc.data.contractor.convert import ContractorConfig, SkippedTrajectories, convert_contractor

    seed_everything(seed)
    cfg = ContractorConfig(source=str(source), out=str(out), size=parse_size(size),
                           quirks=(["official"] if official_quirks else []) + list(quirk), min_length=min_length,
                           missing_frames=missing_frames, cursor=str(cursor) if cursor else None, workers=workers,
                           seed=seed)
    s = convert_contractor(cfg, vpt_joint_code, skipped=SkippedTrajectories(strict=strict), progress=not quiet)
    reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(s["skipped_by_reason"].items()))
    top = ", ".join(f"{k} {v}" for k, v in sorted(s["events"].items(), key=lambda kv: (-kv[1], kv[0]))[:6])
    typer.echo(
        f"converted {s['converted']} of {s['trajectories']} trajectories into {out} ({s['already_converted']} already "
        f"present, {s['skipped_trajectories']} skipped{': ' + reasons if reasons else ''}): {s['steps']} steps, "
        f"{s['null_lines_dropped']} null actions dropped" + (f"; events: {top}" if top else "")
    )
