"""A full disk partway through a run: one `error:` line, exit 2, nothing half-written, no temp left, clean resume.

No root or mount is needed: `DiskFull` makes Python-level writes under one directory fail with ENOSPC once a
byte budget is spent, like a small filesystem would (worker processes are forked, so they inherit it with
their own copy of the budget). A file whose write failed also fails again when closed, as a buffered file
on a full disk does, so the cleanup paths are tested against a second error.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aimc.cli.app import main
from aimc.core.errors import WriteError
from aimc.data import DatasetIndex, Episode
from aimc.embed.base import Embedder

ENOSPC = os.strerror(errno.ENOSPC)


class DiskFull:
    """Writes to files under `root` succeed until `budget` bytes are spent, then raise ENOSPC."""

    def __init__(self, root: Path, budget: float) -> None:
        self.root = str(Path(root).resolve())
        self.budget = budget
        self.used = 0
        self.failures = 0

    def covers(self, path: Any) -> bool:
        return str(Path(path).resolve()).startswith(self.root)

    def spend(self, n: int) -> None:
        if self.used + n > self.budget:
            self.failures += 1
            raise OSError(errno.ENOSPC, ENOSPC)
        self.used += n

    def install(self, monkeypatch: pytest.MonkeyPatch) -> DiskFull:
        real_open, real_fdopen = builtins.open, os.fdopen
        disk = self

        def writing(mode: str) -> bool:
            return any(c in mode for c in "wax+")

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(file, mode, *args, **kwargs)
            ok = isinstance(file, str | os.PathLike) and writing(mode) and disk.covers(file)
            return _Limited(f, disk) if ok else f

        def fake_fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            path = os.readlink(f"/proc/self/fd/{fd}")
            f = real_fdopen(fd, mode, *args, **kwargs)
            return _Limited(f, disk) if writing(mode) and disk.covers(path) else f

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "fdopen", fake_fdopen)
        return self


class _Limited:
    """A file whose writes spend the disk's budget; after a failed write, closing fails too (lost buffer)."""

    def __init__(self, f: Any, disk: DiskFull) -> None:
        self._f, self._disk, self._failed = f, disk, False

    def write(self, data: Any) -> int:
        try:
            self._disk.spend(len(data))
        except OSError:
            self._failed = True
            raise
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
        if self._failed:
            self._failed = False
            raise OSError(errno.ENOSPC, ENOSPC)

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _tmp_entries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".tmp-*")]


def _hashes(root: Path) -> dict[str, str]:
    """Content of every file under `root` (collect_config.json aside: it records --out and --workers)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "collect_config.json"}


def _error_line(err: str, path_prefix: str) -> str:
    """stderr ends with exactly one `error:` line (a progress bar may precede it) naming the path, no traceback."""
    last = err.rstrip("\n").split("\n")[-1]
    assert err.count("error:") == 1 and "Traceback" not in err and err.endswith(last + "\n"), err
    assert last.startswith(f"error: cannot write {path_prefix}") and f": {ENOSPC}; free space on the disk holding" in last, err
    return last


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (tests/conftest.py)."""


# a 16x16 world: generating the default 64x64 one costs seconds per episode on a busy machine
COLLECT = ["collect", "--agent", "random", "--episodes", "4", "--max-steps", "20", "--quiet", "--set", "world_config.area=[16,16]"]


@pytest.fixture(scope="module")
def clean_collection(tmp_path_factory) -> tuple[Path, int]:
    """The uninterrupted collection, and the bytes its process wrote for the config and the first episode."""
    out = tmp_path_factory.mktemp("clean") / "store"
    mp = pytest.MonkeyPatch()
    disk = DiskFull(out.parent, float("inf")).install(mp)
    try:
        assert main([*COLLECT[:4], "1", *COLLECT[5:], "--out", str(out)]) == 0
    finally:
        mp.undo()
    one_episode = disk.used
    assert main([*COLLECT, "--out", str(out)]) == 0
    return out, one_episode


@pytest.mark.parametrize("workers", [1, 2])
def test_collect_out_of_space(clean_collection, tmp_path, monkeypatch, capsys, workers):
    clean, one_episode = clean_collection
    out = tmp_path / "store"
    disk = DiskFull(tmp_path, 1.5 * one_episode).install(monkeypatch)  # room for one episode and a half (per process)
    assert main([*COLLECT, "--workers", str(workers), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    _error_line(captured.err, f"{out}/ep0000")
    if workers == 1:
        assert disk.failures >= 1
    assert not _tmp_entries(out)  # the failed episode and any a stopped worker was writing are gone
    kept = DatasetIndex.scan(out)
    assert 1 <= len(kept) < 4 and not kept.skipped  # every visible episode is complete

    monkeypatch.undo()  # space freed: the same command resumes and finishes, same bytes as never interrupted
    assert main([*COLLECT, "--workers", str(workers), "--out", str(out)]) == 0
    assert f"collected {4 - len(kept)} episode(s) ({len(kept)} already present)" in capsys.readouterr().out
    assert _hashes(out) == _hashes(clean) and not _tmp_entries(out)


class _MeanColour(Embedder):
    """Frame feature = mean colour; a window pools to its mean: a cheap, deterministic 3-d embedder."""

    name = "mean-colour"

    def __init__(self) -> None:
        self.dim = 3

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.zeros(len(texts), 3)

    def encode_frames(self, frames: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(frames), dtype=torch.float32).mean(dim=(1, 2))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=1)


def test_embed_out_of_space(clean_collection, tmp_path, monkeypatch, capsys):
    import shutil

    import aimc.embed.base

    store = tmp_path / "store"
    shutil.copytree(clean_collection[0], store)
    names = sorted(p.name for p in store.iterdir() if p.is_dir())
    monkeypatch.setattr(aimc.embed.base, "make_embedder", lambda name, device=None, **kw: _MeanColour())
    pair = 2 * 128 + 20 * 3 * 2 + 20  # npy headers + float16 (20, 3) + bool (20,)
    mp = pytest.MonkeyPatch()
    DiskFull(store, 1.5 * pair).install(mp)
    code = main(["embed", "--embedder", "x", "--data", str(store), "--quiet"])
    mp.undo()
    assert code == 2
    _error_line(capsys.readouterr().err, f"{store / names[1] / 'embeds_mean-colour.npy'}")
    assert not _tmp_entries(store)
    done = [n for n in names if Episode(store / n).has_embeds("mean-colour")]
    assert done == names[:1]
    assert not list((store / names[1]).glob("embeds_*"))  # no mask without its embeddings

    # a run killed mid-write left a temp file: the next run removes it and embeds the rest
    (store / names[2] / ".tmp-embeds_mean-colour.npy.k1ll3d").write_bytes(b"partial")
    assert main(["embed", "--embedder", "x", "--data", str(store), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("embedded 3 episode(s) (1 already done) of 4")
    assert not _tmp_entries(store)
    emb, mask = Episode(store / names[2]).read_embeds("mean-colour")
    assert emb.shape == (20, 3) and mask.sum() == 5


def _pairs(out: Path) -> None:
    from aimc.prior.train import save_pairs

    lab = np.random.default_rng(0).integers(0, 3, 120)
    save_pairs(out / "pairs.npz", {"text": np.eye(6, dtype=np.float32)[lab], "visual": np.eye(6, dtype=np.float32)[lab + 3],
                                   "label": lab.astype(str)})


def test_checkpoint_out_of_space_resumes_to_the_same_prior(tmp_path, monkeypatch, capsys):
    from safetensors.numpy import load_file

    from aimc.core.rundir import read_metrics

    args = ["train", "prior", "--epochs", "3", "hidden_dim=16", "latent_dim=4", "batch_size=32"]
    ref, out = tmp_path / "ref", tmp_path / "run"
    for d in (ref, out):
        d.mkdir()
        _pairs(d)
    assert main([*args, "--out", str(ref)]) == 0
    state = next((ref / "checkpoints").glob("step_*/train_state.pt")).stat().st_size
    capsys.readouterr()

    DiskFull(out / "checkpoints", 1.5 * state).install(monkeypatch)  # the second checkpoint does not fit
    assert main([*args, "--out", str(out)]) == 2
    _error_line(capsys.readouterr().err, f"{out / 'checkpoints' / 'step_00000002'}")
    assert not _tmp_entries(out)
    assert (out / "checkpoints" / "last").read_text().strip() == "step_00000001"

    monkeypatch.undo()
    (out / "checkpoints" / ".tmp-step_00000009.k1ll3d").mkdir()  # and one a SIGKILL left mid-write
    (out / "checkpoints" / ".tmp-step_00000009.k1ll3d" / "train_state.pt").write_bytes(b"\0" * 1000)
    assert main([*args, "--out", str(out)]) == 0
    assert not _tmp_entries(out)
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    a, b = load_file(str(ref / "prior" / "model.safetensors")), load_file(str(out / "prior" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_policy_checkpoint_out_of_space_keeps_the_previous_one(tmp_path, monkeypatch):
    from aimc.policy import VPTPolicy, get_config
    from aimc.train.checkpoint import latest_checkpoint, save_checkpoint

    policy = VPTPolicy(get_config("test-tiny"))
    opt = torch.optim.AdamW(policy.parameters())
    save_checkpoint(tmp_path, 1, policy, opt, {"step": 1})
    DiskFull(tmp_path / "checkpoints", 1000).install(monkeypatch)
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'checkpoints' / 'step_00000002'}: {ENOSPC}") as e:
        save_checkpoint(tmp_path, 2, policy, opt, {"step": 2})
    assert e.value.errno == errno.ENOSPC and "\n" not in str(e.value)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step_00000001" and not _tmp_entries(tmp_path)


def test_unwrapped_disk_error_is_one_line(tmp_path, monkeypatch, capsys):
    """A write the library does not wrap still ends as one line naming the file, exit 2."""
    import aimc.data.video

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, ENOSPC, str(tmp_path / "v.mp4"))

    monkeypatch.setattr(aimc.data.video, "render_episode_video", full)
    assert main(["video", str(tmp_path), "--out", str(tmp_path / "v.mp4")]) == 2
    _error_line(capsys.readouterr().err, str(tmp_path / "v.mp4"))


def test_error_raised_in_a_dataloader_worker_is_one_line():
    """torch re-raises a worker's exception with the worker's traceback as its message; the CLI keeps the original
    message only (seen for real: a frame cache filling the disk during `aimc train policy`)."""
    from torch.utils.data import DataLoader, Dataset

    from aimc.cli.app import one_line
    from aimc.core.errors import WriteError

    class Full(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise WriteError("cannot write /x/frame_cache/a.npy: No space left on device; free space ...")

    try:
        next(iter(DataLoader(Full(), num_workers=1)))
    except WriteError as e:
        assert "Original Traceback" in str(e)
        assert one_line(e) == "cannot write /x/frame_cache/a.npy: No space left on device; free space ..."
    else:
        raise AssertionError("the worker's error did not reach the main process")
    assert one_line(WriteError("plain")) == "plain"
