"""mp4 reading/writing (PyAV) and frame annotation, shared by the episode store, `aimc video` and `aimc play`.

Two encodings: lossless RGB H.264 (`libx264rgb`, crf 0) for training data, so decoded frames equal the
observations bit-for-bit; and ordinary yuv420p H.264 for videos people watch in any player.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from aimc.core.errors import AimcError
from aimc.core.io import TMP_PREFIX, write_error, writes_to

if TYPE_CHECKING:
    import av


class VideoError(AimcError):
    """An mp4 file is missing, truncated or undecodable."""


class Mp4Writer:
    """Append RGB frames, then `close()` atomically renames the finished file into place.

    A failed write (full disk: the encoder's own file I/O raises an OSError) removes the temp file and raises
    one `WriteError` naming `path`.
    """

    def __init__(self, path: str | Path, fps: int = 20, lossless: bool = True, crf: int = 18) -> None:
        import av

        self.path = Path(path)
        with writes_to(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + self.path.stem + ".", suffix=".mp4", dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            try:
                os.chmod(tmp, 0o644)
                self._container = av.open(str(self._tmp), "w", format="mp4")
            except BaseException:
                self._tmp.unlink(missing_ok=True)
                raise
        self._lossless = lossless
        self._fps = fps
        self._crf = crf
        self._stream = None
        self._frame = None
        self.n_frames = 0

    def _open_stream(self, h: int, w: int) -> None:
        import av

        if self._lossless:
            # qp 0 = lossless; zerolatency: no lookahead, so each frame is consumed when encoded
            options = {"qp": "0", "preset": "ultrafast", "tune": "zerolatency"}
            stream = self._container.add_stream("libx264rgb", rate=self._fps, options=options)
            stream.pix_fmt = "rgb24"
        else:
            if h % 2 or w % 2:
                raise VideoError(f"watchable mp4 needs even frame sizes, got {w}x{h}")
            stream = self._container.add_stream("libx264", rate=self._fps, options={"crf": str(self._crf), "preset": "veryfast"})
            stream.pix_fmt = "yuv420p"
        stream.width, stream.height = w, h
        stream.codec_context.thread_count = 1  # collection runs one encoder per worker process
        self._stream = stream
        # Reusing one frame buffer saves ~50 us/frame of allocation; x264 copies the picture on encode.
        frame = av.VideoFrame(w, h, "rgb24")
        self._frame = frame if frame.planes[0].line_size == w * 3 else None

    def add(self, frame: np.ndarray) -> None:
        import av

        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if self._stream is None:
            self._open_stream(frame.shape[0], frame.shape[1])
        elif (frame.shape[0], frame.shape[1]) != (self._stream.height, self._stream.width):
            raise VideoError(f"frame size changed from {self._stream.height}x{self._stream.width} to {frame.shape[:2]}")
        if self._frame is not None:
            self._frame.planes[0].update(np.ascontiguousarray(frame))
            self._frame.pts = self.n_frames
            vf = self._frame
        else:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self.n_frames
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except OSError as e:
            raise write_error(e, self.path) from None
        self.n_frames += 1

    def close(self) -> Path:
        if self._stream is None:
            self.abort()
            raise VideoError(f"no frames were written to {self.path}")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise write_error(e, self.path) from None
        return self.path

    def abort(self) -> None:
        """Drop the temp file; never raises (it runs while another error is on its way out)."""
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.close()
        else:
            self.abort()


def write_mp4(path: str | Path, frames: np.ndarray | list[np.ndarray], fps: int = 20, lossless: bool = False) -> Path:
    with Mp4Writer(path, fps=fps, lossless=lossless) as w:
        for f in frames:
            w.add(f)
    return Path(path)


def count_frames(path: str | Path) -> int:
    """Frame count from the container header (no decoding); raises VideoError if unreadable."""
    import av

    try:
        with av.open(str(path)) as c:
            n = c.streams.video[0].frames
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path} is unreadable ({type(e).__name__}: {e})") from None
    return int(n)


def frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as uint8 (H, W, 3) RGB.

    The lossless store's frames decode to planar GBR (`gbrp`), whose three planes are copied into place here.
    Asking PyAV for ``rgb24`` instead runs libswscale on every frame: about twice the CPU time of the decode
    and copy, and on a busy machine up to 7x the wall time (its worker threads wait for a free core), which
    made decoding the slowest part of embedding a store (docs/training.md, "Speed"). Other pixel formats
    (watchable yuv420p videos) still go through libswscale.
    """
    if frame.format.name != "gbrp":
        return frame.to_ndarray(format="rgb24")
    h, w = frame.height, frame.width
    out = np.empty((h, w, 3), np.uint8)
    for channel, plane in zip((1, 2, 0), frame.planes, strict=True):  # the planes are G, B, R
        out[:, :, channel] = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
    return out


def read_mp4(path: str | Path, start: int = 0, end: int | None = None) -> np.ndarray:
    """Decode frames [start, end) as uint8 (T, H, W, 3)."""
    import av

    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if end is not None and i >= end:
                    break
                if i >= start:
                    out.append(frame_rgb(frame))
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path} is unreadable ({type(e).__name__}: {e})") from None
    if not out:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(out)


def annotate(frame: np.ndarray, lines: list[str], scale: int = 1) -> np.ndarray:
    """Write text lines on a frame (top-left, with a dark backing box) so a viewer sees what happened."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    size = max(10, frame.shape[0] // 20) * scale
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        font = ImageFont.load_default()
    y = 2
    for line in lines:
        if not line:
            continue
        box = draw.textbbox((3, y), line, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
        draw.text((3, y), line, fill=(255, 255, 80), font=font)
        y = box[3] + 3
    return np.asarray(img)
