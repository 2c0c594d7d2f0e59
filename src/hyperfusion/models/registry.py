"""Model registry: every network of the package by name, with metadata, behind one call signature.

Factories are small functions decorated with :func:`register_model` (as in timm); the model name is the function
name with ``_`` replaced by ``-``. Every registered model is called ``model(image, tabular)`` and returns logits
``[B, C]`` (classification) or predictions ``[B]`` (regression), so protocols, ensembles and reports never branch on
the method; :func:`model_info` tells them what a model needs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from torch import nn

Task = Literal["classification", "regression"]
Fusion = Literal["none", "early", "intermediate", "late", "hyper"]
TASKS: tuple[str, ...] = ("classification", "regression")
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
    """

    name: str
    task: Task
    fusion: Fusion
    uses_image: bool
    uses_tabular: bool
    input_shape: tuple[int, int, int, int]
    n_tabular: int
    description: str


_REGISTRY: dict[str, tuple[ModelInfo, Callable[..., nn.Module]]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(
    *,
    task: Task,
    fusion: Fusion,
    uses_image: bool,
    uses_tabular: bool,
    input_shape: tuple[int, int, int, int],
    n_tabular: int,
) -> Callable[[F], F]:
    """Decorator registering a factory under its function name (``ad_film`` → ``"ad-film"``).

    Raises:
        ValueError: for an unknown task or fusion, a model that uses no input, or a name registered twice.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
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
        )
        _REGISTRY[name] = (info, factory)
        return factory

    return decorate


def _entry(name: str) -> tuple[ModelInfo, Callable[..., nn.Module]]:
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
        for name, (info, _) in _REGISTRY.items()
        if (task is None or info.task == task) and (fusion is None or info.fusion == fusion)
    )


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model.

    Raises:
        ValueError: for an unknown name (the message lists the available ones).
    """
    return _entry(name)[0]


def model_arguments(name: str) -> dict[str, object]:
    """The keyword arguments a model's factory accepts, with their defaults (paper settings)."""
    factory = _entry(name)[1]
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()}


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model; keyword arguments override the paper's settings.

    Example:
        >>> model = create_model("ad-imaging", base_width=4)
        >>> logits = model(image, tabular)   # [B, 3]

    Raises:
        ValueError: for an unknown model name or an argument the model does not take (both listed).
    """
    factory = _entry(name)[1]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} has no argument(s) {', '.join(map(repr, unknown))}; it accepts: {', '.join(accepted)}"
        )
    return factory(**kwargs)
