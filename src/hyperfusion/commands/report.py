"""Rebuild results.csv, predictions.csv, report.md and the plots of a run directory from its finished models."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a directory written by `hyperfusion run` or `demo`")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.run.runner import report_run
    from hyperfusion.run.summary import print_summary

    results = report_run(args.run_dir)
    print_summary(results, args.run_dir)
    return 0
