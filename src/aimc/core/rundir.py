"""Run directories: the one contract every trainer's output directory follows.

Layout::

    <run>/train_config.json        resolved config; reloaded and checked on resume
    <run>/metrics.jsonl            one JSON object per log record, each with a "step"
    <run>/checkpoints/step_<N>/    one resume point (contents are the trainer's), renamed into place complete
    <run>/checkpoints/last         name of the newest complete checkpoint (the `latest` pointer)
    <run>/inputs.json              fingerprints of the files the run starts from (`check_inputs`), where it has any

Why one contract: a run killed at any instant (SIGKILL, preemption) must resume to the same numbers as an
uninterrupted one, and a run resumed with settings that would silently mix two experiments must be refused
with a message that says what differs. Each rule below is the smallest one that makes that true:

* the saved config wins on resume; only the trainer's allow-list of `resumable` fields (budgets, logging
  cadence, worker counts) may differ, anything else raises a ConfigError naming the keys, old and new values;
* a checkpoint is built in a hidden temp dir and renamed into place (`aimc.core.io.atomic_dir`), and the
  pointer is rewritten atomically only after that, so the pointer always names a complete checkpoint;
* log rows are appended; on resume the rows logged after the checkpoint (and a line torn by a kill) are
  dropped, because the resumed run logs them again;
* leftovers of killed writers (`.tmp-*`) are removed on start; finished outputs are never touched, and an
  output a killed `atomic_dir(overwrite=True)` had moved aside is put back;
* a run that starts from files outside it (a fine-tune's start bundle, which is also its KL anchor) records
  their content hashes and refuses to resume once they changed: the config holds only their path, and a path
  whose weights were replaced (a shipped bundle updated in place) would silently resume from another model.

No torch here: what goes inside a checkpoint is the trainer's business.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from aimc.core.config import load_config, save_config, to_dict
from aimc.core.errors import AimcError, CheckpointError, ConfigError
from aimc.core.io import TMP_PREFIX, atomic_dir, atomic_write_text, check_writable_dir, writes_to

C = TypeVar("C")

CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"
CKPT_DIR = "checkpoints"
INPUTS_FILE = "inputs.json"
POINTER = "last"
"""File in `checkpoints/` naming the latest complete checkpoint (kept as `last` so existing runs resume)."""
_STEP_RE = re.compile(r"step_(\d+)")
_PROBE = TMP_PREFIX + "probe."  # check_writable_dir's probe; another process may be creating one right now


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": {}} -> {"a.b": 1}; lists and scalars are leaves, an empty mapping has none."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, new value) for every leaf that differs, sorted by key."""
    old, now = _leaves(saved), _leaves(new)
    missing = object()
    return [(k, old.get(k), now.get(k)) for k in sorted(set(old) | set(now))
            if old.get(k, missing) != now.get(k, missing)]


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, parsed row) pairs of a JSON-lines file; a torn last line (writer killed mid-append) is left out."""
    if not path.is_file():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    rows = []
    for i, ln in enumerate(lines):
        try:
            rows.append((ln, json.loads(ln)))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise AimcError(f"{path}: line {i + 1} is not JSON; the file is corrupt (delete the line to go on)") from None
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (a writer killed mid-append) is ignored."""
    return [row for _, row in _rows(Path(path))]


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run directory's logged rows, in order."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)


class RunDir:
    """One trainer's run directory (see the module docstring for the layout and the rules).

    `resumable`: top-level config fields a resumed run may change (a nested key counts by its top-level
    field). `step_digits`: zero padding of `step_<N>` names, fixed per trainer so names sort by step.
    """

    def __init__(self, path: str | Path, resumable: Iterable[str] = (), config_file: str = CONFIG_FILE,
                 step_digits: int = 8) -> None:
        self.path = Path(path)
        self.resumable = frozenset(resumable)
        self.config_file = config_file
        self.step_digits = step_digits

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoints(self) -> Path:
        return self.path / CKPT_DIR

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    # ------------------------------------------------------------------------------------- config
    def resolve(self, cfg: C) -> C:
        """The saved config with the new values of the resumable fields (or `cfg` for a fresh run).

        Raises ConfigError naming each other changed key with its saved and new value.
        """
        saved_path = self.path / self.config_file
        if not saved_path.is_file():
            return cfg
        saved = load_config(type(cfg), saved_path)
        clash = [c for c in config_changes(to_dict(saved), to_dict(cfg)) if c[0].split(".")[0] not in self.resumable]
        if clash:
            diff = ", ".join(f"{k} (saved {_show(old)}, now {_show(new)})" for k, old, new in clash)
            may = f"only {', '.join(sorted(self.resumable))} may change on resume" if self.resumable else (
                "no setting may change on resume")
            raise ConfigError(
                f"{self.path} holds a run with a different config, which cannot resume: different {diff}; {may}. "
                "Resume with the saved values, or use another output directory (--out) to start a new run"
            )
        names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
        return dataclasses.replace(saved, **{k: getattr(cfg, k) for k in self.resumable if k in names})  # type: ignore[type-var]

    def save_config(self, cfg: Any) -> None:
        save_config(cfg, self.path / self.config_file)

    def start(self, cfg: C, main: bool = True, inputs: dict[str, str | Path] | None = None) -> C:
        """Check the directory is writable, resolve `cfg` against the saved config and hold a resumed run to the
        files it started from (`inputs`, see `check_inputs`); only then the main process removes killed writers'
        leftovers, saves the resolved config and records the inputs' fingerprints, so a refused resume writes
        nothing. Returns the config to train with."""
        check_writable_dir(self.path)
        cfg = self.resolve(cfg)
        prints = self.check_inputs(inputs, main=False) if inputs else {}
        if main:
            self.clean()
            self.save_config(cfg)
            self._record_inputs(prints)
        return cfg

    def check_inputs(self, inputs: dict[str, str | Path], main: bool = True) -> dict[str, str]:
        """Fingerprint the files a run starts from ({name: file}) and hold a resumed run to them.

        The first start saves the fingerprints (the main process writes `inputs.json`); a later start with
        different contents raises a ConfigError naming each changed input. A run from before this file existed
        has its current inputs recorded, as it cannot be checked. Returns the fingerprints."""
        now = {name: file_fingerprint(path) for name, path in inputs.items()}
        path = self.path / INPUTS_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {}
        changed = [name for name in now if name in saved and saved[name] != now[name]]
        if changed:
            files = ", ".join(f"{name} ({inputs[name]})" for name in changed)
            raise ConfigError(
                f"{self.path} cannot resume: {files} changed since this run started (its content differs from the "
                "fingerprint in inputs.json). Restore the original file, or use another output directory (--out) "
                "to start a new run from the current one"
            )
        if main:
            self._record_inputs(now)
        return now

    def _record_inputs(self, prints: dict[str, str]) -> None:
        """Add fingerprints not recorded yet to `inputs.json` (recorded ones were checked equal)."""
        path = self.path / INPUTS_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if any(name not in saved for name in prints):
            atomic_write_text(path, json.dumps({**saved, **prints}, indent=1, sort_keys=True) + "\n")

    def clean(self) -> int:
        """Remove `.tmp-*` leftovers of killed writers here and in checkpoints/; returns how many.

        A finished output that a killed `atomic_dir(overwrite=True)` had already moved aside
        (`.tmp-<name>.old` with no `<name>`) is renamed back instead of deleted.
        """
        n = 0
        for directory in (self.path, self.checkpoints):
            if not directory.is_dir():
                continue
            for p in sorted(directory.iterdir()):
                if not p.name.startswith(TMP_PREFIX) or p.name.startswith(_PROBE):
                    continue
                final = directory / p.name[len(TMP_PREFIX) : -len(".old")] if p.name.endswith(".old") else None
                if final is not None and not final.exists():
                    os.replace(p, final)
                elif p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                n += 1
        return n

    # -------------------------------------------------------------------------------- checkpoints
    def checkpoint_name(self, step: int) -> str:
        return f"step_{step:0{self.step_digits}d}"

    def latest(self) -> Path | None:
        """The checkpoint the pointer names (None for a fresh run)."""
        pointer = self.checkpoints / POINTER
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        path = self.checkpoints / name
        if not name or not path.is_dir():
            raise CheckpointError(f"{pointer} names {name!r}, which does not exist; delete {pointer} to restart the run")
        return path

    def latest_step(self) -> int:
        """The step of the checkpoint the pointer names (0 for a fresh run)."""
        latest = self.latest()
        m = _STEP_RE.fullmatch(latest.name) if latest is not None else None
        return int(m.group(1)) if m else 0

    @contextlib.contextmanager
    def checkpoint(self, step: int, keep: int | None = None) -> Iterator[Path]:
        """Yield a temp dir to fill; on success it becomes `checkpoints/step_<step>`, the pointer names it,
        and all but the newest `keep` checkpoints are deleted (None keeps all). On error nothing changes."""
        name = self.checkpoint_name(step)
        with atomic_dir(self.checkpoints / name, overwrite=True) as tmp:
            yield tmp
        atomic_write_text(self.checkpoints / POINTER, name + "\n")
        if keep is not None:
            self.prune(keep, protect=name)

    def prune(self, keep: int, protect: str | None = None) -> list[str]:
        """Delete all but the `keep` (at least 1) highest-step checkpoints, never `protect`; returns their names."""
        steps = sorted((int(m.group(1)), p) for p in self.checkpoints.iterdir()
                       if p.is_dir() and (m := _STEP_RE.fullmatch(p.name)))
        gone = [p for _, p in steps[: max(0, len(steps) - max(keep, 1))] if p.name != protect]
        for p in gone:
            shutil.rmtree(p, ignore_errors=True)
        return [p.name for p in gone]

    # ------------------------------------------------------------------------------------ metrics
    def log(self, row: dict[str, Any]) -> None:
        """Append one record (must hold "step") to metrics.jsonl (a failed write: one `WriteError` naming it)."""
        with writes_to(self.metrics_path), open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def trim_metrics(self, step: int) -> None:
        """On resume, drop rows logged after checkpoint `step` (they will be logged again) and a torn last line."""
        path = self.metrics_path
        if not path.is_file():
            return
        text = path.read_text()
        kept = "".join(ln + "\n" for ln, row in _rows(path) if row.get("step", 0) <= step)
        if kept != text:
            atomic_write_text(path, kept)


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks: a few milliseconds per MB, so the shipped Crafter
    policy takes tens of milliseconds and a 1 GB VPT-2x checkpoint a few seconds, once per run start."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
