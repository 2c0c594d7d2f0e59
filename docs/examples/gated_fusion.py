"""A new fusion method in one file: the tabular record gates the features entering ``fc1``.

Load it with ``plugins: [gated_fusion.py]`` in a run config and list ``ad-gated`` under ``methods:``; it then
trains, is ensembled and reported beside the built-in methods, with ``ad-imaging`` and ``ad-tabular`` as its
single-modality members (its family is ``ad``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hyperfusion.models import register_model
from hyperfusion.models.ad import AD_INPUT, AD_TABULAR, ad_encoders, ad_trunk
from hyperfusion.nn.conditioned import ConditionedModel, attach, encoder_width
from hyperfusion.nn.fusion import input_channels
from hyperfusion.nn.slots import ConditionSlot


class GatedInput(ConditionSlot):
    """``module(x * 2 sigmoid(W h + b))``: a per-feature gate from the encoded record, 1 at initialisation."""

    kind = "gate"

    def __init__(self, module: nn.Module, channels: int, width: int, name: str) -> None:
        super().__init__(name, None)
        self.module = module
        self.gate = nn.Linear(width, channels)
        nn.init.zeros_(self.gate.weight)  # starts as the plain network: every gate is 2 sigmoid(0) = 1
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        gate = 2 * torch.sigmoid(self.gate(self.take_condition()))
        return self.module(x * gate.view(*gate.shape, *([1] * (x.dim() - 2))), *args, **kwargs)


@register_model(
    task="classification",
    fusion="intermediate",
    uses_image=True,
    uses_tabular=True,
    input_shape=AD_INPUT,
    n_tabular=AD_TABULAR,
    trunk=ad_trunk,
    family="ad",
)
def ad_gated(network: nn.Module, *, n_tabular: int = AD_TABULAR, embedding_dim: int = 8) -> ConditionedModel:
    """The AD trunk with its ``fc1`` input gated by the record (encoded by the family's tabular MLP)."""
    encoder = ad_encoders("mlp", ["fc1"], n_tabular, embedding_dim, shared=True)
    return attach(
        network,
        ["fc1"],
        encoder,
        n_tabular=n_tabular,
        width_of=lambda e: encoder_width(e, n_tabular),
        make_slot=lambda name, plain, width: GatedInput(plain, input_channels(plain, name), width, name),
    )
