"""Forward+backward time of each exact hyper-layer form against the plain layer and the naive per-sample loop.

Shapes are the paper's: the AD block-4 shortcut (1×1×1, stride 2, 128→256 channels on an 8×12×8 input, E = 8, batch
8 and 32) and the four brain-age linears (39,424→16→32→64→1, E = 1, batch 64). Each case times the whole hyper
layer — generator heads included, gradients w.r.t. the input, the embedding and every head parameter — for:

* ``plain``: the ordinary shared-weight ``nn.Conv3d`` / ``nn.Linear`` (the floor: no hypernetwork);
* ``loop``: generate every sample's weights, then one ``F.conv3d`` / ``F.linear`` per sample (the reference's way);
* ``factorized``, ``grouped``, ``bmm``: the batched forms of :mod:`hyperfusion.nn.hyper`; ``auto`` marks the one
  the layer picks by default.

Timing: methods run round-robin (a block of ≈20 ms per method per round) and the median block is reported, so a
stall of this shared 2-vCPU VM does not land on one method only. Usage::

    python benchmarks/hyper_layers.py                       # CPU, fp32 and bf16
    python benchmarks/hyper_layers.py --device cuda         # GPU
    python benchmarks/hyper_layers.py --quick               # small sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hyperfusion.nn import HyperConv3d, HyperLayer, HyperLinear


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    make_plain: Callable[[], nn.Module]
    make_hyper: Callable[[str], HyperLayer]
    input_shape: tuple[int, ...]  # without the batch
    embedding_dim: int


def shortcut_case(batch: int, spatial: tuple[int, int, int]) -> Case:
    size = "×".join(map(str, spatial))
    return Case(
        name=f"AD block-4 shortcut 1×1×1 s2 128→256, in {size}",
        batch=batch,
        make_plain=lambda: nn.Conv3d(128, 256, 1, stride=2),
        make_hyper=lambda method: HyperConv3d(128, 256, 1, 8, stride=2, method=method),
        input_shape=(128, *spatial),
        embedding_dim=8,
    )


def linear_case(n_in: int, n_out: int, batch: int) -> Case:
    return Case(
        name=f"brain-age linear {n_in:,}→{n_out}",
        batch=batch,
        make_plain=lambda: nn.Linear(n_in, n_out),
        make_hyper=lambda method: HyperLinear(n_in, n_out, 1, method=method),
        input_shape=(n_in,),
        embedding_dim=1,
    )


def paper_cases(quick: bool) -> list[Case]:
    if quick:
        return [shortcut_case(8, (8, 12, 8)), linear_case(4096, 16, 16), linear_case(16, 32, 16)]
    return [
        shortcut_case(8, (8, 12, 8)),
        shortcut_case(32, (8, 12, 8)),
        linear_case(39_424, 16, 64),
        linear_case(16, 32, 64),
        linear_case(32, 64, 64),
        linear_case(64, 1, 64),
    ]


def loop_forward(layer: HyperLayer, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """The naive form: generate each sample's parameters, apply the plain op sample by sample."""
    outputs = []
    for x_b, e_b in zip(x.unbind(0), embedding.unbind(0)):
        weight, bias = layer.generate(e_b[None])
        bias_b = None if bias is None else bias[0]
        if isinstance(layer, HyperConv3d):
            outputs.append(
                F.conv3d(x_b[None], weight[0], bias_b, layer.stride, layer.padding, layer.dilation)
            )
        else:
            outputs.append(F.linear(x_b[None], weight[0], bias_b))
    return torch.cat(outputs)


def methods_for(case: Case) -> list[str]:
    if isinstance(case.make_hyper("auto"), HyperConv3d):
        return ["plain", "loop", "bmm", "grouped", "factorized"]
    return ["plain", "loop", "factorized", "bmm"]


def make_step(case: Case, method: str, device: torch.device, bf16: bool) -> Callable[[], None]:
    """One forward+backward of the whole layer (heads included) on fresh-looking but fixed inputs."""
    torch.manual_seed(0)
    x = torch.randn(case.batch, *case.input_shape, device=device, requires_grad=True)
    embedding = torch.randn(case.batch, case.embedding_dim, device=device, requires_grad=True)
    if method == "plain":
        module = case.make_plain().to(device)

        def forward() -> torch.Tensor:
            return module(x)
    else:
        layer = case.make_hyper("auto" if method == "loop" else method).to(device)

        def forward() -> torch.Tensor:
            return loop_forward(layer, x, embedding) if method == "loop" else layer(x, embedding)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward()
        out.float().sum().backward()

    return step


def check_exactness(device: torch.device) -> float:
    """Largest relative error of every batched form against the loop (float64, forward and all gradients)."""
    worst = 0.0
    configs = [
        lambda m: HyperConv3d(6, 5, 1, 4, stride=2, method=m),
        lambda m: HyperConv3d(3, 4, 3, 4, stride=2, padding=1, method=m),
        lambda m: HyperConv3d(3, 4, (3, 1, 2), 4, padding=(1, 0, 2), dilation=(2, 1, 1), method=m),
        lambda m: HyperLinear(300, 16, 1, method=m),
        lambda m: HyperLinear(33, 7, 8, method=m),
    ]
    for make in configs:
        is_conv = isinstance(make("auto"), HyperConv3d)
        pointwise = is_conv and make("auto").method == "bmm"
        methods = (
            (["factorized", "grouped"] + (["bmm"] if pointwise else [])) if is_conv else ["factorized", "bmm"]
        )
        for method in methods:
            torch.manual_seed(0)
            layer = make(method).to(device=device, dtype=torch.float64)
            with torch.no_grad():
                for parameter in layer.parameters():
                    parameter.normal_(0, 0.3)
            shape = (3, layer.in_channels, 7, 6, 5) if is_conv else (3, layer.in_features)
            x = torch.randn(*shape, device=device, dtype=torch.float64, requires_grad=True)
            e = torch.randn(3, layer.embedding_dim, device=device, dtype=torch.float64, requires_grad=True)
            results = []
            for use_loop in (False, True):
                out = loop_forward(layer, x, e) if use_loop else layer(x, e)
                grads = torch.autograd.grad(out.square().sum(), [x, e, *layer.parameters()])
                results.append([out.detach(), *grads])
            for got, want in zip(*results, strict=True):
                worst = max(worst, float((got - want).abs().max() / want.abs().max().clamp_min(1e-30)))
    return worst


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(
    steps: dict[str, Callable[[], None]], device: torch.device, *, rounds: int, block_s: float
) -> dict[str, float]:
    """Median seconds per call of each step, measured in alternating blocks."""
    calls_per_block = {}
    for name, step in steps.items():  # warm-up, and how many calls fill one block
        step()
        synchronise(device)
        start = time.perf_counter()
        step()
        synchronise(device)
        calls_per_block[name] = max(1, int(block_s / max(time.perf_counter() - start, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            synchronise(device)
            start = time.perf_counter()
            for _ in range(calls_per_block[name]):
                step()
            synchronise(device)
            samples[name].append((time.perf_counter() - start) / calls_per_block[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )


def run(device: torch.device, precisions: list[str], quick: bool, rounds: int) -> list[dict]:
    rows = []
    for case in paper_cases(quick):
        auto = case.make_hyper("auto").method
        for precision in precisions:
            bf16 = precision == "bf16"
            steps = {m: make_step(case, m, device, bf16) for m in methods_for(case)}
            times = time_round_robin(steps, device, rounds=rounds, block_s=0.02)
            for method, seconds in times.items():
                rows.append(
                    {
                        "layer": case.name,
                        "batch": case.batch,
                        "precision": precision,
                        "method": method + (" (auto)" if method == auto else ""),
                        "ms": seconds * 1e3,
                        "x_plain": seconds / times["plain"],
                        "loop_speedup": times["loop"] / seconds,
                    }
                )
            summary = ", ".join(f"{m} {t * 1e3:.2f}" for m, t in times.items())
            print(f"{case.name} B={case.batch} {precision}: {summary} ms", flush=True)
    return rows


def markdown(rows: list[dict], machine: str) -> str:
    lines = [
        f"Machine: {machine}. Forward+backward of the whole layer (heads included), median ms.",
        "",
        "| layer | B | precision | method | ms | × plain | speed-up over loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['batch']} | {r['precision']} | {r['method']} | {r['ms']:.3g} | "
            f"{r['x_plain']:.2f} | {r['loop_speedup']:.1f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke run)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timing rounds per method (default 15, quick 3)"
    )
    parser.add_argument(
        "--check", action="store_true", help="first check every form against the loop (float64)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the table (.md) and rows (.json) here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.check:
        worst = check_exactness(device)
        print(f"exactness on {device}: worst relative error vs the per-sample loop {worst:.2e}", flush=True)
        if worst > 1e-10:
            raise SystemExit("a batched form disagrees with the per-sample loop")
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    rows = run(device, precisions, args.quick, args.rounds or (3 if args.quick else 15))
    table = markdown(rows, machine_description(device))
    print("\n" + table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"hyper_layers_{device.type}"
        (args.out / f"{stem}.md").write_text(table + "\n")
        (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
