"""Same treatment, measured: every fusion method with warm start on and off and conditioner scales 0.01/0.1/1.

On the demo cohort (interaction 2) and on an interaction-0 cohort of the same size, each fusion method is trained
under the demo's protocol (5 partitions, ``--folds`` validation folds, ``--versions`` versions, 10 epochs) with

- ``training.warm_start``: ``tabular`` (every tabular encoder starts from the trained tabular-only model of the same
  fold) or ``none``;
- the conditioner's initial scale: FiLM / DAFT ``init_std`` (std of the generator's last layer) and HyperFusion
  ``bias_std`` (std of the generated bias at initialisation) ∈ {0.01, 0.1, 1}; concatenation and late fusion have
  none.

Per setting it reports the test-ensemble BA (mean ± sd over versions) and both permutation sensitivities, and writes
``benchmarks/results/fairness.csv`` and the markdown table for docs/fairness.md::

    python benchmarks/fairness.py --out runs/fairness            # ~2 h on a 2-core CPU
    # or one process per cohort, one thread each:
    python benchmarks/fairness.py --cohorts "demo (interaction 2)" --threads 1 --results a.csv &
    python benchmarks/fairness.py --cohorts "interaction 0" --threads 1 --results b.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from hyperfusion.config import config_from_dict
from hyperfusion.run.runner import run_protocol
from hyperfusion.run.simulated import ensure_simulated_cohort

SCALES = (0.01, 0.1, 1.0)
SCALED = {"ad-film": "init_std", "ad-daft": "init_std", "ad-hyperfusion": "bias_std"}
UNSCALED = ("ad-concat", "ad-late-fusion")
COHORTS = {"demo (interaction 2)": 2.0, "interaction 0": 0.0}


def base_config(interaction: float, n: int, versions: int, folds: int, warm_start: str) -> dict:
    return {
        "simulate": {"task": "ad", "n": n, "voxel_size": 4.0, "interaction": interaction, "seed": 0},
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 24, 16]},
        "model": {"base_width": 4},
        "protocol": {"split_seeds": [0], "versions": versions, "n_partitions": 5, "folds": folds},
        "training": {
            "epochs": 10,
            "batch_size": 32,
            "lr": 0.001,
            "weight_decay": 0.00001,
            "loss": "weighted_ce",
            "device": "cpu",
            "progress": False,
            "warm_start": warm_start,
        },
    }


def settings(methods: list[str]) -> list[tuple[str, dict, float | None]]:
    """(run name, config additions, scale) for every setting of the grid."""
    out: list[tuple[str, dict, float | None]] = []
    unscaled = [m for m in UNSCALED if m in methods]
    if unscaled:
        out.append(("base", {"methods": ["ad-imaging", "ad-tabular", *unscaled]}, None))
    scaled = [m for m in SCALED if m in methods]
    for scale in SCALES if scaled else ():
        overrides = {m: {SCALED[m]: scale} for m in scaled}
        out.append((f"scale{scale:g}", {"methods": scaled, "model_overrides": overrides}, scale))
    return out


def summarise(results: pd.DataFrame, *, cohort: str, warm: str, scale: float | None) -> pd.DataFrame:
    rows = results[(results["fold"] == "ensemble") & results["metric"].isin(["BA", "tabular_sensitivity",
                                                                              "image_sensitivity"])]  # fmt: skip
    table = rows.pivot_table(
        index="method", columns="metric", values="value", aggfunc=["mean", "std", "count"]
    )
    flat = pd.DataFrame(
        {
            "cohort": cohort,
            "warm_start": warm,
            "scale": scale,
            "runs": table[("count", "BA")],
            "BA": table[("mean", "BA")],
            "BA_sd": table[("std", "BA")],
            "tabular_sensitivity": table[("mean", "tabular_sensitivity")],
            "tabular_sensitivity_sd": table[("std", "tabular_sensitivity")],
            "image_sensitivity": table[("mean", "image_sensitivity")],
        }
    )
    return flat.reset_index()


def markdown(frame: pd.DataFrame) -> str:
    lines = [
        "| cohort | method | warm start | scale | runs | BA | tabular sensitivity | image sensitivity |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples():
        scale = "–" if pd.isna(row.scale) else f"{row.scale:g}"
        lines.append(
            f"| {row.cohort} | {row.method} | {row.warm_start} | {scale} | {row.runs:.0f} | "
            f"{row.BA:.3f} ± {row.BA_sd:.3f} | {row.tabular_sensitivity:.4f} ± {row.tabular_sensitivity_sd:.4f} | "
            f"{row.image_sensitivity:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/fairness"))
    parser.add_argument("--n", type=int, default=240, help="subjects per cohort (the demo's 240)")
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--methods", default="ad-concat,ad-film,ad-daft,ad-hyperfusion,ad-late-fusion")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/fairness.csv"))
    parser.add_argument("--cohorts", default=",".join(COHORTS), help="which cohorts (comma-separated names)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    cohorts = {name: COHORTS[name] for name in args.cohorts.split(",")}
    frames = []
    start = time.perf_counter()
    for cohort, interaction in cohorts.items():
        tag = f"interaction{interaction:g}"
        for warm in ("tabular", "none"):
            for name, additions, scale in settings(methods):
                raw = base_config(interaction, args.n, args.versions, args.folds, warm) | additions
                config = config_from_dict(raw, source=f"fairness {tag} {warm} {name}")
                out = args.out / tag / f"{warm}-{name}"
                cohort_dir = args.out / tag / "cohort-run"  # one simulated cohort per interaction level
                simulated = ensure_simulated_cohort(config, cohort_dir)
                config = dataclasses.replace(config, simulate=None, cohort=simulated.cohort)
                print(
                    f"== {cohort}, warm start {warm}, {name} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
                results = run_protocol(config, out, echo=lambda line: None)
                fused = results[results["method"].isin(methods)]
                frames.append(summarise(fused, cohort=cohort, warm=warm, scale=scale))
                table = pd.concat(frames, ignore_index=True)
                args.results.parent.mkdir(parents=True, exist_ok=True)
                table.to_csv(args.results, index=False)
    print(markdown(pd.concat(frames, ignore_index=True)))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
