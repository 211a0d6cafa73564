"""MineCLIP: released key layout and parameter counts (on `meta`), strict loading, tokenizer, maths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.core.errors import CheckpointError
from aimc.embed.mineclip import MineCLIPEmbedder, convert_mineclip, load_official_checkpoint
from aimc.embed.mineclip_model import MineCLIP, MineCLIPConfig, canonical_state_dict, unique_parameter_count
from aimc.embed.tokenizer import END_ID, PAD_ID, START_ID, clip_tokenizer
from tests.embed.conftest import tiny_mineclip_config

KEYS_TSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mineclip_keys_attn.tsv"
TINY = tiny_mineclip_config(layers=2)


def _meta_model(variant: str) -> MineCLIP:
    with torch.device("meta"):
        return MineCLIP(MineCLIPConfig(variant=variant))


@pytest.mark.parametrize(
    ("variant", "n_keys", "n_params"), [("attn", 788, 158_537_730), ("avg", 761, 150_118_402)]
)
def test_full_size_keys_and_parameter_counts(variant, n_keys, n_params):
    model = _meta_model(variant)
    state = model.state_dict()
    assert len(state) == n_keys
    assert unique_parameter_count(model) == n_params
    # Aliases: the vision tower appears three times, the text tower twice.
    assert state["image_encoder.conv1.weight"].shape == (768, 3, 16, 16)
    assert state["reward_head.clip_model.text_model.token_embedding.weight"].shape == (49408, 512)
    assert len(canonical_state_dict(model)) == n_keys - 152 - 302


@pytest.mark.skipif(not KEYS_TSV.is_file(), reason="reference key table not available")
def test_attn_keys_match_reference_table():
    expected = {}
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split("\t")
        expected[key.removeprefix("model.")] = tuple(int(x) for x in re.findall(r"\d+", shape))
    got = {k: tuple(v.shape) for k, v in _meta_model("attn").state_dict().items()}
    assert got == expected
    avg = {k: tuple(v.shape) for k, v in _meta_model("avg").state_dict().items()}
    assert avg == {k: s for k, s in expected.items() if not k.startswith("temporal_encoder.")}


def _write_released_layout(path: Path, model: MineCLIP, extra: dict | None = None) -> None:
    state = {"model." + k: v for k, v in model.state_dict().items()}
    state["loss_fn.dummy"] = torch.zeros(1)  # non-model entries must be ignored
    torch.save({"state_dict": {**state, **(extra or {})}, "epoch": 3}, path)


@pytest.mark.parametrize("variant", ["attn", "avg"])
def test_load_and_convert_released_layout(tmp_path, variant):
    torch.manual_seed(0)
    cfg = MineCLIPConfig(**{**TINY.__dict__, "variant": variant})
    src = MineCLIP(cfg).eval()
    ckpt = tmp_path / f"{variant}.pth"
    _write_released_layout(ckpt, src)

    loaded = load_official_checkpoint(ckpt, cfg)
    assert loaded.cfg.variant == variant
    summary = convert_mineclip(ckpt, tmp_path / "out", cfg)
    assert summary["variant"] == variant and summary["official_md5"] is False
    emb = MineCLIPEmbedder.from_pretrained(tmp_path / "out", device="cpu")

    clips = np.random.default_rng(0).integers(0, 256, (2, 16, 32, 48, 3), dtype=np.uint8)
    with torch.no_grad():
        want = src.encode_video(torch.as_tensor(clips).permute(0, 1, 4, 2, 3).float())
        want_text = src.encode_text(clip_tokenizer()(["obtain log", "kill a cow"]))
    torch.testing.assert_close(emb.encode_clips(clips), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(emb.encode_text(["obtain log", "kill a cow"]), want_text, rtol=0, atol=1e-5)


def test_strict_loading_names_bad_keys(tmp_path):
    src = MineCLIP(TINY)
    ckpt = tmp_path / "bad.pth"
    state = {"model." + k: v for k, v in src.state_dict().items() if k != "reward_head.video_residual_weight"}
    state["model.extra.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, ckpt)
    with pytest.raises(
        CheckpointError, match=r"1 missing .*video_residual_weight.*1 unexpected .*extra.weight"
    ):
        load_official_checkpoint(ckpt, TINY)
    torch.save({"weights": {}}, ckpt)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_official_checkpoint(ckpt, TINY)


def test_tokenizer_known_ids():
    tok = clip_tokenizer()
    ids = tok(["obtain log", "Hello, World!", ""])
    assert ids.shape == (3, 77) and ids.dtype == torch.long
    assert ids[0, :5].tolist() == [START_ID, 26555, 7383, END_ID, PAD_ID]
    assert ids[1, :6].tolist() == [49406, 3306, 267, 1002, 256, 49407]
    assert ids[2, :3].tolist() == [START_ID, END_ID, PAD_ID]
    assert (ids[0, 4:] == PAD_ID).all()
    long = tok(["tree " * 200])[0]
    assert long[0] == START_ID and long[76] == END_ID and (long[1:76] == long[1]).all()
    assert tok.decode(ids[1].tolist()) == "hello , world !"


def test_preprocessing_constants_and_reward_head():
    torch.manual_seed(1)
    model = MineCLIP(TINY).eval()
    frame = torch.full((1, 3, 32, 48), 255.0)
    # forward_image_features normalises with MineCLIP's mean/std before the ViT.
    normed = (frame / 255.0 - torch.tensor([0.3331, 0.3245, 0.3051]).view(3, 1, 1)) / torch.tensor(
        [0.2439, 0.2493, 0.2873]
    ).view(3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_image_features(frame), model.image_encoder(normed))
        video, text = torch.randn(3, 32), torch.randn(2, 32)
        logits, logits_t = model.forward_reward_head(video, text)
        w = torch.sigmoid(torch.tensor(4.0))
        adapted = w * video + (1 - w) * model.reward_head.video_adapter(video)
        want = (
            (1 / 0.07)
            * torch.nn.functional.normalize(adapted, dim=-1)
            @ torch.nn.functional.normalize(text, dim=-1).T
        )
    torch.testing.assert_close(logits, want)
    assert torch.equal(logits_t, logits.T)


def test_temporal_attn_matches_x_transformers_0_27_1():
    xt = pytest.importorskip("x_transformers")
    from importlib.metadata import version

    if version("x-transformers") != "0.27.1":
        pytest.skip("needs x_transformers==0.27.1 (the version MineCLIP was trained with)")
    torch.manual_seed(0)
    ref = xt.ContinuousTransformerWrapper(
        dim_in=None,
        dim_out=None,
        max_seq_len=32,
        attn_layers=xt.Encoder(dim=512, depth=2, heads=8, ff_glu=True, ff_swish=True),
    ).eval()
    ours = MineCLIP(MineCLIPConfig(vision_layers=1, text_layers=1)).temporal_encoder.eval()
    ours.attn.model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 16, 512)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).mean(dim=1), rtol=0, atol=1e-5)
