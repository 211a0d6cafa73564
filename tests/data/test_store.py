"""Episode store: round trip, validation errors, atomicity under SIGKILL, embeddings, index and mixtures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aimc.core.errors import AimcError, EpisodeError
from aimc.data import DatasetIndex, Episode, EpisodeWriter, Mixture, list_episodes
from aimc.envs import make


def _write_episode(root, name="ep", n=20, seed=0):
    env = make("crafter")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames, actions, events = [], [], []
    with EpisodeWriter(root, name, {"world": "crafter", "world_seed": seed}) as w:
        for _ in range(n):
            a = int(rng.integers(17))
            frames.append(obs["pov"])
            obs, _, _, _, info = env.step(a)
            actions.append(a)
            events.append(info["events"])
            w.add(frames[-1], a, info["events"], info)
    return np.stack(frames), actions, events


def test_round_trip_is_exact(tmp_path):
    frames, actions, events = _write_episode(tmp_path, n=25)
    ep = Episode(tmp_path / "ep")
    assert ep.length == 25 and ep.metadata["format_version"] == 1 and ep.metadata["length"] == 25
    assert np.array_equal(ep.frames(), frames)  # lossless video: bit-exact observations
    assert np.array_equal(ep.frames(5, 9), frames[5:9])
    assert ep.actions.tolist() == actions and ep.events == events
    assert "inventory" in ep.infos[0] and "events" not in ep.infos[0]
    assert (tmp_path / "ep" / "len.txt").read_text().strip() == "25"


@pytest.mark.parametrize("size", [(64, 64), (37, 21)])
def test_planar_decode_equals_the_rgb24_conversion(tmp_path, size):
    """`read_mp4` copies the decoded GBR planes itself (no libswscale); at sizes whose rows are padded in the
    decoder's buffers too, it must give the written frames, as PyAV's rgb24 conversion does."""
    import av

    from aimc.core.video import Mp4Writer, read_mp4

    frames = np.random.default_rng(0).integers(0, 256, (6, *size, 3), dtype=np.uint8)
    with Mp4Writer(tmp_path / "f.mp4", lossless=True) as w:
        for f in frames:
            w.add(f)
    with av.open(str(tmp_path / "f.mp4")) as c:
        converted = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert np.array_equal(read_mp4(tmp_path / "f.mp4"), frames)
    assert np.array_equal(converted, frames)
    assert np.array_equal(read_mp4(tmp_path / "f.mp4", 2, 5), frames[2:5])


def test_info_values_reads_one_field_of_every_step(tmp_path):
    _write_episode(tmp_path, n=12)
    ep = Episode(tmp_path / "ep")
    want = [info.get("inventory") for info in Episode(tmp_path / "ep").infos]
    assert ep.info_values("inventory") == want and "infos" not in ep.__dict__  # the step log is not kept
    assert ep.info_values("no_such_field") == [None] * 12


def test_embeddings_round_trip(tmp_path):
    _write_episode(tmp_path, n=20)
    ep = Episode(tmp_path / "ep")
    assert not ep.has_embeds("mine")
    emb = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    mask = np.arange(20) >= 15
    ep.write_embeds("mine", emb, mask)
    got, got_mask = ep.read_embeds("mine")
    assert got.dtype == np.float16 and np.allclose(got, emb, atol=1e-2) and (got_mask == mask).all()
    with pytest.raises(EpisodeError, match="must be"):
        ep.write_embeds("mine", emb[:5], mask[:5])
    with pytest.raises(EpisodeError, match="aimc embed"):
        ep.read_embeds("other")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate_mp4", "frames.mp4 is unreadable"),
        ("remove_actions", "missing actions.npy"),
        ("short_events", "events.jsonl has 19 lines"),
        ("len_mismatch", "len.txt says 7"),
        ("bad_metadata", "metadata.json is not valid JSON"),
    ],
)
def test_corrupted_episode_gives_clear_error(tmp_path, damage, message):
    _write_episode(tmp_path, n=20)
    d = tmp_path / "ep"
    if damage == "truncate_mp4":
        data = (d / "frames.mp4").read_bytes()
        (d / "frames.mp4").write_bytes(data[: len(data) // 2])
    elif damage == "remove_actions":
        (d / "actions.npy").unlink()
    elif damage == "short_events":
        lines = (d / "events.jsonl").read_text().splitlines(keepends=True)
        (d / "events.jsonl").write_text("".join(lines[:-1]))
    elif damage == "len_mismatch":
        (d / "len.txt").write_text("7\n")
    elif damage == "bad_metadata":
        (d / "metadata.json").write_text("{oops")
    with pytest.raises(EpisodeError, match=message) as err:
        Episode(d)
    assert "ep" in str(err.value) and "\n" not in str(err.value)


def test_writer_error_leaves_nothing_visible(tmp_path):
    with pytest.raises(RuntimeError), EpisodeWriter(tmp_path, "ep", {}) as w:
        w.add(np.zeros((8, 8, 3), np.uint8), 0, [], {})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_nothing_visible(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, sys, time
        from aimc.data import EpisodeWriter
        w = EpisodeWriter({str(tmp_path)!r}, "ep", {{}})
        for t in range(10_000):
            w.add(np.full((16, 16, 3), t % 255, np.uint8), 0, [], {{}})
            if t == 50:
                print("ready", flush=True)
        w.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "ep").exists()
    assert list_episodes(tmp_path) == []
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # the hidden leftover is all there is


def test_episode_name_rules(tmp_path):
    with pytest.raises(AimcError, match="no dots"):
        EpisodeWriter(tmp_path, "ep.1", {})
    _write_episode(tmp_path, n=5)
    with pytest.raises(AimcError, match="already exists"):
        EpisodeWriter(tmp_path, "ep", {})


def test_index_split_and_skips(tmp_path):
    for i in range(6):
        _write_episode(tmp_path, name=f"e{i}", n=8 + i, seed=i)
    shutil.copytree(tmp_path / "e0", tmp_path / "broken")
    (tmp_path / "broken" / "actions.npy").unlink()
    idx = DatasetIndex.scan(tmp_path)
    assert len(idx) == 6 and "broken" in idx.skipped and idx.total_frames == sum(8 + i for i in range(6))
    assert len(DatasetIndex.scan(tmp_path, min_length=12)) == 2
    train, val = idx.split(0.34, seed=1)
    assert len(val) == 2 and len(train) == 4 and not set(train.episodes) & set(val.episodes)
    assert idx.split(0.34, seed=1)[1].episodes == val.episodes  # seeded
    assert {tuple(idx.split(0.34, seed=s)[1].episodes) for s in range(8)} != {tuple(val.episodes)}
    idx.write_sampling(tmp_path / "s_train.txt")
    again = DatasetIndex.from_file(tmp_path / "s_train.txt")
    assert [p.name for p in again.episodes] == [p.name for p in idx.episodes]


def test_mixture_follows_weights(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(3):
        _write_episode(a, name=f"a{i}", n=6, seed=i)
    _write_episode(b, name="b0", n=30, seed=9)
    mix = Mixture([(DatasetIndex.scan(a), 0.7), (DatasetIndex.scan(b), 0.3)])
    rng = np.random.default_rng(0)
    draws = [mix.sample(rng).parent.name for _ in range(4000)]
    frac_a = draws.count("a") / len(draws)
    assert abs(frac_a - 0.7) < 0.03
    with pytest.raises(AimcError, match="positive"):
        Mixture([(DatasetIndex.scan(a), 0.0)])


def test_collect_records_generated_action_names_by_size():
    """Minecraft's joint action space is generated on demand (over a million names): an episode's metadata
    records its size, while a world with a plain name list keeps the names."""
    from aimc.data.collect import _recorded_action_names
    from aimc.envs.actions import JOINT_ACTION_NAMES, N_JOINT_CODES

    assert _recorded_action_names(("noop", "move_left")) == ["noop", "move_left"]
    assert _recorded_action_names(JOINT_ACTION_NAMES) == {"generated": N_JOINT_CODES}
