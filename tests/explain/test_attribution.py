"""Tabular attribution: permutation importance on models that use known columns, integrated gradients on a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hyperfusion.data import TabularPreprocessor
from hyperfusion.evaluation.metrics import mae
from hyperfusion.explain.attribution import (
    headline,
    permutation_importance,
    summarise_importance,
    tabular_integrated_gradients,
)
from hyperfusion.explain.context import column_attributes, load_context
from hyperfusion.explain.ensemble import Ensemble, load_views
from tests.explain.runs import classification_config, make_run
from tests.faults import fault


def frame_of(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    return frame, 3.0 * frame["a"].to_numpy()


def uses_only_a(frames):
    return [3.0 * f["a"].to_numpy() for f in frames]


def test_a_model_that_reads_one_column_loses_only_when_that_column_is_permuted():
    frame, targets = frame_of()
    table = permutation_importance(
        frame, ["a", "b", "c"], targets, uses_only_a, headline("regression"), repeats=5
    )

    assert table.groupby("attribute").size().to_dict() == {"a": 5, "b": 5, "c": 5}
    assert (table.loc[table["attribute"] == "a", "importance"] > 0.5).all()
    assert (table.loc[table["attribute"] != "a", "importance"] == 0).all()
    assert (table["baseline"] == 0).all() and (table["metric"] == "MAE").all()


def test_importance_is_the_metric_under_the_seeded_permutation():
    """The slow obvious reference: permute by hand with the documented generator, score, compare."""
    frame, targets = frame_of(n=25, seed=3)
    table = permutation_importance(
        frame, ["a"], targets, uses_only_a, headline("regression"), repeats=3, seed=7
    )
    for r in range(3):
        order = np.random.default_rng([7, r]).permutation(25)
        expected = mae(3.0 * frame["a"].to_numpy()[order], targets)
        assert table.loc[r, "importance"] == pytest.approx(expected)


def test_classification_importance_is_the_drop_of_balanced_accuracy():
    frame, _ = frame_of(n=60, seed=1)
    targets = (frame["a"] > 0).to_numpy().astype(np.int64)

    def score(frames):
        return [np.c_[(f["a"] <= 0).to_numpy(), (f["a"] > 0).to_numpy()].astype(float) for f in frames]

    table = permutation_importance(frame, ["a", "b"], targets, score, headline("classification"), repeats=5)
    assert (table["baseline"] == 1.0).all()
    a = table[table["attribute"] == "a"]
    assert np.allclose(a["importance"], 1.0 - a["permuted"]) and (a["importance"] > 0.2).all()
    assert (table.loc[table["attribute"] == "b", "importance"] == 0).all()
    summary = summarise_importance(table)
    assert summary["attribute"].tolist() == ["a", "b"]
    assert summary.loc[0, "importance_std"] == pytest.approx(a["importance"].std(ddof=1))


@fault("explain", "permutation importance with zero repeats", "ValueError naming repeats")
def test_repeats_must_be_positive():
    frame, targets = frame_of()
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        permutation_importance(frame, ["a"], targets, uses_only_a, headline("regression"), repeats=0)


@fault("explain", "permutation importance on fewer than two labelled subjects", "ValueError")
def test_needs_two_subjects():
    frame, targets = frame_of(n=1)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        permutation_importance(frame, ["a"], targets, uses_only_a, headline("regression"))


def test_columns_map_back_to_the_attributes_that_made_them():
    frame = pd.DataFrame(
        {"AGE": [60.0, np.nan, 70.0, 65.0], "SEX": ["F", "M", None, "M"], "SITE": ["A", "B", "B", None]}
    )
    pre = TabularPreprocessor(continuous=["AGE"], binary=["SEX"], categorical=["SITE"]).fit(frame)
    assert pre.feature_names_out == [
        "AGE",
        "SEX",
        "SITE=A",
        "SITE=B",
        "AGE_missing",
        "SEX_missing",
        "SITE_missing",
    ]
    assert column_attributes(pre) == ["AGE", "SEX", "SITE", "SITE", "AGE", "SEX", "SITE"]


def test_integrated_gradients_on_a_run_are_complete_and_sum_each_attributes_columns(classification_run):
    context = load_context(classification_run)
    ensemble = Ensemble.load(context)
    explained = np.zeros(len(context.cohort.frame), dtype=np.int64)
    table, check = tabular_integrated_gradients(context, ensemble, explained, steps=32, batch_size=4)
    assert set(table["attribute"]) == {"AGE", "EDU", "SEX", "SITE"}
    assert len(table) == 4 * len(context.cohort.frame)
    assert check["max_gap"] < 0.1 * check["mean_change"]  # Σ IG ≈ f(x) − f(baseline), every subject and model
    # every column belongs to one attribute, and members are averaged: per subject the attributions add up to
    # the members' mean change of the explained probability
    views = load_views(context)
    changes = []
    for member in ensemble.members:
        x = torch.from_numpy(member.preprocessor.transform(context.cohort.frame))
        baseline = member.preprocessor.transform(context.training_rows(member.unit.fold)).mean(axis=0)
        b = torch.from_numpy(np.broadcast_to(baseline, x.shape).copy())
        p_x, p_b = (ensemble.member_values(member, views, t).mean(dim=1)[:, 0] for t in (x, b))
        changes.append((p_x - p_b).numpy())
    totals = table.groupby("subject_id", sort=False)["attribution"].sum().to_numpy()
    np.testing.assert_allclose(totals, np.mean(changes, axis=0), atol=check["max_gap"] + 1e-6)
    assert np.abs(totals).max() > 10 * (check["max_gap"] + 1e-6)  # the check is not vacuous


def test_a_model_that_ignores_the_record_gets_zero_attribution(cohort, tmp_path):
    run = make_run(classification_config(cohort, "ad-imaging"), tmp_path / "imaging")
    context = load_context(run)
    ensemble = Ensemble.load(context)
    table, _ = tabular_integrated_gradients(
        context, ensemble, np.ones(len(context.cohort.frame), int), steps=4
    )
    assert (table["attribution"] == 0).all()
