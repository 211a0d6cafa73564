"""Dataset index over episode stores: seeded train/val splits by episode, weighted mixtures, and `Skipped`.

Fine-tune recipes (seed 004) mix task data with original data, e.g. 70 % / 30 %: `Mixture` draws the
source dataset by weight first, then an episode within it, so the mix holds whatever the dataset sizes.

`Skipped` is the one policy for damaged data shared by every command that reads a store (train policy,
embed, train embedder, train prior, eval prior, eval embedder): a bad episode is left out with one line
naming it and the reason, the run goes on with the rest, its summary counts the skipped episodes by reason,
and `strict=True` (the commands' `--strict`) makes the first bad episode an error instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.errors import AimcError, ConfigError, EpisodeError
from aimc.core.io import atomic_write_text
from aimc.data.store import TOO_SHORT, Episode, list_episodes


def to_stderr(line: str) -> None:
    """Default reporter of skipped episodes: stderr, so stdout keeps only the command's summary."""
    print(line, file=sys.stderr, flush=True)


def skip_summary(counts: dict[str, int]) -> str:
    """'3 episode(s) skipped (2 unreadable video, 1 missing files)' from reason -> count ('' when none)."""
    n = sum(counts.values())
    if not n:
        return ""
    reasons = ", ".join(f"{c} {kind}" for kind, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{n} episode(s) skipped ({reasons})"


class Skipped(dict[str, str]):
    """Episodes a run leaves out: episode path (as given) -> reason, plus each one's kind of damage.

    `add` reports one line per episode through `echo` (None = quiet) and, with `strict`, raises the
    episode's `EpisodeError` instead of skipping. A dict, so `"ep" in index.skipped` keeps working.
    """

    def __init__(self, strict: bool = False, echo: Callable[[str], None] | None = to_stderr) -> None:
        super().__init__()
        self.strict = strict
        self.echo = echo
        self.kinds: dict[str, str] = {}

    def add(self, episode: str | Path, reason: str, kind: str) -> None:
        """Leave `episode` out because of `reason` (grouped under `kind`, e.g. "unreadable video")."""
        key = str(episode)
        if self.strict:
            raise EpisodeError(f"episode {key}: {reason} (--strict stops at a damaged or unusable episode; "
                               "without it such episodes are skipped)", kind, reason)
        if key in self:
            return
        self[key] = reason
        self.kinds[key] = kind
        if self.echo is not None:
            self.echo(f"skipped episode {key}: {reason}")

    def add_error(self, episode: str | Path, error: EpisodeError) -> None:
        self.add(episode, error.detail, error.kind)

    def counts(self) -> dict[str, int]:
        """Kind of damage -> how many episodes were skipped for it."""
        out: dict[str, int] = {}
        for kind in self.kinds.values():
            out[kind] = out.get(kind, 0) + 1
        return out

    def summary(self) -> str:
        return skip_summary(self.counts())

    def __getstate__(self) -> dict[str, Any]:  # the reporter stays behind (it may be a lambda)
        return {"strict": self.strict, "kinds": self.kinds, "echo": None}


@dataclass
class DatasetIndex:
    """A list of valid episodes (path + length), plus the ones skipped and why."""

    episodes: list[Path]
    lengths: list[int]
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: str | Path, min_length: int = 1, check_video: bool = True,
             skipped: Skipped | None = None) -> DatasetIndex:
        """Validate every episode under `root`; invalid or too-short ones are skipped and recorded.

        `skipped` (a command's `Skipped`) also receives each one, with its reason; the index's own
        `skipped` maps episode names to reasons either way.
        """
        eps, lens, own = [], [], Skipped(echo=None)
        for path in list_episodes(root):
            try:
                ep = Episode(path, check_video=check_video)
                if ep.length < min_length:
                    raise EpisodeError(f"episode {path}: length {ep.length} < {min_length}", TOO_SHORT,
                                       f"length {ep.length} < {min_length}")
            except EpisodeError as e:
                if skipped is not None:
                    skipped.add_error(path, e)
                own.add_error(path.name, e)
                continue
            eps.append(path)
            lens.append(ep.length)
        return cls(eps, lens, own)

    @classmethod
    def from_file(cls, path: str | Path, check_video: bool = False) -> DatasetIndex:
        """Read a STEVE-1-style sampling file: one episode directory per line."""
        path = Path(path)
        if not path.is_file():
            raise AimcError(f"sampling file {path} does not exist")
        eps, lens, skipped = [], [], {}
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            p = Path(line.strip())
            try:
                ep = Episode(p, check_video=check_video)
            except EpisodeError as e:
                skipped[p.name] = str(e)
                continue
            eps.append(p)
            lens.append(ep.length)
        return cls(eps, lens, skipped)

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        return int(sum(self.lengths))

    def head(self, n: int) -> DatasetIndex:
        """The first `n` valid episodes (scan order = name order = collection order), skips kept: the N
        demonstrations of a data-efficiency study, so a larger N always contains a smaller one."""
        return DatasetIndex(self.episodes[:n], self.lengths[:n], dict(self.skipped))

    def split(self, val_fraction: float, seed: int) -> tuple[DatasetIndex, DatasetIndex]:
        """Seeded split by episode (never inside one); at least one val episode when val_fraction > 0."""
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n = len(self.episodes)
        order = np.random.default_rng(seed).permutation(n)
        n_val = 0 if val_fraction == 0 else max(1, round(n * val_fraction))
        if n_val >= n and n > 0:
            raise AimcError(f"cannot split {n} episode(s) into train and val; collect more episodes")
        val_idx = sorted(order[:n_val].tolist())
        train_idx = sorted(order[n_val:].tolist())
        pick = lambda idx: DatasetIndex([self.episodes[i] for i in idx], [self.lengths[i] for i in idx])  # noqa: E731
        return pick(train_idx), pick(val_idx)

    def write_sampling(self, path: str | Path) -> None:
        """Write one absolute episode path per line (STEVE-1 `samplings/*.txt` layout)."""
        atomic_write_text(path, "".join(f"{p.resolve()}\n" for p in self.episodes))


@dataclass
class Mixture:
    """Weighted mixture of datasets: `sample(rng)` picks a dataset by weight, then an episode by length."""

    parts: list[tuple[DatasetIndex, float]]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ConfigError("a mixture needs at least one dataset")
        for i, (idx, w) in enumerate(self.parts):
            if w <= 0:
                raise ConfigError(f"mixture weight #{i} must be positive, got {w}")
            if len(idx) == 0:
                raise ConfigError(f"mixture dataset #{i} has no valid episodes")
        total = sum(w for _, w in self.parts)
        self.weights = np.array([w / total for _, w in self.parts])

    def sample(self, rng: np.random.Generator) -> Path:
        d = int(rng.choice(len(self.parts), p=self.weights))
        idx = self.parts[d][0]
        lens = np.asarray(idx.lengths, float)
        return idx.episodes[int(rng.choice(len(idx), p=lens / lens.sum()))]
