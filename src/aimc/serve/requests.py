"""Page requests -> typed specs, each mistake one line the page shows as is.

Plain checks on parsed JSON rather than pydantic models: pydantic's errors are lists of locations, and the
page (like the CLI) shows one sentence that says what to change.
"""

from __future__ import annotations

from typing import Any

from aimc.core.errors import AimcError
from aimc.serve.config import MAX_SPEED, ServeConfig
from aimc.serve.games import GameSpec, PanelSpec

MAX_COND_SCALE = 20.0
"""Largest guidance scale the page may ask for (STEVE-1 uses up to ~10)."""
_GAME_KEYS = ("checkpoint", "seed", "speed", "max_steps", "panels")
_PANEL_KEYS = ("instruction", "cond_scale", "goal")


class BadRequest(AimcError):
    """A page request is malformed or out of range."""


def _number(value: Any, what: str, lo: float, hi: float, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (not integer or float(value).is_integer())
    if not ok or not lo <= value <= hi:
        kind, span = ("a whole number", f"{int(lo)}..{int(hi)}") if integer else ("a number", f"{lo:g}..{hi:g}")
        raise BadRequest(f"{what} must be {kind} in {span}, got {value!r}")
    return value


def _object(data: Any, what: str, valid: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object")
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise BadRequest(f"{what} has unknown field(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return data


def parse_game(data: Any, cfg: ServeConfig) -> GameSpec:
    """A `GameSpec` from the page's JSON, with the server's limits applied."""
    data = _object(data, "the game request", _GAME_KEYS)
    raw = data.get("panels")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("a game needs at least one panel (an instruction or a goal clip)")
    if len(raw) > cfg.max_panels:
        raise BadRequest(f"{len(raw)} panels asked; this server compares at most {cfg.max_panels} (--max-panels)")
    panels = []
    for i, p in enumerate(raw, 1):
        where = f"panel {i}" if len(raw) > 1 else "the panel"
        p = _object(p, where, _PANEL_KEYS)
        instruction = p.get("instruction", "")
        if not isinstance(instruction, str):
            raise BadRequest(f"{where}: the instruction must be text")
        goal = p.get("goal")
        if goal is not None and not (isinstance(goal, str) and goal):
            raise BadRequest(f"{where}: goal must be a goal clip id or null")
        if goal is None and not instruction.strip():
            raise BadRequest(f"{where}: the instruction is empty; say what the agent should do, e.g. \"chop a tree\" "
                             "(or pick a goal clip)")
        if len(instruction) > 500:
            raise BadRequest(f"{where}: the instruction is {len(instruction)} characters; keep it under 500")
        scale = p.get("cond_scale")
        if scale is not None:
            scale = float(_number(scale, f"{where}: the guidance scale", 0.0, MAX_COND_SCALE))
        panels.append(PanelSpec(instruction, scale, goal))
    checkpoint = data.get("checkpoint") or ""
    if not isinstance(checkpoint, str):
        raise BadRequest("checkpoint must be a checkpoint name")
    return GameSpec(
        panels=panels, checkpoint=checkpoint,
        seed=int(_number(data.get("seed", cfg.seed), "the world seed", 0, 2**31 - 1, integer=True)),
        speed=float(_number(data.get("speed", cfg.speed), "the speed (steps/s, 0 = as fast as possible)", 0, MAX_SPEED)),
        max_steps=int(_number(data.get("max_steps", cfg.max_steps), "max steps", 1, cfg.max_steps, integer=True)),
    )


def parse_speed(data: Any) -> float:
    data = _object(data, "the speed request", ("speed",))
    return float(_number(data.get("speed"), "the speed (steps/s, 0 = as fast as possible)", 0, MAX_SPEED))


def parse_clip_request(data: Any) -> tuple[str, int, int]:
    """(game id, panel index, step) of a goal clip cut from a game."""
    data = _object(data, "the clip request", ("game", "panel", "step"))
    game = data.get("game")
    if not isinstance(game, str) or not game:
        raise BadRequest("the clip request needs the game id")
    return game, int(_number(data.get("panel", 0), "panel", 0, 64, integer=True)), int(
        _number(data.get("step"), "step", 0, 10**7, integer=True))
