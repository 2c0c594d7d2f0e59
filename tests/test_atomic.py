"""Atomic writes: a reader sees the old file or the complete new one; an interrupted write leaves no trace."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.atomic import save_npy_atomic, write_atomic, write_bytes_atomic, write_text_atomic


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
