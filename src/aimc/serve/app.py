"""The HTTP side of `aimc serve` (FastAPI): one page, a small JSON API, and a Server-Sent Events stream per game.

    GET  /                                     the page (static/index.html)
    GET  /api/info                             checkpoints, limits, defaults, goal clips
    POST /api/games                            {checkpoint, seed, speed, max_steps, panels: [{instruction, cond_scale, goal}]}
    GET  /api/games/{id}/stream                text/event-stream: frames (JPEG data URLs), new events, status
    POST /api/games/{id}/pause | resume | speed; DELETE /api/games/{id}
    GET  /api/games/{id}/panels/{k}/episode.mp4 | events.json        the episode so far
    POST /api/goals?name=clip.mp4              raw mp4 body -> a goal clip; POST /api/goals/from-game {game, panel, step}

Why SSE and not WebSockets: the stream only flows server -> page, EventSource reconnects by itself, and it needs
no extra server package; controls are plain POSTs. Every expected mistake is a JSON `{"error": "<one line>"}`
with a 4xx status that the page shows as is; anything else is a 500 with one line, and the server keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from aimc.core.errors import AimcError
from aimc.serve.catalog import CheckpointRefused
from aimc.serve.config import MAX_SPEED
from aimc.serve.goals import UploadTooLarge, check_declared_size, save_stream
from aimc.serve.manager import GameGone, GameManager, TooManyGames
from aimc.serve.media import ClipError, read_clip, write_episode_mp4
from aimc.serve.requests import parse_clip_request, parse_game, parse_speed

STATUS = {TooManyGames: 429, GameGone: 404, CheckpointRefused: 403, UploadTooLarge: 413, ClipError: 400}
"""HTTP status of each expected error; any other `AimcError` is a 400."""
POLL_S = 0.02
"""How often a stream checks its game for a new step (the frame rate a viewer can get tops out at 1 / POLL_S)."""
PING_S = 15.0


def _status(e: AimcError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(e, cls)), 400)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AimcError("the request body is not JSON") from None


def create_app(manager: GameManager, preload: bool = True) -> FastAPI:
    """The app over `manager`; `preload` loads the default checkpoint in the background at start-up, so the
    first game starts without waiting for the model."""
    tmp = Path(tempfile.mkdtemp(prefix="aimc-serve-"))
    cfg = manager.cfg

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        if preload:
            threading.Thread(target=_preload, args=(manager,), name="aimc-serve-preload", daemon=True).start()
        yield
        await run_in_threadpool(manager.shutdown)
        shutil.rmtree(tmp, ignore_errors=True)

    app = FastAPI(title="aimc serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(AimcError)
    async def expected(request: Request, e: AimcError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=_status(e))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        print(f"aimc serve: {request.method} {request.url.path} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return JSONResponse({"error": f"internal error ({type(e).__name__}: {e}); the server keeps running"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("aimc.serve").joinpath("static/index.html").read_text()

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "checkpoints": manager.catalog.describe(), "default_checkpoint": manager.catalog.default,
            "seed": cfg.seed, "speed": cfg.speed, "max_speed": MAX_SPEED, "max_steps": cfg.max_steps,
            "max_games": cfg.max_games, "max_panels": cfg.max_panels, "open_games": manager.open_games,
            "max_upload_bytes": cfg.max_upload_bytes, "idle_timeout_s": cfg.idle_timeout_s,
            "goals": [c.summary() for c in manager.goals.list()],
        }

    @app.post("/api/games")
    async def create_game(request: Request) -> dict[str, Any]:
        spec = parse_game(await _json(request), cfg)
        game = await run_in_threadpool(manager.create, spec)
        return {"id": game.id, "checkpoint": game.checkpoint, "seed": spec.seed,
                "panels": [p.label for p in game.panels]}

    @app.get("/api/games/{gid}")
    def game_state(gid: str) -> dict[str, Any]:
        game = manager.get(gid)
        game.touch()
        return {"id": gid, "status": game.status, "message": game.message, "version": game.version,
                "viewers": game.viewers, "panels": [p.summary() for p in game.panels]}

    @app.post("/api/games/{gid}/pause")
    def pause(gid: str) -> dict[str, str]:
        game = manager.get(gid)
        game.touch()
        game.pause()
        return {"status": game.status}

    @app.post("/api/games/{gid}/resume")
    def resume(gid: str) -> dict[str, str]:
        game = manager.get(gid)
        game.touch()
        game.resume()
        return {"status": game.status}

    @app.post("/api/games/{gid}/speed")
    async def speed(gid: str, request: Request) -> dict[str, float]:
        game = manager.get(gid)
        game.touch()
        game.speed = parse_speed(await _json(request))
        return {"speed": game.speed}

    @app.delete("/api/games/{gid}")
    def close(gid: str) -> dict[str, str]:
        manager.get(gid)
        manager.close(gid, "reset by the page")
        return {"status": "closed"}

    @app.get("/api/games/{gid}/stream")
    def stream(gid: str) -> StreamingResponse:
        game = manager.get(gid)
        game.touch()
        return StreamingResponse(_events(game), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/games/{gid}/panels/{k}/events.json")
    def events(gid: str, k: int) -> JSONResponse:
        game = manager.get(gid)
        game.touch()
        panel = _panel(game, k)
        body = {"game": gid, "checkpoint": game.checkpoint, "world_seed": game.spec.seed, **panel.summary()}
        return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="aimc-{gid}-{k}-events.json"'})

    @app.get("/api/games/{gid}/panels/{k}/episode.mp4")
    def episode(gid: str, k: int) -> Response:
        game = manager.get(gid)
        game.touch()
        frames = list(_panel(game, k).frames)  # the frames so far; the game keeps going
        with tempfile.TemporaryDirectory(dir=tmp) as d:
            data = write_episode_mp4(frames, Path(d) / "episode.mp4").read_bytes()
        return Response(data, media_type="video/mp4",
                        headers={"Content-Disposition": f'attachment; filename="aimc-{gid}-{k}.mp4"'})

    @app.get("/api/goals")
    def goals() -> list[dict[str, str]]:
        return [c.summary() for c in manager.goals.list()]

    @app.post("/api/goals")
    async def upload(request: Request, name: str = "clip.mp4") -> dict[str, str]:
        check_declared_size(request.headers.get("content-length"), cfg.max_upload_bytes)
        name = Path(name.replace("\\", "/")).name[:80] or "clip.mp4"
        path = await save_stream(request.stream(), cfg.max_upload_bytes, tmp)
        try:
            frames = await run_in_threadpool(read_clip, path, name)
        finally:
            path.unlink(missing_ok=True)
        return manager.goals.add(name, frames).summary()

    @app.post("/api/goals/from-game")
    async def clip_from_game(request: Request) -> dict[str, str]:
        gid, k, step = parse_clip_request(await _json(request))
        game = manager.get(gid)
        game.touch()
        frames = game.goal_clip(k, step)
        return manager.goals.add(f"{game.panels[k].instruction or 'clip'} @ step {step}", frames).summary()

    return app


def _panel(game: Any, k: int) -> Any:
    if not 0 <= k < len(game.panels):
        raise AimcError(f"game {game.id} has {len(game.panels)} panel(s); there is no panel {k}")
    return game.panels[k]


async def _events(game: Any) -> AsyncIterator[str]:
    """One viewer's stream: a message whenever the game stepped or changed state, a comment line every PING_S
    otherwise (so a vanished viewer is noticed); a viewer that reads slowly gets the newest frame, and every event."""
    n = len(game.panels)
    sent_frames, sent_events = [0] * n, [0] * n
    last: tuple[int, str] | None = None
    last_sent = time.monotonic()
    game.viewers += 1
    try:
        while True:
            now = (game.version, game.status)
            if now != last:
                last = now
                if game.status == "running":
                    game.touch()
                yield f"data: {json.dumps(game.snapshot(sent_frames, sent_events))}\n\n"
                last_sent = time.monotonic()
                if game.status == "closed":
                    return
            elif time.monotonic() - last_sent > PING_S:
                yield ": ping\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_S)
    finally:
        game.viewers -= 1


def _preload(manager: GameManager) -> None:
    try:
        manager.agents.get(manager.catalog.resolve(None))
    except Exception as e:  # the first game request will report it to the page
        print(f"aimc serve: could not preload the default checkpoint: {e}", file=sys.stderr)
