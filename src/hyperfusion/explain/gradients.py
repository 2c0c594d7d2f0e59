"""Integrated gradients (Sundararajan et al. 2017): a Riemann sum of gradients along the straight path.

``IG_i(x) = (x_i − b_i) · ∫₀¹ ∂f(b + α(x − b))/∂x_i dα``, approximated with the midpoint rule over ``steps``
points ``α_k = (k + ½) / steps``. For a model linear in its input the gradient is constant along the path, so the
sum is exact: ``IG = (x − b) ⊙ w``. Completeness, ``Σ_i IG_i = f(x) − f(b)``, holds up to the quadrature error,
which :func:`completeness_gap` reports.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

DEFAULT_STEPS = 32


def integrated_gradients(
    f: Callable[[Tensor], Tensor], x: Tensor, baseline: Tensor, *, steps: int = DEFAULT_STEPS
) -> Tensor:
    """Integrated gradients of ``f`` at each sample of ``x`` against ``baseline``.

    Args:
        f: maps a batch ``[B, ...]`` to one scalar per sample ``[B]`` (the output being explained).
        x: inputs ``[B, ...]``.
        baseline: the reference input, broadcastable to ``x`` (e.g. the training rows' mean vector).
        steps: points of the midpoint rule.

    Returns:
        Attributions shaped and typed like ``x``.

    Raises:
        ValueError: ``steps`` < 1, or ``f`` that does not return one value per sample.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    x = x.detach()
    baseline = torch.broadcast_to(baseline.detach().to(x.dtype).to(x.device), x.shape)
    delta = x - baseline
    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        point = (baseline + alpha * delta).requires_grad_(True)
        out = f(point)
        if out.shape != (x.shape[0],):
            raise ValueError(f"f must return one value per sample [{x.shape[0]}], got {tuple(out.shape)}")
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), point, allow_unused=True)
            if grad is not None:  # None: the output does not depend on this input at all
                total += grad
    return delta * total / steps


def completeness_gap(
    f: Callable[[Tensor], Tensor], x: Tensor, baseline: Tensor, attributions: Tensor
) -> Tensor:
    """``Σ IG − (f(x) − f(b))`` per sample: how far the quadrature is from the exact path integral."""
    with torch.no_grad():
        b = torch.broadcast_to(baseline.to(x.dtype).to(x.device), x.shape)
        change = f(x) - f(b)
    return attributions.flatten(1).sum(dim=1) - change
