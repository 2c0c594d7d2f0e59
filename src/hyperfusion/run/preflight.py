"""Check a run before it trains: read the cohort as the run would, collect every problem, time a few steps.

``hyperfusion validate`` is the first hour of a new user: it answers "will my run go through, what will it see,
and how long will it take?" without training anything. Everything here goes through the code a run uses
(`load_manifest`, `check_cohort`, the image cache, `partitions_of`, each fold's tabular preprocessing, the
models of the plan), so what passes here passes at the start of the run; the only extra work is bookkeeping
(rows dropped, censored values, image grids) and the timing of a few training steps.

Problems a run would stop at are collected rather than raised one by one, so a user fixes them in one pass:
`Preflight.problems` lists them; the caller decides to fail (the command exits with status 2).
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError
from tqdm import tqdm

from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort, ImageCache, load_manifest
from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.duplicates import check_duplicate_images
from hyperfusion.data.intensity import check_intensities, header_warnings
from hyperfusion.data.manifest import warnings_shown
from hyperfusion.engine.devices import torch_device
from hyperfusion.run.cautions import (
    category_cautions,
    load_note,
    mixed_grid_cautions,
    precision_cautions,
    resolution_cautions,
)
from hyperfusion.run.estimate import Estimate, estimate_time
from hyperfusion.run.plan import PlannedUnit
from hyperfusion.run.runner import check_cohort, fit_fold, fold_roles_of, partitions_of, plan_of
from hyperfusion.run.setup import (
    check_config_device,
    group_column,
    image_spec,
)
from hyperfusion.run.store import RunDirectory
from hyperfusion.tasks import get_task

#: Errors that mean "this input would stop the run" (anything else is a bug and propagates).
BAD_INPUT = (ValueError, FileNotFoundError)
#: What nibabel raises for a file it cannot read as an image.
HEADER_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error)


# ----------------------------------------------------------------------------------------------------------
# what a preflight finds


@dataclass(frozen=True)
class RowCounts:
    """How the table's rows became the cohort: read, dropped (by reason), kept."""

    table: Path
    read: int
    dropped: Mapping[str, int]
    kept: int
    subjects: int


@dataclass(frozen=True)
class ColumnSummary:
    """One tabular (or stratification) column as the cohort holds it."""

    name: str
    role: str  # continuous | binary | categorical | stratify
    missing: int
    rows: int
    censored: int = 0
    censored_example: str = ""  # e.g. ">1700 read as 1700"
    values: str = ""  # "min … max (median m)" or "value n, value n"


@dataclass(frozen=True)
class GridGroup:
    """Images that share a grid: shape, voxel size (mm) and axis codes (e.g. RAS, LPS)."""

    shape: tuple[int, ...]
    voxel_mm: tuple[float, ...]
    axes: str
    count: int


@dataclass(frozen=True)
class ImageFailure:
    """An image the data layer refuses (unreadable, far from MNI, a crop outside the image ...)."""

    path: str
    subject: str
    line: int
    message: str


@dataclass
class Preflight:
    """Everything ``hyperfusion validate`` reports; ``problems`` are what would stop the run before training."""

    config: RunConfig
    cohort: Cohort
    rows: RowCounts
    columns: list[ColumnSummary]
    # filled in stage by stage (see `STAGES`): a stage's fields are final once it is reported
    grids: list[GridGroup] = field(default_factory=list)
    images_checked: int = 0
    image_failures: list[ImageFailure] = field(default_factory=list)
    preprocessing_seconds: float = 0.0
    balance: pd.DataFrame | None = None  # rows: partitions (or roles) of the first split seed
    planned: list[PlannedUnit] = field(default_factory=list)
    estimate: Estimate | None = None
    problems: list[str] = field(default_factory=list)
    simulated_seconds: float | None = None
    labels: pd.DataFrame | None = None  # classification: class, subjects, raw labels
    image_warnings: list[ImageFailure] = field(default_factory=list)  # unlike the cohort's T1s; not problems
    cautions: list[str] = field(default_factory=list)  # settings or inputs that train, but not as meant
    load: str | None = None  # a note when the machine was busy while the steps were timed


#: The order in which a preflight's parts become final; ``on_ready`` is called with each.
STAGES = ("cohort", "images", "cautions", "partitions", "estimate")


# ----------------------------------------------------------------------------------------------------------
# the whole check


def preflight(
    config: RunConfig,
    work: str | Path,
    *,
    steps: int = 3,
    progress: bool = False,
    echo: Callable[[str], None] = print,
    on_ready: Callable[[str, Preflight], None] = lambda stage, found: None,
) -> Preflight:
    """Read ``config``'s cohort as a run into ``work`` would, and check it without training.

    ``work`` receives a simulated cohort (``work/cohort``, when the config has ``simulate:``) and the image cache
    (``work/cache``): the layout of a run directory, so a run with ``--out work`` reuses both. ``steps`` training
    steps (and as many evaluation batches) of each method are timed for the estimate; 0 skips it, as do problems.
    ``on_ready(stage, found)`` is called as each of `STAGES` becomes final, so a caller can show it before the
    slower stages run; ``echo`` gets the progress lines (simulating, timing each method, a busy machine).

    Raises:
        ValueError, FileNotFoundError: what stops everything (a device the machine lacks, a manifest or table
            that cannot be read); every later problem is collected in `Preflight.problems` instead.
    """
    from hyperfusion.run.simulated import ensure_simulated_cohort

    work = Path(work)
    check_config_device(config)
    simulated = None
    if config.simulate is not None:
        echo(f"simulating the cohort into {work / 'cohort'} ...")
        start = time.perf_counter()
        training = dataclasses.replace(config.training, progress=progress)
        config = ensure_simulated_cohort(dataclasses.replace(config, training=training), work)
        simulated = time.perf_counter() - start
    cohort = load_manifest(config.cohort)
    problems: list[str] = []
    stratifiable = _collect(problems, check_cohort, config, cohort)
    found = Preflight(
        config=config,
        cohort=cohort,
        rows=count_rows(cohort),
        columns=summarize_columns(cohort),
        problems=problems,
        simulated_seconds=simulated,
        labels=label_counts(cohort) if get_task(cohort.task).has_classes else None,
    )
    on_ready("cohort", found)

    spec = image_spec(config)
    cache = ImageCache(RunDirectory(work).cache)
    start = time.perf_counter()
    found.grids, found.image_failures = check_images(cohort, spec, cache, progress=progress)
    found.images_checked = len(cohort.frame)
    found.preprocessing_seconds = time.perf_counter() - start
    if found.image_failures:
        problems.append(
            f"{len(found.image_failures)} of {len(cohort.frame)} image(s) fail the image checks; "
            f"the first: {found.image_failures[0].message}"
        )
    _collect(problems, check_duplicate_images, cohort, cache)
    found.image_warnings = image_warnings(cohort, spec, cache, found.image_failures)
    on_ready("images", found)

    found.cautions = [
        *resolution_cautions(found.grids, config.image.voxel_mm),
        *mixed_grid_cautions(found.grids),
        *category_cautions(cohort.frame, cohort.categorical, source=str(cohort.table_path)),
        *precision_cautions(config.training.precision, torch_device(config.training.device).type),
    ]
    on_ready("cautions", found)

    start = time.perf_counter()  # partitions and each fold's preprocessing, as the run prepares them
    folds = _prepare_folds(config, cohort, problems) if stratifiable else None
    roles, preprocessors, found.balance = folds or ({}, {}, None)
    prepare = time.perf_counter() - start
    found.planned = plan_of(config, cohort.task)
    on_ready("partitions", found)

    if steps > 0 and not problems:
        found.load = load_note()
        if found.load:
            echo(found.load)
        found.estimate = estimate_time(
            config,
            cohort,
            cache,
            found.planned,
            roles,
            preprocessors,
            work=work,
            steps=steps,
            prepare=prepare,
            echo=echo,
        )
    found.problems = list(dict.fromkeys(problems))
    on_ready("estimate", found)
    return found


def _collect(problems: list[str], function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``; a bad-input error becomes a problem (returns None), True stands for a None result."""
    try:
        result = function(*args)
    except BAD_INPUT as err:
        problems.append(" ".join(str(err).split()))
        return None
    return True if result is None else result


Folds = dict[tuple[int, int], Any]


def _prepare_folds(
    config: RunConfig, cohort: Cohort, problems: list[str]
) -> tuple[Folds, Folds, pd.DataFrame | None]:
    """Every split seed's partitions and each fold's fitted preprocessing, as `Run.prepare` makes them.

    Returns the train/val/test roles and the preprocessor per (split seed, fold), and the first split seed's
    balance; a split or a fold that fails adds its problem and is left out.
    """
    roles: Folds = {}
    preprocessors: Folds = {}
    balance = None
    for split_seed in config.protocol.split_seeds:
        partitions = _collect(problems, partitions_of, config, cohort, split_seed)
        if partitions is None:
            break
        if balance is None:
            balance = partition_balance(config, cohort, partitions)
        for fold in range(get_task(cohort.task).folds(config.protocol)):
            fold_roles = fold_roles_of(config, cohort.task, partitions, fold).to_numpy()
            fitted = _collect(problems, fit_fold, config, cohort, fold_roles)
            if fitted is not None:
                roles[(split_seed, fold)], preprocessors[(split_seed, fold)] = fold_roles, fitted
    return roles, preprocessors, balance


# ----------------------------------------------------------------------------------------------------------
# rows, labels, columns


def raw_rows(cohort: Cohort) -> tuple[pd.DataFrame, pd.Series]:
    """The table as read from its file (text cells, index = line − 2), and which rows the visit filter keeps.

    ``values`` maps of the manifest are applied as `load_table` applies them, so raw labels and censored
    strings read as the cohort read them.
    """
    # the data layer's one table reader: the same encoding, NA strings and blank lines as the cohort's
    from hyperfusion.data.tables import read_table

    spec = cohort.spec
    with warnings_shown():
        table = read_table(cohort.table_path, spec.na_values, spec.encoding, reader=spec.table_reader)
    if spec.visit_column is not None:
        keep = (table[spec.visit_column].astype("string").str.strip() == spec.visit_keep).fillna(False)
    else:
        keep = pd.Series(True, index=table.index)
    for column, value_map in spec.values.items():
        if column in table.columns:
            table[column] = table[column].map(
                lambda v, m=value_map: m.get(str(v).strip(), v) if _present(v) else v
            )
    return table, keep.astype(bool)


def count_rows(cohort: Cohort) -> RowCounts:
    """Rows read, dropped by reason (another visit, no target) and kept; subjects in the cohort."""
    spec = cohort.spec
    table, keep = raw_rows(cohort)
    dropped: dict[str, int] = {}
    if spec.visit_column is not None:
        dropped[f"{spec.visit_column} is not {spec.visit_keep!r}"] = int((~keep).sum())
    if spec.drop_missing_target:
        dropped[f"no target in {spec.target_column!r}"] = int((keep & table[spec.target_column].isna()).sum())
    kept = len(cohort.frame)
    unexplained = len(table) - sum(dropped.values()) - kept
    if unexplained:
        dropped["other"] = unexplained
    return RowCounts(
        table=cohort.table_path,
        read=len(table),
        dropped=dropped,
        kept=kept,
        subjects=int(cohort.frame["subject_id"].nunique()),
    )


def label_counts(cohort: Cohort) -> pd.DataFrame:
    """Per class: subjects, rows and the raw labels mapped onto it (e.g. MCI from EMCI and LMCI)."""
    table, _ = raw_rows(cohort)
    frame = cohort.frame
    raw = (
        table.loc[frame["line"].to_numpy() - 2, cohort.spec.target_column].astype(str).str.strip().to_numpy()
    )
    out = []
    for name in cohort.classes:
        mine = (frame["label"] == name).to_numpy()
        labels = pd.Series(raw[mine]).value_counts()
        out.append(
            {
                "class": name,
                "subjects": int(frame.loc[mine, "subject_id"].nunique()),
                "rows": int(mine.sum()),
                "raw labels": ", ".join(f"{k} {v}" for k, v in sorted(labels.items())),
            }
        )
    return pd.DataFrame(out)


def summarize_columns(cohort: Cohort) -> list[ColumnSummary]:
    """Role, missing count, censored values and value range (or categories) of each tabular column."""
    table, _ = raw_rows(cohort)
    frame = cohort.frame
    raw = table.loc[frame["line"].to_numpy() - 2]
    roles = {c: "continuous" for c in cohort.continuous}
    roles |= {c: "binary" for c in cohort.binary} | {c: "categorical" for c in cohort.categorical}
    for column in cohort.stratify:
        if column not in roles and column != "target":
            roles[column] = "stratify"
    out = []
    for column, role in roles.items():
        values = frame[column]
        censored, example = 0, ""
        if role == "continuous":
            _, censored = parse_numeric(raw[column], column=column, source=str(cohort.table_path))
            if censored:
                example = _censored_example(raw[column], values)
        out.append(
            ColumnSummary(
                name=column,
                role=role,
                missing=int(values.isna().sum()),
                rows=len(values),
                censored=censored,
                censored_example=example,
                values=_describe(values),
            )
        )
    return out


def _censored_example(raw: pd.Series, parsed: pd.Series) -> str:
    for text, value in zip(raw.to_numpy(), parsed.to_numpy()):
        if _present(text) and str(text).strip()[:1] in "<>":
            return f"{str(text).strip()} read as {value:g}"
    return ""


def _describe(values: pd.Series) -> str:
    present = values.dropna()
    if present.empty:
        return "(none)"
    if pd.api.types.is_numeric_dtype(values):
        return f"{present.min():g} … {present.max():g} (median {present.median():.4g})"
    counts = present.astype(str).value_counts()
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _present(value: Any) -> bool:
    return not (value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)))


# ----------------------------------------------------------------------------------------------------------
# images


def image_grid(path: str | Path) -> tuple[tuple[int, ...], tuple[float, ...], str]:
    """(shape, voxel size in mm, axis codes) from a NIfTI header; no voxel is read."""
    image = nib.load(str(path))
    shape = tuple(int(s) for s in image.shape[:3])
    zooms = tuple(round(float(z), 3) for z in image.header.get_zooms()[:3])
    return shape, zooms, "".join(nib.aff2axcodes(image.affine))


def check_images(
    cohort: Cohort, spec, cache: ImageCache, *, progress: bool = False
) -> tuple[list[GridGroup], list[ImageFailure]]:
    """Every image's grid (grouped) and the data layer's checks on it, preprocessing it into ``cache``.

    The checks are those of a run's preprocessing: readable, 3D, finite, not empty, a brain of MNI size and
    position (unless ``image.check_extent`` is off), crops (or the box) inside the image and the brain inside
    the box. Each failing image is reported with its subject and line, not only the first.
    """
    grids: dict[tuple, int] = {}
    failures: list[ImageFailure] = []
    frame = cohort.frame
    rows = zip(frame["image"].astype(str), frame["subject_id"].astype(str), frame["line"])
    for path, subject, line in tqdm(
        list(rows), desc="check images", unit="image", disable=not progress, leave=False
    ):
        try:
            cache.ensure(path, spec)
        except BAD_INPUT as err:
            failures.append(ImageFailure(path, subject, int(line), " ".join(str(err).split())))
        try:
            key = image_grid(path)
        except HEADER_ERRORS:  # an unreadable file: the check above has already reported it
            continue
        grids[key] = grids.get(key, 0) + 1
    groups = [GridGroup(shape, zooms, axes, n) for (shape, zooms, axes), n in grids.items()]
    return sorted(groups, key=lambda g: -g.count), failures


def image_warnings(
    cohort: Cohort, spec, cache: ImageCache, failures: list[ImageFailure]
) -> list[ImageFailure]:
    """Images that pass the checks but do not look like T1s of this cohort (`hyperfusion.data.intensity`).

    Copies up to an intensity scaling are left out when the manifest allows duplicate images.
    """
    failed = {f.path for f in failures}
    frame = cohort.frame.reset_index(drop=True)
    rows = frame[~frame["image"].astype(str).isin(failed)]
    paths = rows["image"].astype(str).tolist()
    found = [(i, m) for i, path in zip(rows.index, paths) for m in header_warnings(path)]
    inputs = [cache.get(path, spec) for path in paths]
    allowed = cohort.spec.allow_duplicate_images
    digests = None if allowed else [cache.digest(path) for path in paths]
    checked = check_intensities(
        inputs, rows["subject_id"].astype(str).tolist(), rows["line"].tolist(), digests
    )
    found += [(rows.index[w.index], w.message) for w in checked if not (allowed and w.kind == "copy")]
    return [
        ImageFailure(str(frame.at[i, "image"]), str(frame.at[i, "subject_id"]), int(frame.at[i, "line"]), m)
        for i, m in sorted(found, key=lambda item: item[0])
    ]


# ----------------------------------------------------------------------------------------------------------
# partitions


def partition_balance(config: RunConfig, cohort: Cohort, partitions: pd.Series) -> pd.DataFrame:
    """Subjects per partition (or role) of one split seed, by class and by sex, and numeric strata's means."""
    frame = cohort.frame.assign(_part=partitions.to_numpy())
    order = sorted(frame["_part"].unique(), key=_role_order)
    table = pd.DataFrame(index=pd.Index(order, name="partition"))
    table["subjects"] = frame.groupby("_part")["subject_id"].nunique()
    task = get_task(cohort.task)
    if task.has_classes:
        for name in cohort.classes:
            table[name] = frame[frame["label"] == name].groupby("_part")["subject_id"].nunique()
    else:
        table["target mean"] = frame.groupby("_part")["target"].mean().round(2)
    sex = group_column(cohort, config.protocol.group_by if task.scores_by_group else "auto")
    if sex is not None:
        for value in sorted(frame[sex].dropna().astype(str).unique()):
            table[f"{sex}={value}"] = (
                frame[frame[sex].astype(str) == value].groupby("_part")["subject_id"].nunique()
            )
    for column in cohort.stratify:
        if column not in ("target", sex) and pd.api.types.is_numeric_dtype(frame[column]):
            table[f"{column} mean"] = frame.groupby("_part")[column].mean().round(1)
    table = table.fillna(0)
    return table.astype({c: int for c in table.columns if not c.endswith("mean")})


def _role_order(value: Any) -> tuple:
    return ({"train": 0, "val": 1, "test": 2}.get(value, 3), str(value).zfill(4))


__all__ = [
    "STAGES",
    "ColumnSummary",
    "GridGroup",
    "ImageFailure",
    "Preflight",
    "RowCounts",
    "check_images",
    "count_rows",
    "label_counts",
    "partition_balance",
    "preflight",
    "summarize_columns",
]
