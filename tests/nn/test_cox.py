"""The Cox loss against a per-event loop, scikit-survival's partial likelihood, and a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sksurv.linear_model.coxph import CoxPHOptimizer

from hyperfusion.nn.cox import cox_loss


def _loop(eta: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str) -> float:
    """The textbook sum over distinct event times (Efron 1977; Breslow 1974), per event."""
    total = 0.0
    for t in np.unique(time[event == 1]):
        tied = (time == t) & (event == 1)
        d = int(tied.sum())
        at_risk = np.exp(eta[time >= t]).sum()
        tied_sum = np.exp(eta[tied]).sum()
        total += eta[tied].sum()
        for k in range(d):
            total -= math.log(at_risk - (k / d if ties == "efron" else 0.0) * tied_sum)
    return -total / int(event.sum())


def _random(rng: np.random.Generator, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eta = rng.normal(size=n) * 2
    time = rng.integers(1, 6, size=n).astype(float) if ties else rng.exponential(10, size=n)
    event = (rng.random(n) < 0.6).astype(float)
    event[0] = 1.0
    return eta, time, event


@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("tied_times", [False, True])
def test_matches_loop_and_scikit_survival_on_random_inputs(ties: str, tied_times: bool) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        eta, time, event = _random(rng, n, tied_times)
        ours = float(cox_loss(torch.tensor(eta), torch.tensor(time), torch.tensor(event), ties=ties))
        assert ours == pytest.approx(_loop(eta, time, event, ties), abs=1e-9)
        sksurv = CoxPHOptimizer(eta[:, None], event.astype(bool), time, np.zeros(1), ties).nlog_likelihood(
            np.ones(1)
        )
        assert ours * event.sum() / n == pytest.approx(sksurv, abs=1e-9)  # sksurv divides by n, not events


def test_by_hand_two_tied_events() -> None:
    # eta = log(1), log(2), log(3); times 1, 1, 2; the first two are events tied at time 1
    eta = torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    time, event = torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    breslow = -(math.log(1 / 6) + math.log(2 / 6)) / 2
    efron = -(math.log(1) + math.log(2) - math.log(6) - math.log(6 - 1.5)) / 2
    assert float(cox_loss(eta, time, event, ties="breslow")) == pytest.approx(breslow)
    assert float(cox_loss(eta, time, event, ties="efron")) == pytest.approx(efron)


def test_gradient_matches_finite_differences_and_large_risks_are_stable() -> None:
    rng = np.random.default_rng(0)
    eta, time, event = _random(rng, 12, True)
    x = torch.tensor(eta, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: cox_loss(r, torch.tensor(time), torch.tensor(event)), (x,))
    big = torch.tensor(eta + 800.0)  # exp(800) overflows without the shift; the loss is shift-invariant
    assert float(cox_loss(big, torch.tensor(time), torch.tensor(event))) == pytest.approx(
        _loop(eta, time, event, "efron")
    )


def test_a_batch_without_events_is_a_zero_that_keeps_the_graph() -> None:
    risk = torch.randn(5, requires_grad=True)
    loss = cox_loss(risk, torch.arange(5.0), torch.zeros(5))
    loss.backward()
    assert loss.item() == 0.0 and risk.grad is not None and torch.all(risk.grad == 0)


def test_bad_input_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="ties must be one of"):
        cox_loss(torch.zeros(2), torch.ones(2), torch.ones(2), ties="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        cox_loss(torch.zeros(2, 1), torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="event must be 0"):
        cox_loss(torch.zeros(2), torch.ones(2), torch.tensor([1.0, 2.0]))
