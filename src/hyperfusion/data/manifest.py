"""Cohort manifests: a table (one row per scan) plus a YAML spec of column roles → a validated `Cohort`.

The spec's keys are one field table: each `ManifestSpec` field carries its YAML key, how the value is read and
checked, its default and its help (`key`); `FIELDS` lists them, and parsing (`spec_from_dict`), the unknown-key
error (naming the nearest valid key) and the key reference in ``docs/manifest.md`` (`keys_markdown`) are derived
from it. Checks that tie several keys together (`CHECKS`) run as soon as the last key they need is read. How the
table is read and how a row's image is found are seams: `hyperfusion.data.tables.register_table_reader` and
`hyperfusion.data.locators.register_image_locator`.

Every check happens here, once, at the edge: a bad cohort fails with the file, line, column or value at fault,
before any training starts.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hyperfusion.data.binary import binary_keys, ordered
from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.duplicates import check_duplicate_paths
from hyperfusion.data.locators import image_locators, locate_images
from hyperfusion.data.presets import PRESETS, merge, preset
from hyperfusion.data.ranges import Range, check_ranges, parse_ranges, usable_ranges
from hyperfusion.data.tables import lines as _lines
from hyperfusion.data.tables import present as _present
from hyperfusion.data.tables import read_table, table_readers
from hyperfusion.text import closest, nearest, shown
from hyperfusion.yamlio import load_yaml

log = logging.getLogger("hyperfusion")

TASKS = ("classification", "regression", "survival")
DEFAULT_NA_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "None")
#: Columns the cohort frame reserves for itself.
RESERVED = ("subject_id", "target", "event", "label", "image", "line")
#: The columns `target.from_visits` adds to the table (named so in messages; no table has them).
DERIVED_TIME, DERIVED_EVENT = "time (from visits)", "event (from visits)"


# --- how a key's value is read: its type as the docs name it, and a parser that checks it ---------------------


@dataclass(frozen=True)
class Read:
    """How one key's YAML value is read: ``kind`` (its type, for the docs) and ``parse(value, key, source)``, which
    returns the spec's value or raises a ValueError naming ``source`` and the key."""

    kind: str
    parse: Callable[[Any, str, str], Any]


def _text(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{source}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _names(value: Any, key: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{source}: {key!r} must be a list of column names, got {value!r}")
    return tuple(value)


def _declared(size: int | None) -> Read:
    """A list of column names, or a mapping column -> its values (null: learnt from the training rows)."""

    def parse(value: Any, key: str, source: str) -> tuple[tuple[str, ...], dict[str, list]]:
        if not isinstance(value, dict):
            return _names(value, key, source), {}
        out = {}
        for column, values in value.items():
            if not isinstance(column, str) or not column:
                raise ValueError(f"{source}: {key!r} has a column name {column!r} that is not text")
            if values is None:
                continue
            if not isinstance(values, list) or (size and len(values) != size) or not values:
                want = f"a list of its {size} values" if size else "a list of its categories"
                raise ValueError(f"{source}: '{key}.{column}' must be {want} (or null), got {values!r}")
            out[column] = values
        return tuple(value), out

    what = f"[{size} values]" if size else "[categories]"
    return Read(f"list of columns, or {{column: {what}}}", parse)


def _flag(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{source}: {key!r} must be true or false, got {value!r}")
    return value


def _one_of(choices: Sequence[str]) -> Read:
    def parse(value: Any, key: str, source: str) -> str:
        if value not in choices:
            raise ValueError(f"{source}: {key!r} must be one of {tuple(choices)}, got {value!r}")
        return value

    return Read(" | ".join(choices), parse)


def _registered(names: Callable[[], list[str]], what: str) -> Read:
    """A name in a registry (None: chosen from the spec's other keys); an unknown name lists the valid ones."""

    def parse(value: Any, key: str, source: str) -> str | None:
        if value is None:
            return None
        if _text(value, key, source) not in names():
            raise ValueError(
                f"{source}: {key!r} {value!r} is not a registered {what}; choose one of {names()}"
            )
        return value

    return Read(f"name of a registered {what}", parse)


def _preset_name(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{source}: {key!r} must be a name, got {value!r}")
    return value


def _value_maps(value: Any, key: str, source: str) -> dict[str, dict[str, Any]]:
    value = value or {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f"{source}: {key!r} must map column -> {{raw value: new value}}, got {value!r}")
    return {str(k): {str(a): b for a, b in v.items()} for k, v in value.items()}


def _text_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{source}: {key!r} must be a list, got {value!r}")
    return tuple(str(v) for v in value)


def _encoding(value: Any, key: str, source: str) -> str | None:
    if value is None:
        return None
    try:
        codecs.lookup(_text(value, key, source))
    except LookupError:
        raise ValueError(f"{source}: {key!r} {value!r} is not a known text encoding") from None
    return value


_FROM_VISITS = {"subject": False, "months": True, "diagnosis": True, "at_risk": True, "event": True}


def _from_visits(value: Any, key: str, source: str) -> dict[str, Any] | None:
    """The columns and labels `derive_conversion` reads; ``subject`` defaults to the spec's subject column."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            f"{source}: {key!r} must be a mapping with keys {sorted(_FROM_VISITS)}, got {value!r}"
        )
    unknown = sorted(set(value) - set(_FROM_VISITS))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown} under {key!r}{_hint(unknown, _FROM_VISITS)}; "
            f"allowed: {sorted(_FROM_VISITS)}"
        )
    out: dict[str, Any] = {}
    for name, required in _FROM_VISITS.items():
        if name not in value:
            if required:
                raise ValueError(f"{source}: '{key}.{name}' is required")
            continue
        if name in ("at_risk", "event"):
            labels = value[name]
            if not isinstance(labels, list) or not labels:
                raise ValueError(
                    f"{source}: '{key}.{name}' must be a non-empty list of diagnoses, got {labels!r}"
                )
            out[name] = tuple(str(v) for v in labels)
        else:
            out[name] = _text(value[name], f"{key}.{name}", source)
    return out


TEXT = Read("text", _text)
OPTIONAL_TEXT = Read("text", lambda v, k, s: None if v is None else _text(v, k, s))
ANY_TEXT = Read("any value (compared as text)", lambda v, k, s: None if v is None else str(v))
NAMES = Read("list of columns", _names)
LABELS = Read("list of labels", lambda v, k, s: tuple(str(c) for c in v or ()))
LABEL_MAP = Read("{raw label: class}", lambda v, k, s: {str(a): str(b) for a, b in (v or {}).items()})
FLAG = Read("true | false", _flag)
RANGES = Read("{column: [low, high] | null}", lambda v, k, s: parse_ranges(v, source=s))


# --- the field table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One manifest key: its dotted YAML ``name``, how it is ``read``, what an absent key stands for (``absent``, a
    YAML value; ``required`` keys have none), its ``help``, and ``also``: a second spec field its value fills
    (``read`` then returns a pair)."""

    name: str
    read: Read
    help: str
    absent: Any = None
    required: bool = False
    also: str | None = None


def key(
    name: str, read: Read, help: str, *, absent: Any = None, required: bool = False, also: str | None = None
) -> Any:
    """A `ManifestSpec` field for the YAML key ``name``; its default is ``absent`` as ``read`` reads it."""
    metadata = {"key": Key(name, read, help, absent, required, also)}
    if required:
        return field(metadata=metadata)
    default = read.parse(copy.deepcopy(absent), name, "<default>")
    if also is not None:
        default = default[0]
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class ManifestSpec:
    """A validated manifest spec (preset defaults merged with the YAML's own keys).

    Each field's YAML key, type, default and help are in its ``key`` (`FIELDS`; ``docs/manifest.md`` lists them),
    in the order `spec_from_dict` reads and checks them (so a spec with several faults reports the first);
    ``categories`` and ``binary_values`` are the declared values of some categorical and binary columns, read from
    ``tabular.categorical`` / ``tabular.binary`` when those are mappings.
    """

    preset: str = key(
        "preset",
        Read(" | ".join(PRESETS), _preset_name),
        absent="generic",
        help="a preset fills defaults; the spec's own keys override it",
    )
    task: str = key("target.task", _one_of(TASKS), required=True, help="what the target is")
    classes: tuple[str, ...] = key(
        "target.classes", LABELS, help="classification: the classes, in class-index order"
    )
    mapping: Mapping[str, str] = key(
        "target.mapping", LABEL_MAP, help="classification: raw labels sent to class names"
    )
    exclude: tuple[str, ...] = key(
        "target.exclude", LABELS, help="classification: labels (after mapping) whose rows are left out"
    )
    image_column: str | None = key(
        "image.column", OPTIONAL_TEXT, help="the image path column, relative to the table's folder"
    )
    image_glob: str | None = key(
        "image.glob",
        OPTIONAL_TEXT,
        help="instead of column: a pattern with {subject} searched under the table's folder (BIDS); first match wins",
    )
    image_locator: str | None = key(
        "image.locator",
        _registered(image_locators, "image locator"),
        help="how a row's image is found (null: column or glob, whichever is given)",
    )
    visit_column: str | None = key(
        "visit.column", OPTIONAL_TEXT, help="keep only rows whose visit column equals keep"
    )
    visit_keep: str | None = key("visit.keep", ANY_TEXT, help="the visit kept (e.g. bl)")
    continuous: tuple[str, ...] = key("tabular.continuous", NAMES, help="numeric tabular columns")
    categorical: tuple[str, ...] = key(
        "tabular.categorical",
        _declared(None),
        also="categories",
        help="categorical columns (one-hot); declared categories fix the columns and their order",
    )
    binary: tuple[str, ...] = key(
        "tabular.binary",
        _declared(2),
        also="binary_values",
        help="two-valued columns; declared: [value encoded 0, value encoded 1]",
    )
    subject: str = key("subject", TEXT, required=True, help="the subject id column")
    time_column: str | None = key(
        "target.time", OPTIONAL_TEXT, help="survival: the column of months to the event or to censoring"
    )
    event_column: str | None = key(
        "target.event", OPTIONAL_TEXT, help="survival: the column of 1 = event seen, 0 = censored"
    )
    from_visits: Mapping[str, Any] | None = key(
        "target.from_visits",
        Read("{subject, months, diagnosis, at_risk: [labels], event: [labels]}", _from_visits),
        help="survival: time and event derived from the visits of a longitudinal table (data.conversion)",
    )
    target_column: str = key(
        "target.column",
        OPTIONAL_TEXT,
        help="the target column (required for classification and regression; survival reads target.time)",
    )
    values: Mapping[str, Mapping[str, Any]] = key(
        "values",
        Read("{column: {raw value: new value}}", _value_maps),
        help="raw-value maps applied before parsing",
    )
    na_values: tuple[str, ...] = key(
        "na_values",
        Read("list of text", _text_list),
        absent=list(DEFAULT_NA_VALUES),
        help="strings read as missing",
    )
    one_row_per_subject: bool = key(
        "one_row_per_subject", FLAG, absent=True, help="duplicate subject ids are an error"
    )
    drop_missing_target: bool = key(
        "target.drop_missing",
        FLAG,
        absent=False,
        help="drop rows without a target (warning) instead of failing",
    )
    allow_duplicate_images: bool = key(
        "allow_duplicate_images",
        FLAG,
        absent=False,
        help="one image under several subjects is intended (no leakage error)",
    )
    encoding: str | None = key(
        "encoding",
        Read("text encoding", _encoding),
        help="the table's encoding; null = UTF-8, else latin-1 with a warning",
    )
    table_reader: str | None = key(
        "table_reader",
        _registered(table_readers, "table reader"),
        help="how the table is read (null: by its suffix; .tsv/.tab tab-separated, else comma-separated)",
    )
    stratify: tuple[str, ...] = key(
        "stratify", NAMES, help="extra stratification columns (the target always comes first)"
    )
    ranges: Mapping[str, Range] = key(
        "ranges",
        RANGES,
        help="plausible [low, high] per numeric column (null: no bound); merged with the preset's",
    )
    table: str = key("table", TEXT, required=True, help="the table's path, relative to the spec's folder")
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    binary_values: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def tabular(self) -> tuple[str, ...]:
        """All tabular columns: continuous, then binary, then categorical."""
        return (*self.continuous, *self.binary, *self.categorical)

    @property
    def locator(self) -> str:
        """The image locator's name: ``image.locator``, else ``column`` or ``glob``, whichever is given."""
        if self.image_locator is not None:
            return self.image_locator
        return "column" if self.image_column is not None else "glob"


#: The manifest's keys, in the order they are read, and the spec field each fills.
FIELDS: tuple[Key, ...] = tuple(
    f.metadata["key"] for f in dataclasses.fields(ManifestSpec) if "key" in f.metadata
)
_ATTRIBUTES = {
    f.metadata["key"].name: f.name for f in dataclasses.fields(ManifestSpec) if "key" in f.metadata
}


def _sections(keys: Iterable[Key]) -> dict[str, tuple[str, ...]]:
    sections: dict[str, tuple[str, ...]] = {}
    for k in keys:
        if "." in k.name:
            section, sub = k.name.split(".", 1)
            sections[section] = (*sections.get(section, ()), sub)
    return sections


#: The nested mappings and their keys (``target: {task, classes, ...}``).
SECTIONS: dict[str, tuple[str, ...]] = _sections(FIELDS)
#: The keys a spec may name at its top level.
TOP_KEYS: tuple[str, ...] = tuple(dict.fromkeys(k.name.split(".", 1)[0] for k in FIELDS))


def keys_markdown() -> str:
    """The key reference of ``docs/manifest.md``: one table row per key (type, default, help)."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    tops = list(TOP_KEYS)
    for k in sorted(FIELDS, key=lambda k: tops.index(k.name.split(".", 1)[0])):  # a section's keys together
        default = (
            "required" if k.required else f"`{yaml.safe_dump(k.absent, default_flow_style=True).strip()}`"
        )
        default = default.replace("\n...", "")
        kind = k.read.kind.replace("|", "\\|")
        rows.append(f"| `{k.name}` | {kind} | {default} | {k.help} |")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: one row per scan, ready for partitioning, preprocessing and a `CohortDataset`.

    ``frame`` has the columns ``subject_id`` (str), ``target`` (int64 class index or float64), ``label``
    (class name; classification only), ``image`` (absolute path), ``line`` (the row's line in the table file,
    header = 1), then the tabular and stratification columns under their table names: continuous as float64
    (NaN = missing, censored values at their bound), binary as the canonical text of their two values
    (``"0"``/``"1"``, ``"F"``/``"M"``; see `hyperfusion.data.binary`) and categorical as str (NaN = missing).
    ``stratify`` lists the frame columns to stratify partitions by, the target first.
    """

    frame: pd.DataFrame
    task: str
    classes: tuple[str, ...]
    continuous: tuple[str, ...]
    categorical: tuple[str, ...]
    binary: tuple[str, ...]
    stratify: tuple[str, ...]
    spec: ManifestSpec
    table_path: Path

    @property
    def subject_ids(self) -> np.ndarray:
        return self.frame["subject_id"].to_numpy(dtype=object)

    @property
    def targets(self) -> np.ndarray:
        """Targets as the task takes them: int64 class indices, float32 values, or float32 (time, event) pairs."""
        from hyperfusion.tasks import get_task  # the task module imports the data package

        return get_task(self.task).cohort_targets(self.frame)

    @property
    def image_paths(self) -> list[Path]:
        return [Path(p) for p in self.frame["image"]]

    def preprocessor(self, **kwargs: Any):
        """A `TabularPreprocessor` for this cohort's columns (unfitted); keyword arguments pass through."""
        from hyperfusion.data.tabular import TabularPreprocessor

        declared = {
            "categories": {c: list(v) for c, v in self.spec.categories.items() if c in self.categorical},
            "binary_values": {c: list(v) for c, v in self.spec.binary_values.items() if c in self.binary},
        }
        return TabularPreprocessor(
            continuous=list(self.continuous),
            categorical=list(self.categorical),
            binary=list(self.binary),
            **(declared | kwargs),
        )


# --- checks that tie several keys together, run in this order after every key is read -------------------------

Values = dict[str, Any]


def _check_target(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    classes, mapping, exclude = v["classes"], v["mapping"], v["exclude"]
    if v["task"] == "classification":
        if len(classes) < 2:
            raise ValueError(
                f"{source}: 'target.classes' must list at least two classes, got {list(classes)}"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(f"{source}: 'target.classes' has duplicates: {list(classes)}")
        stray = sorted(set(mapping.values()) - set(classes) - set(exclude))  # an excluded label's rows go
        if stray:
            raise ValueError(
                f"{source}: 'target.mapping' maps onto {stray}, which are not in {list(classes)}"
            )
    elif classes or mapping:
        raise ValueError(f"{source}: 'target.classes'/'target.mapping' only apply to classification")
    if exclude and v["task"] != "classification":
        raise ValueError(f"{source}: 'target.exclude' only applies to classification")
    both = sorted(set(exclude) & set(classes))
    if both:
        raise ValueError(f"{source}: 'target.exclude' lists {both}, which are also in 'target.classes'")


_BUILT_IN_LOCATORS = ("column", "glob")


def _check_image(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    """``column`` xor ``glob``, unless ``image.locator`` names a locator of its own (which may read either)."""
    column, glob, locator = v["image_column"], v["image_glob"], v["image_locator"]
    if locator not in (None, *_BUILT_IN_LOCATORS):
        return
    if (column is None) == (glob is None):
        image = merged.get("image") or {}
        raise ValueError(f"{source}: give exactly one of 'image.column' and 'image.glob', got {image!r}")
    if locator is not None and v[f"image_{locator}"] is None:
        raise ValueError(
            f"{source}: 'image.locator' {locator!r} reads 'image.{locator}', which the spec lacks"
        )
    if glob is not None and "{subject}" not in glob:
        raise ValueError(f"{source}: 'image.glob' must contain '{{subject}}', got {glob!r}")


def _check_visit(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    if (v["visit_column"] is None) != (v["visit_keep"] is None):
        raise ValueError(
            f"{source}: 'visit' needs both 'column' and 'keep', got {merged.get('visit') or {}!r}"
        )


def _check_roles(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    all_tabular = [*v["continuous"], *v["categorical"], *v["binary"]]
    repeated = sorted({c for c in all_tabular if all_tabular.count(c) > 1})
    if repeated:
        raise ValueError(f"{source}: column(s) {repeated} have more than one tabular role")


def _check_target_columns(v: Values, source: str) -> None:
    """Classification and regression read ``target.column``; survival reads ``target.time`` and ``target.event``
    (the time column then stands as the target column: it is the numeric target the ranges and checks see)."""
    from hyperfusion.tasks import get_task  # the task module imports the data package

    time, event, column = v["time_column"], v["event_column"], v["target_column"]
    if not get_task(v["task"]).time_to_event:
        if time is not None or event is not None or v["from_visits"] is not None:
            raise ValueError(
                f"{source}: 'target.time'/'target.event'/'target.from_visits' only apply to task survival"
            )
        _text(column, "target.column", source)
        return
    if column is not None:
        raise ValueError(
            f"{source}: a survival target is 'target.time' and 'target.event', not 'target.column'"
        )
    if v["from_visits"] is not None:
        if time is not None or event is not None:
            raise ValueError(f"{source}: give 'target.from_visits' or 'target.time'/'target.event', not both")
        v["time_column"], v["event_column"] = time, event = DERIVED_TIME, DERIVED_EVENT
    for name, value in (("target.time", time), ("target.event", event)):
        _text(value, name, source)
    if time == event:
        raise ValueError(f"{source}: 'target.time' and 'target.event' are the same column {time!r}")
    v["target_column"] = time


def _check_reserved(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    _check_target_columns(v, source)
    tabular = {*v["continuous"], *v["categorical"], *v["binary"]}
    clashes = sorted(tabular & (set(RESERVED) - {v["subject"], v["target_column"]}))
    if clashes:
        raise ValueError(f"{source}: tabular column(s) {clashes} clash with the cohort's reserved {RESERVED}")


def _check_declared(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    """The declared categories and binary values, as `TabularPreprocessor` accepts them (two distinct values, ...)."""
    from hyperfusion.data.tabular import TabularPreprocessor

    continuous, categorical, binary = v["continuous"], v["categorical"], v["binary"]
    categories, binary_values = v["categories"], v["binary_values"]
    if continuous or categorical or binary:
        try:
            checked = TabularPreprocessor(
                continuous, categorical, binary, categories=categories, binary_values=binary_values
            )
        except ValueError as err:
            raise ValueError(f"{source}: tabular: {err}") from None
        categories, binary_values = checked.categories, checked.binary_values
    v["categories"] = {c: tuple(values) for c, values in categories.items()}
    v["binary_values"] = {c: (values[0], values[1]) for c, values in binary_values.items()}


def _check_ranges(v: Values, merged: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    """The ranges that apply to numeric columns; one the spec itself names for another column is an error."""
    numeric = {*v["continuous"], *v["stratify"]} | (
        {v["target_column"]} if v["task"] != "classification" else set()
    )
    v["ranges"] = usable_ranges(
        v["ranges"], parse_ranges(raw.get("ranges"), source=source), numeric, source=source
    )


Check = Callable[[Values, Mapping[str, Any], Mapping[str, Any], str], None]
#: Checks across keys, each run as soon as the key it names is read (every key it needs comes before it in
#: `FIELDS`); a check may complete the values.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("target.exclude", _check_target),
    ("image.locator", _check_image),
    ("visit.keep", _check_visit),
    ("tabular.binary", _check_roles),
    ("target.column", _check_reserved),
    ("table_reader", _check_declared),
    ("ranges", _check_ranges),
)


def read_spec(spec_path: str | Path) -> ManifestSpec:
    """Read and validate a manifest YAML; the preset's defaults fill what it leaves out.

    Raises:
        FileNotFoundError: no such spec file.
        ValueError: malformed YAML, unknown keys or presets, missing or ill-typed values (naming the key).
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise FileNotFoundError(f"manifest spec {spec_path} does not exist")
    try:
        raw = load_yaml(spec_path.read_text(), str(spec_path))
    except yaml.YAMLError as err:
        raise ValueError(f"{spec_path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{spec_path}: a manifest spec must be a YAML mapping, got {type(raw).__name__}")
    return spec_from_dict(raw, source=str(spec_path))


def spec_from_dict(raw: Mapping[str, Any], *, source: str = "<spec>") -> ManifestSpec:
    """Validate a spec given as a dictionary (the parsed YAML); see `read_spec`.

    The preset is merged under the spec, then each key of `FIELDS` is read in turn, and each of `CHECKS` runs
    once its key is read.
    """
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {sorted(unknown)}{_hint(unknown, TOP_KEYS)}; "
            f"allowed keys are {sorted(TOP_KEYS)}"
        )
    name = _preset_name(raw.get("preset", "generic"), "preset", source)
    base = preset(name)
    own_task = (raw.get("target") or {}).get("task") if isinstance(raw.get("target"), dict) else None
    if own_task is not None and own_task != (base.get("target") or {}).get("task"):
        base.pop("target", None)  # a preset's target keys belong to its task (ADNIMERGE's DX_bl classes)
    merged = merge(base, dict(raw))
    for section, allowed in SECTIONS.items():
        value = merged.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(
                f"{source}: {section!r} must be a mapping with keys {sorted(allowed)}, got {value!r}"
            )
        bad = set(value) - set(allowed)
        if bad:
            raise ValueError(
                f"{source}: unknown key(s) {sorted(bad)} under {section!r}{_hint(bad, allowed)}; "
                f"allowed: {sorted(allowed)}"
            )
    values: Values = {}
    checks = dict(CHECKS)
    for k in FIELDS:
        parsed = k.read.parse(_lookup(merged, k), k.name, source)
        if k.also is not None:
            values[_ATTRIBUTES[k.name]], values[k.also] = parsed
        else:
            values[_ATTRIBUTES[k.name]] = parsed
        if k.name in checks:
            checks[k.name](values, merged, raw, source)
    return ManifestSpec(**values)


def _lookup(merged: Mapping[str, Any], k: Key) -> Any:
    """The YAML value of a dotted key (a null section reads as an empty one), or what its absence stands for."""
    if "." not in k.name:
        return merged.get(k.name, copy.deepcopy(k.absent))
    section, sub = k.name.split(".", 1)
    return (merged.get(section) or {}).get(sub, copy.deepcopy(k.absent))


def _hint(unknown: Iterable[Any], valid: Iterable[str]) -> str:
    """' (did you mean X?)' for one unknown key close to a valid one; for several, which each may mean."""
    unknown, valid = sorted(str(u) for u in unknown), list(valid)
    if len(unknown) == 1:
        return nearest(unknown[0], valid)
    guesses = [(u, closest(u, valid)) for u in unknown]
    listed = ", ".join(f"{guess!r} for {u!r}" for u, guess in guesses if guess)
    return f" (did you mean {listed}?)" if listed else ""


@contextlib.contextmanager
def warnings_shown() -> Iterator[None]:
    """Silence the data layer's warnings while a cohort is read again (the first read showed them once)."""
    logger = logging.getLogger("hyperfusion")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def load_manifest(spec_path: str | Path, *, require_target: bool = True) -> Cohort:
    """Read a manifest spec and its table into a validated `Cohort` (see `Cohort` for the frame's columns).

    ``require_target=False`` is for scoring new subjects: the target column may be absent or empty, and such
    rows get the target ``-1`` (classification) or NaN (regression) instead of an error; a tabular column may
    be empty in every row (the saved preprocessing imputes it, as it does a single missing value), and one
    image may serve several rows.

    Raises:
        FileNotFoundError: the spec, the table or an image file does not exist (all missing images listed).
        ValueError: any bad content — a declared column absent from the table, a column missing for every
            row (training tables), duplicate subject ids, a missing target, an unknown label, a non-numeric
            value in a numeric column, a binary column with more than two values, a category or binary value
            outside its declaration, a value outside its plausible range, one image path under two subjects,
            a table in a declared encoding that does not decode — naming the file, line, column and value.
    """
    spec_path = Path(spec_path).resolve()
    spec = read_spec(spec_path)
    return load_table(spec, spec_path.parent / spec.table, require_target=require_target)


def load_table(spec: ManifestSpec, table_path: str | Path, *, require_target: bool = True) -> Cohort:
    """Apply a validated `ManifestSpec` to the table at ``table_path``; see `load_manifest`."""
    table_path = Path(table_path).resolve()
    source = str(table_path)
    table = read_table(table_path, spec.na_values, spec.encoding, reader=spec.table_reader)
    if spec.from_visits is not None and require_target:
        table = _with_conversion(spec, table, source)
    if not require_target:
        if spec.target_column not in table.columns:
            table[spec.target_column] = np.nan
        if spec.event_column is not None and spec.event_column not in table.columns:
            table[spec.event_column] = (
                0  # new subjects' outcome is unknown; their event is reset to NaN below
            )
        unlabelled = table[spec.target_column].isna()
        if unlabelled.any():  # a placeholder the caller never sees: the target is reset to -1 / NaN below
            placeholder = spec.classes[0] if spec.task == "classification" else 0.0
            table[spec.target_column] = (
                table[spec.target_column].astype(object).where(~unlabelled, placeholder)
            )
    _check_columns(spec, table, source)

    if spec.visit_column is not None:
        visits = table[spec.visit_column].astype("string").str.strip()
        table = table[(visits == spec.visit_keep).fillna(False).to_numpy()]
        if table.empty:
            raise ValueError(f"{source}: no row has {spec.visit_column} == {spec.visit_keep!r}")
    for column, value_map in spec.values.items():
        if column in table.columns:
            table[column] = table[column].map(
                lambda v, m=value_map: m.get(str(v).strip(), v) if _present(v) else v
            )

    subjects = table[spec.subject]
    missing_ids = subjects.isna()
    if missing_ids.any():
        raise ValueError(
            f"{source}: column {spec.subject!r} has no subject id on {_lines(table.index[missing_ids])}"
        )
    subjects = subjects.astype(str).str.strip()
    blank = subjects == ""
    if blank.any():
        raise ValueError(
            f"{source}: column {spec.subject!r} holds only spaces on {_lines(table.index[blank])}; every row "
            "needs a subject id"
        )

    target, labels, keep = _parse_target(spec, table, source)
    no_target = table[spec.target_column].isna()
    if no_target.any():
        log.warning(
            "%s: dropped %d row(s) without a target in column %r (%s; target.drop_missing is true)",
            source,
            int(no_target.sum()),
            spec.target_column,
            _lines(table.index[no_target]),
        )
    if not keep.all():
        table, subjects, target = table[keep], subjects[keep], target[keep]
        labels = None if labels is None else labels[keep]

    if spec.one_row_per_subject:
        duplicated = subjects[subjects.duplicated(keep=False)]
        if len(duplicated):
            first = duplicated.iloc[0]
            raise ValueError(
                f"{source}: subject id(s) {sorted(set(duplicated))[:5]} appear more than once "
                f"({len(duplicated)} rows; e.g. {first!r} on {_lines(duplicated.index[duplicated == first])}); "
                "one row per subject is required (set 'visit' to choose one visit, or one_row_per_subject: false)"
            )

    frame = pd.DataFrame(index=table.index)
    frame["subject_id"] = subjects.astype(object)
    frame["target"] = target
    if labels is not None:
        frame["label"] = labels.astype(object)
    if spec.event_column is not None:
        frame["event"] = _parse_event(table, spec, frame["target"], source)
    if not require_target:
        rows = frame.index.intersection(unlabelled.index[unlabelled.to_numpy()])
        frame.loc[rows, "target"] = -1 if spec.task == "classification" else np.nan
        if spec.event_column is not None:
            frame.loc[rows, "event"] = np.nan
        if labels is not None:
            frame.loc[rows, "label"] = np.nan
    frame["image"] = locate_images(spec, table, subjects, table_path)
    frame["line"] = (table.index.to_numpy() + 2).astype(np.int64)

    censored: dict[str, int] = {}
    for column in spec.continuous:
        frame[column], n = parse_numeric(table[column], column=column, source=source)
        if n:
            censored[column] = n
    for column in spec.binary:
        frame[column] = _parse_binary(table[column], column, source, spec.binary_values.get(column))
    for column in spec.categorical:
        frame[column] = table[column].map(lambda v: str(v).strip() if _present(v) else np.nan).astype(object)
        _check_declared(frame[column], column, spec.categories.get(column), source)
    if require_target:  # a scoring table may lack a column entirely: the saved preprocessing imputes it
        for column in spec.tabular:
            if frame[column].isna().all():
                raise ValueError(
                    f"{source}: column {column!r} is missing for every row; drop it from the spec "
                    "(nothing can be learnt from it)"
                )
    if censored:
        log.warning(
            "%s: read %d censored value(s) at their bound (%s)",
            source,
            sum(censored.values()),
            ", ".join(f"{c}: {n}" for c, n in censored.items()),
        )
    for column in spec.stratify:
        if column not in frame.columns:
            frame[column] = _numeric_or_text(table[column], column, source)
    for column, bounds in spec.ranges.items():
        name = "target" if column == spec.target_column and spec.task != "classification" else column
        check_ranges(frame[name], column, bounds, frame["line"], source=source)
    if require_target and not spec.allow_duplicate_images:
        check_duplicate_paths(frame, source=source)

    target_name = "label" if spec.task == "classification" else "target"
    first = "event" if spec.event_column is not None else "target"  # survival: partitions keep the event rate
    stratify = (first, *(c for c in spec.stratify if c not in {spec.target_column, target_name, first}))
    return Cohort(
        frame=frame.reset_index(drop=True),
        task=spec.task,
        classes=spec.classes,
        continuous=spec.continuous,
        categorical=spec.categorical,
        binary=spec.binary,
        stratify=stratify,
        spec=spec,
        table_path=table_path,
    )


def _check_columns(spec: ManifestSpec, table: pd.DataFrame, source: str) -> None:
    roles = {
        spec.subject: "subject",
        spec.target_column: "target.column" if spec.time_column is None else "target.time",
        **({spec.event_column: "target.event"} if spec.event_column is not None else {}),
        **{c: "tabular.continuous" for c in spec.continuous},
        **{c: "tabular.categorical" for c in spec.categorical},
        **{c: "tabular.binary" for c in spec.binary},
        **{c: "stratify" for c in spec.stratify if c not in {"target", "label"}},
    }
    if spec.image_column is not None:
        roles[spec.image_column] = "image.column"
    if spec.visit_column is not None:
        roles[spec.visit_column] = "visit.column"
    absent = [f"{column!r} ({role})" for column, role in roles.items() if column not in table.columns]
    if absent:
        raise ValueError(
            f"{source}: declared column(s) {', '.join(absent)} not in the table; its columns are {list(table.columns)}"
        )


def _parse_target(
    spec: ManifestSpec, table: pd.DataFrame, source: str
) -> tuple[pd.Series, pd.Series | None, pd.Series]:
    """Returns (target, class names or None, rows to keep)."""
    raw = table[spec.target_column]
    missing = raw.isna()
    if missing.any() and not spec.drop_missing_target:
        raise ValueError(
            f"{source}: target column {spec.target_column!r} is missing on {_lines(table.index[missing])} "
            "(set target.drop_missing: true to drop those rows)"
        )
    if spec.task != "classification":
        values, _ = parse_numeric(raw, column=spec.target_column, source=source, parse_censored=False)
        return values, None, ~missing
    index = {name: i for i, name in enumerate(spec.classes)}
    labels = raw.map(lambda v: spec.mapping.get(str(v).strip(), str(v).strip()) if _present(v) else np.nan)
    excluded = labels.isin(list(spec.exclude))
    if excluded.any():
        log.info(
            "%s: left out %d row(s) labelled %s (target.exclude)",
            source,
            int(excluded.sum()),
            sorted(set(labels[excluded])),
        )
        labels = labels.where(~excluded, np.nan)
        missing = missing | excluded
    unknown = labels.notna() & ~labels.isin(list(spec.classes))
    if unknown.any():
        first = table.index[unknown][0]
        others = ", ".join(shown(v) for v in sorted(set(raw[unknown].astype(str)))[:10])
        raise ValueError(
            f"{source}: unknown label {shown(raw[first])} in column {spec.target_column!r} on {_lines([first])} "
            f"({int(unknown.sum())} row(s) with labels {others}); classes are "
            f"{list(spec.classes)} with mapping {dict(spec.mapping)}"
        )
    target = labels.map(lambda v: index.get(v, -1)).astype(np.int64)
    return target, labels, ~missing


def _with_conversion(spec: ManifestSpec, table: pd.DataFrame, source: str) -> pd.DataFrame:
    """The table with each subject's derived time and event on its rows; subjects the rules exclude are dropped
    with one warning that counts them by rule (`hyperfusion.data.conversion`)."""
    from hyperfusion.data.conversion import derive_conversion

    fv = spec.from_visits or {}
    subject = fv.get("subject", spec.subject)
    derived, summary = derive_conversion(
        table, subject=subject, months=fv["months"], diagnosis=fv["diagnosis"], at_risk=fv["at_risk"],
        event=fv["event"], source=source,
    )  # fmt: skip
    ids = table[subject].map(lambda v: str(v).strip() if _present(v) else v)
    index = derived.index.astype(str)
    table = table.assign(
        **{
            DERIVED_TIME: ids.map(pd.Series(derived["time"].to_numpy(), index=index)),
            DERIVED_EVENT: ids.map(pd.Series(derived["event"].to_numpy(), index=index)),
        }
    )
    rules = ("no_baseline", "baseline_event", "baseline_not_at_risk", "no_follow_up")
    log.warning(
        "%s: from_visits: %d of %d subjects at risk at baseline (%d events, %d censored); left out: %s",
        source, len(derived), summary.subjects, summary.events, summary.censored,
        ", ".join(f"{rule.replace('_', ' ')} {getattr(summary, rule)}" for rule in rules),
    )  # fmt: skip
    return table[table[DERIVED_TIME].notna().to_numpy()]


def _parse_event(table: pd.DataFrame, spec: ManifestSpec, time: pd.Series, source: str) -> pd.Series:
    """The event column as 0.0 / 1.0; a missing or other value, or a negative time, names its line."""
    negative = time < 0
    if negative.any():
        first = time.index[negative.to_numpy()][0]
        raise ValueError(
            f"{source}: time column {spec.target_column!r} on {_lines([first])} is {float(time[first])!r}; "
            "times are months from baseline, >= 0"
        )
    column = spec.event_column
    raw = table[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        first = raw.index[bad.to_numpy()][0]
        raise ValueError(
            f"{source}: event column {column!r} on {_lines([first])} is {shown(raw[first])}; "
            f"an event is 1 (seen) or 0 (censored) ({int(bad.sum())} row(s) otherwise)"
        )
    return numeric.astype(np.float64)


def _parse_binary(values: pd.Series, column: str, source: str, declared: Sequence[str] | None) -> pd.Series:
    """A binary column as the canonical text of its values (NaN = missing), at most two of them."""
    keys = binary_keys(values)
    seen = ordered(keys.dropna())
    extra = [v for v in seen if v not in declared] if declared is not None else seen[2:]
    if extra:
        first = keys.index[keys.isin(extra).to_numpy()][0]
        what = (
            f"not one of its declared values {list(declared)}"
            if declared is not None
            else f"a third value: the column holds {seen}, and a binary column takes two"
        )
        raise ValueError(
            f"{source}: binary column {column!r}, {_lines([first])}: value {values[first]!r} is {what} "
            "(map other spellings onto two values with 'values', or declare the column categorical)"
        )
    return keys.where(keys.notna(), np.nan)


def _check_declared(values: pd.Series, column: str, declared: Sequence[str] | None, source: str) -> None:
    if declared is None:
        return
    extra = values.notna() & ~values.isin(list(declared))
    if extra.any():
        first = values.index[extra.to_numpy()][0]
        raise ValueError(
            f"{source}: column {column!r}, {_lines([first])}: category {values[first]!r} is not one of its "
            f"declared categories {list(declared)} ({int(extra.sum())} row(s) outside them)"
        )


def _numeric_or_text(values: pd.Series, column: str, source: str) -> pd.Series:
    try:
        parsed, _ = parse_numeric(values, column=column, source=source)
        return parsed
    except ValueError:
        return values.map(lambda v: str(v).strip() if _present(v) else np.nan).astype(object)
