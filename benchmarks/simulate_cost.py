"""Time and disk per 1000 simulated subjects, the original path against the fast one in the same run.

    python benchmarks/simulate_cost.py [--template auto] [--n-small 20] [--n-large 4] [--workers N] [--json F]

For each cohort size the same subjects are rendered (and encoded as .nii.gz) three ways, one after the other:

* ``old``: the original per-subject path (``tests/simulate/reference.py``: every point flowed, eight channels
  sampled, volumes measured on the whole 2 mm grid), with torch's default threads as it ran before;
* ``old 1 thread``: the same with one torch thread (on a shared 2-core machine the default threads mostly wait);
* ``new``: ``simulate_ad`` / ``simulate_brain_age`` end to end (files written) with ``--workers`` processes
  (default every core) and with one.

Ratios are old / new in the same run, so a machine shared with other jobs slows both; the load average is printed.
Precompute (template, basis fields, calibration, per-grid channels) is timed separately, once per process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference path lives with the tests

from tests.simulate import reference

from hyperfusion.simulate import Nuisance, simulate_ad, simulate_brain_age
from hyperfusion.simulate.ad import make_ad_cohort
from hyperfusion.simulate.api import _phantom_mm, output_grid
from hyperfusion.simulate.brain_age import make_brain_age_cohort
from hyperfusion.simulate.effects import subject_rng
from hyperfusion.simulate.files import nifti_gz_bytes
from hyperfusion.simulate.render import build_renderer
from hyperfusion.simulate.writer import available_cores


def _old(task: str, renderer, n: int, threads: int) -> float:
    """Seconds per subject of the original path (render + .nii.gz bytes), with ``threads`` torch threads."""
    cohort = make_ad_cohort(max(n, 3)) if task == "ad" else make_brain_age_cohort(n)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            image, _ = reference.render(renderer, cohort.effects(i), subject_rng(0, task, i), Nuisance())
            nifti_gz_bytes(image, renderer.grid.affine, compresslevel=6)  # as the original path wrote
        return (time.perf_counter() - t0) / n
    finally:
        torch.set_num_threads(before)


def _new(task: str, voxel: float, region: str, n: int, template: str, workers: int) -> tuple[float, float]:
    """(seconds per subject, mean .nii.gz bytes) of the simulator end to end with ``workers`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(n=n, voxel_size=voxel, template=template, progress=False, workers=workers)
        t0 = time.perf_counter()
        if task == "ad":
            simulate_ad(tmp, region=region, **kw)
        else:
            simulate_brain_age(tmp, **kw)
        per = (time.perf_counter() - t0) / n
        images = list(Path(tmp).rglob("*.nii.gz"))
        return per, sum(p.stat().st_size for p in images) / len(images)


def measure(task: str, voxel: float, region: str, n: int, template: str, workers: int) -> dict:
    grid = output_grid(voxel, region)
    t0 = time.perf_counter()
    renderer = build_renderer(grid, template, phantom_mm=_phantom_mm(voxel))
    prep = time.perf_counter() - t0
    old = _old(task, renderer, n, torch.get_num_threads())
    old_1 = _old(task, renderer, n, 1)
    new_1, size = _new(task, voxel, region, n, template, 1)
    new_w, _ = _new(task, voxel, region, n, template, workers)
    return {"task": task, "grid": list(grid.shape), "voxel": voxel, "region": region, "n": n, "prep_s": prep,
            "old_s": old, "old_1thread_s": old_1, "new_1worker_s": new_1, "new_workers_s": new_w,
            "workers": workers, "gb_per_1000": size * 1000 / 1e9}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--template", default="auto", choices=["auto", "icbm09c", "phantom"])
    parser.add_argument("--n-small", type=int, default=20, help="subjects timed at 4 mm")
    parser.add_argument("--n-large", type=int, default=4, help="subjects timed at 1.75 mm and 1 mm")
    parser.add_argument("--workers", type=int, default=available_cores(), help="processes of the new path")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    runs = [
        ("brain_age", 4.0, "whole", args.n_small),
        ("ad", 4.0, "whole", args.n_small),
        ("brain_age", 1.75, "whole", args.n_large),
        ("ad", 1.0, "box", args.n_large),
    ]
    load = os.getloadavg()
    print(
        f"load average at start {load[0]:.2f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}"
    )
    print("| cohort | grid | voxel | timed | precompute | old | old, 1 thread | new, 1 worker "
          f"| new, {args.workers} workers | old / new | per 1000 (new) | disk per 1000 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for task, voxel, region, n in runs:
        r = measure(task, voxel, region, n, args.template, args.workers)
        rows.append(r)
        shape = "×".join(map(str, r["grid"]))
        print(f"| {task} | {shape} | {voxel:g} mm | {n} | {r['prep_s']:.1f} s | {r['old_s']:.2f} s "
              f"| {r['old_1thread_s']:.2f} s | {r['new_1worker_s']:.2f} s | {r['new_workers_s']:.2f} s "
              f"| {r['old_s'] / r['new_1worker_s']:.1f}× / {r['old_s'] / r['new_workers_s']:.1f}× "
              f"| {r['new_workers_s'] * 1000 / 60:.1f} min | {r['gb_per_1000']:.3f} GB |", flush=True)  # fmt: skip
    load_end = os.getloadavg()
    print(f"load average at end {load_end[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"load_start": load, "load_end": load_end, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
