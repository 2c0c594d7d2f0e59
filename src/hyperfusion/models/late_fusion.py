"""Late (decision-level) fusion: combine the class probabilities of an imaging model and a tabular model.

``p = w·softmax(a) + (1 − w)·softmax(b)`` with ``a``, ``b`` the two models' logits. Rule ``"average"`` fixes
``w = ½`` (the paper's Appendix B fuses "the soft classification results" of the imaging-only and tabular-only
models); rule ``"learned"`` learns ``w = sigmoid(θ)``, starting at ``θ = 0`` (the average). The output is
``log p``, which are valid logits (``softmax(log p) = p``), so cross-entropy and every downstream softmax work
unchanged. The two members can be trained jointly through this model, or trained separately and then combined.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

RULES = ("average", "learned")


class LateFusionClassifier(nn.Module):
    """Mixture of the soft decisions of two classifiers, each called ``member(image, tabular)``.

    Args:
        imaging: the imaging model (e.g. ``create_model("ad-imaging")``), kept as :attr:`imaging`.
        tabular: the tabular model (e.g. ``create_model("ad-tabular")``), kept as :attr:`tabular`.
        rule: ``"average"`` (fixed ``w = ½``, no parameters of its own) or ``"learned"`` (one mixing logit).

    Raises:
        ValueError: for an unknown rule, or members whose numbers of classes differ (at the first call).
    """

    def __init__(self, imaging: nn.Module, tabular: nn.Module, *, rule: str = "average") -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.rule = rule
        self.imaging = imaging
        self.tabular = tabular
        self.mixing_logit = nn.Parameter(torch.zeros(())) if rule == "learned" else None

    def weight(self) -> Tensor:
        """The imaging model's weight ``w`` in the mixture."""
        if self.mixing_logit is None:
            return torch.tensor(0.5)
        return torch.sigmoid(self.mixing_logit)

    def forward(self, image: Tensor, tabular: Tensor) -> Tensor:
        a = self.imaging(image, tabular)
        b = self.tabular(image, tabular)
        if a.shape != b.shape:
            raise ValueError(
                f"member outputs differ in shape: imaging {tuple(a.shape)}, tabular {tuple(b.shape)}"
            )
        if self.mixing_logit is None:
            log_w = log_1mw = torch.full((), -math.log(2.0), dtype=a.dtype, device=a.device)
        else:
            log_w = nn.functional.logsigmoid(self.mixing_logit)
            log_1mw = nn.functional.logsigmoid(-self.mixing_logit)
        # log(w·p_a + (1−w)·p_b) computed stably in log space.
        stacked = torch.stack([log_w + a.log_softmax(dim=1), log_1mw + b.log_softmax(dim=1)])
        return torch.logsumexp(stacked, dim=0)
