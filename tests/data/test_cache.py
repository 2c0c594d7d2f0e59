"""Tests for hyperfusion.data.cache: keyed by content and spec, memory-mapped, atomic."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.data.cache import ImageCache, cache_key, file_digest
from hyperfusion.data.images import ImageSpec, preprocess_image
from tests.faults import fault

SPEC = ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16))


def test_miss_then_hit_returns_a_read_only_memory_map(tmp_path, head_file) -> None:
    path = head_file()
    cache = ImageCache(tmp_path / "cache")
    first = cache.get(path, SPEC)
    assert isinstance(first, np.memmap) and not first.flags.writeable
    np.testing.assert_array_equal(first, preprocess_image(path, SPEC))
    stored = cache.ensure(path, SPEC)
    mtime = stored.stat().st_mtime_ns
    np.testing.assert_array_equal(cache.get(path, SPEC), first)
    assert stored.stat().st_mtime_ns == mtime  # not recomputed
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_key_follows_content_not_name(tmp_path, head_file) -> None:
    a = head_file("a.nii.gz")
    b = tmp_path / "copy.nii.gz"
    b.write_bytes(a.read_bytes())
    cache = ImageCache(tmp_path / "cache")
    assert cache.path_for(a, SPEC) == cache.path_for(b, SPEC)  # a copied file hits
    c = head_file("c.nii.gz", marker=False)
    assert cache.path_for(a, SPEC) != cache.path_for(c, SPEC)  # other content misses
    assert file_digest(a) == file_digest(b) != file_digest(c)
    assert cache.digest(a) == file_digest(a) and cache.digest(str(c)) == file_digest(c)


def test_key_follows_every_spec_field() -> None:
    digest = "0" * 64
    specs = [
        SPEC,
        ImageSpec.hippocampus(voxel_mm=3.0, shape=(16, 24, 16)),
        ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 18)),
        ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16), left_center_mm=(-25.0, -22.0, -14.0)),
        ImageSpec(**{**SPEC.__dict__, "zscore": False}),
        ImageSpec.whole_brain(voxel_mm=4.0, shape=(16, 24, 16)),
    ]
    keys = {cache_key(digest, spec) for spec in specs}
    assert len(keys) == len(specs)
    assert cache_key(digest, SPEC) == cache_key(digest, ImageSpec.hippocampus(voxel_mm=4, shape=[16, 24, 16]))


def test_edited_file_is_recomputed(tmp_path, head_file) -> None:
    path = head_file()
    cache = ImageCache(tmp_path / "cache")
    before = np.array(cache.get(path, SPEC))
    path.write_bytes(head_file("other.nii.gz", marker=False).read_bytes())
    after = np.array(cache.get(path, SPEC))
    assert not np.array_equal(before, after)


@fault(
    "image cache",
    "a broken or missing image given to the cache",
    "the error names the file and nothing is cached",
)
def test_bad_image_is_not_cached(tmp_path) -> None:
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b broken")
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"broken\.nii\.gz"):
        cache.get(path, SPEC)
    assert not list((tmp_path / "cache").rglob("*.npy"))
    with pytest.raises(FileNotFoundError, match=r"absent\.nii"):
        cache.get(tmp_path / "absent.nii", SPEC)


@fault(
    "images",
    "a truncated or corrupt file in the image cache (a crash mid-write by another tool, a full disk)",
    "a warning naming the cache file; it is rebuilt from the NIfTI",
)
def test_a_corrupt_cache_entry_is_rebuilt(tmp_path, head_file, caplog):
    image, spec = head_file(), SPEC
    cache = ImageCache(tmp_path / "cache")
    good = np.asarray(cache.get(image, spec)).copy()
    path = cache.path_for(image, spec)
    path.write_bytes(path.read_bytes()[:100])
    np.testing.assert_array_equal(cache.get(image, spec), good)
    assert "unreadable or truncated" in caplog.text and str(path) in caplog.text
