"""hyperfusion.run.lock: one writer per run directory, taken atomically, stale only when proven so.

Other processes are real subprocesses that load the lock module by its file (not the package, whose import pulls
in torch), so a race of several of them costs a second, not minutes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hyperfusion.run.lock as lock_module
from hyperfusion.run.lock import LockError, hold
from tests.faults import fault

LOAD = (
    "import importlib.util, os, sys, time\n"
    f"spec = importlib.util.spec_from_file_location('lock', {lock_module.__file__!r})\n"
    "lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock)\n"
    "from pathlib import Path\n"
)


def _python(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LOAD + code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def _stale(path: Path) -> None:
    path.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "since": "x"}))


def test_held_while_the_block_runs_and_removed_after(tmp_path):
    path = tmp_path / ".lock"
    with hold(path, "RUN") as mine:
        assert json.loads(path.read_text()) == mine and mine["pid"] == os.getpid()
        with (
            pytest.raises(LockError, match=f"RUN is being written by process {os.getpid()}"),
            hold(path, "RUN"),
        ):
            pass
    assert not path.exists() and not list(tmp_path.iterdir())  # no temporary file left either


@fault(
    "run directory",
    "a second process arriving while the first is still writing its lock file (an empty .lock)",
    "exit status 2: the run is being written; the lock is never called stale or deleted (it was: two writers)",
)
def test_a_lock_being_written_is_not_taken_over(tmp_path):
    path = tmp_path / ".lock"
    with open(path, "w") as first:  # a live process that has created .lock and not yet written into it
        fcntl.flock(first.fileno(), fcntl.LOCK_EX)
        with pytest.raises(LockError, match="is being written by another process"), hold(path, "RUN"):
            pass
        assert path.read_text() == ""  # still there, untouched


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_processes_racing_for_a_free_or_stale_lock_get_one_writer(tmp_path, stale):
    path = tmp_path / ".lock"
    if stale:
        _stale(path)
    start = time.time() + 3.0  # all try together, once started
    code = (  # the winner holds the lock until the five others have been refused (or a minute has passed)
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "try:\n"
        "    with lock.hold(Path(sys.argv[1]), 'RUN'):\n"
        "        print('won', flush=True); deadline = time.time() + 60\n"
        "        while len(list(Path(sys.argv[1]).parent.glob('refused-*'))) < 5 and time.time() < deadline:\n"
        "            time.sleep(0.05)\n"
        "except lock.LockError:\n"
        "    (Path(sys.argv[1]).parent / f'refused-{os.getpid()}').touch(); print('refused', flush=True)\n"
    )
    processes = [_python(code, path, start) for _ in range(6)]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in processes)
    assert outcomes == ["refused"] * 5 + ["won"]


def test_a_killed_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    path = tmp_path / ".lock"
    holder = _python(
        "with lock.hold(Path(sys.argv[1]), 'RUN'):\n    print('held', flush=True); time.sleep(60)\n", path
    )
    assert holder.stdout.readline().strip() == "held"
    refused = f"being written by process {holder.pid} on {socket.gethostname()}"
    with pytest.raises(LockError, match=refused), hold(path, "RUN"):
        pass
    holder.kill()  # SIGKILL: its OS lock dies with it; the file stays, naming a dead pid
    holder.wait()
    with hold(path, "RUN") as mine:
        assert json.loads(path.read_text())["pid"] == mine["pid"] == os.getpid()
    assert f"left by process {holder.pid}" in caplog.text and "no longer running" in caplog.text


@fault(
    "run directory",
    "a lock naming a live process of this host that does not hold it (a pid reused after a crash)",
    "exit status 2 naming the process, how to check it (ps -p) and which file to delete if it is not hyperfusion",
)
def test_a_lock_of_a_reused_pid_names_what_to_do(tmp_path):
    path = tmp_path / ".lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "since": "x"}))
        with (
            pytest.raises(LockError, match=rf"ps -p {sleeper.pid}`\), delete {re.escape(str(path))}"),
            hold(path, "RUN"),
        ):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_locks_that_cannot_be_proven_stale_are_kept(tmp_path):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "x"}))
    with pytest.raises(LockError, match=r"on host elsewhere .* cannot be checked"), hold(path, "RUN"):
        pass
    path.write_text("")
    with pytest.raises(LockError, match="names no process"), hold(path, "RUN"):
        pass
    assert path.exists()


def test_temporary_lock_files_of_killed_processes_are_removed(tmp_path):
    path = tmp_path / ".lock"
    dead = tmp_path / ".lock.abc123.new"  # a process killed between writing its details and linking them
    dead.write_text("{}")
    young = tmp_path / ".lock.def456.new"  # perhaps a process about to lock its own: left alone
    young.write_text("{}")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    with hold(path, "RUN"):
        assert not dead.exists() and young.exists()
