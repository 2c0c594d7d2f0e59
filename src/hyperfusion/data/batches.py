"""Batches assembled with one copy per item: each image is read from its ``.npy`` file straight into its slot of a
batch buffer, and that buffer is used again once nothing outside refers to it.

Why: stacking memory-mapped items into a fresh batch (``default_collate``) ran at 5-10 % of this machine's memory-copy
bandwidth. Most of it was page faults: the first touch of each item's new mapping, and of the fresh batch tensor the
stack allocates (a 50 MB batch of AD crops is 12,000 new pages, zeroed by the kernel). ``preadv`` into a buffer
already in use moves the bytes once, from the page cache, at close to the copy limit (benchmarks/loader.py).

Reuse is safe by construction: a buffer is handed out only as a view, and it is taken again only when its storage's
use count shows that no tensor (view, numpy array over it, autograd record) outside the pool still holds it. In a
DataLoader worker the batch crosses to the main process in shared memory, where that count cannot be seen, so
workers allocate a fresh shared buffer per batch, as ``default_collate`` does.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

#: One .npy header parsed at a time in this process. numpy parses a header with ``ast.literal_eval``, and CPython
#: 3.11's AST conversion keeps its recursion depth in one counter shared by all threads (cpython gh-106905): two
#: read threads parsing headers at once made ``ast`` raise "SystemError: AST constructor recursion depth mismatch"
#: in whichever thread parsed next (seen in whole test-suite runs). Headers are tiny; the lock costs nothing.
NPY_HEADER_LOCK = threading.Lock()

#: the most buffers a pool keeps per dataset (a training loop holds at most two batches at a time)
POOL_SIZE = 4


def load_npy(path: str | Path, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load`` of a ``.npy`` file, its header parsed under `NPY_HEADER_LOCK` (see there why)."""
    with NPY_HEADER_LOCK:
        return np.load(path, mmap_mode=mmap_mode)


class NpyLayout:
    """Where a ``.npy`` file's array starts, and its shape, when it can be read as raw little-endian float32 in C
    order; ``None`` from `read_layout` otherwise (the caller then goes through ``np.load``)."""

    __slots__ = ("offset", "shape")

    def __init__(self, offset: int, shape: tuple[int, ...]) -> None:
        self.offset = offset
        self.shape = shape

    @property
    def nbytes(self) -> int:
        return 4 * int(np.prod(self.shape))


def read_layout(path: str | Path) -> NpyLayout | None:
    """The layout of the ``.npy`` file ``path``, or None if it is not a version 1/2 ``.npy`` of float32 in C
    order at a 4-byte aligned offset.

    Raises:
        ValueError: the file is shorter than its header promises (truncated), naming it.
    """
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            return None
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        with NPY_HEADER_LOCK:
            shape, fortran, dtype = read(handle)
        layout = NpyLayout(handle.tell(), tuple(int(s) for s in shape))
    if fortran or dtype != np.dtype("<f4") or layout.offset % 4:
        return None
    size = os.path.getsize(path)
    if size < layout.offset + layout.nbytes:
        raise ValueError(
            f"{path}: {size - layout.offset} bytes where its .npy header promises {layout.nbytes} (file truncated?)"
        )
    return layout


class MappedFiles:
    """Each ``.npy`` file of one process mapped once, so that reading an item is one copy out of the page cache with
    no page faults after the first epoch (a fresh ``np.load`` map per read faults on every page, every time).

    ``torch.from_file`` maps without keeping a descriptor open (``np.load``'s maps keep one each, and a cohort of a
    few thousand files would meet the usual limit of 1,024). Mappings are private and read only; a fork's child
    inherits them. Beyond ``limit`` files (the kernel allows ~65,000 mappings per process) a file is mapped per read.
    """

    def __init__(self, limit: int = 30_000) -> None:
        self.limit = limit
        self._arrays: dict[str, np.ndarray | None] = {}

    def array(self, path: str | Path, check: Callable[[tuple[int, ...]], None]) -> np.ndarray | None:
        """The float32 array of ``path`` over its mapping (``check``-ed on its shape when first mapped), or None
        where the file is not raw float32 (the caller goes through ``np.load``)."""
        key = str(path)
        if key in self._arrays:
            return self._arrays[key]
        layout = read_layout(path)
        array = None
        if layout is not None:
            check(layout.shape)
            words = (layout.offset + layout.nbytes) // 4
            mapped = torch.from_file(key, shared=False, size=words, dtype=torch.float32)
            array = mapped[layout.offset // 4 :].view(layout.shape).numpy()
        if len(self._arrays) < self.limit:
            self._arrays[key] = array
        return array


class BufferPool:
    """Batch buffers of one process, each taken again once only the pool refers to it."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._buffers: list[torch.Tensor] = []

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A float32 tensor of ``shape`` that nothing else uses (contents undefined), as a view the pool can see."""
        if get_worker_info() is not None:  # crosses to the main process: shared memory, never reused here
            storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * 4)
            return torch.empty(0, dtype=torch.float32).set_(storage).view(shape)
        for buffer in self._buffers:
            if buffer.shape == shape and _only_pool_holds(buffer):
                return buffer.view(shape)
        buffer = torch.empty(shape, dtype=torch.float32)
        if len(self._buffers) >= self.size:
            self._buffers.pop(0)  # the oldest buffer is left to whoever still holds it
        self._buffers.append(buffer)
        return buffer.view(shape)


def _only_pool_holds(buffer: torch.Tensor) -> bool:
    """Whether ``buffer``'s storage is referenced by ``buffer`` alone (plus the temporary storage object this call
    makes). False where the count cannot be read, so a buffer is then never reused."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:
        return False
    return use_count(buffer.untyped_storage()._cdata) <= 2


class ReadThreads:
    """A few threads of one process that read a batch's items side by side (``preadv`` releases the GIL): 1.25x
    on this 2-core machine. None in a DataLoader worker (the workers already read side by side) or with one core;
    made again after a fork, whose child inherits the pool object but not its threads."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count if count is not None else min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = -1

    def map(self, function: Callable[..., None], *arguments: Sequence[Any]) -> None:
        """``function`` over ``arguments``, in the threads when there are any; the first error is raised."""
        rows = list(zip(*arguments))
        if self.count < 2 or len(rows) < 2 or get_worker_info() is not None:
            _call_each(function, rows)
            return
        if self._pool is None or self._pid != os.getpid():
            self._pool, self._pid = (
                ThreadPoolExecutor(self.count, thread_name_prefix="hyperfusion-read"),
                os.getpid(),
            )
        # one hand-off per thread, not per item: a future costs ~30 us, a fifth of copying an AD crop
        chunks = [rows[start :: self.count] for start in range(min(self.count, len(rows)))]
        list(self._pool.map(functools.partial(_call_each, function), chunks))


def _call_each(function: Callable[..., None], rows: Sequence[tuple]) -> None:
    for values in rows:
        function(*values)


class ItemBatch(list):
    """The items of one batch, each image a view of one batch tensor: ``default_collate`` stacks them as it would
    any items (a copy), and `collate_items` hands the batch tensor over as it is (no copy)."""

    def __init__(
        self, items: list[tuple], images: torch.Tensor, tabular: torch.Tensor, targets: torch.Tensor
    ):
        super().__init__(items)
        self.images, self.tabular, self.targets = images, tabular, targets

    def collated(self) -> list[Any]:
        """What ``default_collate`` makes of these items: ``[images, tabular, targets, ids]``, ids a tuple."""
        return [self.images, self.tabular, self.targets, tuple(item[3] for item in self)]


def collate_items(batch: Any) -> Any:
    """``default_collate``, except that a batch a dataset assembled itself (`ItemBatch`) is not copied again."""
    if isinstance(batch, ItemBatch):
        return batch.collated()
    return default_collate(batch)
