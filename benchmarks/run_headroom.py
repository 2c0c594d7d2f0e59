"""Each method's share of the interaction headroom in one finished run on a simulated cohort, with intervals.

A study computes headroom shares per cell from run-level BAs (``hyperfusion.study.oracle``). For a single run
(e.g. a held-out cohort run with ``hyperfusion run``) this benchmark refits the additive and interaction oracles
on the split's non-test rows, reads every method's test-set ensemble predictions from ``predictions.csv``, and
bootstraps the share ``(method − additive) / (interaction − additive)`` over the test subjects (all three
resampled together), per version, and the paired BA difference of a reference method to others::

    python benchmarks/run_headroom.py runs/heldout --columns AGE PTEDUCAT APOE4 --out results.json

With several ``--split-seeds`` (one version per split, as in a study cell) it also pools them: each quantity is
the mean over the splits of its per-split BA (the share from the mean BAs), and each bootstrap replicate resamples
every split's test subjects within that split — an interval over test subjects with the trained models fixed.
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


def labelled(run: Path, oracles: pd.DataFrame, split_seed: int, method: str) -> tuple[np.ndarray, ...]:
    """One method's (only version's) test labels beside the oracles' on the same subjects, in the oracles' order."""
    predictions, columns, names = read_predictions(run, split_seed)
    frame = predictions[predictions["method"] == method]
    if frame["version"].nunique() != 1:
        raise ValueError(f"{run}: {method} has {frame['version'].nunique()} versions in split {split_seed}; pooling "
                         "over split seeds takes one version per split")  # fmt: skip
    frame = frame.set_index("subject_id").loc[oracles.index]
    predicted = names[frame[columns].to_numpy().argmax(1)]
    return frame["target"].astype(str).to_numpy(), predicted, oracles["additive"].to_numpy(), \
        oracles["interaction"].to_numpy()  # fmt: skip


def pooled(run: Path, oracles: dict[int, pd.DataFrame], methods: list[str], reference: str, resamples: int,
           seed: int) -> dict:  # fmt: skip
    """Shares and paired differences to ``reference`` pooled over split seeds (mean of per-split BAs), with
    intervals from resampling each split's test subjects within that split."""
    data = {m: {s: labelled(run, o, s, m) for s, o in oracles.items()} for m in methods}
    rng = np.random.default_rng(seed)

    def mean_bas(method: str, draws: dict[int, np.ndarray]) -> tuple[float, float, float]:
        values = []
        for split, rows in draws.items():
            truth, predicted, additive, interaction = data[method][split]
            values.append(
                [balanced_accuracy_score(truth[rows], x[rows]) for x in (predicted, additive, interaction)]
            )
        return tuple(np.mean(values, axis=0))

    def statistics(draws: dict[int, np.ndarray]) -> dict[str, tuple[float, float]]:
        bas = {m: mean_bas(m, draws) for m in methods}
        out = {}
        for m, (ba, additive, interaction) in bas.items():
            share = (ba - additive) / (interaction - additive) if interaction != additive else float("nan")
            out[m] = (share, bas[reference][0] - ba)
        return out

    every = {s: np.arange(len(o)) for s, o in oracles.items()}
    point = statistics(every)
    boot = [
        statistics({s: rng.integers(0, len(o), len(o)) for s, o in oracles.items()}) for _ in range(resamples)
    ]
    rows = []
    for m in methods:
        ba, additive, interaction = mean_bas(m, every)
        shares_, differences = np.array([b[m][0] for b in boot]), np.array([b[m][1] for b in boot])
        rows.append({"method": m, "BA": ba, "additive": additive, "interaction": interaction,
                     "share": point[m][0], "share_low": float(np.nanpercentile(shares_, 2.5)),
                     "share_high": float(np.nanpercentile(shares_, 97.5)),
                     "difference_to_reference": point[m][1],
                     "difference_low": float(np.percentile(differences, 2.5)),
                     "difference_high": float(np.percentile(differences, 97.5))})  # fmt: skip
    return {"split_seeds": sorted(oracles), "reference": reference, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a finished run directory on a simulated location-mode cohort")
    parser.add_argument(
        "--columns", nargs="+", default=["AGE", "PTEDUCAT", "APOE4"], help="the record's numbers"
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--split-seeds",
        type=int,
        nargs="+",
        help="several splits of the run: per split, and pooled over them",
    )
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
    if args.split_seeds:
        pooled_over_splits(run, args)
        return
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


def pooled_over_splits(run: Path, args: argparse.Namespace) -> None:
    """Every split's own rows and paired differences, then the pooled block; one JSON file."""
    oracles = {
        s: split_oracles(run, args.columns, s, args.test_partition, args.cohort) for s in args.split_seeds
    }
    per_split = {}
    for s, o in oracles.items():
        per_split[s] = {"rows": shares(run, o, args.resamples, seed=0, split_seed=s),
                        "paired": paired_differences(run, args.reference, args.versus, args.resamples, seed=0,
                                                     split_seed=s)}  # fmt: skip
    methods = [r["method"] for r in per_split[args.split_seeds[0]]["rows"]]
    together = pooled(run, oracles, methods, args.reference, args.resamples, seed=0)
    for row in together["rows"]:
        print(f"pooled {row['method']}: BA {row['BA']:.3f}, share {row['share']:+.2f} [{row['share_low']:+.2f}, "
              f"{row['share_high']:+.2f}], {args.reference} − it {row['difference_to_reference']:+.3f} "
              f"[{row['difference_low']:+.3f}, {row['difference_high']:+.3f}]")  # fmt: skip
    result = {"run": str(run), "per_split": per_split, "pooled": together}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
