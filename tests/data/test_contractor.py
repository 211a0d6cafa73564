"""Contractor recordings -> episode store, checked value by value against OpenAI's loader semantics.

The recording (tests/data/contractor_fixtures.py) holds a stuck attack, a null action, an idle pickup, a
hotbar-only change, an open GUI with the cursor, ESC and a fractional camera move; the expectations were worked
out by hand from data_loader.py and run_inverse_dynamics_model.py, not from aimc's code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aimc.actions import env_to_joint
from aimc.cli.convert_contractor import vpt_joint_code
from aimc.core.errors import AimcError, ConfigError, EpisodeError
from aimc.data.contractor.convert import ContractorConfig, SkippedTrajectories, convert_contractor
from aimc.data.contractor.loader import env_action, loader_steps
from aimc.data.store import Episode, list_episodes
from tests.data.contractor_fixtures import (
    EVENTS_BEFORE_FIRST_STEP,
    EXPECTED,
    frame_pixels,
    line,
    story_lines,
    write_trajectory,
)

KEY = "8.0/cheeky-cornflower-setter-74ae6c2eae2e-20220315-122354"
NAME = "8_0-cheeky-cornflower-setter-74ae6c2eae2e-20220315-122354"


def _convert(src: Path, out: Path, **cfg) -> tuple[dict, list[str]]:
    lines: list[str] = []
    summary = convert_contractor(ContractorConfig(source=str(src), out=str(out), **cfg), vpt_joint_code,
                                 skipped=SkippedTrajectories(echo=lines.append), progress=False)
    return summary, lines


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]


# ------------------------------------------------------------------------------------------ loader rules
def test_loader_rules_line_by_line() -> None:
    steps = list(loader_steps(story_lines()))
    assert [s.line for s in steps if not s.null] == sorted(EXPECTED)  # lines 0, 3, 8 are null
    for s in steps:
        if s.null:
            continue
        buttons, camera, _, _, gui = EXPECTED[s.line]
        assert {k: v for k, v in s.action.items() if k != "camera"} == buttons, s.line
        assert s.action["camera"] == pytest.approx(camera, abs=1e-12)
        assert s.gui_open is gui
    assert steps[6].mouse_xy == (400.0, 300.0) and steps[1].mouse_xy == (0.0, 0.0)  # position only when the GUI is open


def test_official_quirks_line_by_line() -> None:
    steps = list(loader_steps(story_lines(), quirks=("camera_int", "hotbar_on_null")))
    assert [s.line for s in steps if not s.null] == [k for k in sorted(EXPECTED) if k != 4]  # hotbar-only line dropped
    assert steps[4].action["hotbar.4"] == 1  # the key is set, but the line is null and dropped with it
    for s in steps:
        if not s.null:
            assert s.action["camera"] == EXPECTED[s.line][2]  # truncated toward zero: -0.6 -> 0, -1.05 -> -1


def test_env_action_keys_buttons_and_lenient_nulls() -> None:
    keys = ("escape", "s", "q", "w", *"123456789", "e", "space", "a", "d", "left.shift", "left.control", "f", "x", "tab")
    action, null = env_action(line(keys=keys, buttons=(0, 1, 2, 3)))
    assert not null and action["camera"] == [0.0, 0.0]
    assert all(v == 1 for k, v in action.items() if k != "camera")  # every button, from 20 keys and 3 mouse buttons
    assert env_action({"mouse": None, "keyboard": None}) == (env_action(line())[0], True)  # recorded as null: no input
    action, null = env_action(line(keys=("x",), buttons=(3,)))
    assert null  # an unmapped key and mouse button 3 are not actions
    assert env_action(line(dx=1))[0]["camera"] == [0.0, 0.15] and not env_action(line(dy=-2))[1]


# ------------------------------------------------------------------------------------------ one trajectory
def test_convert_story_value_by_value(tmp_path: Path) -> None:
    write_trajectory(tmp_path / "src", KEY)
    summary, skipped = _convert(tmp_path / "src", tmp_path / "out", size=None)
    assert skipped == [] and summary["converted"] == 1 and summary["null_lines_dropped"] == 3
    ep = Episode(tmp_path / "out" / NAME)
    kept = sorted(EXPECTED)
    assert ep.length == len(kept) == 9
    for t, ln in enumerate(kept):
        buttons, camera, _, events, gui = EXPECTED[ln]
        info = ep.infos[t]
        assert info["line"] == ln and info["gui_open"] is gui
        assert {k: v for k, v in info["action"].items() if k != "camera"} == buttons
        assert info["action"]["camera"] == pytest.approx(camera, abs=1e-12)
        assert ep.events[t] == events
        joint = env_to_joint(info["action"])
        assert divmod(int(ep.actions[t]), 121) == (joint["buttons"][0], joint["camera"][0])
    # forward = choice 1 of fore_back (stride 3*3*2**5 = 288), camera off (null camera 60); attack (stride 4) + the
    # camera meta action (1) with pitch -0.6 / yaw 2.4 in mu-law bins 4 / 8; inventory = button 8640, camera 60
    assert ep.actions[0] == 288 * 121 + 60
    assert divmod(int(ep.actions[1]), 121) == (5, 4 * 11 + 8)
    assert divmod(int(ep.actions[3]), 121) == (8640, 60)
    # infos: the state after the action = at the next kept line (line 4 for line 2), with the item-level change
    assert ep.infos[1]["inventory"] == {"dirt": 2, "oak_log": 1} and ep.infos[1]["gained"] == {"oak_log": 1}
    assert ep.infos[5]["stat_deltas"] == {"craft_item:oak_planks": 4} and ep.infos[5]["inventory"] == {"dirt": 2, "oak_planks": 4}
    assert ep.infos[0]["hotbar"] == 0 and ep.infos[1]["hotbar"] == 3 and ep.infos[0]["player_pos"] == [841.36, 63.0, 24.95]
    meta = ep.metadata
    assert (meta["world"], meta["world_config"], meta["trajectory"]) == ("minecraft", {"size": [36, 64]}, KEY)
    assert meta["events_before_first_step"] == EVENTS_BEFORE_FIRST_STEP and meta["null_lines_dropped"] == 3
    assert (meta["recorded_lines"], meta["video_frames"], meta["resize"], meta["quirks"]) == (12, 12, "none", [])
    # frames: the recorded frame of each kept line, bit for bit where no cursor is drawn
    frames = ep.frames()
    for t, ln in enumerate(kept):
        if not EXPECTED[ln][4]:
            np.testing.assert_array_equal(frames[t], frame_pixels(ln))
    # line 6: mouse (400, 300) on a 720-high screen -> pixel (x 20, y 15) of the 36-high frame
    gui6 = frames[kept.index(6)]
    np.testing.assert_array_equal(gui6[15, 20], [0, 0, 0])  # the arrow's tip: outline
    np.testing.assert_array_equal(gui6[17, 21], [255, 255, 255])  # its white body
    np.testing.assert_array_equal(gui6[15, 22], frame_pixels(6)[15, 22])  # transparent part: the frame shows
    np.testing.assert_array_equal(gui6[:15], frame_pixels(6)[:15])
    # line 9: mouse (1270, 700) -> (63, 35): only the tip fits in the corner
    gui9 = frames[kept.index(9)]
    np.testing.assert_array_equal(gui9[35, 63], [0, 0, 0])
    np.testing.assert_array_equal(gui9[:35], frame_pixels(9)[:35])


def test_official_quirks_and_cursor_blend(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.zeros((20, 20, 4), np.uint8)  # bigger than 16x16: the loader keeps the top-left 16x16
    rgba[:16, :16] = (255, 255, 255, 128)
    Image.fromarray(rgba).save(tmp_path / "cursor.png")
    lines = [line(keys=("w",)), line(keys=("w",), gui=True, x=400, y=300)]
    flat = np.full((2, 36, 64, 3), 100, np.uint8)
    src = tmp_path / "src"
    src.mkdir()
    from aimc.core.video import write_mp4

    write_mp4(src / "a.mp4", flat, lossless=True)
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    results = {}
    for quirks in ([], ["cursor_floor"]):
        out = tmp_path / f"out{len(quirks)}"
        _convert(src, out, size=None, quirks=quirks, cursor=str(tmp_path / "cursor.png"))
        results[tuple(quirks)] = Episode(out / "a").frames()[1]
    # 100 + (255 - 100) * 128 / 255 = 177.80: rounded by default, truncated by the loader's astype(np.uint8)
    assert results[()][15, 20, 0] == 178 and results[("cursor_floor",)][15, 20, 0] == 177
    assert results[()][15 + 16, 20, 0] == 100 and results[()][15, 20 + 16, 0] == 100  # only 16x16 is drawn
    # --official-quirks: whole-degree camera and the hotbar-only line dropped, recorded in the metadata
    write_trajectory(tmp_path / "story", KEY)
    _convert(tmp_path / "story", tmp_path / "official", size=None, quirks=["official"])
    ep = Episode(tmp_path / "official" / NAME)
    assert ep.length == 8 and [i["line"] for i in ep.infos] == [k for k in sorted(EXPECTED) if k != 4]
    assert [i["action"]["camera"] for i in ep.infos] == [EXPECTED[i["line"]][2] for i in ep.infos]
    assert ep.metadata["quirks"] == ["camera_int", "cursor_floor", "hotbar_on_null"]
    with pytest.raises(ConfigError, match="unknown loader quirk.*'round'.*camera_int"):
        ContractorConfig(source="x", quirks=["round"])


def test_resize_is_bilinear_with_half_pixel_centres(tmp_path: Path) -> None:
    write_trajectory(tmp_path / "src", "t")
    _convert(tmp_path / "src", tmp_path / "out", size=(18, 32))
    ep = Episode(tmp_path / "out" / "t")
    assert ep.metadata["world_config"] == {"size": [18, 32]} and ep.metadata["resize"] == "cv2 INTER_LINEAR (bit-exact)"
    # halving puts every output sample between four source pixels with weight 1/4 each: the 2x2 block mean
    src = frame_pixels(1).astype(np.float64)
    want = np.floor((src[0::2, 0::2] + src[1::2, 0::2] + src[0::2, 1::2] + src[1::2, 1::2]) / 4 + 0.5)
    np.testing.assert_array_equal(ep.frames(0, 1)[0], want.astype(np.uint8))


def test_lossy_yuv_video_like_the_release(tmp_path: Path) -> None:
    write_trajectory(tmp_path / "src", "t", lossless=False)  # H.264 yuv420p, as the released .mp4 files
    summary, _ = _convert(tmp_path / "src", tmp_path / "out", size=None)
    ep = Episode(tmp_path / "out" / "t")
    assert summary["steps"] == ep.length == 9
    # lossy decoding changes pixels, not which recorded frame each step holds
    sources = np.stack([frame_pixels(j) for j in range(12)]).astype(int)
    for t, frame in enumerate(ep.frames()):
        if not ep.infos[t]["gui_open"]:
            nearest = int(np.abs(sources - frame.astype(int)).mean(axis=(1, 2, 3)).argmin())
            assert nearest == ep.infos[t]["line"]


# ------------------------------------------------------------------------------------------ bad input, resume, workers
def _bad_source(root: Path) -> Path:
    src = root / "src"
    write_trajectory(src, "good")
    write_trajectory(src, "7.6/no-video")
    (src / "7.6/no-video.mp4").unlink()
    write_trajectory(src, "no-jsonl")
    (src / "no-jsonl.jsonl").unlink()
    write_trajectory(src, "short-video", n_frames=8)
    video, _ = write_trajectory(src, "cut-file")
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    _, jsonl = write_trajectory(src, "bad-line")
    rows = jsonl.read_text().splitlines()
    rows[4] = rows[4][:-7]
    jsonl.write_text("\n".join(rows) + "\n")
    return src


def test_bad_input_one_line_each_nothing_lost(tmp_path: Path) -> None:
    src = _bad_source(tmp_path)
    summary, lines = _convert(src, tmp_path / "out", workers=2)
    assert summary["converted"] == 1 and [p.name for p in list_episodes(tmp_path / "out")] == ["good"]
    assert len(lines) == summary["skipped_trajectories"] == 5
    by_name = {Path(ln.split(": ", 1)[0].removeprefix("skipped trajectory ")).name: ln.split(": ", 1)[1] for ln in lines}
    assert by_name["no-video"] == "no video (.mp4) next to it"
    assert by_name["no-jsonl"] == "no actions (.jsonl) next to it"
    assert by_name["short-video"] == "short-video.mp4: 8 frames for 12 jsonl lines (truncated?)"
    assert by_name["cut-file"].startswith("cut-file.mp4: ")
    assert by_name["bad-line"].startswith("line 5 of bad-line.jsonl: not valid JSON")
    assert all(ln.startswith(f"skipped trajectory {src}/") for ln in lines)
    assert summary["skipped_by_reason"] == {"missing files": 2, "unreadable video": 2, "bad actions": 1}
    assert _leftovers(tmp_path / "out") == []
    # a short video within --missing-frames loses only its last lines, as the loader does
    summary, lines = _convert(src, tmp_path / "tolerant", missing_frames=4)
    ep = Episode(tmp_path / "tolerant" / "short-video")
    assert [i["line"] for i in ep.infos] == [k for k in sorted(EXPECTED) if k < 8] and ep.metadata["lines_without_frame"] == 4
    # the lines without a frame are dropped, not what was recorded on them: the last step gets their changes
    assert ep.events[-1] == ["obtain_planks"] * 4 + ["mine_log"] + ["craft_planks"] * 4


def test_strict_stops_at_the_first_bad_trajectory(tmp_path: Path) -> None:
    src = _bad_source(tmp_path)
    with pytest.raises(EpisodeError, match=r"--strict stops"):
        convert_contractor(ContractorConfig(source=str(src), out=str(tmp_path / "out"), workers=2), vpt_joint_code,
                           skipped=SkippedTrajectories(strict=True, echo=None), progress=False)
    assert _leftovers(tmp_path / "out") == []


def test_too_short_and_all_null(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_trajectory(src, "story")
    write_trajectory(src, "idle", lines=[line(), line(), line()])
    summary, lines = _convert(src, tmp_path / "out", min_length=9)
    assert summary["converted"] == 1
    assert sorted(ln.split(": ", 1)[1] for ln in lines) == ["0 step(s) after dropping null actions < --min-length 9"]
    summary, lines = _convert(src, tmp_path / "out2", min_length=10)
    assert summary["converted"] == 0 and summary["skipped_by_reason"] == {"too short": 2}


def test_resume_skips_finished_and_refuses_other_settings(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_trajectory(src, "a")
    write_trajectory(src, "b")
    out = tmp_path / "out"
    _convert(src, out)
    before = (out / "a" / "actions.npy").stat().st_mtime_ns
    shutil.rmtree(out / "b")
    (out / ".tmp-b.killed").mkdir()  # what a killed writer leaves
    summary, _ = _convert(src, out, workers=2, seed=5)  # workers and seed may change on resume
    assert (summary["already_converted"], summary["converted"]) == (1, 1)
    assert (out / "a" / "actions.npy").stat().st_mtime_ns == before and _leftovers(out) == []
    with pytest.raises(AimcError, match=r"other settings \(quirks, size\)"):
        _convert(src, out, size=(64, 64), quirks=["camera_int"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(AimcError, match="is not an episode store"):
        _convert(src, tmp_path / "notes")
    with pytest.raises(AimcError, match="does not exist"):
        _convert(tmp_path / "nowhere", out)


def test_workers_give_the_same_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for k in ("a", "b", "c"):
        write_trajectory(src, k)
    _convert(src, tmp_path / "one", workers=1)
    _convert(src, tmp_path / "two", workers=2)
    for k in ("a", "b", "c"):
        for f in ("actions.npy", "events.jsonl", "infos.jsonl"):
            assert (tmp_path / "one" / k / f).read_bytes() == (tmp_path / "two" / k / f).read_bytes()
        np.testing.assert_array_equal(Episode(tmp_path / "one" / k).frames(), Episode(tmp_path / "two" / k).frames())


def test_cli(tmp_path: Path, capsys) -> None:
    from aimc.cli.app import main

    src = _bad_source(tmp_path)
    out = tmp_path / "out"
    assert main(["convert", "contractor", str(src), "--out", str(out), "--size", "18x32", "--seed", "3", "--quiet"]) == 0
    io = capsys.readouterr()
    assert io.out.strip() == (f"converted 1 of 6 trajectories into {out} (0 already present, 5 skipped: 1 bad actions, "
                              "2 missing files, 2 unreadable video): 9 steps, 3 null actions dropped; events: "
                              "craft_planks 4, obtain_planks 4, mine_log 1, obtain_log 1, open_inventory 1")
    assert len(io.err.strip().splitlines()) == 5
    ep = Episode(out / "good")
    assert ep.metadata["seed"] == 3 and ep.frames(0, 1).shape == (1, 18, 32, 3)
    assert main(["convert", "contractor", str(src), "--out", str(tmp_path / "s"), "--strict", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: trajectory {src}/") and "--strict stops" in err[0]
    assert main(["convert", "contractor", str(src), "--out", str(tmp_path / "q"), "--quirk", "nope"]) == 2
    assert "unknown loader quirk(s) ['nope']" in capsys.readouterr().err
    assert main(["convert", "contractor", str(src), "--out", str(tmp_path / "q"), "--size", "12xa"]) == 2
    assert "--size must look like 128x128" in capsys.readouterr().err


def test_package_exports_resolve() -> None:
    import aimc.data.contractor as pkg

    assert all(getattr(pkg, name) is not None for name in pkg.__all__)
    assert pkg.QUIRKS.keys() == {"camera_int", "cursor_floor", "hotbar_on_null"} and pkg.CAMERA_SCALE == 0.15


def test_read_jsonl_blank_lines(tmp_path: Path) -> None:
    from aimc.data.contractor.loader import read_jsonl

    rows = [json.dumps(r) for r in story_lines()[:3]]
    (tmp_path / "end.jsonl").write_text("\n".join(rows) + "\n\n  \n")
    assert len(read_jsonl(tmp_path / "end.jsonl")) == 3  # trailing blank lines are no frames
    (tmp_path / "mid.jsonl").write_text(rows[0] + "\n\n" + rows[1] + "\n")
    with pytest.raises(EpisodeError, match="mid.jsonl: line 2: empty line"):
        read_jsonl(tmp_path / "mid.jsonl")
    (tmp_path / "list.jsonl").write_text(rows[0] + "\n[1, 2]\n")
    with pytest.raises(EpisodeError, match="list.jsonl: line 2: a JSON list, not an object"):
        read_jsonl(tmp_path / "list.jsonl")
