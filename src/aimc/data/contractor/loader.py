"""OpenAI's contractor-data loader semantics, from its source, on parsed jsonl lines (no video, no I/O).

Source: `openai/Video-Pre-Training` at 095519f, `data_loader.py::data_loader_worker` and
`run_inverse_dynamics_model.py::json_action_to_env_action` (STEVE-1's `steve1/data/utils/contractor.py` repeats
them). One jsonl line per video frame; line i gives action i, taken from frame i:

* keys held (`keyboard.keys`) map to MineRL buttons (`KEY_TO_BUTTON`; others are ignored); mouse buttons 0/1/2
  held (`mouse.buttons`) are attack/use/pickItem; the camera is `[dy, dx] * 360 / 2400` degrees ([pitch, yaw]).
* a **null action** (no mapped key, dx = dy = 0, no mouse button) is dropped with its frame.
* **attack stuck**: when the first line's `mouse.newButtons` is exactly `[0]`, button 0 is removed from every
  line until a line whose `newButtons` contains 0 (the press that unsticks it, which keeps its attack).
* **hotbar**: a change of the selected slot (`hotbar`, 0-based, starting from 0) sets `hotbar.{slot+1}` on that
  line; the recorder does not log the scroll wheel, so this is the only trace of scrolling.
* GUI open lines get the cursor drawn at `mouse.x, mouse.y` (done on the frame, see `aimc.envs.minecraft.frames`).

The loader's quirks are off by default and reproduced, each on its own, by naming it in `quirks` (`QUIRKS`;
`OFFICIAL_QUIRKS` = all of them):

* `camera_int`: the camera array is created as `np.array([0, 0])`, so degrees are truncated toward zero to
  whole degrees (5.625 -> 5, |delta| < 1 -> 0; VPT issue #54). Default: exact degrees.
* `cursor_floor`: the cursor blend is cast with `.astype(np.uint8)` (truncation). Default: rounded.
* `hotbar_on_null`: null-ness is decided before the hotbar change is added, so a line whose only input is a
  slot change is dropped and the change is lost. Default: a slot change is an input, the line is kept.

Left as the loader has them, in both modes: its `abs(camera) > 180 -> 0` guard sits in the branch where dx and
dy are 0 and never fires; ESC stays ESC when a GUI is open (the original training code's ESC -> inventory swap
is not done); `MINEREC_VERSION_SPECIFIC_SCALERS` (GUI mouse scaling of recorder 5.7-6.9) is defined but unused.
Where the loader would crash, lines are read leniently: a `mouse` or `keyboard` recorded as null (recorders
before 6.13, README) counts as no input, and a line without `hotbar` (recorders before 6.11) keeps the slot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimc.core.errors import EpisodeError
from aimc.data.store import BAD_ACTIONS

#: Keyboard key -> MineRL button (`KEYBOARD_BUTTON_MAPPING`); other keys are not actions.
KEY_TO_BUTTON: dict[str, str] = {
    "key.keyboard.escape": "ESC",
    "key.keyboard.s": "back",
    "key.keyboard.q": "drop",
    "key.keyboard.w": "forward",
    **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)},
    "key.keyboard.e": "inventory",
    "key.keyboard.space": "jump",
    "key.keyboard.a": "left",
    "key.keyboard.d": "right",
    "key.keyboard.left.shift": "sneak",
    "key.keyboard.left.control": "sprint",
    "key.keyboard.f": "swapHands",
}
MOUSE_TO_BUTTON: dict[int, str] = {0: "attack", 1: "use", 2: "pickItem"}
#: Every button of MineRL's human action space, in the order of the loader's NOOP_ACTION; `camera` comes last.
BUTTONS: tuple[str, ...] = ("ESC", "back", "drop", "forward", *(f"hotbar.{i}" for i in range(1, 10)), "inventory",
                            "jump", "left", "right", "sneak", "sprint", "swapHands", "attack", "use", "pickItem")
CAMERA_SCALE = 360.0 / 2400.0
"""Degrees per recorded mouse unit (the loader's CAMERA_SCALER, from MineRL's Java sensitivity)."""

QUIRKS: dict[str, str] = {
    "camera_int": "camera truncated to whole degrees (np.array([0, 0]) is an int array)",
    "cursor_floor": "cursor blend truncated by .astype(np.uint8) instead of rounded",
    "hotbar_on_null": "a line whose only input is a hotbar change is dropped as null, losing the change",
}
OFFICIAL_QUIRKS: tuple[str, ...] = tuple(QUIRKS)


def check_quirks(quirks: Sequence[str]) -> tuple[str, ...]:
    """Validated quirk names (`official` = all of them), in `QUIRKS` order."""
    from aimc.core.errors import ConfigError

    names = set(OFFICIAL_QUIRKS if "official" in quirks else ()) | {q for q in quirks if q != "official"}
    unknown = sorted(names - set(QUIRKS))
    if unknown:
        raise ConfigError(f"unknown loader quirk(s) {unknown}; known: official, {', '.join(QUIRKS)}")
    return tuple(q for q in QUIRKS if q in names)


def bad_line(line: int, path: str | Path, detail: str) -> EpisodeError:
    """A malformed recording line: the trajectory is skipped with this one-line reason."""
    return EpisodeError(f"{path}: line {line + 1}: {detail}", BAD_ACTIONS, f"line {line + 1} of {Path(path).name}: {detail}")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every line of a recording as a dict; a line that is not a JSON object names its (1-based) number.

    Blank lines at the end are ignored; a blank line before another line is an error, since every line stands
    for one video frame."""
    out: list[dict[str, Any]] = []
    blank: int | None = None
    with open(path, encoding="utf-8", errors="strict") as f:
        for i, text in enumerate(f):
            if not text.strip():
                blank = i if blank is None else blank
                continue
            if blank is not None:
                raise bad_line(blank, path, "empty line")
            try:
                record = json.loads(text)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise bad_line(i, path, f"not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise bad_line(i, path, f"a JSON {type(record).__name__}, not an object")
            out.append(record)
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} is {value!r}, not a number")
    return float(value)


def _buttons(mouse: Mapping[str, Any], key: str) -> list[int]:
    value = mouse.get(key) or []
    if not isinstance(value, list):
        raise ValueError(f"mouse.{key} is {value!r}, not a list")
    return list(value)


def env_action(record: Mapping[str, Any], camera_int: bool = False, mouse_buttons: list[int] | None = None) -> tuple[dict[str, Any], bool]:
    """`json_action_to_env_action`: one line -> (MineRL action, is_null). `mouse_buttons` replaces the line's
    `mouse.buttons` (the attack-stuck fix). Camera = [pitch, yaw] degrees as floats."""
    action: dict[str, Any] = dict.fromkeys(BUTTONS, 0)
    null = True
    keyboard = record.get("keyboard") or {}
    if not isinstance(keyboard, Mapping):
        raise ValueError(f"keyboard is {keyboard!r}, not an object")
    keys = keyboard.get("keys") or []
    if not isinstance(keys, list):
        raise ValueError(f"keyboard.keys is {keys!r}, not a list")
    for key in keys:
        if key in KEY_TO_BUTTON:
            action[KEY_TO_BUTTON[key]] = 1
            null = False
    mouse = record.get("mouse") or {}
    if not isinstance(mouse, Mapping):
        raise ValueError(f"mouse is {mouse!r}, not an object")
    dx, dy = _number(mouse.get("dx", 0.0), "mouse.dx"), _number(mouse.get("dy", 0.0), "mouse.dy")
    pitch, yaw = dy * CAMERA_SCALE, dx * CAMERA_SCALE
    if camera_int:
        pitch, yaw = float(math.trunc(pitch)), float(math.trunc(yaw))
    action["camera"] = [pitch, yaw]
    if dx != 0 or dy != 0:
        null = False
    for button in _buttons(mouse, "buttons") if mouse_buttons is None else mouse_buttons:
        if button in MOUSE_TO_BUTTON:
            action[MOUSE_TO_BUTTON[button]] = 1
            null = False
    return action, null


@dataclass(frozen=True)
class LoaderStep:
    """One recorded line after the loader's rules: its action, whether it is dropped, and the cursor state."""

    line: int
    action: dict[str, Any]
    null: bool
    gui_open: bool
    mouse_xy: tuple[float, float]


def loader_steps(records: Sequence[Mapping[str, Any]], quirks: Sequence[str] = (), path: str | Path = "<jsonl>") -> Iterator[LoaderStep]:
    """Every line in order with the attack-stuck fix and hotbar keys applied (null lines included, flagged)."""
    camera_int, hotbar_on_null = "camera_int" in quirks, "hotbar_on_null" in quirks
    attack_stuck = False
    last_hotbar = 0
    for i, record in enumerate(records):
        try:
            mouse = record.get("mouse") or {}
            if not isinstance(mouse, Mapping):
                raise ValueError(f"mouse is {mouse!r}, not an object")
            new = _buttons(mouse, "newButtons")
            if i == 0:
                attack_stuck = new == [0]
            elif attack_stuck and 0 in new:
                attack_stuck = False
            buttons = _buttons(mouse, "buttons")
            if attack_stuck:
                buttons = [b for b in buttons if b != 0]
            action, null = env_action(record, camera_int, buttons)
            hotbar = record.get("hotbar", last_hotbar)
            if isinstance(hotbar, bool) or not isinstance(hotbar, int) or not 0 <= hotbar <= 8:
                raise ValueError(f"hotbar is {hotbar!r}, not a slot 0..8")
            if hotbar != last_hotbar:
                action[f"hotbar.{hotbar + 1}"] = 1
                null = null and hotbar_on_null
            last_hotbar = hotbar
            gui = bool(record.get("isGuiOpen", False))
            xy = (_number(mouse.get("x", 0.0), "mouse.x"), _number(mouse.get("y", 0.0), "mouse.y")) if gui else (0.0, 0.0)
        except ValueError as e:
            raise bad_line(i, path, str(e)) from None
        yield LoaderStep(i, action, null, gui, xy)
