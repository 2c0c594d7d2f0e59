"""Run a study: a grid of cohorts and settings (e.g. simulator interaction 0/1/2) × methods × split seeds × versions.

CONFIG is a study YAML (a run configuration plus a ``study: {grid: {dotted.key: [values]}}`` section) or a shipped
study preset (study-cpu, study-cpu-1200, study-cpu-dose, study-gpu, study-binary, study-loss, study-layers,
study-brain-age). Every cell is an ordinary resumable run under OUT/cells/; OUT/summary.md, summary.csv and
summary.png compare the methods per cell with 95 % intervals and paired tests against the reference method.
Rerunning resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hyperfusion.commands.run import add_tracking, tracking_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a study YAML, or a study preset name (see `hyperfusion presets`)")
    parser.add_argument("--out", type=Path, required=True, help="study directory (created; reused to resume)")
    parser.add_argument(
        "--executor", choices=["local", "ray"], help="where units run (default: the config's)"
    )
    parser.add_argument("--address", help="ray: a running cluster's address")
    group = parser.add_argument_group("overrides (every cell; a grid axis over the same key still wins)")
    group.add_argument("--epochs", type=int, help="training epochs per model")
    group.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    group.add_argument("--precision", choices=["fp32", "bf16"])
    add_tracking(group)


def run(args: argparse.Namespace) -> int:
    from hyperfusion.run.executors import make_executor
    from hyperfusion.study import load_study, run_study

    training = {
        k: getattr(args, k) for k in ("epochs", "device", "precision") if getattr(args, k) is not None
    }
    training.update(tracking_overrides(args))
    study = load_study(args.config, training=training)
    executor = None
    if args.executor:
        protocol = study.base.protocol
        executor = make_executor(
            args.executor, address=args.address, num_cpus=protocol.num_cpus, num_gpus=protocol.num_gpus
        )
    run_study(study, args.out, executor=executor)
    print(f"summary: {args.out / 'summary.md'}  figure: {args.out / 'summary.png'}")
    return 0
