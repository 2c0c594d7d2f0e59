"""Each method's share of the interaction headroom in one finished run on a simulated cohort, with intervals.

A study computes headroom shares per cell from run-level BAs (``hyperfusion.study.oracle``). For a single run
(e.g. a held-out cohort run with ``hyperfusion run``) this benchmark refits the additive and interaction oracles
on the split's non-test rows, reads every method's test-set ensemble predictions from ``predictions.csv``, and
bootstraps the share ``(method − additive) / (interaction − additive)`` over the test subjects (all three
resampled together), per version, and the paired BA difference of a reference method to others::

    python benchmarks/run_headroom.py runs/heldout --columns AGE PTEDUCAT APOE4 --out results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from hyperfusion.study import oracle


def split_oracles(
    run: Path, columns: list[str], split_seed: int, test_partition: int, cohort: Path | None = None
) -> pd.DataFrame:
    """The oracles' test-subject predictions for one split of a run (:func:`oracle.oracle_predictions`);
    ``cohort``: the simulated cohort's folder when it is not ``run/cohort`` (a study cell's)."""
    parts = pd.read_csv(run / f"partitions_seed{split_seed}.csv", dtype={"subject_id": str})
    return oracle.oracle_predictions(cohort or run / "cohort", parts, test_partition, continuous=columns)


def read_predictions(run: Path, split_seed: int = 0) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """One split's test-set ensemble predictions, their probability columns and the class names they stand for."""
    predictions = pd.read_csv(run / "predictions.csv", dtype={"subject_id": str, "version": str})
    if "split_seed" in predictions:  # a run with several split seeds: their test subjects differ
        predictions = predictions[predictions["split_seed"] == split_seed]
    columns = [c for c in predictions.columns if c.startswith("p_")]
    return predictions, columns, np.array([c.removeprefix("p_") for c in columns])


def share(truth, predicted, additive, interaction, rows: np.ndarray) -> float:
    """``(method − additive) / (interaction − additive)`` in balanced accuracy on the subjects ``rows``; NaN
    without headroom (the oracles agree, as at interaction 0)."""
    a = balanced_accuracy_score(truth[rows], additive[rows])
    b = balanced_accuracy_score(truth[rows], interaction[rows])
    if b == a:
        return float("nan")
    return (balanced_accuracy_score(truth[rows], predicted[rows]) - a) / (b - a)


def shares(run: Path, oracles: pd.DataFrame, resamples: int, seed: int, split_seed: int = 0) -> list[dict]:
    """Per method and version: test BA, the share of the headroom and its bootstrap 95 % interval."""
    predictions, columns, names = read_predictions(run, split_seed)
    rng = np.random.default_rng(seed)
    additive, interaction = oracles["additive"].to_numpy(), oracles["interaction"].to_numpy()
    rows = []
    for (method, version), group in predictions.groupby(["method", "version"], sort=False):
        if method == "no-skill":
            continue
        frame = group.set_index("subject_id").loc[oracles.index]
        truth = frame["target"].astype(str).to_numpy()
        predicted = names[frame[columns].to_numpy().argmax(1)]
        labels = (truth, predicted, additive, interaction)
        every = np.arange(len(truth))
        boot = [share(*labels, rng.integers(0, len(truth), len(truth))) for _ in range(resamples)]
        low, high = np.nanpercentile(boot, [2.5, 97.5]) if not np.isnan(boot).all() else (np.nan, np.nan)
        rows.append(
            {
                "method": method,
                "version": version,
                "BA": float(balanced_accuracy_score(truth, predicted)),
                "share": float(share(*labels, every)),
                "low": float(low),
                "high": float(high),
            }
        )
    return rows


def paired_differences(
    run: Path, reference: str, others: list[str], resamples: int, seed: int, split_seed: int = 0
) -> list[dict]:
    """Per version: BA of ``reference`` − each other method on the same test subjects, bootstrap 95 % interval."""
    predictions, columns, names = read_predictions(run, split_seed)
    rng = np.random.default_rng(seed)

    def labels(method: str, version: str) -> tuple[np.ndarray, np.ndarray]:
        frame = predictions[(predictions["method"] == method) & (predictions["version"] == version)]
        frame = frame.sort_values("subject_id")
        return frame["target"].astype(str).to_numpy(), names[frame[columns].to_numpy().argmax(1)]

    rows = []
    for other in others:
        for version in sorted(predictions["version"].unique()):
            truth, mine = labels(reference, version)
            _, theirs = labels(other, version)
            boot = []
            for _ in range(resamples):
                i = rng.integers(0, len(truth), len(truth))
                boot.append(
                    balanced_accuracy_score(truth[i], mine[i]) - balanced_accuracy_score(truth[i], theirs[i])
                )
            low, high = np.percentile(boot, [2.5, 97.5])
            difference = balanced_accuracy_score(truth, mine) - balanced_accuracy_score(truth, theirs)
            rows.append({"reference": reference, "method": other, "version": version,
                         "difference": float(difference), "low": float(low), "high": float(high)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a finished run directory on a simulated location-mode cohort")
    parser.add_argument(
        "--columns", nargs="+", default=["AGE", "PTEDUCAT", "APOE4"], help="the record's numbers"
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--cohort", type=Path, default=None, help="the cohort folder, if not RUN/cohort")
    parser.add_argument("--test-partition", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--reference", default="ad-hyperfusion")
    parser.add_argument(
        "--versus", nargs="*", default=["ad-concat", "ad-imaging"], help="paired BA differences"
    )
    parser.add_argument("--out", default="benchmarks/results/run_headroom.json")
    args = parser.parse_args()
    run = Path(args.run)
    oracles = split_oracles(run, args.columns, args.split_seed, args.test_partition, args.cohort)
    rows = shares(run, oracles, args.resamples, seed=0, split_seed=args.split_seed)
    for row in rows:
        print(f"{row['method']} v{row['version']}: BA {row['BA']:.3f}, share {row['share']:+.2f} "
              f"[{row['low']:+.2f}, {row['high']:+.2f}]")  # fmt: skip
    paired = paired_differences(
        run, args.reference, args.versus, args.resamples, seed=0, split_seed=args.split_seed
    )
    for row in paired:
        print(f"{row['reference']} − {row['method']} v{row['version']}: {row['difference']:+.3f} "
              f"[{row['low']:+.3f}, {row['high']:+.3f}]")  # fmt: skip
    Path(args.out).write_text(json.dumps({"run": str(run), "rows": rows, "paired": paired}, indent=1) + "\n")


if __name__ == "__main__":
    main()
