"""What a run's configuration means for one unit: the image spec, the tabular preprocessing, the model.

One implementation shared by training, ``predict``, ``explain`` and ``report``, so a model is always rebuilt exactly
as it was trained (same keyword arguments, same regression target scaling) before its checkpoint is loaded.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort, ImageSpec, TabularPreprocessor
from hyperfusion.engine.devices import check_available
from hyperfusion.engine.target import StandardizedRegressor
from hyperfusion.models import create_model, model_arguments, model_info
from hyperfusion.models.registry import family_member
from hyperfusion.run.store import SIZED_BY_COHORT
from hyperfusion.tasks import get_task

GROUP_COLUMNS = ("sex", "Sex", "PTGENDER", "gender", "Gender")


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this run's model."""


def image_spec(config: RunConfig) -> ImageSpec:
    image = config.image
    if image.mode == "hippocampus":
        spec = ImageSpec.hippocampus(
            voxel_mm=image.voxel_mm,
            shape=image.shape,
            left_center_mm=image.left_center_mm,
            right_center_mm=image.right_center_mm,
        )
    else:
        spec = ImageSpec.whole_brain(voxel_mm=image.voxel_mm, shape=image.shape, center_mm=image.center_mm)
    return dataclasses.replace(spec, check_extent=image.check_extent)


def make_preprocessor(config: RunConfig, cohort: Cohort) -> TabularPreprocessor:
    return cohort.preprocessor(
        impute=config.tabular.impute,
        missing_indicators=config.tabular.missing_indicators,
        unknown_category=config.tabular.unknown_category,
    )


def model_kwargs(config: RunConfig, method: str, *, n_tabular: int, n_classes: int) -> dict[str, Any]:
    """Keyword arguments for one method: the shared ``model`` settings it accepts, then its overrides."""
    accepted = model_arguments(method)
    kwargs = {k: v for k, v in config.model.items() if k in accepted}
    if "n_tabular" in accepted:
        kwargs["n_tabular"] = n_tabular
    if "n_classes" in accepted and get_task(model_info(method).task).has_classes:
        kwargs["n_classes"] = n_classes
    if "input_shape" in accepted:
        kwargs["input_shape"] = tuple(config.image.shape)
    kwargs.update(config.model_overrides.get(method, {}))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def static_kwargs(config: RunConfig, method: str) -> dict[str, Any]:
    """The config's keyword arguments for one method that do not depend on the cohort (for planning)."""
    accepted = model_arguments(method)
    kwargs = {k: v for k, v in config.model.items() if k in accepted}
    kwargs.update(config.model_overrides.get(method, {}))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def static_model_kwargs(config: RunConfig) -> dict[str, dict[str, Any]]:
    """:func:`static_kwargs` for every method of the config."""
    return {method: static_kwargs(config, method) for method in config.methods}


def member_kwargs(config: RunConfig) -> dict[str, dict[str, Any]]:
    """:func:`static_model_kwargs` with the tabular members the methods are warm-started from, listed or not (a
    helper member is built with the config's ``model`` section too)."""
    kwargs = static_model_kwargs(config)
    for method in config.methods:
        member = family_member(method, "tabular")
        if member is not None and member not in kwargs:
            kwargs[member] = static_kwargs(config, member)
    return kwargs


def effective_model_arguments(config: RunConfig, method: str) -> dict[str, Any]:
    """Every keyword argument a method's model is built with: its defaults, then the config's settings.

    The cohort-dependent sizes (``n_tabular``, ``n_classes``, ``input_shape``) are left out — their defaults are not
    what any unit got (``n_tabular`` is counted after preprocessing); each unit's build record holds its own, and
    the cohort's fingerprint and the image spec cover them.
    """
    arguments = {**model_arguments(method), **static_kwargs(config, method)}
    return {k: v for k, v in arguments.items() if k not in SIZED_BY_COHORT}


def output_count(classes: tuple[str, ...]) -> int:
    """A model's outputs: one per class, or one (a risk) for a task without classes trained on a classifier
    family's network (survival). Training and rebuilding from a build record both ask here."""
    return len(classes) or 1


def build_model(
    config: RunConfig,
    method: str,
    *,
    n_tabular: int,
    classes: tuple[str, ...],
    train_targets: np.ndarray | None = None,
) -> nn.Module:
    """The unit's network as it is trained and saved.

    Regression models learn a standardised target (:class:`StandardizedRegressor`): pass the training rows'
    targets when training; when rebuilding for a checkpoint, leave them out (the checkpoint carries mean and std).
    """
    kwargs = model_kwargs(config, method, n_tabular=n_tabular, n_classes=output_count(classes))
    model = create_model(method, **kwargs)
    if get_task(model_info(method).task).standardises_target:
        if train_targets is None:
            return StandardizedRegressor(model)
        return StandardizedRegressor.fit(model, train_targets)
    return model


def build_arguments(
    config: RunConfig, method: str, *, n_tabular: int, classes: tuple[str, ...]
) -> dict[str, Any]:
    """What :func:`build_model` needs to rebuild a unit's model with no configuration: the method, the exact keyword
    arguments ``create_model`` gets (``n_tabular`` after preprocessing included) and whether it is target-scaled."""
    kwargs = model_kwargs(config, method, n_tabular=n_tabular, n_classes=output_count(classes))
    return {
        "method": method,
        "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        "standardized_target": get_task(model_info(method).task).standardises_target,
        "classes": list(classes),
    }


def model_from_build(build: Mapping[str, Any]) -> nn.Module:
    """An untrained model exactly as :func:`build_arguments` describes it (its checkpoint loads into it)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in build["kwargs"].items()}
    model = create_model(build["method"], **kwargs)
    return StandardizedRegressor(model) if build["standardized_target"] else model


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict saved by training into ``model``, refusing anything that is not one.

    Only tensors are ever unpickled (``weights_only=True``); a file that needs more is not ours and is refused
    by name, never loaded with ``weights_only=False``.

    Raises:
        CheckpointError: a missing, truncated or foreign file, or weights of another model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint missing; this model was never trained to the end")
    # torch raises many types for a bad file, and warns about foreign pickles: none of it may reach the user,
    # least of all its hint to retry with weights_only=False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a hyperfusion checkpoint (unreadable: {type(err).__name__})"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a hyperfusion checkpoint (not a state_dict of tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:200]
        raise CheckpointError(f"{path} holds weights of another model ({first})") from None
    return model


def group_column(cohort: Cohort, name: str = "auto") -> str | None:
    """The column MAE is broken down by: ``name``, or with ``"auto"`` a sex column when the cohort has one.

    Raises:
        ValueError: a named column the cohort does not have (e.g. UK Biobank's sex is field ``31-0.0``).
    """
    if name == "auto":
        return next((c for c in GROUP_COLUMNS if c in cohort.frame.columns), None)
    if name not in cohort.frame.columns:
        raise ValueError(
            f"protocol.group_by: the cohort has no column {name!r}; columns: {list(cohort.frame.columns)}"
        )
    return name


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_device(device: str, devices: int = 1) -> None:
    """Refuse a device this machine does not have before anything is preprocessed or trained.

    Raises:
        ValueError: CUDA asked for on a machine without it, a GPU index out of range, or too few GPUs for DDP.
    """
    check_available(device, devices, key="training.device")


def check_config_device(config: RunConfig) -> None:
    """:func:`check_device` for a run configuration (Ray runs check on the workers instead)."""
    if config.protocol.executor == "local":
        check_device(config.training.device, config.training.devices)
