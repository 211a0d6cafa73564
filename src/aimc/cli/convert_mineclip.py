"""`aimc convert mineclip`: a MineCLIP checkpoint in the released layout (`attn.pth`, `avg.pth` or one you
fine-tuned) -> aimc safetensors directory.

Examples:
    aimc convert mineclip data/weights/mineclip/attn.pth --out models/mineclip_attn --seed 0
    aimc convert mineclip my_finetune.pth --out models/mine --set resolution=[128,128] --set text_heads=4
    aimc embed --embedder models/mineclip_attn --data data/crafter --name attn

The checkpoint is read with `weights_only=True`; the architecture is read from its tensor shapes (as `aimc
convert vpt` does), its keys (788 for the released attn, 761 for avg) are checked strictly against it, and one
copy of each weight is written (`config.json` + `model.safetensors`). What the weights cannot tell (head counts,
the frame size when the patch count does not fit 160x256) follows the released code's conventions, printed as
"assumed"; `--set key=value` gives them (MineCLIPConfig fields).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import convert_app


@convert_app.command("mineclip")
def convert_mineclip_cmd(
    checkpoint: Path = typer.Argument(..., help="MineCLIP checkpoint in the released layout (attn.pth, avg.pth, a fine-tune)."),
    out: Path = typer.Option(..., "--out", help="Output directory for the converted model."),
    options: list[str] = typer.Option([], "--set", help="Architecture field the weights cannot tell, key=value "
                                      "(vision_heads, text_heads, temporal_dim_head, resolution=[H,W])."),
    seed: int = typer.Option(0, help="Seed (conversion is deterministic; seeds the throwaway initial weights)."),
) -> None:
    """Convert a MineCLIP checkpoint, architecture and variant read from its tensors."""
    from aimc.core.config import parse_overrides
    from aimc.core.io import atomic_dir
    from aimc.core.seeding import seed_everything
    from aimc.embed.mineclip import convert_mineclip

    seed_everything(seed)
    given = parse_overrides(options)
    with atomic_dir(out, overwrite=False) as tmp:
        s = convert_mineclip(checkpoint, tmp, **given)
    md5 = "matches the official release" if s["official_md5"] else "differs from the official release"
    c = s["config"]
    arch = (f"vision {c['vision_width']}x{c['vision_layers']} ({c['vision_heads']} heads) at {c['resolution'][0]}x"
            f"{c['resolution'][1]}, text {c['text_width']}x{c['text_layers']} ({c['text_heads']} heads), embed {c['embed_dim']}")
    if c["variant"] == "attn":
        arch += f", temporal {c['temporal_layers']} layers x {c['temporal_heads']} heads of {c['temporal_dim_head']}"
    typer.echo(
        f"converted MineCLIP {s['variant']} ({s['checkpoint_keys']} keys, {s['parameters']:,} parameters) "
        f"to {out}; md5 {s['md5']} {md5}"
    )
    typer.echo(f"architecture: {arch}" + (f"; assumed (not in the weights): {', '.join(s['assumed'])}" if s["assumed"] else ""))
