"""T-frame training segments from episode stores, with hindsight-relabelled goals, for a torch DataLoader.

Chunking follows STEVE-1: non-overlapping T-frame segments starting at frame 15 (the first full goal
window), the last one shifted back to end at the episode's end. An item is keyed by ``(segment index,
item seed)``; the seed drives the relabelling rng, so an item is the same whichever worker decodes it and
a resumed run sees exactly the data an uninterrupted one would. Episodes that are too short, lack the
goal embeddings or fail validation are skipped (and counted) when the index is built; an episode that
fails to decode later yields an item with ``ok=False`` that the loss ignores and the loop counts.

The 15-frame offset and the segment_len + 15 minimum exist only for the visual goal windows. An episode of
an "intention" or "event_text" part without visual embeddings (task demonstrations, DAgger rollouts) reads
its goals from its recorded ``infos[t]["goal"]`` or its events, so it is chunked from frame 0 and kept at any length: one shorter than
a segment becomes one row whose tail is padding, marked False in the item's ``step_ok`` so the loss skips
it. Task demonstrations end at the task's success, so these short episodes are the successful ones.

Decoding a lossless mp4 costs about as much as a training step on that segment, so decoded episodes are
cached as ``.npy`` files (``frame_cache``) that every worker memory-maps: each episode is decoded once.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from aimc.core import keys
from aimc.core.errors import ConfigError, EpisodeError
from aimc.core.io import atomic_save_npy
from aimc.core.seeding import derive_seed
from aimc.data.config import SegmentConfig
from aimc.data.index import Skipped
from aimc.data.relabel import EMBED_OFFSET, min_episode_length, relabelled_goals
from aimc.data.store import BAD_EMBEDS, MISSING_EMBEDS, TOO_SHORT, Episode
from aimc.data.text_goals import TextGoalTable, event_text_targets, intention_targets_from_goals

# batch keys; STEP_OK (T,) marks the real steps of an item (padding past a short episode's end is False)
POV, GOAL, ACTION, FIRST, OK, STEP_OK = "pov", "goal", "action", "first", "ok", "step_ok"
GOAL_SOURCES = ("visual", "event_text", "intention")
TEXT_OVERRIDES = ("intention", "event_text")
"""Part goal sources whose episodes need no visual embeddings (their goals are text: recorded or event ones), so
they are chunked from frame 0 and may be shorter than a segment (task demonstrations, DAgger stores)."""


@dataclass
class SegmentIndex:
    """All segments of a set of episodes: (episode, start, end) rows, a sampling weight each, what was skipped.

    A row's end may lie past its episode's end (a short recorded-goal episode): the dataset pads that tail."""

    episodes: list[Path]
    rows: np.ndarray  # (S, 3) int64: episode number, start, end (end - start = segment_len)
    weights: np.ndarray  # (S,) float64, sums to 1
    skipped: dict[str, str] = field(default_factory=dict)
    goal_dim: int = 0
    goal_sources: dict[int, str] = field(default_factory=dict)
    """Episode number -> goal source of its part, for parts that override `SegmentConfig.goal_source`."""
    lengths: list[int] = field(default_factory=list)
    """Episode number -> its length (rows of a short episode run past it)."""

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def frames(self) -> int:
        """Real frames in the rows (padding excluded)."""
        if not len(self.rows):
            return 0
        ends = np.minimum(self.rows[:, 2], np.asarray(self.lengths, np.int64)[self.rows[:, 0]]) if self.lengths else self.rows[:, 2]
        return int((ends - self.rows[:, 1]).sum())


@dataclass(frozen=True)
class _EpisodeCheck:
    """What `build_segment_index` needs to know about one episode."""

    problem: EpisodeError | None
    """Why it is unusable, or None."""
    length: int
    goal_dim: int = 0
    """Size of its visual goal embeddings (0 = none read)."""
    first_frame: int = EMBED_OFFSET
    """Where chunking starts: the first full goal window, or 0 when every goal is a recorded one."""


def _episode_problem(path: Path, cfg: SegmentConfig, source: str | None = None) -> _EpisodeCheck:
    """Check one episode for `build_segment_index`. `source` is the part's goal-source override: an
    "intention" or "event_text" part needs no visual embeddings (its goals are the recorded ones, e.g. DAgger's
    task, or its own events' text), and
    one of its episodes without them waits for no goal window, so it starts at frame 0 and any length will do
    (shorter than a segment: padded by the dataset)."""
    def bad(kind: str, detail: str) -> _EpisodeCheck:
        return _EpisodeCheck(EpisodeError(f"episode {path}: {detail}", kind, detail), ep.length)

    try:
        ep = Episode(path, check_video=True)
    except EpisodeError as e:
        return _EpisodeCheck(e, 0)
    if source in TEXT_OVERRIDES and (cfg.embed_name is None or not ep.has_embeds(cfg.embed_name)):
        if ep.length < 1:
            return bad(TOO_SHORT, "length 0 < 1")
        return _EpisodeCheck(None, ep.length, first_frame=0)
    need = min_episode_length(cfg.min_btwn_goals, cfg.segment_len)
    if ep.length < need:
        return bad(TOO_SHORT, f"length {ep.length} < {need} (segment_len + 15)")
    if cfg.embed_name is None:
        return _EpisodeCheck(None, ep.length)
    if not ep.has_embeds(cfg.embed_name):
        return bad(MISSING_EMBEDS, f"no embeddings named {cfg.embed_name!r}")
    try:
        emb, mask = ep.read_embeds(cfg.embed_name)
    except EpisodeError as e:
        return _EpisodeCheck(e, ep.length)
    if not mask[EMBED_OFFSET:].all():
        return bad(BAD_EMBEDS, f"embeddings {cfg.embed_name!r} are invalid after frame {EMBED_OFFSET}")
    return _EpisodeCheck(None, ep.length, int(emb.shape[1]))


def build_segment_index(parts: Sequence[tuple[Any, ...]], cfg: SegmentConfig, skipped: Skipped | None = None) -> SegmentIndex:
    """Chunk every usable episode of each (episodes, weight) or (episodes, weight, goal source) part; part
    weights are shares of the samples. A part's goal source (None = `cfg.goal_source`) overrides the
    configured one for its episodes: aggregated DAgger data reads its instructed task ("intention") while
    the base data keeps the run's goals. Unusable episodes go to `skipped` (reported there; a quiet new one
    when None), which becomes the index's `skipped`. An "intention" or "event_text" episode without visual embeddings is
    chunked from frame 0, and one shorter than a segment gives the single row (e, 0, segment_len)."""
    episodes: list[Path] = []
    lengths: list[int] = []
    rows: list[tuple[int, int, int]] = []
    weights: list[float] = []
    skipped = Skipped(echo=None) if skipped is None else skipped
    dims: set[int] = set()
    sources: dict[int, str] = {}
    t = cfg.segment_len
    for paths, weight, *rest in parts:
        source = rest[0] if rest else None
        if source is not None and source not in GOAL_SOURCES:
            raise ConfigError(f"goal source must be one of {', '.join(GOAL_SOURCES)}, got {source!r}")
        if weight <= 0:
            raise ConfigError(f"mixture weights must be positive, got {weight}")
        part_rows = []
        for path in paths:
            check = _episode_problem(Path(path), cfg, source)
            if check.problem is not None:
                skipped.add_error(path, check.problem)
                continue
            if check.goal_dim:
                dims.add(check.goal_dim)
            e, n = len(episodes), check.length
            episodes.append(Path(path))
            lengths.append(n)
            if source is not None:
                sources[e] = source
            for start in range(check.first_frame, n, t):
                s = max(min(start, n - t), 0)  # the last segment ends at the episode's end; 0 when it is shorter
                part_rows.append((e, s, s + t))
        rows += part_rows
        weights += [weight / len(part_rows)] * len(part_rows) if part_rows else []
    if len(dims) > 1:
        raise ConfigError(f"episodes hold {cfg.embed_name!r} embeddings of different sizes {sorted(dims)}; re-embed them")
    w = np.asarray(weights, np.float64)
    return SegmentIndex(
        episodes, np.asarray(rows, np.int64).reshape(-1, 3), w / w.sum() if len(w) else w, skipped, dims.pop() if dims else 0,
        sources, lengths,
    )


class FrameCache:
    """Decoded frames of whole episodes as memory-mapped ``.npy`` files (None dir = decode every time)."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None

    def _path(self, ep: Episode) -> Path:
        assert self.directory is not None
        tag = hashlib.sha1(str(ep.path.resolve()).encode()).hexdigest()[:10]
        return self.directory / f"{ep.name}-{tag}.npy"

    def frames(self, ep: Episode, start: int, end: int) -> np.ndarray:
        """Frames [start, end) of `ep`, which must be real frames (a padded row asks for its real part only)."""
        if not 0 <= start <= end <= ep.length:
            raise EpisodeError(f"{ep.path}: frames [{start}, {end}) are outside the episode's {ep.length}")
        if self.directory is None:
            return ep.frames(start, end)
        path = self._path(ep)
        if path.is_file():
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                if len(arr) == ep.length:
                    return np.array(arr[start:end])
            except (ValueError, OSError):
                pass  # a foreign or damaged file: decode again and replace it
        frames = ep.frames()
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(path, frames)
        return frames[start:end].copy()


@dataclass
class _EpisodeRecord:
    """What items read from one episode besides its frames, read once per process.

    Without it every item re-opened its episode (metadata, actions, a count of every events and infos line)
    and re-parsed all of infos.jsonl for the DART labels: about 14 ms for a 1000-step episode, more than the
    item's 64 frames cost from the frame cache (docs/training.md, "Speed"). Per step it keeps only what items
    use: the action targets and the recorded goal names (intention goals only). Goal embeddings are still
    read per item (a small ``.npy`` read, ~40 us), so memory does not grow with the store's embeddings.
    """

    episode: Episode
    """The episode, opened once (its small `events` stay cached on it)."""
    labels: np.ndarray
    """(N,) int64 action targets: the executed actions, or their DART labels where recorded."""
    unlabelled: np.ndarray | None = None
    """(N,) bool: steps recorded without an action target (`keys.NO_LABEL`, e.g. DAgger's exploring labels
    under `skip_explore`), masked out of the loss; None when the episode has none."""
    goals: list[str | None] | None = None
    """Recorded ``infos[t]["goal"]`` per step (None until an intention item needs them)."""


class SegmentDataset(Dataset):
    """Items are dicts: pov uint8 (T,H,W,3), goal float32 (T,D), action int64 (T,), first bool (T,), ok bool,
    step_ok bool (T,). A row past its episode's end is padded: the last frame repeated, action 0, zero goals,
    ``first`` and ``step_ok`` False on the padded steps."""

    def __init__(
        self,
        index: SegmentIndex,
        cfg: SegmentConfig,
        img_shape: tuple[int, int],
        frame_cache: str | Path | None = None,
        fixed_goal: np.ndarray | None = None,
        text_goals: TextGoalTable | None = None,
    ) -> None:
        self.index = index
        self.cfg = cfg
        self.img_shape = img_shape
        self.cache = FrameCache(frame_cache)
        self.fixed_goal = None if fixed_goal is None else np.asarray(fixed_goal, np.float32).reshape(-1)
        self.goal_dim = len(self.fixed_goal) if self.fixed_goal is not None else index.goal_dim
        self.text_goals = text_goals
        self._records: dict[Path, _EpisodeRecord] = {}
        text_sources = sorted({cfg.goal_source, *index.goal_sources.values()} - {"visual"})
        if text_sources and self.fixed_goal is None:
            if text_goals is None:
                raise ConfigError(f"goal source {text_sources[0]!r} needs a text goal table (the trainer's embedder)")
            if cfg.embed_name is None or not self.goal_dim:  # no visual goals here: the text side sizes them
                self.goal_dim = text_goals.dim
            elif text_goals.dim != self.goal_dim:
                raise ConfigError(
                    f"text goals have {text_goals.dim} dims but the {cfg.embed_name!r} embeddings {self.goal_dim}; "
                    "use the embedder that made those embeddings"
                )

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        """Worker processes start with an empty record cache (each fills its own as it reads)."""
        return {**self.__dict__, "_records": {}}

    def _record(self, path: Path, ep: Episode | None = None) -> _EpisodeRecord:
        """The episode's record, made on first use (from `ep` when given: the caller opened it already)."""
        rec = self._records.get(path)
        if rec is None:
            ep = Episode(path, check_video=False) if ep is None else ep
            unlabelled = None
            if ep.metadata.get(keys.MASKED_LABELS):
                unlabelled = np.array([bool(v) for v in ep.info_values(keys.NO_LABEL)], bool)
            rec = _EpisodeRecord(ep, self._read_labels(ep), unlabelled=unlabelled)
            self._records[path] = rec
        return rec

    def _read_labels(self, ep: Episode) -> np.ndarray:
        """Action targets of the whole episode: the executed actions, or their DART labels where recorded."""
        action = np.array(ep.actions, np.int64)
        if self.cfg.dart_labels and ep.metadata.get("dart_labels"):
            for t, label in enumerate(ep.info_values(keys.LABEL)):
                if label is not None:
                    action[t] = int(label)
        return action

    def _goals(self, ep: Episode, start: int, end: int, rng: np.random.Generator, override: str | None = None) -> np.ndarray:
        """Goals (t, D) for frames [start, end); `override` is the episode's part goal source, if it has one."""
        t = end - start
        source = override or self.cfg.goal_source
        if self.fixed_goal is not None:
            # fixed-prompt fine-tuning: one text embedding on every frame, still zeroed with p_uncond
            uncond = rng.random() < self.cfg.p_uncond
            return np.zeros((t, self.goal_dim), np.float32) if uncond else np.tile(self.fixed_goal, (t, 1))
        if self.cfg.embed_name is None and source == "visual":
            return np.zeros((t, self.goal_dim), np.float32)  # unconditional (goal_dim is 0 without text parts)
        # a text part's episode may lack visual embeddings: then its recorded or event goals are used alone
        if self.cfg.embed_name is not None and (override not in TEXT_OVERRIDES or ep.has_embeds(self.cfg.embed_name)):
            emb, _ = ep.read_embeds(self.cfg.embed_name)
            goals, uncond = relabelled_goals(
                emb, start, end, self.cfg.min_btwn_goals, self.cfg.max_btwn_goals, self.cfg.p_uncond, rng,
                events=ep.events if self.cfg.goal_anchor == "events" else None, ignore_events=self.cfg.anchor_ignore,
            )
        else:  # intention goals alone: no visual fallback, the same single p_uncond draw per segment
            goals, uncond = np.zeros((t, self.goal_dim), np.float32), bool(rng.random() < self.cfg.p_uncond)
        if source == "visual" or uncond:
            return goals
        # Text goals draw after the visual ones, so the visual stream of a seed is the same in every mode.
        table = self.text_goals
        assert table is not None  # checked in __init__
        if source == "event_text":
            if rng.random() >= self.cfg.text_fraction:
                return goals
            targets = event_text_targets(ep.events, self.cfg.text_horizon, self.cfg.p_later_event, rng, known=table)
        else:
            rec = self._record(ep.path, ep)
            if rec.goals is None:
                rec.goals = [sys.intern(g) if isinstance(g, str) else None for g in ep.info_values("goal")]
            targets = intention_targets_from_goals(rec.goals, rng, self.cfg.intention_interrupts)
        text, has = table.lookup(targets, start, end)  # (t, D), (t,)
        return np.where(has[:, None], text, goals).astype(np.float32)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, item_seed = key
        e, start, end = (int(v) for v in self.index.rows[i])
        rng = np.random.default_rng(item_seed)
        t = end - start
        first = np.zeros(t, bool)
        first[0] = True
        step_ok = np.ones(t, bool)
        try:
            rec = self._record(Path(self.index.episodes[e]))
            ep = rec.episode
            real_end = min(end, ep.length)  # a short recorded-goal episode's row runs past its end
            if real_end <= start:
                raise EpisodeError(f"{ep.path}: segment [{start}, {end}) starts past the episode's {ep.length} steps")
            goal = self._goals(ep, start, real_end, rng, self.index.goal_sources.get(e))
            pov = self.cache.frames(ep, start, real_end)
            action = rec.labels[start:real_end].copy()
            if rec.unlabelled is not None:
                step_ok[: real_end - start] &= ~rec.unlabelled[start:real_end]
            if pov.shape[1:3] != tuple(self.img_shape):  # a policy that reads another frame size (a student at
                # 32x32 of 64x64 worlds, `aimc.policy.vpt.student`) sees them resized exactly as it does when acting
                from aimc.policy.agent import resize_frames

                pov = resize_frames(pov, tuple(self.img_shape))
            pad = end - real_end
            if pad:  # the tail is masked out of the loss; these values only keep the batch rectangular
                pov = np.concatenate([pov, np.repeat(pov[-1:], pad, axis=0)])
                goal = np.concatenate([goal, np.zeros((pad, goal.shape[1]), np.float32)])
                action = np.concatenate([action, np.zeros(pad, np.int64)])
                step_ok[t - pad :] = False
            ok = True
        except EpisodeError:
            pov = np.zeros((t, *self.img_shape, 3), np.uint8)
            goal = np.zeros((t, self.goal_dim), np.float32)
            action = np.zeros(t, np.int64)
            step_ok[:] = False
            ok = False
        return {
            POV: torch.from_numpy(np.ascontiguousarray(pov)),
            GOAL: torch.from_numpy(goal),
            ACTION: torch.from_numpy(action),
            FIRST: torch.from_numpy(first),
            OK: ok,
            STEP_OK: torch.from_numpy(step_ok),
        }


def collate_segments(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into (B, T, ...) tensors. Failed items stay in (zeros, ``ok`` False) so every process keeps
    the same batch shape; the loss gives them weight 0 and ``n_invalid`` counts them. ``step_ok`` (B, T)
    masks the padded steps of short episodes (and every step of a failed item) out of the loss."""
    out: dict[str, Any] = {k: torch.stack([it[k] for it in items]) for k in (POV, GOAL, ACTION, FIRST, STEP_OK)}
    out[OK] = torch.tensor([bool(it[OK]) for it in items])
    out["n_invalid"] = int((~out[OK]).sum())
    return out


class SegmentSampler(Sampler[tuple[int, int]]):
    """Endless, seeded stream of (segment, item seed) keys; resumable from a global batch number.

    Each epoch is a fresh seeded order (a permutation, or weighted draws for mixtures); global batches of
    ``batch_size * world`` keys are cut from it and process ``rank`` takes its slice. Epochs drop their
    incomplete last batch, so every process always sees the same number of batches.
    """

    def __init__(
        self, index: SegmentIndex, batch_size: int, seed: int, start_batch: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        self.n = len(index)
        self.weights = index.weights
        self.uniform = bool(np.allclose(self.weights, 1.0 / max(self.n, 1)))
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world = world
        self.global_batch = batch_size * world
        if self.n < self.global_batch:
            dropped = f" ({len(index.skipped)} episode(s) were skipped as damaged or unusable, see above)" if index.skipped else ""
            raise ConfigError(
                f"{self.n} training segment(s){dropped} cannot fill one batch of {self.global_batch}; "
                "collect more data or lower batch_size / segment_len"
            )
        self.batches_per_epoch = self.n // self.global_batch

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(derive_seed(self.seed, "order", epoch))
        if self.uniform:
            return rng.permutation(self.n)
        return rng.choice(self.n, size=self.n, p=self.weights)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = self.start_batch
        while True:
            epoch, b = divmod(g, self.batches_per_epoch)
            order = self.epoch_order(epoch)
            while b < self.batches_per_epoch:
                lo = b * self.global_batch + self.rank * self.batch_size
                for j, i in enumerate(order[lo : lo + self.batch_size]):
                    yield int(i), derive_seed(self.seed, "item", epoch, b, self.rank * self.batch_size + j)
                b += 1
                g += 1


def val_keys(index: SegmentIndex, seed: int, max_segments: int) -> list[tuple[int, int]]:
    """A fixed, evenly spread set of validation keys (same goals every evaluation, so losses compare)."""
    n = len(index)
    pick = np.linspace(0, n - 1, min(n, max_segments)).round().astype(int) if n else np.zeros(0, int)
    return [(int(i), derive_seed(seed, "val", int(i))) for i in np.unique(pick)]
