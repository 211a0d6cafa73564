"""open_clip adapter: a tiny ViT CLIP written in open_clip's key layout, config inference, maths, pooling, I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aimc.cli.app import main
from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.data.store import Episode, list_episodes
from aimc.embed.base import make_embedder
from aimc.embed.openclip import OPENAI_MEAN, OPENAI_STD, OpenCLIPEmbedder, load_openclip
from aimc.embed.tokenizer import clip_tokenizer

# width 32 -> 1 head (width // 64, at least 1); 32x32 images, 8x8 patches -> 17 tokens.
W, LAYERS, PATCH, SIZE, CTX, VOCAB, EMBED = 32, 2, 8, 32, 77, 49408, 16


def _block_shapes(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.ln_1.weight": (width,), f"{prefix}.ln_1.bias": (width,),
        f"{prefix}.attn.in_proj_weight": (3 * width, width), f"{prefix}.attn.in_proj_bias": (3 * width,),
        f"{prefix}.attn.out_proj.weight": (width, width), f"{prefix}.attn.out_proj.bias": (width,),
        f"{prefix}.ln_2.weight": (width,), f"{prefix}.ln_2.bias": (width,),
        f"{prefix}.mlp.c_fc.weight": (4 * width, width), f"{prefix}.mlp.c_fc.bias": (4 * width,),
        f"{prefix}.mlp.c_proj.weight": (width, 4 * width), f"{prefix}.mlp.c_proj.bias": (width,),
    }  # fmt: skip


def openclip_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the key names and shapes open_clip / OpenAI CLIP save for a ViT CLIP."""
    shapes = {
        "positional_embedding": (CTX, W), "text_projection": (W, EMBED), "logit_scale": (),
        "token_embedding.weight": (VOCAB, W), "ln_final.weight": (W,), "ln_final.bias": (W,),
        "visual.class_embedding": (W,), "visual.positional_embedding": ((SIZE // PATCH) ** 2 + 1, W),
        "visual.proj": (W, EMBED), "visual.conv1.weight": (W, 3, PATCH, PATCH),
        "visual.ln_pre.weight": (W,), "visual.ln_pre.bias": (W,),
        "visual.ln_post.weight": (W,), "visual.ln_post.bias": (W,),
    }  # fmt: skip
    for i in range(LAYERS):
        shapes |= _block_shapes(f"visual.transformer.resblocks.{i}", W)
        shapes |= _block_shapes(f"transformer.resblocks.{i}", W)
    g = torch.Generator().manual_seed(seed)
    state = {k: 0.2 * torch.randn(s, generator=g) for k, s in shapes.items()}
    for k in state:
        if ".ln_" in k or k.startswith("ln_"):
            state[k] = (1.0 if k.endswith("weight") else 0.0) + 0.1 * state[k]
    state["logit_scale"] = torch.tensor(4.6052)
    return state


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("openclip")
    state = openclip_state()
    (root / "pt").mkdir()
    (root / "st").mkdir()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, root / "pt" / "model.pt")
    save_file(state, str(root / "st" / "model.safetensors"))
    return {"pt": root / "pt" / "model.pt", "st": root / "st" / "model.safetensors", "state": state}


@pytest.fixture(scope="module")
def emb(ckpt):
    return make_embedder("openclip", device="cpu", checkpoint=ckpt["st"])


def _ref_block(x, sd, p, mask=None):
    """One OpenAI-CLIP residual block with functional ops (sequence-first, as upstream runs it)."""
    h = F.layer_norm(x, (W,), sd[f"{p}.ln_1.weight"], sd[f"{p}.ln_1.bias"])
    a = F.multi_head_attention_forward(
        h, h, h, W, 1, sd[f"{p}.attn.in_proj_weight"], sd[f"{p}.attn.in_proj_bias"], None, None, False, 0.0,
        sd[f"{p}.attn.out_proj.weight"], sd[f"{p}.attn.out_proj.bias"], need_weights=False, attn_mask=mask,
    )[0]  # fmt: skip
    x = x + a
    h = F.linear(F.layer_norm(x, (W,), sd[f"{p}.ln_2.weight"], sd[f"{p}.ln_2.bias"]),
                 sd[f"{p}.mlp.c_fc.weight"], sd[f"{p}.mlp.c_fc.bias"])  # fmt: skip
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    return x + F.linear(h, sd[f"{p}.mlp.c_proj.weight"], sd[f"{p}.mlp.c_proj.bias"])


def _ref_image(sd, pixels):
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).permute(2, 0, 1)  # (L, N, W)
    cls = sd["visual.class_embedding"].expand(1, x.shape[1], W)
    x = torch.cat([cls, x]) + sd["visual.positional_embedding"][:, None]
    x = F.layer_norm(x, (W,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    for i in range(LAYERS):
        x = _ref_block(x, sd, f"visual.transformer.resblocks.{i}")
    return (
        F.layer_norm(x[0], (W,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    )


def _ref_text(sd, tokens):
    x = (sd["token_embedding.weight"][tokens] + sd["positional_embedding"]).permute(1, 0, 2)  # (77, N, W)
    mask = torch.full((CTX, CTX), float("-inf")).triu_(1)
    for i in range(LAYERS):
        x = _ref_block(x, sd, f"transformer.resblocks.{i}", mask)
    x = F.layer_norm(x.permute(1, 0, 2), (W,), sd["ln_final.weight"], sd["ln_final.bias"])
    return x[torch.arange(len(tokens)), tokens.argmax(-1)] @ sd["text_projection"]


def test_config_inferred_from_shapes_for_pt_and_safetensors(ckpt):
    for path in (ckpt["pt"], ckpt["st"]):
        cfg = load_openclip(path).cfg
        assert (cfg.vision_width, cfg.vision_layers, cfg.vision_heads, cfg.patch_size) == (
            W,
            LAYERS,
            1,
            PATCH,
        )
        assert (cfg.image_size, cfg.context_length, cfg.vocab_size, cfg.embed_dim) == (
            SIZE,
            CTX,
            VOCAB,
            EMBED,
        )
        assert (cfg.text_width, cfg.text_layers, cfg.text_heads, cfg.quick_gelu) == (W, LAYERS, 1, True)
        assert cfg.image_mean == OPENAI_MEAN and cfg.image_std == OPENAI_STD


def test_towers_match_a_functional_openai_clip(ckpt, emb):
    sd = ckpt["state"]
    frames = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    pixels = (pixels - torch.tensor(OPENAI_MEAN).view(3, 1, 1)) / torch.tensor(OPENAI_STD).view(3, 1, 1)
    torch.testing.assert_close(emb.encode_frames(frames), _ref_image(sd, pixels), atol=1e-5, rtol=1e-5)
    texts = ["chop a tree", "drink water"]
    ref = F.normalize(_ref_text(sd, clip_tokenizer()(texts)), dim=-1)
    torch.testing.assert_close(emb.encode_text(texts), ref, atol=1e-5, rtol=1e-5)


def test_shapes_normalisation_resize_and_text(emb):
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (2, 16, 40, 64, 3), dtype=np.uint8)  # not square: resize + center crop
    out = emb.encode_clips(clips)
    assert out.shape == (2, EMBED) and emb.dim == EMBED
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    assert emb.model.preprocess(torch.rand(2, 3, 40, 64)).shape == (2, 3, SIZE, SIZE)
    text = emb.encode_text(["chop a tree", "drink water", "chop a tree"])
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text[0], text[2])
    assert float(text[0] @ text[1]) < 0.999


def test_meanp_of_identical_frames_is_the_frame_embedding(emb):
    frame = np.random.default_rng(2).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    single = F.normalize(emb.encode_frames(frame), dim=-1)
    torch.testing.assert_close(
        emb.encode_clips(np.repeat(frame[None], 16, axis=1)), single, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("pooling", ["meanP", "seqTransf"])
def test_cached_windows_equal_naive_windows(ckpt, pooling):
    model = make_embedder("openclip", device="cpu", checkpoint=ckpt["pt"], pooling=pooling, temporal_layers=1)
    if pooling == "seqTransf":  # move off the meanP-equal initialisation so the head matters
        torch.manual_seed(0)
        for p in model.trainable_parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    frames = np.random.default_rng(3).integers(0, 256, (20, SIZE, SIZE, 3), dtype=np.uint8)
    cached, mask = model.window_embeddings(frames)
    naive, naive_mask = model.naive_window_embeddings(frames)
    assert cached.shape == (20, EMBED) and mask.tolist() == [False] * 15 + [True] * 5
    assert torch.equal(mask, naive_mask)
    torch.testing.assert_close(cached, naive, atol=1e-5, rtol=1e-5)


def test_seqtransf_trains_and_round_trips(ckpt, tmp_path):
    torch.manual_seed(0)
    model = make_embedder(
        "openclip", device="cpu", checkpoint=ckpt["st"], pooling="seqTransf", temporal_layers=2
    )
    meanp = make_embedder("openclip", device="cpu", checkpoint=ckpt["st"])
    feats = torch.randn(4, 16, EMBED)
    torch.testing.assert_close(model.pool(feats), meanp.pool(feats))  # zero-initialised branches
    params = model.trainable_parameters()
    assert params and not meanp.trainable_parameters()
    target = F.normalize(torch.randn(4, EMBED), dim=-1)
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(5):
        loss = -(model.model.pool(feats) * target).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    trained = model.pool(feats)
    assert not torch.allclose(trained, meanp.pool(feats), atol=1e-4)
    model.save_pretrained(tmp_path / "head")
    assert json.loads((tmp_path / "head" / "config.json").read_text())["config"]["pooling"] == "seqTransf"
    for loaded in (make_embedder(tmp_path / "head"), make_embedder("openclip", checkpoint=tmp_path / "head")):
        assert isinstance(loaded, OpenCLIPEmbedder)
        torch.testing.assert_close(loaded.pool(feats), trained)
    torch.testing.assert_close(make_embedder(tmp_path / "head").encode_text(["x"]), model.encode_text(["x"]))


def test_bad_checkpoints_give_one_line_errors(ckpt, tmp_path):
    state = dict(ckpt["state"])
    state["visual.projection"] = state.pop("visual.proj")
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(CheckpointError) as e:
        load_openclip(tmp_path / "renamed.pt")
    msg = str(e.value)
    assert "\n" not in msg and "'visual.proj'" in msg and "'visual.projection'" in msg
    state = dict(ckpt["state"])
    state["visual.ln_post.bias"] = torch.zeros(W + 1)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"visual\.ln_post\.bias: want \(32,\) got \(33,\)"):
        load_openclip(tmp_path / "shape.pt")
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "jit.pt"))
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="TorchScript archive"):
        load_openclip(tmp_path / "jit.pt")
    torch.save({"a": 1}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_openclip(tmp_path / "junk.pt")
    with pytest.raises(AimcError, match="checkpoint=PATH"):
        make_embedder("openclip")
    with pytest.raises(ConfigError, match="pooling"):
        make_embedder("openclip", checkpoint=ckpt["st"], pooling="maxP")


def test_config_json_beside_checkpoint(ckpt, tmp_path):
    from safetensors.torch import save_file

    save_file(ckpt["state"], str(tmp_path / "open_clip_model.safetensors"))
    model_cfg = {
        "embed_dim": EMBED,
        "vision_cfg": {
            "image_size": SIZE,
            "layers": LAYERS,
            "width": W,
            "patch_size": PATCH,
            "head_width": 16,
        },
        "text_cfg": {"context_length": CTX, "vocab_size": VOCAB, "width": W, "heads": 2, "layers": LAYERS},
    }
    hub = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(hub))
    cfg = load_openclip(tmp_path / "open_clip_model.safetensors").cfg
    assert (cfg.vision_heads, cfg.text_heads, cfg.quick_gelu, cfg.image_mean) == (
        2,
        2,
        False,
        (0.5, 0.5, 0.5),
    )
    model_cfg["vision_cfg"]["timm_model_name"] = "vit_base_patch16_224"
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    with pytest.raises(ConfigError, match="timm_model_name"):
        load_openclip(tmp_path / "open_clip_model.safetensors")


def test_cli_embed_with_openclip_checkpoint(synthetic_store, ckpt, emb):
    args = [
        "embed",
        "--embedder",
        "openclip",
        "--set",
        f"checkpoint={ckpt['st']}",
        "--data",
        str(synthetic_store),
    ]
    assert main([*args, "--name", "oc", "--quiet", "--overwrite"]) == 0
    ep = Episode(list_episodes(synthetic_store)[0], check_video=False)
    stored = np.load(ep.path / "embeds_oc.npy")
    want, mask = emb.window_embeddings(ep.frames())
    assert stored.dtype == np.float16 and stored.shape == (len(want), EMBED)
    np.testing.assert_allclose(stored[mask.numpy()], want[mask].numpy(), atol=2e-3)
    assert main(["embed", "--embedder", "openclip", "--set", "checkpoint=/no/such.pt", "--data", "x"]) == 2


@pytest.mark.parametrize(
    ("fields", "n_params"),
    [
        ({}, 151_277_313),  # OpenAI ViT-B/32
        ({"patch_size": 16}, 149_620_737),  # ViT-B/16
        (
            {"embed_dim": 768, "patch_size": 14, "vision_width": 1024, "vision_layers": 24,
             "vision_heads": 16, "text_width": 768, "text_heads": 12},
            427_616_513,
        ),  # ViT-L/14
    ],
)  # fmt: skip
def test_full_size_parameter_counts_on_meta(fields, n_params):
    from aimc.embed.openclip import OpenCLIPConfig, OpenCLIPVideo

    with torch.device("meta"):
        model = OpenCLIPVideo(OpenCLIPConfig(**fields))
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in model.openclip_state_dict()


def test_unknown_embedder_options_are_one_clear_error(tmp_path):
    with pytest.raises(AimcError, match="mineclip takes only weights"):
        make_embedder("mineclip", colour="red")
    with pytest.raises(AimcError, match="does not take option"):
        make_embedder("videotext", colour="red")
