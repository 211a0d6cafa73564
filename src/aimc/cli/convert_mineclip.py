"""`aimc convert mineclip`: released MineCLIP `attn.pth` / `avg.pth` -> aimc safetensors directory.

Examples:
    aimc convert mineclip data/weights/mineclip/attn.pth --out models/mineclip_attn
    aimc embed --embedder models/mineclip_attn --data data/crafter --name attn

The checkpoint is read with `weights_only=True`, its 788 (attn) / 761 (avg) keys are checked strictly,
and one copy of each weight is written (`config.json` + `model.safetensors`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import convert_app


@convert_app.command("mineclip")
def convert_mineclip_cmd(
    checkpoint: Path = typer.Argument(..., help="Released MineCLIP checkpoint (attn.pth or avg.pth)."),
    out: Path = typer.Option(..., "--out", help="Output directory for the converted model."),
) -> None:
    """Convert a released MineCLIP checkpoint (variant detected from its keys)."""
    from aimc.core.io import atomic_dir
    from aimc.embed.mineclip import convert_mineclip

    with atomic_dir(out, overwrite=False) as tmp:
        s = convert_mineclip(checkpoint, tmp)
    md5 = "matches the official release" if s["official_md5"] else "differs from the official release"
    typer.echo(
        f"converted MineCLIP {s['variant']} ({s['checkpoint_keys']} keys, {s['parameters']:,} parameters) "
        f"to {out}; md5 {s['md5']} {md5}"
    )
