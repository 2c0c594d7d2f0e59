"""Is the interaction headroom in the crops, or only in the simulator's volumes?

The study's oracles read the *realised structure volumes* (``hyperfusion.study.oracle``). A CNN reads 4 mm crops.
This benchmark asks the oracles' question of the crops themselves: on each study cell and split seed, logistic
regressions on PCA components of the two pooled hippocampus crops (what the CNN sees) and the record, fitted on
the non-test rows and scored on the test partition —

* **additive**: crop components and record side by side;
* **interaction**: plus every component × sex product (the location mode's true form);
* **per sex**: one additive reader per sex (the most flexible form: sex decides how the crops are read).

Components and penalty are chosen by 5-fold cross-validation on the training rows (balanced accuracy). If the
crop readers with the true form gain over the additive one, the crops hold the per-sex reading and a fusion method
that misses it has a training or architecture problem; if they do not, the headroom exists on the volumes only and
no image model of these crops can capture it at this size::

    python benchmarks/crop_headroom.py runs/study-cpu/cells/interaction=* --out benchmarks/results/crop_headroom.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hyperfusion.data import ImageCache, ImageSpec, load_manifest

COMPONENTS = (5, 10, 20, 40)
STRENGTHS = (0.01, 0.1, 1.0)
RECORD = ("AGE", "PTEDUCAT", "APOE4")


def cell_inputs(cell: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """Pooled crops [N, voxels], the record [N, 3], sex (1 = male) [N], labels [N] and the subject ids."""
    config = yaml.safe_load((cell / "config.yaml").read_text())
    cohort = load_manifest(config["cohort"])
    image = config["image"]
    spec = ImageSpec.hippocampus(voxel_mm=float(image["voxel_mm"]), shape=tuple(image["shape"]))
    paths = ImageCache(cell / "cache").ensure_all(cohort.frame["image"], spec)
    crops = np.stack([np.load(p).reshape(-1) for p in paths]).astype(np.float64)
    frame = cohort.frame
    record = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in RECORD])
    sex = (frame["PTGENDER"].astype(str) == "Male").to_numpy(float)
    return crops, record, sex, np.asarray(cohort.targets), frame["subject_id"].astype(str)


def fitted_reader(features: np.ndarray, labels: np.ndarray, seed: int) -> GridSearchCV:
    """PCA of the crop block + logistic regression, components and penalty chosen by CV on these rows."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
    search = GridSearchCV(
        pipeline,
        {"logisticregression__C": list(STRENGTHS)},
        scoring="balanced_accuracy",
        cv=StratifiedKFold(5, shuffle=True, random_state=seed),
    )
    return search.fit(features, labels)


def readers(crops, record, sex, labels, train, test, seed: int) -> dict[str, float]:
    """Test BA of the additive, interaction and per-sex crop readers, k chosen by CV for each."""
    imputer = SimpleImputer(strategy="median").fit(record[train])
    table = np.column_stack([imputer.transform(record), sex])
    out: dict[str, float] = {}
    best: dict[str, tuple[float, float]] = {}
    for k in COMPONENTS:
        pca = PCA(n_components=k, svd_solver="full").fit(crops[train])
        z = pca.transform(crops)
        z = (z - z[train].mean(0)) / z[train].std(0)
        designs = {
            "additive": np.hstack([table, z]),
            "interaction": np.hstack([table, z, z * sex[:, None]]),
        }
        for name, x in designs.items():
            search = fitted_reader(x[train], labels[train], seed)
            score = float(balanced_accuracy_score(labels[test], search.predict(x[test])))
            if name not in best or search.best_score_ > best[name][0]:
                best[name] = (search.best_score_, score)
        predicted = np.empty(len(labels), dtype=labels.dtype)
        cv_scores = []
        for value in (0.0, 1.0):
            rows_train, rows_test = train & (sex == value), test & (sex == value)
            search = fitted_reader(designs["additive"][rows_train], labels[rows_train], seed)
            cv_scores.append(search.best_score_)
            predicted[rows_test] = search.predict(designs["additive"][rows_test])
        score = float(balanced_accuracy_score(labels[test], predicted[test]))
        if "per sex" not in best or np.mean(cv_scores) > best["per sex"][0]:
            best["per sex"] = (float(np.mean(cv_scores)), score)
    for name, (_, score) in best.items():
        out[name] = score
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cells", nargs="+", help="study cell run directories")
    parser.add_argument("--test-partition", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/crop_headroom.json")
    args = parser.parse_args()
    rows = []
    for cell in map(Path, args.cells):
        crops, record, sex, labels, ids = cell_inputs(cell)
        for partitions_file in sorted(cell.glob("partitions_seed*.csv")):
            seed = int(partitions_file.stem.removeprefix("partitions_seed"))
            partitions = pd.read_csv(partitions_file, dtype={"subject_id": str}).set_index("subject_id")
            test = partitions.loc[ids, "partition"].to_numpy() == args.test_partition
            found = readers(crops, record, sex, labels, ~test, test, seed)
            rows.append({"cell": cell.name, "split_seed": seed, **found})
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
