"""Contractor recordings -> episode store: one episode per trajectory, parallel, resumable, bad input skipped.

A trajectory is `<name>.mp4` + `<name>.jsonl` anywhere under the source directory (OpenAI's index layout
`<version>/<alias>-<session>-<date>-<time>` included); its episode is named after that relative path
(`8.0/cheeky-...` -> `8_0-cheeky-...`). Per kept line t (null lines dropped, see `loader`):

* frame t: video frame of the line, cursor drawn when a GUI is open, resized to `size` (VPT's resize);
* action t: `action_code(env_action)`, an int chosen by the caller: `aimc convert contractor` passes the VPT
  joint index (`buttons * 121 + camera`, `aimc.envs.actions.env_to_joint_code`, the Minecraft world's action);
* events t (`aimc.envs.minecraft` names): the state changes recorded after line t up to the next kept line (what
  action t and the dropped idle lines after it led to), so nothing recorded is lost with a null line; changes
  before the first kept line belong to no action and are only counted (`events_before_first_step`);
* infos t: `line`, the MineRL `action` (exact camera degrees), `gui_open`, and the state after the action
  (`inventory` totals, `hotbar`, `player_pos`) plus the item-level changes (`gained`, `stat_deltas`).

A damaged trajectory (missing or truncated video, malformed line, too few kept steps) is skipped with one line
and counted by reason; episodes are written through `EpisodeWriter`, so a failure or a kill leaves nothing
half-written, and a rerun converts only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimc import __version__
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, ConfigError, EpisodeError
from aimc.core.io import TMP_PREFIX, atomic_write_json, check_writable_dir, remove_stale_tmp
from aimc.data.contractor.loader import CAMERA_SCALE, bad_line, check_quirks, loader_steps, read_jsonl
from aimc.data.index import Skipped, to_stderr
from aimc.data.store import BAD_ACTIONS, BAD_VIDEO, MISSING_FILES, TOO_SHORT, EpisodeWriter, is_episode_dir
from aimc.envs.minecraft.events import GameState, StateChange, events_of, state_change
from aimc.envs.minecraft.frames import (
    arrow_cursor,
    cursor_position,
    draw_cursor,
    load_cursor,
    resize,
)

CONFIG_FILE = "contractor_config.json"
WORLD = "minecraft"
ActionCode = Callable[[Mapping[str, Any]], int]


@dataclass
class ContractorConfig:
    """How recordings become episodes; saved as contractor_config.json in the store and checked on resume."""

    source: str = ""
    """Directory holding the recordings (searched recursively for <name>.mp4 + <name>.jsonl)."""
    out: str = "data/contractor"
    """Output episode-store directory."""
    size: tuple[int, int] | None = (128, 128)
    """(H, W) of the stored frames (VPT's and STEVE-1's policy input); None keeps the video's resolution."""
    quirks: list[str] = field(default_factory=list)
    """OpenAI loader quirks to reproduce (`loader.QUIRKS`, or `official` for all); none by default."""
    min_length: int = 1
    """Trajectories with fewer kept steps are skipped (STEVE-1's conversion skips those under 1000)."""
    missing_frames: int = 0
    """How many jsonl lines may lack a video frame at the end (dropped, as the loader does); a video shorter
    than that is a truncated video and its trajectory is skipped."""
    cursor: str | None = None
    """RGBA image drawn as the cursor over open GUIs (e.g. VPT's cursors/mouse_cursor_white_16x16.png);
    None = the built-in arrow."""
    workers: int = 1
    """Parallel worker processes (one trajectory each at a time)."""
    fps: int = 20
    """Frame rate written into frames.mp4 (the recordings are 20 Hz)."""
    seed: int = 0
    """Recorded with every episode; the conversion itself draws no random numbers."""

    def __post_init__(self) -> None:
        for name, low in (("min_length", 1), ("missing_frames", 0), ("workers", 1), ("fps", 1), ("seed", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(self, name)}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"--size must be two positive sides (H, W), got {self.size!r}")
        self.quirks = list(check_quirks(self.quirks))

    def identity(self) -> dict[str, Any]:
        """The settings that decide episode contents (`workers` and `seed` may change on resume)."""
        import hashlib

        digest = hashlib.sha256(Path(self.cursor).read_bytes()).hexdigest()[:16] if self.cursor else None
        d = to_dict(self)
        return {**{k: d[k] for k in ("size", "quirks", "min_length", "missing_frames", "fps")}, "cursor": digest}


class SkippedTrajectories(Skipped):
    """`Skipped` (the project's one policy for damaged data) worded for source recordings: one
    `skipped trajectory <path>: <reason>` line each, counted by kind; `strict` stops at the first one."""

    def add(self, episode: str | Path, reason: str, kind: str) -> None:
        key = str(episode)
        if self.strict:
            raise EpisodeError(f"trajectory {key}: {reason} (--strict stops at a damaged trajectory; without it "
                               "such trajectories are skipped)", kind, reason)
        if key in self:
            return
        self[key] = reason
        self.kinds[key] = kind
        if self.echo is not None:
            self.echo(f"skipped trajectory {key}: {reason}")


@dataclass(frozen=True)
class Trajectory:
    """One recording: `key` = its path under the source without suffix, `name` = its episode name."""

    key: str
    name: str
    jsonl: Path | None
    video: Path | None


def episode_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", key.replace("/", "-"))


def find_trajectories(source: str | Path) -> list[Trajectory]:
    """Every <name>.mp4 / <name>.jsonl pair under `source` (a lone half is kept, to be reported as missing)."""
    root = Path(source)
    if not root.is_dir():
        raise AimcError(f"contractor data directory {root} does not exist")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.suffix in (".mp4", ".jsonl") and p.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.setdefault(rel.with_suffix("").as_posix(), {})[p.suffix] = p
    if not found:
        raise AimcError(f"no recordings under {root}: expected <name>.mp4 + <name>.jsonl pairs")
    out, names = [], {}
    for key, files in sorted(found.items()):
        name = episode_name(key)
        if name in names:
            raise AimcError(f"recordings {names[name]} and {key} would both become episode {name}; rename one")
        names[name] = key
        out.append(Trajectory(key, name, files.get(".jsonl"), files.get(".mp4")))
    return out


# ------------------------------------------------------------------------------------------ one trajectory
@dataclass
class _Step:
    line: int
    code: int
    events: list[str]
    info: dict[str, Any]
    gui_open: bool
    mouse_xy: tuple[float, float]


def _state(record: Mapping[str, Any], line: int, path: Path) -> GameState:
    try:
        return GameState.from_report(record.get("inventory"), record.get("stats"), record.get("isGuiInventory", False))
    except (ValueError, TypeError, AttributeError) as e:
        raise bad_line(line, path, f"inventory/stats unreadable ({e})") from None


def _after_info(record: Mapping[str, Any], state: GameState) -> dict[str, Any]:
    info: dict[str, Any] = {"inventory": dict(sorted(state.inventory.items()))}
    if "hotbar" in record:
        info["hotbar"] = record["hotbar"]
    if all(k in record for k in ("xpos", "ypos", "zpos")):
        info["player_pos"] = [record["xpos"], record["ypos"], record["zpos"]]
    return info


def plan_steps(records: list[dict[str, Any]], usable: int, cfg: ContractorConfig, action_code: ActionCode,
               path: Path) -> tuple[list[_Step], dict[str, int]]:
    """The kept steps of a recording (lines < `usable` that are not null) with their events and infos, from the
    jsonl alone; plus counts for the episode metadata."""
    loader = list(loader_steps(records, cfg.quirks, path))
    kept = [s for s in loader if not s.null and s.line < usable]
    states = [_state(r, i, path) for i, r in enumerate(records)]
    changes = [StateChange() for _ in kept]
    before_first = 0
    k = -1  # index in `kept` of the last kept line before line j
    for j in range(1, len(records)):
        while k + 1 < len(kept) and kept[k + 1].line < j:
            k += 1
        change = state_change(states[j - 1], states[j])
        if k < 0:
            before_first += len(events_of(change))
        else:
            changes[k].add(change)
    steps = []
    for t, s in enumerate(kept):
        after = kept[t + 1].line if t + 1 < len(kept) else len(records) - 1
        info = {"line": s.line, "action": s.action, "gui_open": s.gui_open,
                **_after_info(records[after], states[after]), **changes[t].to_info()}
        steps.append(_Step(s.line, int(action_code(s.action)), events_of(changes[t]), info, s.gui_open, s.mouse_xy))
    counts = {"null_lines_dropped": sum(s.null for s in loader if s.line < usable), "events_before_first_step": before_first}
    return steps, counts


def _video_error(path: Path, detail: str) -> EpisodeError:
    return EpisodeError(f"{path}: {detail}", BAD_VIDEO, f"{path.name}: {detail}")


def _frame_count(path: Path) -> int:
    """Frames in the container: the header's count, else the number of video packets (no decoding)."""
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            return int(stream.frames) or sum(1 for p in c.demux(stream) if p.size)
    except (av.error.FFmpegError, OSError, IndexError) as e:
        raise _video_error(path, f"unreadable ({type(e).__name__}: {e})") from None


def _decoded(path: Path) -> Iterator[np.ndarray]:
    """RGB frames in order; a decoder failure is a damaged video (errors of the consumer pass through)."""
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.error.FFmpegError, OSError, IndexError) as e:
        raise _video_error(path, f"unreadable ({type(e).__name__}: {e})") from None
    with container:
        stream.codec_context.thread_count = 1  # workers run side by side
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError, ValueError) as e:
                raise _video_error(path, f"decoding failed ({type(e).__name__}: {e})") from None
            yield frame.to_ndarray(format="rgb24")


def convert_trajectory(traj: Trajectory, cfg: ContractorConfig, action_code: ActionCode) -> dict[str, Any]:
    """Write one trajectory's episode; a damaged recording raises `EpisodeError` (kind = reason) and writes nothing."""
    video, jsonl = traj.video, traj.jsonl
    if video is None or jsonl is None:
        what = "video (.mp4)" if video is None else "actions (.jsonl)"
        raise EpisodeError(f"{traj.key}: no {what}", MISSING_FILES, f"no {what} next to it")
    try:
        records = read_jsonl(jsonl)
    except UnicodeDecodeError as e:
        raise EpisodeError(f"{jsonl}: not UTF-8 text", BAD_ACTIONS, f"{jsonl.name} is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise EpisodeError(f"{jsonl}: unreadable", MISSING_FILES, f"{jsonl.name} is unreadable ({e.strerror})") from None
    if not records:
        raise EpisodeError(f"{jsonl}: empty", BAD_ACTIONS, f"{jsonl.name} has no lines")
    n_frames = _frame_count(video)
    usable = min(n_frames, len(records))
    if len(records) - usable > cfg.missing_frames:
        raise _video_error(video, f"{n_frames} frames for {len(records)} jsonl lines (truncated?)")
    steps, counts = plan_steps(records, usable, cfg, action_code, jsonl)
    if len(steps) < cfg.min_length:
        raise EpisodeError(f"{traj.key}: {len(steps)} kept steps", TOO_SHORT,
                           f"{len(steps)} step(s) after dropping null actions < --min-length {cfg.min_length}")
    cursor = load_cursor(cfg.cursor) if cfg.cursor else arrow_cursor()
    truncate = "cursor_floor" in cfg.quirks
    meta = {"world": WORLD, "source": "openai contractor recording", "trajectory": traj.key, "seed": cfg.seed,
            "fps": cfg.fps, "quirks": cfg.quirks, "camera_scale": CAMERA_SCALE,
            "cursor": cfg.cursor or "built-in arrow", "action_code": f"{action_code.__module__}.{action_code.__qualname__}",
            "recorded_lines": len(records), "video_frames": n_frames, "lines_without_frame": len(records) - usable,
            **counts, "created_by": f"aimc {__version__}"}
    size: tuple[int, int] | None = None
    n_h = n_w = 0
    with EpisodeWriter(cfg.out, traj.name, meta, fps=cfg.fps) as writer:
        todo = iter(steps)
        step = next(todo, None)
        decoded = 0
        for j, frame in enumerate(_decoded(video)):
            if step is None:
                break
            decoded = j + 1
            if j != step.line:
                continue
            if step.gui_open:
                draw_cursor(frame, cursor, *cursor_position(*step.mouse_xy, frame.shape[0]), truncate=truncate)
            n_h, n_w = frame.shape[:2]
            size = tuple(cfg.size) if cfg.size else (n_h, n_w)
            writer.add(resize(frame, size), step.code, step.events, step.info)
            step = next(todo, None)
        if step is not None:
            raise _video_error(video, f"decoded {decoded} of {n_frames} frames (truncated?)")
        events = Counter(e for s in steps for e in s.events)
        resized = "cv2 INTER_LINEAR (bit-exact)" if cfg.size is not None and tuple(cfg.size) != (n_h, n_w) else "none"
        writer.close(world_config={"size": list(size)}, resize=resized, event_counts=dict(events))
    return {"key": traj.key, "name": traj.name, "steps": len(steps), "null": counts["null_lines_dropped"], "events": dict(events)}


# ------------------------------------------------------------------------------------------ the driver
_W: dict[str, Any] = {}


def _worker_init(cfg_dict: dict[str, Any], action_code: ActionCode) -> None:
    _W["cfg"] = from_dict(ContractorConfig, cfg_dict)
    _W["code"] = action_code


def _convert_one(traj: Trajectory) -> dict[str, Any]:
    try:
        return convert_trajectory(traj, _W["cfg"], _W["code"])
    except EpisodeError as e:
        return {"key": traj.key, "skip": e.detail, "kind": e.kind}


def _prepare_out(cfg: ContractorConfig) -> Path:
    """Check `--out` is a store converted with the same settings (or new), clean killed writers' temps, save
    the config (`{"config": ..., "identity": ...}`: identity holds the cursor image's digest, not its path)."""
    out = Path(cfg.out)
    identity = cfg.identity()
    if out.exists() and not out.is_dir():
        raise AimcError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir()
                   if p.name != CONFIG_FILE and not p.name.startswith(TMP_PREFIX) and not is_episode_dir(p)]
        if foreign:
            raise AimcError(f"--out {out} is not an episode store (it holds {', '.join(sorted(foreign)[:3])}); "
                            "choose an empty or new directory")
        saved = out / CONFIG_FILE
        if saved.is_file():
            try:
                old = json.loads(saved.read_text())["identity"]
            except (json.JSONDecodeError, KeyError, TypeError, OSError) as e:
                raise AimcError(f"{saved} is unreadable ({e}); move it away to convert into this directory") from None
            diff = sorted(k for k, v in identity.items() if old.get(k) != v)
            if diff:
                raise AimcError(f"--out {out} was converted with other settings ({', '.join(diff)}); "
                                "use the same settings to resume, or another --out")
    check_writable_dir(out)
    remove_stale_tmp(out)
    atomic_write_json(out / CONFIG_FILE, {"config": to_dict(cfg), "identity": identity})
    return out


def iter_convert(cfg: ContractorConfig, todo: list[Trajectory], action_code: ActionCode) -> Iterator[dict[str, Any]]:
    """One result per trajectory in `todo`, in order: a summary, or `{"key", "skip", "kind"}` for a skipped one.

    When anything else fails (a full disk, Ctrl-C), the workers are stopped and the episodes they were writing,
    hidden temp dirs, are removed before the error goes on."""
    if cfg.workers == 1 or len(todo) <= 1:
        _worker_init(to_dict(cfg), action_code)
        try:
            for traj in todo:
                yield _convert_one(traj)
        except BaseException:
            remove_stale_tmp(cfg.out)
            raise
        return
    # Spawned, not forked: a child forked from a parent that has already decoded video can hang inside FFmpeg
    # (av 18.1.1: the damaged-video test hung in its first decode after other tests had used av in-process).
    pool = mp.get_context("spawn").Pool(min(cfg.workers, len(todo)), initializer=_worker_init,
                                        initargs=(to_dict(cfg), action_code))
    try:
        yield from pool.imap(_convert_one, todo)
        pool.close()
    except BaseException:
        pool.terminate()
        pool.join()
        remove_stale_tmp(cfg.out)
        raise
    finally:
        pool.join()


def convert_contractor(cfg: ContractorConfig, action_code: ActionCode, skipped: Skipped | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Convert every recording under `cfg.source` that the store does not hold yet; returns a summary dict.

    `skipped` collects the damaged trajectories (default: one stderr line each, not strict)."""
    if not cfg.source:
        raise ConfigError("no source directory given")
    if cfg.cursor:
        load_cursor(cfg.cursor)  # an unreadable cursor fails before any write
    trajectories = find_trajectories(cfg.source)
    _prepare_out(cfg)
    skipped = SkippedTrajectories(echo=to_stderr) if skipped is None else skipped
    todo = [t for t in trajectories if not is_episode_dir(Path(cfg.out) / t.name)]
    summary: dict[str, Any] = {"trajectories": len(trajectories), "already_converted": len(trajectories) - len(todo),
                               "converted": 0, "steps": 0, "null_lines_dropped": 0}
    events: Counter[str] = Counter()
    t0 = time.perf_counter()
    bar = _progress(len(todo), progress)
    try:
        with contextlib.closing(iter_convert(cfg, todo, action_code)) as results:  # a raise here stops the workers
            for res in results:
                if "skip" in res:
                    skipped.add(Path(cfg.source) / res["key"], res["skip"], res["kind"])
                else:
                    summary["converted"] += 1
                    summary["steps"] += res["steps"]
                    summary["null_lines_dropped"] += res["null"]
                    events.update(res["events"])
                bar()
    finally:
        bar(done=True)
    summary.update(seconds=time.perf_counter() - t0, events=dict(events), skipped_trajectories=len(skipped),
                   skipped_by_reason=skipped.counts(), out=str(cfg.out))
    return summary


def _progress(total: int, enabled: bool) -> Callable[..., None]:
    """A rich progress bar over trajectories: `advance()` per result, `advance(done=True)` closes it."""
    if not enabled or total == 0:
        return lambda done=False: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("convert"), BarColumn(), MofNCompleteColumn(), TextColumn("trajectories"),
                    TimeElapsedColumn())
    task = prog.add_task("convert", total=total)
    prog.start()

    def advance(done: bool = False) -> None:
        if done:
            prog.stop()
        else:
            prog.update(task, advance=1)

    return advance
