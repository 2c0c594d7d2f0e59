"""torch.compile readiness of every registered model: Dynamo graph breaks, and optionally compiled-vs-eager outputs.

For each model at a small size (the shapes the test suite uses), ``torch._dynamo.explain`` traces one forward pass
in training mode (batch-norm statistics, dropout) and one in eval mode and reports the number of graphs and graph
breaks, with the first break reason if any. ``--backend`` additionally compiles the eval forward with that backend
(``inductor`` is torch.compile's default; ``aot_eager`` skips code generation) and reports the largest difference
from eager and the compile time.

Usage::

    python benchmarks/compile_check.py                          # graph breaks only (seconds per model)
    python benchmarks/compile_check.py --backend aot_eager      # + compiled-vs-eager outputs
    python benchmarks/compile_check.py --backend inductor --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from hyperfusion.models import create_model, list_models, model_arguments, model_info

BATCH = 4


def small_model(name: str, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small instance of a registered model and a batch it accepts."""
    info = model_info(name)
    if info.task == "classification":
        spatial, n_tabular = (16, 24, 16), 5
        wanted: dict[str, object] = {"base_width": 2, "head_hidden": 8, "n_tabular": n_tabular}
    else:
        spatial, n_tabular = (20, 24, 20), 2
        wanted = {
            "base_width": 2,
            "depth": 2,
            "hidden": (6, 5, 4),
            "input_shape": spatial,
            "n_tabular": n_tabular,
        }
    accepted = model_arguments(name)
    torch.manual_seed(0)
    model = create_model(name, **{k: v for k, v in wanted.items() if k in accepted}).to(device)
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(BATCH, 1, *spatial, generator=generator).to(device)
    tabular = torch.randn(BATCH, n_tabular, generator=generator).to(device)
    return model, image, tabular


def explain(model: torch.nn.Module, image: torch.Tensor, tabular: torch.Tensor) -> tuple[int, int, str]:
    """(graphs, graph breaks, first break reason) of one traced forward pass."""
    torch._dynamo.reset()
    result = torch._dynamo.explain(model)(image, tabular)
    reason = str(result.break_reasons[0].reason).splitlines()[0][:80] if result.break_reasons else ""
    return result.graph_count, result.graph_break_count, reason


def compiled_difference(
    model: torch.nn.Module, image: torch.Tensor, tabular: torch.Tensor, backend: str
) -> tuple[float, float]:
    """(largest |compiled − eager| of the eval outputs, seconds to compile and run once)."""
    torch._dynamo.reset()
    model.eval()
    with torch.no_grad():
        expected = model(image, tabular)
        start = time.perf_counter()
        got = torch.compile(model, backend=backend)(image, tabular)
        seconds = time.perf_counter() - start
    return float((got - expected).abs().max()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", help="also compile with this backend (inductor, aot_eager, ...)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="*", help="registered names (default: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    header = "| model | fusion | train: graphs / breaks | eval: graphs / breaks | first break reason |"
    rule = "|---|---|---|---|---|"
    if args.backend:
        header += f" {args.backend}: max abs diff | compile s |"
        rule += "---|---|"
    print(f"torch {torch.__version__}, device {device}, batch {BATCH}\n")
    print(header)
    print(rule)
    total_breaks = 0
    for name in args.models or list_models():
        model, image, tabular = small_model(name, device)
        train = explain(model.train(), image, tabular)
        evaluation = explain(model.eval(), image, tabular)
        total_breaks += train[1] + evaluation[1]
        row = (
            f"| {name} | {model_info(name).fusion} | {train[0]} / {train[1]} | "
            f"{evaluation[0]} / {evaluation[1]} | {train[2] or evaluation[2] or '-'} |"
        )
        if args.backend:
            difference, seconds = compiled_difference(model, image, tabular, args.backend)
            row += f" {difference:.2e} | {seconds:.1f} |"
        print(row, flush=True)
    print(f"\ngraph breaks in total: {total_breaks}")


if __name__ == "__main__":
    main()
