"""MineCLIP as an aimc `Embedder`, plus loading/conversion of the released `attn.pth` / `avg.pth`.

The released files are `{"state_dict": {"model.<key>": tensor, ...}, ...}` with every CLIP weight
listed under three aliases (788 keys for attn, 761 for avg). Conversion reads the architecture from the tensor
shapes (`infer_config`: any size a user fine-tuned in the released layout, not only the released one), checks the
exact key set and shapes against it, loads strictly, and writes aimc's format (one copy of each weight,
safetensors).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimc.core.checkpoint import key_diff, load_strict, read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, CheckpointError
from aimc.embed.base import Embedder, check_frames, register_embedder, resolve_device
from aimc.embed.mineclip_model import (
    ALIAS_PREFIXES,
    MineCLIP,
    MineCLIPConfig,
    canonical_state_dict,
    infer_config,
    prepare_frames,
)
from aimc.embed.tokenizer import clip_tokenizer

OFFICIAL_MD5 = {"attn": "b5ece9198337cfd117a3bfbd921e56da", "avg": "d97a07f2830095a2016a8da22abcff52"}


@register_embedder("mineclip")
class MineCLIPEmbedder(Embedder):
    """Goal embeddings = MineCLIP `encode_video` (pre-adapter), text = `encode_text`, both 512-d, raw."""

    name = "mineclip"
    batch_frames = 16

    def __init__(self, model: MineCLIP, device: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.dim = model.cfg.embed_dim

    @classmethod
    def build(
        cls, device: str | None = None, weights: str | Path | None = None, **kwargs: Any
    ) -> MineCLIPEmbedder:
        if kwargs:
            raise AimcError(f"mineclip takes only weights=PATH, got option(s) {sorted(kwargs)}")
        if weights is None:
            raise AimcError(
                "MineCLIP needs weights: run `aimc convert mineclip attn.pth --out DIR` and pass --embedder DIR"
            )
        weights = Path(weights)
        if weights.is_dir():
            return cls.from_pretrained(weights, device=device)
        return cls(load_official_checkpoint(weights), device=device)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> MineCLIPEmbedder:
        config, tensors = read_model_dir(path, cls.name)
        if "temporal_dim_head" not in config:  # saved before the field existed: heads were embed_dim / heads wide
            config = {**config, "temporal_dim_head": int(config.get("embed_dim", 512)) // int(config.get("temporal_heads", 8))}
        cfg = from_dict(MineCLIPConfig, config, where=f"{path}/config.json")
        model = MineCLIP(cfg)
        load_strict(model, tensors, str(path), keys=set(canonical_state_dict(model)))
        return cls(model, device=device)

    def save_pretrained(self, path: str | Path) -> Path:
        return save_model_dir(path, self.name, to_dict(self.cfg), canonical_state_dict(self.model))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = clip_tokenizer()(texts, context_length=self.cfg.context_length).to(self.device)
        return self.model.encode_text(tokens).float().cpu()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> (T, 512) ViT features; other sizes are resized to the model's resolution as
        STEVE-1 prepares frames (`prepare_frames`: OpenCV-style bilinear, rounded to whole levels)."""
        check_frames(frames, 4, "MineCLIP encode_frames")
        x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames).to(self.device)
        return self.model.forward_image_features(prepare_frames(x, self.cfg.resolution)).float().cpu()

    @torch.no_grad()
    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_video_features(features.to(self.device)).float().cpu()

    @torch.no_grad()
    def reward_logits(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, 512) video features x (N, 512) text features -> (B, N) scaled cosine logits."""
        return self.model.forward_reward_head(video.to(self.device), text.to(self.device))[0].cpu()


def _file_md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Released `.pth` -> state dict with the `model.` prefix stripped (other entries are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MineCLIP checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip, disallowed globals
        raise CheckpointError(
            f"{path}: cannot read as a safe torch checkpoint ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(
            f"{path}: expected a dict with a 'state_dict' entry (the released MineCLIP layout)"
        )
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    if not state:
        raise CheckpointError(f"{path}: 'state_dict' has no 'model.'-prefixed keys")
    return state


def load_official_checkpoint(path: str | Path, cfg: MineCLIPConfig | None = None, **given: Any) -> MineCLIP:
    """Build MineCLIP and load a checkpoint in the released layout strictly (all keys, aliases included).

    Without `cfg` the architecture is read from the tensor shapes (`infer_config`, with `given` for what the
    weights cannot tell); with `cfg` only the variant is, from the keys (temporal-encoder keys mean `attn`).
    """
    state = read_official_state(path)
    variant = "attn" if any(k.startswith("temporal_encoder.") for k in state) else "avg"
    if cfg is None:
        try:
            cfg = infer_config(state, **given)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
    if cfg.variant != variant:
        cfg = dataclasses.replace(cfg, variant=variant)
    model = MineCLIP(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    diff = key_diff(expected, {k: tuple(v.shape) for k, v in state.items()})
    if diff:
        raise CheckpointError(f"{path}: not a MineCLIP {variant} checkpoint of this architecture: {diff}")
    for key in state:
        for alias in ALIAS_PREFIXES:
            if key.startswith(alias):
                canon = (
                    "clip_model.vision_model." + key[len("image_encoder.") :]
                    if alias == "image_encoder."
                    else "clip_model." + key[len(alias) :]
                )
                if not torch.equal(state[key], state[canon]):
                    raise CheckpointError(
                        f"{path}: aliased weights {key} and {canon} differ; the file is inconsistent"
                    )
    model.load_state_dict(state, strict=True)
    return model


def convert_mineclip(path: str | Path, out: str | Path, cfg: MineCLIPConfig | None = None, **given: Any) -> dict[str, Any]:
    """`aimc convert mineclip`: a checkpoint in the released layout -> aimc model dir; returns a summary
    (variant, keys, parameters, md5 match, the architecture and which of its fields were assumed)."""
    from aimc.embed.mineclip_model import CONVENTIONS

    path = Path(path)
    model = load_official_checkpoint(path, cfg, **given)
    MineCLIPEmbedder(model, device="cpu").save_pretrained(out)
    md5 = _file_md5(path)
    return {
        "variant": model.cfg.variant,
        "checkpoint_keys": len(model.state_dict()),
        "saved_tensors": len(canonical_state_dict(model)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "md5": md5,
        "official_md5": md5 == OFFICIAL_MD5[model.cfg.variant],
        "config": to_dict(model.cfg),
        "assumed": [] if cfg is not None else [k for k in CONVENTIONS if k not in given],
        "out": str(out),
    }
