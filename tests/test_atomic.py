"""Atomic writes: a reader sees the old file or the complete new one; an interrupted write leaves no trace."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.atomic import save_npy_atomic, write_atomic, write_bytes_atomic, write_text_atomic
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
