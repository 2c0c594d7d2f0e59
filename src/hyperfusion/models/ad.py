"""The AD classification family (paper §3.5.2, §4.3.5, Table C.6): HyperFusion and every baseline, registered.

All image models share :class:`~hyperfusion.models.resnet.PreActResNet3d` with identical defaults (the paper's
settings: base width 16, four blocks, dropouts 0.1/0.2/0.2/0.3 and 0.6/0.5, BatchNorm momentum 0.05, input
1×64×96×64) and one shortcut order, BN→conv. Each model differs from ``ad-imaging`` in its fusion only:

=================  ============  =====================================================================
``ad-imaging``     none          the trunk; tabular data is ignored (3,589,123 parameters)
``ad-tabular``     none          ``Linear(16→8) → BN1d → PReLU → Linear(8→3)`` (180)
``ad-concat``      intermediate  tabular vector joined to the pooled image features before ``fc1`` (3,590,147)
``ad-film``        intermediate  FiLM on block 4's main-path input, bottleneck 7 (3,591,027)
``ad-daft``        intermediate  DAFT on block 4's main-path input, bottleneck 7 (3,591,923)
``ad-late-fusion`` late          average (or learned mix) of imaging and tabular probabilities (3,589,303)
``ad-hyperfusion`` hyper         block 4's shortcut conv generated from ``Linear(16→8) → BN1d → PReLU``
                                 (3,853,468; the authors' model has 3,853,724 — see ``last_shortcut_order``)
=================  ============  =====================================================================

The authors' hyper block alone ordered its shortcut conv→BN (reference bug B7); ``last_shortcut_order="conv-norm"``
reproduces that (and their exact parameter count) for comparison, at the price of comparing two changes at once.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from hyperfusion.models.late_fusion import LateFusionClassifier
from hyperfusion.models.registry import register_model
from hyperfusion.models.resnet import ModulatedPreActResNet3d, PreActResNet3d
from hyperfusion.models.tabular import TabularMLP, TabularOnlyModel, embedding_mlp
from hyperfusion.nn.blocks import ShortcutOrder
from hyperfusion.nn.hyperize import HyperModel, hyperize

AD_INPUT = (1, 64, 96, 64)
AD_TABULAR = 16
AD_CLASSES = 3


TRUNK_KEYS = (
    "in_channels",
    "n_classes",
    "base_width",
    "depth",
    "block_dropout",
    "head_hidden",
    "head_dropout",
    "bn_momentum",
    "last_shortcut_order",
)


def _trunk_args(arguments: dict[str, object]) -> dict[str, object]:
    """The shared trunk's settings out of a factory's arguments (pass ``locals()``).

    Every image factory spells the trunk's arguments out in its signature, so ``model_arguments`` and
    ``create_model`` can list and check them; this picks them back out in one place.
    """
    return {key: arguments[key] for key in TRUNK_KEYS}


def _register(fusion: str, *, uses_image: bool = True, uses_tabular: bool = True):
    return register_model(
        task="classification",
        fusion=fusion,  # type: ignore[arg-type]
        uses_image=uses_image,
        uses_tabular=uses_tabular,
        input_shape=AD_INPUT,
        n_tabular=AD_TABULAR,
    )


@_register("none", uses_tabular=False)
def ad_imaging(
    *,
    n_tabular: int = AD_TABULAR,
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
    """Imaging-only pre-activation 3D ResNet; the tabular input is accepted and ignored."""
    return PreActResNet3d(
        **_trunk_args(locals())  # type: ignore[arg-type]
    )


@_register("none", uses_image=False)
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
    *,
    n_tabular: int = AD_TABULAR,
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
    """Concatenation: the tabular vector joins the pooled image features before fc1 (dropout on the image part)."""
    return PreActResNet3d(
        **_trunk_args(locals()),  # type: ignore[arg-type]
        extra_features=n_tabular,
    )


def _modulated(modulation: str, n_tabular: int, bottleneck: int, init_std: float, **trunk: object):
    return ModulatedPreActResNet3d(
        n_tabular=n_tabular, modulation=modulation, bottleneck=bottleneck, init_std=init_std, **trunk
    )


@_register("intermediate")
def ad_film(
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 4,
    block_dropout: Sequence[float] | None = None,
    head_hidden: int = 64,
    head_dropout: tuple[float, float] = (0.6, 0.5),
    bn_momentum: float = 0.05,
    last_shortcut_order: ShortcutOrder = "norm-conv",
    bottleneck: int = 7,
    init_std: float = 1e-2,
) -> ModulatedPreActResNet3d:
    """FiLM (Perez et al. 2018) on the last block's main-path input, scale 1 + Δγ starting near identity."""
    return _modulated(
        "film",
        n_tabular,
        bottleneck,
        init_std,
        **_trunk_args(locals()),
    )


@_register("intermediate")
def ad_daft(
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 4,
    block_dropout: Sequence[float] | None = None,
    head_hidden: int = 64,
    head_dropout: tuple[float, float] = (0.6, 0.5),
    bn_momentum: float = 0.05,
    last_shortcut_order: ShortcutOrder = "norm-conv",
    bottleneck: int = 7,
    init_std: float = 1e-2,
) -> ModulatedPreActResNet3d:
    """DAFT (Wolf et al. 2022): scale/shift from [GAP(x); tabular] on the last block's main-path input."""
    return _modulated(
        "daft",
        n_tabular,
        bottleneck,
        init_std,
        **_trunk_args(locals()),
    )


@_register("late")
def ad_late_fusion(
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 4,
    block_dropout: Sequence[float] | None = None,
    head_hidden: int = 64,
    head_dropout: tuple[float, float] = (0.6, 0.5),
    bn_momentum: float = 0.05,
    last_shortcut_order: ShortcutOrder = "norm-conv",
    tabular_hidden: Sequence[int] = (8,),
    rule: str = "average",
    imaging_model: nn.Module | None = None,
    tabular_model: nn.Module | None = None,
) -> LateFusionClassifier:
    """Late fusion: log of the averaged (or learned-weight) imaging and tabular class probabilities.

    ``imaging_model`` / ``tabular_model`` (e.g. trained ``ad-imaging`` / ``ad-tabular`` models) replace the freshly
    built members; the trunk arguments then do not apply to that member.
    """
    imaging = imaging_model if imaging_model is not None else ad_imaging(**_trunk_args(locals()))
    tabular = (
        tabular_model
        if tabular_model is not None
        else ad_tabular(n_tabular=n_tabular, n_classes=n_classes, hidden=tabular_hidden)
    )
    return LateFusionClassifier(imaging, tabular, rule=rule)


def _pretrained_embedding(tabular_model: nn.Module, n_tabular: int, embedding_dim: int) -> nn.Module:
    """A copy of a trained tabular MLP's embedding (its hidden layers), checked against the requested sizes."""
    mlp = getattr(tabular_model, "network", tabular_model)
    if not isinstance(mlp, TabularMLP):
        raise ValueError(
            f"tabular_model must be an ad-tabular model or a TabularMLP, got {type(tabular_model).__name__}"
        )
    linears = [m for m in mlp.embedding.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("tabular_model has no hidden layer to use as embedding (hidden=())")
    if mlp.in_features != n_tabular or linears[-1].out_features != embedding_dim:
        raise ValueError(
            f"tabular_model maps {mlp.in_features} features to a {linears[-1].out_features}-d embedding; "
            f"this model needs n_tabular={n_tabular}, embedding_dim={embedding_dim}"
        )
    return copy.deepcopy(mlp.embedding)


@_register("hyper")
def ad_hyperfusion(
    *,
    n_tabular: int = AD_TABULAR,
    n_classes: int = AD_CLASSES,
    in_channels: int = 1,
    base_width: int = 16,
    depth: int = 4,
    block_dropout: Sequence[float] | None = None,
    head_hidden: int = 64,
    head_dropout: tuple[float, float] = (0.6, 0.5),
    bn_momentum: float = 0.05,
    last_shortcut_order: ShortcutOrder = "norm-conv",
    embedding_dim: int = 8,
    hyper_layers: Sequence[str] | None = None,
    tabular_model: nn.Module | None = None,
    embedding_variance: float | None = None,
) -> HyperModel:
    """HyperFusion: the imaging trunk with its last block's shortcut conv generated from the tabular record.

    Each layer in ``hyper_layers`` (qualified names in the trunk; default ``["block4.shortcut.conv"]``) gets its
    own embedding ``Linear(n_tabular→embedding_dim) → BatchNorm1d → PReLU``, or a copy of the hidden layers of a
    trained ``tabular_model`` (paper §4.3.6). ``embedding_variance`` is ``E[e²]`` for the principled
    initialisation (estimate it with ``hyperfusion.nn.estimate_embedding_variance``); unset, 1 is assumed.
    """
    trunk = ad_imaging(**_trunk_args(locals()))
    layers = list(hyper_layers) if hyper_layers is not None else [f"{trunk.last_block_name}.shortcut.conv"]
    source = None if tabular_model is None else _pretrained_embedding(tabular_model, n_tabular, embedding_dim)
    embeddings = {
        name: copy.deepcopy(source) if source is not None else embedding_mlp(n_tabular, (embedding_dim,))
        for name in layers
    }
    return hyperize(trunk, layers, embeddings, embedding_variance=embedding_variance)
