"""The brain-age family (paper §3.5.1, §4.2.5, Table A.5): sex-conditioned age regression, registered.

Every model is :func:`brainage_trunk` — a :class:`~hyperfusion.models.vgg.VGG3dRegressor` at the paper's settings
(input 1×90×120×99, base width 16, three blocks, linear widths 16/32/64, Dropout3d 0.2) returning the predicted age
``[B]`` — plus one fusion from :mod:`hyperfusion.nn`. The tabular vector is the sex one-hot ``[F, M]``.

=============================  ============  ==========================================================
``brainage-imaging``           none          the trunk; sex is ignored
``brainage-concat``            intermediate  ``concat`` of the raw one-hot at every linear layer
``brainage-hyperfusion``       hyper         ``hyperize`` of all four linear layers, each from its own
                                             ``Linear(2→1)`` embedding
``brainage-hyperfusion-2d``    hyper         the paper's ablation: ``Linear(2→2)`` embeddings
=============================  ============  ==========================================================

The embeddings start as the authors' did (``embedding_init="ones"``: weight 1, bias 0), so for a one-hot sex
vector ``e ≡ 1`` (``E[e²] = 1`` exactly, the value the principled initialisation then uses): both sexes begin with
the same generated weights and training separates them. ``embedding_init="default"`` uses PyTorch's init instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hyperfusion.models.ad import check_bias_std
from hyperfusion.models.registry import register_model
from hyperfusion.models.vgg import BRAIN_AGE_INPUT, VGG3dRegressor
from hyperfusion.nn import ConditionedModel, concat, hyperize

BRAIN_AGE_TABULAR = 2
EMBEDDING_INITS = ("ones", "default")


def brainage_trunk(
    *,
    input_shape: Sequence[int] = BRAIN_AGE_INPUT,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 3,
    hidden: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
) -> VGG3dRegressor:
    """The family's image network: the VGG-like 3D regressor at the paper's settings."""
    return VGG3dRegressor(
        input_shape=input_shape,
        in_channels=in_channels,
        base_width=base_width,
        depth=depth,
        hidden=hidden,
        dropout=dropout,
        bn_momentum=bn_momentum,
    )


def _register(fusion: str, *, uses_tabular: bool = True):
    return register_model(
        task="regression",
        fusion=fusion,  # type: ignore[arg-type]
        uses_image=True,
        uses_tabular=uses_tabular,
        input_shape=(1, *BRAIN_AGE_INPUT),
        n_tabular=BRAIN_AGE_TABULAR,
        trunk=brainage_trunk,
        family="brainage",
    )


@_register("none", uses_tabular=False)
def brainage_imaging(network: VGG3dRegressor, *, n_tabular: int = BRAIN_AGE_TABULAR) -> VGG3dRegressor:
    """Imaging-only VGG-like 3D regressor (the trunk itself); the tabular input is accepted and ignored."""
    return network


@_register("intermediate")
def brainage_concat(
    network: VGG3dRegressor, *, n_tabular: int = BRAIN_AGE_TABULAR, concat_layers: Sequence[str] | None = None
) -> ConditionedModel:
    """Concatenation: sex joined to the input of every linear layer (or of those in ``concat_layers``).

    The authors' code joined it before ``linear2`` only (``concat_layers=["linear2"]``); the paper's comparison
    (§4.2.5) joins it at each of the four layers that HyperFusion generates.
    """
    layers = list(network.linear_names if concat_layers is None else concat_layers)
    return concat(network, layers, n_tabular)


def _embedding(n_tabular: int, embedding_dim: int, init: str) -> nn.Linear:
    layer = nn.Linear(n_tabular, embedding_dim)
    if init == "ones":
        with torch.no_grad():
            layer.weight.fill_(1.0)
            layer.bias.zero_()
    return layer


def _brainage_hyper(
    network: VGG3dRegressor,
    *,
    n_tabular: int,
    embedding_dim: int,
    hyper_layers: Sequence[str] | None,
    embedding_init: str,
    embedding_variance: float | None,
    bias_std: float,
) -> ConditionedModel:
    if embedding_init not in EMBEDDING_INITS:
        raise ValueError(f"embedding_init must be one of {EMBEDDING_INITS}, got {embedding_init!r}")
    if embedding_dim < 1 or n_tabular < 1:
        raise ValueError(f"embedding_dim and n_tabular must be >= 1, got {embedding_dim} and {n_tabular}")
    layers = list(network.linear_names if hyper_layers is None else hyper_layers)
    embeddings = {name: _embedding(n_tabular, embedding_dim, embedding_init) for name in layers}
    if embedding_variance is None and embedding_init == "ones":
        embedding_variance = 1.0  # e ≡ 1 for every one-hot input at initialisation
    return hyperize(
        network,
        layers,
        embeddings,
        embedding_variance=embedding_variance,
        bias_variance=check_bias_std(bias_std) ** 2,
    )


@_register("hyper")
def brainage_hyperfusion(
    network: VGG3dRegressor,
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    embedding_dim: int = 1,
    hyper_layers: Sequence[str] | None = None,
    embedding_init: str = "ones",
    embedding_variance: float | None = None,
    bias_std: float = 1.0,
) -> ConditionedModel:
    """HyperFusion: every linear layer (or those in ``hyper_layers``) generated from its own 2→1 sex embedding.

    ``bias_std`` is the standard deviation of the generated biases at initialisation (paper: 1).
    """
    return _brainage_hyper(network, **{k: v for k, v in locals().items() if k != "network"})


@_register("hyper")
def brainage_hyperfusion_2d(
    network: VGG3dRegressor,
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    embedding_dim: int = 2,
    hyper_layers: Sequence[str] | None = None,
    embedding_init: str = "ones",
    embedding_variance: float | None = None,
    bias_std: float = 1.0,
) -> ConditionedModel:
    """HyperFusion ablation (§4.2.5): the sex one-hot mapped to a 2-d embedding per hyper layer."""
    return _brainage_hyper(network, **{k: v for k, v in locals().items() if k != "network"})
