"""Training-step time (forward, backward, Adam) of every registered model at the paper's settings.

What a hypernetwork costs a whole network: each HyperFusion model against its imaging-only twin, at the paper's
input size and batch (AD 1×64×96×64, batch 32; brain age 1×90×120×99, batch 64), in fp32 and bf16 autocast, with
and without the channels-last-3D memory format. Usage::

    python benchmarks/model_steps.py --device cuda                 # paper sizes on a GPU
    python benchmarks/model_steps.py --quick                       # CPU smoke run at reduced sizes
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hyperfusion.models import create_model, list_models, model_arguments, model_info


def scaled_spatial(name: str, scale: float) -> list[int]:
    return [max(8, round(s * scale)) for s in model_info(name).input_shape[1:]]


def build(name: str, scale: float) -> torch.nn.Module:
    """The model at paper settings; at a reduced input size where the network's shape depends on it."""
    kwargs = {}
    if scale != 1.0 and "input_shape" in model_arguments(name):
        kwargs["input_shape"] = tuple(scaled_spatial(name, scale))
    return create_model(name, **kwargs)


def make_batch(name: str, batch: int, scale: float, device: torch.device):
    info = model_info(name)
    channels = info.input_shape[0]
    spatial = scaled_spatial(name, scale)
    image = torch.randn(batch, channels, *spatial, device=device)
    tabular = torch.randn(batch, info.n_tabular, device=device)
    if info.task == "classification":
        target = torch.randint(0, 3, (batch,), device=device)
    else:
        target = 60 + 10 * torch.randn(batch, device=device)
    return image, tabular, target


def time_steps(
    name: str,
    device: torch.device,
    *,
    batch: int,
    scale: float,
    precision: str,
    channels_last: bool,
    steps: int,
    warmup: int,
    compile_backend: str | None = None,
) -> float:
    """Median seconds of one training step; ``compile_backend``: the forward through ``torch.compile``."""
    torch.manual_seed(0)
    model = build(name, scale).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    image, tabular, target = make_batch(name, batch, scale, device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last_3d)
    classification = model_info(name).task == "classification"
    forward = torch.compile(model, backend=compile_backend) if compile_backend else model

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = forward(image, tabular)
        out = out.float()
        loss = F.cross_entropy(out, target) if classification else F.mse_loss(out, target)
        loss.backward()
        optimiser.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="CPU-sized run: half-size inputs, batch 4")
    parser.add_argument("--models", nargs="*", default=None, help="registry names (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    scale, steps, warmup = (0.5, 3, 1) if args.quick else (1.0, 20, 5)
    variants = [("fp32", False)] if args.quick else [("fp32", False), ("bf16", False), ("bf16", True)]
    rows = []
    for name in args.models or list_models():
        info = model_info(name)
        batch = 4 if args.quick else (32 if info.task == "classification" else 64)
        for precision, channels_last in variants:
            seconds = time_steps(
                name,
                device,
                batch=batch,
                scale=scale,
                precision=precision,
                channels_last=channels_last,
                steps=steps,
                warmup=warmup,
            )
            row = {
                "model": name,
                "batch": batch,
                "precision": precision,
                "channels_last": channels_last,
                "step_ms": seconds * 1e3,
                "parameters": sum(p.numel() for p in build(name, scale).parameters()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    lines = [
        f"Machine: {machine}, torch {torch.__version__}. Median training step (fwd + bwd + Adam).",
        "",
        "| model | params | B | precision | channels-last | step ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['batch']} | {r['precision']} | "
            f"{'yes' if r['channels_last'] else 'no'} | {r['step_ms']:.1f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"model_steps_{device.type}.md").write_text(table + "\n")
        (args.out / f"model_steps_{device.type}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
