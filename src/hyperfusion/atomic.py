"""Atomic file writes: a reader sees either the old file or the complete new one, never a half-written one.

The one implementation every layer uses (data cache, tabular preprocessing, simulator, reports, protocol).

Each writer goes to a temporary file in the destination folder, then ``os.replace`` renames it (atomic on
POSIX and Windows when source and destination share a file system). The temporary file is created private (0600)
and given the permissions a plain ``open`` would have (0666 minus the umask) before the rename, so colleagues on a
shared server read results exactly as the umask allows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # reading the umask means setting it; no other thread of ours does so meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def _temporary_beside(path: Path, mode: str) -> Iterator[IO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
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
    return write_atomic(path, lambda handle: np.save(handle, np.ascontiguousarray(array)), binary=True)
