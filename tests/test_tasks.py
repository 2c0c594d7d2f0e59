"""Tests for hyperfusion.tasks: each task's decisions against the slow obvious reference (a per-sample loop, a
hand computation, scikit-learn) on random inputs, and the protocol's partitions as the splitting functions make
them."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error

from hyperfusion.config import ProtocolSettings
from hyperfusion.data.splits import fold_roles, make_partitions, make_split, time_strata
from hyperfusion.evaluation.ensemble import inverse_entropy_ensemble, mean_probabilities
from hyperfusion.tasks import TASKS, TIME_STRATUM, Classification, Metric, Regression, Task, get_task

CLASSIFICATION, REGRESSION = get_task("classification"), get_task("regression")


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "subject_id": [f"s{i}" for i in range(n)],
            "target": rng.integers(0, 3, n),
            "age": rng.uniform(55, 90, n),
        }
    )


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown task 'hazard'; known: classification, regression, survival"
    ):
        get_task("hazard")
    assert get_task(CLASSIFICATION) is CLASSIFICATION
    assert set(TASKS) == {"classification", "regression", "survival"}


def test_metric_direction_and_nan() -> None:
    higher, lower = Metric("BA", True, lambda v, t: 0.0), Metric("MAE", False, lambda v, t: 0.0)
    assert higher.better(0.6, 0.5) and not higher.better(0.5, 0.5) and not higher.better(0.4, 0.5)
    assert lower.better(4.0, 5.0) and not lower.better(5.0, 5.0)
    assert higher.better(0.1, math.nan) and not higher.better(math.nan, math.nan)
    assert not lower.better(math.nan, 5.0)


def test_selection_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        probabilities = rng.dirichlet(np.ones(3), size=40)
        targets = rng.integers(0, 3, 40)
        want = balanced_accuracy_score(targets, probabilities.argmax(1))
        assert CLASSIFICATION.selection.compute(probabilities, targets) == pytest.approx(want, abs=1e-12)
        values, truth = rng.normal(70, 8, 40), rng.normal(70, 8, 40)
        assert REGRESSION.selection.compute(values, truth) == pytest.approx(
            mean_absolute_error(truth, values)
        )
    assert (CLASSIFICATION.selection.name, CLASSIFICATION.selection.higher_is_better) == ("BA", True)
    assert (REGRESSION.selection.name, REGRESSION.selection.higher_is_better) == ("MAE", False)


def test_partitions_and_roles_are_the_splitting_functions() -> None:
    frame, protocol = _frame(), ProtocolSettings(n_partitions=5, folds=3)
    partitions = CLASSIFICATION.partitions(frame, protocol, stratify=["target"], seed=3)
    expected = make_partitions(frame, 5, stratify=["target"], age_bins="auto", group="subject_id", seed=3)
    pd.testing.assert_series_equal(partitions, expected)
    assert CLASSIFICATION.folds(protocol) == 3 and REGRESSION.folds(protocol) == 1
    for fold in range(3):
        roles = CLASSIFICATION.roles(partitions, protocol, fold)
        pd.testing.assert_series_equal(roles, fold_roles(partitions.astype(int), test=4, val=fold))
    assert CLASSIFICATION.test_partition(protocol) == "4"
    no_skill = CLASSIFICATION.no_skill_rows(partitions, protocol)
    assert no_skill.tolist() == (partitions.astype(int) != 4).tolist()  # every non-test row

    split = REGRESSION.partitions(frame, protocol, stratify=[], seed=3)
    expected = make_split(frame, (0.8, 0.1, 0.1), stratify=[], age_bins="auto", group="subject_id", seed=3)
    pd.testing.assert_series_equal(split, expected)
    roles = REGRESSION.roles(split, protocol, 0)
    assert roles.name == "role" and roles.tolist() == split.astype(str).tolist()
    assert REGRESSION.test_partition(protocol) == "test"
    assert REGRESSION.no_skill_rows(split, protocol).tolist() == (split == "train").tolist()


def test_test_train_ratios_by_hand() -> None:
    protocol = ProtocolSettings(n_partitions=5, val_fraction=0.1, test_fraction=0.2)
    assert CLASSIFICATION.test_train_ratio(protocol) == pytest.approx(1 / 3)  # 1 test partition, 3 train
    assert REGRESSION.test_train_ratio(protocol) == pytest.approx(0.2 / 0.7)


def test_losses_equal_a_per_sample_loop() -> None:
    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(16, 3)), dtype=torch.float32)
    target = torch.tensor(rng.integers(0, 3, 16))
    weights = torch.tensor([0.5, 2.0, 1.25])
    log_p = logits.double().log_softmax(dim=1)
    want = sum(-weights[y] * log_p[i, y] for i, y in enumerate(target)) / sum(weights[y] for y in target)
    got = CLASSIFICATION.loss(logits, target, class_weights=weights, variance=1.0)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    validation = CLASSIFICATION.validation_loss(
        logits.softmax(dim=1), target, class_weights=weights, variance=1.0
    )
    assert validation == pytest.approx(float(want), rel=1e-5)  # NLL of the probabilities: the same number

    values = torch.tensor(rng.normal(70, 5, 16), dtype=torch.float32)
    truth = torch.tensor(rng.normal(70, 5, 16), dtype=torch.float32)
    want = sum((float(v) - float(t)) ** 2 for v, t in zip(values, truth)) / 16 / 4.0
    got = REGRESSION.loss(values, truth, class_weights=None, variance=4.0)
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert REGRESSION.validation_loss(values, truth, class_weights=None, variance=4.0) == pytest.approx(
        want, rel=1e-5
    )


def test_outputs_are_checked_and_views_mapped() -> None:
    logits = torch.randn(4, 3)
    assert CLASSIFICATION.output(logits, 4) is logits
    for bad in (torch.randn(4), torch.randn(4, 1), torch.randn(3, 3)):
        with pytest.raises(ValueError, match=r"logits \[B=4, C>=2\]"):
            CLASSIFICATION.output(bad, 4)
    torch.testing.assert_close(CLASSIFICATION.view_values(logits).sum(dim=1), torch.ones(4))
    assert REGRESSION.output(torch.randn(4, 1), 4).shape == (4,)
    with pytest.raises(ValueError, match=r"predictions \[B=4\]"):
        REGRESSION.output(torch.randn(4, 2), 4)


def test_ensembles_combine_as_the_paper_says() -> None:
    rng = np.random.default_rng(3)
    stack = rng.dirichlet(np.ones(3), size=(4, 10))
    np.testing.assert_array_equal(
        CLASSIFICATION.combine(stack, "inverse_entropy"), inverse_entropy_ensemble(stack)
    )
    np.testing.assert_array_equal(CLASSIFICATION.combine(stack, "mean"), mean_probabilities(stack))
    assert CLASSIFICATION.members([0.5, 0.7, 0.6], top_k=1) == [0, 1, 2]  # every fold model
    validation_mae = [5.0, 3.0, 4.0, 3.0, 9.0]
    ranked = sorted(range(5), key=lambda i: (validation_mae[i], i))  # lowest MAE first, ties by position
    assert REGRESSION.members(validation_mae, top_k=3) == ranked[:3]
    assert REGRESSION.members(validation_mae, top_k=9) == ranked  # k capped at the versions there are
    values = rng.normal(size=(3, 7))
    np.testing.assert_allclose(REGRESSION.combine(values, "ignored"), values.sum(axis=0) / 3)


def test_no_skill_and_prediction_columns() -> None:
    prior = CLASSIFICATION.no_skill_values(np.array([0, 0, 1, 2]), 3, ("CN", "MCI", "AD"))
    np.testing.assert_allclose(prior, np.tile([0.5, 0.25, 0.25], (3, 1)))
    np.testing.assert_allclose(REGRESSION.no_skill_values(np.array([60.0, 70.0]), 2, ()), [65.0, 65.0])
    values = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    columns = CLASSIFICATION.prediction_columns(values, np.array([0, 1]), ("CN", "MCI", "AD"))
    assert list(columns) == ["p_CN", "p_MCI", "p_AD", "predicted", "target"]
    assert columns["predicted"] == ["CN", "AD"] and columns["target"] == ["CN", "MCI"]
    assert "target" not in CLASSIFICATION.prediction_columns(values, None, ("CN", "MCI", "AD"))
    assert list(REGRESSION.prediction_columns(np.ones(2), None, ())) == ["predicted"]


def test_losses_of_the_other_task_are_refused() -> None:
    with pytest.raises(ValueError, match="'mse' is for regression"):
        CLASSIFICATION.check_loss("mse")
    with pytest.raises(ValueError, match="'weighted_ce' is for classification"):
        REGRESSION.check_loss("weighted_ce")
    CLASSIFICATION.check_loss("weighted_ce")
    REGRESSION.check_loss("mse")


def test_labelled_rows() -> None:
    assert CLASSIFICATION.labelled(np.array([0.0, -1.0, 2.0])).tolist() == [True, False, True]
    assert REGRESSION.labelled(np.array([61.0, np.nan])).tolist() == [True, False]


def test_a_task_must_decide_everything() -> None:
    class Partial(Task):  # a third task that forgot its decisions cannot be made
        name = "partial"

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
    assert isinstance(CLASSIFICATION, Classification) and isinstance(REGRESSION, Regression)


# --- survival ------------------------------------------------------------------------------------------------

SURVIVAL = get_task("survival")


def _survival_frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "subject_id": [f"s{i}" for i in range(n)],
            "target": rng.exponential(30, n).astype(np.float32),
            "event": (rng.random(n) < 0.3).astype(float),
            "age": rng.uniform(55, 90, n),
        }
    )


def test_survival_selection_is_harrells_c_by_a_pair_loop() -> None:
    rng = np.random.default_rng(4)
    for _ in range(10):
        frame = _survival_frame(30, int(rng.integers(1000)))
        targets = SURVIVAL.cohort_targets(frame)
        risk = rng.normal(size=30)
        num = den = 0.0
        for i in range(30):
            for j in range(30):
                t_i, e_i, t_j, e_j = targets[i, 0], targets[i, 1], targets[j, 0], targets[j, 1]
                if e_i == 1 and (t_j > t_i or (t_j == t_i and e_j == 0)):
                    den += 1
                    num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
        assert SURVIVAL.selection.compute(risk, targets) == pytest.approx(num / den)
        assert SURVIVAL.metrics(risk, targets)["C"] == pytest.approx(num / den)
    assert (SURVIVAL.selection.name, SURVIVAL.selection.higher_is_better) == ("C", True)


def test_survival_partitions_keep_the_event_rate_and_the_time_bins_and_follow_the_split() -> None:
    frame, protocol = _survival_frame(200), ProtocolSettings(val_fraction=0.2, test_fraction=0.2)
    parts = SURVIVAL.partitions(frame, protocol, stratify=["event", "age"], seed=3)
    bins = time_strata(frame["target"], frame["event"], 5)  # 0.6/0.2/0.2: five partitions, tertiles fit
    expected = make_split(
        frame.assign(**{TIME_STRATUM: bins}), (0.6, 0.2, 0.2), stratify=["event", TIME_STRATUM, "age"],
        age_bins=protocol.age_bins, group="subject_id", seed=3,
    )  # fmt: skip
    pd.testing.assert_series_equal(parts, expected)
    assert "event time bin" not in frame.columns  # the caller's frame is left as it was
    share = {"train": 0.6, "val": 0.2, "test": 0.2}
    for (event, time_bin), rows in frame.groupby([frame["event"], bins]):  # every event × time-bin stratum
        counts = parts[rows.index].value_counts()
        for role, fraction in share.items():  # dealt over 5 partitions: within one subject per partition
            assert abs(counts.get(role, 0) - fraction * len(rows)) <= round(fraction * 5), (event, time_bin)
    assert SURVIVAL.folds(protocol) == 1 and SURVIVAL.test_partition(protocol) == "test"


def test_survival_partitions_fall_back_to_the_event_when_a_status_is_too_small(caplog) -> None:
    frame = _survival_frame(60, seed=1)
    frame["event"] = 0.0
    frame.loc[:6, "event"] = 1.0  # 7 events: too few for two time bins in 5 partitions
    protocol = ProtocolSettings(val_fraction=0.2, test_fraction=0.2)
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        parts = SURVIVAL.partitions(frame, protocol, stratify=["event"], seed=0)
    assert not caplog.records  # no stratum too small to spread, so nothing coarsened
    events = parts[frame["event"] == 1].value_counts()
    assert events.get("test", 0) >= 1 and events.get("val", 0) >= 1 and events["train"] >= 3


def test_survival_loss_output_and_no_skill() -> None:
    out = torch.randn(6, 1)
    assert SURVIVAL.output(out, 6).shape == (6,)
    with pytest.raises(ValueError, match=r"one log-risk per subject \[B=6\], got \(6, 2\)"):
        SURVIVAL.output(torch.randn(6, 2), 6)
    target = torch.tensor([[5.0, 1.0], [3.0, 0.0], [8.0, 1.0], [1.0, 1.0], [9.0, 0.0], [2.0, 0.0]])
    risk = torch.randn(6)
    from hyperfusion.nn.cox import cox_loss

    want = cox_loss(risk, target[:, 0], target[:, 1])
    assert float(SURVIVAL.loss(risk, target, class_weights=None, variance=1.0)) == pytest.approx(float(want))
    assert SURVIVAL.validation_loss(risk, target, class_weights=None, variance=1.0) == pytest.approx(
        float(want)
    )
    frame = _survival_frame(40)
    no_skill = SURVIVAL.no_skill_values(SURVIVAL.cohort_targets(frame), 40, ())
    assert SURVIVAL.metrics(no_skill, SURVIVAL.cohort_targets(frame))["C"] == 0.5


def test_survival_ensembles_average_risk_over_the_top_k_by_c() -> None:
    assert SURVIVAL.members([0.6, 0.8, float("nan"), 0.7], 2) == [1, 3]
    stack = np.random.default_rng(0).normal(size=(3, 5))
    np.testing.assert_allclose(SURVIVAL.combine(stack, "mean"), stack.mean(0))


def test_survival_checks_the_loss_and_the_events() -> None:
    with pytest.raises(ValueError, match="use 'cox' for survival"):
        SURVIVAL.check_loss("weighted_ce")
    SURVIVAL.check_loss("cox")
    frame = _survival_frame(40)
    frame["event"] = 0.0
    frame.loc[:2, "event"] = 1.0
    with pytest.raises(ValueError, match=r"cohort.csv: 3 event\(s\) among 40 subjects"):
        SURVIVAL.check_cohort(frame, ProtocolSettings(), classes=(), source="cohort.csv")


def test_survival_prediction_columns_and_labelled_rows() -> None:
    values, targets = np.array([0.3, -1.0]), np.array([[12.0, 1.0], [30.0, 0.0]], dtype=np.float32)
    columns = SURVIVAL.prediction_columns(values, targets, ())
    assert list(columns) == ["predicted", "time", "event"] and list(columns["event"]) == [1, 0]
    assert list(SURVIVAL.prediction_columns(values, None, ())) == ["predicted"]
    np.testing.assert_array_equal(SURVIVAL.labelled(np.array([[1.0, 0.0], [np.nan, np.nan]])), [True, False])
