"""Turn chosen linear / convolution layers of any network into hyper layers conditioned on tabular data.

HyperFusion's claim is a framework "regardless of architecture or position": any layer of any primary network may
take its weights from a hypernetwork. :func:`hyperize` makes that a one-liner for an existing image network, from a
plain ``nn.Sequential`` to a MONAI ``ResNet`` (3D or 2D), without editing the network's code.
:func:`principled_init_from_data_` then sets every hyper layer's initial scale from the training data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hyperfusion.nn.conditioned import ConditionedModel, attach
from hyperfusion.nn.embedding import estimate_embedding_variance, infer_embedding_dim
from hyperfusion.nn.hyper import HyperLayer, HyperLinear, principled_init_
from hyperfusion.nn.hyper_conv import HyperConv
from hyperfusion.nn.slots import ConditionedLayer

_CONV_DIMS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}


def hyper_layer_for(layer: nn.Module, name: str, embedding_dim: int) -> HyperLayer:
    """A hyper layer with exactly the plain layer's geometry (``nn.Linear`` or ``nn.Conv1d/2d/3d``).

    Raises:
        ValueError: for another layer type or a padding mode other than zeros.
    """
    if isinstance(layer, nn.Linear):
        return HyperLinear(layer.in_features, layer.out_features, embedding_dim, bias=layer.bias is not None)
    dims = next((d for kind, d in _CONV_DIMS.items() if isinstance(layer, kind)), None)
    if dims is None:
        raise ValueError(
            f"layer {name!r} is a {type(layer).__name__}; only nn.Linear and nn.Conv1d/2d/3d can be hyperized"
        )
    if layer.padding_mode != "zeros":
        raise ValueError(
            f"layer {name!r}: padding_mode={layer.padding_mode!r} is not supported, only 'zeros'"
        )
    return HyperConv(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        embedding_dim,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias is not None,
        spatial_dims=dims,
    )


def hyperize(
    model: nn.Module,
    layers: Sequence[str],
    embedding: nn.Module | Mapping[str, nn.Module] | None,
    *,
    embedding_dim: int | None = None,
    embedding_variance: float | None = None,
    gain: float = 1.0,
    bias_variance: float = 1.0,
    keep_layer_weights: bool = False,
    residual_scale: float | None = None,
) -> ConditionedModel:
    """Make the named layers of ``model`` take their weights from a hypernetwork of the tabular record.

    ``model`` is an image network called ``model(image)``; it is modified in place (the named layers are replaced)
    and becomes the returned model's ``.network``. The result is called ``model(image, tabular)``; see
    :class:`~hyperfusion.nn.ConditionedModel` for how the embedding reaches the layers. Passing a fused model
    adds hyper layers to it.

    Args:
        model: the primary network (or a fused model).
        layers: qualified names (as in ``model.named_modules()``) of ``nn.Linear`` / ``nn.Conv1d/2d/3d`` layers
            (grouped convolutions included).
        embedding: one embedding network ``T -> e`` shared by all hyper layers (run once per batch), a mapping
            from each layer name to its own embedding network, or ``None`` to feed the raw tabular vector
            (``embedding_dim`` is then its width).
        embedding_dim: the embedding size; inferred from each embedding's last ``nn.Linear`` when omitted.
        embedding_variance: ``E[e²]`` over the training data (see
            :func:`~hyperfusion.nn.estimate_embedding_variance`, or call :func:`principled_init_from_data_`
            afterwards); omitted, a unit second moment is assumed.
        gain: generated weights start with variance ``gain / fan_in`` (1 = paper eq. 1; 2 = He before a ReLU).
        bias_variance: generated biases start with variance ``bias_variance`` (standard deviation
            ``√bias_variance``; 1 = paper eq. 2). Both are kept by a later :func:`principled_init_from_data_`.
        keep_layer_weights: start the constant terms ``c_W``, ``c_B`` from the replaced layer's weight and bias,
            so the network begins as the original one plus a tabular-conditioned change (useful for a pretrained
            network; with a zero embedding it is then exactly the original network). Later re-initialisations
            (:func:`principled_init_from_data_`) keep them.
        residual_scale: the residual initialisation ``W(e) = W₀ + ΔW(e)``, ``b(e) = b₀ + Δb(e)``: the constant
            terms are the replaced layer's own weights (``keep_layer_weights``) and the record-dependent
            corrections start with a standard deviation of ``residual_scale`` × that of ``W₀`` (for ``ΔW``), and
            of ``W₀·x`` for a unit-variance input (for ``Δb``): ``gain = bias_variance = residual_scale² · fan_in ·
            Var(W₀)``. The generated layer then starts as the plain layer, read a little differently per
            record, instead of as a different random layer for every record (eq. 1 with ``c_W = 0``).
            Overrides ``gain``, ``bias_variance`` and ``keep_layer_weights``.

    Raises:
        ValueError: for an empty or repeated layer list, an unknown name, a layer type that cannot be hyperized,
            embeddings that do not match the layers, an embedding size that cannot be inferred, or a
            ``residual_scale`` that is not a finite number > 0.

    Example:
        >>> net = nn.Sequential(nn.Conv3d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> model = hyperize(net, ["4"], nn.Sequential(nn.Linear(3, 8), nn.ReLU()))
        >>> model(torch.randn(2, 1, 8, 8, 8), torch.randn(2, 3)).shape
        torch.Size([2, 2])
    """
    if embedding_dim is not None and (
        isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1
    ):
        raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
    if embedding is None and embedding_dim is None:
        raise ValueError("without an embedding network, embedding_dim (the tabular width) must be given")
    if residual_scale is not None and not (
        isinstance(residual_scale, (int, float)) and math.isfinite(residual_scale) and residual_scale > 0
    ):
        raise ValueError(f"residual_scale must be a finite number > 0, got {residual_scale!r}")

    def width_of(encoder: nn.Module) -> int:
        return embedding_dim or infer_embedding_dim(encoder)

    def make_slot(name: str, plain: nn.Module, width: int) -> ConditionedLayer:
        hyper = hyper_layer_for(plain, name, width)
        layer_gain, layer_bias = gain, bias_variance
        if residual_scale is not None:
            layer_gain = layer_bias = residual_scale**2 * hyper.fan_in * float(plain.weight.detach().var())
        principled_init_(hyper, embedding_variance or 1.0, gain=layer_gain, bias_variance=layer_bias)
        if keep_layer_weights or residual_scale is not None:
            _copy_plain_parameters(plain, hyper)
            hyper.keeps_offset = True
        return ConditionedLayer(hyper, name, None)

    n_tabular = embedding_dim if embedding is None else None
    return attach(model, layers, embedding, n_tabular=n_tabular, width_of=width_of, make_slot=make_slot)


@torch.no_grad()
def _copy_plain_parameters(plain: nn.Module, hyper: HyperLayer) -> None:
    hyper.weight_head[0].copy_(plain.weight)
    if hyper.bias_generator is not None and plain.bias is not None:
        hyper.bias_generator.bias.copy_(plain.bias)


def principled_init_from_data_(
    model: ConditionedModel,
    tabular_batches: Iterable[Any],
    *,
    select: Callable[[Any], Tensor] | None = None,
    mode: str = "train",
) -> dict[str, float]:
    """Paper eqs. (1)–(2) for every hyper layer of ``model``, with ``E[e²]`` measured on training data.

    Each layer's encoder is run over ``tabular_batches`` (:func:`~hyperfusion.nn.estimate_embedding_variance`; a
    shared encoder is measured once) and :func:`~hyperfusion.nn.principled_init_` re-draws the layer's heads with
    that second moment, keeping the layer's ``gain`` and ``bias_variance``. A model without hyper layers is left
    as it is.

    Args:
        model: a fused model.
        tabular_batches: a re-iterable collection (list, DataLoader) of tabular tensors ``[B, F]`` or dataset
            batches ``(image, tabular, ...)`` — the fold's training rows.
        select, mode: as :func:`~hyperfusion.nn.estimate_embedding_variance`.

    Returns:
        layer name → the measured ``E[e²]``.

    Raises:
        ValueError: for a model that is not a fused model, or data the estimate refuses.
    """
    if not isinstance(model, ConditionedModel):
        raise ValueError(f"principled_init_from_data_ expects a fused model, got {type(model).__name__}")
    if isinstance(tabular_batches, Iterable) and iter(tabular_batches) is tabular_batches:
        tabular_batches = list(tabular_batches)  # a one-shot iterator is read once, then reused per encoder
    measured: dict[int | None, float] = {}
    result = {}
    for name, layer in model.hyper_layers.items():
        source = model.slot(name).source
        if source not in measured:
            encoder = nn.Identity() if source is None else model.encoders[source]
            measured[source] = estimate_embedding_variance(encoder, tabular_batches, select=select, mode=mode)
        principled_init_(layer, measured[source])
        result[name] = measured[source]
    return result
