"""A study: one run configuration, a grid of values for some of its keys, and a run directory per cell.

The study YAML is an ordinary run configuration plus a ``study:`` section::

    study:
      grid:                          # dotted keys of the run configuration → the values to try
        simulate.interaction: [0, 1, 2]
        simulate.n: [300]
      metrics: [BA, AUC]             # what the summary compares (default: BA or MAE)
    simulate: {task: ad, voxel_size: 4.0, seed: 0}
    methods: [ad-imaging, ad-concat, ad-hyperfusion]
    ...

Every combination of the grid's values is one *cell*: the run configuration with those values set, run into
``OUT/cells/<cell>/`` as an ordinary resumable run. Any key can be a grid axis — simulator settings (the paper's
claim as a function of the interaction strength), ``training.loss`` (the loss ablation),
``model_overrides.ad-hyperfusion.hyper_layers`` (which layer to hyperize) — so the paper's experiments are presets of
this one machinery.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperfusion.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    read_yaml_source,
    resolve_cohort,
    unknown_key_error,
)

STUDY_KEYS = ("grid", "metrics")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its values (dotted key → value) and the run configuration they make."""

    values: Mapping[str, Any]
    raw: Mapping[str, Any]  # the run configuration as data, before validation

    @property
    def name(self) -> str:
        """A folder name: ``interaction=2,n=300`` (the last part of each key)."""
        parts = []
        for key, value in self.values.items():
            text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
            parts.append(f"{key.rsplit('.', 1)[-1]}={text}")
        name = ",".join(parts) or "single"
        return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in name)


@dataclass(frozen=True)
class Study:
    """A validated study: its cells and what the summary compares."""

    cells: tuple[Cell, ...]
    axes: tuple[str, ...]
    metrics: tuple[str, ...]
    base: RunConfig
    source: str
    folder: Path | None = None  # the study file's folder: relative paths in it are taken from there

    def config(self, cell: Cell) -> RunConfig:
        config = config_from_dict(cell.raw, source=f"{self.source} [{cell.name}]", base=self.folder)
        return resolve_cohort(config, self.folder)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``dotted = "a.b.c"`` (the last part may itself hold dots? no)."""
    head, *rest = dotted.split(".", 1)
    if not rest:
        data[head] = copy.deepcopy(value)
        return
    inner = data.setdefault(head, {})
    if not isinstance(inner, dict):
        raise ConfigError(f"study.grid: {dotted!r} goes through {head!r}, which is not a mapping")
    if head == "model_overrides":  # method names contain dashes and never dots: one level, then the keyword
        method, _, key = rest[0].partition(".")
        if not key:
            raise ConfigError(
                f"study.grid: {dotted!r} must name a method and a keyword, e.g. model_overrides.M.k"
            )
        inner.setdefault(method, {})[key] = copy.deepcopy(value)
        return
    _set(inner, rest[0], value)


def study_from_dict(raw: Mapping[str, Any], *, source: str = "<study>", base: Path | None = None) -> Study:
    """Validate a study: the ``study:`` section and every cell's run configuration.

    Raises:
        ConfigError: an unknown key in ``study``, a grid axis that is not a non-empty list, or a cell whose
            run configuration is invalid (named with its values).
    """
    if not isinstance(raw, Mapping) or "study" not in raw:
        raise ConfigError(f"{source}: a study configuration needs a 'study:' section with a 'grid:'")
    section = raw["study"] or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: study: expected a mapping, got {section!r}")
    for key in section:
        if key not in STUDY_KEYS:
            raise unknown_key_error(str(key), "study", STUDY_KEYS)
    grid = section.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"study.grid: expected a mapping of dotted keys to lists, got {grid!r}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"study.grid.{key}: expected a non-empty list of values, got {values!r}")
    template = {k: v for k, v in raw.items() if k != "study"}
    base_config = config_from_dict(template, source=source, base=base)
    cells = []
    axes = tuple(grid)
    for combination in itertools.product(*(grid[a] for a in axes)):
        data = copy.deepcopy(dict(template))
        values = dict(zip(axes, combination))
        for key, value in values.items():
            _set(data, key, value)
        cell = Cell(values, data)
        try:
            config_from_dict(data, source=source, base=base)
        except ConfigError as err:
            raise ConfigError(f"study cell {cell.name}: {err}") from None
        cells.append(cell)
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"study.grid: two cells would share a folder name: {names}")
    metrics = section.get("metrics") or ()
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ConfigError(f"study.metrics: expected a list of metric names, got {metrics!r}")
    return Study(tuple(cells), axes, tuple(metrics), base_config, source, base)


def load_study(name_or_path: str | Path, *, training: Mapping[str, Any] | None = None) -> Study:
    """A study from a YAML file or a shipped preset (e.g. ``study-cpu``).

    ``training``: settings (``epochs``, ``device``, ``precision``, ...) laid over the YAML's ``training:`` for every
    cell, as ``hyperfusion study --epochs`` does; a grid axis over the same key still sets it per cell.
    """
    raw, source, base = read_yaml_source(name_or_path, what="study")
    raw = dict(raw or {})
    if training:
        section = raw.get("training") or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{source}: training: expected a mapping, got {section!r}")
        raw["training"] = {**section, **training}
    return study_from_dict(raw, source=source, base=base)
