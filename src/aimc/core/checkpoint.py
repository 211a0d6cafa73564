"""`save_pretrained` / `from_pretrained` plumbing shared by every persistable model (embedders, priors, policies).

A model directory is `config.json` ({"type": <registry name>, "config": {...}}) + `model.safetensors`,
written atomically and loaded strictly: a mismatch names the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aimc.core.errors import CheckpointError
from aimc.core.io import atomic_write_json, save_safetensors_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def state_diff(
    expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) key lists, sorted; all empty when the two layouts agree."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shaped = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    return missing, unexpected, shaped


def key_diff(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], limit: int = 5) -> str:
    """One-line summary of missing / unexpected / mis-shaped keys ('' when they agree)."""
    missing, unexpected, shaped = state_diff(expected, got)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:limit]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:limit]})")
    if shaped:
        ex = [f"{k}: want {tuple(expected[k])} got {tuple(got[k])}" for k in shaped[:limit]]
        parts.append(f"{len(shaped)} mis-shaped ({'; '.join(ex)})")
    return ", ".join(parts)


def load_strict(
    module: nn.Module, tensors: dict[str, torch.Tensor], where: str, keys: set[str] | None = None
) -> None:
    """Copy `tensors` into `module` requiring exactly the expected keys and shapes.

    `keys` restricts the expected set (e.g. to the canonical copy of aliased weights).
    """
    own = module.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items() if keys is None or k in keys}
    diff = key_diff(expected, {k: tuple(v.shape) for k, v in tensors.items()})
    if diff:
        raise CheckpointError(f"{where}: state does not match the model: {diff}")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(own[k].dtype))


def save_model_dir(
    path: str | Path, kind: str, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(tensors, path / WEIGHTS_FILE)
    atomic_write_json(path / CONFIG_FILE, {"type": kind, "config": config})
    return path


def read_model_dir(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """-> (config dict, tensors); errors name the directory and what is wrong with it."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(
            f"{path} is not a saved model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        meta = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file}: invalid JSON ({e.msg})") from None
    if meta.get("type") != kind:
        raise CheckpointError(f"{path} holds a {meta.get('type')!r} model, not {kind!r}")
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{weights}: cannot read safetensors ({e})") from None
    return meta.get("config", {}), tensors
