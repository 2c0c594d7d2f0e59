"""Run configuration: YAML presets → one validated, frozen settings object.

Configuration is data. A run's YAML names the cohort, how images become inputs, the methods to compare, the
protocol (split seeds × versions × folds) and the training settings; every value is checked here once, with an
error that names the key and the allowed values, so nothing deeper has to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    """A configuration value that is missing, of the wrong type or not allowed; the message names the key."""


@dataclass(frozen=True)
class ImageSettings:
    """How NIfTI volumes become model inputs (see :class:`hyperfusion.data.ImageSpec`)."""

    mode: str = "hippocampus"  # hippocampus | box
    voxel_mm: float = 1.0
    shape: tuple[int, int, int] = (64, 96, 64)
    center_mm: tuple[float, float, float] | None = None
    left_center_mm: tuple[float, float, float] = (-26.0, -22.0, -14.0)
    right_center_mm: tuple[float, float, float] = (26.0, -22.0, -14.0)


@dataclass(frozen=True)
class TabularSettings:
    """Tabular preprocessing (paper §3.3), fitted on each fold's training rows only."""

    impute: str = "iterative"  # iterative | median | none
    missing_indicators: bool = True
    unknown_category: str = "error"  # error | zeros (an unseen category becomes an all-zero one-hot)


@dataclass(frozen=True)
class ProtocolSettings:
    """Split seeds × versions × folds (paper §4.3.4, Fig. C.7; §4.2.2 for regression)."""

    split_seeds: tuple[int, ...] = (0,)
    versions: int = 3
    n_partitions: int = 5  # classification: one partition is the test set, the others rotate as validation
    folds: int = 4  # how many of the rotating validation partitions to train (≤ n_partitions − 1)
    age_bins: int = 20
    val_fraction: float = 0.1  # regression: 80/10/10
    test_fraction: float = 0.1
    ensemble: str = "inverse_entropy"  # classification: inverse_entropy | mean
    top_k: int = 5  # regression: the test prediction is the mean of the top-k versions by validation MAE
    group_by: str = "auto"  # regression: report MAE per value of this column (auto: a sex column, if any)


@dataclass(frozen=True)
class TrainingSettings:
    """One model's training (paper Table 1 in the `paper` presets)."""

    epochs: int = 250
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-5
    loss: str = "weighted_ce"  # weighted_ce | oversample | ce | mse
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    progress: bool = True
    pretrain_embedding: bool = (
        True  # HyperFusion's embedding MLP starts from the trained tabular model (§4.3.6)
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything one comparison run needs."""

    cohort: str  # path to the cohort's manifest YAML (relative paths: to the config file's folder)
    methods: tuple[str, ...]
    reference_method: str
    image: ImageSettings = field(default_factory=ImageSettings)
    tabular: TabularSettings = field(default_factory=TabularSettings)
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    model: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments for every model
    model_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per method
    simulate: Mapping[str, Any] | None = None  # demo: simulate the cohort first (hyperfusion.simulate args)
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the run directory's resolved ``config.yaml``."""
        data = _plain(dataclasses.asdict(self))
        del data["source"]
        return data


_CHOICES = {
    ("image", "mode"): ("hippocampus", "box"),
    ("tabular", "impute"): ("iterative", "median", "none"),
    ("tabular", "unknown_category"): ("error", "zeros"),
    ("protocol", "ensemble"): ("inverse_entropy", "mean"),
    ("training", "loss"): ("weighted_ce", "oversample", "ce", "mse"),
    ("training", "precision"): ("fp32", "bf16"),
}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Convert a YAML value to the type of the field's default, or fail naming the key."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple) or default is None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(value)
    return value


def _section(cls: type, raw: Any, name: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    defaults = cls()
    values = {}
    for key, value in raw.items():
        full = f"{name}.{key}"
        values[key] = _coerce(value, getattr(defaults, key), full)
        allowed = _CHOICES.get((name, key))
        if allowed and values[key] not in allowed:
            raise ConfigError(f"{full}: {value!r} is not allowed; choose one of {list(allowed)}")
    return cls(**values)


def _check_protocol(protocol: ProtocolSettings) -> None:
    if not protocol.split_seeds:
        raise ConfigError("protocol.split_seeds: give at least one seed")
    if protocol.versions < 1:
        raise ConfigError(f"protocol.versions: must be >= 1, got {protocol.versions}")
    if protocol.n_partitions < 3:
        raise ConfigError(f"protocol.n_partitions: must be >= 3, got {protocol.n_partitions}")
    if not 1 <= protocol.folds <= protocol.n_partitions - 1:
        raise ConfigError(
            f"protocol.folds: must be between 1 and n_partitions - 1 = {protocol.n_partitions - 1}, "
            f"got {protocol.folds}"
        )
    if protocol.top_k < 1:
        raise ConfigError(f"protocol.top_k: must be >= 1, got {protocol.top_k}")
    for key in ("val_fraction", "test_fraction"):
        value = getattr(protocol, key)
        if not 0 < value < 0.5:
            raise ConfigError(f"protocol.{key}: must be in (0, 0.5), got {value}")


def _check_training(training: TrainingSettings) -> None:
    for key in ("epochs", "batch_size"):
        if getattr(training, key) < 1:
            raise ConfigError(f"training.{key}: must be >= 1, got {getattr(training, key)}")
    if training.batch_size < 2:
        raise ConfigError("training.batch_size: must be >= 2 (BatchNorm needs two samples)")
    if training.lr <= 0:
        raise ConfigError(f"training.lr: must be > 0, got {training.lr}")
    if training.weight_decay < 0:
        raise ConfigError(f"training.weight_decay: must be >= 0, got {training.weight_decay}")


def _check_image(image: ImageSettings) -> None:
    if image.voxel_mm <= 0:
        raise ConfigError(f"image.voxel_mm: must be > 0, got {image.voxel_mm}")
    if len(image.shape) != 3 or any(not isinstance(s, int) or s < 1 for s in image.shape):
        raise ConfigError(f"image.shape: must be three positive integers, got {list(image.shape)}")


def config_from_dict(raw: Mapping[str, Any], *, source: str = "<config>") -> RunConfig:
    """Validate a parsed YAML mapping into a :class:`RunConfig`.

    Raises:
        ConfigError: naming the offending key and, where there is a fixed set, the allowed values.
    """
    from hyperfusion.models import list_models

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(raw).__name__}")
    allowed = {f.name for f in dataclasses.fields(RunConfig)} - {"source"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("cohort", "methods"):
        if key not in raw and not (key == "cohort" and raw.get("simulate")):
            raise ConfigError(f"{source}: missing required key {key!r}")
    cohort = raw.get("cohort", "")
    if not isinstance(cohort, str):
        raise ConfigError(f"cohort: expected a path to a manifest YAML, got {cohort!r}")
    methods = raw["methods"]
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise ConfigError(f"methods: expected a non-empty list of model names, got {methods!r}")
    known = list_models()
    for method in methods:
        if method not in known:
            raise ConfigError(f"methods: unknown model {method!r}; choose from {known}")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"methods: repeated names in {list(methods)}")
    reference = raw.get(
        "reference_method", next((m for m in methods if m.endswith("hyperfusion")), methods[0])
    )
    if reference not in methods:
        raise ConfigError(f"reference_method: {reference!r} is not one of the methods {list(methods)}")
    model = raw.get("model") or {}
    overrides = raw.get("model_overrides") or {}
    if not isinstance(model, Mapping):
        raise ConfigError(f"model: expected a mapping of model keyword arguments, got {model!r}")
    if not isinstance(overrides, Mapping) or any(not isinstance(v, Mapping) for v in overrides.values()):
        raise ConfigError("model_overrides: expected a mapping from method name to keyword arguments")
    for method in overrides:
        if method not in methods:
            raise ConfigError(f"model_overrides: {method!r} is not one of the methods {list(methods)}")
    simulate = raw.get("simulate")
    if simulate is not None and not isinstance(simulate, Mapping):
        raise ConfigError(f"simulate: expected a mapping of simulator arguments, got {simulate!r}")
    config = RunConfig(
        cohort=cohort,
        methods=tuple(methods),
        reference_method=reference,
        image=_section(ImageSettings, raw.get("image"), "image"),
        tabular=_section(TabularSettings, raw.get("tabular"), "tabular"),
        protocol=_section(ProtocolSettings, raw.get("protocol"), "protocol"),
        training=_section(TrainingSettings, raw.get("training"), "training"),
        model=dict(model),
        model_overrides={k: dict(v) for k, v in overrides.items()},
        simulate=dict(simulate) if simulate is not None else None,
        source=source,
    )
    _check_image(config.image)
    _check_protocol(config.protocol)
    _check_training(config.training)
    return config


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file path, or the name of a preset in ``configs/`` (e.g. ``ad-demo``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = CONFIG_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    raise ConfigError(f"no config file {str(path)!r} and no preset of that name; presets: {presets}")


def load_config(name_or_path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration (a path or a preset name)."""
    path = resolve_config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    config = config_from_dict(raw or {}, source=str(path))
    if config.cohort and not Path(config.cohort).is_absolute():
        config = dataclasses.replace(config, cohort=str((path.parent / config.cohort).resolve()))
    return config
