"""``aimc inspect PATH``: describe a checkpoint. Dispatches by format through ``INSPECTORS``.

Other stages add formats with ``register_inspector(name, detect, describe)``: ``detect(path) -> bool``
must be cheap; ``describe(path, extra) -> str`` returns the text to print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from aimc.cli.app import app
from aimc.core.errors import AimcError

Detect = Callable[[Path], bool]
Describe = Callable[[Path, "Path | None"], str]
INSPECTORS: list[tuple[str, Detect, Describe]] = []


def register_inspector(name: str, detect: Detect, describe: Describe) -> None:
    INSPECTORS.append((name, detect, describe))


def describe_policy(cfg, n_params: int, temperature_known: bool = True) -> str:  # type: ignore[no-untyped-def]
    from aimc.policy.vpt.config import preset_name

    name = preset_name(cfg)
    heads = ", ".join(f"{k} {v}" for k, v in cfg.head_sizes.items())
    temp = f"{cfg.temperature:g}" + ("" if temperature_known else " (default; not stored in a .weights file)")
    lines = [
        f"architecture : VPT policy{f' (preset {name})' if name else ''}",
        f"parameters   : {n_params:,}",
        f"image        : {cfg.img_shape[0]}x{cfg.img_shape[1]} RGB, ImpalaCNN channels {'/'.join(map(str, cfg.chans))}",
        f"transformer  : {cfg.n_layers} blocks, hidsize {cfg.hidsize}, {cfg.heads} heads, memory {cfg.memory} frames",
        f"goal input   : {'yes, dim ' + str(cfg.goal_dim) if cfg.goal_dim else 'no'}",
        f"action heads : {heads} ({cfg.action_head})",
        f"temperature  : {temp}",
    ]
    return "\n".join(lines)


def _is_policy_dir(p: Path) -> bool:
    if not (p.is_dir() and (p / "config.json").is_file()):
        return False
    import json

    try:
        return json.loads((p / "config.json").read_text()).get("format") == "aimc.policy.vpt"
    except (OSError, ValueError):
        return False


def _describe_policy_dir(p: Path, extra: Path | None) -> str:
    from aimc.policy.vpt.config import VPTConfig
    from aimc.policy.vpt.load import read_pretrained_meta

    meta = read_pretrained_meta(p)
    cfg = VPTConfig.from_dict(meta["config"])
    text = f"format       : aimc policy dir (format version {meta['format_version']})\n"
    text += describe_policy(cfg, int(meta.get("num_parameters", 0)))
    src = meta.get("source") or {}
    if src:
        text += "\nsource       : " + ", ".join(f"{k}={v}" for k, v in sorted(src.items()))
    return text


def _describe_official(p: Path, extra: Path | None) -> str:
    from aimc.policy.vpt.load import infer_config, load_state_dict_file, read_model_file, strip_prefix

    model, weights = (p, extra) if p.suffix == ".model" else (extra, p)
    mf = read_model_file(model) if model is not None else None
    if weights is None:
        assert mf is not None
        kw = mf.net_kwargs
        lines = [
            "format       : official VPT .model (architecture only; pass --weights for a parameter count)",
            f"hidsize      : {kw.get('hidsize')}, heads {kw.get('attention_heads')}, layers {kw.get('n_recurrence_layers')}",
            f"impala width : {kw.get('impala_width')}, image {kw.get('img_shape')}",
            f"temperature  : {mf.temperature}",
        ]
        return "\n".join(lines)
    sd, prefix = strip_prefix(load_state_dict_file(weights))
    cfg = infer_config(sd, mf.net_kwargs if mf else None, mf.temperature if mf else None)
    n = sum(t.numel() for t in sd.values())
    kind = (
        "official .model + .weights" if mf else "official .weights state dict (config inferred from shapes)"
    )
    text = f"format       : {kind}{f' (key prefix {prefix!r} stripped)' if prefix else ''}\n"
    return text + describe_policy(cfg, n, temperature_known=mf is not None and mf.temperature is not None)


register_inspector("aimc-policy", _is_policy_dir, _describe_policy_dir)
register_inspector(
    "vpt-official",
    lambda p: p.is_file() and p.suffix in (".model", ".weights", ".pt", ".pth"),
    _describe_official,
)


@app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="aimc model dir, official .model, or .weights / steve1.weights"),
    weights: Path | None = typer.Option(None, "--weights", help="The .weights file that goes with a .model"),
) -> None:
    """Describe a checkpoint: architecture, parameter count, goal input, head temperature."""
    if not path.exists():
        raise AimcError(f"{path} does not exist")
    for _name, detect, describe in INSPECTORS:
        if detect(path):
            typer.echo(describe(path, weights))
            return
    raise AimcError(f"{path}: unknown checkpoint format; known: {', '.join(n for n, _, _ in INSPECTORS)}")
