"""Tune every method with the same budget on the protocol's training folds; write OUT/tuned.yaml.

Each method gets N trials of a seeded TPE search over the same shared settings (learning rate, weight decay,
epochs, batch size) plus its own knobs (head dropout; FiLM/DAFT conditioner scale and location; HyperFusion's
embedding size and hyperized layer). A trial trains on the training rows and is scored on the validation rows of
the protocol's folds; the test partition is never read. The Optuna study lives in OUT/study.sqlite3: rerunning
resumes, and a different --trials, search space or setting is refused. OUT/tuned.yaml trains each method at its
best model and training settings, and its report states the tuning. With --executor ray each method's study is
one Ray task: the members first, then every method warm-started from them side by side (the same trials).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a run YAML, or a preset name (see `hyperfusion presets`)")
    parser.add_argument(
        "--trials", type=int, required=True, help="trials per method (the same for every method)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="tuning directory (created; reused to resume)"
    )
    parser.add_argument(
        "--executor", choices=["local", "ray"], help="where the methods' studies run (default: the config's)"
    )
    parser.add_argument("--address", help="ray: a running cluster's address")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.config import load_config
    from hyperfusion.run.simulated import ensure_simulated_cohort
    from hyperfusion.tune import tune

    config = load_config(args.config)
    if args.address is not None:
        config = dataclasses.replace(
            config, protocol=dataclasses.replace(config.protocol, address=args.address)
        )
    config = ensure_simulated_cohort(config, args.out)
    tune(config, args.out, args.trials, executor=args.executor)
    print(f"tuned config: {args.out / 'tuned.yaml'}  scores: {args.out / 'tuning.json'}")
    return 0
