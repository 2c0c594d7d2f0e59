"""Run (or resume) a comparison: every method of a config under the paper's protocol, into one run directory.

CONFIG is a YAML file or the name of a preset in configs/ (ad-demo, brain-age-demo, ad-paper, brain-age-paper).
Rerunning with the same --out skips every model already trained.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a run config YAML, or a preset name from configs/")
    parser.add_argument("--out", type=Path, required=True, help="run directory (created; reused to resume)")
    add_overrides(parser)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Command-line values that override the config's training section."""
    group = parser.add_argument_group("overrides")
    group.add_argument("--epochs", type=int, help="training epochs per model")
    group.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    group.add_argument("--precision", choices=["fp32", "bf16"])
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def apply_overrides(config, args: argparse.Namespace):
    changes = {
        key: getattr(args, key)
        for key in ("epochs", "device", "precision")
        if getattr(args, key, None) is not None
    }
    if getattr(args, "no_progress", False):
        changes["progress"] = False
    if not changes:
        return config
    return dataclasses.replace(config, training=dataclasses.replace(config.training, **changes))


def prepare_and_run(config_name: str, out: Path, args: argparse.Namespace):
    """Load the config, simulate its cohort when it asks for one, and run the protocol."""
    from hyperfusion.config import load_config
    from hyperfusion.training.protocol import run_protocol
    from hyperfusion.training.simulated import ensure_simulated_cohort

    config = apply_overrides(load_config(config_name), args)
    config = ensure_simulated_cohort(config, out)
    return run_protocol(config, out)


def run(args: argparse.Namespace) -> int:
    from hyperfusion.training.summary import print_summary

    results = prepare_and_run(args.config, args.out, args)
    print_summary(results, args.out)
    return 0
