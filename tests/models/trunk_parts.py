"""Split a fused model's parameters into its trunk's (named as in the trunk) and its fusion's."""

from __future__ import annotations

from torch import nn

from hyperfusion.nn import ConcatInput, ConditionedLayer, ConditionedModel, ModulatedInput
from tests.nn.fused_reference import plain_name


def split_parameters(model: ConditionedModel) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """``(trunk part keyed by the trunk's names, fusion part keyed by the fused model's names)``."""
    slots = list(model.slots())
    wrapped = {s.name for s in slots if isinstance(s, (ModulatedInput, ConcatInput))}
    fusion_prefixes = [f"network.{s.name}.hyper." for s in slots if isinstance(s, ConditionedLayer)]
    fusion_prefixes += [f"network.{w}.{part}." for w in wrapped for part in ("modulator", "tabular")]
    fusion_prefixes.append("encoders.")
    trunk, fusion = {}, {}
    for name, parameter in model.named_parameters():
        if name.startswith(tuple(fusion_prefixes)):
            fusion[name] = parameter
        else:
            trunk[plain_name(name.removeprefix("network."), wrapped)] = parameter
    return trunk, fusion


def hyperized_names(model: ConditionedModel) -> set[str]:
    """The trunk parameters a hyper layer replaced (its plain weight and bias)."""
    return {f"{name}.{p}" for name in model.hyper_layers for p in ("weight", "bias")}
