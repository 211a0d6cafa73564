"""`AgentBundle`: the one reader/writer of bundle.json (round trip, one-line errors, the shipped bundle) and
`training_world`, which takes the bundle's world from the training data instead of assuming Crafter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aimc.core.errors import AimcError, CheckpointError, EpisodeError
from aimc.train.bundle import BUNDLE_FILE, DEFAULT_COND_SCALE, AgentBundle, training_world

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "aimc" / "assets" / "crafter-small"
# What train/loop.py wrote for a crafter-small policy before this module existed (the on-disk contract).
V1 = {"format": "aimc-agent", "version": 1, "policy": "best", "embedder": "embedder", "embed_name": "fake",
      "prior": None, "cond_scale": 6.0, "world": "crafter", "world_config": {"size": 64}}


def make_bundle_dir(root: Path, meta: dict | None = None, members: tuple[str, ...] = ("best", "embedder")) -> Path:
    for m in members:
        (root / m).mkdir(parents=True, exist_ok=True)
    (root / BUNDLE_FILE).write_text(json.dumps(V1 if meta is None else meta, indent=2, sort_keys=True) + "\n")
    return root


def fake_episodes(root: Path, metas: list[dict]) -> list[Path]:
    """Episode dirs holding only metadata.json: all `training_world` reads."""
    out = []
    for i, meta in enumerate(metas):
        ep = root / f"ep{i:03d}"
        ep.mkdir(parents=True)
        (ep / "metadata.json").write_text(json.dumps(meta))
        out.append(ep)
    return out


def test_shipped_bundle_reads_and_writes_back_byte_identical(tmp_path):
    b = AgentBundle.read(SHIPPED)
    # the instruct recipe's agent: text goals read directly (no prior, no visual embeddings), no guidance
    assert (b.world, b.world_config, b.cond_scale, b.embed_name) == ("crafter", {"size": 64}, 0.0, None)
    assert b.planner == "chain-event"  # prompt chaining, the matched event named at the last step too (docs/results.md)
    assert b.policy_dir() == SHIPPED / "policy" and b.prior_dir() is None
    assert b.embedder_ref() == SHIPPED / "embedder"
    text = json.dumps(b.to_dict(), indent=2, sort_keys=True) + "\n"
    assert text == (SHIPPED / BUNDLE_FILE).read_text()
    copy = b.copy_into(tmp_path / "copy")  # self-contained copy: same JSON, members copied
    assert (tmp_path / "copy" / BUNDLE_FILE).read_text() == text
    assert AgentBundle.read(tmp_path / "copy") == b and copy.root == tmp_path / "copy"
    assert (tmp_path / "copy" / "policy" / "config.json").read_bytes() == (SHIPPED / "policy" / "config.json").read_bytes()
    assert not (tmp_path / "copy" / "prior").exists()


def test_round_trip_keeps_the_v1_json(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "embedder").mkdir()
    b = AgentBundle(policy="best", embedder="embedder", embed_name="fake", prior=None, cond_scale=DEFAULT_COND_SCALE,
                    world="crafter", world_config={"size": 64})
    written = b.write(tmp_path)
    assert json.loads((tmp_path / BUNDLE_FILE).read_text()) == V1
    back = AgentBundle.read(tmp_path / BUNDLE_FILE)  # the file path works as well as the directory
    assert back == b == written and back.root == tmp_path
    assert back.to_dict() == V1 and list(back.to_dict())[:2] == ["format", "version"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # atomic: no leftovers


def test_temperature_is_optional_and_round_trips(tmp_path):
    root = make_bundle_dir(tmp_path, {**V1, "temperature": 0.5})
    b = AgentBundle.read(root)
    assert b.temperature == 0.5 and b.to_dict()["temperature"] == 0.5
    assert "temperature" not in AgentBundle.read(make_bundle_dir(tmp_path / "plain")).to_dict()  # v1 file as it was


def test_registered_embedder_name_and_no_embedder(tmp_path):
    meta = {**V1, "embedder": "mineclip"}
    b = AgentBundle.read(make_bundle_dir(tmp_path / "a", meta, members=("best",)))
    assert b.embedder_ref() == "mineclip"
    b = AgentBundle.read(make_bundle_dir(tmp_path / "b", {**V1, "embedder": None, "embed_name": None}, members=("best",)))
    assert b.embedder_ref() is None and b.prior_dir() is None


@pytest.mark.parametrize("case, meta, needle", [
    ("missing field", {k: v for k, v in V1.items() if k != "world"}, "missing field 'world'"),
    ("wrong format", {**V1, "format": "steve1"}, "not an aimc-agent v1 bundle (format='steve1', version=1)"),
    ("wrong version", {**V1, "version": 2}, "not an aimc-agent v1 bundle (format='aimc-agent', version=2)"),
    ("unknown field", {**V1, "colour": "red"}, "unknown field(s) 'colour'"),
    ("bad type", {**V1, "world_config": [64]}, "field 'world_config' must be an object"),
    ("bad scale", {**V1, "cond_scale": "6"}, "field 'cond_scale' must be a number or null, got '6'"),
    ("zero temperature", {**V1, "temperature": 0}, "field 'temperature' must be a number > 0 or null, got 0"),
    ("text temperature", {**V1, "temperature": "cold"}, "field 'temperature' must be a number > 0 or null"),
    ("missing policy dir", {**V1, "policy": "latest"}, "field 'policy' names"),
    ("missing prior dir", {**V1, "prior": "prior"}, "field 'prior' names"),
    ("unknown embedder", {**V1, "embedder": "no-such-model"}, "field 'embedder' is 'no-such-model', neither"),
    ("not an object", [1, 2], "expected a JSON object, got list"),
])
def test_invalid_bundles_fail_in_one_line_naming_file_and_field(tmp_path, case, meta, needle):
    root = make_bundle_dir(tmp_path, meta)
    with pytest.raises(CheckpointError) as e:
        AgentBundle.read(root)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg, (case, msg)
    assert msg.startswith(str(root / BUNDLE_FILE)), (case, msg)


def test_bad_json_and_missing_file_are_one_line(tmp_path):
    (tmp_path / BUNDLE_FILE).write_text('{"format": "aimc-agent",\n "version": 1,,}')
    with pytest.raises(CheckpointError, match=r"bundle.json: invalid JSON at line 2 \("):
        AgentBundle.read(tmp_path)
    with pytest.raises(CheckpointError, match="is not an agent bundle .no bundle.json.") as e:
        AgentBundle.read(tmp_path / "nowhere")
    assert "\n" not in str(e.value)


def test_write_refuses_a_bundle_whose_members_are_missing(tmp_path):
    b = AgentBundle(policy="best", embedder=None, embed_name=None, prior=None, cond_scale=None, world="crafter",
                    world_config={})
    with pytest.raises(CheckpointError, match="field 'policy' names .*best, which is not a directory"):
        b.write(tmp_path)
    assert not (tmp_path / BUNDLE_FILE).exists()


def test_copy_into_assembles_a_self_contained_bundle(tmp_path):
    src = make_bundle_dir(tmp_path / "goal")
    (src / "best" / "model.safetensors").write_bytes(b"weights")
    emb, prior = tmp_path / "emb", tmp_path / "prior_run" / "prior"
    emb.mkdir()
    (emb / "config.json").write_text("{}")
    prior.mkdir(parents=True)
    (prior / "config.json").write_text('{"type": "cvae_prior"}')
    out = AgentBundle.read(src).copy_into(tmp_path / "bundle", embedder=emb, prior=prior)
    assert out.root == tmp_path / "bundle"
    on_disk = json.loads((tmp_path / "bundle" / BUNDLE_FILE).read_text())
    assert on_disk == {**V1, "policy": "policy", "embedder": "embedder", "prior": "prior"}
    assert (tmp_path / "bundle" / "policy" / "model.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "bundle" / "embedder" / "config.json").read_text() == "{}"
    assert (tmp_path / "bundle" / "prior" / "config.json").read_text() == '{"type": "cvae_prior"}'
    # rebuilding replaces the old bundle whole; a missing member fails before anything is touched
    out.copy_into(tmp_path / "bundle")
    with pytest.raises(CheckpointError, match="prior .*missing is not a directory"):
        out.copy_into(tmp_path / "bundle", prior=tmp_path / "missing")
    assert AgentBundle.read(tmp_path / "bundle").prior == "prior"


def test_training_world_comes_from_the_data(tmp_path):
    eps = fake_episodes(tmp_path / "toy", [{"world": "toy", "world_config": {"size": 16, "walls": 3}}] * 3)
    assert training_world(eps, (16, 16)) == ("toy", {"size": 16, "walls": 3})
    # crafter data collected at 64 (`aimc collect --size 64`) or with the default config (no size recorded)
    # gives the JSON the trainer always wrote: {"size": 64}
    sized = fake_episodes(tmp_path / "sized", [{"world": "crafter", "world_config": {"size": 64}}])
    plain = fake_episodes(tmp_path / "plain", [{"world": "crafter", "world_config": {}}, {"world": "crafter"}])
    assert training_world(sized + plain, (64, 64)) == ("crafter", {"size": 64})


def test_training_world_is_the_recorded_world_for_a_student_of_another_size(tmp_path):
    """A 32x32 student of 64x64 worlds keeps the 64x64 world: training and acting resize its frames the same
    way, while a world rebuilt at 32 would render other pixels (the DAgger rollouts of the shipped student are
    recorded at 64). Data with no recorded size takes the size its frames have."""
    from aimc.data.store import EpisodeWriter

    sized = fake_episodes(tmp_path / "sized", [{"world": "crafter", "world_config": {"size": 64}}])
    assert training_world(sized, (32, 32)) == ("crafter", {"size": 64})
    meta = {"world": "crafter", "world_config": {}}
    with EpisodeWriter(tmp_path / "plain", "ep0", meta) as w:
        for _ in range(2):
            w.add(np.zeros((48, 48, 3), np.uint8), 0, [], {})
    assert training_world([tmp_path / "plain" / "ep0"], (32, 32)) == ("crafter", {"size": 48})


def test_training_world_refuses_mixed_or_mismatched_data(tmp_path):
    crafter = fake_episodes(tmp_path / "c", [{"world": "crafter", "world_config": {"size": 64}}])
    toy = fake_episodes(tmp_path / "t", [{"world": "toy", "world_config": {"size": 64}}])
    with pytest.raises(AimcError, match="the training data mixes worlds: 'crafter' .* and 'toy'") as e:
        training_world(crafter + toy, (64, 64))
    assert "\n" not in str(e.value)
    bad = fake_episodes(tmp_path / "b", [{"world": "crafter", "world_config": {"size": "big"}}])
    with pytest.raises(AimcError, match="records size 'big', which is not a frame size") as e:
        training_world(bad, (64, 64))
    assert "\n" not in str(e.value)
    small = fake_episodes(tmp_path / "s", [{"world": "crafter", "world_config": {"size": 32}}])
    with pytest.raises(AimcError, match="mixes crafter options"):
        training_world(crafter + small, (32, 32))
    other = fake_episodes(tmp_path / "o", [{"world": "crafter", "world_config": {"size": 64, "length": 10}}])
    with pytest.raises(AimcError, match="mixes crafter options"):
        training_world(crafter + other, (64, 64))
    anon = fake_episodes(tmp_path / "a", [{"seed": 1}])
    with pytest.raises(EpisodeError, match="names no world"):
        training_world(anon, (64, 64))
    with pytest.raises(AimcError, match="no training episodes"):
        training_world([], (64, 64))


def test_trainer_writes_the_data_world_and_config_scale(random_store, tmp_path):
    """write_bundle on real collected data (the collector's default world_config) gives today's v1 JSON."""
    from aimc.data.store import list_episodes
    from aimc.train.config import TrainConfig
    from aimc.train.loop import write_bundle

    cfg = TrainConfig(out=str(tmp_path))
    assert cfg.cond_scale == DEFAULT_COND_SCALE == 6.0
    (tmp_path / "latest").mkdir()
    world, world_config = training_world(list_episodes(random_store), (64, 64))
    write_bundle(cfg, tmp_path, "latest", world, world_config)
    assert json.loads((tmp_path / BUNDLE_FILE).read_text()) == {**V1, "policy": "latest", "embedder": None,
                                                                 "embed_name": cfg.segment.embed_name}
    write_bundle(TrainConfig(out=str(tmp_path), cond_scale=3.0), tmp_path, "latest", "toy", {"size": 64})
    assert (AgentBundle.read(tmp_path).cond_scale, AgentBundle.read(tmp_path).world) == (3.0, "toy")
