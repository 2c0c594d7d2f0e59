"""The main job on the built-in simulated cohort: every AD method under the paper's protocol, on the CPU.

Simulates a small AD cohort (600 subjects, interaction 1, 4 mm voxels), trains every method on 2 folds × 2
versions, ensembles, scores, tests for significance and writes report.md with its plots into --out. Rerunning
resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hyperfusion.commands.run import add_overrides, prepare_and_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo-run"), help="run directory (default: demo-run)"
    )
    parser.add_argument("--config", default="ad-demo", help="preset or YAML (default: ad-demo)")
    add_overrides(parser)


def run(args: argparse.Namespace) -> int:
    from hyperfusion.run.summary import print_summary

    results = prepare_and_run(args.config, args.out, args)
    print_summary(results, args.out)
    return 0
