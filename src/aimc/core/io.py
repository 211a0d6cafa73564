"""Atomic file and directory writes: a killed writer must never leave a visible partial artifact."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aimc.core.errors import AimcError, WriteError

TMP_PREFIX = ".tmp-"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""errnos of a write that needs space freed."""
WRITE_ERRNOS = DISK_FULL | {errno.EROFS}
"""errnos only a write raises, so an OSError carrying one is a failed write wherever it comes from (EACCES or
EIO could be a failed read, which must not be reported as an output problem)."""


def write_error(e: OSError, path: str | Path | None) -> WriteError:
    """One line for a failed write: the path, the system's reason and what to do about it.

    A full disk otherwise surfaces as a chain of tracebacks from whichever file happened to be open; the user
    needs only which output could not be written and that freeing space and rerunning resumes the work.
    """
    code = e.errno
    reason = os.strerror(code) if code else (e.strerror or str(e) or type(e).__name__)
    where = Path(path) if path else None
    what = f"cannot write {where}" if where is not None else "a write failed"
    if code in DISK_FULL:
        disk = f"the disk holding {where.parent}" if where is not None else "the output disk"
        todo = f"free space on {disk} (or choose another output directory) and run the command again; finished work is kept"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        todo = "choose a writable output directory and run the command again"
    else:
        todo = "check the disk and run the command again; finished work is kept"
    return WriteError(f"{what}: {reason}; {todo}", code, None if where is None else str(where))


@contextlib.contextmanager
def writes_to(path: str | Path, errnos: frozenset[int] | None = None) -> Iterator[None]:
    """Turn an OSError raised inside the block (any, or only those in `errnos`) into a `WriteError` naming `path`."""
    try:
        yield
    except OSError as e:
        if errnos is not None and e.errno not in errnos:
            raise
        raise write_error(e, path) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    Any OSError (a full disk shows up in write, flush, fsync or close) removes the temp file and becomes one
    `WriteError` naming `path`."""
    path = Path(path)
    with writes_to(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; finished files get normal permissions
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | Path, array: Any) -> None:
    """np.save through a temp file (np.save on a file object never appends '.npy')."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temp dir next to `final`; on success rename it to `final`, on error delete it.

    Readers skip names starting with TMP_PREFIX, so a killed writer leaves nothing visible.
    A write failure inside (disk full, read-only filesystem: `WRITE_ERRNOS`) becomes one `WriteError` naming `final`
    rather than the hidden temp file it happened in.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise AimcError(f"{final} already exists; remove it or choose another output path")
    with writes_to(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent))
    try:
        with writes_to(final, WRITE_ERRNOS):
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            _fsync_dir(tmp)
            if final.exists():
                old = final.with_name(TMP_PREFIX + final.name + ".old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_tmp(directory: str | Path) -> int:
    """Delete leftovers of killed writers (hidden temp entries) in `directory`; returns how many."""
    n = 0
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    for p in directory.iterdir():
        if p.name.startswith(TMP_PREFIX):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):  # best effort: it often runs while another error is raised
                    p.unlink()
            n += 1
    return n


def check_writable_dir(path: str | Path) -> Path:
    """Create `path` if needed and verify we can write there; raise one clear AimcError otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AimcError(f"output path {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise AimcError(f"output directory {path} is not writable ({e.strerror}); choose another --out") from None
    return path


def save_safetensors_atomic(tensors: dict[str, Any], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch.save to bytes, then atomic write."""
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata))
