"""The brain-age family (paper §3.5.1, §4.2.5, Table A.5): sex-conditioned age regression, registered.

All models share :class:`~hyperfusion.models.vgg.VGG3dRegressor` at the paper's settings (input 1×90×120×99, base
width 16, three blocks, linear widths 16/32/64, Dropout3d 0.2) and return the predicted age ``[B]``. The tabular
vector is the sex one-hot ``[F, M]``.

=============================  ============  ==========================================================
``brainage-imaging``           none          the trunk; sex is ignored (848,673 parameters)
``brainage-concat``            intermediate  sex joined to the input of every linear layer (848,899)
``brainage-hyperfusion``       hyper         all four linear layers generated, each from its own
                                             ``Linear(2→1)`` embedding (1,482,206)
``brainage-hyperfusion-2d``    hyper         the paper's ablation: ``Linear(2→2)`` embeddings (2,115,739)
=============================  ============  ==========================================================

The embeddings start as the authors' did (``embedding_init="ones"``: weight 1, bias 0), so for a one-hot sex
vector ``e ≡ 1`` (``E[e²] = 1`` exactly, the value the principled initialisation then uses): both sexes begin with
the same generated weights and training separates them. ``embedding_init="default"`` uses PyTorch's init instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hyperfusion.models.registry import register_model
from hyperfusion.models.vgg import BRAIN_AGE_INPUT, VGG3dRegressor
from hyperfusion.nn.hyperize import HyperModel, hyperize

BRAIN_AGE_TABULAR = 2
EMBEDDING_INITS = ("ones", "default")


def _register(fusion: str, *, uses_tabular: bool = True):
    return register_model(
        task="regression",
        fusion=fusion,  # type: ignore[arg-type]
        uses_image=True,
        uses_tabular=uses_tabular,
        input_shape=(1, *BRAIN_AGE_INPUT),
        n_tabular=BRAIN_AGE_TABULAR,
    )


@_register("none", uses_tabular=False)
def brainage_imaging(
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    input_shape: Sequence[int] = BRAIN_AGE_INPUT,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 3,
    hidden: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
) -> VGG3dRegressor:
    """Imaging-only VGG-like 3D regressor; the tabular input is accepted and ignored."""
    return VGG3dRegressor(
        input_shape=input_shape,
        in_channels=in_channels,
        base_width=base_width,
        depth=depth,
        hidden=hidden,
        dropout=dropout,
        bn_momentum=bn_momentum,
    )


@_register("intermediate")
def brainage_concat(
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    input_shape: Sequence[int] = BRAIN_AGE_INPUT,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 3,
    hidden: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
    concat_layers: Sequence[str] | None = None,
) -> VGG3dRegressor:
    """Concatenation: sex joined to the input of every linear layer (or of those in ``concat_layers``).

    The authors' code joined it before ``linear2`` only (``concat_layers=["linear2"]``, 848,737 parameters); the
    paper's comparison (§4.2.5) joins it at each of the four layers that HyperFusion generates.
    """
    layers = [f"linear{i}" for i in range(1, len(hidden) + 1)] + ["final_layer"]
    return VGG3dRegressor(
        input_shape=input_shape,
        in_channels=in_channels,
        base_width=base_width,
        depth=depth,
        hidden=hidden,
        dropout=dropout,
        bn_momentum=bn_momentum,
        concat_features=n_tabular,
        concat_layers=layers if concat_layers is None else concat_layers,
    )


def _embedding(n_tabular: int, embedding_dim: int, init: str) -> nn.Linear:
    layer = nn.Linear(n_tabular, embedding_dim)
    if init == "ones":
        with torch.no_grad():
            layer.weight.fill_(1.0)
            layer.bias.zero_()
    return layer


def _brainage_hyper(
    *,
    n_tabular: int,
    input_shape: Sequence[int],
    in_channels: int,
    base_width: int,
    depth: int,
    hidden: Sequence[int],
    dropout: float,
    bn_momentum: float,
    embedding_dim: int,
    hyper_layers: Sequence[str] | None,
    embedding_init: str,
    embedding_variance: float | None,
) -> HyperModel:
    if embedding_init not in EMBEDDING_INITS:
        raise ValueError(f"embedding_init must be one of {EMBEDDING_INITS}, got {embedding_init!r}")
    if embedding_dim < 1 or n_tabular < 1:
        raise ValueError(f"embedding_dim and n_tabular must be >= 1, got {embedding_dim} and {n_tabular}")
    trunk = brainage_imaging(
        input_shape=input_shape,
        in_channels=in_channels,
        base_width=base_width,
        depth=depth,
        hidden=hidden,
        dropout=dropout,
        bn_momentum=bn_momentum,
    )
    layers = list(trunk.linear_names if hyper_layers is None else hyper_layers)
    embeddings = {name: _embedding(n_tabular, embedding_dim, embedding_init) for name in layers}
    if embedding_variance is None and embedding_init == "ones":
        embedding_variance = 1.0  # e ≡ 1 for every one-hot input at initialisation
    return hyperize(trunk, layers, embeddings, embedding_variance=embedding_variance)


@_register("hyper")
def brainage_hyperfusion(
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    input_shape: Sequence[int] = BRAIN_AGE_INPUT,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 3,
    hidden: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
    embedding_dim: int = 1,
    hyper_layers: Sequence[str] | None = None,
    embedding_init: str = "ones",
    embedding_variance: float | None = None,
) -> HyperModel:
    """HyperFusion: every linear layer (or those in ``hyper_layers``) generated from its own 2→1 sex embedding."""
    return _brainage_hyper(**locals())  # the signature above, passed on whole


@_register("hyper")
def brainage_hyperfusion_2d(
    *,
    n_tabular: int = BRAIN_AGE_TABULAR,
    input_shape: Sequence[int] = BRAIN_AGE_INPUT,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 3,
    hidden: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
    embedding_dim: int = 2,
    hyper_layers: Sequence[str] | None = None,
    embedding_init: str = "ones",
    embedding_variance: float | None = None,
) -> HyperModel:
    """HyperFusion ablation (§4.2.5): the sex one-hot mapped to a 2-d embedding per hyper layer."""
    return _brainage_hyper(**locals())  # the signature above, passed on whole
