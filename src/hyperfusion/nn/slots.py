"""Condition slots: the modules a fusion puts inside an image network where the tabular data enters it.

A slot replaces one submodule of the primary network and is called exactly like it (``slot(x)``), so the network's
own code never changes. It computes with the *condition* of the current batch — the tabular record after the
slot's encoder — which the owning :class:`~hyperfusion.nn.ConditionedModel` hands it just before the network runs
and takes back right after. Three kinds cover the fusion methods:

* :class:`ConditionedLayer` — HyperFusion: the layer's weights are generated from the condition.
* :class:`ModulatedInput` — FiLM / DAFT: the wrapped submodule's input is scaled and shifted per channel.
* :class:`ConcatInput` — concatenation: a linear layer reads ``[x; condition]``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from hyperfusion.nn.conditioning import FiLM
from hyperfusion.nn.hyper import HyperLayer


class ConditionSlot(nn.Module):
    """Base class of the slots: where a condition is kept for the duration of one forward pass.

    Attributes:
        name: qualified name of the replaced submodule in the primary network.
        source: index of the tabular encoder (in the owning model's ``encoders``) whose output this slot reads,
            or ``None`` for the raw tabular vector.
        condition: the current batch's condition ``[B, F]`` while the owning model runs, else ``None``.
    """

    kind = "slot"

    def __init__(self, name: str, source: int | None) -> None:
        super().__init__()
        self.name = name
        self.source = source
        self.condition: Tensor | None = None

    def take_condition(self) -> Tensor:
        """The condition of the current batch; a clear error when the network is called on its own."""
        condition = self.condition
        if condition is None:
            raise RuntimeError(
                f"conditioned layer {self.name!r} was called without a condition: call the fused model as "
                "model(image, tabular), not its .network directly"
            )
        return condition


class ConditionedLayer(ConditionSlot):
    """HyperFusion's slot: applies its hyper layer with the condition as the embedding, ``hyper(x, e)``."""

    kind = "hyper"

    def __init__(self, hyper: HyperLayer, name: str, source: int | None = 0) -> None:
        super().__init__(name, source)
        self.hyper = hyper

    def forward(self, x: Tensor) -> Tensor:
        return self.hyper(x, self.take_condition())


class ModulatedInput(ConditionSlot):
    """FiLM / DAFT slot: ``module(modulator(x, h), *rest)``, only the first input is modulated.

    Args:
        module: the wrapped submodule of the primary network (kept, with its parameters, as :attr:`module`).
        modulator: a :class:`~hyperfusion.nn.conditioning.FiLM` or :class:`~hyperfusion.nn.conditioning.DAFT`.
        name, source: see :class:`ConditionSlot`.
    """

    def __init__(self, module: nn.Module, modulator: FiLM, name: str, source: int | None) -> None:
        super().__init__(name, source)
        self.module = module
        self.modulator = modulator
        self.kind = type(modulator).__name__.lower()

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.module(self.modulator(x, self.take_condition()), *args, **kwargs)


class ConcatInput(ConditionSlot):
    """Concatenation slot: a linear layer applied to ``[x; h]``, i.e. ``module(x) + tabular(h)``.

    Splitting the widened weight ``[W_x, W_h]`` into the original layer (:attr:`module`, untouched) and a bias-free
    :attr:`tabular` layer computes exactly ``W_x·x + W_h·h + b`` while keeping the network's own parameters as
    they were; the new columns ``W_h`` are drawn as a layer widened to ``in + F`` inputs would draw them.

    Args:
        module: the ``nn.Linear`` whose input is widened.
        condition_features: width ``F`` of the condition.
        name, source: see :class:`ConditionSlot`.
    """

    kind = "concat"

    def __init__(self, module: nn.Linear, condition_features: int, name: str, source: int | None) -> None:
        super().__init__(name, source)
        self.module = module
        weight = module.weight
        self.tabular = nn.Linear(
            condition_features, module.out_features, bias=False, device=weight.device, dtype=weight.dtype
        )
        bound = (module.in_features + condition_features) ** -0.5  # nn.Linear's default for the widened layer
        nn.init.uniform_(self.tabular.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        condition = self.take_condition()
        if x.dim() != 2 or x.shape[0] != condition.shape[0]:
            raise ValueError(
                f"concatenation at {self.name!r} needs an input [B, features] with B = {condition.shape[0]}, "
                f"got {list(x.shape)}"
            )
        return self.module(x) + self.tabular(condition)
