"""MineCLIP re-implemented in plain torch with the released checkpoint's module names.

Layout (docs: ../shared/reference/mineclip.md): CLIP ViT-B/16 at 160x256 (161 tokens) per frame,
a temporal encoder (`avg`: mean; `attn`: 2-layer pre-LN transformer with SwiGLU, then mean), a GPT-style
text transformer over 77 CLIP BPE tokens, and a reward head (residual video adapter, logit scale).
The CLIP module is registered under three names (`clip_model`, `image_encoder` = its vision tower,
`reward_head.clip_model`) exactly as upstream, so `state_dict()` lists the 788 / 761 released keys.

Any checkpoint in the released layout loads, not only the released sizes: `infer_config` reads the architecture
from the tensor shapes (what the weights cannot say, head counts, follows the released code's conventions and can
be given), and the temporal attention's head size is a config field (`temporal_dim_head`, 64 as in
x_transformers, whose `Attention` projects `dim -> heads * dim_head`). `forward(video, text)` and
`preprocess` / `prepare_frames` are the released model's call and preprocessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aimc.core.errors import AimcError, CheckpointError

MC_IMAGE_MEAN = (0.3331, 0.3245, 0.3051)  # MineCLIP's own constants, not OpenAI CLIP's
MC_IMAGE_STD = (0.2439, 0.2493, 0.2873)
ALIAS_PREFIXES = ("image_encoder.", "reward_head.clip_model.")  # duplicates of clip_model.* in state_dict


@dataclass
class MineCLIPConfig:
    """Architecture of MineCLIP; the defaults are the released `attn.pth` model."""

    variant: Literal["attn", "avg"] = "attn"
    """temporal pooling: `attn` (2-layer transformer then mean) or `avg` (mean over frames)"""
    resolution: tuple[int, int] = (160, 256)
    """(H, W) of input frames; the model does not resize"""
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    embed_dim: int = 512
    """shared video/text embedding width"""
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    temporal_layers: int = 2
    """attention+feed-forward pairs in the `attn` temporal encoder"""
    temporal_heads: int = 8
    temporal_dim_head: int = 64
    """width of one temporal attention head; q/k/v project embed_dim -> temporal_heads * temporal_dim_head. The
    released code builds x_transformers' `Encoder` without `attn_dim_head`, so every checkpoint it trains has 64"""
    temporal_max_len: int = 32
    """rows of the learned temporal position table (16 used)"""


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _MLP(nn.Module):
    def __init__(self, width: int, quick_gelu: bool = True) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        # OpenAI-trained weights use QuickGELU; open_clip's own (LAION) weights use exact GELU.
        self.act = QuickGELU() if quick_gelu else nn.GELU()
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class ResidualBlock(nn.Module):
    """CLIP pre-LN transformer block: packed-QKV multi-head attention + (Quick)GELU MLP."""

    def __init__(self, width: int, heads: int, quick_gelu: bool = True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = _MLP(width, quick_gelu)
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    """ViT with a bias-free patch conv, CLS token, row-major patch grid, ln_post on CLS, linear projection."""

    def __init__(self, cfg: MineCLIPConfig, quick_gelu: bool = True) -> None:
        super().__init__()
        h, w = cfg.resolution
        p, width = cfg.patch_size, cfg.vision_width
        n_tokens = (h // p) * (w // p) + 1
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=p, stride=p, bias=False)
        self.cls_token = nn.Parameter(scale * torch.randn(width))
        self.pos_embed = nn.Parameter(scale * torch.randn(n_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(
            ResidualBlock(width, cfg.vision_heads, quick_gelu) for _ in range(cfg.vision_layers)
        )
        self.ln_post = nn.LayerNorm(width)
        self.projection = nn.Parameter(scale * torch.randn(width, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, H/p*W/p, width), row-major grid
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)  # (B, 161, width)
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x[:, 0]) @ self.projection  # (B, embed_dim)


class TextTransformer(nn.Module):
    """GPT-style causal transformer; the feature is read at the EOT token (the largest id)."""

    def __init__(self, cfg: MineCLIPConfig, quick_gelu: bool = True) -> None:
        super().__init__()
        width = cfg.text_width
        self.token_embedding = nn.Embedding(cfg.vocab_size, width)
        self.pos_embed = nn.Parameter(0.01 * torch.randn(cfg.context_length, width))
        self.blocks = nn.ModuleList(
            ResidualBlock(width, cfg.text_heads, quick_gelu) for _ in range(cfg.text_layers)
        )
        self.ln_final = nn.LayerNorm(width)
        self.projection = nn.Parameter(width**-0.5 * torch.randn(width, cfg.embed_dim))
        # Not a checkpoint entry upstream, so a non-persistent buffer.
        causal = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu_(1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.pos_embed  # (N, 77, width): input must be exactly 77 long
        for block in self.blocks:
            x = block(x, mask=self.causal_mask.to(x.dtype))
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return eot @ self.projection  # (N, embed_dim)


class CLIP(nn.Module):
    def __init__(self, cfg: MineCLIPConfig) -> None:
        super().__init__()
        self.vision_model = VisionTransformer(cfg)
        self.text_model = TextTransformer(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


class _TemporalAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (
            f(x).view(b, n, self.heads, self.dim_head).transpose(1, 2)  # (B, h, n, dim_head)
            for f in (self.to_q, self.to_k, self.to_v)
        )
        attn = (q @ k.transpose(-1, -2) * self.dim_head**-0.5).softmax(dim=-1)  # (B, h, n, n)
        return self.to_out((attn @ v).transpose(1, 2).reshape(b, n, self.heads * self.dim_head))


class _GLUProj(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.silu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        # Indices 1 (Identity) and 2 (Dropout 0) hold no parameters; kept so the keys read net.0 / net.3.
        self.net = nn.Sequential(
            _GLUProj(dim, 4 * dim), nn.Identity(), nn.Dropout(0.0), nn.Linear(4 * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _PosEmb(nn.Module):
    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.emb = nn.Embedding(max_len, dim)

    def forward(self, n: int, device: torch.device) -> torch.Tensor:
        return self.emb(torch.arange(n, device=device)) * self.scale


class _AttnLayers(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int) -> None:
        super().__init__()
        layers = []
        for _ in range(depth):
            layers.append(nn.ModuleList([nn.ModuleList([nn.LayerNorm(dim)]), _TemporalAttention(dim, heads, dim_head)]))
            layers.append(nn.ModuleList([nn.ModuleList([nn.LayerNorm(dim)]), _FeedForward(dim)]))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, block in self.layers:
            x = x + block(norm[0](x))
        return x


class _TemporalTransformer(nn.Module):
    """Learned scaled positions, pre-LN attention/SwiGLU layers, final LayerNorm (x_transformers 0.27.1 maths)."""

    def __init__(self, cfg: MineCLIPConfig) -> None:
        super().__init__()
        self.pos_emb = _PosEmb(cfg.embed_dim, cfg.temporal_max_len)
        self.attn_layers = _AttnLayers(cfg.embed_dim, cfg.temporal_layers, cfg.temporal_heads, cfg.temporal_dim_head)
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_emb(x.shape[1], x.device).to(x.dtype)
        return self.norm(self.attn_layers(x))


class _AttnPool(nn.Module):
    def __init__(self, cfg: MineCLIPConfig) -> None:
        super().__init__()
        self.model = _TemporalTransformer(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).mean(dim=1)


class TemporalEncoder(nn.Module):
    """(B, L, D) per-frame features -> (B, D) video feature."""

    def __init__(self, cfg: MineCLIPConfig) -> None:
        super().__init__()
        self.variant = cfg.variant
        if cfg.variant == "attn":
            self.attn = _AttnPool(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x) if self.variant == "attn" else x.mean(dim=1)


class RewardHead(nn.Module):
    """Residual video adapter + scaled cosine logits; the text adapter is the identity."""

    def __init__(self, cfg: MineCLIPConfig, clip_model: CLIP) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.clip_model = clip_model
        self.video_adapter = nn.Sequential(nn.Linear(d, d), nn.Identity(), nn.ReLU(), nn.Linear(d, d))
        self.video_residual_weight = nn.Parameter(torch.tensor(4.0))

    def adapt_video(self, video: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.video_residual_weight)
        return w * video + (1 - w) * self.video_adapter(video)

    def forward(self, video: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = F.normalize(self.adapt_video(video), dim=-1)
        t = F.normalize(text, dim=-1)
        logits = self.clip_model.logit_scale.exp() * v @ t.T  # (B_video, N_text)
        return logits, logits.T


class MineCLIP(nn.Module):
    """The full model; `encode_video` is the pre-adapter pooled feature STEVE-1 uses as its goal."""

    def __init__(self, cfg: MineCLIPConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MineCLIPConfig()
        self.cfg = cfg
        self.clip_model = CLIP(cfg)
        self.image_encoder = self.clip_model.vision_model  # alias, as upstream
        self.temporal_encoder = TemporalEncoder(cfg)
        self.reward_head = RewardHead(cfg, self.clip_model)

    def forward(self, video: torch.Tensor, text: torch.Tensor | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The released `MineCLIP.forward`: `(logits_per_video (B, N), logits_per_text (N, B))`, scaled cosines of
        the adapted video features and the text features.

        `video`: raw clips (B, L, 3, H, W) with values 0..255, or video features (B, D) (the released
        `is_video_features=True`, told apart here by the shape). `text`: CLIP token ids (N, 77) long, text
        features (N, D) float, or strings (tokenised with the offline CLIP BPE, as the released `encode_text`
        tokenises them with the hub's)."""
        if video.ndim == 5:
            video = self.encode_video(video)
        elif video.ndim != 2:
            raise AimcError(f"MineCLIP video must be clips (B, L, 3, H, W) or features (B, D), got shape {tuple(video.shape)}")
        if isinstance(text, str):
            text = [text]
        if not isinstance(text, torch.Tensor):
            from aimc.embed.tokenizer import clip_tokenizer

            text = clip_tokenizer()(list(text), context_length=self.cfg.context_length).to(video.device)
        if not text.is_floating_point():
            text = self.encode_text(text)
        return self.forward_reward_head(video, text)

    def forward_image_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) values 0..255 at the model's resolution -> (..., D); each frame independently."""
        lead = frames.shape[:-3]
        return self.image_encoder(preprocess(frames.reshape(-1, *frames.shape[-3:]))).reshape(*lead, -1)

    def forward_video_features(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.temporal_encoder(image_features)

    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        """(B, L, 3, H, W) in 0..255 -> (B, D)."""
        return self.forward_video_features(self.forward_image_features(videos))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, 77) CLIP token ids -> (N, D)."""
        return self.clip_model.text_model(tokens)

    def forward_reward_head(
        self, video_features: torch.Tensor, text_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reward_head(video_features, text_features)


def preprocess(frames: torch.Tensor) -> torch.Tensor:
    """The released preprocessing (`basic_image_tensor_preprocess` with MineCLIP's constants): frames
    (..., 3, H, W) with values 0..255, any dtype -> float32 `(x / 255 - MC_IMAGE_MEAN) / MC_IMAGE_STD` per RGB
    channel. It does not resize (neither does the released model): see `prepare_frames`."""
    mean = torch.tensor(MC_IMAGE_MEAN, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    std = torch.tensor(MC_IMAGE_STD, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


def prepare_frames(frames: Any, resolution: Sequence[int] = (160, 256)) -> torch.Tensor:
    """STEVE-1's frame preparation for MineCLIP: uint8 RGB (..., H, W, 3) -> float32 (..., 3, h, w) in 0..255.

    Frames not at `resolution` (h, w) are resized as STEVE-1 does with `cv2.resize(INTER_LINEAR)`: bit for bit
    for numpy arrays and CPU tensors (`aimc.envs.minecraft.frames.resize`); frames already on an accelerator
    are resized there with the same half-pixel bilinear taps in floating point, rounded to whole levels (one
    level away from OpenCV's fixed-point result on some pixels)."""
    size = (int(resolution[0]), int(resolution[1]))
    on_cpu = isinstance(frames, np.ndarray) or frames.device.type == "cpu"
    if on_cpu and tuple(frames.shape[-3:-1]) != size:
        from aimc.envs.minecraft.frames import resize

        frames = resize(np.asarray(frames), size)
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    lead, (h, w) = x.shape[:-3], x.shape[-3:-1]
    x = x.reshape(-1, h, w, x.shape[-1]).movedim(-1, 1).float()  # (N, 3, H, W)
    if (h, w) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
        x = torch.floor(x + 0.5).clamp_(0.0, 255.0)
    return x.reshape(*lead, 3, *size)


#: Architecture fields the weights cannot tell, and what `infer_config` assumes for them (the released code's
#: conventions); pass them to `infer_config` (`aimc convert mineclip --set key=value`) when a checkpoint differs.
CONVENTIONS: dict[str, str] = {
    "vision_heads": "vision_width // 64 (CLIP's rule; released: 768 -> 12)",
    "text_heads": "text_width // 64 (CLIP's rule; released: 512 -> 8)",
    "temporal_dim_head": "64 (x_transformers' default, which the released code cannot change)",
    "resolution": "(160, 256) when the patch count fits it",
}


def infer_config(shapes: Mapping[str, Any], **given: Any) -> MineCLIPConfig:
    """The architecture of a MineCLIP state dict (released keys with `model.` stripped, or aimc's) from its tensor
    shapes, as `aimc convert vpt` reads VPT's: widths, depths, patch, vocabulary, context, temporal table and the
    temporal attention's inner width (`heads * dim_head`, split by `temporal_dim_head`). `given` sets what the
    weights cannot tell (`CONVENTIONS`) or overrides an inferred field; unknown names are a ConfigError."""
    from aimc.core.config import from_dict

    dims = {k: tuple(getattr(v, "shape", v)) for k, v in shapes.items()}

    def shape(key: str) -> tuple[int, ...]:
        if key not in dims:
            raise CheckpointError(f"not a MineCLIP checkpoint: it has no {key!r}")
        return dims[key]

    def depth(prefix: str) -> int:
        found = {int(m.group(1)) for k in dims if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return max(found) + 1 if found else 0

    vis, txt, tmp = "clip_model.vision_model.", "clip_model.text_model.", "temporal_encoder.attn.model."
    width, _, patch, _ = shape(vis + "conv1.weight")
    vocab, text_width = shape(txt + "token_embedding.weight")
    cfg: dict[str, Any] = {
        "variant": "attn" if any(k.startswith("temporal_encoder.") for k in dims) else "avg",
        "patch_size": patch, "vision_width": width, "vision_layers": depth(vis + "blocks."),
        "vision_heads": max(1, width // 64), "embed_dim": shape(vis + "projection")[1], "text_width": text_width,
        "text_layers": depth(txt + "blocks."), "text_heads": max(1, text_width // 64),
        "context_length": shape(txt + "pos_embed")[0], "vocab_size": vocab,
    }
    if cfg["variant"] == "attn":
        inner = shape(tmp + "attn_layers.layers.0.1.to_q.weight")[0]
        if "temporal_heads" in given and "temporal_dim_head" not in given:
            heads = int(given["temporal_heads"])
            dim_head = inner // heads
        else:
            dim_head = int(given.get("temporal_dim_head", 64))
            heads = inner // dim_head
        if heads * dim_head != inner:
            raise CheckpointError(f"the temporal attention projects to {inner} channels, which is not heads x "
                                  f"{dim_head}; give temporal_heads / temporal_dim_head")
        cfg.update(temporal_layers=depth(tmp + "attn_layers.layers.") // 2, temporal_heads=heads,
                   temporal_dim_head=dim_head, temporal_max_len=shape(tmp + "pos_emb.emb.weight")[0])
    patches = shape(vis + "pos_embed")[0] - 1
    if (160 // patch) * (256 // patch) == patches:
        cfg["resolution"] = (160, 256)
    elif "resolution" not in given:
        raise CheckpointError(f"the checkpoint's {patches} patches of {patch}x{patch} pixels do not make 160x256 "
                              "frames; give its frame size (resolution=[H,W])")
    cfg.update(given)
    out = from_dict(MineCLIPConfig, cfg, where="MineCLIP architecture")
    h, w = out.resolution
    if (h // patch) * (w // patch) != patches:
        raise CheckpointError(f"resolution {h}x{w} gives {(h // patch) * (w // patch)} patches, the checkpoint has {patches}")
    return out


def unique_parameter_count(model: nn.Module) -> int:
    """Parameters counted once even when a module is registered under several names (works on `meta`)."""
    return sum(p.numel() for p in model.parameters())  # parameters() de-duplicates shared tensors


def canonical_state_dict(model: MineCLIP) -> dict[str, torch.Tensor]:
    """state_dict without the two alias copies of the CLIP weights (what aimc saves)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(ALIAS_PREFIXES)}
