"""Does the data loader keep up? Samples per second from the on-disk image cache into a training batch.

The image cache stores each preprocessed subject as one ``.npy`` file, read back as a memory map. A training item is
one view (AD: one hippocampus side drawn per item from a ``[2, 64, 96, 64]`` file; brain age: the whole
``[90, 120, 99]`` box) plus its tabular row; the loader stacks items into batches. This benchmark writes a cache of
random subjects at those sizes and times ``CohortDataset`` + ``DataLoader`` (the run's own classes) for 0/2/4/8
worker processes, with and without pinned memory and persistent workers, over two epochs after one warm-up epoch
(files in the page cache, as in a real run after the first epoch).

    python benchmarks/loader.py [--subjects 256] [--batch 32] [--out benchmarks/results/loader_cpu.json]

Goal for a GPU machine: ≥ 2,000 AD samples/s (enough to feed compiled bf16 training at ~1 ms per sample).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperfusion.data import CohortDataset

SHAPES = {"ad (2 × 64×96×64, one side per item)": (2, 64, 96, 64), "brain age (90×120×99)": (90, 120, 99)}


def write_cache(root: Path, shape: tuple[int, ...], n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = root / f"{i:05d}.npy"
        np.save(path, rng.standard_normal(shape, dtype=np.float32))
        paths.append(path)
    return paths


def measure(
    paths: list[Path], *, two_sides: bool, batch: int, workers: int, pin: bool, persistent: bool
) -> float:
    n = len(paths)
    dataset = CohortDataset(
        paths,
        np.zeros((n, 16), np.float32),
        np.zeros(n, np.int64),
        [str(i) for i in range(n)],
        two_sides=two_sides,
        train=True,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=persistent and workers > 0,
        drop_last=True,
    )
    collections.deque(loader, maxlen=0)  # warm-up epoch, discarded: page cache, worker start-up
    start = time.perf_counter()
    seen = 0
    for epoch in range(2):
        dataset.set_epoch(epoch + 1)
        for image, *_ in loader:
            seen += image.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="0,2,4,8")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loader_cpu.json"))
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            folder = Path(tmp) / name.split()[0]
            folder.mkdir()
            paths = write_cache(folder, shape, args.subjects)
            two_sides = len(shape) == 4
            for count in workers:
                for pin, persistent in ((False, False), (True, False), (True, True)):
                    if count == 0 and persistent:
                        continue
                    rate = measure(paths, two_sides=two_sides, batch=args.batch, workers=count, pin=pin,
                                   persistent=persistent)  # fmt: skip
                    row = {"data": name, "workers": count, "pin_memory": pin, "persistent": persistent,
                           "samples_per_s": round(rate, 1)}  # fmt: skip
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
                                    "results": rows}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
