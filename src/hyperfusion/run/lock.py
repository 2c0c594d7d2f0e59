"""The run lock: one writer per run directory, taken atomically, and taken over only when proven stale.

A lock file that is created empty and written afterwards lets a second process read the empty file in between,
call it stale, delete it and take the lock: two writers. Here the lock is never seen incomplete or unheld:

1. the holder's details (pid, host, start time) are written to a private temporary file, which the process then
   locks with ``fcntl.flock`` — an OS lock that dies with the process, so a live holder always holds it;
2. the temporary file is hard-linked to ``.lock`` (``os.link`` fails when ``.lock`` exists: no overwrite), so the
   lock appears whole and already held.

A process that finds ``.lock`` taken tries its ``flock``: held means a live writer (refused, naming it). Free means
the writer died — but only if the file still names a process on this host that is gone (a lock of another host
is respected: its pid cannot be checked, and the file system may not share OS locks between hosts). The stale
lock is then replaced by ``os.rename`` of the newcomer's own (already locked) temporary file, while the newcomer
holds the stale file's ``flock``, so two newcomers cannot both take it over. A lock that names a live process
yet is not held (a pid reused after a crash, or a lock written by an older version) is refused with a hint.
On a file system without ``flock`` (some network file systems) liveness rests on the pid check alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hyperfusion.atomic import cannot_write

log = logging.getLogger("hyperfusion")


class LockError(ValueError):
    """The run directory is held by another writer (or its lock cannot be proven stale)."""


@contextlib.contextmanager
def hold(path: Path, what: str) -> Iterator[dict[str, Any]]:
    """Hold the lock file ``path`` (of the run directory ``what``) for the block; yields the holder's details."""
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    handle = _locked_temporary(path, mine)
    try:
        _install(path, handle, mine, what)
        _remove_dead_temporaries(path)
        yield mine
    finally:
        with contextlib.suppress(OSError):
            if _same_file(handle.fileno(), path):
                path.unlink()  # while still holding the flock: a newcomer then finds no file, or a new one
        handle.close()


def _locked_temporary(path: Path, mine: Mapping[str, Any]):
    """A private file beside ``path`` holding ``mine``, locked by this process (what becomes the lock)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".new", dir=path.parent)
    except OSError as err:
        raise cannot_write(path, err) from None
    handle = os.fdopen(fd, "r+")
    try:
        json.dump(dict(mine), handle)
        handle.flush()
        os.fsync(handle.fileno())
        _flock(handle)
    except OSError as err:
        handle.close()
        os.unlink(name)
        raise cannot_write(path, err) from None
    except BaseException:
        handle.close()
        os.unlink(name)
        raise
    handle.temporary = name  # type: ignore[attr-defined]
    return handle


#: A temporary lock file older than this, and held by no process, was left by a process killed while locking.
DEAD_AFTER_S = 60.0


def _remove_dead_temporaries(path: Path) -> None:
    """Remove the temporary lock files of processes killed while taking the lock: old, and held by no process
    (a young one may belong to a process between creating and locking it)."""
    for other in path.parent.glob(f"{path.name}.*.new"):
        try:
            if time.time() - other.stat().st_mtime < DEAD_AFTER_S:
                continue
            with open(other) as handle:
                _flock(handle)
                other.unlink()
        except (BlockingIOError, FileNotFoundError):
            continue  # a live process is taking the lock right now, or it is gone already


def _install(path: Path, handle, mine: Mapping[str, Any], what: str) -> None:
    """Make the locked temporary file the lock: link it in, or take over a proven-stale lock, or refuse."""
    temporary = handle.temporary
    try:
        for _ in range(20):
            try:
                os.link(temporary, path)
                return
            except FileExistsError:
                pass
            if _take_over_if_stale(path, temporary, what):
                return
        raise LockError(
            f"{path}: the lock of {what} keeps changing hands; is another process starting on it?"
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _take_over_if_stale(path: Path, temporary: str, what: str) -> bool:
    """Replace an existing lock whose holder is proven gone; False when the lock vanished (try linking again)."""
    try:
        existing = open(path)  # noqa: SIM115 - held across the takeover
    except FileNotFoundError:
        return False
    with existing:
        try:
            _flock(existing)
        except BlockingIOError:
            holder = _details(existing)
            who = (
                f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"
                if holder
                else "another process (its lock file is still being written)"
            )
            raise LockError(
                f"{what} is being written by {who}; wait for it to finish, or use another --out"
            ) from None
        if not _same_file(existing.fileno(), path):
            return False  # replaced or removed meanwhile: look again
        holder = _details(existing)
        _prove_stale(holder, path, what)
        os.rename(temporary, path)  # atomic: the lock is ours, already locked; the stale file is gone
        log.warning(
            "taking over the lock of %s left by process %s on %s (since %s), which is no longer running",
            what,
            holder.get("pid"),
            holder.get("host"),
            holder.get("since"),
        )
        return True


def _prove_stale(holder: Mapping[str, Any], path: Path, what: str) -> None:
    """Refuse unless ``holder`` names a process of this host that no longer runs."""
    if not holder:
        raise LockError(
            f"{path} names no process (an empty or unreadable lock, perhaps from an older version); if no "
            f"hyperfusion process is writing {what}, delete {path} and rerun"
        )
    if holder.get("host") != socket.gethostname():
        raise LockError(
            f"{what} is locked by process {holder.get('pid')} on host {holder.get('host')} (since "
            f"{holder.get('since')}), which cannot be checked from {socket.gethostname()}; if it no longer runs "
            f"there, delete {path} and rerun"
        )
    if _alive(holder.get("pid")):
        raise LockError(
            f"{what} is locked by process {holder.get('pid')} on this host (since {holder.get('since')}), which is "
            "running but does not hold the lock: its pid may have been reused after a crash. If that process is "
            f"not hyperfusion (check with `ps -p {holder.get('pid')}`), delete {path} and rerun"
        )


def _flock(handle) -> None:
    """An exclusive, non-blocking OS lock on the open file; a file system without ``flock`` is left to the pid check.

    Raises:
        BlockingIOError: another open file holds it.
    """
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:  # ENOLCK, EOPNOTSUPP: some network file systems; liveness then rests on the pid alone
        pass


def _details(handle) -> dict[str, Any]:
    handle.seek(0)
    try:
        details = json.loads(handle.read())
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
