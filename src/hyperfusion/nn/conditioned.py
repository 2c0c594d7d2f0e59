"""The fused model every fusion of :mod:`hyperfusion.nn` returns, and how the tabular data reaches its slots.

``ConditionedModel.forward(image, tabular)`` runs each tabular encoder once on the batch, hands every
:class:`~hyperfusion.nn.slots.ConditionSlot` inside the network the output of its encoder (or the raw vector),
calls the unmodified ``network(image)`` and takes the conditions back (also on error).

The slots are found by walking the module tree at call time; the model keeps no Python reference to them. That is
what makes the hand-over safe under ``nn.DataParallel``: a replica made by ``torch.nn.parallel.replicate`` copies
each module's ``__dict__`` shallowly and re-points only ``_modules``, so a stored list of slots would still name the
*original* slots and every replica would write its conditions into them. Walking the tree of ``self`` finds the
replica's own slots. Under DDP each process owns its model, and the same code applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hyperfusion.nn.hyper import HyperLayer
from hyperfusion.nn.slots import ConcatInput, ConditionedLayer, ConditionSlot, ModulatedInput

Encoder = nn.Module | Mapping[str, nn.Module] | None


class ConditionedModel(nn.Module):
    """An image network with tabular conditioning at named places; called ``model(image, tabular)``.

    Built by :func:`~hyperfusion.nn.hyperize`, :func:`~hyperfusion.nn.film`, :func:`~hyperfusion.nn.daft` or
    :func:`~hyperfusion.nn.concat`; passing a model they returned to another one adds that fusion to the same model
    (e.g. FiLM on one block of a HyperFusion network).

    Attributes:
        network: the primary network, the conditioned submodules replaced by slots.
        encoders: the tabular encoders, each run once per batch, in order of first use.
        n_tabular: width of the tabular vector, when known.
    """

    def __init__(self, network: nn.Module, *, n_tabular: int | None = None) -> None:
        super().__init__()
        self.network = network
        self.encoders = nn.ModuleList()
        self.n_tabular = n_tabular
        self.slot_names: list[str] = []  # conditioned submodules, in the order they were added

    # ---------------------------------------------------------------- structure
    def slots(self) -> Iterator[ConditionSlot]:
        """The slots inside this model's network (not those of another fused model nested in it)."""
        stack = [self.network]
        while stack:
            module = stack.pop()
            if isinstance(module, ConditionSlot):
                yield module
            children = [m for m in module._modules.values() if m is not None]
            stack.extend(m for m in reversed(children) if not isinstance(m, ConditionedModel))

    def slot(self, name: str) -> ConditionSlot:
        """The slot that replaced the submodule ``name``."""
        for slot in self.slots():
            if slot.name == name:
                return slot
        raise ValueError(f"no conditioned layer named {name!r}; conditioned layers: {self.slot_names}")

    @property
    def tabular_encoders(self) -> list[nn.Module]:
        """The tabular encoders (empty when every slot reads the raw tabular vector)."""
        return list(self.encoders)

    @property
    def embeddings(self) -> nn.ModuleList:
        """The tabular encoders (HyperFusion's "embedding networks"); the same modules as :attr:`encoders`."""
        return self.encoders

    @property
    def layer_names(self) -> list[str]:
        """Names of the hyper layers, in the order they were given."""
        kinds = {slot.name: slot for slot in self.slots()}
        return [name for name in self.slot_names if isinstance(kinds.get(name), ConditionedLayer)]

    @property
    def hyper_layers(self) -> dict[str, HyperLayer]:
        """Qualified layer name → its hyper layer (``HyperLinear`` / ``HyperConv*d``), in the order given."""
        layers = {slot.name: slot.hyper for slot in self.slots() if isinstance(slot, ConditionedLayer)}
        return {name: layers[name] for name in self.slot_names if name in layers}

    @property
    def shared_embedding(self) -> bool:
        """Whether every hyper layer reads one and the same encoder output."""
        sources = {slot.source for slot in self.slots() if isinstance(slot, ConditionedLayer)}
        return len(sources) == 1

    def encoder_for(self, name: str) -> nn.Module | None:
        """The encoder whose output the conditioned layer ``name`` reads; ``None`` for the raw tabular vector."""
        source = self.slot(name).source
        return None if source is None else self.encoders[source]

    # ---------------------------------------------------------------- running
    def _check_tabular(self, image: Any, tabular: Tensor) -> None:
        if not isinstance(tabular, Tensor) or tabular.dim() != 2:
            shape = list(tabular.shape) if isinstance(tabular, Tensor) else type(tabular).__name__
            raise ValueError(f"tabular must be a tensor [B, features], got {shape}")
        if self.n_tabular is not None and tabular.shape[1] != self.n_tabular:
            raise ValueError(
                f"tabular must have {self.n_tabular} features (shape [B, {self.n_tabular}]), "
                f"got {list(tabular.shape)}"
            )
        if isinstance(image, Tensor) and image.shape[0] != tabular.shape[0]:
            raise ValueError(f"tabular batch {tabular.shape[0]} does not match image batch {image.shape[0]}")

    def embed(self, tabular: Tensor) -> dict[str, Tensor]:
        """The condition each conditioned layer receives for this batch (each encoder runs once)."""
        outputs = [encoder(tabular) for encoder in self.encoders]
        return {slot.name: tabular if slot.source is None else outputs[slot.source] for slot in self.slots()}

    def forward(self, image: Any, tabular: Tensor, *args: Any, **kwargs: Any) -> Any:
        self._check_tabular(image, tabular)
        outputs = [encoder(tabular) for encoder in self.encoders]
        slots = list(self.slots())
        try:
            for slot in slots:
                slot.condition = tabular if slot.source is None else outputs[slot.source]
            return self.network(image, *args, **kwargs)
        finally:
            for slot in slots:
                slot.condition = None

    def extra_repr(self) -> str:
        return f"n_tabular={self.n_tabular}, conditioned={self.slot_names}"

    # ---------------------------------------------------------------- building
    def _add_encoder(self, encoder: nn.Module) -> int:
        for index, existing in enumerate(self.encoders):
            if existing is encoder:
                return index
        self.encoders.append(encoder)
        return len(self.encoders) - 1


def tabular_encoders(model: nn.Module) -> list[nn.Module]:
    """The tabular encoders of a fused model; an empty list for any other model."""
    return model.tabular_encoders if isinstance(model, ConditionedModel) else []


@torch.no_grad()
def warm_start_(model: nn.Module, source_encoder: nn.Module) -> None:
    """Copy a trained encoder (parameters and buffers) into every tabular encoder of a fused model.

    E.g. ``warm_start_(model, trained_tabular_mlp.embedding)``: all fusion methods can then start from what the
    tabular-only model learnt (paper §4.3.6 does it for HyperFusion). The copies are independent and keep training.
    Every encoder is checked before any is changed.

    Raises:
        ValueError: when the model has no tabular encoder, or an encoder's state (names or shapes) differs from the
            source's.
    """
    encoders = tabular_encoders(model)
    if not encoders:
        raise ValueError(
            f"{type(model).__name__} has no tabular encoder to warm-start (its fusion reads the raw tabular "
            "vector, or it is not a fused model)"
        )
    source = source_encoder.state_dict()
    for index, encoder in enumerate(encoders):
        target = encoder.state_dict()
        if set(target) != set(source):
            raise ValueError(
                f"tabular encoder {index} ({type(encoder).__name__}) has state {sorted(target)}, the source "
                f"encoder ({type(source_encoder).__name__}) has {sorted(source)}"
            )
        for key, value in source.items():
            if target[key].shape != value.shape:
                raise ValueError(
                    f"tabular encoder {index}: {key!r} has shape {list(target[key].shape)}, the source's has "
                    f"{list(value.shape)}"
                )
    for encoder in encoders:
        encoder.load_state_dict(source)


@torch.no_grad()
def warm_start_network_(model: ConditionedModel, source_network: nn.Module) -> None:
    """Copy a trained image network (e.g. the imaging-only model of the same fold) into a fused model's network.

    The fused network is the same network with slots at the conditioned places, so every parameter and buffer of
    ``source_network`` has its place: a wrapped submodule (FiLM, DAFT, concatenation) keeps its own weights inside
    the slot, and a hyperized layer's weight and bias become the constant terms ``c_W``, ``c_B`` of its generated
    parameters, kept by later re-initialisations (``keeps_offset``). What the fusion adds (encoders, generators,
    concatenation columns, the record-dependent heads) is left as initialised. With a hyperized layer the fused
    model therefore starts as the trained image model plus a record-dependent correction.

    Raises:
        ValueError: for a model that is not a fused model, or a source whose state does not fit the fused network
            (a name without a place, a shape that differs, a place the source leaves empty); nothing is changed.
    """
    if not isinstance(model, ConditionedModel):
        raise ValueError(f"warm_start_network_ expects a fused model, got {type(model).__name__}")
    slots = {slot.name: slot for slot in model.slots()}
    target = model.network.state_dict()
    plan: list[tuple[Tensor, Tensor]] = []
    filled: set[str] = set()
    for key, value in source_network.state_dict().items():
        destination, name = _warm_destination(key, slots, target)
        if destination is None or destination.shape != value.shape:
            shape = "no place" if destination is None else f"shape {list(destination.shape)}"
            raise ValueError(
                f"the source network's {key!r} ({list(value.shape)}) does not fit the fused network ({shape})"
            )
        plan.append((destination, value))
        filled.add(name)
    own = {k for k in target if not _added_by_fusion(k, slots)}
    missing = sorted(own - filled)
    if missing:
        raise ValueError(f"the source network has no {missing[0]!r} (and {len(missing) - 1} more) to copy")
    for destination, value in plan:
        destination.copy_(value)
    for slot in slots.values():
        if isinstance(slot, ConditionedLayer):
            slot.hyper.keeps_offset = True


def _warm_destination(
    key: str, slots: Mapping[str, ConditionSlot], target: Mapping[str, Tensor]
) -> tuple[Tensor | None, str]:
    """Where a source network's state entry goes in the fused network (a view to copy into) and its name there."""
    for name, slot in slots.items():
        if not key.startswith(name + "."):
            continue
        rest = key[len(name) + 1 :]
        if isinstance(slot, ConditionedLayer):
            hyper = slot.hyper
            if rest == "weight":
                return hyper.weight_head[0], f"{name}.hyper.weight_head"
            if rest == "bias" and hyper.bias_generator is not None:
                return hyper.bias_generator.bias, f"{name}.hyper.bias_generator.bias"
            return None, key
        moved = f"{name}.module.{rest}"
        return target.get(moved), moved
    return target.get(key), key


def _added_by_fusion(key: str, slots: Mapping[str, ConditionSlot]) -> bool:
    """Whether a fused network's state entry belongs to the fusion (not to the image network it conditions)."""
    for name, slot in slots.items():
        if key.startswith(name + "."):
            if isinstance(slot, ConditionedLayer):
                return key not in (f"{name}.hyper.weight_head", f"{name}.hyper.bias_generator.bias")
            return not key.startswith(f"{name}.module.")
    return False


# -------------------------------------------------------------------- shared by every fusion
def _wrapped(module: nn.Module) -> nn.Module | None:
    """The submodule a wrapping slot keeps, so that names inside it resolve as in the original network."""
    return module.module if isinstance(module, (ModulatedInput, ConcatInput)) else None


def locate(network: nn.Module, name: str) -> tuple[nn.Module, str, nn.Module]:
    """``(parent, attribute, module)`` of the submodule ``name``, looking through slots that wrap a submodule.

    Raises:
        ValueError: when there is no such submodule.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"layer names must be non-empty strings, got {name!r}")
    parent, module = network, network
    for part in name.split("."):
        parent = module
        child = parent._modules.get(part)
        inner = _wrapped(parent)
        if child is None and inner is not None:
            parent, child = inner, inner._modules.get(part)
        if child is None:
            raise ValueError(f"the network has no submodule named {name!r}")
        module = child
    return parent, name.rpartition(".")[2], module


def encoder_width(encoder: nn.Module, n_tabular: int) -> int:
    """Output width of a tabular encoder, found by running it (in eval mode, without gradients) on zeros.

    Raises:
        ValueError: when the encoder cannot read ``[2, n_tabular]`` or does not return ``[2, width]``.
    """
    reference = next(itertools.chain(encoder.parameters(), encoder.buffers()), None)
    floating = reference is not None and reference.is_floating_point()
    dtype = reference.dtype if floating else torch.get_default_dtype()
    device = reference.device if reference is not None else None
    was_training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            out = encoder(torch.zeros(2, n_tabular, dtype=dtype, device=device))
    except Exception as error:
        raise ValueError(
            f"encoder {type(encoder).__name__} cannot read a tabular batch of shape [2, {n_tabular}]: {error}"
        ) from error
    finally:
        encoder.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"encoder {type(encoder).__name__} must return [B, width], got {shape}")
    return int(out.shape[1])


def check_layer_names(layers: Sequence[str]) -> list[str]:
    """The layer list as a list, refused when empty, repeated or not made of strings."""
    if isinstance(layers, str):
        raise ValueError(f"layers must be a list of names, got the string {layers!r}")
    names = list(layers)
    if not names:
        raise ValueError("layers must name at least one submodule")
    if len(set(names)) != len(names):
        raise ValueError(f"layers contains repeated names: {names}")
    return names


def check_n_tabular(n_tabular: int) -> int:
    if isinstance(n_tabular, bool) or not isinstance(n_tabular, int) or n_tabular < 1:
        raise ValueError(f"n_tabular must be a positive int, got {n_tabular!r}")
    return n_tabular


def attach(
    net: nn.Module,
    layers: Sequence[str],
    encoder: Encoder,
    *,
    n_tabular: int | None,
    width_of: Callable[[nn.Module], int],
    make_slot: Callable[[str, nn.Module, int], ConditionSlot],
) -> ConditionedModel:
    """Put one slot per named layer into ``net`` (or into the network of the fused model ``net``).

    Args:
        net: an image network, or a :class:`ConditionedModel` to add to.
        layers: qualified names of the submodules to condition.
        encoder: one encoder shared by all layers, a mapping ``{layer: encoder}``, or ``None`` for the raw vector.
        n_tabular: width of the tabular vector (``None`` when unknown).
        width_of: the condition width an encoder produces.
        make_slot: ``(name, plain module, condition width) -> slot``; its ``source`` is set here.

    Raises:
        ValueError: for bad layer names, encoders that do not match the layers, a conflicting ``n_tabular``, or
            whatever ``make_slot`` refuses.
    """
    names = check_layer_names(layers)
    if isinstance(net, ConditionedModel):
        model = net
        if n_tabular is not None and model.n_tabular is not None and model.n_tabular != n_tabular:
            raise ValueError(f"n_tabular={n_tabular} but the fused model reads {model.n_tabular} features")
    elif isinstance(net, nn.Module):
        model = ConditionedModel(net, n_tabular=n_tabular)
    else:
        raise ValueError(f"net must be an nn.Module, got {type(net).__name__}")

    if encoder is None:
        if n_tabular is None:
            raise ValueError("without an encoder the tabular width n_tabular must be given")
        per_layer: dict[str, nn.Module | None] = dict.fromkeys(names)
    elif isinstance(encoder, nn.Module):
        per_layer = dict.fromkeys(names, encoder)
    elif isinstance(encoder, Mapping) and set(encoder) == set(names):
        per_layer = {name: encoder[name] for name in names}
        if not all(isinstance(e, nn.Module) for e in per_layer.values()):
            raise ValueError("every encoder in the mapping must be an nn.Module")
    else:
        given = sorted(encoder) if isinstance(encoder, Mapping) else type(encoder).__name__
        raise ValueError(
            f"encoder must be None, an nn.Module or a mapping with exactly the layer names {sorted(names)}, "
            f"got {given}"
        )

    located = {}
    existing = set(model.slot_names)
    for name in names:  # check every name before changing anything
        if name in existing:
            raise ValueError(f"layer {name!r} is already conditioned")
        parent, attribute, plain = locate(model.network, name)
        if isinstance(plain, ConditionSlot):
            raise ValueError(f"layer {name!r} is already conditioned")
        located[name] = (parent, attribute, plain)
    widths: dict[int, int] = {}
    made = {}
    for name in names:  # make every slot before inserting any, so a refusal leaves the network as it was
        chosen = per_layer[name]
        if chosen is not None and id(chosen) not in widths:
            widths[id(chosen)] = width_of(chosen)
        width = n_tabular if chosen is None else widths[id(chosen)]
        made[name] = make_slot(name, located[name][2], width)
    for name in names:
        chosen = per_layer[name]
        slot = made[name]
        slot.source = None if chosen is None else model._add_encoder(chosen)
        parent, attribute, _ = located[name]
        parent.register_module(attribute, slot)
        model.slot_names.append(name)
    if n_tabular is not None:
        model.n_tabular = n_tabular
    return model


HyperModel = ConditionedModel
"""The model :func:`~hyperfusion.nn.hyperize` returns: the same class as every fused model."""
