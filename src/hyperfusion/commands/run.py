"""Run (or resume, or grow) a comparison: every method of a config under the paper's protocol, in one run directory.

CONFIG is a YAML file or the name of a shipped preset (ad-demo, brain-age-demo, ad-paper, brain-age-paper, ...).
Rerunning with the same --out skips every model already trained; adding versions, split seeds, folds or methods
trains only the new models. Units run in this process (--executor local) or as Ray tasks (--executor ray
[--address HOST:6379]) across cores, GPUs and machines.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a run config YAML, or a preset name (see `hyperfusion presets`)")
    parser.add_argument("--out", type=Path, required=True, help="run directory (created; reused to resume)")
    add_overrides(parser)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Command-line values that override the config's training and protocol sections."""
    group = parser.add_argument_group("overrides")
    group.add_argument("--epochs", type=int, help="training epochs per model")
    group.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    group.add_argument("--precision", choices=["fp32", "bf16"])
    add_tracking(group)
    bars = group.add_mutually_exclusive_group()
    bars.add_argument(
        "--progress", action="store_true", help="progress bars on long steps (default: the config's)"
    )
    bars.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--executor", choices=["local", "ray"], help="where units run (default: the config's)")
    group.add_argument(
        "--address", help="ray: a running cluster's address (default: start one on this machine)"
    )
    group.add_argument(
        "--restart", action="store_true", help="start the run directory over (keeps its image cache)"
    )


def add_tracking(group) -> None:
    """--logger and --tracking-uri (run, demo and study take them)."""
    group.add_argument(
        "--logger",
        choices=["csv", "tensorboard", "mlflow", "none"],
        help="live training curves (training.logger)",
    )
    group.add_argument(
        "--tracking-uri",
        help="MLflow store or server, e.g. http://HOST:5000 (sets --logger mlflow; default: RUN/logs/mlflow.db)",
    )


def tracking_overrides(args: argparse.Namespace) -> dict[str, str]:
    """training.logger and training.tracking_uri from the command line (a tracking URI means MLflow)."""
    values = {}
    if getattr(args, "logger", None) is not None:
        values["logger"] = args.logger
    if getattr(args, "tracking_uri", None) is not None:
        values["logger"] = values.get("logger", "mlflow")
        values["tracking_uri"] = args.tracking_uri
    return values


def apply_overrides(config, args: argparse.Namespace):
    """The config with the command line's training and protocol values, each checked as the YAML's would be."""
    from hyperfusion.config import with_settings

    training = {
        key: getattr(args, key)
        for key in ("epochs", "device", "precision")
        if getattr(args, key, None) is not None
    }
    training.update(tracking_overrides(args))
    if getattr(args, "no_progress", False):
        training["progress"] = False
    if getattr(args, "progress", False):
        training["progress"] = True
    protocol = {
        key: getattr(args, key) for key in ("executor", "address") if getattr(args, key, None) is not None
    }
    return with_settings(with_settings(config, "training", training), "protocol", protocol)


def prepare_and_run(config_name: str, out: Path, args: argparse.Namespace):
    """Load the config, simulate its cohort when it asks for one, and run the protocol."""
    from hyperfusion.config import load_config
    from hyperfusion.run.runner import run_protocol
    from hyperfusion.run.setup import check_config_device
    from hyperfusion.run.simulated import ensure_simulated_cohort

    config = apply_overrides(load_config(config_name), args)
    check_config_device(config)
    config = ensure_simulated_cohort(config, out)
    return run_protocol(config, out, restart=getattr(args, "restart", False))


def run(args: argparse.Namespace) -> int:
    from hyperfusion.run.summary import print_summary

    results = prepare_and_run(args.config, args.out, args)
    print_summary(results, args.out)
    return 0
