"""Reading a run for an explanation: which subjects, which training rows, which ensemble — and refusals."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from hyperfusion.data import fold_roles, read_partitions
from hyperfusion.explain.context import load_context
from hyperfusion.explain.ensemble import Ensemble, load_views
from hyperfusion.run.inference import score_subjects
from tests.faults import fault


def test_default_subjects_are_the_test_partition_and_training_rows_follow_the_partitions(classification_run):
    context = load_context(classification_run)
    partitions = read_partitions(classification_run / "partitions_seed0.csv")
    test = set(partitions.loc[partitions["partition"] == 2, "subject_id"])
    assert set(context.subject_ids) == test
    assert [(a.name, a.kind, a.levels) for a in context.attributes] == [
        ("AGE", "continuous", ()),
        ("EDU", "continuous", ()),
        ("SEX", "binary", ("F", "M")),
        ("SITE", "categorical", ("A", "B", "C")),
    ]
    for fold in (0, 1):
        roles = fold_roles(partitions["partition"], test=2, val=fold)
        expected = set(partitions.loc[(roles == "train").to_numpy(), "subject_id"])
        assert set(context.training_rows(fold)["subject_id"]) == expected


def test_regression_subjects_are_the_test_role(regression_run):
    context = load_context(regression_run)
    partitions = read_partitions(regression_run / "partitions_seed0.csv")
    assert set(context.subject_ids) == set(partitions.loc[partitions["partition"] == "test", "subject_id"])
    assert set(context.training_rows(0)["subject_id"]) == set(
        partitions.loc[partitions["partition"] == "train", "subject_id"]
    )


def test_named_subjects_keep_the_cohorts_order(classification_run):
    context = load_context(classification_run, subjects=["S05", " S01"])
    assert context.subject_ids == ["S01", "S05"]


@pytest.mark.parametrize("run_name", ["classification_run", "regression_run"])
def test_the_loaded_ensemble_scores_exactly_as_predict_does(run_name, request):
    run = request.getfixturevalue(run_name)
    context = load_context(run)
    ensemble = Ensemble.load(context)
    if context.task == "regression":  # top-1 of two versions by validation MAE: version 0's record is better
        assert ensemble.versions == [0]
    views = load_views(context)
    assert views.shape[:3] == ((len(context.subject_ids), 2, 1) if run_name == "classification_run"
                               else (len(context.subject_ids), 1, 1))  # fmt: skip
    ours = ensemble.score(views, ensemble.tabular(context.cohort.frame))
    theirs = score_subjects(run, context.cohort)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@fault("explain", "subject ids that are not in the run's cohort", "ValueError naming them")
def test_unknown_subjects_are_named(classification_run):
    with pytest.raises(ValueError, match=r"subject\(s\) \['nobody'\] are not in the run's cohort"):
        load_context(classification_run, subjects=["S01", "nobody"])


@fault("explain", "both --subjects and --manifest", "ValueError: give one")
def test_subjects_and_manifest_together_are_refused(classification_run, cohort):
    with pytest.raises(ValueError, match="either subjects or a manifest"):
        load_context(classification_run, subjects=["S01"], manifest=cohort / "table.csv")


@fault("explain", "a method or split seed the run does not have", "ValueError listing the run's")
def test_unknown_method_and_seed_are_refused(classification_run):
    with pytest.raises(
        ValueError, match=r"method 'ad-film' is not in this run; its methods: \['ad-hyperfusion'\]"
    ):
        load_context(classification_run, method="ad-film")
    with pytest.raises(ValueError, match=r"split seed 3 is not in this run: \[0\]"):
        load_context(classification_run, split_seed=3)


@fault("explain", "a folder that is not a run directory", "FileNotFoundError: it has no config.yaml")
def test_not_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no config\.yaml"):
        load_context(tmp_path)


@fault("explain", "a run whose cohort manifest was moved away", "FileNotFoundError naming the manifest")
def test_run_whose_cohort_moved(classification_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(classification_run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["cohort"] = str(tmp_path / "gone" / "cohort.yaml")
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(FileNotFoundError, match=r"gone/cohort\.yaml .* does not exist"):
        load_context(copy)


def test_new_subjects_from_a_table_without_targets(classification_run, cohort):
    table = pd.read_csv(cohort / "table.csv").head(5)
    table["DX"] = np.nan
    path = cohort / "new.csv"
    table.to_csv(path, index=False)
    context = load_context(classification_run, manifest=path)
    assert context.subject_ids == ["S00", "S01", "S02", "S03", "S04"]
    assert (context.cohort.frame["target"] == -1).all()


def test_rows_of_a_subject_with_several_scans_get_distinct_names(classification_run):
    context = load_context(classification_run, subjects=["S01", "S02"])
    frame = context.cohort.frame
    context.cohort = dataclasses.replace(
        context.cohort, frame=pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    )
    assert context.row_names == ["S01", "S02", "S01-2"]
