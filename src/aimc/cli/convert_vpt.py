"""``aimc convert vpt MODEL WEIGHTS --out DIR``: official VPT / STEVE-1 checkpoint -> aimc safetensors dir."""

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
