"""Atomic file writes: a reader sees either the old file or the complete new one, never a half-written one.

The one implementation every layer uses (data cache, tabular preprocessing, simulator, reports, protocol).

A write that fails (a full disk, a folder owned by another user) raises `WriteError` naming the file that was to
be written — never the temporary file, which the user has never heard of — and what to do. A process killed
mid-write (``kill -9``) leaves its temporary file behind; `remove_temporaries` removes those of a folder whose
only writer is known to be the caller (a run directory under its lock).

Each writer goes to a temporary file in the destination folder, then ``os.replace`` renames it (atomic on
POSIX and Windows when source and destination share a file system). The temporary file is created private (0600)
and given the permissions a plain ``open`` would have (0666 minus the umask) before the rename, so colleagues on a
shared server read results exactly as the umask allows.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where an array is saved: the command line imports this module early
    import numpy as np

_UMASK_LOCK = threading.Lock()
TEMPORARY_SUFFIX = ".tmp"
log = logging.getLogger("hyperfusion")


class WriteError(OSError):
    """A file could not be written; the message names it (not a temporary file) and the cause."""


def cannot_write(path: Path, err: OSError) -> WriteError:
    """The `WriteError` for ``path``: the system's reason, the folder's owner when it is not ours, what to do."""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space (or raise the quota), then rerun the same command: finished work is kept"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = ownership(path.parent)
    else:
        advice = "check the folder, then rerun the same command"
    error = WriteError(f"cannot write {path}: {reason}; {advice}")
    error.errno = err.errno
    return error


def ownership(folder: Path) -> str:
    """Who owns ``folder`` (or its nearest existing parent), when it is not the current user."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        owner = folder.stat().st_uid
    except OSError:
        return "check the folder's permissions"
    if owner == os.geteuid():
        return f"the folder {folder} is yours but not writable (read-only file system or mode?)"
    try:
        import pwd

        name = pwd.getpwuid(owner).pw_name
    except (ImportError, KeyError):
        name = f"uid {owner}"
    return f"the folder {folder} belongs to {name}; use a folder of your own (another --out), or ask them"


def _umask() -> int:
    with _UMASK_LOCK:  # reading the umask means setting it; no other thread of ours does so meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def _temporary_beside(path: Path, mode: str) -> Iterator[IO]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    except OSError as err:
        raise cannot_write(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, WriteError):
            raise
        raise cannot_write(path, err) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | Path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    with _temporary_beside(path, "wb" if binary else "w") as handle:
        write(handle)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda handle: handle.write(data), binary=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda handle: handle.write(text))


def save_npy_atomic(path: str | Path, array: np.ndarray) -> Path:
    """Save ``array`` as ``.npy`` atomically (readable later with ``np.load(path, mmap_mode="r")``)."""
    import numpy as np

    return write_atomic(path, lambda handle: np.save(handle, np.ascontiguousarray(array)), binary=True)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a temporary file of this module (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(TEMPORARY_SUFFIX) and path.name.count(".") >= 3


def remove_temporaries(folders: list[Path], *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files left in ``folders`` (and their subfolders) by writers killed mid-write.

    Only for folders nobody else writes meanwhile (the caller holds their lock): a live writer's temporary file
    would be removed too. Returns what was removed; logs one line when anything was.
    """
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        pattern = f".*{TEMPORARY_SUFFIX}"
        for path in sorted(folder.rglob(pattern) if recursive else folder.glob(pattern)):
            if path.is_file() and is_temporary(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    if removed:
        log.info(
            "removed %d temporary file(s) left by an interrupted write (e.g. %s)", len(removed), removed[0]
        )
    return removed
