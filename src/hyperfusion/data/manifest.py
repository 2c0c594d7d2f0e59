"""Cohort manifests: a table (CSV/TSV, one row per scan) plus a YAML spec of column roles → a validated `Cohort`.

The YAML schema is documented in ``docs/manifest.md``. Every check happens here, once, at the edge: a bad
cohort fails with the file, line, column or value at fault, before any training starts.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hyperfusion.data.binary import binary_keys, ordered
from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.duplicates import check_duplicate_paths
from hyperfusion.data.presets import merge, preset
from hyperfusion.data.ranges import Range, check_ranges, parse_ranges, usable_ranges
from hyperfusion.data.tables import read_table
from hyperfusion.text import shown
from hyperfusion.yamlio import load_yaml

log = logging.getLogger("hyperfusion")

TASKS = ("classification", "regression")
DEFAULT_NA_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "None")
#: Columns the cohort frame reserves for itself.
RESERVED = ("subject_id", "target", "label", "image", "line")

_TOP_KEYS = {
    "preset",
    "table",
    "subject",
    "visit",
    "target",
    "image",
    "tabular",
    "stratify",
    "values",
    "na_values",
    "one_row_per_subject",
    "ranges",
    "allow_duplicate_images",
    "encoding",
}
_NESTED_KEYS = {
    "visit": {"column", "keep"},
    "target": {"column", "task", "classes", "mapping", "drop_missing", "exclude"},
    "image": {"column", "glob"},
    "tabular": {"continuous", "categorical", "binary"},
}


@dataclass(frozen=True)
class ManifestSpec:
    """A validated manifest spec (preset defaults merged with the YAML's own keys).

    Args:
        table: the table's path, relative to the spec's folder.
        subject: subject id column.
        target_column, task, classes, mapping: the target; ``classes`` fixes class order = class index and
            ``mapping`` sends raw labels to class names (classification only).
        image_column: image path column (relative to the table's folder), or None with ``image_glob``, a
            pattern with ``{subject}`` searched under the table's folder (BIDS).
        continuous, categorical, binary: tabular columns by role.
        stratify: extra stratification columns (the target always comes first).
        visit_column, visit_keep: keep only rows whose visit equals ``visit_keep``.
        categories: declared categories of some categorical columns (one-hot columns in this order; any
            other value is an error at load).
        binary_values: declared (value encoded 0, value encoded 1) of some binary columns.
        values: per-column raw-value maps applied before parsing (e.g. ``{sex: {male: M}}``).
        na_values: strings read as missing.
        one_row_per_subject: duplicate subject ids are an error.
        drop_missing_target: drop rows without a target (with a warning) instead of failing.
        exclude: labels (after ``mapping``) whose rows are left out, e.g. ``[MCI]`` for CN vs AD (paper App. B).
        ranges: plausible ``(low, high)`` per numeric column (either may be None); a value outside fails.
        allow_duplicate_images: one image under several subjects is intended (no leakage check).
        encoding: the table's text encoding; None = UTF-8, else latin-1 with a warning.
    """

    table: str
    subject: str
    target_column: str
    task: str
    image_column: str | None
    image_glob: str | None = None
    classes: tuple[str, ...] = ()
    mapping: Mapping[str, str] = field(default_factory=dict)
    continuous: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    binary: tuple[str, ...] = ()
    stratify: tuple[str, ...] = ()
    visit_column: str | None = None
    visit_keep: str | None = None
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    one_row_per_subject: bool = True
    drop_missing_target: bool = False
    exclude: tuple[str, ...] = ()
    preset: str = "generic"
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    binary_values: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    allow_duplicate_images: bool = False
    encoding: str | None = None

    @property
    def tabular(self) -> tuple[str, ...]:
        """All tabular columns: continuous, then binary, then categorical."""
        return (*self.continuous, *self.binary, *self.categorical)


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
        """Targets as int64 class indices (classification) or float32 values (regression)."""
        dtype = np.int64 if self.task == "classification" else np.float32
        return self.frame["target"].to_numpy(dtype=dtype)

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
    """Validate a spec given as a dictionary (the parsed YAML); see `read_spec`."""
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; allowed keys are {sorted(_TOP_KEYS)}")
    name = raw.get("preset", "generic")
    if not isinstance(name, str):
        raise ValueError(f"{source}: 'preset' must be a name, got {name!r}")
    merged = merge(preset(name), dict(raw))
    for key, allowed in _NESTED_KEYS.items():
        value = merged.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(
                f"{source}: {key!r} must be a mapping with keys {sorted(allowed)}, got {value!r}"
            )
        bad = set(value) - allowed
        if bad:
            raise ValueError(
                f"{source}: unknown key(s) {sorted(bad)} under {key!r}; allowed: {sorted(allowed)}"
            )

    def text(value: Any, key: str, *, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise ValueError(f"{source}: {key!r} must be a non-empty string, got {value!r}")
        return value

    def names(value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"{source}: {key!r} must be a list of column names, got {value!r}")
        return tuple(value)

    def declared(value: Any, key: str, size: int | None) -> tuple[tuple[str, ...], dict[str, list]]:
        """A list of column names, or a mapping column -> its values (null: learnt from the training rows)."""
        if not isinstance(value, dict):
            return names(value, key), {}
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

    target = merged.get("target") or {}
    task = target.get("task")
    if task not in TASKS:
        raise ValueError(f"{source}: 'target.task' must be one of {TASKS}, got {task!r}")
    classes = tuple(str(c) for c in target.get("classes") or ())
    mapping = {str(k): str(v) for k, v in (target.get("mapping") or {}).items()}
    exclude = tuple(str(c) for c in target.get("exclude") or ())
    if task == "classification":
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
    if exclude and task != "classification":
        raise ValueError(f"{source}: 'target.exclude' only applies to classification")
    both = sorted(set(exclude) & set(classes))
    if both:
        raise ValueError(f"{source}: 'target.exclude' lists {both}, which are also in 'target.classes'")

    image = merged.get("image") or {}
    image_column = text(image.get("column"), "image.column", required=False)
    image_glob = text(image.get("glob"), "image.glob", required=False)
    if (image_column is None) == (image_glob is None):
        raise ValueError(f"{source}: give exactly one of 'image.column' and 'image.glob', got {image!r}")
    if image_glob is not None and "{subject}" not in image_glob:
        raise ValueError(f"{source}: 'image.glob' must contain '{{subject}}', got {image_glob!r}")

    visit = merged.get("visit") or {}
    visit_column = text(visit.get("column"), "visit.column", required=False)
    visit_keep = visit.get("keep")
    if (visit_column is None) != (visit_keep is None):
        raise ValueError(f"{source}: 'visit' needs both 'column' and 'keep', got {visit!r}")

    tabular = merged.get("tabular") or {}
    continuous = names(tabular.get("continuous"), "tabular.continuous")
    categorical, categories = declared(tabular.get("categorical"), "tabular.categorical", None)
    binary, binary_values = declared(tabular.get("binary"), "tabular.binary", 2)
    all_tabular = [*continuous, *categorical, *binary]
    repeated = sorted({c for c in all_tabular if all_tabular.count(c) > 1})
    if repeated:
        raise ValueError(f"{source}: column(s) {repeated} have more than one tabular role")
    subject = text(merged.get("subject"), "subject")
    target_column = text(target.get("column"), "target.column")
    clashes = sorted(set(all_tabular) & (set(RESERVED) - {subject, target_column}))
    if clashes:
        raise ValueError(f"{source}: tabular column(s) {clashes} clash with the cohort's reserved {RESERVED}")

    values = merged.get("values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ValueError(f"{source}: 'values' must map column -> {{raw value: new value}}, got {values!r}")
    na_values = merged.get("na_values", list(DEFAULT_NA_VALUES))
    if not isinstance(na_values, list):
        raise ValueError(f"{source}: 'na_values' must be a list, got {na_values!r}")
    one_row = merged.get("one_row_per_subject", True)
    drop_missing = target.get("drop_missing", False)
    allow_duplicates = merged.get("allow_duplicate_images", False)
    for key, flag in (
        ("one_row_per_subject", one_row),
        ("target.drop_missing", drop_missing),
        ("allow_duplicate_images", allow_duplicates),
    ):
        if not isinstance(flag, bool):
            raise ValueError(f"{source}: {key!r} must be true or false, got {flag!r}")
    encoding = text(merged.get("encoding"), "encoding", required=False)
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"{source}: 'encoding' {encoding!r} is not a known text encoding") from None
    # TabularPreprocessor checks the declared values themselves (two distinct binary values, ...)
    from hyperfusion.data.tabular import TabularPreprocessor

    if all_tabular:
        try:
            checked = TabularPreprocessor(
                continuous, categorical, binary, categories=categories, binary_values=binary_values
            )
        except ValueError as err:
            raise ValueError(f"{source}: tabular: {err}") from None
        categories, binary_values = checked.categories, checked.binary_values
    stratify = names(merged.get("stratify"), "stratify")
    numeric_columns = {*continuous, *stratify} | ({target_column} if task == "regression" else set())
    ranges = usable_ranges(
        parse_ranges(merged.get("ranges"), source=source),
        parse_ranges(raw.get("ranges"), source=source),
        numeric_columns,
        source=source,
    )

    return ManifestSpec(
        table=text(merged.get("table"), "table"),
        subject=subject,
        target_column=target_column,
        task=task,
        image_column=image_column,
        image_glob=image_glob,
        classes=classes,
        mapping=mapping,
        continuous=continuous,
        categorical=categorical,
        binary=binary,
        stratify=stratify,
        visit_column=visit_column,
        visit_keep=None if visit_keep is None else str(visit_keep),
        values={str(k): {str(a): b for a, b in v.items()} for k, v in values.items()},
        na_values=tuple(str(v) for v in na_values),
        one_row_per_subject=one_row,
        drop_missing_target=drop_missing,
        exclude=exclude,
        preset=name,
        categories={c: tuple(v) for c, v in categories.items()},
        binary_values={c: (v[0], v[1]) for c, v in binary_values.items()},
        ranges=ranges,
        allow_duplicate_images=allow_duplicates,
        encoding=encoding,
    )


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
    table = read_table(table_path, spec.na_values, spec.encoding)
    if not require_target:
        if spec.target_column not in table.columns:
            table[spec.target_column] = np.nan
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
    if not require_target:
        rows = frame.index.intersection(unlabelled.index[unlabelled.to_numpy()])
        frame.loc[rows, "target"] = -1 if spec.task == "classification" else np.nan
        if labels is not None:
            frame.loc[rows, "label"] = np.nan
    frame["image"] = _image_paths(spec, table, subjects, table_path)
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
        name = "target" if column == spec.target_column and spec.task == "regression" else column
        check_ranges(frame[name], column, bounds, frame["line"], source=source)
    if require_target and not spec.allow_duplicate_images:
        check_duplicate_paths(frame, source=source)

    target_name = "label" if spec.task == "classification" else "target"
    stratify = ("target", *(c for c in spec.stratify if c not in {spec.target_column, target_name}))
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
        spec.target_column: "target.column",
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
    if spec.task == "regression":
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


def _image_paths(spec: ManifestSpec, table: pd.DataFrame, subjects: pd.Series, table_path: Path) -> list[str]:
    folder = table_path.parent
    paths: list[str] = []
    absent: list[str] = []
    several = 0
    for index, subject in subjects.items():
        if spec.image_column is not None:
            raw = table.at[index, spec.image_column]
            if not _present(raw):
                raise ValueError(
                    f"{table_path}: image column {spec.image_column!r} is empty on {_lines([index])}"
                )
            path = _resolved(folder / str(raw).strip(), f"{table_path}: {_lines([index])}")
            if not path.is_file():
                absent.append(f"{path} ({_lines([index])})")
        else:
            pattern = spec.image_glob.format(subject=subject)
            found = sorted(p for p in folder.glob(pattern) if p.name.endswith((".nii", ".nii.gz")))
            if not found:
                absent.append(f"{folder / pattern} (subject {subject!r}, {_lines([index])})")
                path = folder / pattern
            else:
                several += len(found) > 1
                path = _resolved(found[0], f"{table_path}: subject {subject!r}, {_lines([index])}")
        paths.append(str(path))
    if absent:
        raise FileNotFoundError(
            f"{table_path}: {len(absent)} image file(s) not found: "
            + "; ".join(absent[:5])
            + (" ..." if len(absent) > 5 else "")
        )
    if several:
        log.warning(
            "%s: %d subject(s) have several images matching %r; took the first in sorted order "
            "(e.g. the first session)",
            table_path,
            several,
            spec.image_glob,
        )
    return paths


def _resolved(path: Path, where: str) -> Path:
    """``path`` with its symbolic links followed; a link that loops is an error naming ``where`` and the link."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as err:  # Python < 3.13: RuntimeError("Symlink loop ..."); later: OSError
        raise ValueError(
            f"{where}: the image path {path} is a symbolic link that loops back on itself ({err})"
        ) from None


def _present(value: Any) -> bool:
    return not (value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)))


def _lines(index: Sequence[Any] | pd.Index) -> str:
    lines = [int(i) + 2 for i in list(index)]
    shown = ", ".join(str(n) for n in lines[:10]) + (" ..." if len(lines) > 10 else "")
    return f"line{'s' if len(lines) > 1 else ''} {shown}"
