"""Look inside a finished run: what its ensemble predicts under changed records, what it uses, what it generates.

Subjects: the run's test subjects of the split seed (default), --subjects (ids of the run's cohort) or --manifest
(a table laid out like the training table, as for predict). Writes into --out: counterfactual.csv/png (every
attribute over a grid of values, and missing), flip_<attribute>.csv/png (regression, two-level attributes),
permutation_importance.csv, integrated_gradients.csv, tabular_attribution.csv/png, images/ (attribution maps as
NIfTI in the crop's world space, and PNG slices), generated/*.npz with generated_spread.csv,
generated_separation.csv and generated.png (hyper models), summary.md and explain.json. See docs/explain.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: hyperfusion.explain.PARTS, repeated so that building the parser imports no torch (a test keeps them equal)
PARTS = ("counterfactual", "tabular", "images", "generated")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a directory written by `hyperfusion run` or `demo`")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--subjects", metavar="IDS", help="comma-separated subject ids of the run's cohort")
    who.add_argument(
        "--manifest", type=Path, metavar="TABLE", help="new subjects: table (CSV/TSV) or manifest YAML"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--method", help="which method's ensemble (default: the run's reference method)")
    parser.add_argument("--split-seed", type=int, help="which split seed's models (default: the first)")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to compute (default: all of {','.join(PARTS)})",
    )
    parser.add_argument(
        "--points", type=int, default=9, help="grid points of a continuous attribute (default 9)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="permutation-importance repeats (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    parser.add_argument("--ig-steps", type=int, default=32, help="integrated-gradient steps (default 32)")
    parser.add_argument(
        "--image-subjects",
        type=int,
        default=4,
        help="subjects whose images are attributed (default 4; 0: none)",
    )
    parser.add_argument(
        "--image-method",
        default="occlusion",
        choices=["occlusion", "integrated-gradients"],
        help="image attribution (default occlusion)",
    )
    parser.add_argument(
        "--image-baseline",
        default="mean",
        choices=["mean", "zero"],
        help="what an image is compared with: the training rows' mean image (default) or zeros",
    )
    parser.add_argument("--patch-mm", type=float, default=8.0, help="occlusion patch size in mm (default 8)")
    parser.add_argument(
        "--permutations", type=int, default=999, help="permutations of the subgroup test (default 999)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables and maps only, no PNGs")


def run(args: argparse.Namespace) -> int:
    from hyperfusion.explain.pipeline import ExplainSettings, explain_run

    settings = ExplainSettings(
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
        points=args.points,
        repeats=args.repeats,
        seed=args.seed,
        ig_steps=args.ig_steps,
        image_subjects=args.image_subjects,
        image_method=args.image_method,
        image_baseline=args.image_baseline,
        patch_mm=args.patch_mm,
        permutations=args.permutations,
        device=args.device,
        plots=not args.no_plots,
    )
    subjects = None if args.subjects is None else [s for s in args.subjects.split(",") if s.strip()]
    explain_run(
        args.run_dir,
        args.out,
        subjects=subjects,
        manifest=args.manifest,
        method=args.method,
        split_seed=args.split_seed,
        settings=settings,
    )
    return 0
