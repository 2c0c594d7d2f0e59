"""Loss-entropy layer ranking: hand-checked entropy, a layer the loss cannot see, determinism, restoration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hyperfusion.engine.layer_selection import candidate_layers, histogram_entropy, loss_entropy
from hyperfusion.models import create_model


class TwoBranch(nn.Module):
    """``live`` reaches the output; ``dead`` is multiplied by zero, so re-drawing it never changes the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.live = nn.Linear(4, 3)
        self.dead = nn.Linear(4, 3)

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        x = image.flatten(1)
        return self.live(x) + 0.0 * self.dead(x)


def batches(n: int = 2) -> list[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(6, 1, 2, 2, 1, generator=generator),
            torch.randn(6, 2),
            torch.randint(0, 3, (6,), generator=generator),
        )
        for _ in range(n)
    ]


def test_histogram_entropy_matches_a_hand_computation():
    values = np.array([0.0, 0.1, 0.9, 1.0])  # two bins of [0, 1]: two values each -> 1 bit
    assert histogram_entropy(values, bins=2, value_range=(0.0, 1.0)) == pytest.approx(1.0)
    assert histogram_entropy(np.full(5, 0.3), bins=4, value_range=(0.0, 1.0)) == 0.0
    values = np.array([0.05, 0.3, 0.35, 0.8])  # counts 1, 2, 0, 1 over four bins
    p = np.array([1, 2, 1]) / 4
    assert histogram_entropy(values, bins=4, value_range=(0.0, 1.0)) == pytest.approx(-(p * np.log2(p)).sum())


def test_a_layer_the_loss_cannot_see_has_zero_entropy_and_parameters_are_restored():
    torch.manual_seed(1)
    model = TwoBranch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ranking = loss_entropy(model, batches(), draws=40, bins=10, seed=3)
    assert list(ranking["layer"]) == ["live", "dead"]
    dead = ranking.set_index("layer").loc["dead"]
    assert dead["entropy_bits"] == 0.0 and dead["loss_std"] == 0.0
    assert ranking.set_index("layer").loc["live", "entropy_bits"] > 1.0
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert model.training  # the mode is restored too


def test_ranking_is_reproducible_per_seed():
    model = TwoBranch()
    first = loss_entropy(model, batches(), draws=10, bins=5, seed=7)
    again = loss_entropy(model, batches(), draws=10, bins=5, seed=7)
    other = loss_entropy(model, batches(), draws=10, bins=5, seed=8)
    assert first.equals(again)
    assert not np.allclose(first["loss_mean"], other["loss_mean"])


def test_registry_backbone_candidates_and_two_view_batches():
    torch.manual_seed(0)
    model = create_model("ad-imaging", base_width=2, n_tabular=4)
    names = candidate_layers(model)
    assert "fc2" in " ".join(names) and any("shortcut" in n for n in names)
    generator = torch.Generator().manual_seed(0)
    two_view = [
        (torch.randn(4, 2, 1, 16, 16, 16, generator=generator), torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))
    ]
    ranking = loss_entropy(model, two_view, layers=names[-3:], draws=4, bins=4)
    assert set(ranking["layer"]) == set(names[-3:])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"draws": 1}, "draws"), ({"layers": ["nope"]}, "no layer named 'nope'"), ({"bins": 1}, "bins")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        loss_entropy(TwoBranch(), batches(), **kwargs)
    with pytest.raises(ValueError, match="at least one batch"):
        loss_entropy(TwoBranch(), [])
