"""`aimc serve` over HTTP without a browser: limits (games, checkpoint names, uploads, idle games), clear errors,
and what a game streams and downloads."""

from __future__ import annotations

import http.client
import shutil
import urllib.parse
import urllib.request

import numpy as np
import pytest

from aimc.core.video import count_frames, write_mp4
from tests.serve.conftest import call, read_stream, wait_for

CHOP = {"instruction": "chop a tree"}


def _game(url: str, *panels: dict, **fields) -> tuple[int, dict]:
    return call(f"{url}/api/games", "POST", {"seed": 4, "speed": 0, "max_steps": 40, **fields, "panels": list(panels)})


def test_too_many_games_are_refused_and_closing_one_frees_a_slot(make_server):
    srv = make_server(max_games=2)
    first = _game(srv.url, CHOP, speed=2, max_steps=400)
    second = _game(srv.url, CHOP, speed=2, max_steps=400)
    assert first[0] == second[0] == 200 and first[1]["id"] != second[1]["id"]
    code, body = _game(srv.url, CHOP)
    assert code == 429
    assert body["error"] == ("too many games: 2 of 2 are open (--max-games); reset one, or wait until an idle one "
                             "closes (300 s)")
    assert call(f"{srv.url}/api/games/{first[1]['id']}", "DELETE") == (200, {"status": "closed"})
    code, body = call(f"{srv.url}/api/games/{first[1]['id']}")
    assert code == 404 and body["error"] == f"game {first[1]['id']} is closed: reset by the page"
    assert call(f"{srv.url}/api/games/{second[1]['id']}")[1]["status"] == "running"  # the other game is untouched
    third = _game(srv.url, CHOP)
    assert third[0] == 200 and srv.manager.open_games == 2


def test_checkpoint_names_are_an_allow_list_inside_the_directory(make_server, tmp_path):
    from aimc.eval.play import shipped_bundle

    root, outside = tmp_path / "runs", tmp_path / "secret"
    shutil.copytree(shipped_bundle(), root / "good")
    shutil.copytree(shipped_bundle(), outside)
    (root / "pipeline" / "bundle").parent.mkdir()
    shutil.copytree(shipped_bundle(), root / "pipeline" / "bundle")
    (root / "escape").symlink_to(outside)  # a link leading out of the directory is not offered
    (root / "notes").mkdir()
    srv = make_server(checkpoints=str(root))
    info = call(f"{srv.url}/api/info")[1]
    assert [c["name"] for c in info["checkpoints"]] == ["good", "pipeline/bundle"]
    assert info["default_checkpoint"] == "good" and info["checkpoints"][0]["cond_scale"] == 0.0
    where = f"the page can only choose checkpoints inside {root.resolve()}"
    for name in ("../secret", "good/../../secret", str(outside), "..\\secret", "~/secret"):
        code, body = _game(srv.url, CHOP, checkpoint=name)
        assert (code, body["error"]) == (403, f"checkpoint {name!r} refused: {where}"), name
    for name in ("escape", "notes", "secret"):
        code, body = _game(srv.url, CHOP, checkpoint=name)
        assert (code, body["error"]) == (403, f"unknown checkpoint {name!r}; choose one of: good, pipeline/bundle")
    assert srv.manager.open_games == 0


def test_a_100_mb_upload_is_refused_before_it_is_read(make_server):
    srv = make_server(max_upload_mb=1)
    host, port = urllib.parse.urlsplit(srv.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/api/goals?name=big.mp4")
    conn.putheader("Content-Length", str(100 * 2**20))
    conn.endheaders()  # not one byte of the body is sent: the answer must come from the header alone
    r = conn.getresponse()
    assert r.status == 413
    assert r.read() == b'{"error":"upload refused: 100.0 MB is over the 1.0 MB limit (--max-upload-mb)"}'
    conn.close()
    assert call(f"{srv.url}/api/info")[0] == 200  # still serving


def test_an_upload_without_a_length_stops_at_the_limit_and_leaves_no_file(tmp_path):
    import asyncio

    from aimc.serve.goals import UploadTooLarge, save_stream

    read = []

    async def body(n_chunks: int):
        for _ in range(n_chunks):
            read.append(1)
            yield b"x" * 1000

    with pytest.raises(UploadTooLarge, match=r"^upload refused: it is over the 0\.0 MB limit"):
        asyncio.run(save_stream(body(100), 4500, tmp_path))
    assert len(read) == 5 and list(tmp_path.iterdir()) == []  # stopped at the chunk that crossed the limit
    path = asyncio.run(save_stream(body(3), 4500, tmp_path))
    assert path.stat().st_size == 3000


def test_uploaded_clips_become_visual_goals_and_bad_ones_are_one_message(make_server, tmp_path):
    srv = make_server()
    code, body = call(f"{srv.url}/api/goals?name=notes.mp4", "POST", raw=b"this is not a video" * 10)
    assert (code, body["error"]) == (400, "notes.mp4 is not a readable video (InvalidDataError); upload an mp4 clip")
    rng = np.random.default_rng(0)
    write_mp4(tmp_path / "short.mp4", rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8))
    code, body = call(f"{srv.url}/api/goals?name=short.mp4", "POST", raw=(tmp_path / "short.mp4").read_bytes())
    assert (code, body["error"]) == (400, "short.mp4 has 10 frame(s); a visual goal needs at least 16")
    write_mp4(tmp_path / "clip.mp4", rng.integers(0, 255, (20, 96, 128, 3), dtype=np.uint8))
    code, clip = call(f"{srv.url}/api/goals?name=../clip.mp4", "POST", raw=(tmp_path / "clip.mp4").read_bytes())
    assert code == 200 and clip["name"] == "clip.mp4" and clip["preview"].startswith("data:image/jpeg;base64,")
    assert srv.manager.goals.get(clip["id"]).frames.shape == (16, 96, 128, 3)

    code, game = _game(srv.url, {"instruction": "", "goal": clip["id"]}, max_steps=5)
    assert code == 200 and game["panels"] == ["clip clip.mp4 | guidance 0"]
    last = read_stream(f"{srv.url}/api/games/{game['id']}/stream", lambda m: m["status"] == "ended")[-1]
    assert last["panels"][0]["steps"] == 5 and last["panels"][0]["end"] == "stopped after 5 steps"
    code, body = _game(srv.url, {"instruction": "x", "goal": "feedbeef"})
    assert (code, body["error"]) == (400, "unknown goal clip 'feedbeef'; the server keeps the last 16, upload it again")


def test_bad_requests_are_one_message_each(make_server):
    srv = make_server(max_panels=2, max_steps=100)
    cases = [
        ({"panels": [{"instruction": "   "}]},
         'the panel: the instruction is empty; say what the agent should do, e.g. "chop a tree" (or pick a goal clip)'),
        ({"panels": [CHOP] * 3}, "3 panels asked; this server compares at most 2 (--max-panels)"),
        ({"panels": []}, "a game needs at least one panel (an instruction or a goal clip)"),
        ({"seed": -1, "panels": [CHOP]}, "the world seed must be a whole number in 0..2147483647, got -1"),
        ({"max_steps": 101, "panels": [CHOP]}, "max steps must be a whole number in 1..100, got 101"),
        ({"panels": [CHOP, {"instruction": "x", "cond_scale": "high"}]},
         "panel 2: the guidance scale must be a number in 0..20, got 'high'"),
        ({"panels": [CHOP], "sead": 3}, "the game request has unknown field(s) sead; valid: checkpoint, seed, speed, "
                                        "max_steps, panels"),
    ]
    for body, error in cases:
        assert call(f"{srv.url}/api/games", "POST", body) == (400, {"error": error})
    assert call(f"{srv.url}/api/games", "POST", raw=b"{nope") == (400, {"error": "the request body is not JSON"})
    assert call(f"{srv.url}/api/games/nosuch") == (404, {"error": "game nosuch does not exist (or was closed long ago)"})
    assert srv.manager.open_games == 0


def test_an_idle_game_is_closed(make_server):
    srv = make_server(idle_timeout_s=1.0)
    code, game = _game(srv.url, CHOP, speed=1, max_steps=400)
    assert code == 200 and call(f"{srv.url}/api/games/{game['id']}/pause", "POST") == (200, {"status": "paused"})
    wait_for(lambda: srv.manager.open_games == 0, "the reaper to close the paused game")
    assert call(f"{srv.url}/api/games/{game['id']}") == (404, {
        "error": f"game {game['id']} is closed: closed after 1 s without a request or a viewer; start a new game"})


def test_a_comparison_streams_frames_and_events_and_downloads_each_panel(make_server, tmp_path):
    """One instruction at two guidance scales and a second instruction, on world seed 4, in lockstep."""
    srv = make_server()
    panels = [CHOP, {"instruction": "chop a tree", "cond_scale": 3.0}, {"instruction": "collect a sapling"}]
    code, game = _game(srv.url, *panels, max_steps=20)
    assert code == 200 and game["panels"] == ["chop a tree | guidance 0", "chop a tree | guidance 3",
                                              "collect a sapling | guidance 0"]
    url = f"{srv.url}/api/games/{game['id']}"
    messages = read_stream(f"{url}/stream", lambda m: m["status"] == "ended")
    assert [p["steps"] for p in messages[-1]["panels"]] == [20, 20, 20]  # one world seed, stepped together
    frames = [m["panels"][0]["frame"] for m in messages if m["panels"][0]["frame"]]
    assert len(frames) >= 2 and all(f.startswith("data:image/jpeg;base64,") for f in frames)
    streamed = [[tuple(e) for m in messages for e in m["panels"][k]["events"]] for k in range(3)]
    state = call(url)[1]
    assert state["status"] == "ended"
    for k in range(3):
        events = call(f"{url}/panels/{k}/events.json")[1]
        assert [(e["step"], e["event"]) for e in events["events"]] == streamed[k]  # every event streamed once
        assert events["world_seed"] == 4 and events["steps"] == 20 and events["label"] == game["panels"][k]
        with urllib.request.urlopen(f"{url}/panels/{k}/episode.mp4") as r:
            (tmp_path / f"{k}.mp4").write_bytes(r.read())
        assert count_frames(tmp_path / f"{k}.mp4") == 21  # the state before each action, and after the last
    assert ("collect_sapling" in {e for _, e in streamed[2]}), streamed  # seed 4: a sapling within 20 steps

    code, clip = call(f"{srv.url}/api/goals/from-game", "POST", {"game": game["id"], "panel": 2, "step": 20})
    assert code == 200 and clip["name"] == "collect a sapling @ step 20"
    frames = srv.manager.goals.get(clip["id"]).frames
    assert frames.shape == (16, 64, 64, 3)
    code, body = call(f"{srv.url}/api/goals/from-game", "POST", {"game": game["id"], "panel": 2, "step": 3})
    assert (code, body["error"]) == (400, "a goal clip is the 16 frames up to a step; pick a step in 15..20 "
                                          "(this episode has 21 frames so far)")
