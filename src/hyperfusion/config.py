"""Run configuration: YAML presets → one validated, frozen settings object.

Configuration is data. A run's YAML names the cohort, how images become inputs, the methods to compare, the
protocol (split seeds × versions × folds) and the training settings; every value is checked here once, with an
error that names the key and the allowed values, so nothing deeper has to.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperfusion.text import nearest
from hyperfusion.yamlio import DuplicateKeyError, load_yaml

PRESET_PACKAGE = "hyperfusion.presets"


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
    check_extent: bool = (
        True  # refuse a brain whose size or position in mm is far from MNI (wrong voxel size)
    )


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
    age_bins: int | str = "auto"  # auto: chosen from the cohort's size (data.splits.default_age_bins)
    val_fraction: float = 0.1  # regression: 80/10/10
    test_fraction: float = 0.1
    ensemble: str = "inverse_entropy"  # classification: inverse_entropy | mean
    top_k: int = 5  # regression: the test prediction is the mean of the top-k versions by validation MAE
    group_by: str = "auto"  # regression: report MAE per value of this column (auto: a sex column, if any)
    executor: str = "local"  # local | ray
    address: str | None = None  # ray: a running cluster's address; unset: a local Ray instance
    num_cpus: float = 1.0  # ray: cores per unit
    num_gpus: float = 0.0  # ray: GPUs per unit (fractional packs several units on one GPU)


@dataclass(frozen=True)
class TrainingSettings:
    """One model's training (paper Table 1 in the `paper` presets)."""

    epochs: int = 250
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-5
    loss: str = "weighted_ce"  # weighted_ce | oversample | ce | mse | cox (survival)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    progress: bool = True
    # every method with a tabular encoder starts it from the trained tabular-only model (§4.3.6), or none does;
    # both: the image network from the trained imaging-only model too
    warm_start: str = "tabular"  # tabular | both | none
    deterministic: bool = False  # deterministic GPU kernels (a CPU run is repeatable anyway)
    devices: int = 1  # >1: one model on several devices with DDP
    # training-time augmentation, drawn per item and epoch (the same for every method): a random shift of up to
    # this many voxels per axis (zero-filled), and a left-right mirror with probability 1/2 (box mode only)
    augment_shift: int = 0
    augment_flip: bool = False
    # live training curves: csv writes RUN/logs/<method>/<unit>/metrics.csv (one row per epoch) and hparams.yaml,
    # tensorboard event files in the same folder; mlflow one MLflow run per unit (docs/config.md)
    logger: str = "csv"  # csv | tensorboard | mlflow | none
    tracking_uri: str | None = None  # mlflow: unset = a SQLite store RUN/logs/mlflow.db; or a server's URI
    experiment: str | None = None  # mlflow: unset = the run directory's name (a study: the study's)


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
    # per method, training settings that replace ``training``'s for that method's models (a tuned.yaml's)
    method_training: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # a tuned.yaml's provenance (``hyperfusion tune``): metric, and per method its budget, scores, best settings
    tuning: Mapping[str, Any] = field(default_factory=dict)
    simulate: Mapping[str, Any] | None = None  # demo: simulate the cohort first (hyperfusion.simulate args)
    plugins: tuple[str, ...] = ()  # modules (or .py files) imported first, e.g. to register models
    source: str = "<config>"
    # per plugin entry, the file executed and its sha256 (recorded in the run directory, not in config.yaml)
    plugin_files: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)

    def training_for(self, method: str) -> TrainingSettings:
        """The training settings ``method``'s models are trained with: ``training`` with its ``method_training``."""
        return dataclasses.replace(self.training, **self.method_training.get(method, {}))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the run directory's resolved ``config.yaml``."""
        data = _plain(dataclasses.asdict(self))
        del data["source"], data["plugin_files"]
        return data


PRECISIONS = ("fp32", "bf16")  # the engine takes the same names (bf16: autocast, weights stay fp32)

_CHOICES = {
    ("image", "mode"): ("hippocampus", "box"),
    ("tabular", "impute"): ("iterative", "median", "none"),
    ("tabular", "unknown_category"): ("error", "zeros"),
    ("protocol", "ensemble"): ("inverse_entropy", "mean"),
    ("training", "loss"): ("weighted_ce", "oversample", "ce", "mse", "cox"),
    ("training", "precision"): PRECISIONS,
    ("training", "warm_start"): ("tabular", "both", "none"),
    ("training", "logger"): ("csv", "tensorboard", "mlflow", "none"),
    ("protocol", "executor"): ("local", "ray"),
}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; such a string that is a number is taken as one."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: Settings that are a string or unset, and what the string is.
_OPTIONAL_STRINGS = {
    "protocol.address": "a Ray cluster address such as 'auto' or 'HOST:6379'",
    "training.tracking_uri": "an MLflow tracking URI such as 'sqlite:///mlflow.db' or 'http://HOST:5000'",
    "training.experiment": "an MLflow experiment name",
}
#: The MLflow tracking stores a URI may name (``postgresql+psycopg2://`` counts as postgresql).
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Convert a YAML value to the type of the field's default, or fail naming the key."""
    if key == "protocol.age_bins":
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError(f"{key}: expected an integer or 'auto', got {value!r}")
    if key in _OPTIONAL_STRINGS:
        if value is None or isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected {_OPTIONAL_STRINGS[key]}, got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        value = _number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
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


def unknown_key_error(key: str, where: str, valid: Any) -> ConfigError:
    """An unknown key, named with the nearest valid one when there is a close match."""
    valid = sorted(valid)
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint} (valid keys: {', '.join(valid)})")


def _section(cls: type, raw: Any, name: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise unknown_key_error(str(key), name, fields)
    defaults = cls()
    values = {}
    for key, value in raw.items():
        full = f"{name}.{key}"
        values[key] = _coerce(value, getattr(defaults, key), full)
        allowed = _CHOICES.get((name, key))
        if allowed and values[key] not in allowed:
            raise ConfigError(
                f"{full}: {value!r} is not allowed; choose one of {list(allowed)}{nearest(str(value), allowed)}"
            )
    return cls(**values)


def _check_protocol(protocol: ProtocolSettings) -> None:
    if not protocol.split_seeds:
        raise ConfigError("protocol.split_seeds: give at least one seed")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in protocol.split_seeds):
        raise ConfigError(f"protocol.split_seeds: expected integers, got {list(protocol.split_seeds)}")
    repeated = sorted({s for s in protocol.split_seeds if protocol.split_seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"protocol.split_seeds: seed(s) {repeated} repeated; each split seed once")
    if isinstance(protocol.age_bins, int) and protocol.age_bins < 1:
        raise ConfigError(f"protocol.age_bins: must be >= 1 or 'auto', got {protocol.age_bins}")
    if protocol.num_cpus <= 0 or protocol.num_gpus < 0:
        raise ConfigError(
            f"protocol.num_cpus must be > 0 and protocol.num_gpus >= 0, got {protocol.num_cpus}, {protocol.num_gpus}"
        )
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


#: The device names training and ``predict --device`` take.
DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def check_device_name(device: Any, key: str = "training.device") -> str:
    """``device`` if it names a device (auto, cpu, cuda, cuda:N), whether or not this machine has it.

    Raises:
        ConfigError: anything else, naming ``key`` and the nearest valid name (``cpuu`` → ``cpu``).
    """
    if isinstance(device, str) and (device in DEVICES[:3] or re.fullmatch(r"cuda:\d+", device)):
        return device
    match = difflib.get_close_matches(str(device), list(DEVICES[:3]), n=1, cutoff=0.6)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    raise ConfigError(f"{key}: {device!r} is not a device{hint} (choose one of {', '.join(DEVICES)})")


def _check_training(training: TrainingSettings, where: str = "training") -> None:
    check_device_name(training.device)
    for key in ("epochs", "batch_size"):
        if getattr(training, key) < 1:
            raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(training, key)}")
    if training.batch_size < 2:
        raise ConfigError(f"{where}.batch_size: must be >= 2 (BatchNorm needs two samples)")
    if training.lr <= 0:
        raise ConfigError(f"{where}.lr: must be > 0, got {training.lr}")
    if training.weight_decay < 0:
        raise ConfigError(f"{where}.weight_decay: must be >= 0, got {training.weight_decay}")
    if training.devices < 1:
        raise ConfigError(f"training.devices: must be >= 1, got {training.devices}")
    if training.num_workers < 0:
        raise ConfigError(f"training.num_workers: must be >= 0, got {training.num_workers}")
    if training.augment_shift < 0:
        raise ConfigError(f"training.augment_shift: must be >= 0 voxels, got {training.augment_shift}")
    _check_tracking(training)


def _check_tracking(training: TrainingSettings) -> None:
    """The MLflow settings only with the MLflow logger, and a URI MLflow can open (or an error naming it)."""
    for key in ("tracking_uri", "experiment"):
        if getattr(training, key) is not None and training.logger != "mlflow":
            raise ConfigError(
                f"training.{key}: {getattr(training, key)!r} is an MLflow setting but training.logger is "
                f"{training.logger!r}; set training.logger: mlflow (or remove the key)"
            )
    if training.experiment is not None and not training.experiment.strip():
        raise ConfigError("training.experiment: empty; name the experiment or remove the key")
    uri = training.tracking_uri
    if uri is None:
        return
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(
            f"training.tracking_uri: {uri!r} is not a tracking URI{nearest(scheme, TRACKING_SCHEMES)} "
            f"(schemes: {', '.join(TRACKING_SCHEMES)}; e.g. sqlite:///mlflow.db, http://HOST:5000)"
        )
    if scheme == "sqlite" and (not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///")):
        raise ConfigError(
            f"training.tracking_uri: {uri!r}: a SQLite store is sqlite:/// and a path "
            "(sqlite:///mlflow.db, or sqlite:////abs/path/mlflow.db)"
        )
    if scheme in ("http", "https") and not urllib.parse.urlparse(uri).netloc:
        raise ConfigError(f"training.tracking_uri: {uri!r} names no host (e.g. http://HOST:5000)")


def _check_image(image: ImageSettings) -> None:
    if image.voxel_mm <= 0:
        raise ConfigError(f"image.voxel_mm: must be > 0, got {image.voxel_mm}")
    if len(image.shape) != 3 or any(not isinstance(s, int) or s < 1 for s in image.shape):
        raise ConfigError(f"image.shape: must be three positive integers, got {list(image.shape)}")


def import_plugins(
    plugins: Any,
    *,
    base: Path | None = None,
    recorded: Mapping[str, Mapping[str, str]] | None = None,
    data_folder: Path | None = None,
) -> dict[str, dict[str, str]]:
    """Import user modules (names on ``sys.path``, or ``.py`` files relative to the config's folder) once.

    A plugin typically registers models with ``@register_model``, so that a config can name them. A config is code;
    a run directory is data: see `hyperfusion.plugins` for what ``recorded`` (a run's record) restricts.

    Returns:
        Per plugin entry, the file executed and its sha256 (what a run directory records).

    Raises:
        ConfigError: a plugin that is not a list of strings, cannot be found, fails to import, or (``recorded``)
            is not the file and content the run executed.
    """
    from hyperfusion.plugins import PluginError
    from hyperfusion.plugins import import_plugins as import_files

    try:
        return import_files(plugins, base=base, recorded=recorded, data_folder=data_folder)
    except PluginError as err:
        raise ConfigError(str(err)) from None


def _check_model_keys(model: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]], methods) -> None:
    """Every key under ``model`` is accepted by at least one method; every override by its method."""
    from hyperfusion.models import model_arguments

    accepted = {m: set(model_arguments(m)) for m in methods}
    every = set().union(*accepted.values())
    for key in model:
        if key not in every:
            raise unknown_key_error(str(key), f"model (no method among {list(methods)} takes it)", every)
    for method, kwargs in overrides.items():
        for key in kwargs:
            if key not in accepted[method]:
                raise unknown_key_error(str(key), f"model_overrides.{method}", accepted[method])


#: The training settings a method may set for itself (``method_training``): they change only how its own models
#: are optimised. The loss, warm start, augmentation, device and precision stay one for every method.
METHOD_TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay")


def _method_training(
    raw: Any, methods: tuple[str, ...], training: TrainingSettings
) -> dict[str, dict[str, Any]]:
    """``method_training`` checked: methods of the run, per-method keys only, values as ``training``'s."""
    from hyperfusion.models import model_info
    from hyperfusion.models.registry import canonical_name

    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or any(not isinstance(v, Mapping) for v in raw.values()):
        raise ConfigError("method_training: expected a mapping from method name to training settings")
    out: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        method = canonical_name(str(name))
        if method not in methods:
            match = difflib.get_close_matches(method, list(methods), n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise ConfigError(f"method_training: {method!r} is not one of the methods{hint} {list(methods)}")
        where = f"method_training.{method}"
        info = model_info(method)
        if info.fit == "closed_form" or info.fusion == "late":
            how = (
                "fitted in closed form" if info.fit == "closed_form" else "composed from its trained members"
            )
            raise ConfigError(
                f"{where}: {method} is {how}, not trained by gradient; it has no training settings"
            )
        for key in values:
            if key not in METHOD_TRAINING_KEYS:
                if key in {f.name for f in dataclasses.fields(TrainingSettings)}:
                    raise ConfigError(
                        f"{where}.{key}: training.{key} is the same for every method; a method may set only "
                        f"{', '.join(METHOD_TRAINING_KEYS)}"
                    )
                raise unknown_key_error(str(key), where, METHOD_TRAINING_KEYS)
        out[method] = {k: _coerce(v, getattr(training, k), f"{where}.{k}") for k, v in values.items()}
        _check_training(dataclasses.replace(training, **out[method]), where)
    return out


TUNED_KEYS = ("budget", "pruned", "default_score", "best_score", "best_trial", "training", "model")


def _check_tuning(raw: Any, config: RunConfig) -> dict[str, Any]:
    """A tuned.yaml's ``tuning`` section, checked against the settings the config trains with: a tuned.yaml
    edited after tuning would report a tuning it does not run, so it fails closed instead."""
    if raw is None or raw == {}:  # a config not made by tune (``{}``: as config.yaml records that)
        return {}
    if (
        not isinstance(raw, Mapping)
        or set(raw) != {"metric", "methods"}
        or not isinstance(raw["methods"], Mapping)
    ):
        raise ConfigError(
            "tuning: expected {metric: NAME, methods: {METHOD: ...}} as `hyperfusion tune` writes it"
        )
    budgets = set()
    for method, entry in raw["methods"].items():
        where = f"tuning.methods.{method}"
        if method not in config.methods:
            raise ConfigError(f"{where}: {method!r} is not one of the methods {list(config.methods)}")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
        if entry.get("tuned") is False:
            continue
        for key in sorted(set(TUNED_KEYS) ^ (set(entry) - {"tuned"})):
            raise ConfigError(f"{where}: {'missing' if key in TUNED_KEYS else 'unknown'} key {key!r}")
        budgets.add(entry["budget"])
        trains = config.training_for(method)
        model = {**config.model, **config.model_overrides.get(method, {})}
        stated = [("training", k, v, getattr(trains, k, None), f"method_training.{method}.{k}")
                  for k, v in (entry["training"] or {}).items()]  # fmt: skip
        stated += [
            ("model", k, v, model.get(k), f"model_overrides.{method}.{k}")
            for k, v in (entry["model"] or {}).items()
        ]
        for part, key, best, used, setting in stated:
            if _plain(best) != _plain(used):
                raise ConfigError(
                    f"{where}.{part}.{key}: the tuning's best is {best!r} but the config has {used!r} ({setting}); "
                    "a tuned config edited after tuning no longer states its tuning: remove `tuning` or tune again"
                )
    if len(budgets) > 1:
        raise ConfigError(
            f"tuning.methods: unequal budgets {sorted(budgets)}; every method is tuned with the same"
        )
    return dict(raw)


def section_defaults() -> dict[str, Any]:
    """Every section setting's default as ``{"training.epochs": 250, ...}``.

    A run directory made before a setting existed has no value for it; a rerun at the default changes nothing.
    """
    sections = {"image": ImageSettings, "tabular": TabularSettings, "protocol": ProtocolSettings,
                "training": TrainingSettings}  # fmt: skip
    out: dict[str, Any] = {}
    for name, cls in sections.items():
        for f in dataclasses.fields(cls):
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out[f"{name}.{f.name}"] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(
    raw: Mapping[str, Any],
    *,
    source: str = "<config>",
    base: Path | None = None,
    plugin_files: Mapping[str, Mapping[str, str]] | None = None,
    data_folder: Path | None = None,
) -> RunConfig:
    """Validate a parsed YAML mapping into a :class:`RunConfig`.

    ``plugins`` are imported first (relative ``.py`` files from ``base``; with ``plugin_files``, exactly the files
    and contents a run recorded, none inside ``data_folder``), so the methods they register can be named.

    Raises:
        ConfigError: naming the offending key (and the nearest valid one) and, where there is a fixed set, the
            allowed values.
    """
    from hyperfusion.models import list_models, with_crop_readers
    from hyperfusion.models.registry import canonical_name

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(raw).__name__}")
    allowed = {f.name for f in dataclasses.fields(RunConfig)} - {"source"}
    for key in raw:
        if key not in allowed:
            raise unknown_key_error(str(key), source, allowed)
    files = import_plugins(raw.get("plugins"), base=base, recorded=plugin_files, data_folder=data_folder)
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
    methods = [canonical_name(m) if isinstance(m, str) else m for m in methods]  # cls3d-* → ad-*
    for method in methods:
        if method not in known:
            match = difflib.get_close_matches(str(method), known, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise ConfigError(f"methods: unknown model {method!r}{hint}; choose from {known}")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"methods: repeated names in {list(methods)}")
    training = raw.get("training")
    risk = (
        isinstance(training, Mapping) and training.get("loss") == "cox"
    )  # survival: the models output one risk
    if not risk:  # the crop reader is a closed-form classifier; a Cox config has no reader to add
        methods = with_crop_readers(methods)  # every imaging-only model is reported beside its crop reader
    reference = raw.get(
        "reference_method", next((m for m in methods if m.endswith("hyperfusion")), methods[0])
    )
    reference = canonical_name(reference) if isinstance(reference, str) else reference
    if reference not in methods:
        raise ConfigError(f"reference_method: {reference!r} is not one of the methods {list(methods)}")
    model = raw.get("model") or {}
    overrides = raw.get("model_overrides") or {}
    if not isinstance(model, Mapping):
        raise ConfigError(f"model: expected a mapping of model keyword arguments, got {model!r}")
    if not isinstance(overrides, Mapping) or any(not isinstance(v, Mapping) for v in overrides.values()):
        raise ConfigError("model_overrides: expected a mapping from method name to keyword arguments")
    overrides = {canonical_name(str(m)): v for m, v in overrides.items()}
    for method in overrides:
        if method not in methods:
            raise ConfigError(f"model_overrides: {method!r} is not one of the methods {list(methods)}")
    _check_model_keys(model, overrides, methods)
    training_settings = _section(TrainingSettings, raw.get("training"), "training")
    _check_training(training_settings)  # before the methods' own settings are checked on top of it
    method_training = _method_training(raw.get("method_training"), tuple(methods), training_settings)
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
        training=training_settings,
        model={k: _number_if_numeric(v) for k, v in model.items()},
        model_overrides={
            k: {kk: _number_if_numeric(vv) for kk, vv in v.items()} for k, v in overrides.items()
        },
        method_training=method_training,
        simulate=dict(simulate) if simulate is not None else None,
        plugins=tuple(files),
        source=source,
        plugin_files=files,
    )
    config = dataclasses.replace(config, tuning=_check_tuning(raw.get("tuning"), config))
    _check_image(config.image)
    _check_protocol(config.protocol)
    if config.training.augment_flip and config.image.mode == "hippocampus":
        raise ConfigError(
            "training.augment_flip: the hippocampus mode already mirrors (each training item shows the left crop "
            "or the mirrored right one); use it with image.mode: box"
        )
    return config


def with_settings(config: RunConfig, section: str, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with some settings of one section replaced, checked exactly as if its YAML had said so.

    Command-line overrides (``--epochs``, ``--device``, ...) go through here, so a value the YAML may not hold
    (``--epochs 0``) is refused before anything is preprocessed or saved.

    Raises:
        ConfigError: naming ``<section>.<key>`` and why.
    """
    if not values:
        return config
    raw = config.to_dict()
    raw[section] = {**raw[section], **values}
    return config_from_dict(raw, source=config.source, plugin_files=config.plugin_files)


def _number_if_numeric(value: Any) -> Any:
    """Model keyword values written like ``1e-2`` (a string to YAML 1.1) become numbers."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return value


def preset_names() -> list[str]:
    """The presets shipped inside the package (``hyperfusion run <name>``)."""
    root = importlib.resources.files(PRESET_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a shipped preset."""
    return importlib.resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()


def read_yaml_source(name_or_path: str | Path, *, what: str = "config") -> tuple[Any, str, Path | None]:
    """The parsed YAML of a file, or of a shipped preset by name; with its source name and base folder.

    Raises:
        ConfigError: no such file or preset, or invalid YAML.
    """
    path = Path(name_or_path)
    if path.is_file():
        text, source, base = path.read_text(), str(path), path.resolve().parent
    elif str(name_or_path) in preset_names():
        text, source, base = preset_text(str(name_or_path)), f"preset {name_or_path}", None
    else:
        raise ConfigError(
            f"no {what} file {str(path)!r} and no preset of that name; presets: {preset_names()}"
        )
    try:
        return load_yaml(text, source), source, base
    except DuplicateKeyError as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def resolve_cohort(config: RunConfig, base: Path | None) -> RunConfig:
    """A relative ``cohort`` path taken from the configuration file's folder."""
    if config.cohort and not Path(config.cohort).is_absolute() and base is not None:
        return dataclasses.replace(config, cohort=str((base / config.cohort).resolve()))
    return config


def load_config(name_or_path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration: a file path, or the name of a shipped preset (e.g. ``ad-demo``).

    Relative paths inside a file (``cohort``, ``.py`` plugins) are taken from the file's folder.

    Raises:
        ConfigError: no such file or preset, invalid YAML, or an invalid value (named).
    """
    raw, source, base = read_yaml_source(name_or_path)
    return resolve_cohort(config_from_dict(raw or {}, source=source, base=base), base)
