"""Atomic writes: a reader sees the old file or the complete new one; an interrupted write leaves no trace."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.atomic import (
    WriteError,
    remove_temporaries,
    save_npy_atomic,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)
from tests.faults import fault


def test_writers_create_folders_and_replace_whole_files(tmp_path):
    path = tmp_path / "deep" / "er" / "f.txt"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    save_npy_atomic(tmp_path / "a.npy", np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy", mmap_mode="r"), np.arange(6).reshape(2, 3))


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.csv"
    write_text_atomic(path, "finished\n")

    def crash(handle):
        handle.write("half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, crash)
    assert path.read_text() == "finished\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


@fault(
    "run directory",
    "results written on a shared server",
    "files readable as the umask allows (0644 under umask 022), not private 0600",
)
def test_atomic_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "shared.txt", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = write_text_atomic(tmp_path / "private.txt", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


@fault(
    "run directory",
    "the disk fills up while a result is written",
    "exit status 2 naming the file that was being written and what to do; the old file is kept (was an internal "
    "error naming no file)",
)
def test_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    import errno
    import os

    from hyperfusion.cli import main

    path = tmp_path / "results.csv"
    write_text_atomic(path, "finished\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("hyperfusion.atomic.os.fsync", full)
    with pytest.raises(WriteError, match=rf"cannot write {path}: No space left on device; free some space"):
        write_text_atomic(path, "new\n")
    assert path.read_text() == "finished\n" and [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    out = tmp_path / "cohort"
    assert (
        main(["simulate", "ad", "--n", "3", "--voxel-size", "8", "--template", "phantom", "--out", str(out)])
        == 2
    )
    error = capsys.readouterr().err
    assert "error: cannot write" in error and str(out) in error and ".tmp" not in error


@fault(
    "run directory",
    "a run directory (or one of its folders) owned by another user",
    "one-line error naming the file to write and the folder's owner, never a temporary file's name",
)
def test_a_folder_of_another_user_names_the_file_and_owner(tmp_path, monkeypatch):
    import errno
    import os
    import pwd
    import tempfile

    def refused(*args, dir=None, **kwargs):
        name = os.path.join(dir, ".results.csv.x1y2z3.tmp")
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid + 1)  # someone else's folder
    owner = pwd.getpwuid(os.stat(tmp_path).st_uid).pw_name
    with pytest.raises(WriteError) as raised:
        write_text_atomic(tmp_path / "results.csv", "x")
    message = str(raised.value)
    assert message.startswith(f"cannot write {tmp_path / 'results.csv'}: Permission denied")
    assert f"the folder {tmp_path} belongs to {owner}" in message and ".tmp" not in message


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    left = [tmp_path / ".report.md.a1b2c3.tmp", tmp_path / "sub" / ".r.json.d4e5f6.tmp"]
    for path in left:
        path.write_text("partial")
    keep = [tmp_path / "notes.tmp", tmp_path / "report.md"]
    for path in keep:
        path.write_text("mine")
    assert sorted(remove_temporaries([tmp_path])) == sorted(left)
    assert all(p.exists() for p in keep)
