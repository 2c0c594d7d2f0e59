"""Turn chosen ``nn.Linear`` / ``nn.Conv3d`` layers of any network into hyper layers conditioned on tabular data.

HyperFusion's claim is a framework "regardless of architecture or position": any layer of any primary network may
take its weights from a hypernetwork. :func:`hyperize` makes that a one-liner for an existing image network, from a
plain ``nn.Sequential`` to a MONAI ``ResNet``, without editing the network's code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from hyperfusion.nn.embedding import infer_embedding_dim
from hyperfusion.nn.hyper import HyperConv3d, HyperLayer, HyperLinear, principled_init_


class ConditionedLayer(nn.Module):
    """Stands in for a plain layer inside the primary network and applies its hyper layer.

    It is called like the layer it replaced (``layer(x)``); the owning :class:`HyperModel` hands it the embedding
    of the current batch just before the network runs and takes it back right after.
    """

    def __init__(self, hyper: HyperLayer, name: str) -> None:
        super().__init__()
        self.hyper = hyper
        self.name = name
        self.embedding: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.embedding is None:
            raise RuntimeError(
                f"hyper layer {self.name!r} was called without an embedding: call the HyperModel "
                "as model(image, tabular), not its .network directly"
            )
        return self.hyper(x, self.embedding)


class HyperModel(nn.Module):
    """A primary network some of whose layers are generated from tabular data; called ``model(image, tabular)``.

    How the tabular embedding reaches the layers: ``forward`` first runs the embedding network(s) on ``tabular``
    (a shared embedding runs once per batch), hands each :class:`ConditionedLayer` inside ``network`` the
    embedding meant for it, calls ``network(image)`` unchanged, and clears the embeddings again (also on error).
    The network's own code never sees the tabular data, so it needs no modification.

    Attributes:
        network: the primary network, with the chosen layers replaced by :class:`ConditionedLayer` modules.
        embeddings: one embedding network per hyper layer, or a single shared one (``shared_embedding``).
        layer_names: qualified names of the hyper layers, in the order given.
    """

    def __init__(
        self,
        network: nn.Module,
        slots: Sequence[ConditionedLayer],
        embeddings: Sequence[nn.Module],
        *,
        shared_embedding: bool,
    ) -> None:
        super().__init__()
        self.network = network
        self.embeddings = nn.ModuleList(embeddings)
        self.shared_embedding = shared_embedding
        self._slots = list(slots)  # plain list: the slots are registered once, inside network
        self.layer_names = [slot.name for slot in slots]

    @property
    def hyper_layers(self) -> dict[str, HyperLayer]:
        """Qualified layer name → its :class:`HyperLinear` / :class:`HyperConv3d`."""
        return {slot.name: slot.hyper for slot in self._slots}

    def embed(self, tabular: Tensor) -> dict[str, Tensor]:
        """The embedding each hyper layer receives for this batch."""
        if self.shared_embedding:
            shared = self.embeddings[0](tabular)
            return {name: shared for name in self.layer_names}
        return {
            name: embedding(tabular)
            for name, embedding in zip(self.layer_names, self.embeddings, strict=True)
        }

    def forward(self, image: Tensor, tabular: Tensor, *args: object, **kwargs: object) -> Tensor:
        if tabular.shape[0] != image.shape[0]:
            raise ValueError(f"tabular batch {tabular.shape[0]} does not match image batch {image.shape[0]}")
        embeddings = self.embed(tabular)
        try:
            for slot in self._slots:
                slot.embedding = embeddings[slot.name]
            return self.network(image, *args, **kwargs)
        finally:
            for slot in self._slots:
                slot.embedding = None


def _hyper_layer_for(layer: nn.Module, name: str, embedding_dim: int) -> HyperLayer:
    """A hyper layer with exactly the plain layer's geometry."""
    if isinstance(layer, nn.Linear):
        return HyperLinear(layer.in_features, layer.out_features, embedding_dim, bias=layer.bias is not None)
    if isinstance(layer, nn.Conv3d):
        if layer.groups != 1:
            raise ValueError(
                f"layer {name!r}: grouped convolutions (groups={layer.groups}) cannot be hyperized"
            )
        if layer.padding_mode != "zeros":
            raise ValueError(
                f"layer {name!r}: padding_mode={layer.padding_mode!r} is not supported, only 'zeros'"
            )
        return HyperConv3d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            embedding_dim,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            bias=layer.bias is not None,
        )
    raise ValueError(
        f"layer {name!r} is a {type(layer).__name__}; only nn.Linear and nn.Conv3d can be hyperized"
    )


def hyperize(
    model: nn.Module,
    layers: Sequence[str],
    embedding: nn.Module | Mapping[str, nn.Module],
    *,
    embedding_dim: int | None = None,
    embedding_variance: float | None = None,
    gain: float = 1.0,
    bias_variance: float = 1.0,
    keep_layer_weights: bool = False,
) -> HyperModel:
    """Make the named layers of ``model`` take their weights from a hypernetwork of the tabular record.

    ``model`` is an image network called ``model(image)``; it is modified in place (the named layers are replaced)
    and becomes the returned model's ``.network``. The result is called ``model(image, tabular)``; see
    :class:`HyperModel` for how the embedding reaches the layers.

    Args:
        model: the primary network.
        layers: qualified names (as in ``model.named_modules()``) of ``nn.Linear`` / ``nn.Conv3d`` layers.
        embedding: one embedding network ``T -> e`` shared by all hyper layers (run once per batch), or a mapping
            from each layer name to its own embedding network.
        embedding_dim: the embedding size; inferred from each embedding's last ``nn.Linear`` when omitted.
        embedding_variance: ``E[e²]`` over the training data (see
            :func:`~hyperfusion.nn.estimate_embedding_variance`); when given, every hyper layer gets
            :func:`~hyperfusion.nn.principled_init_` with it, ``gain`` and ``bias_variance``; when omitted,
            a unit second moment is assumed.
        keep_layer_weights: start the constant terms ``c_W``, ``c_B`` from the replaced layer's weight and bias,
            so the network begins as the original one plus a tabular-conditioned change (useful for a pretrained
            network).

    Raises:
        ValueError: for an empty or repeated layer list, an unknown name, a layer type that cannot be hyperized,
            embeddings that do not match the layers, or an embedding size that cannot be inferred.

    Example:
        >>> net = nn.Sequential(nn.Conv3d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> model = hyperize(net, ["4"], nn.Sequential(nn.Linear(3, 8), nn.ReLU()))
        >>> model(torch.randn(2, 1, 8, 8, 8), torch.randn(2, 3)).shape
        torch.Size([2, 2])
    """
    names = list(layers)
    if not names:
        raise ValueError("layers must name at least one nn.Linear or nn.Conv3d layer")
    if len(set(names)) != len(names):
        raise ValueError(f"layers contains repeated names: {names}")
    shared = isinstance(embedding, nn.Module)
    if shared:
        embedding_modules = [embedding]
    else:
        if not isinstance(embedding, Mapping) or set(embedding) != set(names):
            given = sorted(embedding) if isinstance(embedding, Mapping) else type(embedding).__name__
            raise ValueError(
                f"embedding must be an nn.Module or a mapping with exactly the layer names {sorted(names)}, "
                f"got {given}"
            )
        embedding_modules = [embedding[name] for name in names]
    if embedding_dim is not None and (not isinstance(embedding_dim, int) or embedding_dim < 1):
        raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")

    available = dict(model.named_modules())
    slots = []
    for index, name in enumerate(names):
        if name not in available or name == "":
            raise ValueError(f"model has no submodule named {name!r}")
        plain = available[name]
        dim = embedding_dim or infer_embedding_dim(embedding_modules[0 if shared else index])
        hyper = _hyper_layer_for(plain, name, dim)
        principled_init_(hyper, embedding_variance or 1.0, gain=gain, bias_variance=bias_variance)
        if keep_layer_weights:
            _copy_plain_parameters(plain, hyper)
        slot = ConditionedLayer(hyper, name)
        parent_name, _, attribute = name.rpartition(".")
        model.get_submodule(parent_name).register_module(attribute, slot)
        slots.append(slot)
    return HyperModel(model, slots, embedding_modules, shared_embedding=shared)


@torch.no_grad()
def _copy_plain_parameters(plain: nn.Module, hyper: HyperLayer) -> None:
    hyper.weight_head[0].copy_(plain.weight)
    if hyper.bias_generator is not None and plain.bias is not None:
        hyper.bias_generator.bias.copy_(plain.bias)
