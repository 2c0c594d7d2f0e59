"""Does the data loader keep up? Samples per second from the on-disk image cache into a training batch.

The image cache stores each preprocessed subject as one ``.npy`` file, read back as a memory map. A training item is
one view (AD: one hippocampus side drawn per item from a ``[2, 64, 96, 64]`` file; brain age: the whole
``[90, 120, 99]`` box) plus its tabular row; the loader stacks items into batches. This benchmark writes a cache of
random subjects at those sizes and times ``CohortDataset`` + ``DataLoader`` (the run's own classes) for 0/2/4/8
worker processes, with and without pinned memory and persistent workers, over two epochs after one warm-up epoch
(files in the page cache, as in a real run after the first epoch).

The same run measures the machine's memory-copy bandwidth (``np.copyto`` of a 256 MB float32 array, best of
five) and reports each rate as a fraction of the copy limit, the items per second a loader that copies each item
exactly once would reach, and each rate in GB/s.  ``new`` rows copy each image once, from the file's mapping into
its slot of a reused batch buffer (``CohortDataset.__getitems__`` + ``collate_items``); for comparison in the same
run, ``stacked`` rows time the previous path (each item a memory map, stacked into a fresh batch by
``default_collate``) and ``old`` rows the path before issue 21 (each item copied out of the map, then again by the
collation); ``augmented`` rows use the training augmentation (shift 2, mirror) written from the mapping into the
batch slot, ``augmented two copies`` the same through a scratch volume (the augmented path before).

Besides the mean rate over two epochs, each row gives the rate of its fastest batch (0 workers only: with workers
the main process sees prefetched batches): on a shared machine the mean counts the time other processes took the
cores, the fastest batch shows what the path does when it has them, as the copy bandwidth (best of five) does.

    python benchmarks/loader.py [--subjects 256] [--batch 32] [--workers 0,2,4,8] [--scale 1]
                                [--out benchmarks/results/loader_cpu.json]

``--scale 4`` divides every spatial size by 4 (the GPU check's dry run).  Goal for a GPU machine: ≥ 2,000 AD
samples/s (enough to feed compiled bf16 training at ~1 ms per sample).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperfusion.data import CohortDataset, collate_items
from hyperfusion.data.dataset import Augment

SHAPES = {"ad (2 × 64×96×64, one side per item)": (2, 64, 96, 64), "brain age (90×120×99)": (90, 120, 99)}


class StackedItems(CohortDataset):
    """The item path before the batched read: each item a copy-on-write map, stacked by ``default_collate``."""

    __getitems__ = None  # the DataLoader then fetches item by item


class OldItems(StackedItems):
    """The item path before issue 21: the map read-only, every item copied out of it (``np.array``)."""

    def _array(self, index: int) -> np.ndarray:
        return np.load(self.images[index], mmap_mode="r")

    def _item(self, image: np.ndarray, index: int):
        return (torch.from_numpy(np.array(image, dtype=np.float32)), self.tabular[index],
                self._targets[index], self.subject_ids[index])  # fmt: skip


class TwoCopyAugmented(CohortDataset):
    """The augmented batch read before one-copy augmentation: each image copied out of its mapping into a scratch
    volume of the thread, then augmented from there into its slot."""

    def _fill(self, index: int, slot: np.ndarray) -> None:
        side = self.side(index) if self.two_sides and self.train else None
        volume = self._volume(index, side, slot.shape[-3:])
        scratch = self.__dict__.setdefault("_scratch", threading.local())
        if getattr(scratch, "volume", None) is None or scratch.volume.shape != volume.shape:
            scratch.volume = np.empty(volume.shape, np.float32)
        np.copyto(scratch.volume, volume)
        self.augment(scratch.volume, np.random.default_rng([self.seed, self.epoch, index, 1]), out=slot[0])

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_scratch", None)
        return state


def copy_bandwidth(megabytes: int = 256, repeats: int = 5, fresh: bool = False) -> float:
    """Bytes per second ``np.copyto`` moves between two large float32 arrays (best of ``repeats``); ``fresh``:
    into a newly allocated array each time (page faults included, as a batch buffer pays them)."""
    src = np.ones(megabytes * 2**18, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        if fresh:
            np.array(src)
        else:
            np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return src.nbytes / best


def write_cache(root: Path, shape: tuple[int, ...], n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = root / f"{i:05d}.npy"
        np.save(path, rng.standard_normal(shape, dtype=np.float32))
        paths.append(path)
    return paths


def measure(paths: list[Path], **options) -> float:
    """Mean items per second over two epochs after a warm-up epoch: `measure_rates`' first figure (its options)."""
    return measure_rates(paths, **options)[0]


def measure_rates(
    paths: list[Path],
    *,
    two_sides: bool,
    batch: int,
    workers: int,
    pin: bool,
    persistent: bool,
    variant: str = "new",
    augment: Augment | None = None,
) -> tuple[float, float]:
    """(mean items per second over two epochs after a warm-up epoch, items per second of the fastest batch)."""
    n = len(paths)
    kinds = {"old": OldItems, "stacked": StackedItems, "augmented two copies": TwoCopyAugmented}
    dataset = kinds.get(variant, CohortDataset)(
        paths,
        np.zeros((n, 16), np.float32),
        np.zeros(n, np.int64),
        [str(i) for i in range(n)],
        two_sides=two_sides,
        train=True,
        augment=augment,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=persistent and workers > 0,
        drop_last=True,
        collate_fn=collate_items,
    )
    collections.deque(loader, maxlen=0)  # warm-up epoch, discarded: page cache, worker start-up
    start = time.perf_counter()
    seen, fastest = 0, 0.0
    for epoch in range(2):
        dataset.set_epoch(epoch + 1)
        before = time.perf_counter()
        for image, *_ in loader:
            seen += image.shape[0]
            now = time.perf_counter()
            fastest, before = max(fastest, image.shape[0] / (now - before)), now
    return seen / (time.perf_counter() - start), fastest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="0,2,4,8")
    parser.add_argument("--scale", type=int, default=1, help="divide every spatial size by this")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loader_cpu.json"))
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    bandwidth, fresh = copy_bandwidth(), copy_bandwidth(fresh=True)
    print(json.dumps({"copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 2),
                      "copy_into_fresh_memory_gb_per_s": round(fresh / 1e9, 2)}), flush=True)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, full in SHAPES.items():
            shape = full[:-3] + tuple(max(1, s // args.scale) for s in full[-3:])
            folder = Path(tmp) / name.split()[0]
            folder.mkdir()
            paths = write_cache(folder, shape, args.subjects)
            two_sides = len(shape) == 4
            limit = bandwidth / (4 * np.prod(shape[-3:]))  # items/s of a loader copying each item once
            item_bytes = 4 * int(np.prod(shape[-3:]))
            variants = [("new", None), ("stacked", None), ("old", None), ("augmented", Augment(2, True)),
                        ("augmented two copies", Augment(2, True))]  # fmt: skip
            for count in workers:
                for pin, persistent in ((False, False), (True, False), (True, True)):
                    if count == 0 and persistent:
                        continue
                    for variant, augment in variants:
                        if variant != "new" and (pin, persistent) != (True, count > 0):
                            continue  # old and augmented: the configuration a run uses only
                        rate, fastest = measure_rates(paths, two_sides=two_sides, batch=args.batch, workers=count,
                                                      pin=pin, persistent=persistent, variant=variant,
                                                      augment=augment)  # fmt: skip
                        row = {"data": name, "path": variant, "workers": count, "pin_memory": pin,
                               "persistent": persistent, "samples_per_s": round(rate, 1),
                               "gb_per_s": round(rate * item_bytes / 1e9, 2),
                               "copy_limit_per_s": round(limit, 1),
                               "fraction_of_copy_limit": round(rate / limit, 3)}  # fmt: skip
                        if count == 0:
                            row |= {"fastest_batch_samples_per_s": round(fastest, 1),
                                    "fastest_batch_fraction_of_copy_limit": round(fastest / limit, 3)}  # fmt: skip
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "subjects": args.subjects, "batch": args.batch,
                                    "scale": args.scale, "copy_bandwidth_bytes_per_s": bandwidth,
                                    "copy_into_fresh_memory_bytes_per_s": fresh,
                                    "load_average": os.getloadavg(), "results": rows}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
