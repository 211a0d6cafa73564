"""Dataset index over episode stores: seeded train/val splits by episode, and weighted mixtures.

Fine-tune recipes (seed 004) mix task data with original data, e.g. 70 % / 30 %: `Mixture` draws the
source dataset by weight first, then an episode within it, so the mix holds whatever the dataset sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aimc.core.errors import AimcError, ConfigError, EpisodeError
from aimc.core.io import atomic_write_text
from aimc.data.store import Episode, list_episodes


@dataclass
class DatasetIndex:
    """A list of valid episodes (path + length), plus the ones skipped and why."""

    episodes: list[Path]
    lengths: list[int]
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: str | Path, min_length: int = 1, check_video: bool = True) -> DatasetIndex:
        """Validate every episode under `root`; invalid or too-short ones are skipped and recorded."""
        eps, lens, skipped = [], [], {}
        for path in list_episodes(root):
            try:
                ep = Episode(path, check_video=check_video)
            except EpisodeError as e:
                skipped[path.name] = str(e)
                continue
            if ep.length < min_length:
                skipped[path.name] = f"length {ep.length} < {min_length}"
                continue
            eps.append(path)
            lens.append(ep.length)
        return cls(eps, lens, skipped)

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
