"""The tabular MLP and its adapter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperfusion.models.tabular import TabularMLP, TabularOnlyModel, embedding_mlp


def test_paper_layout_and_count() -> None:
    mlp = TabularMLP(16, 3)
    assert [type(m) for m in mlp.embedding] == [nn.Linear, nn.BatchNorm1d, nn.PReLU]
    assert sum(p.numel() for p in mlp.parameters()) == 180  # the authors' tabular baseline
    assert mlp.embedding[2].weight.item() == pytest.approx(0.25)


def test_forward_is_classifier_of_embedding_and_adapter_ignores_image() -> None:
    mlp = TabularMLP(5, 4, hidden=(6, 3)).eval()
    t = torch.randn(7, 5)
    expected = mlp.classifier(mlp.embedding[5](mlp.embedding[4](mlp.embedding[3](mlp.embedding[:3](t)))))
    torch.testing.assert_close(mlp(t), expected)
    model = TabularOnlyModel(mlp)
    torch.testing.assert_close(model(None, t), mlp(t))
    torch.testing.assert_close(model(torch.randn(7, 1, 4, 4, 4), t), mlp(t))


def test_no_hidden_layer_is_a_linear_model() -> None:
    mlp = TabularMLP(5, 2, hidden=())
    assert len(mlp.embedding) == 0 and mlp.classifier.in_features == 5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: TabularMLP(0, 3), "in_features"),
        (lambda: TabularMLP(4, 0), "out_features"),
        (lambda: embedding_mlp(4, (8, 0)), "hidden"),
        (lambda: TabularMLP(4, 3)(torch.randn(2, 5)), r"tabular must have shape \[B, 4\], got \(2, 5\)"),
        (lambda: TabularMLP(4, 3)(torch.randn(2)), "tabular"),
    ],
)
def test_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
