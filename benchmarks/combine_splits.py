"""Combine a dose-response study's splits measured in separate invocations (whose run directories are gone).

`benchmarks/run_headroom.py --split-seeds` pools a cell's splits exactly, by resampling each split's test
subjects, but it needs every split's predictions in one run directory. When the splits were measured in separate
studies and only their JSON results and oracle tables are kept, this script combines them:

* a paired difference (reference − method): the mean over splits, an interval over test subjects from the
  per-split bootstrap intervals (each read as ±1.96 SE; splits resampled independently, as the exact pooling
  does), and a t-interval over the splits as the unit (which also carries training variance);
* a headroom share from the mean BAs: (mean BA − mean additive) / (mean interaction − mean additive).

    python benchmarks/combine_splits.py --level 1.0 \\
        --splits benchmarks/results/study_cpu_dose/pooled_headroom_1.0.json:0,1 \\
                 benchmarks/results/study_cpu_dose/split2/split2_1.0.json:2 \\
        --oracles benchmarks/results/study_cpu_dose/oracles.csv benchmarks/results/study_cpu_dose/split2/oracles.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

Z = 1.959963984540054  # the 97.5 % normal quantile: a bootstrap 95 % interval is about ±Z standard errors


def combined_difference(differences: list[float], lows: list[float], highs: list[float]) -> dict[str, float]:
    """The mean of per-split differences with an interval over test subjects and one over splits."""
    d = np.asarray(differences, dtype=np.float64)
    se = (np.asarray(highs) - np.asarray(lows)) / (2 * Z)
    mean, k = float(d.mean()), len(d)
    pooled_se = float(np.sqrt((se**2).sum()) / k)
    half = float(stats.t.ppf(0.975, k - 1) * d.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
    return {"difference": mean, "subjects_low": mean - Z * pooled_se, "subjects_high": mean + Z * pooled_se,
            "splits_low": mean - half, "splits_high": mean + half}  # fmt: skip


def pooled_share(bas: list[float], additive: list[float], interaction: list[float]) -> float:
    """A method's share of the headroom from the splits' mean BAs (none where the oracles show no headroom)."""
    a, i = float(np.mean(additive)), float(np.mean(interaction))
    return (float(np.mean(bas)) - a) / (i - a) if i > a else float("nan")  # no headroom, no share


def per_split(paths: list[str]) -> dict[int, dict]:
    """``FILE:SEED[,SEED…]`` → each split's rows and paired differences from run_headroom's JSON."""
    splits = {}
    for spec in paths:
        path, seeds = spec.rsplit(":", 1)
        data = json.loads(Path(path).read_text())["per_split"]
        for seed in (int(s) for s in seeds.split(",")):
            if str(seed) not in data:
                raise ValueError(f"{path}: no split seed {seed} (has {sorted(data)})")
            splits[seed] = data[str(seed)]
    return splits


def combine(level: float, splits: dict[int, dict], oracles: pd.DataFrame, reference: str) -> dict:
    cell = oracles[oracles["cell"] == f"interaction={level}"].set_index("split_seed")
    missing = sorted(set(splits) - set(cell.index))
    if missing:
        raise ValueError(f"oracle tables have no split seed {missing} for interaction={level}")
    seeds = sorted(splits)
    methods = [r["method"] for r in splits[seeds[0]]["rows"]]
    rows = []
    for method in methods:
        bas = [next(r["BA"] for r in splits[s]["rows"] if r["method"] == method) for s in seeds]
        row = {"method": method, "BA_per_split": bas, "BA": float(np.mean(bas)),
               "share": pooled_share(bas, cell.loc[seeds, "additive"], cell.loc[seeds, "interaction"])}  # fmt: skip
        paired = [next((p for p in splits[s]["paired"] if p["method"] == method), None) for s in seeds]
        if method != reference and all(paired):
            row["difference_per_split"] = [p["difference"] for p in paired]
            row |= combined_difference(
                [p["difference"] for p in paired], [p["low"] for p in paired], [p["high"] for p in paired]
            )
        rows.append(row)
    return {"level": level, "split_seeds": seeds, "reference": reference,
            "additive": float(cell.loc[seeds, "additive"].mean()),
            "interaction": float(cell.loc[seeds, "interaction"].mean()), "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--level", type=float, required=True, help="the cell's simulate.interaction")
    parser.add_argument("--splits", nargs="+", required=True, help="run_headroom JSON:SEED[,SEED…]")
    parser.add_argument("--oracles", nargs="+", required=True, type=Path, help="the studies' oracles.csv")
    parser.add_argument("--reference", default="ad-hyperfusion")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    oracles = pd.concat([pd.read_csv(p) for p in args.oracles], ignore_index=True)
    result = combine(args.level, per_split(args.splits), oracles, args.reference)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
