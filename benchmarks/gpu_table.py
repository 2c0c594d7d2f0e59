"""The GPU figures in one table: step times, models per hour packed through Ray, the loader, and the projection.

    python benchmarks/gpu_table.py --device cuda --out gpu-check    # on a GPU machine (part of gpu_check.sh)
    python benchmarks/gpu_table.py --dry-run --out /tmp/dry          # the same code end to end on the CPU, tiny

Rows:

* per registered model, the median training step (forward, backward, Adam) at the paper's input size and batch in
  eager fp32 and in bf16 autocast + channels-last-3D + ``torch.compile`` (inductor);
* the AD protocol's models per hour with 1, 2, 4 and 8 units packed on one GPU as Ray tasks (``num_gpus`` 1/k),
  units of a few epochs on a simulated cohort at the paper's crop size;
* loader items per second with 16 workers (AD items, pinned memory, persistent workers), and its fraction of the
  memory-copy limit measured in the same run;
* the projected wall time of the paper's 252-model protocol (3 split seeds × 3 versions × 4 folds × 7 methods, 250
  epochs, 1272 training subjects per unit = 2120 × 4/5 × 3/4, batch 32) on one GPU: the measured seconds per
  training step of the best packing, scaled to the protocol's steps, and the time the loader needs for its items;
  the larger of the two.

``--dry-run`` runs every part on the CPU at tiny sizes (two models, 8 mm crops, batch 2, one epoch of one method,
``torch.compile`` with the ``eager`` backend, Ray with fractional CPUs in place of GPUs at 1 and 2 units packed,
2 loader workers): it checks that the script runs, not how fast anything is.  Its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hyperfusion.models import list_models, model_info
from hyperfusion.run.executors import RayExecutor
from hyperfusion.simulate import simulate_ad
from loader import copy_bandwidth, write_cache
from loader import measure as loader_rate
from model_steps import time_steps
from protocol_throughput import local_ray, models_per_hour, small_config

PAPER_UNITS, PAPER_EPOCHS, PAPER_TRAIN, PAPER_BATCH = 252, 250, 1272, 32
PACKING = (1, 2, 4, 8)
DRY_PACKING = (1, 2)  # the dry run checks the packing code path; each level is one Ray protocol run
METHODS, DRY_METHODS = ("ad-imaging", "ad-concat", "ad-hyperfusion"), ("ad-hyperfusion",)
DRY_MODELS = ["ad-hyperfusion", "brainage-hyperfusion"]  # the dry run checks the code path, not every model


def step_rows(device: torch.device, dry: bool, models: list[str]) -> list[dict]:
    """Eager fp32 against compiled bf16 + channels-last, per model (ms per training step)."""
    rows = []
    for name in models:
        classification = model_info(name).task == "classification"
        batch = 2 if dry else (32 if classification else 64)
        scale = (
            (0.25 if classification else 0.45) if dry else 1.0
        )  # the brain-age VGG needs ~40 voxels a side
        common = dict(batch=batch, scale=scale, steps=1 if dry else 20, warmup=1 if dry else 5)
        eager = time_steps(name, device, precision="fp32", channels_last=False, **common)
        compiled = time_steps(name, device, precision="bf16", channels_last=True,
                              compile_backend="eager" if dry else "inductor", **common)  # fmt: skip
        rows.append(
            {
                "model": name,
                "batch": batch,
                "eager_fp32_ms": 1e3 * eager,
                "compiled_bf16_cl_ms": 1e3 * compiled,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def packing_rows(work: Path, dry: bool) -> tuple[list[dict], dict]:
    """Models per hour of the AD protocol with 1, 2, 4 and 8 units packed on one device through Ray."""
    n = 40 if dry else 160
    voxel, shape = (8.0, (8, 12, 8)) if dry else (1.0, (64, 96, 64))
    cohort = simulate_ad(work / "cohort", n=n, voxel_size=voxel, interaction=2.0, seed=0, region="box",
                         template="phantom", progress=False)  # fmt: skip
    epochs = 1 if dry else 3
    rows = []
    cpus = os.cpu_count() or 2
    with local_ray(**({"num_cpus": cpus} if dry else {})):
        for packed in DRY_PACKING if dry else PACKING:
            config = small_config(cohort, device="cpu" if dry else "cuda", epochs=epochs, shape=shape, voxel=voxel,
                                  width=4 if dry else 16, n_versions=1 if dry else 4,
                                  methods=DRY_METHODS if dry else METHODS)  # fmt: skip
            if dry:  # fractional CPUs stand in for the fractional GPU
                executor = RayExecutor(num_cpus=cpus / packed, num_gpus=0.0)
            else:
                executor = RayExecutor(num_cpus=max(1, cpus // packed), num_gpus=1.0 / packed)
            r = models_per_hour(config, work / f"pack{packed}", executor)
            train = (
                math.floor(n * 4 / 5) - math.floor(n * 4 / 5) // 2
            )  # n_partitions 5, folds 2: one fold trains
            steps = r["units"] * epochs * math.ceil(train / 32)
            rows.append({"packed": packed, **r, "epochs": epochs, "s_per_step": r["seconds"] / max(steps, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows, {"subjects": n, "voxel_mm": voxel, "shape": shape, "epochs": epochs}


def loader_row(work: Path, dry: bool) -> dict:
    """AD loader items per second with 16 workers (2 in the dry run) and the copy limit of the same machine."""
    shape = (2, 8, 12, 8) if dry else (2, 64, 96, 64)
    workers = 2 if dry else 16
    folder = work / "loader"
    folder.mkdir()
    paths = write_cache(folder, shape, 32 if dry else 256)
    rate = loader_rate(paths, two_sides=True, batch=8 if dry else 32, workers=workers, pin=not dry,
                       persistent=True)  # fmt: skip
    limit = copy_bandwidth(16 if dry else 256) / (4 * math.prod(shape[1:]))
    row = {"workers": workers, "items_per_s": rate, "copy_limit_per_s": limit, "fraction": rate / limit}
    print(json.dumps(row), flush=True)
    return row


def projection(packing: list[dict], loader: dict) -> dict:
    """Hours of the paper's 252-model protocol on one device from the measured figures."""
    best = min(packing, key=lambda r: r["s_per_step"])
    steps = PAPER_UNITS * PAPER_EPOCHS * math.ceil(PAPER_TRAIN / PAPER_BATCH)
    train_h = steps * best["s_per_step"] / 3600
    loader_h = PAPER_UNITS * PAPER_EPOCHS * PAPER_TRAIN / loader["items_per_s"] / 3600
    return {"best_packing": best["packed"], "training_h": train_h, "loader_h": loader_h,
            "projected_h": max(train_h, loader_h)}  # fmt: skip


def table(steps: list[dict], packing: list[dict], loader: dict, proj: dict, machine: str, dry: bool) -> str:
    note = " DRY RUN: CPU, tiny sizes, not GPU figures." if dry else ""
    lines = [
        f"Machine: {machine}, torch {torch.__version__}.{note}",
        "",
        "| part | setting | figure |",
        "|---|---|---|",
    ]
    for r in steps:
        speedup = r["eager_fp32_ms"] / r["compiled_bf16_cl_ms"]
        lines.append(f"| step, {r['model']} (batch {r['batch']}) | eager fp32 / compiled bf16 + channels-last | "
                     f"{r['eager_fp32_ms']:.1f} ms / {r['compiled_bf16_cl_ms']:.1f} ms ({speedup:.2f}×) |")  # fmt: skip
    for r in packing:
        lines.append(f"| AD protocol, {r['packed']} per GPU | {r['units']} units × {r['epochs']} epochs "
                     f"| {r['models_per_hour']:.1f} models/h ({1e3 * r['s_per_step']:.1f} ms per step) |")  # fmt: skip
    share = f"{100 * loader['fraction']:.0f} % of the copy limit {loader['copy_limit_per_s']:.0f}/s"
    lines.append(f"| loader, {loader['workers']} workers | AD items, one side | "
                 f"{loader['items_per_s']:.0f} items/s ({share}) |")  # fmt: skip
    lines.append(f"| 252-model protocol | {proj['best_packing']} per GPU, 250 epochs | {proj['projected_h']:.2f} h "
                 f"(training {proj['training_h']:.2f} h, loader {proj['loader_h']:.2f} h) |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the script end to end")
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument(
        "--models", nargs="*", default=None, help="step rows (default: every registered model; dry run: two)"
    )
    args = parser.parse_args()
    models = args.models or (DRY_MODELS if args.dry_run else list_models())
    device = torch.device("cpu" if args.dry_run else args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    start = time.perf_counter()
    steps = step_rows(device, args.dry_run, models)
    seconds = {"steps": time.perf_counter() - start}
    with tempfile.TemporaryDirectory() as tmp:
        packing, protocol = packing_rows(Path(tmp), args.dry_run)
        seconds["packing"] = time.perf_counter() - start - sum(seconds.values())
        loader = loader_row(Path(tmp), args.dry_run)
        seconds["loader"] = time.perf_counter() - start - sum(seconds.values())
    proj = projection(packing, loader)
    text = table(steps, packing, loader, proj, machine, args.dry_run)
    parts = ", ".join(f"{part} {value:.0f} s" for part, value in seconds.items())
    print("\n" + text + f"\n\n{time.perf_counter() - start:.0f} s ({parts})")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "gpu_table_dry_run" if args.dry_run else "gpu_table"
    (args.out / f"{name}.md").write_text(text + "\n")
    (args.out / f"{name}.json").write_text(json.dumps({"machine": machine, "dry_run": args.dry_run, "steps": steps,
                                                       "packing": packing, "packing_protocol": protocol,
                                                       "loader": loader, "projection": proj}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
