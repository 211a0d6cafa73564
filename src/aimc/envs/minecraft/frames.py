"""Frame operations shared by the contractor loader and a live game: the mouse cursor drawn over open GUIs, and
the bilinear resize to the policy's resolution.

The contractor videos contain no cursor, while the game the agent plays in shows one whenever a GUI (inventory,
crafting table) is open, so OpenAI's loader (`data_loader.py`) composites a 16x16 cursor image at the recorded
mouse position, scaled from the recorder's 720-pixel-high screen to the frame. The cursor image here is drawn by
code (a white arrow with a black outline); `load_cursor` reads any RGBA image the way the loader reads its
`mouse_cursor_white_16x16.png` (first 16x16 pixels, alpha / 255), so the official file gives the official pixels.

Resizing follows VPT's `resize_image` (`cv2.resize(INTER_LINEAR)`, aspect squashed, no crop), reproduced bit
for bit without OpenCV (`resize`), so converted data do not depend on whether OpenCV is installed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError

CURSOR_SIZE = 16
RECORDER_HEIGHT = 720
"""Height of the recorder's screen: the recorded mouse x/y are in its pixels (the loader's MINEREC_ORIGINAL_HEIGHT_PX)."""

# 'X' outline, '#' fill, '.' transparent; the hotspot is the top-left pixel, where the loader places the image.
_ARROW = (
    "X...............",
    "XX..............",
    "X#X.............",
    "X##X............",
    "X###X...........",
    "X####X..........",
    "X#####X.........",
    "X######X........",
    "X#######X.......",
    "X########X......",
    "X#####XXXXX.....",
    "X##X##X.........",
    "X#X.X##X........",
    "XX..X##X........",
    "X....X##X.......",
    ".....XXXX.......",
)


@dataclass(frozen=True)
class Cursor:
    """A cursor image: `rgb` uint8 (h, w, 3) and `alpha` float64 (h, w, 1) in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray


def arrow_cursor() -> Cursor:
    """The built-in 16x16 white arrow with a black outline (opaque where drawn)."""
    art = np.array([list(row) for row in _ARROW])
    rgb = np.where((art == "#")[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    return Cursor(rgb, (art != ".").astype(np.float64)[..., None])


def load_cursor(path: str | Path) -> Cursor:
    """An RGBA image file as a cursor, cropped to its first 16x16 pixels as OpenAI's loader does."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))[:CURSOR_SIZE, :CURSOR_SIZE]
    except (OSError, UnidentifiedImageError) as e:
        raise AimcError(f"cursor image {path} is unreadable ({e})") from None
    return Cursor(np.ascontiguousarray(rgba[..., :3]), rgba[..., 3:] / 255.0)


def cursor_position(mouse_x: float, mouse_y: float, frame_height: int) -> tuple[int, int]:
    """Recorded mouse position -> (x, y) pixel of the frame, truncated as the loader's `int()` does."""
    scale = frame_height / RECORDER_HEIGHT
    return int(mouse_x * scale), int(mouse_y * scale)


def draw_cursor(frame: np.ndarray, cursor: Cursor, x: int, y: int, truncate: bool = False) -> None:
    """Alpha-composite `cursor` onto `frame` (uint8 (H, W, 3), in place) with its top-left pixel at (x, y).

    The part outside the frame is cut off. Blended values are rounded to the nearest level; `truncate=True`
    casts them down instead, as the loader's `.astype(np.uint8)` does (darker by up to one level where the
    alpha is partial)."""
    ch, cw = cursor.rgb.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + ch, frame.shape[0]), min(x + cw, frame.shape[1])
    if bottom <= top or right <= left:
        return
    src = (slice(top - y, bottom - y), slice(left - x, right - x))
    alpha = cursor.alpha[src]
    region = frame[top:bottom, left:right]
    blend = region * (1.0 - alpha) + cursor.rgb[src] * alpha
    frame[top:bottom, left:right] = blend if truncate else np.floor(blend + 0.5)


@functools.lru_cache(maxsize=32)
def _taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps along one axis: source index pairs and their 11-bit weights (sum 2048).

    Positions are computed in float32 as OpenCV does; columns outside the image clamp the position (weight
    2048 on the edge pixel), rows outside it keep their weights and clamp the row index instead (OpenCV's
    vertical pass), which matters for its rounding."""
    pos = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0.astype(np.float32)
    if clamp_weights:
        frac[i0 < 0] = 0.0
        i0 = np.maximum(i0, 0)
        frac[i0 >= src - 1] = 0.0
        i0 = np.minimum(i0, src - 1)
    w1 = np.rint(frac * np.float32(2048)).astype(np.int64)
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(2048)).astype(np.int64)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (..., h, w, C) -> (..., H, W, C), bit-exact with `cv2.resize(INTER_LINEAR)` (VPT's `resize_image`).

    OpenCV's fixed-point scheme written out: 11-bit weights, a horizontal pass into integers, and its vectorised
    vertical pass `((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2`. Checked equal to
    opencv-python-headless 4.12 on x86-64 for down- and upscaling (tests/envs/test_minecraft_frames.py compares
    whenever OpenCV is installed), so converted data match VPT's preprocessing without OpenCV."""
    h, w = int(size[0]), int(size[1])
    if frames.shape[-3:-1] == (h, w):
        return frames
    y0, y1, b0, b1 = _taps(frames.shape[-3], h, clamp_weights=False)
    x0, x1, a0, a1 = _taps(frames.shape[-2], w, clamp_weights=True)
    a0, a1 = a0[:, None], a1[:, None]  # (W, 1) against (..., H, W, C)

    def horizontal(rows: np.ndarray) -> np.ndarray:
        rows = rows.astype(np.int64)
        return (rows[..., x0, :] * a0 + rows[..., x1, :] * a1) >> 4  # (..., H, W, C), fits int16 as in OpenCV

    s0, s1 = horizontal(frames[..., y0, :, :]), horizontal(frames[..., y1, :, :])
    b0, b1 = b0[:, None, None], b1[:, None, None]
    out = (((b0 * s0) >> 16) + ((b1 * s1) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)
