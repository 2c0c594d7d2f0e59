"""Tests for hyperfusion.data.batches and `CohortDataset.__getitems__`: a batch read straight into a reused buffer
holds exactly what stacking the items one by one holds (the slow obvious reference), whatever the file layout,
side draw, augmentation or worker count; a buffer is never reused while anything refers to it."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, default_collate

from hyperfusion.data.batches import BufferPool, ItemBatch, ReadThreads, collate_items
from hyperfusion.data.dataset import Augment, CohortDataset, shift_volume


def _save(root: Path, arrays: list[np.ndarray], *, fortran: bool = False) -> list[Path]:
    paths = []
    for i, array in enumerate(arrays):
        path = root / f"{i}.npy"
        np.save(path, np.asfortranarray(array) if fortran else array)
        paths.append(path)
    return paths


def _dataset(images, *, two_sides: bool, train: bool, augment: Augment | None = None) -> CohortDataset:
    n = len(images)
    rng = np.random.default_rng(1)
    return CohortDataset(
        images,
        rng.standard_normal((n, 3)),
        rng.integers(0, 3, n),
        [f"s{i}" for i in range(n)],
        two_sides=two_sides,
        train=train,
        seed=4,
        augment=augment,
    )


def _assert_same(batch: list, reference: list) -> None:
    assert len(batch) == len(reference) == 4
    for got, want in zip(batch[:3], reference[:3]):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert batch[3] == reference[3] and type(batch[3]) is type(reference[3])


CASES = {
    "hippocampus training": dict(two_sides=True, train=True),
    "hippocampus evaluation": dict(two_sides=True, train=False),
    "whole brain": dict(two_sides=False, train=False),
    "whole brain augmented": dict(two_sides=False, train=True, augment=Augment(2, True)),
    "hippocampus augmented": dict(two_sides=True, train=True, augment=Augment(1, True)),
}


@pytest.mark.parametrize("layout", ["npy float32", "npy float64", "npy fortran", "arrays"])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_read_equals_stacked_items(tmp_path: Path, case: str, layout: str) -> None:
    options = CASES[case]
    rng = np.random.default_rng(0)
    shape = (2, 5, 6, 4) if options["two_sides"] else (5, 6, 4)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(7)]
    if layout == "arrays":
        images = arrays
    else:
        dtype = np.float64 if layout == "npy float64" else np.float32
        images = _save(tmp_path, [a.astype(dtype) for a in arrays], fortran=layout == "npy fortran")
    ds = _dataset(images, **options)
    ds.set_epoch(3)
    indices = [5, 0, 3, 3, 6]
    reference = default_collate([ds[i] for i in indices])
    batch = ds.__getitems__(indices)
    _assert_same(collate_items(batch), reference)
    _assert_same(default_collate(batch), reference)  # any DataLoader's collation sees ordinary items


@pytest.mark.parametrize("augment", [None, Augment(1, True)], ids=["plain", "augmented"])
@pytest.mark.parametrize("workers", [0, 2])
def test_loader_with_workers_gives_the_reference_batches(
    tmp_path: Path, workers: int, augment: Augment | None
) -> None:
    rng = np.random.default_rng(2)
    paths = _save(tmp_path, [rng.standard_normal((2, 4, 5, 3)).astype(np.float32) for _ in range(10)])
    ds = _dataset(paths, two_sides=True, train=True, augment=augment)
    order = torch.Generator().manual_seed(0)
    loader = DataLoader(
        ds, batch_size=4, shuffle=True, generator=order, num_workers=workers, collate_fn=collate_items
    )
    seen = []
    for batch in loader:
        indices = [int(subject[1:]) for subject in batch[3]]  # ids are "s<index>"
        _assert_same(batch, default_collate([ds[i] for i in indices]))
        seen += indices
    assert sorted(seen) == list(range(10))


def test_subset_and_default_collation_still_work(tmp_path: Path) -> None:
    paths = _save(tmp_path, [np.full((3, 4, 2), i, np.float32) for i in range(6)])
    ds = _dataset(paths, two_sides=False, train=False)
    (images, *_), *_ = list(DataLoader(Subset(ds, [4, 1, 2]), batch_size=3))
    assert images[:, 0, 0, 0, 0].tolist() == [4.0, 1.0, 2.0]


def test_a_buffer_is_reused_only_when_nothing_holds_it() -> None:
    pool = BufferPool(size=2)
    first = pool.take((2, 3))
    pointer = first.data_ptr()
    assert pool.take((2, 3)).data_ptr() != pointer  # `first` still held
    view = first[1]
    array = first.numpy()
    del first
    assert pool.take((2, 3)).data_ptr() != pointer  # a view and a numpy array over it are still held
    del view
    assert pool.take((2, 3)).data_ptr() != pointer
    del array
    assert pool.take((2, 3)).data_ptr() == pointer  # free again: the pool's oldest buffer is taken first


def test_a_freed_batch_buffer_is_read_into_again(tmp_path: Path) -> None:
    paths = _save(tmp_path, [np.full((3, 4, 2), i, np.float32) for i in range(4)])
    ds = _dataset(paths, two_sides=False, train=False)
    images = collate_items(ds.__getitems__([0, 1]))[0]
    pointer = images.data_ptr()
    held = collate_items(ds.__getitems__([2, 3]))[0]
    assert held.data_ptr() != pointer  # the first batch is still held
    del images
    again = collate_items(ds.__getitems__([1, 0]))[0]
    assert again.data_ptr() == pointer and again[:, 0, 0, 0, 0].tolist() == [1.0, 0.0]
    assert held[:, 0, 0, 0, 0].tolist() == [2.0, 3.0]  # untouched


def test_truncated_file_is_named(tmp_path: Path) -> None:
    (path,) = _save(tmp_path, [np.ones((4, 5, 6), np.float32)])
    path.write_bytes(path.read_bytes()[:-10])
    ds = _dataset([path], two_sides=False, train=False)
    with pytest.raises(ValueError, match=r"0\.npy.*truncated"):
        ds.__getitems__([0])


def test_an_image_of_another_shape_in_a_batch_is_named(tmp_path: Path) -> None:
    paths = _save(tmp_path, [np.ones((4, 5, 6), np.float32), np.ones((4, 5, 7), np.float32)])
    ds = _dataset(paths, two_sides=False, train=False)
    with pytest.raises(ValueError, match=r"item 1 .*1\.npy.*\(4, 5, 7\)"):
        ds.__getitems__([0, 1])


def test_a_one_sided_file_in_a_two_sided_cohort_is_named(tmp_path: Path) -> None:
    paths = _save(tmp_path, [np.ones((4, 5, 6), np.float32)])
    ds = _dataset(paths, two_sides=True, train=True)
    with pytest.raises(ValueError, match=r"item 0 .*expected \[2, D, H, W\]"):
        ds.__getitems__([0])


def test_shift_into_a_used_slot_equals_a_fresh_shift() -> None:
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((5, 6, 4)).astype(np.float32)
    for _ in range(40):
        offsets = rng.integers(-6, 7, size=3)
        slot = rng.standard_normal(volume.shape).astype(np.float32)  # stale contents of a reused buffer
        np.testing.assert_array_equal(shift_volume(volume, offsets, out=slot), shift_volume(volume, offsets))


def test_item_batch_collates_like_its_items() -> None:
    images = torch.arange(6.0).reshape(2, 3)
    tabular, targets = torch.ones(2, 1), torch.tensor([1, 0])
    batch = ItemBatch(
        [(images[i], tabular[i], targets[i], f"s{i}") for i in range(2)], images, tabular, targets
    )
    _assert_same(collate_items(batch), default_collate(list(batch)))


def test_read_threads_raise_the_first_error_and_survive_a_fork() -> None:
    threads = ReadThreads(count=2)
    out = np.zeros(6)

    def put(i: int, value: float) -> None:
        if value < 0:
            raise ValueError(f"item {i} refused")
        out[i] = value

    threads.map(put, range(6), [1.0, 2, 3, 4, 5, 6])
    assert out.tolist() == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="item 2 refused"):
        threads.map(put, range(4), [1.0, 1, -1, 1])
    child = multiprocessing.get_context("fork").Process(target=_sum_in_threads, args=(threads,))
    child.start()  # the child inherits the pool object, not its threads: without a new pool it would hang
    child.join(timeout=30)
    assert child.exitcode == 0


def _sum_in_threads(threads: ReadThreads) -> None:
    out = np.zeros(4)
    threads.map(out.__setitem__, range(4), [1.0, 2, 3, 4])
    os._exit(0 if out.sum() == 10.0 else 1)


def test_npy_headers_are_never_parsed_by_two_threads_at_once(tmp_path, monkeypatch):
    """numpy parses a .npy header with ast.literal_eval; CPython 3.11's AST conversion is not thread-safe
    (gh-106905), so every header read of the data layer (read_layout, load_npy) holds one lock."""
    import ast
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from hyperfusion.data.batches import load_npy, read_layout

    path = tmp_path / "item.npy"
    np.save(path, np.zeros((2, 3, 4), dtype=np.float32))
    inside, overlaps, lock = [0], [0], threading.Lock()
    literal_eval = ast.literal_eval

    def slow_literal_eval(text):  # widens the window two unlocked readers would share
        with lock:
            inside[0] += 1
            overlaps[0] += inside[0] > 1
        time.sleep(0.002)
        try:
            return literal_eval(text)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(ast, "literal_eval", slow_literal_eval)
    with ThreadPoolExecutor(8) as pool:
        layouts = list(pool.map(lambda _: read_layout(path), range(40)))
        arrays = list(pool.map(lambda _: load_npy(path, mmap_mode="r"), range(40)))
    assert all(layout.shape == (2, 3, 4) for layout in layouts)
    assert all(array.shape == (2, 3, 4) for array in arrays)
    assert overlaps[0] == 0
