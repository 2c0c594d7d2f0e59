"""Late fusion against the mixture of softmaxes computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hyperfusion.models.late_fusion import LateFusionClassifier


class Fixed(nn.Module):
    """A member returning given logits, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        return self.logits


def _members(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 3, generator=g) * 4, torch.randn(5, 3, generator=g) * 4


def test_average_rule_is_log_of_mean_softmax() -> None:
    a, b = _members()
    fused = LateFusionClassifier(Fixed(a), Fixed(b))(torch.zeros(5), torch.zeros(5))
    for i in range(5):
        pa = [math.exp(v) / sum(math.exp(u) for u in a[i].tolist()) for v in a[i].tolist()]
        pb = [math.exp(v) / sum(math.exp(u) for u in b[i].tolist()) for v in b[i].tolist()]
        for c in range(3):
            assert fused[i, c].exp().item() == pytest.approx((pa[c] + pb[c]) / 2, rel=1e-5)
    torch.testing.assert_close(fused.softmax(dim=1), fused.exp())  # valid logits: softmax gives p back


def test_learned_rule_starts_at_average_and_learns() -> None:
    a, b = _members(1)
    model = LateFusionClassifier(Fixed(a), Fixed(b), rule="learned")
    average = LateFusionClassifier(Fixed(a), Fixed(b))
    x = torch.zeros(5)
    torch.testing.assert_close(model(x, x), average(x, x))
    with torch.no_grad():
        model.mixing_logit.fill_(1.3)
    w = 1 / (1 + math.exp(-1.3))
    assert model.weight().item() == pytest.approx(w)
    expected = (w * a.softmax(1) + (1 - w) * b.softmax(1)).log()
    torch.testing.assert_close(model(x, x), expected)
    model(x, x)[:, 0].sum().backward()
    assert model.mixing_logit.grad is not None and model.mixing_logit.grad != 0


def test_extreme_logits_stay_finite() -> None:
    a = torch.tensor([[1000.0, -1000.0, 0.0]])
    b = torch.tensor([[-1000.0, 1000.0, 0.0]])
    out = LateFusionClassifier(Fixed(a), Fixed(b))(torch.zeros(1), torch.zeros(1))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp()[0, :2], torch.tensor([0.5, 0.5]))


def test_errors() -> None:
    a, b = _members()
    with pytest.raises(ValueError, match="rule"):
        LateFusionClassifier(Fixed(a), Fixed(b), rule="max")
    with pytest.raises(ValueError, match="differ in shape"):
        LateFusionClassifier(Fixed(a), Fixed(b[:, :2]))(torch.zeros(5), torch.zeros(5))
