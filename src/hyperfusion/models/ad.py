"""The AD classification family (paper §3.5.2, §4.3.5, Table C.6): HyperFusion and every baseline, registered.

Every image model is :func:`ad_trunk` — a :class:`~hyperfusion.models.resnet.PreActResNet3d` at the paper's settings
(base width 16, four blocks, dropouts 0.1/0.2/0.2/0.3 and 0.6/0.5, BatchNorm momentum 0.05, input 1×64×96×64, one
shortcut order, BN→conv) — plus one fusion from :mod:`hyperfusion.nn` at a named place:

=================  ============  =====================================================================
``ad-imaging``     none          the trunk; tabular data is ignored
``ad-crop-reader`` none          PCA + logistic regression on the pooled crops (a reference, not a CNN)
``ad-tabular``     none          ``Linear(16→8) → BN1d → PReLU → Linear(8→3)``
``ad-concat``      intermediate  ``concat`` at ``fc1`` (after its dropout, so that acts on the image only)
``ad-film``        intermediate  ``film`` at ``block4.residual`` (the last block's main path), bottleneck 7
``ad-daft``        intermediate  ``daft`` at ``block4.residual``, bottleneck 7
``ad-late-fusion`` late          average (or fitted mix) of imaging and tabular probabilities
``ad-hyperfusion`` hyper         ``hyperize`` of ``block4.shortcut.conv``
=================  ============  =====================================================================

Same treatment: every fusion reads the tabular record through the same encoder by default, the tabular-only model's
hidden layer ``Linear(16→8) → BatchNorm1d → PReLU`` (:func:`~hyperfusion.models.tabular.embedding_mlp`), so a
trained ``ad-tabular`` can warm-start all of them alike (:func:`hyperfusion.nn.warm_start_`).
``tabular_encoder="none"`` feeds the raw vector instead (the paper's concatenation, FiLM and DAFT baselines).
With several fusion layers each gets its own encoder unless ``shared_encoder=True``.

The authors' hyper block alone ordered its shortcut conv→BN; ``last_shortcut_order="conv-norm"`` reproduces that
(and their exact parameter count) for comparison, at the price of comparing two changes at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from hyperfusion.models.crop_reader import CropReader
from hyperfusion.models.late_fusion import LateFusionClassifier
from hyperfusion.models.registry import register_model
from hyperfusion.models.resnet import PreActResNet3d
from hyperfusion.models.tabular import TabularMLP, TabularOnlyModel, embedding_mlp
from hyperfusion.nn import ConditionedModel, concat, daft, film, hyperize
from hyperfusion.nn.blocks import ShortcutOrder
from hyperfusion.nn.conditioning import DEFAULT_INIT_STD

AD_INPUT = (1, 64, 96, 64)
AD_TABULAR = 16
AD_CLASSES = 3
TABULAR_ENCODERS = ("mlp", "none")
#: FiLM/DAFT generator scale at initialisation: the library's default (measured, docs/fairness.md).
FUSION_INIT_STD = DEFAULT_INIT_STD
#: HyperFusion's generated layer starts as the trunk's own layer plus a record-dependent correction this size
#: (relative spread; docs/conditioning.md). The paper's eqs. 1-2 (``residual_scale=None``) start it as a different
#: random layer for every record.
RESIDUAL_SCALE = 0.1


def ad_trunk(
    *,
    n_classes: int = AD_CLASSES,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 4,
    block_dropout: Sequence[float] | None = None,
    head_hidden: int = 64,
    head_dropout: tuple[float, float] = (0.6, 0.5),
    bn_momentum: float = 0.05,
    last_shortcut_order: ShortcutOrder = "norm-conv",
) -> PreActResNet3d:
    """The family's image network: the pre-activation 3D ResNet at the paper's settings."""
    return PreActResNet3d(
        in_channels=in_channels,
        n_classes=n_classes,
        base_width=base_width,
        depth=depth,
        block_dropout=block_dropout,
        head_hidden=head_hidden,
        head_dropout=head_dropout,
        bn_momentum=bn_momentum,
        last_shortcut_order=last_shortcut_order,
    )


def ad_encoders(
    kind: str, layers: Sequence[str], n_tabular: int, embedding_dim: int, *, shared: bool
) -> nn.Module | dict[str, nn.Module] | None:
    """The tabular encoder(s) of an AD fusion: ``embedding_mlp(n_tabular, (embedding_dim,))`` or none.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in TABULAR_ENCODERS:
        raise ValueError(f"tabular_encoder must be one of {TABULAR_ENCODERS}, got {kind!r}")
    if kind == "none":
        return None
    if shared:
        return embedding_mlp(n_tabular, (embedding_dim,))
    return {name: embedding_mlp(n_tabular, (embedding_dim,)) for name in layers}


def _register(
    fusion: str, *, uses_image: bool = True, uses_tabular: bool = True, trunk=ad_trunk, fit: str = "gradient"
):
    return register_model(
        task="classification",
        fusion=fusion,  # type: ignore[arg-type]
        uses_image=uses_image,
        uses_tabular=uses_tabular,
        input_shape=AD_INPUT,
        n_tabular=AD_TABULAR,
        trunk=trunk,
        fit=fit,  # type: ignore[arg-type]
        family="ad",
    )


@_register("none", uses_tabular=False)
def ad_imaging(network: PreActResNet3d, *, n_tabular: int = AD_TABULAR) -> PreActResNet3d:
    """Imaging-only pre-activation 3D ResNet (the trunk itself); the tabular input is accepted and ignored."""
    return network


@_register("none", uses_tabular=False, trunk=None, fit="closed_form")
def ad_crop_reader(
    *,
    input_shape: Sequence[int] = AD_INPUT[1:],
    n_classes: int = AD_CLASSES,
    n_tabular: int = AD_TABULAR,
) -> CropReader:
    """Crop reader: PCA + logistic regression on the pooled crops, fitted in closed form (the CNNs' yardstick)."""
    return CropReader(input_shape, n_classes)


@_register("none", uses_image=False, trunk=None)
def ad_tabular(
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    hidden: Sequence[int] = (8,),
    bn_momentum: float = 0.1,
) -> TabularOnlyModel:
    """Tabular-only MLP (Linear → BatchNorm1d → PReLU per hidden layer, then Linear); the image is ignored."""
    return TabularOnlyModel(TabularMLP(n_tabular, n_classes, hidden=hidden, bn_momentum=bn_momentum))


@_register("intermediate")
def ad_concat(
    network: PreActResNet3d,
    *,
    n_tabular: int = AD_TABULAR,
    tabular_encoder: str = "mlp",
    embedding_dim: int = 8,
    shared_encoder: bool = False,
    concat_layers: Sequence[str] | None = None,
) -> ConditionedModel:
    """Concatenation: the encoded tabular record joins the pooled image features before fc1 (or other linears)."""
    layers = list(concat_layers) if concat_layers is not None else ["fc1"]
    encoder = ad_encoders(tabular_encoder, layers, n_tabular, embedding_dim, shared=shared_encoder)
    return concat(network, layers, n_tabular, encoder=encoder)


@_register("intermediate")
def ad_film(
    network: PreActResNet3d,
    *,
    n_tabular: int = AD_TABULAR,
    tabular_encoder: str = "mlp",
    embedding_dim: int = 8,
    shared_encoder: bool = False,
    film_layers: Sequence[str] | None = None,
    bottleneck: int = 7,
    init_std: float = FUSION_INIT_STD,
) -> ConditionedModel:
    """FiLM (Perez et al. 2018) on the last block's main-path input, scale 1 + Δγ (init scale: docs/fairness.md)."""
    layers = list(film_layers) if film_layers is not None else [f"{network.last_block_name}.residual"]
    encoder = ad_encoders(tabular_encoder, layers, n_tabular, embedding_dim, shared=shared_encoder)
    return film(network, layers, n_tabular, encoder=encoder, bottleneck=bottleneck, init_std=init_std)


@_register("intermediate")
def ad_daft(
    network: PreActResNet3d,
    *,
    n_tabular: int = AD_TABULAR,
    tabular_encoder: str = "mlp",
    embedding_dim: int = 8,
    shared_encoder: bool = False,
    daft_layers: Sequence[str] | None = None,
    bottleneck: int = 7,
    init_std: float = FUSION_INIT_STD,
) -> ConditionedModel:
    """DAFT (Wolf et al. 2022): scale/shift from [GAP(x); encoded tabular] on the last block's main-path input."""
    layers = list(daft_layers) if daft_layers is not None else [f"{network.last_block_name}.residual"]
    encoder = ad_encoders(tabular_encoder, layers, n_tabular, embedding_dim, shared=shared_encoder)
    return daft(network, layers, n_tabular, encoder=encoder, bottleneck=bottleneck, init_std=init_std)


@_register("late")
def ad_late_fusion(
    network: PreActResNet3d,
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    tabular_hidden: Sequence[int] = (8,),
    rule: str = "average",
    weight: float = 0.5,
    imaging_model: nn.Module | None = None,
    tabular_model: nn.Module | None = None,
) -> LateFusionClassifier:
    """Late fusion: log of the averaged (or fitted-weight) probabilities of separately trained members.

    The members are the trunk and an ``ad-tabular`` MLP, or the given ``imaging_model`` / ``tabular_model`` (e.g.
    trained ``ad-imaging`` / ``ad-tabular`` models; the trunk arguments then do not apply to that member).
    ``weight`` is the imaging model's share (``rule="learned"``; fit it with ``fit_late_fusion_weight``).
    """
    imaging = imaging_model if imaging_model is not None else network
    tabular = (
        tabular_model
        if tabular_model is not None
        else ad_tabular(n_tabular=n_tabular, n_classes=n_classes, hidden=tabular_hidden)
    )
    return LateFusionClassifier(imaging, tabular, rule=rule, weight=weight)


def check_bias_std(bias_std: float) -> float:
    """The generated bias's initial standard deviation, refused when negative or not finite."""
    if isinstance(bias_std, bool) or not isinstance(bias_std, (int, float)) or not math.isfinite(bias_std):
        raise ValueError(f"bias_std must be a finite number >= 0, got {bias_std!r}")
    if bias_std < 0:
        raise ValueError(f"bias_std must be a finite number >= 0, got {bias_std!r}")
    return float(bias_std)


@_register("hyper")
def ad_hyperfusion(
    network: PreActResNet3d,
    *,
    n_tabular: int = AD_TABULAR,
    tabular_encoder: str = "mlp",
    embedding_dim: int = 8,
    shared_encoder: bool = False,
    hyper_layers: Sequence[str] | None = None,
    embedding_variance: float | None = None,
    bias_std: float = 1.0,
    residual_scale: float | None = RESIDUAL_SCALE,
) -> ConditionedModel:
    """HyperFusion: the trunk with its last block's shortcut conv generated from the encoded tabular record.

    ``hyper_layers``: qualified names in the trunk (default ``["block4.shortcut.conv"]``; any ``nn.Conv3d`` /
    ``nn.Linear``, e.g. ``"block3.residual.conv1"`` or ``"fc1"``). ``embedding_variance`` is ``E[e²]`` for the
    principled initialisation (unset: 1; ``hyperfusion.nn.principled_init_from_data_`` measures it on the training
    rows). ``bias_std`` is the standard deviation of the generated bias at initialisation (paper: 1).
    ``residual_scale``: the residual initialisation of :func:`hyperfusion.nn.hyperize` (the generated layer starts
    as the trunk's own layer plus a record-dependent correction of this relative size; ``bias_std`` then does not
    apply); ``None``: the paper's eqs. 1–2, under which the record controls almost all of the features the head
    reads at initialisation (measured: docs/conditioning.md).
    """
    layers = list(hyper_layers) if hyper_layers is not None else [f"{network.last_block_name}.shortcut.conv"]
    encoder = ad_encoders(tabular_encoder, layers, n_tabular, embedding_dim, shared=shared_encoder)
    return hyperize(
        network,
        layers,
        encoder,
        embedding_dim=n_tabular if encoder is None else embedding_dim,
        embedding_variance=embedding_variance,
        bias_variance=check_bias_std(bias_std) ** 2,
        residual_scale=residual_scale,
    )
