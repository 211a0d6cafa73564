"""open_clip / OpenAI-CLIP ViT checkpoints as goal embedders, with CLIP4Clip temporal pooling.

`open-clip-torch` cannot be imported without torchvision, so aimc reads its checkpoints directly: the
OpenAI-style ViT CLIP (`visual.conv1`, `visual.transformer.resblocks.N...`, `token_embedding`,
`transformer.resblocks.N...`, `text_projection`, `logit_scale`) is exactly the tower pair MineCLIP is
built from, so `mineclip_model`'s `VisionTransformer` / `TextTransformer` run it. Frames are resized
and center-cropped to the model's square input and normalised with OpenAI CLIP's mean/std; a
16-frame clip is pooled as in CLIP4Clip: `meanP` (mean of unit frame features) or `seqTransf` (a small
trainable temporal transformer, residual to the frame features, before the mean).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aimc.core.checkpoint import key_diff, load_strict, read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.embed.base import (
    WINDOW,
    Embedder,
    check_frames,
    frames_to_tensor,
    register_embedder,
    resolve_device,
)
from aimc.embed.mineclip_model import MineCLIPConfig, ResidualBlock, TextTransformer, VisionTransformer
from aimc.embed.tokenizer import clip_tokenizer

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_WIDTH = 64  # open_clip / OpenAI: heads = width // 64 (not recoverable from shapes)
CONFIG_NAMES = ("open_clip_config.json", "config.json")  # looked for beside the checkpoint

# (aimc module name, open_clip key) prefixes; the first match wins, so exact names come first.
_RENAMES = (
    ("visual.cls_token", "visual.class_embedding"),
    ("visual.pos_embed", "visual.positional_embedding"),
    ("visual.blocks.", "visual.transformer.resblocks."),
    ("visual.projection", "visual.proj"),
    ("text.token_embedding.", "token_embedding."),
    ("text.pos_embed", "positional_embedding"),
    ("text.blocks.", "transformer.resblocks."),
    ("text.ln_final.", "ln_final."),
    ("text.projection", "text_projection"),
)
# open_clip config options that change the maths; only these values are supported.
_FIXED_OPTIONS = {
    "vision_cfg": {
        "mlp_ratio": 4.0,
        "ls_init_value": None,
        "attentional_pool": False,
        "no_ln_pre": False,
        "pool_type": "tok",
        "final_ln_after_pool": False,
        "output_tokens": False,
        "timm_model_name": None,
        "input_patchnorm": False,
        "global_average_pool": False,
    },
    "text_cfg": {
        "mlp_ratio": 4.0,
        "ls_init_value": None,
        "pool_type": "argmax",
        "embed_cls": False,
        "no_causal_mask": False,
        "proj_bias": False,
        "hf_model_name": None,
        "hf_tokenizer_name": None,
        "ln_post_emb": False,
        "output_tokens": False,
        "proj_type": "linear",
        "pad_id": 0,
    },
}


@dataclass
class OpenCLIPConfig:
    """A ViT CLIP plus CLIP4Clip pooling; defaults are OpenAI/open_clip ViT-B/32 with meanP."""

    embed_dim: int = 512
    """shared image/text embedding width (`text_projection` columns)"""
    image_size: int = 224
    """square model input; frames are resized (shortest side) and center-cropped to it"""
    patch_size: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    quick_gelu: bool = True
    """OpenAI-trained weights use QuickGELU; open_clip's own (LAION) weights use GELU"""
    image_mean: tuple[float, float, float] = OPENAI_MEAN
    image_std: tuple[float, float, float] = OPENAI_STD
    resize_mode: Literal["shortest", "squash"] = "shortest"
    """`shortest`: resize the short side then center-crop (CLIP); `squash`: resize to the square directly"""
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    pooling: Literal["meanP", "seqTransf"] = "meanP"
    """CLIP4Clip temporal pooling of the 16 frame features"""
    temporal_layers: int = 4
    """seqTransf: transformer blocks (CLIP4Clip uses 4)"""
    temporal_heads: int = 0
    """seqTransf attention heads; 0 = embed_dim // 64 (at least 1)"""


def _to_openclip(key: str) -> str:
    for ours, theirs in _RENAMES:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return key


class SeqTransfPool(nn.Module):
    """CLIP4Clip `seqTransf`: frame features + learned positions -> transformer, residual to the features.

    The output of each block's branch is zero-initialised, so an untrained head equals `meanP` and
    training starts from it. The positions steer attention but are not left in the output.
    """

    def __init__(self, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.frame_pos = nn.Parameter(0.01 * torch.randn(WINDOW, dim))
        self.blocks = nn.ModuleList(ResidualBlock(dim, heads) for _ in range(layers))
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.mlp.c_proj):
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        pos = self.frame_pos[: feats.shape[1]].to(feats.dtype)
        x = feats + pos  # (N, L, D)
        for block in self.blocks:
            x = block(x)
        return x - pos  # = feats + sum of the blocks' residual branches


class OpenCLIPVideo(nn.Module):
    """Vision + text towers (MineCLIP's modules) and the optional seqTransf head."""

    def __init__(self, cfg: OpenCLIPConfig) -> None:
        super().__init__()
        towers = MineCLIPConfig(
            resolution=(cfg.image_size, cfg.image_size),
            patch_size=cfg.patch_size,
            vision_width=cfg.vision_width,
            vision_layers=cfg.vision_layers,
            vision_heads=cfg.vision_heads,
            embed_dim=cfg.embed_dim,
            text_width=cfg.text_width,
            text_layers=cfg.text_layers,
            text_heads=cfg.text_heads,
            context_length=cfg.context_length,
            vocab_size=cfg.vocab_size,
        )
        self.cfg = cfg
        self.visual = VisionTransformer(towers, quick_gelu=cfg.quick_gelu)
        self.text = TextTransformer(towers, quick_gelu=cfg.quick_gelu)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if cfg.pooling == "seqTransf":
            heads = cfg.temporal_heads or max(1, cfg.embed_dim // HEAD_WIDTH)
            self.temporal = SeqTransfPool(cfg.embed_dim, cfg.temporal_layers, heads)
        self.register_buffer("mean", torch.tensor(cfg.image_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.image_std).view(3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) in 0..1 -> (T, 3, S, S) normalised, S = image_size (CLIP's resize + center crop)."""
        s = self.cfg.image_size
        h, w = x.shape[-2:]
        if (h, w) != (s, s):
            if self.cfg.resize_mode == "squash":
                size = (s, s)
            else:  # short side -> s, long side truncated, as torchvision's Resize(int)
                size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
            x = F.interpolate(x, size=size, mode=self.cfg.interpolation, align_corners=False, antialias=True)
            x = x.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clips to uint8
            top, left = round((x.shape[-2] - s) / 2), round((x.shape[-1] - s) / 2)
            x = x[..., top : top + s, left : left + s]
        return (x - self.mean) / self.std

    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, L, D) raw frame features -> (N, D) unit clip embeddings (gradients flow into seqTransf)."""
        if self.cfg.pooling == "seqTransf":
            feats = self.temporal(feats)
        return F.normalize(F.normalize(feats, dim=-1).mean(dim=1), dim=-1)

    def openclip_state_dict(self) -> dict[str, torch.Tensor]:
        return {_to_openclip(k): v for k, v in self.state_dict().items()}


# ---------------------------------------------------------------------------- reading checkpoints


def read_openclip_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A `.safetensors` or torch state dict (optionally under `state_dict`, `module.`-prefixed) -> tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"open_clip checkpoint {path} does not exist (pass checkpoint=PATH to a local file)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, TorchScript archives, truncated files
        if "TorchScript" in str(e):
            raise CheckpointError(
                f"{path} is a TorchScript archive (OpenAI's .pt download); save its state_dict() and pass that"
            ) from None
        raise CheckpointError(
            f"{path}: cannot read as a safe state dict ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise CheckpointError(f"{path}: expected a dict of tensors (an open_clip / OpenAI CLIP state dict)")
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    if "logit_scale" in state and state["logit_scale"].numel() == 1:
        state["logit_scale"] = state["logit_scale"].reshape(())
    return state


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    ids = {k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)}
    return len([i for i in ids if i.isdigit()])


def infer_config(state: dict[str, torch.Tensor], where: str = "checkpoint") -> OpenCLIPConfig:
    """Architecture from tensor shapes (OpenAI CLIP's rules; heads = width // 64, at least 1)."""
    needed = (
        "visual.conv1.weight",
        "visual.positional_embedding",
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.weight",
        "text_projection",
    )
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(
            f"{where}: not an OpenAI-style ViT CLIP state dict (missing {missing}); ResNet, timm and HF-text "
            "open_clip models are not supported"
        )
    conv = state["visual.conv1.weight"]
    vision_width, patch = conv.shape[0], conv.shape[-1]
    grid = round(math.sqrt(state["visual.positional_embedding"].shape[0] - 1))
    text_width = state["ln_final.weight"].shape[0]
    return OpenCLIPConfig(
        embed_dim=state["text_projection"].shape[1],
        image_size=grid * patch,
        patch_size=patch,
        vision_width=vision_width,
        vision_layers=_count_blocks(state, "visual.transformer.resblocks."),
        vision_heads=max(1, vision_width // HEAD_WIDTH),
        text_width=text_width,
        text_layers=_count_blocks(state, "transformer.resblocks."),
        text_heads=max(1, text_width // HEAD_WIDTH),
        context_length=state["positional_embedding"].shape[0],
        vocab_size=state["token_embedding.weight"].shape[0],
    )


def config_from_json(path: str | Path) -> dict[str, Any]:
    """An open_clip model config (`ViT-B-32.json`) or hub `open_clip_config.json` -> OpenCLIPConfig fields."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the open_clip config ({e})") from None
    model = raw.get("model_cfg", raw) if isinstance(raw, dict) else None
    if not isinstance(model, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(model):
        raise ConfigError(f"{path}: not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
    for section, fixed in _FIXED_OPTIONS.items():
        for key, value in model[section].items():
            off = not value and not fixed.get(key)  # None / False / 0 all mean "feature off"
            if key in fixed and value != fixed[key] and not off:
                raise ConfigError(
                    f"{path}: {section}.{key}={value!r} is not supported (aimc runs OpenAI-style ViT CLIP only)"
                )
    vis, txt = model["vision_cfg"], model["text_cfg"]
    if isinstance(vis.get("layers"), list):
        raise ConfigError(f"{path}: ResNet image towers are not supported (vision_cfg.layers is a list)")
    size = vis.get("image_size", 224)
    size = size if isinstance(size, int) else size[0] if len(set(size)) == 1 else None
    if size is None:
        raise ConfigError(f"{path}: only square image_size is supported, got {vis['image_size']}")
    width, twidth = vis.get("width", 768), txt.get("width", 512)
    out: dict[str, Any] = {
        "embed_dim": model["embed_dim"],
        "image_size": size,
        "patch_size": vis.get("patch_size", 16),
        "vision_width": width,
        "vision_layers": vis.get("layers", 12),
        "vision_heads": max(1, width // vis.get("head_width", HEAD_WIDTH)),
        "text_width": twidth,
        "text_layers": txt.get("layers", 12),
        "text_heads": txt.get("heads", max(1, twidth // HEAD_WIDTH)),
        "context_length": txt.get("context_length", 77),
        "vocab_size": txt.get("vocab_size", 49408),
        "quick_gelu": bool(model.get("quick_gelu", False)),  # open_clip's default is nn.GELU
    }
    pre = raw.get("preprocess_cfg", {}) if isinstance(raw, dict) else {}
    if "mean" in pre:
        out["image_mean"] = tuple(pre["mean"])
    if "std" in pre:
        out["image_std"] = tuple(pre["std"])
    if "resize_mode" in pre:
        out["resize_mode"] = pre["resize_mode"]
    if "interpolation" in pre:
        out["interpolation"] = pre["interpolation"]
    return out


def load_openclip(
    checkpoint: str | Path, config: str | Path | None = None, **overrides: Any
) -> OpenCLIPVideo:
    """Build the model for a local checkpoint and load it strictly (open_clip key names in errors).

    The architecture comes from `config` (an open_clip JSON), else a config JSON beside the checkpoint,
    else the tensor shapes. `overrides` set `OpenCLIPConfig` fields (pooling, temporal_layers, ...).
    """
    checkpoint = Path(checkpoint)
    state = read_openclip_state(checkpoint)
    config = config if config is not None else _config_beside(checkpoint)
    fields = dataclasses.asdict(infer_config(state, str(checkpoint)))
    if config is not None:
        fields.update(config_from_json(config))
    fields.update(overrides)
    cfg = from_dict(OpenCLIPConfig, fields, where="openclip config")
    if cfg.temporal_heads and cfg.embed_dim % cfg.temporal_heads:
        raise ConfigError(f"temporal_heads={cfg.temporal_heads} must divide embed_dim={cfg.embed_dim}")
    model = OpenCLIPVideo(cfg)
    _load_openclip_named(
        model,
        state,
        f"{checkpoint}: not an open_clip ViT checkpoint of this architecture",
        with_temporal=False,
    )
    return model


def _config_beside(checkpoint: Path) -> Path | None:
    """The first JSON next to the checkpoint that is an open_clip model config (others are ignored)."""
    for name in CONFIG_NAMES:
        path = checkpoint.parent / name
        try:
            raw = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, json.JSONDecodeError):
            continue
        if (
            isinstance(raw, dict)
            and isinstance(raw.get("model_cfg", raw), dict)
            and "vision_cfg" in raw.get("model_cfg", raw)
        ):
            return path
    return None


def _load_openclip_named(
    model: OpenCLIPVideo, tensors: dict[str, torch.Tensor], what: str, with_temporal: bool
) -> None:
    """Strict load of open_clip-named tensors; the error names keys as they appear in the file."""
    ours = {_to_openclip(k): k for k in model.state_dict() if with_temporal or not k.startswith("temporal.")}
    own = model.state_dict()
    diff = key_diff(
        {k: tuple(own[v].shape) for k, v in ours.items()}, {k: tuple(v.shape) for k, v in tensors.items()}
    )
    if diff:
        raise CheckpointError(f"{what}: {diff}")
    load_strict(model, {ours[k]: v for k, v in tensors.items()}, what, keys=set(ours.values()))


# ---------------------------------------------------------------------------- the embedder


@register_embedder("openclip")
class OpenCLIPEmbedder(Embedder):
    """Text = unit CLIP text embedding; clip = CLIP4Clip pool of per-frame CLIP image embeddings."""

    name = "openclip"
    batch_frames = 32

    def __init__(self, model: OpenCLIPVideo, device: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.dim = model.cfg.embed_dim

    @classmethod
    def build(
        cls,
        device: str | None = None,
        checkpoint: str | Path | None = None,
        config: str | Path | None = None,
        **overrides: Any,
    ) -> OpenCLIPEmbedder:
        if checkpoint is None:
            raise AimcError(
                "openclip needs a local checkpoint: pass checkpoint=PATH (.pt/.bin/.safetensors state dict), "
                "e.g. `aimc embed --embedder openclip --set checkpoint=ViT-B-32.pt`"
            )
        if Path(checkpoint).is_dir():
            return cls.from_pretrained(checkpoint, device=device)
        return cls(load_openclip(checkpoint, config, **overrides), device=device)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> OpenCLIPEmbedder:
        config, tensors = read_model_dir(path, cls.name)
        model = OpenCLIPVideo(from_dict(OpenCLIPConfig, config, where=f"{path}/config.json"))
        _load_openclip_named(model, tensors, f"{path}: state does not match the model", with_temporal=True)
        return cls(model, device=device)

    def save_pretrained(self, path: str | Path) -> Path:
        """config.json + model.safetensors in open_clip key names (+ `temporal.*` for a seqTransf head)."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.openclip_state_dict().items()}
        return save_model_dir(path, self.name, to_dict(self.cfg), state)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The seqTransf head's parameters (empty for meanP); the CLIP towers stay frozen as in the seeds' test."""
        return list(self.model.temporal.parameters()) if self.cfg.pooling == "seqTransf" else []

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = clip_tokenizer()(texts, context_length=self.cfg.context_length).to(self.device)
        return F.normalize(self.model.text(tokens), dim=-1).float().cpu()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> (T, D) raw CLIP image embeddings (pooling normalises them)."""
        check_frames(frames, 4, "openclip encode_frames")
        x = self.model.preprocess(frames_to_tensor(frames, self.device))  # (T, 3, S, S)
        return self.model.visual(x).float().cpu()

    @torch.no_grad()
    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.pool(features.to(self.device)).float().cpu()
