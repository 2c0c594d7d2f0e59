"""The Cox partial-likelihood loss of one risk output per subject (Breslow or Efron ties).

A survival model outputs one log-risk ``eta`` per subject; the loss is the negative log partial likelihood
divided by the number of events, so its scale does not depend on the batch size or the censoring rate. Ties
in the event times follow Breslow (every tied event sees the whole risk set) or Efron (the tied events leave the
risk set a fraction at a time), as in scikit-survival's ``CoxPHSurvivalAnalysis(ties=...)``.

Minibatches: the risk set of an event is the subjects **of the same batch** whose time is at least its time
(the usual stochastic approximation of DeepSurv and DAFT); over the full cohort in one batch it is the exact
partial likelihood. A batch without an event carries no ranking information: its loss is an exact zero that
still depends on the outputs, so the optimiser step is a no-op rather than an error.

The pairwise form costs O(B^2) per batch, which is nothing at the batch sizes of 3D images.
"""

from __future__ import annotations

from typing import Literal

import torch

Ties = Literal["breslow", "efron"]
TIES: tuple[str, ...] = ("breslow", "efron")


def cox_loss(
    risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, *, ties: Ties = "efron"
) -> torch.Tensor:
    """Negative log partial likelihood per event of log-risks ``risk [B]`` given ``time [B]`` and ``event [B]``.

    Raises:
        ValueError: shapes that differ, an unknown ``ties``, or an event flag other than 0/1.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if risk.dim() != 1 or time.shape != risk.shape or event.shape != risk.shape:
        raise ValueError(
            f"risk, time and event must all have shape [B]; got {tuple(risk.shape)}, {tuple(time.shape)}, "
            f"{tuple(event.shape)}"
        )
    flags = event.detach()
    if not torch.all((flags == 0) | (flags == 1)):
        raise ValueError(f"event must be 0 (censored) or 1 (event seen), got {sorted(set(flags.tolist()))}")
    eta = risk.double()
    time, is_event = time.detach().double(), flags.bool()
    n_events = int(is_event.sum())
    if n_events == 0:
        return (risk * 0.0).sum()
    shift = eta.detach().max()
    weight = torch.exp(eta - shift)
    at_risk = time[None, :] >= time[:, None]  # [i, j]: j is at risk at subject i's time
    risk_sum = (at_risk * weight[None, :]).sum(1)  # S_R(t_i)
    if ties == "efron":
        tied = (time[None, :] == time[:, None]) & is_event[None, :] & is_event[:, None]
        tied_sum = (tied * weight[None, :]).sum(1)  # S_D(t_i): the events tied with i
        size = tied.sum(1).double()  # d_i
        order = torch.arange(len(eta), device=eta.device)
        rank = (tied & (order[None, :] < order[:, None])).sum(1).double()  # l_i in 0..d_i-1 within its tie
        risk_sum = risk_sum - rank / size.clamp_min(1.0) * tied_sum
    log_terms = eta - torch.log(risk_sum) - shift
    return -(log_terms[is_event].sum() / n_events).to(risk.dtype)
