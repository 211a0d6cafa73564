"""Small contractor trajectories in OpenAI's format (a `<name>.mp4` and one jsonl line per frame), built by the tests.

`story_lines()` is a 12-line recording with every rule of the loader in it: attack stuck at the start, a null
action, an idle pickup, a hotbar change alone, the inventory opened and crafted in with the cursor drawn, ESC, a
camera move of fractional degrees, an unmapped key, and a tree chopped. `EXPECTED` says what each kept line must
become, worked out by hand from the loader's source (data_loader.py, run_inverse_dynamics_model.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.video import Mp4Writer

H, W = 36, 64  # 640x360 scaled by 1/10: the recorder's 720-pixel mouse coordinates scale by 36/720


def line(keys: tuple[str, ...] = (), buttons: tuple[int, ...] = (), new: tuple[int, ...] = (), dx: float = 0.0,
         dy: float = 0.0, hotbar: int = 0, gui: bool = False, gui_inv: bool = False, x: float = 640.0, y: float = 360.0,
         inventory: dict[str, int] | None = None, stats: dict[str, int] | None = None, tick: int = 0) -> dict[str, Any]:
    """One jsonl record with every field a v7 recording has (README example layout)."""
    slots = [{"type": "air", "quantity": 0}]
    for item, n in (inventory or {}).items():  # each item split over two slots, as a real inventory may be
        slots += [{"type": item, "quantity": n - n // 2}, {"type": item, "quantity": n // 2}]
    return {
        "mouse": {"x": x, "y": y, "dx": dx, "dy": dy, "scaledX": x - 640, "scaledY": y - 360, "dwheel": 0.0,
                  "buttons": list(buttons), "newButtons": list(new)},
        "keyboard": {"keys": [f"key.keyboard.{k}" for k in keys], "newKeys": [], "chars": ""},
        "isGuiOpen": gui, "isGuiInventory": gui_inv, "hotbar": hotbar, "yaw": -112.35, "pitch": 8.1,
        "xpos": 841.36, "ypos": 63.0, "zpos": 24.95, "tick": tick, "milli": 1649575088006 + 50 * tick,
        "inventory": [s for s in slots if s["quantity"] or s["type"] == "air"], "serverTick": 6001 + tick,
        "serverTickDurationMs": 36.3466, "stats": {"minecraft.custom:minecraft.walk_one_cm": 100 * tick, **(stats or {})},
    }


def story_lines() -> list[dict[str, Any]]:
    dirt = {"dirt": 2}
    got_log = {**dirt, "oak_log": 1}
    planks = {**dirt, "oak_planks": 4}
    s1 = {"minecraft.pickup:minecraft.dirt": 2}
    s3 = {**s1, "minecraft.pickup:minecraft.oak_log": 1}
    s8 = {**s3, "minecraft.craft_item:minecraft.oak_planks": 4}
    s11 = {**s8, "minecraft.mine_block:minecraft.oak_log": 1}
    return [
        line(buttons=(0,), new=(0,), tick=0),                                          # 0 attack stuck -> null, dropped
        line(keys=("w",), buttons=(0,), inventory=dirt, stats=s1, tick=1),             # 1 forward (attack removed)
        line(buttons=(0,), new=(0,), dx=16, dy=-4, inventory=dirt, stats=s1, tick=2),  # 2 attack pressed anew: unstuck
        line(inventory=got_log, stats=s3, tick=3),                                     # 3 null, idle pickup of a log
        line(hotbar=3, inventory=got_log, stats=s3, tick=4),                           # 4 hotbar 0 -> 3 only
        line(keys=("e",), hotbar=3, inventory=got_log, stats=s3, tick=5),              # 5 press e
        line(dx=30, hotbar=3, gui=True, gui_inv=True, x=400, y=300, inventory=got_log, stats=s3, tick=6),  # 6 cursor
        line(buttons=(0,), new=(0,), hotbar=3, gui=True, gui_inv=True, x=640, y=200, inventory=got_log, stats=s3,
             tick=7),                                                                  # 7 click in the crafting grid
        line(hotbar=3, gui=True, gui_inv=True, x=640, y=200, inventory=planks, stats=s8, tick=8),  # 8 null: 4 planks
        line(keys=("escape",), hotbar=3, gui=True, gui_inv=True, x=1270, y=700, inventory=planks, stats=s8,
             tick=9),                                                                  # 9 ESC, cursor at the corner
        line(keys=("space",), dx=-7, dy=7, hotbar=3, inventory=planks, stats=s8, tick=10),  # 10 jump + camera
        line(keys=("left.control", "x"), hotbar=3, inventory=planks, stats=s11, tick=11),   # 11 sprint; log mined
    ]


def _button(**on: int) -> dict[str, Any]:
    names = ("ESC", "back", "drop", "forward", *(f"hotbar.{i}" for i in range(1, 10)), "inventory", "jump", "left",
             "right", "sneak", "sprint", "swapHands", "attack", "use", "pickItem")
    return {n: on.get(n.replace(".", "_"), 0) for n in names}


# kept line -> (buttons pressed, camera [pitch, yaw] exact, camera with camera_int, events, gui_open)
EXPECTED: dict[int, tuple[dict[str, Any], list[float], list[float], list[str], bool]] = {
    1: (_button(forward=1), [0.0, 0.0], [0.0, 0.0], [], False),
    2: (_button(attack=1), [-0.6, 2.4], [0.0, 2.0], ["obtain_log"], False),
    4: (_button(hotbar_4=1), [0.0, 0.0], [0.0, 0.0], [], False),
    5: (_button(inventory=1), [0.0, 0.0], [0.0, 0.0], ["open_inventory"], False),
    6: (_button(), [0.0, 4.5], [0.0, 4.0], [], True),
    7: (_button(attack=1), [0.0, 0.0], [0.0, 0.0], ["obtain_planks"] * 4 + ["craft_planks"] * 4, True),
    9: (_button(ESC=1), [0.0, 0.0], [0.0, 0.0], [], True),
    10: (_button(jump=1), [1.05, -1.05], [1.0, -1.0], ["mine_log"], False),
    11: (_button(sprint=1), [0.0, 0.0], [0.0, 0.0], [], False),
}
EVENTS_BEFORE_FIRST_STEP = 2  # the two dirt picked up during the dropped first line


def frame_pixels(j: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame j of a test video: a gradient that differs per frame and per channel, uint8 (h, w, 3)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(10 + 15 * j + x) % 256, (200 - 10 * j + y) % 256, (x * y + 7 * j) % 256], -1).astype(np.uint8)


def write_trajectory(root: Path, key: str, lines: list[dict[str, Any]] | None = None, n_frames: int | None = None,
                     lossless: bool = True) -> tuple[Path, Path]:
    """`<root>/<key>.mp4` (n_frames frames, default one per line) + `<root>/<key>.jsonl`; returns both paths."""
    lines = story_lines() if lines is None else lines
    video, jsonl = root / f"{key}.mp4", root / f"{key}.jsonl"
    video.parent.mkdir(parents=True, exist_ok=True)
    with Mp4Writer(video, fps=20, lossless=lossless) as writer:
        for j in range(len(lines) if n_frames is None else n_frames):
            writer.add(frame_pixels(j))
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return video, jsonl
