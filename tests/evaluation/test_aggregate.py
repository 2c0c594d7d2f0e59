"""From unit records to results: ensembles, the no-skill rows, sensitivities and the skill table, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.evaluation.aggregate import (
    ENSEMBLE,
    NO_SKILL,
    Scoring,
    aggregate,
    sensitivities,
)
from hyperfusion.evaluation.ensemble import combine_folds, inverse_entropy_ensemble
from hyperfusion.evaluation.metrics import balanced_accuracy, mae

CLASSES = ("CN", "MCI", "AD")


def _probabilities(rng, n: int) -> np.ndarray:
    logits = rng.normal(size=(n, 3))
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def _record(values, targets, ids, *, permuted_tabular=None, permuted_image=None, best=0.5):
    def part(v):
        return {"subject_ids": ids, "values": np.asarray(v).tolist(), "targets": np.asarray(targets).tolist()}

    history = [{"epoch": 0, "train_loss": 1.0, "val_loss": 0.9, "val_BA": best}]
    record = {"test": part(values), "validation": part(values), "best_metric": best, "metric_name": "BA"}
    record["history"] = history
    if permuted_tabular is not None:
        record["test_tabular_permuted"] = part(permuted_tabular)
    if permuted_image is not None:
        record["test_image_permuted"] = part(permuted_image)
    return record


def test_classification_ensembles_no_skill_and_sensitivities_by_hand():
    rng = np.random.default_rng(0)
    n, folds = 30, 2
    ids = [f"s{i}" for i in range(n)]
    targets = rng.integers(0, 3, n)
    train_targets = np.array([0] * 10 + [1] * 25 + [2] * 5)  # MCI is the majority: the prior predicts MCI
    fold_values = [_probabilities(rng, n) for _ in range(folds)]
    fold_tabular = [_probabilities(rng, n) for _ in range(folds)]
    records = {
        ("m", 0, 0, f): _record(
            fold_values[f], targets, ids, permuted_tabular=fold_tabular[f], permuted_image=fold_values[f]
        )
        for f in range(folds)
    }
    out = aggregate(
        records,
        methods=["m"],
        split_seeds=[0],
        versions=1,
        folds=folds,
        scoring=Scoring("classification", CLASSES),
        train_targets={0: train_targets},
    )
    results = out.results.set_index(["method", "fold", "metric"])["value"]
    ensemble = inverse_entropy_ensemble(np.stack(fold_values))
    assert results[("m", ENSEMBLE, "BA")] == pytest.approx(balanced_accuracy(ensemble, targets))
    permuted = inverse_entropy_ensemble(np.stack(fold_tabular))
    assert results[("m", ENSEMBLE, "tabular_sensitivity")] == pytest.approx(
        np.abs(permuted - ensemble).mean()
    )
    assert results[("m", ENSEMBLE, "image_sensitivity")] == 0.0
    assert results[("m", "1", "BA")] == pytest.approx(balanced_accuracy(fold_values[1], targets))

    # no skill: the training prior (10, 25, 5)/40 for every test subject
    assert results[(NO_SKILL, ENSEMBLE, "BA")] == pytest.approx(1 / 3)
    assert results[(NO_SKILL, ENSEMBLE, "AUC")] == pytest.approx(0.5)
    share = float(np.mean(targets == 1))  # precision of the always-predicted class; 0 for the others
    assert results[(NO_SKILL, ENSEMBLE, "PRC")] == pytest.approx(share / 3)
    assert results[(NO_SKILL, ENSEMBLE, "F1")] == pytest.approx((2 * share / (share + 1)) / 3)
    prior = np.array([10, 25, 5]) / 40
    brier = np.mean([((prior - np.eye(3)[t]) ** 2).sum() for t in targets])
    assert results[(NO_SKILL, ENSEMBLE, "Brier")] == pytest.approx(brier)
    baseline = out.predictions[out.predictions["method"] == NO_SKILL]
    np.testing.assert_allclose(baseline[["p_CN", "p_MCI", "p_AD"]].to_numpy(), np.tile(prior, (n, 1)))

    skill = out.skill.set_index("metric")
    assert skill.loc["BA", "difference"] == pytest.approx(balanced_accuracy(ensemble, targets) - 1 / 3)
    assert skill.loc["BA", "low"] <= skill.loc["BA", "difference"] <= skill.loc["BA", "high"]
    assert set(out.histories["method"]) == {"m"} and len(out.histories) == folds


def test_regression_no_skill_is_the_training_mean_and_positive_skill_means_better():
    rng = np.random.default_rng(1)
    n = 40
    ids = [f"s{i}" for i in range(n)]
    age = rng.normal(65, 7, n)
    train = rng.normal(63, 7, 100)
    good = age + rng.normal(0, 1, n)
    records = {
        ("m", 0, v, 0): _record(good + v, age, ids, best=float(v))
        for v in range(3)  # version 0 validates best
    }
    groups = {i: ("F" if k % 2 else "M") for k, i in enumerate(ids)}
    out = aggregate(
        records,
        methods=["m"],
        split_seeds=[0],
        versions=3,
        folds=1,
        scoring=Scoring("regression", top_k=2, groups=groups),
        train_targets={0: train},
    )
    results = out.results.set_index(["method", "version", "fold", "metric"])["value"]
    assert results[("m", "top2", ENSEMBLE, "MAE")] == pytest.approx(mae(good + 0.5, age))  # versions 0 and 1
    assert results[(NO_SKILL, "top2", ENSEMBLE, "MAE")] == pytest.approx(np.abs(age - train.mean()).mean())
    female = np.array([groups[i] == "F" for i in ids])
    assert results[(NO_SKILL, "top2", ENSEMBLE, "MAE-F")] == pytest.approx(
        np.abs(age - train.mean())[female].mean()
    )
    for version in ("0", "1", "2"):  # beside every single-model run of the main table
        assert results[(NO_SKILL, version, "0", "MAE")] == results[(NO_SKILL, "top2", ENSEMBLE, "MAE")]
    skill = out.skill.set_index("metric").loc["MAE"]
    expected = np.abs(age - train.mean()).mean() - mae(good + 0.5, age)
    assert skill["difference"] == pytest.approx(expected) and skill["low"] > 0


def test_incomplete_ensembles_are_not_reported():
    rng = np.random.default_rng(2)
    ids = ["a", "b", "c", "d"]
    targets = np.array([0, 1, 2, 1])
    records = {("m", 0, 0, 0): _record(_probabilities(rng, 4), targets, ids)}  # fold 1 not finished
    out = aggregate(
        records, methods=["m"], split_seeds=[0], versions=1, folds=2,
        scoring=Scoring("classification", CLASSES), train_targets={0: targets},
    )  # fmt: skip
    assert set(out.results["fold"]) == {"0"}
    assert out.skill.empty


def test_fold_models_that_scored_different_subjects_are_refused():
    rng = np.random.default_rng(3)
    a = _record(_probabilities(rng, 3), [0, 1, 2], ["a", "b", "c"])
    b = _record(_probabilities(rng, 3), [0, 1, 2], ["a", "b", "x"])
    with pytest.raises(RuntimeError, match="different test subjects"):
        aggregate(
            {("m", 0, 0, 0): a, ("m", 0, 0, 1): b}, methods=["m"], split_seeds=[0], versions=1, folds=2,
            scoring=Scoring("classification", CLASSES), train_targets={0: np.array([0, 1, 2])},
        )  # fmt: skip


def test_combine_folds_rules():
    rng = np.random.default_rng(4)
    stack = np.stack([_probabilities(rng, 5) for _ in range(3)])
    np.testing.assert_allclose(combine_folds(stack, "mean"), stack.mean(0))
    np.testing.assert_allclose(combine_folds(stack, "inverse_entropy"), inverse_entropy_ensemble(stack))
    with pytest.raises(ValueError, match="ensemble rule"):
        combine_folds(stack, "median")
    assert sensitivities({"test": {"values": [1.0, 2.0]}}) == {}


def test_difference_table_compares_a_fusion_with_its_member_on_the_same_subjects():
    from hyperfusion.evaluation.aggregate import difference_table
    from hyperfusion.evaluation.bootstrap import bootstrap_differences

    rng = np.random.default_rng(3)
    n = 40
    ids = [f"s{i}" for i in range(n)]
    targets = rng.integers(0, 3, n)
    fused, member = _probabilities(rng, n), _probabilities(rng, n)
    scored = lambda v: {"test": {"subject_ids": ids, "values": v, "targets": targets}}  # noqa: E731
    ensembles = {("fused", 0, "0"): scored(fused), ("member", 0, "0"): scored(member)}
    scoring = Scoring(task="classification", classes=CLASSES)
    table = difference_table(ensembles, scoring, [("fused", "member"), ("member", "absent")], n_resamples=300)
    assert set(table["method"]) == {"fused"} and set(table["baseline"]) == {"member"}
    expected = bootstrap_differences(
        fused, member, targets, ["BA", "AUC", "F1", "PRC"], n_resamples=300, seed=0
    )
    np.testing.assert_allclose(table["difference"], expected["difference"])
    np.testing.assert_allclose(table[["low", "high"]], expected[["low", "high"]])
    assert table.loc[table["metric"] == "BA", "difference"].item() == pytest.approx(
        balanced_accuracy(fused, targets) - balanced_accuracy(member, targets)
    )
    other = {("member", 0, "0"): {"test": {"subject_ids": ids[::-1], "values": member, "targets": targets}}}
    with pytest.raises(ValueError, match="scored different test subjects"):
        difference_table({**ensembles, **other}, scoring, [("fused", "member")])
