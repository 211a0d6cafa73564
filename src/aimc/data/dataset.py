"""T-frame training segments from episode stores, with hindsight-relabelled goals, for a torch DataLoader.

Chunking follows STEVE-1: non-overlapping T-frame segments starting at frame 15 (the first full goal
window), the last one shifted back to end at the episode's end. An item is keyed by ``(segment index,
item seed)``; the seed drives the relabelling rng, so an item is the same whichever worker decodes it and
a resumed run sees exactly the data an uninterrupted one would. Episodes that are too short, lack the
goal embeddings or fail validation are skipped (and counted) when the index is built; an episode that
fails to decode later yields an item with ``ok=False`` that the loss ignores and the loop counts.

Decoding a lossless mp4 costs about as much as a training step on that segment, so decoded episodes are
cached as ``.npy`` files (``frame_cache``) that every worker memory-maps: each episode is decoded once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from aimc.core.errors import ConfigError, EpisodeError
from aimc.core.io import atomic_save_npy
from aimc.core.seeding import derive_seed
from aimc.data.relabel import EMBED_OFFSET, check_goal_gaps, min_episode_length, relabelled_goals
from aimc.data.store import Episode

# batch keys
POV, GOAL, ACTION, FIRST, OK = "pov", "goal", "action", "first", "ok"


@dataclass
class SegmentConfig:
    """What one training item is; defaults are STEVE-1's (T=640 is for Minecraft; Crafter presets use less)."""

    segment_len: int = 640
    """T: frames per segment."""
    min_btwn_goals: int = 15
    """Smallest gap between goal timesteps (inclusive)."""
    max_btwn_goals: int = 200
    """Largest gap between goal timesteps (exclusive)."""
    p_uncond: float = 0.1
    """Probability that a whole segment gets the zero (unconditional) goal."""
    embed_name: str | None = None
    """Goal embeddings to relabel from (`embeds_<name>.npy`); None = unconditional BC (no goal input)."""
    goal_anchor: str = "random"
    """"random": STEVE-1's goal timesteps. "events": a timestep's goal is the clip ending just after its next
    event (within max_btwn_goals), else the random one (see aimc.data.relabel)."""
    anchor_ignore: tuple[str, ...] = ("take_damage", "death")
    """Events that are not goal anchors with goal_anchor=events."""

    def __post_init__(self) -> None:
        if self.segment_len < 1:
            raise ConfigError(f"segment_len must be >= 1, got {self.segment_len}")
        check_goal_gaps(self.min_btwn_goals, self.max_btwn_goals)
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ConfigError(f"p_uncond must be in [0, 1], got {self.p_uncond}")
        if self.goal_anchor not in ("random", "events"):
            raise ConfigError(f"goal_anchor must be 'random' or 'events', got {self.goal_anchor!r}")
        self.anchor_ignore = tuple(self.anchor_ignore)


@dataclass
class SegmentIndex:
    """All segments of a set of episodes: (episode, start, end) rows, a sampling weight each, what was skipped."""

    episodes: list[Path]
    rows: np.ndarray  # (S, 3) int64: episode number, start, end
    weights: np.ndarray  # (S,) float64, sums to 1
    skipped: dict[str, str] = field(default_factory=dict)
    goal_dim: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def frames(self) -> int:
        return int((self.rows[:, 2] - self.rows[:, 1]).sum()) if len(self.rows) else 0


def _episode_problem(path: Path, cfg: SegmentConfig) -> tuple[str | None, int, int]:
    """-> (why it is unusable or None, length, goal dim)."""
    try:
        ep = Episode(path, check_video=True)
    except EpisodeError as e:
        return str(e), 0, 0
    need = min_episode_length(cfg.min_btwn_goals, cfg.segment_len)
    if ep.length < need:
        return f"length {ep.length} < {need} (segment_len + 15)", ep.length, 0
    if cfg.embed_name is None:
        return None, ep.length, 0
    if not ep.has_embeds(cfg.embed_name):
        return f"no embeddings named {cfg.embed_name!r}", ep.length, 0
    try:
        emb, mask = ep.read_embeds(cfg.embed_name)
    except EpisodeError as e:
        return str(e), ep.length, 0
    if not mask[EMBED_OFFSET:].all():
        return f"embeddings {cfg.embed_name!r} are invalid after frame {EMBED_OFFSET}", ep.length, 0
    return None, ep.length, int(emb.shape[1])


def build_segment_index(parts: Sequence[tuple[Sequence[Path], float]], cfg: SegmentConfig) -> SegmentIndex:
    """Chunk every usable episode of each (episodes, weight) part; part weights are shares of the samples."""
    episodes: list[Path] = []
    rows: list[tuple[int, int, int]] = []
    weights: list[float] = []
    skipped: dict[str, str] = {}
    dims: set[int] = set()
    t = cfg.segment_len
    for paths, weight in parts:
        if weight <= 0:
            raise ConfigError(f"mixture weights must be positive, got {weight}")
        part_rows = []
        for path in paths:
            why, n, dim = _episode_problem(Path(path), cfg)
            if why is not None:
                skipped[str(path)] = why
                continue
            if dim:
                dims.add(dim)
            e = len(episodes)
            episodes.append(Path(path))
            for start in range(EMBED_OFFSET, n, t):
                s = min(start, n - t)
                part_rows.append((e, s, s + t))
        rows += part_rows
        weights += [weight / len(part_rows)] * len(part_rows) if part_rows else []
    if len(dims) > 1:
        raise ConfigError(f"episodes hold {cfg.embed_name!r} embeddings of different sizes {sorted(dims)}; re-embed them")
    w = np.asarray(weights, np.float64)
    return SegmentIndex(
        episodes, np.asarray(rows, np.int64).reshape(-1, 3), w / w.sum() if len(w) else w, skipped, dims.pop() if dims else 0
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


class SegmentDataset(Dataset):
    """Items are dicts: pov uint8 (T,H,W,3), goal float32 (T,D), action int64 (T,), first bool (T,), ok bool."""

    def __init__(
        self,
        index: SegmentIndex,
        cfg: SegmentConfig,
        img_shape: tuple[int, int],
        frame_cache: str | Path | None = None,
        fixed_goal: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.cfg = cfg
        self.img_shape = img_shape
        self.cache = FrameCache(frame_cache)
        self.fixed_goal = None if fixed_goal is None else np.asarray(fixed_goal, np.float32).reshape(-1)
        self.goal_dim = len(self.fixed_goal) if self.fixed_goal is not None else index.goal_dim

    def __len__(self) -> int:
        return len(self.index)

    def _goals(self, ep: Episode, start: int, end: int, rng: np.random.Generator) -> np.ndarray:
        t = end - start
        if self.fixed_goal is not None:
            # fixed-prompt fine-tuning: one text embedding on every frame, still zeroed with p_uncond
            uncond = rng.random() < self.cfg.p_uncond
            return np.zeros((t, self.goal_dim), np.float32) if uncond else np.tile(self.fixed_goal, (t, 1))
        if self.cfg.embed_name is None:
            return np.zeros((t, 0), np.float32)
        emb, _ = ep.read_embeds(self.cfg.embed_name)
        goals, _ = relabelled_goals(
            emb, start, end, self.cfg.min_btwn_goals, self.cfg.max_btwn_goals, self.cfg.p_uncond, rng,
            events=ep.events if self.cfg.goal_anchor == "events" else None, ignore_events=self.cfg.anchor_ignore,
        )
        return goals

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, item_seed = key
        e, start, end = (int(v) for v in self.index.rows[i])
        rng = np.random.default_rng(item_seed)
        t = end - start
        first = np.zeros(t, bool)
        first[0] = True
        try:
            ep = Episode(self.index.episodes[e], check_video=False)
            goal = self._goals(ep, start, end, rng)
            pov = self.cache.frames(ep, start, end)
            action = np.asarray(ep.actions[start:end], np.int64)
            if pov.shape[1:3] != tuple(self.img_shape):
                raise EpisodeError(f"{ep.path}: frames are {pov.shape[1:3]}, the policy expects {tuple(self.img_shape)}")
            ok = True
        except EpisodeError:
            pov = np.zeros((t, *self.img_shape, 3), np.uint8)
            goal = np.zeros((t, self.goal_dim), np.float32)
            action = np.zeros(t, np.int64)
            ok = False
        return {
            POV: torch.from_numpy(np.ascontiguousarray(pov)),
            GOAL: torch.from_numpy(goal),
            ACTION: torch.from_numpy(action),
            FIRST: torch.from_numpy(first),
            OK: ok,
        }


def collate_segments(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into (B, T, ...) tensors. Failed items stay in (zeros, ``ok`` False) so every process keeps
    the same batch shape; the loss gives them weight 0 and ``n_invalid`` counts them."""
    out: dict[str, Any] = {k: torch.stack([it[k] for it in items]) for k in (POV, GOAL, ACTION, FIRST)}
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
            raise ConfigError(
                f"{self.n} training segment(s) cannot fill one batch of {self.global_batch}; "
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
