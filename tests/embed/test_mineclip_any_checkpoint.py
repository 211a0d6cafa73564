"""MineCLIP for any checkpoint in the released layout: the architecture read from the tensors, the temporal head
size as a config field (x_transformers projects dim -> heads * 64), the released forward(video, text) and the
released preprocessing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.embed.mineclip import MineCLIPEmbedder, load_official_checkpoint
from aimc.embed.mineclip_model import MineCLIP, MineCLIPConfig, infer_config, prepare_frames, preprocess
from aimc.embed.tokenizer import clip_tokenizer
from tests.embed.conftest import tiny_mineclip_config

# 32-d embedding, 2 temporal heads of 64: projections 32 -> 128, which Linear(dim, dim) could not hold
NARROW = replace(tiny_mineclip_config(layers=2), temporal_heads=2, temporal_dim_head=64)
GIVEN = {"resolution": [32, 48], "vision_heads": 2, "text_heads": 2}  # what a 64-wide tiny model's weights cannot say


def _save_released(path: Path, model: MineCLIP) -> Path:
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()}, "epoch": 1}, path)
    return path


def _temporal_reference(model: MineCLIP, x: torch.Tensor) -> torch.Tensor:
    """x_transformers 0.27.1's Encoder maths written out: pre-LN attention (dim -> heads*64, scale 64^-0.5) and
    SwiGLU feed-forward, scaled absolute positions, final LayerNorm, then the mean over time."""
    sd = {k.removeprefix("temporal_encoder.attn.model."): v for k, v in model.state_dict().items()
          if k.startswith("temporal_encoder.")}
    ln = torch.nn.functional.layer_norm
    b, n, d = x.shape
    x = x + sd["pos_emb.emb.weight"][:n] * d**-0.5
    for i in range(0, 2 * model.cfg.temporal_layers, 2):
        p = f"attn_layers.layers.{i}."
        h = ln(x, (d,), sd[p + "0.0.weight"], sd[p + "0.0.bias"])
        q, k, v = (h @ sd[p + f"1.to_{c}.weight"].T for c in "qkv")
        q, k, v = (t.view(b, n, -1, 64).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2) / 8.0).softmax(-1) @ v
        x = x + att.transpose(1, 2).reshape(b, n, -1) @ sd[p + "1.to_out.weight"].T
        p = f"attn_layers.layers.{i + 1}."
        h = ln(x, (d,), sd[p + "0.0.weight"], sd[p + "0.0.bias"])
        val, gate = (h @ sd[p + "1.net.0.proj.weight"].T + sd[p + "1.net.0.proj.bias"]).chunk(2, -1)
        x = x + (val * torch.nn.functional.silu(gate)) @ sd[p + "1.net.3.weight"].T + sd[p + "1.net.3.bias"]
    return ln(x, (d,), sd["norm.weight"], sd["norm.bias"]).mean(1)


def test_narrow_checkpoint_loads_and_computes_the_released_maths(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = MineCLIP(NARROW).eval()
    assert src.state_dict()["temporal_encoder.attn.model.attn_layers.layers.0.1.to_q.weight"].shape == (128, 32)
    ckpt = _save_released(tmp_path / "narrow.pth", src)
    loaded = load_official_checkpoint(ckpt, **GIVEN)
    assert loaded.cfg == NARROW  # every field read back from the shapes (plus the three given)
    x = torch.randn(3, 16, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_video_features(x), _temporal_reference(src, x), rtol=0, atol=1e-5)
    # the old layout, heads of dim / heads = 16, is refused by name, not loaded wrongly
    with pytest.raises(CheckpointError, match="mis-shaped .*to_q.weight"):
        load_official_checkpoint(ckpt, replace(NARROW, temporal_dim_head=16))


def test_x_transformers_encoder_of_any_width_loads(tmp_path: Path) -> None:
    xt = pytest.importorskip("x_transformers")
    from importlib.metadata import version

    if version("x-transformers") != "0.27.1":
        pytest.skip("needs x_transformers==0.27.1 (the version MineCLIP was trained with)")
    torch.manual_seed(1)
    ref = xt.ContinuousTransformerWrapper(dim_in=None, dim_out=None, max_seq_len=32,
                                          attn_layers=xt.Encoder(dim=256, depth=2, heads=8, ff_glu=True, ff_swish=True)).eval()
    cfg = MineCLIPConfig(vision_layers=1, text_layers=1, embed_dim=256, temporal_heads=8)
    ours = MineCLIP(cfg).temporal_encoder.eval()
    ours.attn.model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 16, 256)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).mean(dim=1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["attn", "avg"])
def test_infer_config_of_the_released_sizes(variant: str) -> None:
    with torch.device("meta"):
        state = MineCLIP(MineCLIPConfig(variant=variant)).state_dict()
    assert infer_config(state) == MineCLIPConfig(variant=variant)  # nothing needs to be given for the release


def test_infer_config_asks_for_what_the_weights_cannot_tell() -> None:
    state = MineCLIP(NARROW).state_dict()
    with pytest.raises(CheckpointError, match=r"6 patches of 16x16 pixels do not make 160x256 frames; give its frame size"):
        infer_config(state)
    cfg = infer_config(state, resolution=[32, 48])
    assert (cfg.vision_heads, cfg.text_heads, cfg.temporal_heads, cfg.temporal_dim_head) == (1, 1, 2, 64)  # /64 rules
    assert infer_config(state, resolution=[32, 48], temporal_heads=4).temporal_dim_head == 32  # 128 = 4 x 32
    with pytest.raises(CheckpointError, match="resolution 64x64 gives 16 patches, the checkpoint has 6"):
        infer_config(state, resolution=[64, 64])
    with pytest.raises(CheckpointError, match="not heads x 48"):
        infer_config(state, resolution=[32, 48], temporal_dim_head=48)
    with pytest.raises(ConfigError, match="unknown key.*'vision_head'"):
        infer_config(state, resolution=[32, 48], vision_head=2)
    with pytest.raises(CheckpointError, match="it has no 'clip_model.vision_model.conv1.weight'"):
        infer_config({"x": (1,)})


def test_forward_is_the_released_call() -> None:
    torch.manual_seed(2)
    model = MineCLIP(NARROW).eval()
    video = torch.randint(0, 256, (2, 16, 3, 32, 48)).float()
    texts = ["obtain log", "kill a cow", "open inventory"]
    tokens = clip_tokenizer()(texts)
    with torch.no_grad():
        v, t = model.encode_video(video), model.encode_text(tokens)
        want = model.forward_reward_head(v, t)
        for args in ((video, tokens), (v, t), (video, texts), (v, tokens)):
            got = model(*args)
            torch.testing.assert_close(got[0], want[0]) and torch.testing.assert_close(got[1], want[1])
        assert model(v, "obtain log")[0].shape == (2, 1)
    assert want[0].shape == (2, 3) and torch.equal(want[1], want[0].T)
    with pytest.raises(AimcError, match=r"clips \(B, L, 3, H, W\) or features \(B, D\), got shape \(16, 3, 32, 48\)"):
        model(video[0], tokens)


def test_preprocess_and_prepare_frames() -> None:
    frames = torch.tensor([0.0, 255.0]).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    out = preprocess(frames)
    mean, std = torch.tensor([0.3331, 0.3245, 0.3051]), torch.tensor([0.2439, 0.2493, 0.2873])
    torch.testing.assert_close(out[0, :, 0, 0], -mean / std)
    torch.testing.assert_close(out[1, :, 1, 1], (1 - mean) / std)
    assert preprocess(torch.zeros(5, 3, 7, 9, dtype=torch.uint8)).dtype == torch.float32  # no resize, any dtype
    raw = np.random.default_rng(0).integers(0, 256, (4, 36, 64, 3), dtype=np.uint8)
    native = prepare_frames(raw, (36, 64))
    assert native.shape == (4, 3, 36, 64) and torch.equal(native, torch.from_numpy(raw).permute(0, 3, 1, 2).float())
    resized = prepare_frames(raw[None], (160, 256))  # leading dims kept: (1, 4, 3, 160, 256)
    assert resized.shape == (1, 4, 3, 160, 256)
    from aimc.envs.minecraft.frames import resize

    # on the CPU: STEVE-1's cv2.resize bit for bit (the converter's resize); elsewhere: the same taps in float
    np.testing.assert_array_equal(resized[0, 1].permute(1, 2, 0).numpy(), resize(raw[1], (160, 256)))
    ref = torch.nn.functional.interpolate(torch.from_numpy(raw).permute(0, 3, 1, 2).float(), size=(160, 256),
                                          mode="bilinear", align_corners=False, antialias=False)
    assert (resized[0] - ref).abs().max() <= 1.0


def test_encode_frames_prepares_like_steve1() -> None:
    torch.manual_seed(3)
    emb = MineCLIPEmbedder(MineCLIP(NARROW), device="cpu")
    raw = np.random.default_rng(1).integers(0, 256, (3, 18, 20, 3), dtype=np.uint8)
    with torch.no_grad():
        want = emb.model.forward_image_features(prepare_frames(raw, (32, 48)))
    torch.testing.assert_close(emb.encode_frames(raw), want)


def test_cli_converts_any_checkpoint_and_says_what_it_assumed(tmp_path: Path, capsys) -> None:
    from aimc.cli.app import main

    torch.manual_seed(4)
    src = MineCLIP(NARROW).eval()
    ckpt = _save_released(tmp_path / "narrow.pth", src)
    args = ["convert", "mineclip", str(ckpt), "--out", str(tmp_path / "out"), "--seed", "1"]
    assert main(args + ["--set", "resolution=[32,48]", "--set", "vision_heads=2", "--set", "text_heads=2"]) == 0
    text = capsys.readouterr().out
    assert "architecture: vision 64x2 (2 heads) at 32x48, text 32x2 (2 heads), embed 32, temporal 2 layers x 2 heads of 64" in text
    assert "assumed (not in the weights): temporal_dim_head" in text
    emb = MineCLIPEmbedder.from_pretrained(tmp_path / "out", device="cpu")
    clips = np.random.default_rng(2).integers(0, 256, (1, 16, 32, 48, 3), dtype=np.uint8)
    with torch.no_grad():
        torch.testing.assert_close(emb.encode_clips(clips), src.encode_video(torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float()))
    assert main(["convert", "mineclip", str(ckpt), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "do not make 160x256 frames; give its frame size (resolution=[H,W])" in err
    assert not (tmp_path / "o2").exists()


def test_dirs_saved_before_the_head_size_field_still_load(tmp_path: Path) -> None:
    old_cfg = replace(tiny_mineclip_config(), temporal_dim_head=16)  # what Linear(dim, dim) meant: 32 / 2 heads
    torch.manual_seed(5)
    MineCLIPEmbedder(MineCLIP(old_cfg), device="cpu").save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["temporal_dim_head"]
    config_file.write_text(json.dumps(saved))
    assert MineCLIPEmbedder.from_pretrained(tmp_path / "old", device="cpu").cfg.temporal_dim_head == 16
