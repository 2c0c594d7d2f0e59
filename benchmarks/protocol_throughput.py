"""Models per hour: the local executor against Ray, and (on a GPU) several units packed on one device.

CPU part (any machine): one fixed small protocol — the demo's AD methods on a simulated phantom cohort at 4 mm,
measured side by side in one invocation: the local executor (units one after another, torch using every core)
against Ray with 2 workers (two units at once, one core each).

GPU part (``--device cuda``): the whole training step of ``ad-hyperfusion`` at the paper's size (batch 32,
1×64×96×64) in eager fp32 against bf16 + channels-last-3D + ``torch.compile`` (goal ≥ 3.5× faster), and 1 / 2 / 4
/ 8 units of a few epochs packed on the one GPU as Ray tasks with fractional ``num_gpus`` (models per hour).

    python benchmarks/protocol_throughput.py                   # CPU: local vs Ray (2 workers)
    python benchmarks/protocol_throughput.py --device cuda     # plus the GPU parts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from hyperfusion.config import config_from_dict
from hyperfusion.run.executors import LocalExecutor, RayExecutor
from hyperfusion.run.runner import run_protocol
from hyperfusion.simulate import simulate_ad


def small_config(
    cohort: Path,
    *,
    device: str,
    epochs: int,
    shape=(16, 24, 16),
    voxel=4.0,
    width=4,
    n_versions=2,
    methods=("ad-imaging", "ad-concat", "ad-hyperfusion"),
):
    return config_from_dict(
        {
            "cohort": str(cohort),
            "image": {"mode": "hippocampus", "voxel_mm": voxel, "shape": list(shape)},
            "methods": list(methods),
            "model": {"base_width": width},
            "protocol": {"split_seeds": [0], "versions": n_versions, "n_partitions": 5, "folds": 2},
            "training": {
                "epochs": epochs,
                "batch_size": 32,
                "lr": 0.001,
                "device": device,
                "progress": False,
                "precision": "bf16" if device == "cuda" else "fp32",
                "channels_last": device == "cuda",
            },
        }
    )


@contextlib.contextmanager
def local_ray(**kwargs):
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def models_per_hour(config, out: Path, executor) -> dict:
    start = time.perf_counter()
    lines: list[str] = []
    run_protocol(config, out, echo=lines.append, executor=executor)
    seconds = time.perf_counter() - start
    units = len(list(out.glob("units/*/*.json")))
    return {"units": units, "seconds": round(seconds, 1), "models_per_hour": round(3600 * units / seconds, 1)}


def cpu_part(work: Path, epochs: int) -> dict:
    cohort = simulate_ad(work / "cohort", n=160, voxel_size=4.0, interaction=2.0, seed=0, template="phantom",
                         progress=False)  # fmt: skip
    config = small_config(cohort, device="cpu", epochs=epochs)
    local = models_per_hour(config, work / "local", LocalExecutor())
    with local_ray(num_cpus=2):  # started before timing: a cluster is up before a run uses it
        ray = models_per_hour(config, work / "ray", RayExecutor(num_cpus=1))
    protocol = "ad-imaging/concat/hyperfusion, 160 subjects at 4 mm, 2 versions × 2 folds"
    return {"protocol": protocol, "epochs": epochs, "local": local, "ray_2_workers": ray}


def _ms_per_step(precision: str, channels_last: bool, compiled: bool) -> float:
    from hyperfusion.models import create_model

    torch.manual_seed(0)
    model = create_model("ad-hyperfusion").cuda()
    image = torch.randn(32, 1, 64, 96, 64, device="cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        image = image.contiguous(memory_format=torch.channels_last_3d)
    tabular = torch.randn(32, 16, device="cuda")
    target = torch.randint(0, 3, (32,), device="cuda")
    forward = torch.compile(model) if compiled else model
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(forward(image, tabular).float(), target)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    return round(1000 * (time.perf_counter() - start) / 20, 2)


def step_speedup() -> dict:
    """ad-hyperfusion at paper size: eager fp32 against bf16 + channels-last + compile (ms per training step)."""
    results = {
        "eager fp32": _ms_per_step("fp32", False, False),
        "bf16 + channels-last": _ms_per_step("bf16", True, False),
        "bf16 + channels-last + compile": _ms_per_step("bf16", True, True),
    }
    results["speedup"] = round(results["eager fp32"] / results["bf16 + channels-last + compile"], 2)
    return results


def packing(work: Path, epochs: int) -> dict:
    """Units at paper crop size packed on one GPU as Ray tasks: models per hour for 1, 2, 4 and 8 at once."""
    cohort = simulate_ad(work / "cohort-gpu", n=160, voxel_size=1.0, interaction=2.0, seed=0, region="box",
                         template="phantom", progress=False)  # fmt: skip
    out = {}
    with local_ray():
        for packed in (1, 2, 4, 8):
            config = small_config(cohort, device="cuda", epochs=epochs, shape=(64, 96, 64), voxel=1.0, width=16,
                                  n_versions=4)  # fmt: skip
            executor = RayExecutor(num_cpus=max(1, (os.cpu_count() or 2) // packed), num_gpus=1.0 / packed)
            out[f"{packed} per GPU"] = models_per_hour(config, work / f"pack{packed}", executor)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(f"benchmarks/results/protocol_throughput_{args.device}.json")
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}  # fmt: skip
    results: dict = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["cpu"] = cpu_part(work, args.epochs)
        print(json.dumps(results["cpu"], indent=1), flush=True)
        if args.device == "cuda":
            results["step_ms"] = step_speedup()
            print(json.dumps(results["step_ms"], indent=1), flush=True)
            results["packing"] = packing(work, args.epochs)
            print(json.dumps(results["packing"], indent=1), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
