"""Frames in and out of the server: JPEG for the live stream, a bounded reader for uploaded goal clips, and the
episode mp4 made from the streamed frames.

An uploaded clip is untrusted: `read_clip` checks the container's frame count and size before decoding and keeps
only the last 16 frames, downscaled, so a long or huge video costs neither memory nor minutes. (`aimc play
--visual-goal` reads a local file whole with `aimc.eval.play.clip_goal_frames`; a server cannot.)
"""

from __future__ import annotations

import base64
import io
from collections import deque
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError
from aimc.core.video import Mp4Writer

CLIP_FRAMES = 16
"""Frames of a visual goal (MineCLIP / STEVE-1 window); the clip's last 16 are used."""
MAX_CLIP_FRAMES = 1800
"""Longest accepted goal clip (a minute at 30 fps): a goal is a short clip ending when the wanted thing happens."""
MAX_CLIP_SIDE = 4096
"""Widest accepted video side; frames are downscaled to `KEEP_SIDE` as they are decoded."""
KEEP_SIDE = 256
"""Longest side a kept goal frame is scaled to (the embedders resize to 64..256 px anyway)."""


class ClipError(AimcError):
    """An uploaded goal clip is unreadable, too short, too long or too large."""


def to_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """uint8 (H, W, 3) -> JPEG bytes (about 15 kB at 256 px): small enough to stream 10+ frames/s per viewer."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def from_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def read_clip(path: str | Path, name: str) -> np.ndarray:
    """The last 16 frames of an untrusted video file as uint8 (16, H, W, 3), long side <= `KEEP_SIDE`."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipError(f"{name} has no video stream; upload an mp4 clip")
            stream = container.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            if max(w, h) > MAX_CLIP_SIDE:
                raise ClipError(f"{name} is {w}x{h}; goal clips may be at most {MAX_CLIP_SIDE} px wide or high")
            if stream.frames > MAX_CLIP_FRAMES:
                raise ClipError(f"{name} has {stream.frames} frames; a goal clip is short (at most {MAX_CLIP_FRAMES})")
            scale = min(1.0, KEEP_SIDE / max(w, h, 1))
            size = {"width": max(2, round(w * scale)), "height": max(2, round(h * scale))}
            last: deque[np.ndarray] = deque(maxlen=CLIP_FRAMES)
            for n, frame in enumerate(container.decode(stream), 1):
                if n > MAX_CLIP_FRAMES:  # the header can under-report
                    raise ClipError(f"{name} has more than {MAX_CLIP_FRAMES} frames; a goal clip is short")
                last.append(frame.to_ndarray(format="rgb24", **size))
    except ClipError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:
        raise ClipError(f"{name} is not a readable video ({type(e).__name__}); upload an mp4 clip") from None
    if len(last) < CLIP_FRAMES:
        raise ClipError(f"{name} has {len(last)} frame(s); a visual goal needs at least {CLIP_FRAMES}")
    return np.stack(last)


def write_episode_mp4(jpegs: list[bytes], path: str | Path, fps: int = 10) -> Path:
    """The streamed frames (instruction and events already drawn on them) as a watchable mp4."""
    if not jpegs:
        raise AimcError("the episode has no frames yet; start it first")
    with Mp4Writer(path, fps=fps, lossless=False) as writer:
        for data in jpegs:
            writer.add(from_jpeg(data))
    return Path(path)
