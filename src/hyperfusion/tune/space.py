"""The search space: the same shared training settings for every method, plus each method's own knobs.

Every space holds the run config's own value (the defaults are trial 0 of every method), so the tuned result can
only be compared with the defaults inside one study and one budget.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from hyperfusion.config import RunConfig
from hyperfusion.models import model_arguments, model_info
from hyperfusion.run.plan import Unit, warm_sources
from hyperfusion.run.setup import static_model_kwargs

Distributions = dict[str, optuna.distributions.BaseDistribution]


def _log_range(default: float, low: float, high: float) -> optuna.distributions.FloatDistribution:
    return optuna.distributions.FloatDistribution(min(low, default), max(high, default), log=True)


def shared_space(config: RunConfig) -> Distributions:
    """Learning rate, weight decay, epochs, batch size: identical for every method of a config."""
    training = config.training
    batches = sorted({max(2, training.batch_size // 2), training.batch_size, training.batch_size * 2})
    space: Distributions = {
        "training.lr": _log_range(training.lr, 1e-4, 1e-2),
        "training.epochs": optuna.distributions.IntDistribution(
            max(1, math.ceil(training.epochs / 4)), training.epochs
        ),
        "training.batch_size": optuna.distributions.CategoricalDistribution(batches),
    }
    if training.weight_decay > 0:
        space["training.weight_decay"] = _log_range(training.weight_decay, 1e-6, 1e-3)
    return space


def _model_default(config: RunConfig, method: str, key: str) -> Any:
    overrides = config.model_overrides.get(method, {})
    return overrides.get(key, config.model.get(key, model_arguments(method)[key]))


def method_space(config: RunConfig, method: str) -> Distributions:
    """The method's own knobs, among the arguments its model takes (dropout for every CNN head)."""
    arguments = model_arguments(method)
    space: Distributions = {}
    if "head_dropout" in arguments:
        for i, value in enumerate(_model_default(config, method, "head_dropout")):
            space[f"model.head_dropout.{i}"] = optuna.distributions.FloatDistribution(0.0, max(0.8, value))
    depth = _model_default(config, method, "depth") if "depth" in arguments else None
    for layers_key in ("film_layers", "daft_layers"):  # the conditioner's scale and location
        if layers_key in arguments:
            space["model.init_std"] = _log_range(_model_default(config, method, "init_std"), 0.01, 1.0)
            space[f"model.{layers_key}"] = _layers(
                config, method, layers_key, [f"block{depth}.residual", f"block{depth - 1}.residual"]
            )
    if "hidden" in arguments and is_tabular_only(method):  # the width every warm-started encoder takes
        space["model.hidden"] = _widths(_model_default(config, method, "hidden"))
    if "hyper_layers" in arguments:
        own_width = not warm_started_encoder(config, method)  # else it is the tabular member's hidden width
        if own_width:
            dims = sorted({4, 8, 16, _model_default(config, method, "embedding_dim")})
            space["model.embedding_dim"] = optuna.distributions.CategoricalDistribution(dims)
        space["model.hyper_layers"] = _layers(
            config,
            method,
            "hyper_layers",
            [f"block{depth}.shortcut.conv", f"block{depth - 1}.shortcut.conv", "fc1"],
        )
    return space


def is_tabular_only(method: str) -> bool:
    """Whether ``method`` is a tabular-only model (the one whose hidden layers fused encoders start from)."""
    info = model_info(method)
    return info.uses_tabular and not info.uses_image and info.fusion == "none"


def warm_started_encoder(config: RunConfig, method: str) -> bool:
    """Whether ``method``'s tabular encoder starts from its tabular member's hidden layers (its width is then the
    member's, tuned in the member's study)."""
    tabular, _ = warm_sources(Unit(method, 0, 0, 0), config.training.warm_start, static_model_kwargs(config))
    return tabular is not None


def _widths(default: Any) -> optuna.distributions.CategoricalDistribution:
    """The tabular model's hidden widths with the last layer (the encoder's output) at 4, 8 or 16 (the default
    first); as comma-joined text, since a categorical holds plain values."""
    layers = [int(width) for width in default]
    choices = [[*layers[:-1], width] for width in (layers[-1], 4, 8, 16)]
    return optuna.distributions.CategoricalDistribution(
        list(dict.fromkeys(",".join(map(str, widths)) for widths in choices))
    )


def _layers(
    config: RunConfig, method: str, key: str, candidates: list[str]
) -> optuna.distributions.CategoricalDistribution:
    """One layer name per choice (a categorical must hold plain values); the default first."""
    default = _model_default(config, method, key)
    first = candidates[0] if default is None else ",".join(default)
    return optuna.distributions.CategoricalDistribution(list(dict.fromkeys([first, *candidates])))


def defaults(config: RunConfig, method: str, space: Distributions) -> dict[str, Any]:
    """The config's own value of every parameter in ``space`` (enqueued as each method's trial 0)."""
    values: dict[str, Any] = {}
    for name in space:
        section, key, *index = name.split(".")
        if section == "training":
            values[name] = getattr(config.training, key)
        elif key.endswith("_layers") or key == "hidden":
            values[name] = space[name].choices[0]  # type: ignore[attr-defined]
        else:
            value = _model_default(config, method, key)
            values[name] = value[int(index[0])] if index else value
    return values


def as_settings(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's parameters as (training settings, model keyword arguments)."""
    training: dict[str, Any] = {}
    model: dict[str, Any] = {}
    dropout: dict[int, float] = {}
    for name, value in params.items():
        section, key, *index = name.split(".")
        if section == "training":
            training[key] = value
        elif index:
            dropout[int(index[0])] = float(value)
        elif key.endswith("_layers"):
            model[key] = str(value).split(",")
        elif key == "hidden":
            model[key] = [int(width) for width in str(value).split(",")]
        else:
            model[key] = value
    if dropout:
        model["head_dropout"] = [dropout[i] for i in sorted(dropout)]
    return training, model


def describe(space: Distributions) -> dict[str, str]:
    """A plain, comparable record of a space (a resumed study refuses a different one)."""
    return {name: repr(dist) for name, dist in sorted(space.items())}
