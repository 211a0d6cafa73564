"""Text goals for goal-conditioned BC: which instruction each timestep of an episode serves.

STEVE-1 conditions every timestep on the embedding of a *video clip* from its future and bridges to text at play
time with a prior. These relabellings put *text* in the training distribution instead, so a prompt is already
a goal the policy has read (no prior needed at play time):

* **event text** (`event_text_targets`): a timestep's goal is an event that happens later in the same episode,
  within ``horizon`` steps: usually the next one, with probability ``p_later`` a later one, so that the
  prerequisite steps (chopping wood) also carry the goal they serve (place a table). The goal holds from the
  timestep of the draw through the step whose action causes the event; the next stretch starts after it.
  Events are programmatic, so this needs no human labels and applies to any world that reports events.
* **intention** (`intention_targets`): the scripted demonstrator's own sub-goal at each step (recorded by
  collection as ``infos[t]["goal"]``): an upper bound for what goals can tell the policy, only for
  demonstrator data.

Both return names plus one uniform draw per stretch that picks the paraphrase, and leave the embedding to
`TextGoalTable` (built by the trainer from an embedder's text side: the data stage never imports embed).
All draws use the explicit generator, so an item stays a function of its seed alone (resumable training).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aimc.core.errors import ConfigError


@dataclass(frozen=True)
class TextTargets:
    """Per-timestep goal names (None = no text goal here) and the paraphrase draw u in [0, 1) of each."""

    names: list[str | None]
    draws: np.ndarray  # (n,) float64


def event_text_targets(
    events: Sequence[Sequence[str]],
    horizon: int,
    p_later: float,
    rng: np.random.Generator,
    known: Mapping[str, Any] | None = None,
) -> TextTargets:
    """Hindsight event goals for an episode whose step s caused ``events[s]`` (see the module docstring).

    Only events in ``known`` (the caption table) can be goals. A timestep with no such event within
    ``horizon`` steps (s - t < horizon) gets None and the walk moves on by one step without a draw.
    Draws per stretch, in order: one for next-vs-later (only when a later distinct occurrence exists), one
    for which later occurrence, one for the paraphrase.
    """
    if horizon < 1:
        raise ConfigError(f"text goal horizon must be >= 1, got {horizon}")
    if not 0.0 <= p_later <= 1.0:
        raise ConfigError(f"p_later must be in [0, 1], got {p_later}")
    n = len(events)
    occ = [(s, e) for s, evs in enumerate(events) for e in evs if known is None or e in known]
    steps = np.asarray([s for s, _ in occ], np.int64)
    names: list[str | None] = [None] * n
    draws = np.zeros(n, np.float64)
    t = 0
    while t < n:
        lo = int(np.searchsorted(steps, t, side="left"))
        hi = int(np.searchsorted(steps, t + horizon, side="left"))
        if lo >= hi:
            t += 1
            continue
        k = lo
        if hi - lo > 1 and rng.random() < p_later:
            k = int(rng.integers(lo + 1, hi))
        s, event = occ[k]
        u = float(rng.random())
        for i in range(t, s + 1):
            names[i] = event
        draws[t : s + 1] = u
        t = s + 1
    return TextTargets(names, draws)


def intention_targets(
    infos: Sequence[Mapping[str, Any]], rng: np.random.Generator, interrupts: Collection[str] = ()
) -> TextTargets:
    """The demonstrator's recorded sub-goal per step (``infos[t]["goal"]``); one paraphrase draw per run of
    equal goals, so a stretch reads one wording as an instruction would.

    Names in ``interrupts`` (the demonstrator's survival behaviours: drinking, eating, sleeping in a shelter)
    are not instructions but things done *while* following one: their steps take the instruction they
    interrupt, the episode's next recorded instruction (free play resumes the interrupted sub-goal), else the
    previous one; an episode with no instruction at all keeps the recorded names. A policy trained so learns
    to stay alive whatever it is asked, as the demonstrator does in task mode.
    """
    return intention_targets_from_goals([info.get("goal") for info in infos], rng, interrupts)


def intention_targets_from_goals(
    goals: Sequence[Any], rng: np.random.Generator, interrupts: Collection[str] = ()
) -> TextTargets:
    """`intention_targets` from the recorded ``infos[t].get("goal")`` values alone (same draws), for a dataset
    that keeps this one field of each episode rather than its whole step log."""
    names: list[str | None] = [g if isinstance(g, str) else None for g in goals]
    if interrupts:
        names = _fill_interrupts(names, set(interrupts))
    draws = np.zeros(len(names), np.float64)
    u = 0.0
    for t, name in enumerate(names):
        if t == 0 or name != names[t - 1]:
            u = float(rng.random())
        draws[t] = u
    return TextTargets(names, draws)


def _fill_interrupts(names: list[str | None], interrupts: set[str]) -> list[str | None]:
    """Each interrupting name -> the next instruction after it, else the last one before it."""
    out = list(names)
    following: str | None = None
    for t in range(len(out) - 1, -1, -1):  # backwards: the next instruction
        name = out[t]
        if name is not None and name not in interrupts:
            following = name
        elif name in interrupts and following is not None:
            out[t] = following
    previous: str | None = None
    for t, name in enumerate(out):  # the tail after the last instruction: the one before
        if name is not None and name not in interrupts:
            previous = name
        elif name in interrupts and previous is not None:
            out[t] = previous
    return out


class TextGoalTable:
    """Name -> (P, D) float32 embeddings of its P paraphrases; `lookup` turns targets into goal rows.

    Saved as one ``.npz`` (``names`` + one array per name) so training runs read the same embeddings on resume
    and in every data-loader worker.
    """

    def __init__(self, table: Mapping[str, np.ndarray]) -> None:
        if not table:
            raise ConfigError("a text goal table needs at least one name")
        arrays = {k: np.asarray(v, np.float32).reshape(len(v), -1) for k, v in table.items()}
        dims = {a.shape[1] for a in arrays.values()}
        if len(dims) != 1 or any(len(a) == 0 for a in arrays.values()):
            raise ConfigError(f"text goal table: every name needs >= 1 paraphrase of one dimension, got dims {sorted(dims)}")
        self.table = arrays
        self.dim = dims.pop()

    def __contains__(self, name: object) -> bool:
        return name in self.table

    def names(self) -> list[str]:
        return list(self.table)

    def lookup(self, targets: TextTargets, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (goals float32 (end-start, D), has_text bool (end-start,)) for timesteps [start, end).

        Names outside the table count as no text goal (rows of zeros, has_text False)."""
        t = end - start
        goals = np.zeros((t, self.dim), np.float32)
        has = np.zeros(t, bool)
        for i in range(t):
            name = targets.names[start + i]
            if name is None or name not in self.table:
                continue
            rows = self.table[name]
            goals[i] = rows[min(int(targets.draws[start + i] * len(rows)), len(rows) - 1)]
            has[i] = True
        return goals, has

    def save(self, path: str | Path) -> None:
        import io

        from aimc.core.io import atomic_write_bytes

        buf = io.BytesIO()
        names = list(self.table)
        np.savez(buf, names=np.asarray(names), **{f"n{i}": self.table[k] for i, k in enumerate(names)})
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> TextGoalTable:
        try:
            with np.load(path, allow_pickle=False) as z:
                names = [str(x) for x in z["names"]]
                return cls({k: z[f"n{i}"] for i, k in enumerate(names)})
        except (OSError, KeyError, ValueError) as e:
            raise ConfigError(f"{path} is not a text goal table ({e}); delete it to rebuild") from None
