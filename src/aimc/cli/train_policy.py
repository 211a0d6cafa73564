"""`aimc train policy`: STEVE-1 behaviour cloning (unconditional pretrain, goal-conditioned, fine-tunes).

Examples:
    aimc train policy --preset pretrain --data data/crafter --out runs/pretrain
    aimc train policy --preset goal --data data/crafter --out runs/goal --set init_from=runs/pretrain \\
        --set embedder=runs/embedder/model --set segment.embed_name=videotext --seed 0
    aimc train policy --preset goal --data data/crafter --out runs/goal --set n_frames=2000000   # resume, longer
    aimc train policy --preset mixed --data data/task:0.7 --data data/crafter:0.3 --out runs/mix \\
        --set init_from=runs/goal
    accelerate launch --multi_gpu --num_processes 2 -m aimc train policy --preset goal ...   # 2 processes (CPU too)

A run dir holds checkpoints/ (+ `last`), best/, latest/, metrics.jsonl, tensorboard/, train_config.json
and bundle.json, so `aimc play --checkpoint <out>` and `aimc eval tasks --checkpoint <out>` accept it.
Re-running the same command resumes from the last checkpoint. A damaged or unusable episode is skipped with
one line (stderr) naming it and the reason, and the summary counts them by reason; `--strict` stops instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aimc.cli.app import CRASH_RETRIES_HELP, supervised, train_app


def parse_data(items: list[str]) -> list[dict[str, object]]:
    """'dir' or 'dir:weight' -> [{path, weight}] (a weight suffix makes a mixture)."""
    from aimc.core.errors import ConfigError

    out = []
    for item in items:
        path, sep, weight = item.rpartition(":")
        if sep and path and weight.replace(".", "", 1).isdigit():
            out.append({"path": path, "weight": float(weight)})
        elif sep and path:
            raise ConfigError(f"--data {item!r}: the part after ':' must be a weight like 0.7")
        else:
            out.append({"path": item, "weight": 1.0})
    return out


@train_app.command("policy")
def train_policy_cmd(
    preset: str = typer.Option("goal", help="pretrain, goal, finetune, mixed, progressive, fixed-prompt or test."),
    data: list[str] = typer.Option([], help="Episode store, optionally DIR:WEIGHT; repeat for a mixture."),
    out: Path = typer.Option(..., help="Run directory (resumed when it already holds this run)."),
    seed: int | None = typer.Option(None, help="Seed for init, split, sample order and relabelling."),
    set_: list[str] = typer.Option([], "--set", help="Overrides, e.g. --set lr=1e-4 --set segment.p_uncond=0.2"),
    quiet: bool = typer.Option(False, help="No progress bar."),
    strict: bool = typer.Option(False, help="Fail at a damaged or unusable episode instead of skipping it."),
    crash_retries: int | None = typer.Option(None, help=CRASH_RETRIES_HELP),
) -> None:
    """Train (or resume) a policy by behaviour cloning with hindsight-relabelled goals."""
    from aimc.core.errors import ConfigError
    from aimc.data.index import Skipped, skip_summary
    from aimc.train.config import load_train_config
    from aimc.train.loop import run

    fields = {"out": str(out), "seed": seed, "data": parse_data(data) if data else None}
    cfg = load_train_config(preset, overrides=set_, **fields)
    if cfg.cond_scale > 0 and cfg.segment.p_uncond == 0 and (cfg.embedder or cfg.fixed_prompt):
        # The bundle would play guided by default against an unconditional branch this run never trains
        # (measured 2026-12-07: such a bundle picked one action with p ~ 1 where the data's label had p ~ 0.5).
        raise ConfigError(f"cond_scale {cfg.cond_scale:g} guides against the unconditional goal, which segment.p_uncond=0 "
                          "never trains; set cond_scale=0 (no guidance) or segment.p_uncond > 0")
    supervised("aimc train policy", crash_retries, out)
    s = run(cfg, progress=not quiet, skipped=Skipped(strict=strict))
    best = f", best val loss {s['best_val']:.4f}" if s["best_val"] is not None else ""
    typer.echo(
        f"{'stopped' if s['interrupted'] else 'trained'} {s['step']} steps ({s['frames']} frames, {s['processes']} "
        f"process(es)) on {s['train_segments']} segments, {skip_summary(s['skipped_by_reason']) or '0 episode(s) skipped'}, "
        f"{s['invalid_items']} unreadable item(s){best}; bundle in {s['out']}"
    )
