"""Model registry: every network of the package by name, with metadata, behind one call signature.

Factories are small functions decorated with :func:`register_model` (as in timm); the model name is the function
name with ``_`` replaced by ``-``. Every registered model is called ``model(image, tabular)`` and returns logits
``[B, C]`` (classification) or predictions ``[B]`` (regression), so protocols, ensembles and reports never branch on
the method; :func:`model_info` tells them what a model needs.

A family of models shares one *trunk factory* (``register_model(..., trunk=ad_trunk)``): its factory then receives
the network the trunk factory built and adds one fusion to it, so methods cannot drift apart in their image
network. :func:`create_model` routes each keyword to the trunk or the fusion (a keyword both declare goes to both),
and :func:`model_arguments` lists both with their defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from torch import nn

Task = Literal["classification", "regression"]
Fusion = Literal["none", "early", "intermediate", "late", "hyper"]
Fit = Literal["gradient", "closed_form"]
TASKS: tuple[str, ...] = ("classification", "regression")
FITS: tuple[str, ...] = ("gradient", "closed_form")
#: the reference reader a family's imaging-only model is shown beside (``<family>-crop-reader``)
CROP_READER_SUFFIX = "-crop-reader"
FUSIONS: tuple[str, ...] = ("none", "early", "intermediate", "late", "hyper")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is and what it consumes.

    Attributes:
        name: registry name, e.g. ``"ad-hyperfusion"``.
        task: ``"classification"`` (logits ``[B, C]``) or ``"regression"`` (predictions ``[B]``).
        fusion: ``"none"`` (one modality), ``"early"``, ``"intermediate"`` (joint), ``"late"`` (decision level) or
            ``"hyper"`` (hypernetwork).
        uses_image: whether the output depends on the image.
        uses_tabular: whether the output depends on the tabular vector.
        input_shape: default image shape ``(C, D, H, W)`` at paper settings (also for tabular-only models, whose
            data pipeline still loads the image of the same family).
        n_tabular: default width of the preprocessed tabular vector.
        description: first line of the factory's docstring.
        fit: ``"gradient"`` (trained by the engine) or ``"closed_form"`` (the model's own ``fit(train, val)``,
            e.g. the crop reader).
        family: the models that share one image network and data pipeline (``"ad"``, ``"brainage"``): a fused
            model's imaging-only and tabular-only members, and its crop reader, are found by it
            (`family_member`), never by editing names.
    """

    name: str
    task: Task
    fusion: Fusion
    uses_image: bool
    uses_tabular: bool
    input_shape: tuple[int, int, int, int]
    n_tabular: int
    description: str
    fit: Fit = "gradient"
    family: str = ""


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    factory: Callable[..., nn.Module]
    trunk: Callable[..., nn.Module] | None

    def fusion_parameters(self) -> dict[str, inspect.Parameter]:
        """The factory's own keyword arguments (after the network, when it has a trunk)."""
        parameters = list(inspect.signature(self.factory).parameters.values())
        return {p.name: p for p in (parameters[1:] if self.trunk is not None else parameters)}

    def trunk_parameters(self) -> dict[str, inspect.Parameter]:
        return {} if self.trunk is None else dict(inspect.signature(self.trunk).parameters)


_REGISTRY: dict[str, _Entry] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def _check_trunk(name: str, factory: Callable[..., nn.Module], trunk: Callable[..., nn.Module]) -> None:
    """A factory with a trunk takes the network first, then keyword arguments agreeing with the trunk's defaults."""
    if not callable(trunk):
        raise ValueError(f"trunk must be a callable building the network, got {trunk!r}")
    parameters = list(inspect.signature(factory).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in positional:
        raise ValueError(
            f"model {name!r}: a factory with a trunk must take the network as its first argument"
        )
    trunk_parameters = inspect.signature(trunk).parameters
    for parameter in parameters[1:]:
        shared = trunk_parameters.get(parameter.name)
        if shared is not None and shared.default != parameter.default:
            raise ValueError(
                f"model {name!r}: argument {parameter.name!r} defaults to {parameter.default!r} but the trunk's "
                f"to {shared.default!r}; an argument both take must have one default"
            )


def register_model(
    *,
    task: Task,
    fusion: Fusion,
    uses_image: bool,
    uses_tabular: bool,
    input_shape: tuple[int, int, int, int],
    n_tabular: int,
    trunk: Callable[..., nn.Module] | None = None,
    fit: Fit = "gradient",
    family: str | None = None,
) -> Callable[[F], F]:
    """Decorator registering a factory under its function name (``ad_film`` → ``"ad-film"``).

    Args:
        task, fusion, uses_image, uses_tabular, input_shape, n_tabular: the :class:`ModelInfo` fields.
        trunk: a factory of the family's image network (keyword arguments only). Given, the decorated factory is
            called ``factory(network, **its_own_keywords)`` with the network ``trunk(**trunk_keywords)`` built.
        fit: ``"gradient"`` or ``"closed_form"`` (the model fits itself: ``model.fit(train_batches, val_batches)``).
        family: the model's family (default: its own name, a family of one).

    Raises:
        ValueError: for an unknown task or fusion, a model that uses no input, a name registered twice, or a
            factory that does not fit its trunk.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if not (uses_image or uses_tabular):
        raise ValueError("a model must use the image, the tabular data or both")
    if (fusion == "none") == (uses_image and uses_tabular):
        raise ValueError(
            f"fusion {fusion!r} contradicts uses_image={uses_image}, uses_tabular={uses_tabular}"
        )

    def decorate(factory: F) -> F:
        name = factory.__name__.replace("_", "-")
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if trunk is not None:
            _check_trunk(name, factory, trunk)
        doc = inspect.getdoc(factory) or ""
        info = ModelInfo(
            name=name,
            task=task,
            fusion=fusion,
            uses_image=uses_image,
            uses_tabular=uses_tabular,
            input_shape=tuple(input_shape),  # type: ignore[arg-type]
            n_tabular=n_tabular,
            description=doc.splitlines()[0] if doc else "",
            fit=fit,
            family=family or name,
        )
        _REGISTRY[name] = _Entry(info, factory, trunk)
        return factory

    return decorate


#: Neutral names of families whose registered prefix says less than they do: ``ad-*`` is the general 3D-image
#: classification family (any classes, any cohort), so ``cls3d-hyperfusion`` names ``ad-hyperfusion``.
FAMILY_ALIASES: dict[str, str] = {"cls3d": "ad"}


def canonical_name(name: str) -> str:
    """The registered name behind an alias (``cls3d-film`` → ``ad-film``); any other name is returned as is.

    A config may name either; the run records the registered name, so runs made with either compare as one.
    """
    alias, _, rest = name.partition("-")
    family = FAMILY_ALIASES.get(alias)
    if family is not None and rest and f"{family}-{rest}" in _REGISTRY:
        return f"{family}-{rest}"
    return name


def _entry(name: str) -> _Entry:
    name = canonical_name(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models(*, task: Task | None = None, fusion: Fusion | None = None) -> list[str]:
    """Sorted names of the registered models, optionally only those of one task and/or fusion type.

    Raises:
        ValueError: for an unknown task or fusion filter.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    return sorted(
        name
        for name, entry in _REGISTRY.items()
        if (task is None or entry.info.task == task) and (fusion is None or entry.info.fusion == fusion)
    )


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model.

    Raises:
        ValueError: for an unknown name (the message lists the available ones).
    """
    return _entry(name).info


def model_arguments(name: str) -> dict[str, object]:
    """Every keyword argument a model accepts (its trunk's, then its fusion's) with its default (paper settings).

    Raises:
        ValueError: for an unknown name.
    """
    entry = _entry(name)
    parameters = entry.trunk_parameters() | entry.fusion_parameters()
    return {key: p.default for key, p in parameters.items()}


def with_crop_readers(methods: Sequence[str]) -> list[str]:
    """``methods`` with each imaging-only model followed by its family's crop reader, when the family has one.

    The crop reader (:mod:`hyperfusion.models.crop_reader`) is the yardstick of an image model: a report shows it
    beside imaging only, as it shows no skill beside every method. Methods already listed are not repeated.

    Raises:
        ValueError: for an unknown model name.
    """
    out: list[str] = []
    for method in methods:
        out.append(method)
        info = model_info(method)
        if info.fusion == "none" and info.uses_image and not info.uses_tabular and info.fit == "gradient":
            reader = family_member(method, "reader")
            if reader is not None and reader not in methods and reader not in out:
                out.append(reader)
    return out


Role = Literal["imaging", "tabular", "reader"]


def family_member(method: str, role: Role) -> str | None:
    """The model of ``method``'s family in ``role``, or None when the family has none.

    Roles: ``"imaging"`` and ``"tabular"``, the single-modality models a fused model is compared with, composed
    from (late fusion) and warm-started from, trained by gradient; ``"reader"``, the closed-form imaging-only
    reference (the crop reader). Where a family registers several, the one named ``<family>-<role>`` (or
    ``<family>-crop-reader``) is chosen, else the first by name.

    Raises:
        ValueError: for an unknown model name.
    """
    family = model_info(method).family
    image, tabular = role != "tabular", role == "tabular"
    fit = "closed_form" if role == "reader" else "gradient"
    found = sorted(
        name
        for name, entry in _REGISTRY.items()
        if entry.info.family == family and entry.info.fusion == "none" and entry.info.fit == fit
        and entry.info.uses_image == image and entry.info.uses_tabular == tabular
    )  # fmt: skip
    preferred = f"{family}{CROP_READER_SUFFIX}" if role == "reader" else f"{family}-{role}"
    if preferred in found:
        return preferred
    return found[0] if found else None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; keyword arguments override the paper's settings.

    Example:
        >>> model = create_model("ad-imaging", base_width=4)
        >>> logits = model(image, tabular)   # [B, 3]

    Raises:
        ValueError: for an unknown model name or an argument the model does not take (both listed).
    """
    entry = _entry(name)
    trunk_parameters, fusion_parameters = entry.trunk_parameters(), entry.fusion_parameters()
    accepted = trunk_parameters | fusion_parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} has no argument(s) {', '.join(map(repr, unknown))}; it accepts: {', '.join(accepted)}"
        )
    own = {key: value for key, value in kwargs.items() if key in fusion_parameters}
    if entry.trunk is None:
        return entry.factory(**own)
    network = entry.trunk(**{key: value for key, value in kwargs.items() if key in trunk_parameters})
    return entry.factory(network, **own)
