"""Episode store (format version 1): one directory per episode, written atomically, validated on read.

Layout follows STEVE-1's episode directories (frames.mp4 + actions + len.txt + metadata.json + per-step
goal embeddings) so its users recognise it; see docs/architecture.md for every file.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from aimc.core import keys
from aimc.core.errors import AimcError, EpisodeError
from aimc.core.io import (
    TMP_PREFIX,
    atomic_dir,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    write_error,
    writes_to,
)
from aimc.core.video import Mp4Writer, VideoError, count_frames, read_mp4

FORMAT_VERSION = 1
REQUIRED_FILES = (keys.FRAMES_FILE, keys.ACTIONS_FILE, keys.EVENTS_FILE, keys.INFOS_FILE, keys.METADATA_FILE, keys.LEN_FILE)
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_EMBED_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")

# Why an episode is unusable, grouped (`EpisodeError.kind`) so that runs skipping damaged episodes count them by reason.
MISSING_FILES = "missing files"
BAD_METADATA = "bad metadata"
LENGTH_MISMATCH = "length mismatch"
BAD_ACTIONS = "bad actions"
BAD_STEP_LOG = "bad events/infos"
BAD_VIDEO = "unreadable video"
MISSING_EMBEDS = "missing embeddings"
BAD_EMBEDS = "bad embeddings"
TOO_SHORT = "too short"


def _bad(path: Path, kind: str, detail: str) -> EpisodeError:
    return EpisodeError(f"episode {path}: {detail}", kind, detail)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


# events have their own file; the semantic map is a whole-world debug view, too big to keep per step
_NOT_STORED = frozenset({keys.EVENTS, "semantic"})


def _json_default(x: Any) -> Any:
    """json.dumps fallback for numpy values (the common case, plain Python values, never gets here)."""
    if isinstance(x, np.generic | np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot store {type(x).__name__} in infos.jsonl")


def is_episode_dir(path: Path) -> bool:
    """Cheap test used by scanners: a visible directory holding metadata.json."""
    return path.is_dir() and not path.name.startswith(".") and (path / keys.METADATA_FILE).is_file()


class EpisodeWriter:
    """Collects one episode's steps and commits the directory atomically on `close()` / context exit.

    Frame t must be the observation *before* action t; events/infos t are what action t caused.
    A failed write (full disk, read-only) raises one `WriteError` naming the episode; `abort()` (also run by a
    failing `close()` and by the context exit) removes the hidden temp directory even when closing a file
    fails again, so nothing half-written stays behind.
    """

    def __init__(self, root: str | Path, name: str, metadata: dict[str, Any], fps: int = 20, overwrite: bool = False) -> None:
        if not _NAME_RE.match(name):
            raise AimcError(f"episode name {name!r} must use only letters, digits, '_' and '-' (no dots)")
        self.root = Path(root)
        self.name = name
        self.metadata = dict(metadata)
        self._actions: list[int] = []
        self._closed = False
        self._ctx = atomic_dir(self.root / name, overwrite=overwrite)
        self._tmp = self._ctx.__enter__()
        self._files: list[Any] = []
        try:
            with writes_to(self.path):
                self._video = Mp4Writer(self._tmp / keys.FRAMES_FILE, fps=fps, lossless=True)
                self._events = open(self._tmp / keys.EVENTS_FILE, "w")  # noqa: SIM115 - closed in close()/abort()
                self._files.append(self._events)
                self._infos = open(self._tmp / keys.INFOS_FILE, "w")  # noqa: SIM115
                self._files.append(self._infos)
        except BaseException:
            self.abort()
            raise

    @property
    def path(self) -> Path:
        """Where the episode appears once committed."""
        return self.root / self.name

    def add(self, frame: np.ndarray, action: int, events: list[str], info: dict[str, Any]) -> None:
        try:
            self._video.add(frame)
            self._actions.append(int(action))
            self._events.write(json.dumps(list(events)) + "\n")
            info = {k: v for k, v in info.items() if k not in _NOT_STORED}
            self._infos.write(json.dumps(info, separators=(",", ":"), default=_json_default) + "\n")
        except OSError as e:
            raise write_error(e, self.path) from None

    def __len__(self) -> int:
        return len(self._actions)

    def close(self, **extra_metadata: Any) -> Path:
        """Finish the video, write actions/metadata/len.txt, and rename the directory into place."""
        if self._closed:
            raise AimcError(f"episode {self.name} is already closed")
        n = len(self._actions)
        if n == 0:
            self.abort()
            raise EpisodeError(f"episode {self.name}: no steps were recorded")
        try:
            self._events.close()
            self._infos.close()
            self._video.close()
            atomic_save_npy(self._tmp / keys.ACTIONS_FILE, np.asarray(self._actions, np.int64))
            meta = {**self.metadata, **extra_metadata, "format_version": FORMAT_VERSION, "length": n, "name": self.name}
            atomic_write_json(self._tmp / keys.METADATA_FILE, _jsonable(meta))
            atomic_write_text(self._tmp / keys.LEN_FILE, f"{n}\n")
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise write_error(e, self.path) from None
            raise
        self._closed = True
        self._ctx.__exit__(None, None, None)  # the rename; on failure atomic_dir removes the temp dir itself
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; nothing becomes visible. Never raises: every step is tried even
        when an earlier one fails (closing a file on a full disk fails again while flushing its buffer)."""
        if self._closed:
            return
        self._closed = True
        for f in self._files:
            with contextlib.suppress(Exception):
                f.close()
        if hasattr(self, "_video"):
            with contextlib.suppress(Exception):
                self._video.abort()
        with contextlib.suppress(Exception):
            self._ctx.__exit__(EpisodeError, EpisodeError(f"episode {self.name} aborted"), None)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._closed:
            return
        if et is None:
            self.close()
        else:
            self.abort()


class Episode:
    """Read access to one episode directory; structure is validated on open, frames when decoded."""

    def __init__(self, path: str | Path, check_video: bool = True) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_dir():
            raise _bad(self.path, MISSING_FILES, "not a directory")
        missing = [f for f in REQUIRED_FILES if not (self.path / f).is_file()]
        if missing:
            raise _bad(self.path, MISSING_FILES, f"missing {', '.join(missing)}")
        try:
            self.metadata: dict[str, Any] = json.loads((self.path / keys.METADATA_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _bad(self.path, BAD_METADATA, f"metadata.json is not valid JSON ({e})") from None
        if not isinstance(self.metadata, dict):
            raise _bad(self.path, BAD_METADATA, f"metadata.json holds a {type(self.metadata).__name__}, not an object")
        version = self.metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise _bad(self.path, BAD_METADATA, f"format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        try:
            self.length = int((self.path / keys.LEN_FILE).read_text().strip())
        except ValueError:
            raise _bad(self.path, BAD_METADATA, "len.txt does not hold an integer") from None
        if self.metadata.get("length") != self.length:
            raise _bad(self.path, LENGTH_MISMATCH, f"len.txt says {self.length} but metadata says {self.metadata.get('length')}")
        n_actions = len(self.actions)
        if n_actions != self.length:
            raise _bad(self.path, BAD_ACTIONS, f"{n_actions} actions but length is {self.length}")
        for fname in (keys.EVENTS_FILE, keys.INFOS_FILE):
            with open(self.path / fname, "rb") as f:
                n_lines = sum(1 for _ in f)
            if n_lines != self.length:
                raise _bad(self.path, LENGTH_MISMATCH, f"{fname} has {n_lines} lines but length is {self.length}")
        if check_video:
            try:
                n_frames = count_frames(self.path / keys.FRAMES_FILE)
            except VideoError:
                raise _bad(self.path, BAD_VIDEO, "frames.mp4 is unreadable (truncated or corrupt)") from None
            if n_frames != self.length:
                raise _bad(self.path, BAD_VIDEO, f"frames.mp4 has {n_frames} frames but length is {self.length}")

    def __repr__(self) -> str:
        return f"Episode({str(self.path)!r}, length={self.length})"

    @cached_property
    def actions(self) -> np.ndarray:
        try:
            a = np.load(self.path / keys.ACTIONS_FILE, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise _bad(self.path, BAD_ACTIONS, f"actions.npy is unreadable ({e})") from None
        if a.ndim != 1:
            raise _bad(self.path, BAD_ACTIONS, f"actions.npy must be 1-D, got shape {a.shape}")
        return a

    def _read_jsonl(self, fname: str) -> list[Any]:
        out: list[Any] = []
        try:
            with open(self.path / fname, encoding="utf-8") as f:
                for line in f:
                    out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad(self.path, BAD_STEP_LOG, f"{fname} line {len(out) + 1} is not valid JSON") from None
        return out

    @cached_property
    def events(self) -> list[list[str]]:
        return self._read_jsonl(keys.EVENTS_FILE)

    @cached_property
    def infos(self) -> list[dict[str, Any]]:
        return self._read_jsonl(keys.INFOS_FILE)

    def info_values(self, key: str) -> list[Any]:
        """``infos[t].get(key)`` for every step, without keeping the step log: a training dataset reads one
        field (the DART label, the recorded goal) of every episode, and the parsed dicts of a 1000-step
        episode take megabytes."""
        if "infos" in self.__dict__:  # already parsed
            return [info.get(key) for info in self.infos]
        return [row.get(key) for row in self._read_jsonl(keys.INFOS_FILE)]

    def frames(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Decoded frames [start, end) as uint8 (T, H, W, 3); a short decode raises EpisodeError."""
        end = self.length if end is None else min(end, self.length)
        if not 0 <= start <= end:
            raise _bad(self.path, BAD_VIDEO, f"bad frame range [{start}, {end})")
        try:
            out = read_mp4(self.path / keys.FRAMES_FILE, start, end)
        except VideoError:
            raise _bad(self.path, BAD_VIDEO, "frames.mp4 is unreadable (truncated or corrupt)") from None
        if len(out) != end - start:
            raise _bad(self.path, BAD_VIDEO, f"frames.mp4 decoded {len(out)} frames in [{start}, {end}), expected {end - start}")
        return out

    # ---------------------------------------------------------------- goal embeddings
    def _embed_paths(self, name: str) -> tuple[Path, Path]:
        if not _EMBED_NAME_RE.match(name):
            raise AimcError(f"embedding name {name!r} must use only letters, digits, '_' and '-'")
        return self.path / f"{keys.EMBEDS_PREFIX}{name}.npy", self.path / f"{keys.EMBEDS_PREFIX}{name}_mask.npy"

    def has_embeds(self, name: str) -> bool:
        emb, mask = self._embed_paths(name)
        return emb.is_file() and mask.is_file()

    def read_embeds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(float16 (N, D), bool (N,)): row t embeds frames t-15..t; mask says which rows are valid."""
        emb_p, mask_p = self._embed_paths(name)
        if not (emb_p.is_file() and mask_p.is_file()):
            raise _bad(self.path, MISSING_EMBEDS, f"no embeddings named {name!r} (run `aimc embed --embedder {name}`)")
        try:
            emb = np.load(emb_p, allow_pickle=False)
            mask = np.load(mask_p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise _bad(self.path, BAD_EMBEDS, f"embeddings {name!r} unreadable ({e})") from None
        if emb.ndim != 2 or len(emb) != self.length or mask.shape != (self.length,):
            raise _bad(self.path, BAD_EMBEDS, f"embeddings {name!r} have shape {emb.shape}/{mask.shape}, expected ({self.length}, D)/({self.length},)")
        return emb, mask.astype(bool)

    def write_embeds(self, name: str, embeds: np.ndarray, mask: np.ndarray) -> None:
        """Atomically store per-step goal embeddings (cast to float16) and their validity mask."""
        embeds = np.asarray(embeds)
        mask = np.asarray(mask, bool)
        if embeds.ndim != 2 or len(embeds) != self.length or mask.shape != (self.length,):
            raise _bad(self.path, BAD_EMBEDS, f"embeddings must be ({self.length}, D) with mask ({self.length},), got {embeds.shape}/{mask.shape}")
        emb_p, mask_p = self._embed_paths(name)
        atomic_save_npy(mask_p, mask)
        try:
            atomic_save_npy(emb_p, embeds.astype(np.float16))
        except BaseException:  # a mask without its embeddings would be a half-written pair: drop it
            with contextlib.suppress(OSError):
                mask_p.unlink()
            raise

    def remove_stale_embeds_tmp(self, name: str) -> int:
        """Delete temp files a killed `write_embeds(name)` left in this episode; returns how many.

        Only this embedding's own temp names are touched, never finished files or other writers' temps."""
        prefixes = tuple(TMP_PREFIX + p.name + "." for p in self._embed_paths(name))
        n = 0
        for p in self.path.iterdir():
            if p.name.startswith(prefixes) and p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                n += 1
        return n


def list_episodes(root: str | Path) -> list[Path]:
    """Sorted episode directories under `root` (one level), hidden temp dirs of killed writers excluded."""
    root = Path(root)
    if not root.is_dir():
        raise AimcError(f"dataset directory {root} does not exist")
    return sorted(p for p in root.iterdir() if is_episode_dir(p) and not p.name.startswith(TMP_PREFIX))
