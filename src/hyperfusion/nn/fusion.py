"""FiLM, DAFT and concatenation on any network, built the same way as :func:`~hyperfusion.nn.hyperize`.

Each function takes an image network (``nn.Sequential``, a MONAI ``ResNet``, the package's trunks, …) and the
qualified names of the submodules where the tabular data enters, and returns a
:class:`~hyperfusion.nn.ConditionedModel` called ``model(image, tabular)``. The tabular record goes through
``encoder`` first (one shared module, one per layer as a mapping, or ``None`` for the raw vector), once per batch.
So the fusion methods of a comparison differ in their fusion only, and all of them can start from a trained
tabular encoder (:func:`~hyperfusion.nn.warm_start_`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from hyperfusion.nn.conditioned import ConditionedModel, Encoder, attach, check_n_tabular, encoder_width
from hyperfusion.nn.conditioning import DAFT, DEFAULT_INIT_STD, FiLM
from hyperfusion.nn.slots import ConcatInput, ModulatedInput

_CHANNEL_ATTRIBUTES = ("in_channels", "in_features", "num_features", "num_channels")


def input_channels(module: nn.Module, name: str) -> int:
    """Channels of a submodule's input: its own ``in_channels`` / ``in_features`` / ``num_features``, else those
    of the first submodule (in registration order) that has one.

    Raises:
        ValueError: when no submodule tells (pass ``channels=`` then).
    """
    for candidate in module.modules():
        for attribute in _CHANNEL_ATTRIBUTES:
            value = getattr(candidate, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    raise ValueError(
        f"cannot tell the input channels of {name!r} ({type(module).__name__}); pass channels={{{name!r}: C}}"
    )


def _channels_for(channels: int | Mapping[str, int] | None, name: str, module: nn.Module) -> int:
    if channels is None:
        return input_channels(module, name)
    value = channels.get(name) if isinstance(channels, Mapping) else channels
    if value is None:
        return input_channels(module, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"channels for {name!r} must be a positive int, got {value!r}")
    return value


def _modulate(
    kind: type[FiLM],
    net: nn.Module,
    layers: Sequence[str],
    n_tabular: int,
    encoder: Encoder,
    bottleneck: int,
    init_std: float,
    channels: int | Mapping[str, int] | None,
) -> ConditionedModel:
    check_n_tabular(n_tabular)

    def make_slot(name: str, plain: nn.Module, width: int) -> ModulatedInput:
        modulator = kind(
            _channels_for(channels, name, plain), width, bottleneck=bottleneck, init_std=init_std
        )
        reference = next(plain.parameters(), None)
        if reference is not None:
            modulator.to(device=reference.device, dtype=reference.dtype)
        return ModulatedInput(plain, modulator, name, None)

    return attach(
        net,
        layers,
        encoder,
        n_tabular=n_tabular,
        width_of=lambda e: encoder_width(e, n_tabular),
        make_slot=make_slot,
    )


def film(
    net: nn.Module,
    layers: Sequence[str],
    n_tabular: int,
    *,
    encoder: Encoder = None,
    bottleneck: int = 7,
    init_std: float = DEFAULT_INIT_STD,
    channels: int | Mapping[str, int] | None = None,
) -> ConditionedModel:
    """FiLM (Perez et al. 2018) on the INPUT of each named submodule: ``x' = (1 + Δγ(h)) ⊙ x + β(h)`` per channel.

    ``[Δγ; β] = W₂ ReLU(W₁ h)`` (two bias-free linear layers, ``bottleneck`` wide) with ``h = encoder(t)``, or the
    raw tabular vector ``t`` when ``encoder`` is ``None``. Naming the main path of a residual block (e.g.
    ``"block4.residual"`` in the AD trunk) modulates it while the shortcut keeps the raw input — DAFT's
    "location 2", used by the paper's FiLM and DAFT baselines.

    Args:
        net: the image network (modified in place), or a fused model to add to.
        layers: qualified names of the submodules whose (first) input is modulated.
        n_tabular: width of the tabular vector.
        encoder: shared encoder, ``{layer: encoder}``, or ``None``.
        bottleneck: hidden width of the generator.
        init_std: standard deviation of ``W₂`` at initialisation: ``Δγ`` and ``β`` start at about
            ``init_std``-sized values, so the model starts near the unmodulated network (``0`` = exactly it).
        channels: the modulated input's channels ``C`` (an int for all layers, or per layer); inferred from the
            submodule (its, or its first submodule's, ``in_channels`` / ``in_features`` / ``num_features``).

    Raises:
        ValueError: for bad names, sizes, encoders, or channels that cannot be inferred.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> model = film(net, ["2"], n_tabular=5)
        >>> model(torch.randn(2, 1, 9, 9), torch.randn(2, 5)).shape
        torch.Size([2, 2])
    """
    return _modulate(FiLM, net, layers, n_tabular, encoder, bottleneck, init_std, channels)


def daft(
    net: nn.Module,
    layers: Sequence[str],
    n_tabular: int,
    *,
    encoder: Encoder = None,
    bottleneck: int = 7,
    init_std: float = DEFAULT_INIT_STD,
    channels: int | Mapping[str, int] | None = None,
) -> ConditionedModel:
    """DAFT (Wolf et al. 2022): FiLM whose generator reads ``h = [GAP(x); encoder(t)]``.

    ``GAP`` averages the same feature map that is modulated over its spatial axes, so the scale and shift depend on
    the image as well as the tabular record. Arguments and ``init_std``'s meaning as :func:`film`.
    """
    return _modulate(DAFT, net, layers, n_tabular, encoder, bottleneck, init_std, channels)


def concat(
    net: nn.Module, layers: Sequence[str], n_tabular: int, *, encoder: Encoder = None
) -> ConditionedModel:
    """Concatenation: each named ``nn.Linear`` reads ``[x; h]``, its ``in_features`` widened by ``h``'s width.

    ``h = encoder(t)``, or the raw tabular vector when ``encoder`` is ``None``. The layer's own weights are kept
    and the new input columns are a separate bias-free layer (:class:`~hyperfusion.nn.slots.ConcatInput`), which
    computes exactly the widened layer. E.g. the head ``fc1`` of the AD trunk (after its dropout, which therefore
    acts on the image features only), or every linear layer of the brain-age network.

    Raises:
        ValueError: for bad names, a named layer that is not an ``nn.Linear``, or bad encoders.
    """
    check_n_tabular(n_tabular)

    def make_slot(name: str, plain: nn.Module, width: int) -> ConcatInput:
        if not isinstance(plain, nn.Linear):
            raise ValueError(f"layer {name!r} is a {type(plain).__name__}; concat needs an nn.Linear")
        return ConcatInput(plain, width, name, None)

    return attach(
        net,
        layers,
        encoder,
        n_tabular=n_tabular,
        width_of=lambda e: encoder_width(e, n_tabular),
        make_slot=make_slot,
    )
