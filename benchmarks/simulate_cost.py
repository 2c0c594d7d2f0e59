"""Time and disk per 1000 simulated subjects, measured on a small batch.

    python benchmarks/simulate_cost.py [--template auto] [--n-small 20] [--n-large 4]

Precomputation (template, basis fields, calibration, per-grid channels) is timed separately; per-subject time
and the mean .nii.gz size are scaled to 1000 subjects.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.api import _phantom_mm, output_grid
from hyperfusion.simulate.render import build_renderer


def measure(task: str, voxel: float, region: str, n: int, template: str) -> dict:
    grid = output_grid(voxel, region)
    t0 = time.perf_counter()
    build_renderer(grid, template, phantom_mm=_phantom_mm(voxel))
    prep = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if task == "ad":
            simulate_ad(tmp, n=n, voxel_size=voxel, region=region, template=template, progress=False)
        else:
            simulate_brain_age(tmp, n=n, voxel_size=voxel, template=template, progress=False)
        per = (time.perf_counter() - t0) / n
        images = [p for p in Path(tmp).rglob("*.nii.gz")]
        size = sum(p.stat().st_size for p in images) / len(images)
    return {"task": task, "grid": grid.shape, "voxel": voxel, "n": n, "prep_s": prep, "s_per_subject": per,
            "min_per_1000": per * 1000 / 60, "gb_per_1000": size * 1000 / 1e9}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--template", default="auto", choices=["auto", "icbm09c", "phantom"])
    parser.add_argument("--n-small", type=int, default=20, help="subjects timed at 4 mm")
    parser.add_argument("--n-large", type=int, default=4, help="subjects timed at 1.75 mm and 1 mm")
    args = parser.parse_args()
    runs = [
        ("brain_age", 4.0, "whole", args.n_small),
        ("ad", 4.0, "whole", args.n_small),
        ("brain_age", 1.75, "whole", args.n_large),
        ("ad", 1.0, "box", args.n_large),
    ]
    print("| cohort | grid | voxel | timed | precompute | per subject | per 1000 | disk per 1000 |")
    print("|---|---|---|---|---|---|---|---|")
    for task, voxel, region, n in runs:
        r = measure(task, voxel, region, n, args.template)
        shape = "×".join(map(str, r["grid"]))
        print(f"| {task} | {shape} | {voxel:g} mm | {n} | {r['prep_s']:.1f} s | {r['s_per_subject']:.2f} s "
              f"| {r['min_per_1000']:.1f} min | {r['gb_per_1000']:.3f} GB |")  # fmt: skip


if __name__ == "__main__":
    main()
