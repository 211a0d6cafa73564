"""``aimc convert vpt MODEL WEIGHTS --out DIR``: official VPT / STEVE-1 checkpoint -> aimc safetensors dir.

``aimc convert steve1 MODEL WEIGHTS --mineclip attn.pth --prior steve1_prior.pt --out steve1``: the released
STEVE-1 (policy, MineCLIP, prior, guidance 6) as one agent bundle for `aimc play --world minecraft` and
`aimc eval tasks --suite minecraft-early` (`aimc.eval.steve1`, docs/minecraft.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import convert_app


@convert_app.command("vpt")
def convert_vpt(
    model: Path = typer.Argument(
        ..., help="Official .model file (architecture + head temperature), e.g. 2x.model"
    ),
    weights: Path = typer.Argument(..., help=".weights state dict (VPT) or steve1.weights"),
    out: Path = typer.Option(..., "--out", help="Output directory (config.json + model.safetensors)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory"),
) -> None:
    """Convert an official VPT/STEVE-1 checkpoint; loading is strict and the .model is read safely."""
    from aimc.core.io import check_writable_dir
    from aimc.policy.vpt.load import load_official, save_pretrained

    check_writable_dir(out.parent if out.parent != Path("") else Path("."))
    policy = load_official(model, weights)
    save_pretrained(
        policy,
        out,
        overwrite=overwrite,
        source={"model": model.name, "weights": weights.name, "converted_by": "aimc convert vpt"},
    )
    from aimc.cli.inspect import describe_policy

    typer.echo(f"wrote {out}")
    typer.echo(describe_policy(policy.config, policy.num_parameters()))


@convert_app.command("steve1")
def convert_steve1_cmd(
    model: Path = typer.Argument(..., help="VPT's 2x.model (the architecture STEVE-1 fine-tuned)."),
    weights: Path = typer.Argument(..., help="steve1.weights"),
    mineclip: Path = typer.Option(..., help="MineCLIP attn.pth (or a directory from `aimc convert mineclip`)."),
    prior: Path = typer.Option(..., help="steve1_prior.pt (or a saved prior directory)."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to write."),
    backend: str = typer.Option("minestudio", help="Minecraft backend the bundle plays in: minestudio or minerl."),
    cond_scale: float = typer.Option(6.0, help="Default guidance scale (STEVE-1: 6 for text, 7 for visual goals)."),
    mineclip_options: list[str] = typer.Option([], "--mineclip-set", help="MineCLIP field the weights cannot tell "
                                               "(as `aimc convert mineclip --set`)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle directory."),
) -> None:
    """Assemble the released STEVE-1 into one agent bundle (policy + MineCLIP + prior, Minecraft world)."""
    from aimc.core.config import parse_overrides
    from aimc.eval.steve1 import convert_steve1

    s = convert_steve1(model, weights, mineclip, prior, out, backend=backend, cond_scale=cond_scale,
                       mineclip_options=parse_overrides(mineclip_options), overwrite=overwrite)
    b = s["bundle"]
    md5 = f"; MineCLIP md5 {s['mineclip_md5']}" if s["mineclip_md5"] else ""
    typer.echo(f"wrote {out}: STEVE-1 policy ({s['parameters']:,} parameters, {s['goal_dim']}-d goals), MineCLIP, "
               f"prior, cond_scale {b['cond_scale']:g}, world minecraft {b['world_config']}{md5}")
