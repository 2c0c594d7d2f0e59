"""Oracles of a simulated AD cohort: how much can reading the image through the record gain on these subjects?

A study cell whose cohort the simulator wrote knows each subject's truth (``latents.csv``): the *realised* log-volume
factor of every structure the disease or its look-alike acts on, measured from the subject's own warp. Two logistic
regressions read those volumes (plus a read-out error of SD :data:`READOUT_SD`, standing in for what a CNN misses
at 4 mm) together with the table, fitted on a split seed's non-test rows (the rows every method learns from) and
scored on its test partition:

* **additive**: volumes and table side by side — what a method that adds the two modalities can reach;
* **interaction**: plus every volume × sex product — the location mode's true form, in which sex decides where the
  disease shows; what reading the image through the record can reach.

The gap between them is the interaction headroom of that split, and a method's **share of the headroom** is
``(method − additive) / (interaction − additive)``: 0 for a method that only adds the modalities as well as the
oracle does, 1 for one that reads the image through the record as well as the true form. It is negative for a
method below the additive oracle, which happens when the CNN reads the image less well than the volumes say.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

READOUT_SD = 0.06
TABLE_COLUMNS = (
    "AGE",
    "PTEDUCAT",
    "APOE4",
    "ABETA",
    "PTAU",
    "TAU",
    "FDG",
    "AV45",
)  # the paper's record, sex aside
GATE = "PTGENDER"  # the location mode's gating variable
CLASSES = ("CN", "MCI", "AD")
REALISED_PREFIX = "realised_logf_"


def has_oracle(cohort_dir: str | Path) -> bool:
    """Whether ``cohort_dir`` is a simulated AD cohort with the latents the oracles read."""
    path = Path(cohort_dir) / "latents.csv"
    if not path.is_file() or not (Path(cohort_dir) / "ADNIMERGE.csv").is_file():
        return False
    header = pd.read_csv(path, nrows=0).columns
    return "diagnosis" in header and any(c.startswith(REALISED_PREFIX) for c in header)


def _inputs(
    cohort_dir: Path, continuous: Sequence[str], gate: str | None
) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """Subject ids, the record (numbers, then the gate as 0/1), the realised volumes with read-out error, labels."""
    latents = pd.read_csv(cohort_dir / "latents.csv", dtype={"PTID": str}).set_index("PTID")
    table = pd.read_csv(cohort_dir / "ADNIMERGE.csv", dtype=str).set_index("PTID").loc[latents.index]
    numbers = [pd.to_numeric(table[c].str.lstrip("<>"), errors="coerce").to_numpy(float) for c in continuous]
    if gate is not None:
        numbers.append((table[gate] == "Male").to_numpy(float))
    tabular = np.column_stack(numbers) if numbers else np.zeros((len(table), 0))
    volumes = latents[[c for c in latents.columns if c.startswith(REALISED_PREFIX)]].to_numpy(float)
    volumes = volumes + np.random.default_rng(6007).normal(0.0, READOUT_SD, volumes.shape)
    labels = pd.Categorical(latents["diagnosis"], categories=list(CLASSES)).codes
    return latents.index, tabular, volumes, labels


def _design(tabular: np.ndarray, volumes: np.ndarray, train: np.ndarray, gate: int | None) -> np.ndarray:
    """Standardised table (median-imputed, missing indicators) and volumes; × the gate column when given."""
    image = StandardScaler().fit(volumes[train])
    columns = [image.transform(volumes)]
    if tabular.shape[1]:
        imputer = SimpleImputer(strategy="median", add_indicator=True).fit(tabular[train])
        table = StandardScaler().fit(imputer.transform(tabular[train]))
        t = table.transform(imputer.transform(tabular))
        columns.insert(0, t)
        if gate is not None:
            columns.append(columns[1] * t[:, [gate]])
    return np.hstack(columns)


def oracle_predictions(
    cohort_dir: str | Path,
    partitions: pd.DataFrame,
    test_partition: int,
    *,
    continuous: Sequence[str] = TABLE_COLUMNS,
    gate: str | None = GATE,
) -> pd.DataFrame:
    """The additive and interaction oracles' predicted classes for one split seed's test subjects.

    Indexed by subject id, with columns ``target``, ``additive`` and ``interaction`` (class names). The arguments
    are those of :func:`interaction_oracles`, which scores these predictions.

    Raises:
        ValueError: a partitions table that does not cover the cohort's subjects.
    """
    cohort_dir = Path(cohort_dir)
    by_subject = dict(zip(partitions["subject_id"].astype(str), partitions["partition"].astype(int)))
    ids, tabular, volumes, labels = _inputs(cohort_dir, continuous, gate)
    missing = [s for s in ids if s not in by_subject]
    if missing:
        raise ValueError(f"the partitions do not cover subject {missing[0]!r} of {cohort_dir}")
    test = np.array([by_subject[s] == test_partition for s in ids])
    train = ~test
    classes = np.asarray(CLASSES)
    out = {"target": classes[labels[test]]}
    gate_column = len(continuous) if gate is not None else None
    for name, gated in (("additive", None), ("interaction", gate_column)):
        x = _design(tabular, volumes, train, gated)
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(x[train], labels[train])
        out[name] = classes[model.predict(x[test])]
    return pd.DataFrame(out, index=pd.Index(np.asarray(ids)[test], name="subject_id"))


def interaction_oracles(
    cohort_dir: str | Path,
    partitions: pd.DataFrame,
    test_partition: int,
    *,
    continuous: Sequence[str] = TABLE_COLUMNS,
    gate: str | None = GATE,
) -> dict[str, float]:
    """Balanced accuracy of the additive and interaction oracles on one split seed's test partition.

    Args:
        cohort_dir: the simulated cohort (``latents.csv`` and ``ADNIMERGE.csv``).
        partitions: the run's ``subject_id, partition`` table for the split seed.
        test_partition: the partition that is the test set.
        continuous: the record's numeric columns (the oracles read the record the methods read).
        gate: the record's sex column, or ``None`` when the record has none: the interaction oracle then has
            nothing to gate by and equals the additive one.

    Returns:
        ``additive``, ``interaction`` and ``headroom`` (their difference).

    Raises:
        ValueError: a partitions table that does not cover the cohort's subjects.
    """
    predicted = oracle_predictions(cohort_dir, partitions, test_partition, continuous=continuous, gate=gate)
    out = {
        name: float(balanced_accuracy_score(predicted["target"], predicted[name]))
        for name in ("additive", "interaction")
    }
    out["headroom"] = out["interaction"] - out["additive"]
    return out


def headroom_share(method_ba: float, additive: float, interaction: float) -> float:
    """``(method − additive) / (interaction − additive)``; NaN when the split has no headroom (gap ≤ 0)."""
    gap = interaction - additive
    return float((method_ba - additive) / gap) if gap > 0 else float("nan")


def cell_oracles(config, run_dir: str | Path) -> pd.DataFrame:
    """The oracles of one study cell, per split seed: ``split_seed, additive, interaction, headroom``.

    Empty when the cell's cohort is not a simulated AD cohort with latents (a user's cohort has no truth to
    read). The oracles read the record the run's manifest reads and the partitions its models were trained on
    (verified against their records, as the report's no-skill rows are).
    """
    from hyperfusion.run.finished import FinishedRun
    from hyperfusion.tasks import get_task

    finished = FinishedRun(run_dir, config)
    cohort = finished.cohort
    folder = cohort.table_path.parent
    columns = ["split_seed", "additive", "interaction", "headroom"]
    if not get_task(cohort.task).has_classes or not has_oracle(folder) or tuple(cohort.classes) != CLASSES:
        return pd.DataFrame(columns=columns)
    gate = GATE if GATE in (*cohort.categorical, *cohort.binary) else None
    rows = []
    for seed in config.protocol.split_seeds:
        partitions = finished.partitions(cohort, seed)
        found = interaction_oracles(
            folder, partitions, config.protocol.n_partitions - 1, continuous=cohort.continuous, gate=gate
        )
        rows.append({"split_seed": seed, **found})
    return pd.DataFrame(rows, columns=columns)


def headroom_shares(results: pd.DataFrame, oracles: pd.DataFrame, *, fold: str = "ensemble") -> pd.DataFrame:
    """Every method's share of the interaction headroom per run (split seed, version) of one cell.

    Columns ``method, split_seed, version, BA, additive, interaction, share``; the share is NaN where the split has
    no headroom. The no-skill rows are left out.
    """
    columns = ["method", "split_seed", "version", "BA", "additive", "interaction", "share"]
    if oracles.empty:
        return pd.DataFrame(columns=columns)
    by_seed = oracles.set_index("split_seed")
    runs = results[(results["fold"].astype(str) == fold) & (results["metric"] == "BA")]
    rows = []
    for r in runs.itertuples(index=False):
        if r.method == "no-skill" or int(r.split_seed) not in by_seed.index:
            continue
        oracle = by_seed.loc[int(r.split_seed)]
        rows.append(
            {"method": r.method, "split_seed": int(r.split_seed), "version": str(r.version), "BA": float(r.value),
             "additive": float(oracle["additive"]), "interaction": float(oracle["interaction"]),
             "share": headroom_share(float(r.value), float(oracle["additive"]), float(oracle["interaction"]))}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
