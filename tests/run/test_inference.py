"""hyperfusion.run.inference on a tiny finished run (untrained seeded models, made in seconds):
``predict`` refuses to relabel probabilities, to overwrite what it reads, and warns about subjects it was trained on."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.inference import predict_new_subjects
from tests.explain.runs import classification_config, make_run, write_cohort
from tests.faults import fault


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory) -> Path:
    return make_run(classification_config(cohort), tmp_path_factory.mktemp("runs") / "run")


def _reordered(cohort: Path, classes: list[str]) -> Path:
    spec = yaml.safe_load((cohort / "classification.yaml").read_text())
    spec["target"]["classes"] = classes
    path = cohort / f"classes-{'-'.join(classes)}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@fault(
    "predict",
    "a manifest listing the run's classes in another order (classes: [AD, CN] for a run of [CN, AD])",
    "ValueError naming both orders (it exited 0 with every probability under the other class's name)",
)
def test_classes_in_another_order_are_refused(run, cohort, tmp_path):
    same = predict_new_subjects(run, _reordered(cohort, ["CN", "AD"]), tmp_path / "same.csv")
    assert list(same.columns[:3]) == ["subject_id", "p_CN", "p_AD"]
    with pytest.raises(
        ValueError, match=r"outputs the classes \['CN', 'AD'\] in that order, .* \['AD', 'CN'\]"
    ):
        predict_new_subjects(run, _reordered(cohort, ["AD", "CN"]), tmp_path / "swapped.csv")
    assert not (tmp_path / "swapped.csv").exists()


@fault(
    "predict",
    "--out naming the input table, or a file inside the run directory (RUN/config.yaml)",
    "ValueError naming --out and what it would overwrite; nothing is written (the input table was overwritten)",
)
def test_out_may_not_overwrite_an_input_or_a_run_file(run, cohort):
    table = cohort / "table.csv"
    before = table.read_bytes(), (run / "config.yaml").read_bytes()
    with pytest.raises(ValueError, match=r"--out .*table\.csv is the file predict reads"):
        predict_new_subjects(run, table, table)
    with pytest.raises(ValueError, match=r"--out .*config\.yaml lies inside the run directory"):
        predict_new_subjects(run, table, run / "config.yaml")
    yaml_manifest = cohort / "classification.yaml"
    with pytest.raises(ValueError, match=r"table\.csv is the file predict reads"):
        predict_new_subjects(run, yaml_manifest, table)  # the manifest's own table
    assert (table.read_bytes(), (run / "config.yaml").read_bytes()) == before


@fault(
    "predict",
    "predict on the run's own training subjects",
    "a warning naming how many and which subjects (by image content) the models were trained or validated on",
)
def test_training_subjects_are_named_in_a_warning(run, cohort, tmp_path, caplog):
    partitions = pd.read_csv(run / "partitions_seed0.csv", dtype={"subject_id": str})
    trained = set(partitions.loc[partitions["partition"] != 2, "subject_id"])
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        predict_new_subjects(run, cohort / "table.csv", tmp_path / "p.csv")
    (message,) = [r.getMessage() for r in caplog.records if "were trained or validated on" in r.getMessage()]
    assert message.startswith(
        f"{len(trained)} subject(s) of {cohort / 'table.csv'} are scans the run's models"
    )
    held_out = pd.read_csv(cohort / "table.csv")
    held_out = held_out[~held_out["subject"].isin(trained)]
    held_out.to_csv(cohort / "held_out.csv", index=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        predict_new_subjects(run, cohort / "held_out.csv", tmp_path / "q.csv")
    assert not [r for r in caplog.records if "trained or validated on" in r.getMessage()]


@fault(
    "predict",
    "two folds' tabular preprocessing files swapped, then predict or explain",
    "an error naming the file: not the preprocessing its models were trained with (each fold's models were fed "
    "features scaled for the other fold's rows)",
)
def test_swapped_preprocessing_is_named(cohort, tmp_path):
    from hyperfusion.run.store import RunDirectoryError

    run = make_run(classification_config(cohort), tmp_path / "run")
    a, b = run / "preprocessing" / "s0_f0.json", run / "preprocessing" / "s0_f1.json"
    text_a, text_b = a.read_text(), b.read_text()
    a.write_text(text_b)
    b.write_text(text_a)
    with pytest.raises(
        RunDirectoryError, match=r"s0_f0\.json is not the preprocessing file the finished models"
    ):
        predict_new_subjects(run, cohort / "table.csv", tmp_path / "p.csv")


def test_method_all_predicts_every_method_in_one_table(cohort, tmp_path):
    config = classification_config(cohort) | {"methods": ["ad-imaging", "ad-hyperfusion"]}
    two = make_run(config, tmp_path / "two")
    table = predict_new_subjects(two, cohort / "table.csv", tmp_path / "all.csv", method="all")
    methods = list(
        FinishedRun(two).config.methods
    )  # the run's methods (a crop reader is added to every AD run)
    assert list(table["method"].unique()) == methods and {"ad-imaging", "ad-hyperfusion"} <= set(methods)
    assert pd.read_csv(tmp_path / "all.csv", dtype={"subject_id": str}).shape == table.shape
    for method in methods:
        alone = predict_new_subjects(two, cohort / "table.csv", tmp_path / f"{method}.csv", method=method)
        pd.testing.assert_frame_equal(table[table["method"] == method].reset_index(drop=True), alone)
