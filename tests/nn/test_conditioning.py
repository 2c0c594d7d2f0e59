"""The FiLM and DAFT modulators against per-sample references written from the formulas."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.nn.conditioning import DAFT, FiLM
from tests.faults import fault


def _reference(module: FiLM, x: torch.Tensor, t: torch.Tensor, use_image: bool) -> torch.Tensor:
    """x'_b = (1 + Δγ_b) ⊙ x_b + β_b with [Δγ_b; β_b] = W2 relu(W1 h_b), one sample and one channel at a time."""
    w1, w2 = module.generator[0].weight, module.generator[2].weight
    out = torch.empty_like(x)
    channels = x.shape[1]
    for b in range(x.shape[0]):
        h = t[b]
        if use_image:
            h = torch.cat([torch.stack([x[b, c].mean() for c in range(channels)]), t[b]])
        params = w2 @ torch.relu(w1 @ h)
        for c in range(channels):
            out[b, c] = (1 + params[c]) * x[b, c] + params[channels + c]
    return out


@pytest.mark.parametrize(("kind", "use_image"), [(FiLM, False), (DAFT, True)])
def test_matches_per_sample_reference(kind: type[FiLM], use_image: bool) -> None:
    g = torch.Generator().manual_seed(0)
    module = kind(4, 3, bottleneck=5, init_std=0.5)
    x, t = torch.randn(3, 4, 5, 4, 3, generator=g), torch.randn(3, 3, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(module(x, t), _reference(module, x, t, use_image), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [FiLM, DAFT])
def test_starts_near_identity_and_is_identity_with_zero_init(kind: type[FiLM]) -> None:
    x, t = torch.randn(4, 8, 3, 3, 3), torch.randn(4, 6)
    near = kind(8, 6, init_std=0.01)(x, t)  # the small-start convention, on request
    assert (near - x).abs().max() < 0.1
    scale, shift = kind(8, 6, init_std=0.01).scale_shift(x, t)
    assert (scale - 1).abs().max() < 0.1 and shift.abs().max() < 0.1
    # the default (1) starts with modulations of the encoder output's own size: far from the identity
    scale, shift = kind(8, 6).scale_shift(x, t)
    assert (scale - 1).abs().max() > 0.1 and shift.abs().max() > 0.1
    torch.testing.assert_close(kind(8, 6, init_std=0.0)(x, t), x)


def test_parameter_counts_follow_the_bias_free_bottleneck() -> None:
    # the authors' FiLM and DAFT generators: 1,904 and 2,800 parameters for C=128, F=16, bottleneck 7.
    assert sum(p.numel() for p in FiLM(128, 16, bottleneck=7).parameters()) == 7 * (16 + 256) == 1_904
    assert sum(p.numel() for p in DAFT(128, 16, bottleneck=7).parameters()) == 7 * (144 + 256) == 2_800


def test_works_on_any_spatial_rank() -> None:
    assert FiLM(3, 2)(torch.randn(2, 3, 7), torch.randn(2, 2)).shape == (2, 3, 7)
    assert DAFT(3, 2)(torch.randn(2, 3), torch.randn(2, 2)).shape == (2, 3)


@fault(
    "fusion",
    "FiLM/DAFT modulator with a bad size or a feature map of the wrong shape",
    "ValueError naming the argument or both shapes",
)
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FiLM(0, 3), "num_channels"),
        (lambda: FiLM(3, 0), "tabular_features"),
        (lambda: DAFT(3, 2, bottleneck=0), "bottleneck"),
        (lambda: FiLM(3, 2, init_std=-1.0), "init_std"),
        (lambda: FiLM(3, 2)(torch.randn(2, 4, 3), torch.randn(2, 2)), r"\[B, 3, \.\.\.\]"),
        (lambda: FiLM(3, 2)(torch.randn(2, 3, 3), torch.randn(3, 2)), "tabular"),
    ],
)
def test_illegal_arguments_and_inputs(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
