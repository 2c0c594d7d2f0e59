"""Late fusion against the mixture of softmaxes computed by hand; the fitted weight against a fine grid search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hyperfusion.models.late_fusion import LateFusionClassifier, fit_late_fusion_weight
from tests.faults import fault


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


def _softmax(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


@pytest.mark.parametrize(
    ("rule", "w"), [("average", 0.5), ("learned", 0.8), ("learned", 0.0), ("learned", 1.0)]
)
def test_output_is_log_of_the_weighted_mean_softmax(rule: str, w: float) -> None:
    a, b = _members()
    fused = LateFusionClassifier(Fixed(a), Fixed(b), rule=rule, weight=w)(torch.zeros(5), torch.zeros(5))
    for i in range(5):
        pa, pb = _softmax(a[i].tolist()), _softmax(b[i].tolist())
        for c in range(3):
            assert fused[i, c].exp().item() == pytest.approx(w * pa[c] + (1 - w) * pb[c], rel=1e-5, abs=1e-12)
    torch.testing.assert_close(fused.softmax(dim=1), fused.exp())  # valid logits: softmax gives p back


def test_weight_is_a_persistent_buffer_not_a_parameter() -> None:
    a, b = _members(1)
    model = LateFusionClassifier(Fixed(a), Fixed(b), rule="learned", weight=0.3)
    assert "imaging_weight" in model.state_dict()
    assert all(not name.startswith("imaging_weight") for name, _ in model.named_parameters())
    other = LateFusionClassifier(Fixed(a), Fixed(b), rule="learned")
    other.load_state_dict(model.state_dict())
    assert other.imaging_weight.item() == pytest.approx(0.3)
    other.set_imaging_weight_(0.9)
    x = torch.zeros(5)
    torch.testing.assert_close(other(x, x), (0.9 * a.softmax(1) + 0.1 * b.softmax(1)).log())


def test_extreme_logits_stay_finite() -> None:
    a = torch.tensor([[1000.0, -1000.0, 0.0]])
    b = torch.tensor([[-1000.0, 1000.0, 0.0]])
    out = LateFusionClassifier(Fixed(a), Fixed(b))(torch.zeros(1), torch.zeros(1))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp()[0, :2], torch.tensor([0.5, 0.5]))


@fault(
    "late fusion",
    "unknown rule, weight outside [0, 1], a weight with rule='average', or members that disagree",
    "ValueError naming the value",
)
def test_errors() -> None:
    a, b = _members()
    with pytest.raises(ValueError, match="rule"):
        LateFusionClassifier(Fixed(a), Fixed(b), rule="max")
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        LateFusionClassifier(Fixed(a), Fixed(b), rule="learned", weight=1.5)
    with pytest.raises(ValueError, match=r"rule='average' means weight 0\.5"):
        LateFusionClassifier(Fixed(a), Fixed(b), weight=0.7)
    with pytest.raises(ValueError, match=r"fixed at 0\.5"):
        LateFusionClassifier(Fixed(a), Fixed(b)).set_imaging_weight_(0.7)
    with pytest.raises(ValueError, match="differ in shape"):
        LateFusionClassifier(Fixed(a), Fixed(b[:, :2]))(torch.zeros(5), torch.zeros(5))


def _grid_best(p_img, p_tab, y, class_weights) -> float:
    """The best w on a grid of 200,001 points, the obvious way."""
    grid = np.linspace(0.0, 1.0, 200_001)
    rows = np.arange(len(y))
    p, q, c = p_img[rows, y], p_tab[rows, y], class_weights[y]
    with np.errstate(divide="ignore"):
        values = (c[None, :] * np.log(grid[:, None] * p[None, :] + (1 - grid[:, None]) * q[None, :])).sum(1)
    return float(grid[np.argmax(values)])


def _probabilities(rng: np.random.Generator, n: int, c: int, sharpness: float) -> np.ndarray:
    logits = rng.normal(size=(n, c)) * sharpness
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", range(6))
def test_fitted_weight_matches_a_fine_grid_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 60, 3
    y = rng.integers(0, c, n)
    p_img = _probabilities(rng, n, c, 2.0 + seed % 3)
    p_tab = _probabilities(rng, n, c, 1.0)
    class_weights = rng.uniform(0.2, 2.0, c) if seed % 2 else np.ones(c)
    w = fit_late_fusion_weight(p_img, p_tab, y, None if seed % 2 == 0 else class_weights)
    assert 0.0 <= w <= 1.0
    assert w == pytest.approx(_grid_best(p_img, p_tab, y, class_weights), abs=1e-5)


def test_end_points_and_tensors() -> None:
    y = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[y] * 0.98 + 0.01
    useless = np.full((4, 2), 0.5)
    assert fit_late_fusion_weight(perfect, useless, y) == 1.0
    assert fit_late_fusion_weight(useless, perfect, y) == 0.0
    # torch tensors, integer targets as a tensor, a class with weight 0 ignored
    weights = torch.tensor([1.0, 0.0])
    assert (
        fit_late_fusion_weight(torch.tensor(perfect), torch.tensor(useless), torch.tensor(y), weights) == 1.0
    )
    # a member giving one true class probability 0 is never given all the weight:
    # L(w) = 3·log((1 + w) / 2) + log((1 − w) / 2) peaks at w = ½
    sure = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    targets = np.array([0, 1, 0, 0])
    w = fit_late_fusion_weight(sure, useless, targets)
    assert w == pytest.approx(0.5, abs=1e-12)
    assert w == pytest.approx(_grid_best(sure, useless, targets, np.ones(2)), abs=1e-5)


@fault(
    "late fusion",
    "fit_late_fusion_weight given non-probabilities, mismatched shapes or bad targets/weights",
    "ValueError naming the input",
)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_imaging": np.full((4, 2), 0.7)}, "sum to 1"),
        ({"p_imaging": -np.full((4, 2), 0.5)}, "non-negative"),
        ({"p_tabular": np.full((3, 2), 0.5)}, "same shape"),
        ({"p_imaging": np.full(4, 0.5)}, r"\[N, C\]"),
        ({"targets": np.array([0, 1, 2, 0])}, r"classes in \[0, 2\)"),
        ({"targets": np.array([0.0, 1.5, 1.0, 0.0])}, "integer"),
        ({"class_weights": [1.0]}, "class_weights"),
        ({"class_weights": [0.0, 0.0]}, "no row carries weight"),
    ],
)
def test_fit_rejects_bad_inputs(kwargs: dict, message: str) -> None:
    arguments = {
        "p_imaging": np.full((4, 2), 0.5),
        "p_tabular": np.full((4, 2), 0.5),
        "targets": np.array([0, 1, 1, 0]),
        "class_weights": None,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        fit_late_fusion_weight(**arguments)


@pytest.mark.parametrize("rule", ["average", "learned"])
def test_compose_hook_fits_the_rule_and_mixes_as_forward(rule: str) -> None:
    a, b = _members(3)
    rng = np.random.default_rng(0)
    p_a = rng.dirichlet(np.ones(3), 40)
    p_b = rng.dirichlet(np.ones(3), 40)
    y = rng.integers(0, 3, 40)
    weights = np.array([1.0, 2.0, 0.5])
    template = LateFusionClassifier(nn.Identity(), nn.Identity(), rule=rule)
    composed = template.compose(Fixed(a), Fixed(b), (p_a, p_b, y), class_weights=weights)
    expected = 0.5 if rule == "average" else fit_late_fusion_weight(p_a, p_b, y, class_weights=weights)
    assert float(composed.imaging_weight) == expected and composed.rule == rule
    w = expected
    np.testing.assert_allclose(composed.mix(p_a, p_b), w * p_a + (1 - w) * p_b, rtol=0, atol=0)
    probabilities = composed(torch.zeros(5, 1), torch.zeros(5, 1)).exp().detach().numpy()
    mixed = composed.mix(a.softmax(dim=1).numpy(), b.softmax(dim=1).numpy())
    np.testing.assert_allclose(probabilities, mixed, rtol=1e-5)  # the record's mix is the model's output
