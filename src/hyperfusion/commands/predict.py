"""Apply a finished run to new subjects: its saved tabular preprocessing and its fold-model ensemble.

--manifest is a CSV/TSV laid out like the training table (image paths relative to its folder; the target column may be
absent or empty), or a manifest YAML. Writes one row per subject with the ensemble's probabilities or prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a directory written by `hyperfusion run` or `demo`")
    parser.add_argument(
        "--manifest",
        type=Path,
        required=True,
        metavar="TABLE",
        help="new subjects: table (CSV/TSV) or manifest YAML",
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument(
        "--method",
        help="which method's models, or 'all': every method, one table with a method column "
        "(default: the run's reference method)",
    )
    parser.add_argument("--split-seed", type=int, help="which split seed's models (default: the first)")
    parser.add_argument("--version", type=int, help="which version (default: all versions, averaged)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.run.inference import predict_new_subjects

    table = predict_new_subjects(
        args.run_dir,
        args.manifest,
        args.out,
        method=args.method,
        split_seed=args.split_seed,
        version=args.version,
        device=args.device,
    )
    print(f"wrote {len(table)} predictions to {args.out}")
    return 0
