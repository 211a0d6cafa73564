"""Atomic, resumable training checkpoints and policy initialisation.

Layout of a run directory::

    checkpoints/step_000100/policy/{config.json,model.safetensors}   # aimc policy dir
    checkpoints/step_000100/train_state/{optimizer.pt,rng.pt,state.json}
    checkpoints/last                                                 # "step_000100"
    best/  latest/                                                   # policy dirs

The run-directory rules are `aimc.core.rundir.RunDir`'s: a checkpoint directory is built in a hidden
temp dir and renamed into place, and ``last`` is rewritten atomically only after that, so a run killed
with SIGKILL at any instant resumes from the previous complete checkpoint. Everything is read back with ``weights_only=True`` / safetensors (no pickle).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from aimc.core.errors import CheckpointError
from aimc.core.io import atomic_write_bytes, atomic_write_json
from aimc.core.rundir import POINTER, RunDir
from aimc.policy import VPTPolicy, from_pretrained, save_pretrained
from aimc.policy.vpt.load import check_state_dict
from aimc.train.bundle import BUNDLE_FILE, AgentBundle

LAST = POINTER  # checkpoints/last names the newest complete checkpoint
GOAL_LAYER_KEYS = ("net.mineclip_embed_linear.weight", "net.mineclip_embed_linear.bias")


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(
    run_dir: str | Path, step: int, policy: VPTPolicy, optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write checkpoints/step_<step> atomically, point ``last`` at it, prune older ones beyond `keep`."""
    rundir = RunDir(run_dir)
    with rundir.checkpoint(step, keep=keep) as tmp:
        save_pretrained(policy, tmp / "policy")
        ts = tmp / "train_state"
        ts.mkdir()
        atomic_write_bytes(ts / "optimizer.pt", _torch_bytes(optimizer.state_dict()))
        atomic_write_bytes(ts / "rng.pt", _torch_bytes({"torch": torch.get_rng_state()}))
        atomic_write_json(ts / "state.json", state)
    return rundir.checkpoints / rundir.checkpoint_name(step)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The directory ``last`` names (None for a fresh run)."""
    path = RunDir(run_dir).latest()
    if path is not None and not (path / "train_state" / "state.json").is_file():
        last = path.parent / LAST
        raise CheckpointError(f"{last} names {path.name}, which is incomplete; delete {last} to restart the run")
    return path


def load_checkpoint(path: Path, policy: VPTPolicy, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights (strict), optimiser and torch RNG in place; return the saved loop state."""
    sd = load_file(str(path / "policy" / "model.safetensors"))
    check_state_dict(policy, sd, source=str(path))
    policy.load_state_dict(sd, strict=True)
    try:
        opt = torch.load(path / "train_state" / "optimizer.pt", weights_only=True, map_location="cpu")
        rng = torch.load(path / "train_state" / "rng.pt", weights_only=True, map_location="cpu")
    except Exception as e:  # truncated or foreign files
        raise CheckpointError(f"{path}: unreadable train_state ({e})") from None
    optimizer.load_state_dict(opt)
    torch.set_rng_state(rng["torch"])
    return json.loads((path / "train_state" / "state.json").read_text())


def resolve_policy_dir(path: str | Path) -> Path:
    """A policy dir itself, an agent bundle (its policy), or a run dir (best/, else latest/, else last ckpt)."""
    path = Path(path)
    if (path / BUNDLE_FILE).is_file():
        return AgentBundle.read(path).policy_dir()
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    for sub in ("best", "latest"):
        if (path / sub / "config.json").is_file():
            return path / sub
    ckpt = latest_checkpoint(path) if path.is_dir() else None
    if ckpt is not None:
        return ckpt / "policy"
    raise CheckpointError(f"{path} is not a policy dir, agent bundle or training run")


def init_policy_from(policy: VPTPolicy, path: str | Path) -> list[str]:
    """Copy weights from `path` into `policy` strictly, except that STEVE-1's new goal layer may be absent
    from the source (an unconditional pretrain / VPT model); returns the keys left at their fresh init."""
    src_dir = resolve_policy_dir(path)
    src = from_pretrained(src_dir)
    sd = src.state_dict()
    fresh = [k for k in GOAL_LAYER_KEYS if k in policy.state_dict() and k not in sd]
    own = policy.state_dict()
    for k in fresh:
        sd[k] = own[k]
    check_state_dict(policy, sd, source=str(src_dir))
    policy.load_state_dict(sd, strict=True)
    return fresh
