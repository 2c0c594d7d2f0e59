"""Integrated gradients against hand-computable cases and a per-sample reference."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.explain.gradients import completeness_gap, integrated_gradients
from tests.faults import fault


@pytest.mark.parametrize("steps", [1, 7, 32])
def test_linear_model_gives_the_input_change_times_the_weights_exactly(steps):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    baseline = torch.randn(6, generator=gen, dtype=torch.float64)

    ig = integrated_gradients(lambda t: t @ w + 3.0, x, baseline, steps=steps)

    torch.testing.assert_close(ig, (x - baseline) * w, rtol=0, atol=1e-12)


def test_square_from_zero_is_the_square_exactly():
    """f = Σ x²: along the path the gradient is 2αx, whose midpoint mean is x, so IG_i = x_i² (any step count)."""
    x = torch.randn(4, 3, dtype=torch.float64)
    ig = integrated_gradients(lambda t: (t**2).sum(dim=1), x, torch.zeros(3, dtype=torch.float64), steps=5)
    torch.testing.assert_close(ig, x**2, rtol=0, atol=1e-12)


def test_batched_attributions_equal_a_per_sample_loop_and_are_complete():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()

    def f(t):
        return net(t)[:, 0]

    x = torch.randn(6, 5, dtype=torch.float64)
    baseline = torch.randn(5, dtype=torch.float64)
    steps = 64
    ig = integrated_gradients(f, x, baseline, steps=steps)

    reference = torch.zeros_like(x)  # one sample, one point at a time
    for i in range(len(x)):
        for k in range(steps):
            point = (baseline + (k + 0.5) / steps * (x[i] - baseline)).clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(net(point[None])[0, 0], point)
            reference[i] += grad * (x[i] - baseline) / steps
    torch.testing.assert_close(ig, reference, rtol=1e-10, atol=1e-12)
    gap = completeness_gap(f, x, baseline, ig)
    assert gap.abs().max() < 1e-3  # the midpoint rule's error at 64 steps on a smooth function


@fault("explain", "integrated gradients with zero steps", "ValueError naming steps")
def test_zero_steps_is_refused():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        integrated_gradients(lambda t: t.sum(1), torch.ones(2, 3), torch.zeros(3), steps=0)


@fault(
    "explain", "an explained function that returns more than one value per sample", "ValueError naming shapes"
)
def test_function_with_the_wrong_output_shape_is_refused():
    with pytest.raises(ValueError, match=r"one value per sample \[2\]"):
        integrated_gradients(lambda t: t, torch.ones(2, 3), torch.zeros(3), steps=2)
