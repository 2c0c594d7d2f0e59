"""Generated weights: subgroup separation against a direct computation, and on a toy model built to separate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hyperfusion.engine.target import StandardizedRegressor
from hyperfusion.explain.generated import generate, groupings, separation, spread
from hyperfusion.nn import hyperize


def test_separation_equals_the_distance_of_group_means_over_the_pooled_spread():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(11, 6))
    labels = ["a", "b", "a", "c", None, "b", "a", "b", "c", "a", np.nan]

    table = separation(vectors, labels, permutations=0)

    assert table[["group_a", "group_b"]].values.tolist() == [["a", "b"], ["a", "c"], ["b", "c"]]
    for row in table.itertuples():
        a = vectors[[i for i, v in enumerate(labels) if v == row.group_a]]
        b = vectors[[i for i, v in enumerate(labels) if v == row.group_b]]
        distance = np.linalg.norm(a.mean(0) - b.mean(0))
        within = np.sqrt(
            (((a - a.mean(0)) ** 2).sum() + ((b - b.mean(0)) ** 2).sum()) / (len(a) + len(b) - 2)
        )
        assert (row.n_a, row.n_b) == (len(a), len(b))
        assert row.distance == pytest.approx(distance) and row.within == pytest.approx(within)
        assert row.ratio == pytest.approx(distance / within)
        assert row.null_ratio == pytest.approx(np.sqrt(1 / len(a) + 1 / len(b)))
        assert row.relative_distance == pytest.approx(distance / np.linalg.norm(np.r_[a, b].mean(0)))


def test_groups_without_spread_are_infinitely_apart_and_identical_ones_undefined():
    """A record holding only sex gives every subject of a sex the same weights (brain age)."""
    vectors = np.repeat([[1.0, 2.0], [1.5, 2.0]], 6, axis=0)
    row = separation(vectors, ["F"] * 6 + ["M"] * 6, permutations=99).iloc[0]
    assert row.ratio == np.inf and row.within == 0
    assert row.relative_distance == pytest.approx(0.5 / np.linalg.norm([1.25, 2.0]))
    assert row.p_value < 0.05  # no shuffle but the identity keeps the groups apart
    same = separation(np.ones((6, 3)), ["a", "b"] * 3, permutations=99).iloc[0]
    assert np.isnan(same.ratio) and np.isnan(same.p_value)


def test_groups_of_one_subject_are_left_out():
    table = separation(np.eye(5), ["a", "a", "b", "b", "c"], permutations=0)
    assert table[["group_a", "group_b"]].values.tolist() == [["a", "b"]]


def test_spread_is_the_across_subject_standard_deviation():
    vectors = np.random.default_rng(1).normal(2.0, 0.5, size=(30, 4))
    summary = spread(vectors)
    std = vectors.std(axis=0)
    assert summary["parameters"] == 4
    assert summary["std_mean"] == pytest.approx(std.mean()) and summary["std_max"] == pytest.approx(std.max())
    assert summary["relative_spread"] == pytest.approx(std.mean() / np.sqrt((vectors.mean(0) ** 2).mean()))


def toy_hyper_model() -> nn.Module:
    """A hyper layer whose embedding reads only column 0 of the record: built to separate by that column."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    embedding = nn.Linear(2, 2)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor([[2.0, 0.0], [-1.0, 0.0]]))
        embedding.bias.zero_()
    return hyperize(net, ["1"], embedding)


def test_generated_weights_separate_the_groups_the_model_conditions_on():
    model = toy_hyper_model()
    rng = np.random.default_rng(2)
    group = np.repeat([0, 1], 20)
    tabular = np.c_[group + rng.normal(0, 0.3, 40), rng.normal(0, 1, 40)].astype(np.float32)

    (layer,) = generate(model, torch.from_numpy(tabular))

    assert layer.layer == "1" and layer.weight.shape == (40, 3, 8) and layer.bias.shape == (40, 3)
    assert layer.embedding.shape == (40, 2)
    fused_weight, _ = model.hyper_layers["1"].generate(model.embed(torch.from_numpy(tabular))["1"])
    np.testing.assert_allclose(layer.weight, fused_weight.detach().numpy())
    by_column = separation(layer.vectors(), [str(g) for g in group], permutations=199, seed=0).iloc[0]
    assert by_column["ratio"] > 5 * by_column["null_ratio"] and by_column["p_value"] == pytest.approx(1 / 200)
    unrelated = np.random.default_rng(3).permutation(group)  # a grouping the model knows nothing about
    by_chance = separation(layer.vectors(), [str(g) for g in unrelated], permutations=199, seed=0).iloc[0]
    assert by_chance["ratio"] < 2 * by_chance["null_ratio"] and by_chance["p_value"] > 0.05


def test_models_without_hyper_layers_generate_nothing():
    assert generate(nn.Linear(3, 2), torch.zeros(2, 3)) == []
    wrapped = StandardizedRegressor(toy_hyper_model())  # a regression wrapper is looked through
    assert [w.layer for w in generate(wrapped, torch.zeros(2, 2))] == ["1"]


def test_groupings_take_categories_few_valued_numbers_and_classes():
    frame = pd.DataFrame(
        {
            "SEX": ["F", "M", None, "M"],
            "APOE4": [0.0, 1.0, 2.0, np.nan],
            "AGE": [60.0, 61.0, 62.0, 63.0],
            "label": ["CN", "AD", "AD", "CN"],
        }
    )
    out = groupings(frame, [("SEX", "binary"), ("APOE4", "continuous"), ("AGE", "continuous")],
                    predicted=["AD", "AD", "CN", "CN"], max_levels=3)  # fmt: skip
    assert out == {
        "SEX": ["F", "M", None, "M"],
        "APOE4": ["0", "1", "2", None],
        "target": ["CN", "AD", "AD", "CN"],
        "predicted": ["AD", "AD", "CN", "CN"],
    }
